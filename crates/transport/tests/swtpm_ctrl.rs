//! The swtpm control channel: every command's request/response layout, error
//! codes, state blobs, descriptor passing, malformed input.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use transport::fdpass::send_with_fd;
use transport::{serve_swtpm, Endpoint, ExitReason, Server, StateBlobKind, SwtpmConfig};

const TPM_BAD_PARAMETER: u32 = 3;
const TPM_BAD_ORDINAL: u32 = 10;
const TPM_IOERROR: u32 = 31;
const TPM_BAD_LOCALITY: u32 = 61;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A server with TCP data and control channels; returns (server, data addr, ctrl addr).
fn start(
    dev: Arc<MockDevice>,
    tweak: impl FnOnce(&mut SwtpmConfig),
) -> (Server, SocketAddr, SocketAddr) {
    let mut cfg = SwtpmConfig {
        data: Some(Endpoint::Tcp(localhost())),
        ctrl: Some(Endpoint::Tcp(localhost())),
        ..Default::default()
    };
    tweak(&mut cfg);
    let srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
    let a = srv.local_addrs();
    assert_eq!(a.len(), 2);
    (srv, a[0], a[1])
}

fn result_of(r: &[u8]) -> u32 {
    u32_at(r, 0)
}

#[test]
fn get_capability_reports_every_command() {
    let dev = MockDevice::new(false);
    let (_srv, _, c) = start(dev, |_| {});
    let mut s = connect(c);
    let r = ctrl(&mut s, 1, &[], 8);
    assert_eq!(u64::from_be_bytes(r.try_into().unwrap()), 0x1_ffff);
}

#[test]
fn init_layout_flags_and_errors() {
    let dev = MockDevice::new(false);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    assert_eq!(result_of(&ctrl(&mut s, 2, &be32(1), 4)), 0);
    assert_eq!(ctrl(&mut s, 2, &be32(0), 4), [0, 0, 0, 0]);
    assert_eq!(
        dev.calls(),
        [
            Call::Init {
                delete_volatile: true
            },
            Call::Init {
                delete_volatile: false
            }
        ]
    );
    // swtpm requires exactly the 4-byte ptm_init.
    assert_eq!(
        result_of(&ctrl(&mut s, 2, &[0, 0, 0, 0, 0], 4)),
        TPM_BAD_PARAMETER
    );
    *dev.fail.lock().unwrap() = Some(9);
    assert_eq!(result_of(&ctrl(&mut s, 2, &be32(0), 4)), 9);
}

#[test]
fn shutdown_powers_off_and_ends_the_server() {
    let dev = MockDevice::new(true);
    let (srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 3, &[], 4), [0, 0, 0, 0]);
    assert_eq!(srv.wait(), ExitReason::CtrlShutdown);
    assert_eq!(dev.calls(), [Call::PowerOff]);
    assert!(closed(&mut s));
}

#[test]
fn shutdown_with_a_body_is_bad_parameter() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    assert_eq!(result_of(&ctrl(&mut s, 3, &[0], 4)), TPM_BAD_PARAMETER);
    assert!(dev.calls().is_empty());
}

#[test]
fn get_tpmestablished_is_8_bytes_always() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 4, &[], 8), [0, 0, 0, 0, 1, 0, 0, 0]);
    dev.established
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(ctrl(&mut s, 4, &[], 8), [0, 0, 0, 0, 0, 0, 0, 0]);
    dev.running
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(ctrl(&mut s, 4, &[], 8), [0, 0, 0, 10, 0, 0, 0, 0]);
}

#[test]
fn set_locality_applies_to_data_channel() {
    let dev = MockDevice::new(true);
    let (_srv, d, c) = start(dev.clone(), |cfg| cfg.reject_locality_4 = true);
    let mut s = connect(c);
    // tcti-swtpm sends one byte, QEMU the 4-byte union: both work.
    assert_eq!(ctrl(&mut s, 5, &[3], 4), [0, 0, 0, 0]);
    let mut data = connect(d);
    data.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut data)[10], 3);
    assert_eq!(ctrl(&mut s, 5, &[2, 0, 0, 0], 4), [0, 0, 0, 0]);
    data.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut data)[10], 2);
    assert_eq!(result_of(&ctrl(&mut s, 5, &[4], 4)), TPM_BAD_LOCALITY);
    assert_eq!(result_of(&ctrl(&mut s, 5, &[5], 4)), TPM_BAD_LOCALITY);
}

#[test]
fn locality_4_allowed_without_reject_option() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev, |_| {});
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 5, &[4], 4), [0, 0, 0, 0]);
}

#[test]
fn hashing_streams_data() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 6, &[], 4), [0, 0, 0, 0]);
    // Header plus part of the data, then the rest in a second write.
    let mut m = be32(7).to_vec();
    m.extend(be32(6000));
    m.extend(vec![0xaa; 1000]);
    s.write_all(&m).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&[0xbb; 5000]).unwrap();
    assert_eq!(read_n(&mut s, 4), [0, 0, 0, 0]);
    assert_eq!(ctrl(&mut s, 8, &[], 4), [0, 0, 0, 0]);
    let calls = dev.calls();
    assert_eq!(calls.first(), Some(&Call::HashStart));
    assert_eq!(calls.last(), Some(&Call::HashEnd));
    let hashed: Vec<u8> = calls
        .iter()
        .filter_map(|c| {
            if let Call::HashData(d) = c {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    let mut want = vec![0xaa; 1000];
    want.extend(vec![0xbb; 5000]);
    assert_eq!(hashed, want);
}

#[test]
fn hash_data_while_stopped_is_refused_and_stream_stays_in_step() {
    let dev = MockDevice::new(false);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    let mut m = be32(7).to_vec();
    m.extend(be32(3000));
    s.write_all(&m).unwrap();
    s.write_all(&[1; 3000]).unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), TPM_BAD_ORDINAL);
    // The 3000 bytes were swallowed: the next command is understood.
    assert_eq!(ctrl(&mut s, 15, &[], 8), [0; 8]);
    assert!(dev.calls().is_empty());
}

#[test]
fn cancel_store_volatile_reset_established_lock_storage() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 9, &[], 4), [0; 4]);
    assert_eq!(ctrl(&mut s, 10, &[], 4), [0; 4]);
    assert_eq!(ctrl(&mut s, 11, &[3, 0, 0, 0], 4), [0; 4]);
    assert_eq!(result_of(&ctrl(&mut s, 11, &[7], 4)), TPM_BAD_LOCALITY);
    assert_eq!(ctrl(&mut s, 19, &be32(300), 4), [0; 4]);
    assert_eq!(
        dev.calls(),
        [
            Call::Cancel,
            Call::StoreVolatile,
            Call::ResetEstablished(3),
            Call::LockStorage(300)
        ]
    );
    *dev.fail.lock().unwrap() = Some(0x3d);
    assert_eq!(result_of(&ctrl(&mut s, 11, &[1], 4)), 0x3d);
    dev.running
        .store(false, std::sync::atomic::Ordering::SeqCst);
    for code in [6, 8, 9, 10] {
        assert_eq!(
            result_of(&ctrl(&mut s, code, &[], 4)),
            TPM_BAD_ORDINAL,
            "code {code}"
        );
    }
}

#[test]
fn get_config_and_get_info() {
    let dev = MockDevice::new(false);
    let (_srv, _, c) = start(dev, |_| {});
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 15, &[], 8), [0; 8]);
    let mut req = 1u64.to_be_bytes().to_vec();
    req.extend(be32(0));
    req.extend(be32(0));
    let hdr = ctrl(&mut s, 18, &req, 12);
    assert_eq!(result_of(&hdr), 0);
    let tot = u32_at(&hdr, 4) as usize;
    let len = u32_at(&hdr, 8) as usize;
    assert_eq!(tot, len);
    let text = read_n(&mut s, len);
    assert_eq!(text.last(), Some(&0));
    let json = std::str::from_utf8(&text[..len - 1]).unwrap();
    assert!(
        json.starts_with("{\"TPMSpecification\":{\"family\":\"2.0\""),
        "{json}"
    );
    // Offset inside the string: the tail; at/after its end: bad parameter.
    let mut req2 = 1u64.to_be_bytes().to_vec();
    req2.extend(be32(5));
    req2.extend(be32(0));
    let hdr2 = ctrl(&mut s, 18, &req2, 12);
    assert_eq!(u32_at(&hdr2, 8) as usize, len - 5);
    assert_eq!(read_n(&mut s, len - 5), text[5..]);
    let mut req3 = 1u64.to_be_bytes().to_vec();
    req3.extend(be32(len as u32 - 1));
    req3.extend(be32(0));
    assert_eq!(result_of(&ctrl(&mut s, 18, &req3, 4)), TPM_BAD_PARAMETER);
}

fn set_blob_req(kind: u32, flags: u32, len: usize) -> Vec<u8> {
    let mut m = be32(13).to_vec();
    m.extend(be32(flags));
    m.extend(be32(kind));
    m.extend(be32(len as u32));
    m
}

fn get_blob<S: Read + Write>(s: &mut S, kind: u32, offset: u32) -> (u32, Vec<u8>) {
    let (rc, flags, data) = get_blob_flags(s, kind, offset);
    assert_eq!(flags, 0, "state_flags");
    (rc, data)
}

/// CMD_GET_STATEBLOB: result, state_flags and data.
fn get_blob_flags<S: Read + Write>(s: &mut S, kind: u32, offset: u32) -> (u32, u32, Vec<u8>) {
    let mut b = be32(1).to_vec(); // PTM_STATE_FLAG_DECRYPTED, as QEMU asks
    b.extend(be32(kind));
    b.extend(be32(offset));
    let hdr = ctrl(s, 12, &b, 16);
    let (tot, len) = (u32_at(&hdr, 8), u32_at(&hdr, 12));
    assert_eq!(tot, len);
    (result_of(&hdr), u32_at(&hdr, 4), read_n(s, len as usize))
}

#[test]
fn with_a_migration_key_blobs_are_flagged_encrypted_and_accepted_flagged() {
    let dev = MockDevice::new(true);
    // PTM_CONFIG_FLAG_MIGRATION_KEY: the device seals its blobs.
    dev.config.store(2, std::sync::atomic::Ordering::SeqCst);
    dev.blobs.lock().unwrap().insert("perm", b"sealed".to_vec());
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    let (rc, flags, data) = get_blob_flags(&mut s, 1, 0);
    assert_eq!((rc, flags, data.as_slice()), (0, 2, &b"sealed"[..]));
    // Sent back flagged PTM_STATE_FLAG_ENCRYPTED to a stopped TPM, the device gets it to open.
    assert_eq!(ctrl(&mut s, 14, &[], 4), [0; 4]);
    s.write_all(&set_blob_req(1, 2, 6)).unwrap();
    s.write_all(b"sealed").unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), 0);
    assert!(dev
        .calls()
        .iter()
        .any(|c| matches!(c, Call::SetStateBlob(..))));
}

#[test]
fn state_blobs_round_trip_in_chunks() {
    let dev = MockDevice::new(false);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    let blob: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    // Header, then the blob in three pieces (QEMU writes header and body separately).
    s.write_all(&set_blob_req(1, 0, blob.len())).unwrap();
    for part in blob.chunks(4000) {
        std::thread::sleep(Duration::from_millis(20));
        s.write_all(part).unwrap();
    }
    assert_eq!(read_n(&mut s, 4), [0; 4]);
    assert_eq!(
        dev.blob(StateBlobKind::Permanent).as_deref(),
        Some(&blob[..])
    );
    // Header and part of the data in one write.
    let small = vec![7u8; 100];
    let mut m = set_blob_req(3, 0, small.len());
    m.extend(&small[..40]);
    s.write_all(&m).unwrap();
    s.write_all(&small[40..]).unwrap();
    assert_eq!(read_n(&mut s, 4), [0; 4]);
    assert_eq!(dev.blob(StateBlobKind::SaveState), Some(small.clone()));

    // GET needs a running TPM.
    assert_eq!(ctrl(&mut s, 2, &be32(0), 4), [0; 4]);
    let (r, got) = get_blob(&mut s, 1, 0);
    assert_eq!(r, 0);
    assert_eq!(got, blob);
    // Chunked read: offsets continue the same snapshot even if the TPM changed.
    let (_, head) = get_blob(&mut s, 1, 0);
    dev.set_blob(StateBlobKind::Permanent, vec![0; 3]);
    let (r, tail) = get_blob(&mut s, 1, 4000);
    assert_eq!(r, 0);
    assert_eq!(tail, head[4000..]);
    let (_, past) = get_blob(&mut s, 1, 20_000);
    assert!(past.is_empty());
    let (_, save) = get_blob(&mut s, 3, 0);
    assert_eq!(save, small);
    let (_, vol) = get_blob(&mut s, 2, 0);
    assert!(vol.is_empty());
}

#[test]
fn state_blob_errors() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    // Bad type: full 16-byte header with TPM_BAD_PARAMETER.
    let mut b = be32(0).to_vec();
    b.extend(be32(9));
    b.extend(be32(0));
    let hdr = ctrl(&mut s, 12, &b, 16);
    assert_eq!(hdr, [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Device failure code is passed through in the header.
    *dev.fail.lock().unwrap() = Some(9);
    b[7] = 1;
    assert_eq!(result_of(&ctrl(&mut s, 12, &b, 16)), 9);
    *dev.fail.lock().unwrap() = None;
    // SET while running: refused, payload swallowed.
    s.write_all(&set_blob_req(1, 0, 50)).unwrap();
    s.write_all(&[0u8; 50]).unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), TPM_BAD_ORDINAL);
    assert_eq!(ctrl(&mut s, 15, &[], 8), [0; 8]);
    // Stopped: encrypted blob without a migration key, bad type.
    assert_eq!(ctrl(&mut s, 14, &[], 4), [0; 4]);
    s.write_all(&set_blob_req(1, 2, 4)).unwrap();
    s.write_all(&[1, 2, 3, 4]).unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), 13);
    s.write_all(&set_blob_req(7, 0, 4)).unwrap();
    s.write_all(&[1, 2, 3, 4]).unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), TPM_BAD_PARAMETER);
    // More bytes in the first write than the declared length.
    let mut m = set_blob_req(1, 0, 2);
    m.extend([1, 2, 3]);
    s.write_all(&m).unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), TPM_BAD_PARAMETER);
    assert!(!dev
        .calls()
        .iter()
        .any(|c| matches!(c, Call::SetStateBlob(..))));
}

#[test]
fn huge_state_blob_is_refused_without_allocating() {
    let dev = MockDevice::new(false);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    s.write_all(&set_blob_req(1, 0, 0xffff_fff0)).unwrap();
    s.write_all(&[0u8; 100]).unwrap();
    drop(s); // the client gives up: the server must just drop the connection
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 1, &[], 8).len(), 8);
}

#[test]
fn stop_and_buffer_size() {
    let dev = MockDevice::new(true);
    let (_srv, d, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    let q = ctrl(&mut s, 17, &be32(0), 16);
    assert_eq!(q, [[0u8; 4], be32(4096), be32(2048), be32(4096)].concat());
    assert_eq!(
        result_of(&ctrl(&mut s, 17, &be32(3000), 4)),
        TPM_BAD_ORDINAL
    );
    assert_eq!(ctrl(&mut s, 14, &[], 4), [0; 4]);
    assert_eq!(dev.calls(), [Call::PowerOff]);
    assert_eq!(u32_at(&ctrl(&mut s, 17, &be32(3000), 16), 4), 3000);
    assert_eq!(u32_at(&ctrl(&mut s, 17, &be32(100), 16), 4), 2048);
    assert_eq!(u32_at(&ctrl(&mut s, 17, &be32(1 << 20), 16), 4), 4096);
    assert_eq!(u32_at(&ctrl(&mut s, 17, &be32(2500), 16), 4), 2500);
    // Stopped TPM: data commands fail with TPM_RC_FAILURE.
    let mut data = connect(d);
    data.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(
        read_tpm_response(&mut data),
        [0x80, 1, 0, 0, 0, 10, 0, 0, 1, 1]
    );
    // Larger than the buffer size now in force: TPM_RC_COMMAND_SIZE, closed.
    assert_eq!(ctrl(&mut s, 2, &be32(0), 4), [0; 4]);
    data.write_all(&tpm_cmd(0x17b, &vec![0; 2600])).unwrap();
    assert_eq!(
        read_tpm_response(&mut data),
        [0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x42]
    );
    assert!(closed(&mut data));
}

#[test]
fn unknown_and_short_messages() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev.clone(), |_| {});
    let mut s = connect(c);
    assert_eq!(
        result_of(&ctrl(&mut s, 0x99, &[1, 2, 3], 4)),
        TPM_BAD_ORDINAL
    );
    assert_eq!(result_of(&ctrl(&mut s, 0, &[], 4)), TPM_BAD_ORDINAL);
    assert_eq!(
        result_of(&ctrl(&mut s, 0xffff_ffff, &[], 4)),
        TPM_BAD_ORDINAL
    );
    // Two bytes only: after swtpm's 500 ms the message counts as malformed.
    let t = Instant::now();
    s.write_all(&[0, 0]).unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), TPM_BAD_PARAMETER);
    assert!(t.elapsed() >= Duration::from_millis(400));
    // A command missing its body: same.
    s.write_all(&be32(5)).unwrap();
    assert_eq!(result_of(&read_n(&mut s, 4)), TPM_BAD_PARAMETER);
    s.write_all(&be32(12)).unwrap();
    assert_eq!(read_n(&mut s, 16)[..4], be32(TPM_BAD_PARAMETER));
    // Still serving.
    assert_eq!(ctrl(&mut s, 1, &[], 8).len(), 8);
    assert!(dev.calls().is_empty());
}

#[test]
fn random_garbage_never_kills_the_server() {
    let dev = MockDevice::new(true);
    let (_srv, d, c) = start(dev, |_| {});
    let mut seed = 0x1234_5678u32;
    for round in 0..20 {
        let mut junk = Vec::new();
        for _ in 0..(round * 7 % 64 + 1) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            junk.push(seed as u8);
        }
        for addr in [c, d] {
            let mut s = connect(addr);
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let _ = s.write_all(&junk);
            let mut sink = [0u8; 64];
            let _ = s.read(&mut sink);
        }
    }
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 1, &[], 8).len(), 8);
}

#[test]
fn half_open_client_does_not_block_others() {
    let dev = MockDevice::new(true);
    let (_srv, d, c) = start(dev, |_| {});
    let mut stuck = connect(c);
    stuck.write_all(&set_blob_req(1, 0, 1000)).unwrap(); // never sends the blob
    let mut stuck_data = connect(d);
    stuck_data.write_all(&[0x80, 1, 0]).unwrap(); // never finishes its header
    let t = Instant::now();
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 1, &[], 8).len(), 8);
    let mut data = connect(d);
    data.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut data).len(), 15);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn terminate_on_ctrl_close() {
    let dev = MockDevice::new(true);
    let (srv, _, c) = start(dev, |cfg| cfg.terminate_on_ctrl_close = true);
    let mut s = connect(c);
    assert_eq!(ctrl(&mut s, 1, &[], 8).len(), 8);
    drop(s);
    assert_eq!(srv.wait(), ExitReason::CtrlClosed);
}

#[test]
fn shutdown_unblocks_wait_and_closes_connections() {
    let dev = MockDevice::new(true);
    let (srv, d, c) = start(dev, |_| {});
    let mut s = connect(c);
    let mut data = connect(d);
    assert_eq!(ctrl(&mut s, 1, &[], 8).len(), 8);
    let srv = Arc::new(srv);
    let s2 = Arc::clone(&srv);
    let t = std::thread::spawn(move || s2.wait());
    std::thread::sleep(Duration::from_millis(50));
    srv.shutdown();
    assert_eq!(t.join().unwrap(), ExitReason::Requested);
    assert!(closed(&mut s));
    assert!(closed(&mut data));
    assert!(
        TcpStream::connect_timeout(&c, Duration::from_secs(1)).is_err() || {
            // The listener may take a moment to close; it must not serve anymore.
            std::thread::sleep(Duration::from_millis(100));
            TcpStream::connect_timeout(&c, Duration::from_secs(1)).is_err()
        }
    );
}

#[test]
fn unix_sockets_replace_stale_files_and_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("data.sock");
    let ctrl_path = dir.path().join("ctrl.sock");
    // A stale socket from an earlier run.
    drop(std::os::unix::net::UnixListener::bind(&ctrl_path).unwrap());
    assert!(ctrl_path.exists());
    let dev = MockDevice::new(true);
    let cfg = SwtpmConfig {
        data: Some(Endpoint::Unix(data_path.clone())),
        ctrl: Some(Endpoint::Unix(ctrl_path.clone())),
        ..Default::default()
    };
    let srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
    assert!(srv.local_addrs().is_empty());
    let mut s = UnixStream::connect(&ctrl_path).unwrap();
    assert_eq!(ctrl(&mut s, 1, &[], 8).len(), 8);
    let mut data = UnixStream::connect(&data_path).unwrap();
    data.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut data).len(), 15);
    assert_eq!(ctrl(&mut s, 3, &[], 4), [0; 4]);
    assert_eq!(srv.wait(), ExitReason::CtrlShutdown);
    assert!(!ctrl_path.exists());
    assert!(!data_path.exists());
}

#[test]
fn refuses_to_delete_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("precious");
    std::fs::write(&p, b"data").unwrap();
    let cfg = SwtpmConfig {
        ctrl: Some(Endpoint::Unix(p.clone())),
        ..Default::default()
    };
    let err = serve_swtpm(cfg, &tpm(&MockDevice::new(true))).unwrap_err();
    assert!(err.to_string().contains("precious"), "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), b"data");
}

#[test]
fn bind_failure_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = SwtpmConfig {
        data: Some(Endpoint::Tcp(addr)),
        ..Default::default()
    };
    let err = serve_swtpm(cfg, &tpm(&MockDevice::new(true))).unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    let none = serve_swtpm(SwtpmConfig::default(), &tpm(&MockDevice::new(true)));
    assert!(none.is_err());
}

/// Start a server with only a UNIX control socket, as QEMU uses it.
fn start_unix_ctrl(dev: Arc<MockDevice>) -> (Server, tempfile::TempDir, UnixStream) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ctrl.sock");
    let cfg = SwtpmConfig {
        ctrl: Some(Endpoint::Unix(p.clone())),
        ..Default::default()
    };
    let srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
    let s = UnixStream::connect(&p).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (srv, dir, s)
}

fn set_datafd(ctrl_sock: &mut UnixStream) -> (u32, UnixStream) {
    let (mine, theirs) = UnixStream::pair().unwrap();
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    send_with_fd(ctrl_sock.as_fd(), &be32(16), theirs.as_fd()).unwrap();
    drop(theirs);
    (result_of(&read_n(ctrl_sock, 4)), mine)
}

#[test]
fn set_datafd_over_unix_socket() {
    let dev = MockDevice::new(true);
    let (_srv, _dir, mut s) = start_unix_ctrl(dev.clone());
    let (r, mut data) = set_datafd(&mut s);
    assert_eq!(r, 0);
    for _ in 0..3 {
        data.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
        assert_eq!(read_tpm_response(&mut data).len(), 15);
    }
    // Only one descriptor data channel at a time.
    let (r2, _unused) = set_datafd(&mut s);
    assert_eq!(r2, TPM_IOERROR);
    // Without a descriptor: bad parameter (after closing the first channel).
    drop(data);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(result_of(&ctrl(&mut s, 16, &[], 4)), TPM_BAD_PARAMETER);
    let (r3, mut data3) = set_datafd(&mut s);
    assert_eq!(r3, 0);
    data3.write_all(&tpm_cmd(0x144, &[])).unwrap();
    assert_eq!(read_tpm_response(&mut data3).len(), 15);
}

#[test]
fn set_datafd_over_tcp_has_no_descriptor() {
    let dev = MockDevice::new(true);
    let (_srv, _, c) = start(dev, |_| {});
    let mut s = connect(c);
    assert_eq!(result_of(&ctrl(&mut s, 16, &[], 4)), TPM_BAD_PARAMETER);
}

/// The start-up sequence QEMU 7.2 sends (message sizes as QEMU sends them).
#[test]
fn qemu_startup_sequence() {
    let dev = MockDevice::new(false);
    let (srv, _dir, mut s) = start_unix_ctrl(dev.clone());
    let (r, mut data) = set_datafd(&mut s);
    assert_eq!(r, 0);
    // tpm_util_test_tpmdev: a TPM2_ReadClock probe before INIT fails cleanly.
    data.write_all(&tpm_cmd(0x181, &[])).unwrap();
    assert_eq!(u32_at(&read_tpm_response(&mut data), 6), 0x101);
    let caps = u64::from_be_bytes(ctrl(&mut s, 1, &[], 8).try_into().unwrap());
    let needed = 1 | 2 | 4 | 8 | 0x80 | 0x1000 | 0x400 | 0x2000; // QEMU's TPM 2 minimum
    assert_eq!(caps & needed, needed);
    assert_eq!(ctrl(&mut s, 14, &[], 4), [0; 4]);
    assert_eq!(u32_at(&ctrl(&mut s, 17, &be32(0), 16), 4), 4096);
    assert_eq!(ctrl(&mut s, 14, &[], 4), [0; 4]);
    assert_eq!(
        ctrl(&mut s, 17, &be32(4096), 16)[..8],
        [0, 0, 0, 0, 0, 0, 16, 0]
    );
    assert_eq!(ctrl(&mut s, 2, &be32(0), 4), [0; 4]);
    assert_eq!(ctrl(&mut s, 4, &[], 8), [0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(ctrl(&mut s, 5, &[0, 0, 0, 0], 4), [0; 4]);
    data.write_all(&tpm_cmd(0x144, &[0, 0])).unwrap();
    assert_eq!(
        read_tpm_response(&mut data)[..10],
        [0x80, 1, 0, 0, 0, 15, 0, 0, 0, 0]
    );
    assert_eq!(ctrl(&mut s, 11, &[0, 0, 0, 0], 4), [0; 4]);
    assert_eq!(ctrl(&mut s, 3, &[], 4), [0; 4]);
    assert_eq!(srv.wait(), ExitReason::CtrlShutdown);
    assert_eq!(
        dev.calls(),
        [
            Call::Init {
                delete_volatile: false
            },
            Call::TpmEstablished,
            Call::Execute {
                locality: 0,
                command: tpm_cmd(0x144, &[0, 0])
            },
            Call::ResetEstablished(0),
            Call::PowerOff,
        ]
    );
}

#[test]
fn mssim_platform_client_detected_while_the_tpm_is_busy() {
    // The TPM thread accepts data connections only between commands: a
    // tcti-mssim command connection still waiting in the backlog counts as
    // the idle data connection that tells an mssim platform client.
    let slow = |loc: u8, cmd: &[u8]| {
        if u32_at(cmd, 6) == 0x999 {
            std::thread::sleep(Duration::from_millis(600));
        }
        echo_response(loc, cmd)
    };
    let dev = MockDevice::with_responder(true, Box::new(slow));
    let (_srv, d, c) = start(dev.clone(), |cfg| cfg.ctrl_accepts_mssim = true);
    let mut busy = connect(d);
    busy.write_all(&tpm_cmd(0x999, &[])).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _mssim_command_connection = connect(d);
    let mut platform = connect(c);
    assert_eq!(ctrl(&mut platform, 1, &[], 4), [0; 4]);
    assert_eq!(ctrl(&mut platform, 11, &[], 4), [0; 4]);
    assert!(dev.calls().contains(&Call::NvAvailable(true)));
    assert_eq!(read_tpm_response(&mut busy).len(), 15);
}
