//! The CUSE request loop against a packet socket pair playing the kernel:
//! crafted FUSE requests in, replies checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::ioctl::{number, PTM_STATE_BLOB_SIZE};
use super::proto::{self, op, InHeader, OutHeader, ORDER};
use super::*;
use crate::ctrl::codes::{rc, CtrlCommand};
use crate::ctrl::messages::*;
use crate::device::{Device, DeviceError, StateBlobKind};
use crate::server::ExitReason;
use crate::tpm_loop::spawn_tpm;
use crate::wire::{Pad, Wire};

/// What the mock TPM did, for the checks.
#[derive(Default)]
struct Log {
    hashed: Vec<u8>,
    blobs: HashMap<u8, Vec<u8>>,
    localities: Vec<u8>,
}

struct Mock {
    running: bool,
    log: Arc<Mutex<Log>>,
    /// Each command waits for one message here first, when set.
    gate: Option<crossbeam_channel::Receiver<()>>,
}

fn kind_id(k: StateBlobKind) -> u8 {
    k as u8
}

fn fail() -> DeviceError {
    DeviceError {
        code: rc::TPM_FAIL,
        msg: "mock".into(),
    }
}

impl Device for Mock {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        if let Some(g) = &self.gate {
            let _ = g.recv();
        }
        self.log.lock().unwrap().localities.push(locality);
        // A success response carrying the command's code and its length.
        let mut r = vec![0x80, 0x01, 0, 0, 0, 16, 0, 0, 0, 0];
        r.extend_from_slice(command.get(6..10).unwrap_or(&[0; 4]));
        r.extend_from_slice(&(command.len() as u16).to_be_bytes());
        r
    }
    fn init(&mut self, _: bool) -> Result<(), DeviceError> {
        self.running = true;
        Ok(())
    }
    fn power_off(&mut self) -> Result<(), DeviceError> {
        self.running = false;
        Ok(())
    }
    fn is_running(&self) -> bool {
        self.running
    }
    fn tpm_established(&mut self) -> Result<bool, DeviceError> {
        Ok(true)
    }
    fn reset_established(&mut self, loc: u8) -> Result<(), DeviceError> {
        if loc >= 3 {
            Ok(())
        } else {
            Err(fail())
        }
    }
    fn hash_start(&mut self) -> Result<(), DeviceError> {
        self.log.lock().unwrap().hashed.clear();
        Ok(())
    }
    fn hash_data(&mut self, data: &[u8]) -> Result<(), DeviceError> {
        self.log.lock().unwrap().hashed.extend_from_slice(data);
        Ok(())
    }
    fn hash_end(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    fn store_volatile(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    fn get_state_blob(&mut self, kind: StateBlobKind) -> Result<Vec<u8>, DeviceError> {
        let log = self.log.lock().unwrap();
        Ok(log
            .blobs
            .get(&kind_id(kind))
            .cloned()
            .unwrap_or_else(|| (0..10_000u32).map(|i| (i % 251) as u8).collect()))
    }
    fn set_state_blob(&mut self, kind: StateBlobKind, data: Vec<u8>) -> Result<(), DeviceError> {
        self.log.lock().unwrap().blobs.insert(kind_id(kind), data);
        Ok(())
    }
    fn lock_storage(&mut self, _: u32) -> Result<(), DeviceError> {
        Ok(())
    }
    fn set_physical_presence(&mut self, _: bool) {}
    fn set_nv_available(&mut self, _: bool) {}
}

/// The kernel's side of the device.
struct Kernel {
    f: File,
    next: u64,
    server: Option<Server>,
    log: Arc<Mutex<Log>>,
}

fn request(opcode: u32, unique: u64, body: &[u8]) -> Vec<u8> {
    let mut m = InHeader {
        len: (InHeader::SIZE + body.len()) as u32,
        opcode,
        unique,
        ..Default::default()
    }
    .to_bytes_in(ORDER);
    m.extend_from_slice(body);
    m
}

fn init_request(minor: u32) -> Vec<u8> {
    request(
        op::CUSE_INIT,
        1,
        &proto::CuseInitIn {
            major: 7,
            minor,
            unused: 0,
            flags: 0,
        }
        .to_bytes_in(ORDER),
    )
}

impl Kernel {
    /// A device served for a mock TPM; `gate` holds every command until released.
    fn start(gate: Option<crossbeam_channel::Receiver<()>>) -> (Kernel, Vec<u8>) {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let mut k = File::from(a);
        k.write_all(&init_request(38)).unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let tpm = spawn_tpm(Mock {
            running: false,
            log: Arc::clone(&log),
            gate,
        })
        .unwrap();
        let cfg = CuseConfig {
            name: "vtpm0".into(),
            major: 10,
            minor: 224,
            allow_set_locality: false,
            reject_locality_4: true,
            buffer_size: 4096,
        };
        let server = serve_cuse_on(File::from(b), cfg, &tpm).unwrap();
        let mut k = Kernel {
            f: k,
            next: 100,
            server: Some(server),
            log,
        };
        let (h, init) = k.recv();
        assert_eq!((h.error, h.unique), (0, 1));
        (k, init)
    }

    fn send(&mut self, opcode: u32, body: &[u8]) -> u64 {
        self.next += 1;
        self.f.write_all(&request(opcode, self.next, body)).unwrap();
        self.next
    }

    /// The next reply (the test fails rather than hangs after a minute).
    fn recv(&mut self) -> (OutHeader, Vec<u8>) {
        let mut fds = [PollFd::new(self.f.as_fd(), PollFlags::POLLIN)];
        let n = poll(&mut fds, PollTimeout::from(60_000u16)).unwrap();
        assert_eq!(n, 1, "no reply from the CUSE loop");
        let mut buf = vec![0u8; 1 << 17];
        let n = self.f.read(&mut buf).unwrap();
        let h = OutHeader::decode_in(&buf[..n], ORDER).expect("reply header");
        assert_eq!(h.len as usize, n, "reply length field");
        (h, buf[OutHeader::SIZE..n].to_vec())
    }

    /// Send and wait for the reply to this very request.
    fn call(&mut self, opcode: u32, body: &[u8]) -> (i32, Vec<u8>) {
        let u = self.send(opcode, body);
        let (h, data) = self.recv();
        assert_eq!(h.unique, u);
        (h.error, data)
    }

    fn open(&mut self) -> i32 {
        self.call(op::OPEN, &proto::OpenIn::default().to_bytes_in(ORDER))
            .0
    }

    fn write(&mut self, data: &[u8]) -> (i32, Vec<u8>) {
        let mut body = proto::WriteIn {
            size: data.len() as u32,
            ..Default::default()
        }
        .to_bytes_in(ORDER);
        body.extend_from_slice(data);
        self.call(op::WRITE, &body)
    }

    fn read_body(size: u32) -> Vec<u8> {
        proto::ReadIn {
            size,
            ..Default::default()
        }
        .to_bytes_in(ORDER)
    }

    fn read(&mut self, size: u32) -> (i32, Vec<u8>) {
        self.call(op::READ, &Self::read_body(size))
    }

    /// An ioctl as the kernel forwards a restricted one: `_IOC_SIZE` bytes
    /// in for a write direction (the caller's structure, zero-padded), as
    /// many out for a read direction.
    fn ioctl_raw(&mut self, num: u32, input: &[u8]) -> (i32, Vec<u8>) {
        let size = ((num >> 16) & 0x3fff) as usize;
        let mut data = input.to_vec();
        let in_size = if num & (1 << 30) != 0 {
            data.resize(size, 0);
            size
        } else {
            data.clear();
            0
        };
        let mut body = proto::IoctlIn {
            cmd: num,
            in_size: in_size as u32,
            out_size: if num & (2 << 30) != 0 { size as u32 } else { 0 },
            ..Default::default()
        }
        .to_bytes_in(ORDER);
        body.extend_from_slice(&data);
        let (e, out) = self.call(op::IOCTL, &body);
        if e == 0 {
            let o = proto::IoctlOut::decode_in(&out, ORDER).unwrap();
            assert_eq!(o.result, 0);
            assert!(out.len() - proto::IoctlOut::SIZE <= size);
            (e, out[proto::IoctlOut::SIZE..].to_vec())
        } else {
            (e, out)
        }
    }

    fn ioctl(&mut self, cmd: CtrlCommand, input: &[u8]) -> Vec<u8> {
        let (e, out) = self.ioctl_raw(number(cmd), input);
        assert_eq!(e, 0, "{cmd:?}");
        out
    }

    fn result(&mut self, cmd: CtrlCommand, input: &[u8]) -> u32 {
        let out = self.ioctl(cmd, input);
        ResultResp::decode_in(&out, ORDER).unwrap().result
    }

    /// PTM_INIT with `init_flags`: its result.
    fn init(&mut self, init_flags: u32) -> u32 {
        self.result(CtrlCommand::Init, &native(InitReq { init_flags }))
    }

    /// PTM_SET_BUFFERSIZE of `buffersize` (0: only ask): the raw reply.
    fn set_buffer_size(&mut self, buffersize: u32) -> Vec<u8> {
        self.ioctl(
            CtrlCommand::SetBufferSize,
            &native(BufferSizeReq { buffersize }),
        )
    }

    /// The volatile state blob the mock TPM was last given.
    fn volatile_blob(&self) -> Option<Vec<u8>> {
        let log = self.log.lock().unwrap();
        log.blobs.get(&(StateBlobKind::Volatile as u8)).cloned()
    }
}

fn native<T: Wire>(t: T) -> Vec<u8> {
    t.to_bytes_in(ORDER)
}

const GET_RANDOM: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8];

#[test]
fn init_announces_the_device() {
    let (_k, init) = Kernel::start(None);
    let out = proto::CuseInitOut::decode_in(&init, ORDER).unwrap();
    assert_eq!((out.major, out.minor), (7, proto::FUSE_MINOR));
    assert_eq!((out.dev_major, out.dev_minor), (10, 224));
    assert!(out.max_read >= 4096 && out.max_write >= 4096);
    assert_eq!(&init[proto::CuseInitOut::SIZE..], b"DEVNAME=vtpm0\0");
}

#[test]
fn a_written_command_is_answered_on_the_next_read() {
    let (mut k, _) = Kernel::start(None);
    assert_eq!(k.open(), 0);
    // Before PTM_INIT every command fails (as swtpm's device).
    let (e, w) = k.write(&GET_RANDOM);
    assert_eq!(e, 0);
    assert_eq!(proto::WriteOut::decode_in(&w, ORDER).unwrap().size, 12);
    let (_, r) = k.read(4096);
    assert_eq!(r.len(), 10);
    assert_eq!(&r[6..10], &0x101u32.to_be_bytes());
    assert_eq!(k.init(1), 0);
    assert_eq!(k.result(CtrlCommand::SetLocality, &[2]), 0);
    k.write(&GET_RANDOM);
    // Partial reads continue where the last one stopped.
    let (_, head) = k.read(10);
    let (_, tail) = k.read(4096);
    assert_eq!(head.len() + tail.len(), 16);
    assert_eq!(&tail[..4], &0x17bu32.to_be_bytes());
    assert_eq!(k.read(4096).1.len(), 0);
    assert_eq!(k.log.lock().unwrap().localities, vec![2]);
    // One opener at a time.
    assert_eq!(k.open(), -(Errno::EBUSY as i32));
    let (e, _) = k.call(op::RELEASE, &[0u8; 24]);
    assert_eq!(e, 0);
    assert_eq!(k.open(), 0);
    // A command bigger than the buffer is answered TPM_RC_COMMAND_SIZE.
    let mut big = vec![0u8; 5000];
    big[..6].copy_from_slice(&[0x80, 0x01, 0, 0, 0x13, 0x88]);
    k.write(&big);
    let (_, r) = k.read(4096);
    assert_eq!(&r[6..10], &0x142u32.to_be_bytes());
}

#[test]
fn a_read_waits_for_the_command_and_can_be_interrupted() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (mut k, _) = Kernel::start(Some(rx));
    k.open();
    assert_eq!(k.init(0), 0);
    k.write(&GET_RANDOM);
    let parked = k.send(op::READ, &Kernel::read_body(4096));
    // Cancelling does not wait for the command; the read stays parked.
    assert_eq!(k.result(CtrlCommand::CancelTpmCmd, &[]), 0);
    // A second command while one runs is refused.
    assert_eq!(k.write(&GET_RANDOM).0, -(Errno::EBUSY as i32));
    tx.send(()).unwrap();
    let (h, r) = k.recv();
    assert_eq!((h.unique, h.error, r.len()), (parked, 0, 16));
    // Interrupted: the parked read answers EINTR, the response stays for the next.
    k.write(&GET_RANDOM);
    let parked = k.send(op::READ, &Kernel::read_body(4096));
    k.ioctl(CtrlCommand::GetCapability, &[]);
    k.send(
        op::INTERRUPT,
        &native(proto::InterruptIn { unique: parked }),
    );
    let (h, _) = k.recv();
    assert_eq!((h.unique, h.error), (parked, -(Errno::EINTR as i32)));
    tx.send(()).unwrap();
    let (e, r) = k.read(4096);
    assert_eq!((e, r.len()), (0, 16));
}

#[test]
fn every_ptm_ioctl() {
    let (mut k, _) = Kernel::start(None);
    k.open();
    let caps = k.ioctl(CtrlCommand::GetCapability, &[]);
    assert_eq!(
        CapabilityResp::decode_in(&caps, ORDER).unwrap().caps,
        0x1_6fff
    );
    // Not running: these are refused with TPM_BAD_ORDINAL.
    let est = k.ioctl(CtrlCommand::GetTpmEstablished, &[]);
    assert_eq!(est.len(), 8);
    assert_eq!(
        EstablishedResp::decode_in(&est, ORDER).unwrap().result,
        rc::TPM_BAD_ORDINAL
    );
    assert_eq!(k.result(CtrlCommand::HashStart, &[]), rc::TPM_BAD_ORDINAL);
    assert_eq!(k.init(0), 0);
    let est = k.ioctl(CtrlCommand::GetTpmEstablished, &[]);
    assert_eq!(
        EstablishedResp::decode_in(&est, ORDER).unwrap(),
        EstablishedResp {
            result: 0,
            bit: 1,
            pad: Pad
        }
    );
    // Locality 4 is refused (reject-locality-4), 5 and above never exist;
    // the mock resets the established bit from locality 3 only.
    for (cmd, locality, want) in [
        (CtrlCommand::SetLocality, 4, rc::TPM_BAD_LOCALITY),
        (CtrlCommand::SetLocality, 5, rc::TPM_BAD_LOCALITY),
        (CtrlCommand::SetLocality, 3, 0),
        (CtrlCommand::ResetTpmEstablished, 3, 0),
        (CtrlCommand::ResetTpmEstablished, 1, rc::TPM_FAIL),
        (CtrlCommand::ResetTpmEstablished, 7, rc::TPM_BAD_LOCALITY),
    ] {
        assert_eq!(k.result(cmd, &[locality]), want, "{cmd:?} {locality}");
    }
    assert_eq!(k.result(CtrlCommand::HashStart, &[]), 0);
    let mut hd = native(HashDataReq { length: 5 });
    hd.extend_from_slice(b"hello");
    assert_eq!(k.result(CtrlCommand::HashData, &hd), 0);
    assert_eq!(
        k.result(CtrlCommand::HashData, &native(HashDataReq { length: 5000 })),
        rc::TPM_FAIL
    );
    assert_eq!(k.result(CtrlCommand::HashEnd, &[]), 0);
    assert_eq!(k.log.lock().unwrap().hashed, b"hello");
    assert_eq!(k.result(CtrlCommand::CancelTpmCmd, &[]), 0);
    assert_eq!(k.result(CtrlCommand::StoreVolatile, &[]), 0);
    let cfg = k.ioctl(CtrlCommand::GetConfig, &[]);
    assert_eq!(
        ConfigResp::decode_in(&cfg, ORDER).unwrap(),
        ConfigResp {
            result: 0,
            flags: 0
        }
    );
    let bs = k.set_buffer_size(0);
    let bs = BufferSizeResp::decode_in(&bs, ORDER).unwrap();
    assert_eq!((bs.result, bs.buffersize), (0, 4096));
    // Setting a size needs a stopped TPM.
    let r = k.set_buffer_size(3000);
    assert_eq!(
        ResultResp::decode_in(&r, ORDER).unwrap().result,
        rc::TPM_BAD_ORDINAL
    );
    let info = k.ioctl(
        CtrlCommand::GetInfo,
        &native(InfoReq {
            flags: 3,
            offset: 0,
            pad: 0,
        }),
    );
    let hdr = InfoResp::decode_in(&info, ORDER).unwrap();
    assert_eq!(hdr.result, 0);
    let text = &info[InfoResp::SIZE..InfoResp::SIZE + hdr.length as usize];
    assert!(text.starts_with(b"{\"TPMSpecification\""));
    assert_eq!(text.last(), Some(&0));
    assert_eq!(
        k.result(
            CtrlCommand::LockStorage,
            &native(LockStorageReq { retries: 1 })
        ),
        0
    );
    // No descriptor comes with an ioctl.
    assert_eq!(k.result(CtrlCommand::SetDataFd, &[]), rc::TPM_BAD_PARAMETER);
    assert_eq!(k.result(CtrlCommand::Stop, &[]), 0);
    assert_eq!(k.result(CtrlCommand::HashEnd, &[]), rc::TPM_BAD_ORDINAL);
    let bs = k.set_buffer_size(3000);
    assert_eq!(
        BufferSizeResp::decode_in(&bs, ORDER).unwrap().buffersize,
        3000
    );
    // PTM_SHUTDOWN answers, then the server ends.
    assert_eq!(k.result(CtrlCommand::Shutdown, &[]), 0);
    assert_eq!(k.server.take().unwrap().wait(), ExitReason::CtrlShutdown);
}

fn get_state(offset: u32) -> Vec<u8> {
    native(GetStateReq {
        state_flags: 1,
        blob_type: 1,
        offset,
    })
}

#[test]
fn state_blobs_in_pieces_by_ioctl_read_and_write() {
    let (mut k, _) = Kernel::start(None);
    k.open();
    let whole: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(k.ioctl(CtrlCommand::GetStateBlob, &get_state(0)).len(), 16);
    k.init(0);
    // The first piece by ioctl, the rest by read().
    let r = k.ioctl(CtrlCommand::GetStateBlob, &get_state(0));
    let h = GetStateResp::decode_in(&r, ORDER).unwrap();
    assert_eq!((h.result, h.totlength, h.length), (0, 10_000, 3072));
    let mut got = r[16..].to_vec();
    loop {
        let (e, d) = k.read(4096);
        assert_eq!(e, 0);
        got.extend_from_slice(&d);
        if d.len() < 4096 {
            break;
        }
    }
    assert_eq!(got, whole);
    // Back to commands: nothing to read.
    assert_eq!(k.read(4096).1.len(), 0);
    // Or all by ioctl with offsets.
    let mut got = Vec::new();
    while got.len() < whole.len() {
        let r = k.ioctl(CtrlCommand::GetStateBlob, &get_state(got.len() as u32));
        let h = GetStateResp::decode_in(&r, ORDER).unwrap();
        got.extend_from_slice(&r[16..16 + h.length as usize]);
    }
    assert_eq!(got, whole);
    // A blob is only taken while the TPM is stopped.
    let set = |len: u32, data: &[u8]| {
        let mut v = native(SetStateReq {
            state_flags: 0,
            blob_type: 2,
            length: len,
        });
        v.extend_from_slice(data);
        v
    };
    assert_eq!(
        k.result(CtrlCommand::SetStateBlob, &set(3, b"abc")),
        rc::TPM_BAD_ORDINAL
    );
    k.ioctl(CtrlCommand::Stop, &[]);
    // By ioctl: full pieces, then a shorter last one.
    let blob: Vec<u8> = (0..7000u32).map(|i| (i * 7) as u8).collect();
    for piece in blob.chunks(PTM_STATE_BLOB_SIZE) {
        assert_eq!(
            k.result(CtrlCommand::SetStateBlob, &set(piece.len() as u32, piece)),
            0
        );
    }
    assert_eq!(k.volatile_blob(), Some(blob));
    // By write(): an empty first piece, the data, an empty closing piece.
    assert_eq!(k.result(CtrlCommand::SetStateBlob, &set(0, &[])), 0);
    let other: Vec<u8> = (0..5000u32).map(|i| (i * 3) as u8).collect();
    let (e, w) = k.write(&other[..4000]);
    assert_eq!(
        (e, proto::WriteOut::decode_in(&w, ORDER).unwrap().size),
        (0, 4000)
    );
    k.write(&other[4000..]);
    assert_eq!(k.result(CtrlCommand::SetStateBlob, &set(0, &[])), 0);
    assert_eq!(k.volatile_blob(), Some(other));
    // Malformed: a piece longer than the buffer, an unknown type, encrypted.
    assert_eq!(
        k.result(CtrlCommand::SetStateBlob, &set(4000, &[])),
        rc::TPM_BAD_PARAMETER
    );
    let mut bad = set(3, b"xyz");
    bad[4..8].copy_from_slice(&9u32.to_ne_bytes());
    assert_eq!(
        k.result(CtrlCommand::SetStateBlob, &bad),
        rc::TPM_BAD_PARAMETER
    );
    let mut enc = set(3, b"xyz");
    enc[..4].copy_from_slice(&2u32.to_ne_bytes());
    assert_eq!(k.result(CtrlCommand::SetStateBlob, &enc), 13);
}

#[test]
fn malformed_requests_are_refused() {
    let (mut k, _) = Kernel::start(None);
    let einval = -(Errno::EINVAL as i32);
    // Unknown ioctl numbers, and PTM numbers with another size.
    assert_eq!(k.ioctl_raw(0x5401, &[]).0, einval);
    assert_eq!(
        k.ioctl_raw(number(CtrlCommand::Init) + (1 << 16), &[]).0,
        einval
    );
    // An ioctl whose in_size exceeds what came with it.
    let mut body = native(proto::IoctlIn {
        cmd: number(CtrlCommand::Init),
        in_size: 4,
        out_size: 4,
        ..Default::default()
    });
    body.extend_from_slice(&[1]);
    assert_eq!(k.call(op::IOCTL, &body).0, einval);
    // Short structures: a short ioctl body, a short INIT.
    assert_eq!(k.call(op::IOCTL, &[0u8; 8]).0, einval);
    let mut short = native(proto::IoctlIn {
        cmd: number(CtrlCommand::Init),
        in_size: 2,
        out_size: 4,
        ..Default::default()
    });
    short.extend_from_slice(&[1, 0]);
    let (e, out) = k.call(op::IOCTL, &short);
    assert_eq!(e, 0);
    assert_eq!(
        ResultResp::decode_in(&out[16..], ORDER).unwrap().result,
        rc::TPM_BAD_PARAMETER
    );
    // Short READ / WRITE bodies, a WRITE announcing more than it holds.
    assert_eq!(k.call(op::READ, &[0u8; 10]).0, einval);
    assert_eq!(k.call(op::WRITE, &[0u8; 10]).0, einval);
    let mut w = native(proto::WriteIn {
        size: 100,
        ..Default::default()
    });
    w.extend_from_slice(&[0u8; 10]);
    assert_eq!(k.call(op::WRITE, &w).0, einval);
    // A header whose length disagrees with the message.
    let mut m = request(op::OPEN, 55, &[0u8; 8]);
    m[0] = 200;
    k.f.write_all(&m).unwrap();
    let (h, _) = k.recv();
    assert_eq!((h.unique, h.error), (55, einval));
    // Not implemented: POLL, unknown opcodes; a second CUSE_INIT.
    assert_eq!(k.call(op::POLL, &[0u8; 24]).0, -(Errno::ENOSYS as i32));
    assert_eq!(k.call(9999, &[]).0, -(Errno::ENOSYS as i32));
    assert_eq!(k.call(op::CUSE_INIT, &init_request(31)[40..]).0, einval);
    // Still serving.
    k.ioctl(CtrlCommand::GetCapability, &[]);
}

/// xorshift64*, so that a failure can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn garbage_requests_do_not_stop_the_loop() {
    let (mut k, _) = Kernel::start(None);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opcodes = [
        op::OPEN,
        op::READ,
        op::WRITE,
        op::RELEASE,
        op::FLUSH,
        op::INTERRUPT,
        op::IOCTL,
        op::POLL,
        op::CUSE_INIT,
        77,
    ];
    let numbers: Vec<u32> = super::ioctl::TABLE
        .iter()
        .filter(|(_, c)| *c != CtrlCommand::Shutdown)
        .map(|(n, _)| *n)
        .collect();
    for i in 0..3000u64 {
        let len = (rng.next() % 200) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let opcode = opcodes[(rng.next() % opcodes.len() as u64) as usize];
        if opcode == op::IOCTL && body.len() >= 32 && rng.next().is_multiple_of(2) {
            let n = numbers[(rng.next() % numbers.len() as u64) as usize];
            body[12..16].copy_from_slice(&n.to_ne_bytes());
        }
        let mut msg = request(opcode, 1_000_000 + i, &body);
        if rng.next().is_multiple_of(4) {
            // Raw bytes, header included.
            for b in msg.iter_mut().skip(4) {
                *b = rng.next() as u8;
            }
            if u32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]) == op::DESTROY {
                continue;
            }
        }
        k.f.write_all(&msg).unwrap();
        // A marker request; every reply before it belongs to the garbage.
        let marker = k.send(op::IOCTL, &{
            let mut b = native(proto::IoctlIn {
                cmd: number(CtrlCommand::GetCapability),
                out_size: 8,
                ..Default::default()
            });
            b.truncate(32);
            b
        });
        loop {
            let (h, _) = k.recv();
            if h.unique == marker {
                assert_eq!(h.error, 0);
                break;
            }
        }
    }
}
