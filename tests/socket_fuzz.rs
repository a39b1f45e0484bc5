//! Random control-channel messages and random data-channel bytes against the
//! real binary (swtpm socket protocol), and random command-port and
//! platform-port messages (mssim protocol): whatever arrives, vtpm keeps
//! running, logs no panic, and still answers a well-formed command afterwards.
//! Deterministic (fixed seeds); `VTPM_FUZZ_ITERS=N` sends N messages,
//! `VTPM_FUZZ_SEED=S` uses another seed.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::Vtpm;
use rand::{Rng, SeedableRng};

/// Send `bytes` on a new connection to `port`, end our side, and read what
/// comes back within a short wait (the reply is not checked: only that the
/// server survives and stays in step for later clients).
fn poke(port: u16, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// A control message: a code (mostly real ones, never CMD_SHUTDOWN, which
/// ends the process by design) and a body shaped like the code's request or
/// random.
fn control_message(r: &mut impl Rng) -> Vec<u8> {
    let codes = [
        1u32, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 0, 20,
    ];
    let code = if r.gen_ratio(1, 20) {
        r.gen()
    } else {
        codes[r.gen_range(0..codes.len())]
    };
    let mut m = be32(code).to_vec();
    let random = |r: &mut dyn rand::RngCore, n: usize| {
        let mut v = vec![0u8; n];
        r.fill_bytes(&mut v);
        v
    };
    match code {
        // HASH_DATA / SET_STATEBLOB: a length, then fewer, as many or more bytes.
        7 | 13 => {
            let len = [0u32, 1, 10, 4096, 5000, 70_000][r.gen_range(0..6)];
            if code == 13 {
                m.extend(be32(r.gen_range(0..4)));
                m.extend(be32(r.gen_range(0..4)));
            }
            m.extend(be32(len));
            let sent = [0, len / 2, len][r.gen_range(0..3)] as usize;
            m.extend(random(r, sent));
        }
        // GET_STATEBLOB: flags, type, offset.
        12 => {
            m.extend(be32([0, 1, 2, 0x0100_0000][r.gen_range(0..4)]));
            m.extend(be32(r.gen_range(0..10)));
            m.extend(be32([0, 1, 100, 1 << 20, 1 << 31][r.gen_range(0..5)]));
        }
        _ => {
            let n = [0usize, 1, 2, 3, 4, 8, 16, 64, 300][r.gen_range(0..9)];
            m.extend(random(r, n));
        }
    }
    m
}

/// Data-channel bytes: random, or with a plausible tag and size field.
fn data_message(r: &mut impl Rng) -> Vec<u8> {
    let n = [0usize, 1, 5, 10, 11, 20, 100, 4096, 5000][r.gen_range(0..9)];
    let mut v = vec![0u8; n];
    r.fill_bytes(&mut v);
    if n >= 10 && r.gen_bool(0.5) {
        let tag = [0x8001u16, 0x8002, 0x00c4][r.gen_range(0..3)];
        v[..2].copy_from_slice(&tag.to_be_bytes());
        v[2..6].copy_from_slice(&(n as u32).to_be_bytes());
    }
    v
}

/// CMD_INIT, then TPM2_Startup and GetRandom(8) on the data channel: the
/// GetRandom answer (after Startup, which may fail if the TPM was started).
fn revive_and_probe(port: u16, ctrl: u16) -> Vec<u8> {
    let talk = |p: u16, msg: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", p)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(msg).unwrap();
        let mut b = vec![0u8; 4096];
        let n = s.read(&mut b).unwrap_or(0);
        b.truncate(n);
        b
    };
    talk(ctrl, &[be32(2).as_slice(), &be32(0)].concat());
    talk(port, &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0]);
    talk(port, &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8])
}

/// `iters` messages (from `next`, which sends one) against `tpm`; every 50
/// the server must be alive and `probe` (reviving the TPM) must get a
/// successful GetRandom; at the end, no panic in its log.
fn fuzz(
    tpm: &mut Vtpm,
    seed: u64,
    mut next: impl FnMut(&mut rand::rngs::StdRng, &Vtpm),
    probe: impl Fn(&Vtpm) -> Vec<u8>,
    default_iters: u64,
) {
    let iters: u64 = std::env::var("VTPM_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_iters);
    let seed = std::env::var("VTPM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(seed);
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..iters {
        next(&mut r, tpm);
        if i % 50 == 49 {
            assert!(
                tpm.guard.try_status().is_none(),
                "vtpm exited after message {i}: {}",
                tpm.guard.stderr()
            );
            let resp = probe(tpm);
            assert_eq!(
                resp.get(6..10),
                Some(&[0u8, 0, 0, 0][..]),
                "GetRandom after message {i}: {resp:02x?}"
            );
        }
    }
    assert!(tpm.guard.try_status().is_none(), "vtpm exited");
    assert!(
        !tpm.guard.stderr().contains("panick"),
        "{}",
        tpm.guard.stderr()
    );
}

#[test]
fn random_control_and_data_messages_never_stop_the_server() {
    let mut tpm = Vtpm::start_socket();
    fuzz(
        &mut tpm,
        0x5eed_c7d1,
        |r, t| {
            if r.gen_bool(0.6) {
                poke(t.ctrl_port, &control_message(r));
            } else {
                poke(t.port, &data_message(r));
            }
        },
        |t| revive_and_probe(t.port, t.ctrl_port),
        2000,
    );
}

/// A command-port message of the mssim protocol: a code (never TPM_STOP,
/// which ends the process by design) and a body shaped like its request.
fn mssim_command(r: &mut impl Rng) -> Vec<u8> {
    let codes = [8u32, 8, 8, 5, 6, 7, 15, 20, 0, 99];
    let code = codes[r.gen_range(0..codes.len())];
    let mut m = be32(code).to_vec();
    match code {
        // TPM_SEND_COMMAND: locality, length, then fewer, as many or more bytes.
        8 => {
            m.push([0u8, 3, 4, 5, 255][r.gen_range(0..5)]);
            let len = [0u32, 9, 10, 12, 4096, 4097, u32::MAX][r.gen_range(0..7)];
            m.extend(be32(len));
            let body = data_message(r);
            m.extend(&body[..body.len().min(len as usize)]);
        }
        6 | 15 => {
            let len = [0u32, 1, 100, 5000, u32::MAX][r.gen_range(0..5)];
            m.extend(be32(len));
            let mut v = vec![0u8; (len as usize).min(r.gen_range(0..6000))];
            r.fill_bytes(&mut v);
            m.extend(v);
        }
        _ => {}
    }
    m
}

/// Platform signals, random ones among them (never TPM_STOP).
fn mssim_platform(r: &mut impl Rng) -> Vec<u8> {
    (0..r.gen_range(1..5))
        .flat_map(|_| {
            let c = if r.gen_ratio(1, 10) {
                r.gen_range(22..1000)
            } else {
                r.gen_range(1..21)
            };
            be32(c)
        })
        .collect()
}

/// mssim: POWER_ON and NV_ON on the platform port, Startup and GetRandom(8)
/// on the command port: the GetRandom answer (the TPM response, unframed).
fn mssim_revive_and_probe(port: u16, platform: u16) -> Vec<u8> {
    let mut p = TcpStream::connect(("127.0.0.1", platform)).expect("platform port");
    p.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    p.write_all(&[be32(1), be32(11)].concat()).unwrap();
    let mut acks = [0u8; 8];
    p.read_exact(&mut acks).expect("acks");
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("command port");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut last = Vec::new();
    for cmd in [
        [0x80u8, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0],
        [0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8],
    ] {
        let frame = [&be32(8)[..], &[0], &be32(12), &cmd].concat();
        c.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        c.read_exact(&mut len).expect("response length");
        let mut resp = vec![0u8; u32::from_be_bytes(len) as usize];
        c.read_exact(&mut resp).expect("response");
        let mut ack = [0u8; 4];
        c.read_exact(&mut ack).expect("ack");
        last = resp;
    }
    last
}

#[test]
fn random_mssim_messages_never_stop_the_server() {
    let mut tpm = Vtpm::start_mssim();
    fuzz(
        &mut tpm,
        0x5eed_55a1,
        |r, t| {
            if r.gen_bool(0.7) {
                poke(t.port, &mssim_command(r));
            } else {
                poke(t.ctrl_port, &mssim_platform(r));
            }
        },
        |t| mssim_revive_and_probe(t.port, t.ctrl_port),
        1000,
    );
}
