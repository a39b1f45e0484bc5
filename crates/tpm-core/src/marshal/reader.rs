//! A cursor over a byte slice that never reads past its end.

use crate::constants as c;
use crate::rc::{Rc, TpmResult};

/// Bounded reader over untrusted bytes: every read checks the length first and
/// fails with TPM_RC_INSUFFICIENT rather than panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Take the next `n` bytes.
    pub fn take(&mut self, n: usize) -> TpmResult<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Rc(c::RC_INSUFFICIENT));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Take exactly `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> TpmResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fail with TPM_RC_SIZE if bytes are left over.
    pub fn finish(&self) -> TpmResult<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Rc(c::RC_SIZE))
        }
    }
}
