//! TPM2_CreateLoaded under a derivation parent, over raw commands, side by
//! side with swtpm + libtpms: the same codes for the same templates, and
//! derived keys that depend on label and context only.

mod common;
#[path = "support/corpus.rs"]
mod corpus;

use std::io::{Read, Write};
use std::net::TcpStream;

use corpus::{command, pw_area, NO_SESSIONS, SESSIONS};

fn call(port: u16, cmd: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(cmd).expect("send");
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr).expect("header");
    let n = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
    let mut rest = vec![0u8; n - 10];
    s.read_exact(&mut rest).expect("body");
    [&hdr[..], &rest].concat()
}

fn rc(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

fn t2b(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u16).to_be_bytes()[..], b].concat()
}

/// An ECC P-256 ECDSA signing template whose unique field is TPMS_DERIVE.
fn ecc(attrs: u32, label: &[u8], context: &[u8]) -> Vec<u8> {
    let mut t = [0x0023u16, 0x000B].map(u16::to_be_bytes).concat();
    t.extend(attrs.to_be_bytes());
    t.extend(t2b(&[]));
    t.extend(
        [0x0010u16, 0x0018, 0x000B, 0x0003, 0x0010]
            .map(u16::to_be_bytes)
            .concat(),
    );
    t.extend(t2b(label));
    t.extend(t2b(context));
    t
}

/// Response code and public area of CreateLoaded under `parent` (flushed again).
fn create_loaded(port: u16, parent: u32, sensitive: &[u8], template: &[u8]) -> (u32, Vec<u8>) {
    let body = [
        &parent.to_be_bytes()[..],
        &pw_area(),
        &t2b(sensitive),
        &t2b(template),
    ]
    .concat();
    // TPM_RC_RETRY (libtpms sometimes answers it here) means: send it again.
    let mut r = call(port, &command(SESSIONS, 0x191, &body));
    for _ in 0..5 {
        if rc(&r) != 0x922 {
            break;
        }
        r = call(port, &command(SESSIONS, 0x191, &body));
    }
    if rc(&r) != 0 {
        return (rc(&r), Vec::new());
    }
    let h = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
    // handle, parameterSize, outPrivate (must be empty), outPublic...
    let p = &r[18..];
    let private_len = u16::from_be_bytes([p[0], p[1]]) as usize;
    assert_eq!(
        private_len, 0,
        "a derived object has no private area to return"
    );
    let public_len = u16::from_be_bytes([p[2], p[3]]) as usize;
    let public = p[4..4 + public_len].to_vec();
    call(port, &command(NO_SESSIONS, 0x165, &h.to_be_bytes()));
    (0, public)
}

/// The answers of one TPM to the derivation sequence.
fn sequence(port: u16) -> Vec<(u32, Vec<u8>)> {
    // The derivation parent: keyed-hash, restricted decrypt, XOR SHA-256 / KDF1_SP800_108.
    let mut dp = [0x0008u16, 0x000B].map(u16::to_be_bytes).concat();
    dp.extend(0x0003_0072u32.to_be_bytes());
    dp.extend(t2b(&[]));
    dp.extend([0x000Au16, 0x000B, 0x0022].map(u16::to_be_bytes).concat());
    dp.extend(t2b(&[]));
    let body = [
        &0x4000_0001u32.to_be_bytes()[..],
        &pw_area(),
        &t2b(&[0, 0, 0, 0]),
        &t2b(&dp),
        &t2b(&[]),
        &0u32.to_be_bytes(),
    ]
    .concat();
    let r = call(port, &command(SESSIONS, 0x131, &body));
    assert_eq!(rc(&r), 0, "derivation parent");
    let parent = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
    let none = [0u8, 0, 0, 0];
    let with_data = [0u8, 0, 0, 2, b'a', b'b'];
    let mut rsa = [0x0001u16, 0x000B].map(u16::to_be_bytes).concat();
    rsa.extend(0x0004_0052u32.to_be_bytes());
    rsa.extend(t2b(&[]));
    rsa.extend(
        [0x0010u16, 0x0014, 0x000B, 2048]
            .map(u16::to_be_bytes)
            .concat(),
    );
    rsa.extend(0u32.to_be_bytes());
    rsa.extend(t2b(b"lab"));
    rsa.extend(t2b(b"ctx"));
    let out = vec![
        create_loaded(port, parent, &none, &ecc(0x0004_0052, b"lab", b"ctx")),
        create_loaded(port, parent, &none, &ecc(0x0004_0052, b"lab", b"ctx")),
        create_loaded(port, parent, &none, &ecc(0x0004_0052, b"lab", b"ctx2")),
        create_loaded(port, parent, &none, &ecc(0x0004_0052, b"", b"")),
        create_loaded(port, parent, &none, &ecc(0x0004_0072, b"lab", b"ctx")),
        create_loaded(port, parent, &none, &ecc(0x0004_0050, b"lab", b"ctx")),
        create_loaded(port, parent, &with_data, &ecc(0x0004_0052, b"lab", b"ctx")),
        create_loaded(port, parent, &none, &rsa),
    ];
    call(port, &command(NO_SESSIONS, 0x165, &parent.to_be_bytes()));
    out
}

#[test]
fn derived_objects_depend_on_label_and_context_and_answer_like_libtpms() {
    let t = common::Vtpm::start_socket();
    let ours = sequence(t.port);
    assert_eq!(
        ours[0], ours[1],
        "the same label and context give the same key"
    );
    assert_ne!(ours[0].1, ours[2].1, "another context gives another key");
    assert_ne!(ours[0].1, ours[3].1);
    if let Some(sw) = common::start_swtpm() {
        let theirs = sequence(sw.port);
        let codes = |v: &[(u32, Vec<u8>)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(codes(&ours), codes(&theirs));
        // Public areas agree in everything but the key itself (different secrets).
        for (a, b) in ours.iter().zip(&theirs).filter(|(a, _)| a.0 == 0) {
            assert_eq!(a.1[..20], b.1[..20]);
        }
    }
}
