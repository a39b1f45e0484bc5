//! TPM_ALG_CMAC as libtpms has it: symmetric keys with the CMAC mode MAC
//! through TPM2_MAC / MAC_Start (the HMAC and HMAC_Start codes), not
//! EncryptDecrypt; the tags are RFC 4493's and equal swtpm's for AES,
//! Camellia and TDES keys; a CMAC sequence survives ContextSave/Load; the
//! response codes for mismatched schemes and modes are swtpm's.

mod common;
mod support;

use common::{start_swtpm, RawConn, Vtpm};
use support::corpus::{command, pw_area, NO_SESSIONS, SESSIONS};
use support::ecc::{load_external, send, tpm2b, Rd};

const ALG_AES: u16 = 0x0006;
const ALG_TDES: u16 = 0x0003;
const ALG_CAMELLIA: u16 = 0x0026;
const ALG_CMAC: u16 = 0x003F;
const ALG_CFB: u16 = 0x0043;
const ALG_NULL: u16 = 0x0010;
const ALG_SHA256: u16 = 0x000B;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn be(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// RFC 4493's AES-128 key and 64-octet message.
fn rfc4493() -> (Vec<u8>, Vec<u8>) {
    (
        hex("2b7e151628aed2a6abf7158809cf4f3c"),
        hex(concat!(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
        )),
    )
}

/// LoadExternal of a symmetric signing key (`alg`, `mode`) with bits `key`.
fn load_sym(c: &mut RawConn, alg: u16, key: &[u8], mode: u16) -> u32 {
    let seed = [0u8; 32];
    let unique = tpm_crypto::digest(tpm_crypto::HashAlg::Sha256, &[&seed, key]);
    let sensitive = [
        &0x0025u16.to_be_bytes()[..],
        &tpm2b(&[]),
        &tpm2b(&seed),
        &tpm2b(key),
    ]
    .concat();
    let public = [
        &be(&[0x0025, ALG_SHA256])[..],
        &0x0004_0040u32.to_be_bytes(),
        &tpm2b(&[]),
        &be(&[alg, (key.len() * 8) as u16, mode]),
        &tpm2b(&unique),
    ]
    .concat();
    load_external(c, &sensitive, &public)
}

fn flush(c: &mut RawConn, h: u32) {
    assert_eq!(send(c, &command(NO_SESSIONS, 0x165, &h.to_be_bytes())).0, 0);
}

/// TPM2_MAC: the tag or the response code.
fn mac(c: &mut RawConn, h: u32, data: &[u8], scheme: u16) -> Result<Vec<u8>, u32> {
    let body = [
        &h.to_be_bytes()[..],
        &pw_area(),
        &tpm2b(data),
        &scheme.to_be_bytes(),
    ]
    .concat();
    let (rc, r) = send(c, &command(SESSIONS, 0x155, &body));
    if rc != 0 {
        return Err(rc);
    }
    let mut rd = Rd(&r);
    rd.u32();
    Ok(rd.b2())
}

fn answers(port: u16) -> Vec<String> {
    let mut c = RawConn::open(port);
    let (key, msg) = rfc4493();
    let mut out = Vec::new();
    for mode in [ALG_CMAC, ALG_NULL, ALG_CFB] {
        let h = load_sym(&mut c, ALG_AES, &key, mode);
        for scheme in [ALG_NULL, ALG_CMAC, ALG_SHA256] {
            for len in [0, 16, 40, 64] {
                let r = mac(&mut c, h, &msg[..len], scheme);
                out.push(format!("mode {mode:#x} scheme {scheme:#x} {len}: {r:02x?}"));
            }
        }
        let ed = [
            &h.to_be_bytes()[..],
            &pw_area(),
            &tpm2b(&[0; 16]),
            &[0],
            &be(&[ALG_NULL]),
            &tpm2b(&[0; 16]),
        ]
        .concat();
        out.push(format!(
            "mode {mode:#x} EncryptDecrypt2: {:#x}",
            send(&mut c, &command(SESSIONS, 0x193, &ed)).0
        ));
        flush(&mut c, h);
    }
    for (alg, key) in [
        (ALG_CAMELLIA, vec![0x5a; 16]),
        (ALG_CAMELLIA, vec![0x5a; 32]),
        (
            ALG_TDES,
            hex("0123456789abcdeffedcba987654321089abcdef01234567"),
        ),
    ] {
        let h = load_sym(&mut c, alg, &key, ALG_CMAC);
        out.push(format!(
            "{alg:#x}/{}: {:02x?}",
            key.len(),
            mac(&mut c, h, &msg[..40], ALG_NULL)
        ));
        flush(&mut c, h);
    }
    // TestParms: a CMAC symmetric key, a storage key with a CMAC mode.
    for (what, parms) in [
        ("symcipher aes cmac", be(&[0x0025, ALG_AES, 128, ALG_CMAC])),
        (
            "rsa storage aes cmac",
            be(&[0x0001, ALG_AES, 128, ALG_CMAC, ALG_NULL, 2048, 0, 0]),
        ),
    ] {
        out.push(format!(
            "TestParms {what}: {:#x}",
            send(&mut c, &command(NO_SESSIONS, 0x18A, &parms)).0
        ));
    }
    out
}

#[test]
fn cmac_answers_as_swtpm_and_rfc4493() {
    let v = Vtpm::start_socket();
    let ours = answers(v.port);
    for l in &ours {
        println!("{l}");
    }
    // RFC 4493 section 4 through TPM2_MAC.
    let tags = [
        "bb1d6929e95937287fa37d129b756746",
        "070a16b46b4d4144f79bdd9dd04a287c",
        "dfa66747de9ae63030ca32611497c827",
        "51f0bebf7e3b9d92fc49741779363cfe",
    ];
    for (i, (len, tag)) in [0, 16, 40, 64].iter().zip(tags).enumerate() {
        assert_eq!(
            ours[i],
            format!("mode 0x3f scheme 0x10 {len}: Ok({:02x?})", hex(tag))
        );
    }
    if let Some(sw) = start_swtpm() {
        assert_eq!(ours, answers(sw.port), "swtpm");
    }
}

#[test]
fn a_cmac_sequence_survives_a_context_save_and_load() {
    let v = Vtpm::start_socket();
    let mut c = RawConn::open(v.port);
    let (key, msg) = rfc4493();
    let h = load_sym(&mut c, ALG_AES, &key, ALG_CMAC);
    // MAC_Start with an empty auth and the key's scheme.
    let body = [
        &h.to_be_bytes()[..],
        &pw_area(),
        &tpm2b(&[]),
        &be(&[ALG_NULL]),
    ]
    .concat();
    let (rc, r) = send(&mut c, &command(SESSIONS, 0x15B, &body));
    assert_eq!(rc, 0, "MAC_Start");
    let seq = Rd(&r).u32();
    flush(&mut c, h);
    let update = |c: &mut RawConn, seq: u32, data: &[u8]| {
        let body = [&seq.to_be_bytes()[..], &pw_area(), &tpm2b(data)].concat();
        assert_eq!(
            send(c, &command(SESSIONS, 0x15C, &body)).0,
            0,
            "SequenceUpdate"
        );
    };
    update(&mut c, seq, &msg[..7]);
    update(&mut c, seq, &msg[7..20]);
    let (rc, blob) = send(&mut c, &command(NO_SESSIONS, 0x162, &seq.to_be_bytes()));
    assert_eq!(rc, 0, "ContextSave");
    flush(&mut c, seq);
    let (rc, r) = send(&mut c, &command(NO_SESSIONS, 0x161, &blob));
    assert_eq!(rc, 0, "ContextLoad");
    let seq = Rd(&r).u32();
    update(&mut c, seq, &msg[20..33]);
    let body = [
        &seq.to_be_bytes()[..],
        &pw_area(),
        &tpm2b(&msg[33..40]),
        &0x4000_0007u32.to_be_bytes(),
    ]
    .concat();
    let (rc, r) = send(&mut c, &command(SESSIONS, 0x13E, &body));
    assert_eq!(rc, 0, "SequenceComplete");
    let mut rd = Rd(&r);
    rd.u32();
    assert_eq!(rd.b2(), hex("dfa66747de9ae63030ca32611497c827"));
}
