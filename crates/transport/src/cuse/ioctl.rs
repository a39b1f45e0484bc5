//! The control channel as ioctls on the CUSE device: swtpm's `PTM_*`
//! numbers (tpm_ioctl.h), each carrying one control command whose request
//! and response are the `ptm_*` unions in the host's byte order. What the
//! commands do is the socket control channel's [`handler`]; this module
//! maps the numbers and carries the state blobs, which cross the ioctl in
//! fixed-size pieces: GET_STATEBLOB answers [`PTM_STATE_BLOB_SIZE`] bytes
//! and the rest is read from the device (or asked for with a later offset),
//! SET_STATEBLOB takes pieces until one is not full, or a first empty piece
//! followed by `write()`s and a closing ioctl.
//!
//! The device runs with restricted ioctls: the kernel copies `_IOC_SIZE`
//! bytes in (for `_IOW`) and out (for `_IOR`) as the number says, so no
//! user memory is touched here. The numbers use the `_IOC` layout of x86,
//! arm and most other architectures (direction in bits 30-31, size in 16-29).

use crate::ctrl::codes::{
    rc, CtrlCommand, PTM_CAP_SEND_COMMAND_HEADER, PTM_CAP_SET_DATAFD, VTPM_CAPS,
};
use crate::ctrl::handler::{self, Dialect, Handled, Then};
use crate::ctrl::messages::{GetStateReq, GetStateResp, SetStateReq};
use crate::swtpm_state::SwtpmState;
use crate::wire::{Endian, Wire};

/// Bytes of a state blob in one GET/SET_STATEBLOB ioctl (`PTM_STATE_BLOB_SIZE`).
pub const PTM_STATE_BLOB_SIZE: usize = 3 * 1024;

/// What GET_CAPABILITY answers on the device: every command but SET_DATAFD
/// (no descriptor crosses an ioctl) and the socket-only command header.
pub const CUSE_CAPS: u64 = VTPM_CAPS & !(PTM_CAP_SET_DATAFD | PTM_CAP_SEND_COMMAND_HEADER);

/// The ioctl carrier of the control commands.
pub(crate) const IOCTL: Dialect = Dialect {
    order: Endian::Native,
    caps: CUSE_CAPS,
    blob_chunk: Some(PTM_STATE_BLOB_SIZE),
};

const IOC_READ: u32 = 2;
const IOC_WRITE: u32 = 1;

/// `_IOC(dir, 'P', nr, size)`.
const fn ioc(dir: u32, nr: u32, size: u32) -> u32 {
    (dir << 30) | (size << 16) | ((b'P' as u32) << 8) | nr
}
const fn ior(nr: u32, size: u32) -> u32 {
    ioc(IOC_READ, nr, size)
}
const fn iowr(nr: u32, size: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, nr, size)
}

/// Sizes of the `ptm_*` unions on a 64-bit host.
mod size {
    pub(super) const RES: u32 = 4;
    pub(super) const CAP: u32 = 8;
    pub(super) const EST: u32 = 8;
    pub(super) const HDATA: u32 = 4 + 4096;
    pub(super) const GETSTATE: u32 = 16 + super::PTM_STATE_BLOB_SIZE as u32;
    pub(super) const SETSTATE: u32 = 12 + super::PTM_STATE_BLOB_SIZE as u32;
    pub(super) const GETCONFIG: u32 = 8;
    pub(super) const BUFFERSIZE: u32 = 16;
    pub(super) const GETINFO: u32 = 16 + 3 * 1024;
}

/// Each PTM_* ioctl number and the control command it carries.
pub const TABLE: [(u32, CtrlCommand); 19] = [
    (ior(0, size::CAP), CtrlCommand::GetCapability),
    (iowr(1, size::RES), CtrlCommand::Init),
    (ior(2, size::RES), CtrlCommand::Shutdown),
    (ior(3, size::EST), CtrlCommand::GetTpmEstablished),
    (iowr(4, size::RES), CtrlCommand::SetLocality),
    (ior(5, size::RES), CtrlCommand::HashStart),
    (iowr(6, size::HDATA), CtrlCommand::HashData),
    (ior(7, size::RES), CtrlCommand::HashEnd),
    (ior(8, size::RES), CtrlCommand::CancelTpmCmd),
    (ior(9, size::RES), CtrlCommand::StoreVolatile),
    (iowr(10, size::RES), CtrlCommand::ResetTpmEstablished),
    (iowr(11, size::GETSTATE), CtrlCommand::GetStateBlob),
    (iowr(12, size::SETSTATE), CtrlCommand::SetStateBlob),
    (ior(13, size::RES), CtrlCommand::Stop),
    (ior(14, size::GETCONFIG), CtrlCommand::GetConfig),
    (ior(15, size::RES), CtrlCommand::SetDataFd),
    (iowr(16, size::BUFFERSIZE), CtrlCommand::SetBufferSize),
    (iowr(17, size::GETINFO), CtrlCommand::GetInfo),
    (iowr(18, size::RES), CtrlCommand::LockStorage),
];

/// The command an ioctl number carries.
pub fn command(number: u32) -> Option<CtrlCommand> {
    TABLE.iter().find(|(n, _)| *n == number).map(|(_, c)| *c)
}

/// The ioctl number of a command.
pub fn number(cmd: CtrlCommand) -> u32 {
    TABLE.iter().find(|(_, c)| *c == cmd).map_or(0, |(n, _)| *n)
}

/// What the device's read() and write() carry besides TPM commands.
#[derive(Debug, Default)]
pub(crate) enum Transfer {
    /// TPM commands and responses.
    #[default]
    Commands,
    /// The rest of the state blob GET_STATEBLOB began, from this offset of
    /// the blob being read (`SwtpmState::blob_cache`).
    GetBlob {
        /// Where the next read continues.
        offset: usize,
    },
    /// A state blob arriving in pieces (ioctls or writes).
    SetBlob {
        /// `state_flags` of the first piece.
        state_flags: u32,
        /// `type` of the first piece.
        blob_type: u32,
        /// What has arrived.
        data: Vec<u8>,
    },
}

/// Handle ioctl `number` with the caller's structure `input`; `None` for a
/// number that is not a PTM_* ioctl. `transfer` follows the state blob moves.
pub(crate) fn ioctl(
    st: &SwtpmState,
    transfer: &mut Transfer,
    number: u32,
    input: &[u8],
) -> Option<Handled> {
    let cmd = command(number)?;
    Some(match cmd {
        CtrlCommand::GetStateBlob => get_state_blob(st, transfer, input),
        CtrlCommand::SetStateBlob => set_state_blob(st, transfer, input),
        // SET_DATAFD: no descriptor comes with an ioctl, so the handler
        // refuses it; nothing else carries one either.
        _ => handler::handle(st, &IOCTL, cmd, input, None),
    })
}

fn reply(code: u32) -> Handled {
    Handled {
        reply: handler::result_reply(&IOCTL, code),
        then: Then::Nothing,
    }
}

/// GET_STATEBLOB: the first piece; a longer blob continues through read().
fn get_state_blob(st: &SwtpmState, transfer: &mut Transfer, input: &[u8]) -> Handled {
    let h = handler::handle(st, &IOCTL, CtrlCommand::GetStateBlob, input, None);
    let offset = GetStateReq::decode_in(input, IOCTL.order).map_or(0, |r| r.offset as usize);
    *transfer = match GetStateResp::decode_in(&h.reply, IOCTL.order) {
        Some(r) if r.result == 0 && offset + (r.length as usize) < r.totlength as usize => {
            Transfer::GetBlob {
                offset: offset + r.length as usize,
            }
        }
        _ => Transfer::Commands,
    };
    h
}

/// SET_STATEBLOB: one piece of a blob; a piece shorter than the buffer is
/// the last, and the whole blob then goes to the handler.
fn set_state_blob(st: &SwtpmState, transfer: &mut Transfer, input: &[u8]) -> Handled {
    if let Some(r) = handler::refuse(st, &IOCTL, CtrlCommand::SetStateBlob) {
        *transfer = Transfer::Commands;
        return Handled {
            reply: r,
            then: Then::Nothing,
        };
    }
    let Some(req) = SetStateReq::decode_in(input, IOCTL.order) else {
        *transfer = Transfer::Commands;
        return reply(rc::TPM_BAD_PARAMETER);
    };
    let piece = match input.get(SetStateReq::SIZE..SetStateReq::SIZE + req.length as usize) {
        Some(p) if p.len() <= PTM_STATE_BLOB_SIZE => p,
        _ => {
            *transfer = Transfer::Commands;
            return reply(rc::TPM_BAD_PARAMETER);
        }
    };
    // The first piece's flags hold for the whole blob.
    let (state_flags, mut data) = match std::mem::take(transfer) {
        Transfer::SetBlob {
            state_flags,
            blob_type,
            data,
        } if blob_type == req.blob_type => (state_flags, data),
        _ if piece.is_empty() => {
            // An empty first piece: the blob follows through write().
            *transfer = Transfer::SetBlob {
                state_flags: req.state_flags,
                blob_type: req.blob_type,
                data: Vec::new(),
            };
            return reply(rc::TPM_SUCCESS);
        }
        _ => (req.state_flags, Vec::new()),
    };
    if data.len() + piece.len() > handler::MAX_STATE_BLOB as usize {
        return reply(rc::TPM_SIZE);
    }
    data.extend_from_slice(piece);
    if piece.len() == PTM_STATE_BLOB_SIZE {
        *transfer = Transfer::SetBlob {
            state_flags,
            blob_type: req.blob_type,
            data,
        };
        return reply(rc::TPM_SUCCESS);
    }
    let mut whole = SetStateReq {
        state_flags,
        blob_type: req.blob_type,
        length: data.len() as u32,
    }
    .to_bytes_in(IOCTL.order);
    whole.extend_from_slice(&data);
    handler::handle(st, &IOCTL, CtrlCommand::SetStateBlob, &whole, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_what_swtpm_ioctl_sends() {
        // As strace shows them for swtpm_ioctl 0.7.1 -c, -i, --save, --load, --info.
        assert_eq!(number(CtrlCommand::GetCapability), 0x8008_5000);
        assert_eq!(number(CtrlCommand::Init), 0xc004_5001);
        assert_eq!(number(CtrlCommand::Shutdown), 0x8004_5002);
        assert_eq!(number(CtrlCommand::SetLocality), 0xc004_5004);
        assert_eq!(number(CtrlCommand::GetStateBlob), 0xcc10_500b);
        assert_eq!(number(CtrlCommand::SetStateBlob), 0xcc0c_500c);
        assert_eq!(number(CtrlCommand::SetBufferSize), 0xc010_5010);
        assert_eq!(number(CtrlCommand::GetInfo), 0xcc10_5011);
        for (n, c) in TABLE {
            assert_eq!(command(n), Some(c));
            assert_eq!(n & 0xff, c as u32 - 1);
        }
        assert_eq!(command(0x5413), None);
        assert_eq!(CUSE_CAPS, 0x1_6fff);
    }
}
