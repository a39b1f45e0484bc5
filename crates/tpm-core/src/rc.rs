//! Response codes and the numbering of format-one codes (Part 2, TPM_RC).

use crate::constants as c;

/// A TPM response code. `Rc(0)` is success.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Rc(pub u32);

/// Result of a TPM operation: the error is the response code.
pub type TpmResult<T> = Result<T, Rc>;

impl Rc {
    /// TPM_RC_SUCCESS.
    pub const SUCCESS: Rc = Rc(0);

    fn numbered(self) -> bool {
        self.0 & (c::RC_P | c::RC_S | 0xF00) != 0
    }

    fn is_fmt1(self) -> bool {
        self.0 & c::RC_FMT1 != 0
    }

    /// Attach parameter number `n` (1-based) to a format-one code that has none yet.
    pub fn param(self, n: u32) -> Rc {
        if self.is_fmt1() && !self.numbered() && (1..=15).contains(&n) {
            Rc(self.0 | c::RC_P | (n << 8))
        } else {
            self
        }
    }

    /// Attach handle number `n` (1-based, at most 7) to a format-one code.
    pub fn handle(self, n: u32) -> Rc {
        if self.is_fmt1() && !self.numbered() && (1..=7).contains(&n) {
            Rc(self.0 | (n << 8))
        } else {
            self
        }
    }

    /// Attach session number `n` (1-based, at most 7) to a format-one code.
    pub fn session(self, n: u32) -> Rc {
        if self.is_fmt1() && !self.numbered() && (1..=7).contains(&n) {
            Rc(self.0 | c::RC_S | (n << 8))
        } else {
            self
        }
    }
}

/// Shorthand for an error result with code `code`.
pub fn err<T>(code: u32) -> TpmResult<T> {
    Err(Rc(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_applies_once_and_only_to_format_one() {
        assert_eq!(Rc(c::RC_VALUE).param(2), Rc(0x2c4));
        assert_eq!(Rc(c::RC_VALUE).param(2).param(3), Rc(0x2c4));
        assert_eq!(Rc(c::RC_HANDLE).handle(1), Rc(0x18b));
        assert_eq!(Rc(c::RC_AUTH_FAIL).session(1), Rc(0x98e));
        assert_eq!(Rc(c::RC_INITIALIZE).param(1), Rc(c::RC_INITIALIZE));
    }
}
