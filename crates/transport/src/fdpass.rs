//! Descriptor passing (SCM_RIGHTS) on UNIX sockets: how QEMU hands swtpm
//! the data channel with CMD_SET_DATAFD.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Receive up to `buf.len()` bytes and at most one descriptor riding with them.
///
/// Returns the byte count (0 at end of stream) and the first descriptor, if
/// any. Extra descriptors in the same message are closed: nobody asked for them
/// and keeping them would leak.
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
    let bytes = msg.bytes;
    let mut first: Option<OwnedFd> = None;
    let mut others: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel has just installed `raw` in our descriptor
                // table for this message; nothing else refers to it, so taking
                // ownership (and closing it on drop) is sound.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if first.is_none() {
                    first = Some(owned);
                } else {
                    others.push(owned);
                }
            }
        }
    }
    drop(others);
    Ok((bytes, first))
}

/// Send `data` with `fd` attached (the client side of CMD_SET_DATAFD; used by tests and tools).
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(data)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn passes_a_working_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut x, y) = UnixStream::pair().unwrap();
        send_with_fd(a.as_fd(), b"hi", y.as_fd()).unwrap();
        drop(y);
        let mut buf = [0u8; 8];
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        let mut got = UnixStream::from(fd.expect("descriptor"));
        x.write_all(b"ping").unwrap();
        let mut p = [0u8; 4];
        got.read_exact(&mut p).unwrap();
        assert_eq!(&p, b"ping");
    }

    #[test]
    fn plain_data_has_no_descriptor() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"abc").unwrap();
        let mut buf = [0u8; 8];
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(n, 3);
        assert!(fd.is_none());
    }
}
