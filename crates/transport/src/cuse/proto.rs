//! The FUSE kernel protocol as /dev/cuse speaks it: the request and reply
//! headers and the bodies of the operations a CUSE character device sees
//! (CUSE_INIT, OPEN, READ, WRITE, IOCTL, RELEASE, INTERRUPT, POLL, DESTROY),
//! declared once with [`wire!`](crate::wire!) in the host's byte order, as
//! in linux/fuse.h. One `read()` of the device returns one whole request,
//! one `write()` carries one whole reply.

use crate::wire::{Endian, Pad, Wire};

/// FUSE messages are in the host's byte order.
pub(crate) const ORDER: Endian = Endian::Native;

/// The protocol major version (FUSE_KERNEL_VERSION).
pub(crate) const FUSE_MAJOR: u32 = 7;
/// The protocol minor version vtpm speaks; the reply to CUSE_INIT names the
/// smaller of this and the kernel's. 11 is the first with ioctls.
pub(crate) const FUSE_MINOR: u32 = 31;
/// The oldest minor version whose request layouts vtpm reads.
pub(crate) const FUSE_MINOR_MIN: u32 = 11;

/// Request opcodes (enum fuse_opcode).
pub(crate) mod op {
    /// FUSE_OPEN.
    pub(crate) const OPEN: u32 = 14;
    /// FUSE_READ.
    pub(crate) const READ: u32 = 15;
    /// FUSE_WRITE.
    pub(crate) const WRITE: u32 = 16;
    /// FUSE_RELEASE.
    pub(crate) const RELEASE: u32 = 18;
    /// FUSE_FLUSH.
    pub(crate) const FLUSH: u32 = 25;
    /// FUSE_INTERRUPT: no reply of its own.
    pub(crate) const INTERRUPT: u32 = 36;
    /// FUSE_DESTROY.
    pub(crate) const DESTROY: u32 = 38;
    /// FUSE_IOCTL.
    pub(crate) const IOCTL: u32 = 39;
    /// FUSE_POLL.
    pub(crate) const POLL: u32 = 40;
    /// CUSE_INIT: the first request on /dev/cuse.
    pub(crate) const CUSE_INIT: u32 = 4096;
}

crate::wire! {
    /// `struct fuse_in_header`: starts every request; `len` counts it too.
    pub struct InHeader {
        pub len: u32, pub opcode: u32, pub unique: u64, pub nodeid: u64,
        pub uid: u32, pub gid: u32, pub pid: u32, pub total_extlen: u16, pub padding: u16
    }
}

crate::wire! {
    /// `struct fuse_out_header`: starts every reply; `error` is 0 or a negative errno.
    pub struct OutHeader { pub len: u32, pub error: i32, pub unique: u64 }
}

crate::wire! {
    /// `struct cuse_init_in`.
    pub struct CuseInitIn { pub major: u32, pub minor: u32, pub unused: u32, pub flags: u32 }
}

crate::wire! {
    /// `struct cuse_init_out`; the device info strings (`DEVNAME=...`) follow.
    pub struct CuseInitOut {
        pub major: u32, pub minor: u32, pub unused: u32, pub flags: u32,
        pub max_read: u32, pub max_write: u32, pub dev_major: u32, pub dev_minor: u32,
        pub spare: Pad<40>
    }
}

crate::wire! {
    /// `struct fuse_open_in`.
    pub struct OpenIn { pub flags: u32, pub open_flags: u32 }
}

crate::wire! {
    /// `struct fuse_open_out`.
    pub struct OpenOut { pub fh: u64, pub open_flags: u32, pub padding: u32 }
}

crate::wire! {
    /// `struct fuse_read_in`.
    pub struct ReadIn {
        pub fh: u64, pub offset: u64, pub size: u32, pub read_flags: u32,
        pub lock_owner: u64, pub flags: u32, pub padding: u32
    }
}

crate::wire! {
    /// `struct fuse_write_in`; `size` data bytes follow.
    pub struct WriteIn {
        pub fh: u64, pub offset: u64, pub size: u32, pub write_flags: u32,
        pub lock_owner: u64, pub flags: u32, pub padding: u32
    }
}

crate::wire! {
    /// `struct fuse_write_out`.
    pub struct WriteOut { pub size: u32, pub padding: u32 }
}

crate::wire! {
    /// `struct fuse_ioctl_in`; `in_size` bytes of the caller's structure follow.
    pub struct IoctlIn {
        pub fh: u64, pub flags: u32, pub cmd: u32, pub arg: u64, pub in_size: u32, pub out_size: u32
    }
}

crate::wire! {
    /// `struct fuse_ioctl_out`; up to `out_size` bytes for the caller follow.
    pub struct IoctlOut { pub result: i32, pub flags: u32, pub in_iovs: u32, pub out_iovs: u32 }
}

crate::wire! {
    /// `struct fuse_interrupt_in`: the request to interrupt.
    pub struct InterruptIn { pub unique: u64 }
}

/// One request: its header and the bytes after it (up to `len`).
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// The header.
    pub(crate) hdr: InHeader,
    /// The operation's body.
    pub(crate) body: &'a [u8],
}

impl<'a> Request<'a> {
    /// Split one message read from the device; `None` when it is shorter
    /// than a header. A `len` that disagrees with the bytes read is
    /// reported as `Err` with the header, so the request can be refused.
    pub(crate) fn parse(msg: &'a [u8]) -> Option<Result<Request<'a>, InHeader>> {
        let hdr = InHeader::decode_in(msg, ORDER)?;
        let len = hdr.len as usize;
        match msg.get(InHeader::SIZE..len) {
            Some(body) if len == msg.len() => Some(Ok(Request { hdr, body })),
            _ => Some(Err(hdr)),
        }
    }

    /// The operation's fixed part, when the body holds it.
    pub(crate) fn arg<T: Wire>(&self) -> Option<T> {
        T::decode_in(self.body, ORDER)
    }

    /// The bytes after the operation's fixed part `T`.
    pub(crate) fn tail<T: Wire>(&self) -> &'a [u8] {
        self.body.get(T::SIZE..).unwrap_or(&[])
    }
}

/// A successful reply to request `unique` carrying `parts` one after another.
pub(crate) fn reply(unique: u64, parts: &[&[u8]]) -> Vec<u8> {
    let len = OutHeader::SIZE + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    OutHeader {
        len: len as u32,
        error: 0,
        unique,
    }
    .encode_in(&mut out, ORDER);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// An error reply (`errno` positive, sent negated).
pub(crate) fn error(unique: u64, errno: nix::errno::Errno) -> Vec<u8> {
    OutHeader {
        len: OutHeader::SIZE as u32,
        error: -(errno as i32),
        unique,
    }
    .to_bytes_in(ORDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_linux_fuse_h() {
        assert_eq!(InHeader::SIZE, 40);
        assert_eq!(OutHeader::SIZE, 16);
        assert_eq!(CuseInitIn::SIZE, 16);
        assert_eq!(CuseInitOut::SIZE, 72);
        assert_eq!(OpenIn::SIZE, 8);
        assert_eq!(OpenOut::SIZE, 16);
        assert_eq!(ReadIn::SIZE, 40);
        assert_eq!(WriteIn::SIZE, 40);
        assert_eq!(WriteOut::SIZE, 8);
        assert_eq!(IoctlIn::SIZE, 32);
        assert_eq!(IoctlOut::SIZE, 16);
        assert_eq!(InterruptIn::SIZE, 8);
    }

    #[test]
    fn parse_checks_the_length() {
        let mut msg = InHeader {
            len: 44,
            opcode: op::OPEN,
            unique: 7,
            ..Default::default()
        }
        .to_bytes_in(ORDER);
        msg.extend_from_slice(&[1, 2, 3, 4]);
        let r = Request::parse(&msg).unwrap().unwrap();
        assert_eq!(r.hdr.unique, 7);
        assert_eq!(r.body, &[1, 2, 3, 4]);
        assert!(Request::parse(&msg[..43]).unwrap().is_err());
        assert!(Request::parse(&msg[..39]).is_none());
        let e = error(9, nix::errno::Errno::EIO);
        assert_eq!(OutHeader::decode_in(&e, ORDER).unwrap().error, -5);
    }
}
