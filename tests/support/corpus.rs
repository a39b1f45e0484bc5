//! A generated corpus of malformed TPM commands: truncations, wrong sizes, bad
//! tags, unknown command codes, bad handles and bad interface values. Shared by
//! the comparison test against swtpm and the engine's no-panic test.

#![allow(dead_code)]

/// TPM_ST_NO_SESSIONS / TPM_ST_SESSIONS.
pub const NO_SESSIONS: u16 = 0x8001;
/// TPM_ST_SESSIONS.
pub const SESSIONS: u16 = 0x8002;
/// TPM_RS_PW.
pub const RS_PW: u32 = 0x4000_0009;

/// One case: a name saying what is wrong, and the bytes.
pub struct Case {
    /// What the case exercises.
    pub name: String,
    /// The command bytes.
    pub bytes: Vec<u8>,
}

/// A command with a correct header.
pub fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + body.len());
    v.extend_from_slice(&tag.to_be_bytes());
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An authorization area with one empty password session.
pub fn pw_area() -> Vec<u8> {
    let mut v = 9u32.to_be_bytes().to_vec();
    v.extend_from_slice(&RS_PW.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0]);
    v
}

/// An authorization area with `n` empty password sessions.
pub fn pw_areas(n: usize) -> Vec<u8> {
    let one = &pw_area()[4..];
    let mut v = ((one.len() * n) as u32).to_be_bytes().to_vec();
    for _ in 0..n {
        v.extend_from_slice(one);
    }
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn be16(v: u16) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn be32(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// The fields of a TPMT_PUBLIC for the object cases (an ECC P-256 storage key by default).
#[derive(Clone)]
pub struct Template {
    pub ty: u16,
    pub name_alg: u16,
    pub attrs: u32,
    pub policy: Vec<u8>,
    /// The parameters after the type-independent fields, as bytes.
    pub parms: Vec<u8>,
    /// The unique field, as bytes.
    pub unique: Vec<u8>,
}

impl Template {
    /// ECC P-256 restricted decryption key, AES-128-CFB, NULL scheme and KDF.
    pub fn ecc_storage() -> Template {
        Template {
            ty: 0x0023,
            name_alg: 0x000B,
            attrs: 0x0003_0072,
            policy: Vec::new(),
            parms: ecc_parms(0x0006, 128, 0x0043, &be16(0x0010), 0x0003, &be16(0x0010)),
            unique: cat(&[&be16(0), &be16(0)]),
        }
    }
    /// TPM2B_PUBLIC.
    pub fn to_2b(&self) -> Vec<u8> {
        let body = cat(&[
            &be16(self.ty),
            &be16(self.name_alg),
            &be32(self.attrs),
            &be16(self.policy.len() as u16),
            &self.policy,
            &self.parms,
            &self.unique,
        ]);
        cat(&[&be16(body.len() as u16), &body])
    }
}

/// TPMS_ECC_PARMS: symmetric (alg, bits, mode; alg NULL stops there), scheme, curve, kdf.
pub fn ecc_parms(sym: u16, bits: u16, mode: u16, scheme: &[u8], curve: u16, kdf: &[u8]) -> Vec<u8> {
    let sym = if sym == 0x0010 {
        be16(sym)
    } else {
        cat(&[&be16(sym), &be16(bits), &be16(mode)])
    };
    cat(&[&sym, scheme, &be16(curve), kdf])
}

/// TPM2_CreatePrimary in `hierarchy` with `sensitive` (TPMS_SENSITIVE_CREATE bytes) and `template`.
pub fn create_primary(hierarchy: u32, sensitive: &[u8], template: &Template) -> Vec<u8> {
    command(
        SESSIONS,
        0x131,
        &cat(&[
            &be32(hierarchy),
            &pw_area(),
            &be16(sensitive.len() as u16),
            sensitive,
            &template.to_2b(),
            &be16(0),
            &be32(0),
        ]),
    )
}

/// Well-formed commands whose every truncation is a case.
pub fn valid_commands() -> Vec<(&'static str, Vec<u8>)> {
    let sel_sha256 = cat(&[&be32(1), &be16(0x000B), &[3, 0xff, 0, 0]]);
    vec![
        ("GetRandom", command(NO_SESSIONS, 0x17B, &be16(16))),
        (
            "GetCapability",
            command(
                NO_SESSIONS,
                0x17A,
                &cat(&[&be32(6), &be32(0x100), &be32(10)]),
            ),
        ),
        ("PCR_Read", command(NO_SESSIONS, 0x17E, &sel_sha256)),
        (
            "PCR_Extend",
            command(
                SESSIONS,
                0x182,
                &cat(&[&be32(16), &pw_area(), &be32(1), &be16(0x000B), &[0x11; 32]]),
            ),
        ),
        (
            "Hash",
            command(
                NO_SESSIONS,
                0x17D,
                &cat(&[&be16(3), b"abc", &be16(0x000B), &be32(0x4000_0001)]),
            ),
        ),
        (
            "HashSequenceStart",
            command(NO_SESSIONS, 0x186, &cat(&[&be16(2), b"pw", &be16(0x000B)])),
        ),
        (
            "StartAuthSession",
            command(
                NO_SESSIONS,
                0x176,
                &cat(&[
                    &be32(0x4000_0007),
                    &be32(0x4000_0007),
                    &be16(16),
                    &[7; 16],
                    &be16(0),
                    &[0],
                    &be16(0x0010),
                    &be16(0x000B),
                ]),
            ),
        ),
        (
            "PCR_Event",
            command(
                SESSIONS,
                0x13C,
                &cat(&[&be32(16), &pw_area(), &be16(5), b"hello"]),
            ),
        ),
        ("SelfTest", command(NO_SESSIONS, 0x143, &[1])),
        ("ReadClock", command(NO_SESSIONS, 0x181, &[])),
        (
            "TestParms",
            command(
                NO_SESSIONS,
                0x18A,
                &cat(&[&be16(0x0025), &be16(0x0006), &be16(128), &be16(0x0043)]),
            ),
        ),
        (
            "CreatePrimary",
            create_primary(0x4000_0001, &[0, 0, 0, 0], &Template::ecc_storage()),
        ),
        (
            "ClockRateAdjust",
            command(
                SESSIONS,
                0x130,
                &cat(&[&be32(0x4000_0001), &pw_area(), &[0]]),
            ),
        ),
        // NV, hierarchy and dictionary-attack commands: an ordinary 16-octet
        // owner index at 0x01500100 (ownerwrite|ownerread).
        (
            "NV_DefineSpace",
            command(
                SESSIONS,
                0x12A,
                &cat(&[
                    &be32(0x4000_0001),
                    &pw_area(),
                    &be16(0),
                    &be16(14),
                    &be32(0x0150_0100),
                    &be16(0x000B),
                    &be32(0x0002_0002),
                    &be16(0),
                    &be16(16),
                ]),
            ),
        ),
        (
            "NV_Write",
            command(
                SESSIONS,
                0x137,
                &cat(&[
                    &be32(0x4000_0001),
                    &be32(0x0150_0100),
                    &pw_area(),
                    &be16(4),
                    b"data",
                    &be16(0),
                ]),
            ),
        ),
        (
            "NV_Read",
            command(
                SESSIONS,
                0x14E,
                &cat(&[
                    &be32(0x4000_0001),
                    &be32(0x0150_0100),
                    &pw_area(),
                    &be16(4),
                    &be16(0),
                ]),
            ),
        ),
        (
            "NV_ReadPublic",
            command(NO_SESSIONS, 0x169, &be32(0x0150_0100)),
        ),
        // Attestation without a signing key (TPM_RH_NULL): unsigned, except
        // a quote, which needs the scheme's hash (TPM_RC_SCHEME).
        (
            "NV_Certify",
            command(
                SESSIONS,
                0x184,
                &cat(&[
                    &be32(0x4000_0007),
                    &be32(0x4000_0001),
                    &be32(0x0150_0100),
                    &pw_areas(2),
                    &be16(2),
                    b"qd",
                    &be16(0x0010),
                    &be16(4),
                    &be16(0),
                ]),
            ),
        ),
        (
            "GetTime",
            command(
                SESSIONS,
                0x14C,
                &cat(&[
                    &be32(0x4000_000B),
                    &be32(0x4000_0007),
                    &pw_areas(2),
                    &be16(2),
                    b"qd",
                    &be16(0x0010),
                ]),
            ),
        ),
        (
            "Quote",
            command(
                SESSIONS,
                0x158,
                &cat(&[
                    &be32(0x4000_0007),
                    &pw_area(),
                    &be16(2),
                    b"qd",
                    &be16(0x0010),
                    &sel_sha256,
                ]),
            ),
        ),
        (
            "HierarchyControl",
            command(
                SESSIONS,
                0x121,
                &cat(&[&be32(0x4000_000C), &pw_area(), &be32(0x4000_0001), &[1]]),
            ),
        ),
        (
            "DictionaryAttackParameters",
            command(
                SESSIONS,
                0x13A,
                &cat(&[
                    &be32(0x4000_000A),
                    &pw_area(),
                    &be32(5),
                    &be32(100),
                    &be32(100),
                ]),
            ),
        ),
    ]
}

/// The whole corpus, in a fixed order.
pub fn corpus() -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| out.push(Case { name, bytes });

    for (name, cmd) in valid_commands() {
        // Truncated bodies with a consistent size field: the TPM runs out of bytes.
        for n in 10..cmd.len() {
            let mut t = cmd[..n].to_vec();
            t[2..6].copy_from_slice(&(n as u32).to_be_bytes());
            add(format!("{name} truncated to {n} (size consistent)"), t);
        }
        // The size field disagrees with the bytes sent.
        for delta in [-1i64, 1, 100] {
            let mut t = cmd.clone();
            let sz = (cmd.len() as i64 + delta) as u32;
            t[2..6].copy_from_slice(&sz.to_be_bytes());
            add(format!("{name} size field {delta:+}"), t);
        }
        // Trailing garbage counted in the size.
        let mut t = cmd.clone();
        t.extend_from_slice(&[0xAB; 3]);
        let n = t.len() as u32;
        t[2..6].copy_from_slice(&n.to_be_bytes());
        add(format!("{name} with trailing bytes"), t);
    }

    // Headers.
    for tag in [0x0000u16, 0x00C1, 0x00C4, 0x8000, 0x8003, 0xFFFF] {
        add(format!("bad tag {tag:#06x}"), command(tag, 0x17B, &be16(8)));
    }
    for sz in [0u32, 9, 11, 0xFFFF_FFFF] {
        let mut t = command(NO_SESSIONS, 0x17B, &be16(8));
        t[2..6].copy_from_slice(&sz.to_be_bytes());
        add(format!("GetRandom size field {sz:#x}"), t);
    }
    // Command codes implemented by neither TPM.
    for cc in [
        0u32,
        0x11E,
        0x1A0,
        0x1FF,
        0x2000_0000,
        0x2000_0001,
        0xFFFF_FFFF,
        0x0000_8144,
    ] {
        add(
            format!("unknown command code {cc:#x}"),
            command(NO_SESSIONS, cc, &[]),
        );
    }

    // Handles.
    let extend_body = |h: u32| cat(&[&be32(h), &pw_area(), &be32(1), &be16(0x000B), &[0x11; 32]]);
    for h in [
        24u32,
        0x1F,
        0x4000_0001,
        0x4000_000C,
        0x8000_0000,
        0x8100_0000,
        0x0100_0000,
        0x0200_0000,
        0xFFFF_FFFF,
    ] {
        add(
            format!("PCR_Extend handle {h:#x}"),
            command(SESSIONS, 0x182, &extend_body(h)),
        );
    }
    for h in [0x4000_0007u32, 24, 0x4000_0001] {
        add(
            format!("PCR_Reset handle {h:#x}"),
            command(SESSIONS, 0x13D, &cat(&[&be32(h), &pw_area()])),
        );
    }
    for h in [
        0x8000_0005u32,
        0x8000_0000,
        0x8100_0001,
        0x4000_0001,
        0x0000_0001,
    ] {
        add(
            format!("SequenceUpdate handle {h:#x}"),
            command(
                SESSIONS,
                0x15C,
                &cat(&[&be32(h), &pw_area(), &be16(1), b"x"]),
            ),
        );
    }
    for h in [
        0x4000_0007u32,
        0x4000_0009,
        0x0000_0000,
        0x8000_0000,
        0x4000_0010,
    ] {
        add(
            format!("HierarchyChangeAuth handle {h:#x}"),
            command(SESSIONS, 0x129, &cat(&[&be32(h), &pw_area(), &be16(0)])),
        );
    }
    for h in [0x4000_0001u32, 0x4000_000B, 0x4000_0007] {
        add(
            format!("PCR_Allocate handle {h:#x}"),
            command(SESSIONS, 0x12B, &cat(&[&be32(h), &pw_area(), &be32(0)])),
        );
    }
    for h in [0x4000_000Bu32, 0x4000_000A, 0x4000_0007] {
        add(
            format!("ClockSet handle {h:#x}"),
            command(SESSIONS, 0x128, &cat(&[&be32(h), &pw_area(), &[0xff; 8]])),
        );
    }
    let sas = |key: u32, bind: u32| {
        cat(&[
            &be32(key),
            &be32(bind),
            &be16(16),
            &[7; 16],
            &be16(0),
            &[0],
            &be16(0x0010),
            &be16(0x000B),
        ])
    };
    for (k, b) in [
        (0x4000_0001u32, 0x4000_0007u32),
        (0x8000_0001, 0x4000_0007),
        (0x4000_0007, 0x4000_0009),
        (0x0000_0000, 0x4000_0007),
    ] {
        add(
            format!("StartAuthSession tpmKey {k:#x} bind {b:#x}"),
            command(NO_SESSIONS, 0x176, &sas(k, b)),
        );
    }
    for h in [
        0x8000_0000u32,
        0x0200_0000,
        0x0300_0000,
        0x4000_0001,
        0x0000_0000,
        0x8100_0000,
    ] {
        add(
            format!("FlushContext handle {h:#x}"),
            command(NO_SESSIONS, 0x165, &be32(h)),
        );
    }

    // Session areas.
    let get_random_with_area = |area: &[u8]| command(SESSIONS, 0x17B, &cat(&[area, &be16(8)]));
    for (what, area) in [
        ("authorizationSize 0", be32(0)),
        (
            "authorizationSize 8",
            cat(&[&be32(8), &be32(RS_PW), &[0, 0, 0, 0]]),
        ),
        (
            "authorizationSize beyond command",
            cat(&[&be32(100), &be32(RS_PW), &[0, 0, 0, 0, 0]]),
        ),
        (
            "session handle is a hierarchy",
            cat(&[&be32(9), &be32(0x4000_0001), &[0, 0, 0, 0, 0]]),
        ),
        (
            "session handle not loaded",
            cat(&[&be32(9), &be32(0x0200_0000), &[0, 0, 0, 0, 0]]),
        ),
        (
            "policy session not loaded",
            cat(&[&be32(9), &be32(0x0300_0001), &[0, 0, 0, 0, 0]]),
        ),
        ("password session without authorization", pw_area()),
        (
            "nonce size 65",
            cat(&[&be32(9 + 65), &be32(RS_PW), &be16(65), &[0; 65], &[0, 0, 0]]),
        ),
        (
            "reserved session attribute",
            cat(&[&be32(9), &be32(RS_PW), &[0, 0, 0x08, 0, 0]]),
        ),
        (
            "hmac size beyond area",
            cat(&[&be32(9), &be32(RS_PW), &[0, 0, 0, 0, 4]]),
        ),
    ] {
        add(format!("GetRandom {what}"), get_random_with_area(&area));
    }
    let extend_with_area =
        |area: &[u8]| command(SESSIONS, 0x182, &cat(&[&be32(16), area, &be32(0)]));
    let pw_session = cat(&[&be32(RS_PW), &[0, 0, 1, 0, 0]]);
    for (what, area) in [
        (
            "four sessions",
            cat(&[
                &be32(36),
                &pw_session,
                &pw_session,
                &pw_session,
                &pw_session,
            ]),
        ),
        (
            "password with decrypt",
            cat(&[&be32(9), &be32(RS_PW), &[0, 0, 0x21, 0, 0]]),
        ),
        (
            "password with encrypt",
            cat(&[&be32(9), &be32(RS_PW), &[0, 0, 0x41, 0, 0]]),
        ),
        (
            "password with audit",
            cat(&[&be32(9), &be32(RS_PW), &[0, 0, 0x81, 0, 0]]),
        ),
        (
            "wrong password",
            cat(&[&be32(11), &be32(RS_PW), &[0, 0, 1, 0, 2, 0x41, 0x42]]),
        ),
        (
            "area shorter than a session",
            cat(&[&be32(9), &be32(RS_PW), &[0, 0, 0]]),
        ),
    ] {
        add(format!("PCR_Extend {what}"), extend_with_area(&area));
    }
    add(
        "PCR_Extend without sessions".into(),
        command(NO_SESSIONS, 0x182, &cat(&[&be32(16), &be32(0)])),
    );
    add(
        "FlushContext with sessions".into(),
        command(SESSIONS, 0x165, &cat(&[&pw_area(), &be32(0x8000_0000)])),
    );
    add(
        "Startup with sessions".into(),
        command(SESSIONS, 0x144, &cat(&[&pw_area(), &be16(0)])),
    );

    // Interface values and parameter checks.
    for cap in [0x0000_000Bu32, 0x0000_0100, 0x0000_0101, 0xFFFF_FFFF] {
        add(
            format!("GetCapability capability {cap:#x}"),
            command(NO_SESSIONS, 0x17A, &cat(&[&be32(cap), &be32(0), &be32(1)])),
        );
    }
    for prop in [0x0400_0000u32, 0x0500_0000, 0x4100_0000, 0xFF00_0000] {
        add(
            format!("GetCapability handles of type {prop:#x}"),
            command(NO_SESSIONS, 0x17A, &cat(&[&be32(1), &be32(prop), &be32(8)])),
        );
    }
    for (alg, size) in [
        (0x0001u16, 3u8),
        (0x0010, 3),
        (0x0027, 3),
        (0x000B, 0),
        (0x000B, 1),
        (0x000B, 2),
        (0x000B, 4),
        (0x000B, 255),
    ] {
        let body = cat(&[&be32(1), &be16(alg), &[size], &vec![0xff; size as usize]]);
        add(
            format!("PCR_Read bank {alg:#x} sizeofSelect {size}"),
            command(NO_SESSIONS, 0x17E, &body),
        );
    }
    add(
        "PCR_Read five banks".into(),
        command(
            NO_SESSIONS,
            0x17E,
            &cat(&[&be32(5), &[0, 0x0B, 3, 1, 0, 0].repeat(5)]),
        ),
    );
    add(
        "PCR_Read count 0xFFFFFFFF".into(),
        command(NO_SESSIONS, 0x17E, &be32(0xFFFF_FFFF)),
    );
    for su in [2u16, 0xFFFF] {
        add(
            format!("Shutdown type {su}"),
            command(NO_SESSIONS, 0x145, &be16(su)),
        );
    }
    add(
        "Startup when started".into(),
        command(NO_SESSIONS, 0x144, &be16(0)),
    );
    add(
        "Startup type 7".into(),
        command(NO_SESSIONS, 0x144, &be16(7)),
    );
    for alg in [0x0010u16, 0x0001, 0x0006, 0x0027, 0xFFFF] {
        add(
            format!("Hash algorithm {alg:#x}"),
            command(
                NO_SESSIONS,
                0x17D,
                &cat(&[&be16(1), b"a", &be16(alg), &be32(0x4000_0007)]),
            ),
        );
    }
    for h in [0x4000_000Au32, 0x4000_0009, 0x0000_0001] {
        add(
            format!("Hash hierarchy {h:#x}"),
            command(
                NO_SESSIONS,
                0x17D,
                &cat(&[&be16(1), b"a", &be16(0x000B), &be32(h)]),
            ),
        );
    }
    add(
        "Hash data 1025 octets".into(),
        command(
            NO_SESSIONS,
            0x17D,
            &cat(&[&be16(1025), &[0; 1025], &be16(0x000B), &be32(0x4000_0007)]),
        ),
    );
    for alg in [0x0001u16, 0x0027] {
        add(
            format!("HashSequenceStart alg {alg:#x}"),
            command(NO_SESSIONS, 0x186, &cat(&[&be16(0), &be16(alg)])),
        );
    }
    add(
        "HashSequenceStart auth 65 octets".into(),
        command(
            NO_SESSIONS,
            0x186,
            &cat(&[&be16(65), &[1; 65], &be16(0x000B)]),
        ),
    );
    let sas_params = |nonce: &[u8], salt: &[u8], ty: u8, sym: &[u8], hash: u16| {
        cat(&[
            &be32(0x4000_0007),
            &be32(0x4000_0007),
            &be16(nonce.len() as u16),
            nonce,
            &be16(salt.len() as u16),
            salt,
            &[ty],
            sym,
            &be16(hash),
        ])
    };
    let null_sym = be16(0x0010);
    let aes_cfb = cat(&[&be16(0x0006), &be16(128), &be16(0x0043)]);
    for (what, body) in [
        (
            "nonce 15 octets",
            sas_params(&[1; 15], &[], 0, &null_sym, 0x000B),
        ),
        (
            "nonce 33 octets",
            sas_params(&[1; 33], &[], 0, &null_sym, 0x000B),
        ),
        (
            "salt without tpmKey",
            sas_params(&[1; 16], &[1; 4], 0, &null_sym, 0x000B),
        ),
        (
            "session type 2",
            sas_params(&[1; 16], &[], 2, &null_sym, 0x000B),
        ),
        (
            "session type 0xFF",
            sas_params(&[1; 16], &[], 0xFF, &null_sym, 0x000B),
        ),
        (
            "symmetric RSA",
            sas_params(&[1; 16], &[], 0, &be16(0x0001), 0x000B),
        ),
        (
            "AES key bits 100",
            sas_params(
                &[1; 16],
                &[],
                0,
                &cat(&[&be16(6), &be16(100), &be16(0x43)]),
                0x000B,
            ),
        ),
        (
            "AES mode ECB",
            sas_params(
                &[1; 16],
                &[],
                0,
                &cat(&[&be16(6), &be16(128), &be16(0x44)]),
                0x000B,
            ),
        ),
        (
            "AES mode SHA256",
            sas_params(
                &[1; 16],
                &[],
                0,
                &cat(&[&be16(6), &be16(128), &be16(0x0B)]),
                0x000B,
            ),
        ),
        (
            "XOR with RSA hash",
            sas_params(
                &[1; 16],
                &[],
                0,
                &cat(&[&be16(0x000A), &be16(0x0001)]),
                0x000B,
            ),
        ),
        (
            "authHash NULL",
            sas_params(&[1; 16], &[], 0, &aes_cfb, 0x0010),
        ),
        (
            "authHash SM3",
            sas_params(&[1; 16], &[], 0, &aes_cfb, 0x0012),
        ),
    ] {
        add(
            format!("StartAuthSession {what}"),
            command(NO_SESSIONS, 0x176, &body),
        );
    }
    for v in [4i8, -4, 127, -128] {
        add(
            format!("ClockRateAdjust {v}"),
            command(
                SESSIONS,
                0x130,
                &cat(&[&be32(0x4000_0001), &pw_area(), &[v as u8]]),
            ),
        );
    }
    add(
        "ClockSet backwards".into(),
        command(
            SESSIONS,
            0x128,
            &cat(&[&be32(0x4000_0001), &pw_area(), &[0; 8]]),
        ),
    );
    add(
        "ClockSet beyond maximum".into(),
        command(
            SESSIONS,
            0x128,
            &cat(&[&be32(0x4000_0001), &pw_area(), &[0xff; 8]]),
        ),
    );
    add(
        "SelfTest fullTest 2".into(),
        command(NO_SESSIONS, 0x143, &[2]),
    );
    add(
        "IncrementalSelfTest 65 algorithms".into(),
        command(NO_SESSIONS, 0x142, &cat(&[&be32(65), &[0; 130]])),
    );
    add(
        "StirRandom 129 octets".into(),
        command(NO_SESSIONS, 0x146, &cat(&[&be16(129), &[0; 129]])),
    );
    for (what, parms) in [
        ("type 0", be16(0)),
        ("type SHA256", be16(0x000B)),
        ("symcipher NULL", cat(&[&be16(0x0025), &be16(0x0010)])),
        (
            "symcipher XOR",
            cat(&[&be16(0x0025), &be16(0x000A), &be16(0x000B)]),
        ),
        (
            "symcipher AES 64 bits",
            cat(&[&be16(0x0025), &be16(6), &be16(64), &be16(0x43)]),
        ),
        (
            "keyedhash scheme SHA1",
            cat(&[&be16(0x0008), &be16(0x0004)]),
        ),
        (
            "keyedhash HMAC with NULL hash",
            cat(&[&be16(0x0008), &be16(0x0005), &be16(0x0010)]),
        ),
        (
            "keyedhash XOR KDF SHA256",
            cat(&[&be16(0x0008), &be16(0x000A), &be16(0x000B), &be16(0x000B)]),
        ),
    ] {
        add(
            format!("TestParms {what}"),
            command(NO_SESSIONS, 0x18A, &parms),
        );
    }
    for (what, digests) in [
        ("count 5", cat(&[&be32(5), &[0; 200]])),
        ("unknown hash", cat(&[&be32(1), &be16(0x0099), &[0; 32]])),
        ("NULL hash", cat(&[&be32(1), &be16(0x0010)])),
        ("short digest", cat(&[&be32(1), &be16(0x000B), &[0; 31]])),
    ] {
        add(
            format!("PCR_Extend digests {what}"),
            command(SESSIONS, 0x182, &cat(&[&be32(16), &pw_area(), &digests])),
        );
    }
    add(
        "PCR_Extend PCR 0 from locality 0 twice count".into(),
        command(
            SESSIONS,
            0x182,
            &cat(&[&be32(0), &pw_area(), &be32(2), &be16(0x000B), &[0; 32]]),
        ),
    );
    add(
        "PCR_Event data 1025 octets".into(),
        command(
            SESSIONS,
            0x13C,
            &cat(&[&be32(16), &pw_area(), &be16(1025), &[0; 1025]]),
        ),
    );
    add(
        "PCR_SetAuthValue PCR 0".into(),
        command(SESSIONS, 0x183, &cat(&[&be32(0), &pw_area(), &be16(0)])),
    );
    add(
        "PCR_SetAuthPolicy size mismatch".into(),
        command(
            SESSIONS,
            0x12C,
            &cat(&[
                &be32(0x4000_000C),
                &pw_area(),
                &be16(3),
                &[1, 2, 3],
                &be16(0x000B),
                &be32(20),
            ]),
        ),
    );
    add(
        "PCR_SetAuthPolicy PCR 24".into(),
        command(
            SESSIONS,
            0x12C,
            &cat(&[
                &be32(0x4000_000C),
                &pw_area(),
                &be16(0),
                &be16(0x0010),
                &be32(24),
            ]),
        ),
    );
    add(
        "PCR_Allocate unknown bank".into(),
        command(
            SESSIONS,
            0x12B,
            &cat(&[
                &be32(0x4000_000C),
                &pw_area(),
                &be32(1),
                &be16(0x0099),
                &[3, 0xff, 0xff, 0xff],
            ]),
        ),
    );
    add(
        "HierarchyChangeAuth 65 octets".into(),
        command(
            SESSIONS,
            0x129,
            &cat(&[&be32(0x4000_0001), &pw_area(), &be16(65), &[1; 65]]),
        ),
    );
    for h in [
        0x0200_0000u32,
        0x0300_0000,
        0x8000_0000,
        0x8000_0005,
        0x4000_0001,
        0x0000_0000,
    ] {
        add(
            format!("ContextSave handle {h:#x}"),
            command(NO_SESSIONS, 0x162, &be32(h)),
        );
    }
    add(
        "ContextSave with sessions".into(),
        command(SESSIONS, 0x162, &cat(&[&be32(0x0200_0000), &pw_area()])),
    );
    let ctx = |seq: u64, h: u32, hier: u32, blob: &[u8]| {
        cat(&[
            &seq.to_be_bytes(),
            &be32(h),
            &be32(hier),
            &be16(blob.len() as u16),
            blob,
        ])
    };
    for (what, body) in [
        (
            "unsaved session",
            ctx(1, 0x0200_0000, 0x4000_0007, &[0; 40]),
        ),
        (
            "handle 0x40000001",
            ctx(1, 0x4000_0001, 0x4000_0007, &[0; 40]),
        ),
        (
            "hierarchy 0x4000000A",
            ctx(1, 0x0200_0000, 0x4000_000A, &[0; 40]),
        ),
        ("empty blob", ctx(1, 0x0200_0000, 0x4000_0007, &[])),
        (
            "truncated",
            ctx(1, 0x0200_0000, 0x4000_0007, &[0; 40])[..12].to_vec(),
        ),
    ] {
        add(
            format!("ContextLoad {what}"),
            command(NO_SESSIONS, 0x161, &body),
        );
    }

    // Object templates: every field wrong in turn.
    let empty = [0u8, 0, 0, 0];
    let base = Template::ecc_storage();
    let with = |f: &dyn Fn(&mut Template)| {
        let mut t = base.clone();
        f(&mut t);
        t
    };
    let ecdsa = cat(&[&be16(0x0018), &be16(0x000B)]);
    let null = be16(0x0010);
    let sign_attrs = 0x0004_0072;
    let templates: Vec<(&str, Template)> = vec![
        ("type 0", with(&|t| t.ty = 0)),
        ("type 0x99", with(&|t| t.ty = 0x99)),
        ("nameAlg NULL", with(&|t| t.name_alg = 0x0010)),
        ("nameAlg 0x99", with(&|t| t.name_alg = 0x99)),
        ("reserved attribute bit 0", with(&|t| t.attrs |= 1)),
        ("reserved attribute bit 8", with(&|t| t.attrs |= 0x100)),
        ("no sensitiveDataOrigin", with(&|t| t.attrs &= !0x20)),
        ("fixedTPM without fixedParent", with(&|t| t.attrs &= !0x10)),
        ("fixedParent without fixedTPM", with(&|t| t.attrs &= !0x2)),
        (
            "encryptedDuplication with fixedTPM",
            with(&|t| t.attrs |= 0x800),
        ),
        (
            "restricted sign and decrypt",
            with(&|t| t.attrs |= 0x4_0000),
        ),
        ("neither sign nor decrypt", with(&|t| t.attrs = 0x72)),
        ("policy of 5 octets", with(&|t| t.policy = vec![1; 5])),
        ("policy of 32 octets", with(&|t| t.policy = vec![1; 32])),
        (
            "storage key without symmetric",
            with(&|t| t.parms = ecc_parms(0x0010, 0, 0, &null, 3, &null)),
        ),
        (
            "storage key AES-100",
            with(&|t| t.parms = ecc_parms(0x0006, 100, 0x0043, &null, 3, &null)),
        ),
        (
            "storage key AES CBC",
            with(&|t| t.parms = ecc_parms(0x0006, 128, 0x0042, &null, 3, &null)),
        ),
        (
            "storage key mode 0x99",
            with(&|t| t.parms = ecc_parms(0x0006, 128, 0x0099, &null, 3, &null)),
        ),
        (
            "symmetric alg 0x99",
            with(&|t| t.parms = ecc_parms(0x0099, 128, 0x0043, &null, 3, &null)),
        ),
        (
            "storage key with ECDSA",
            with(&|t| t.parms = ecc_parms(0x0006, 128, 0x0043, &ecdsa, 3, &null)),
        ),
        (
            "scheme 0x99",
            with(&|t| t.parms = ecc_parms(0x0006, 128, 0x0043, &be16(0x99), 3, &null)),
        ),
        (
            "curve 0x99",
            with(&|t| t.parms = ecc_parms(0x0006, 128, 0x0043, &null, 0x99, &null)),
        ),
        (
            "kdf 0x99",
            with(&|t| t.parms = ecc_parms(0x0006, 128, 0x0043, &null, 3, &be16(0x99))),
        ),
        (
            "signing key with symmetric",
            with(&|t| {
                t.attrs = sign_attrs;
                t.parms = ecc_parms(0x0006, 128, 0x0043, &ecdsa, 3, &null)
            }),
        ),
        (
            "signing key ECDSA hash NULL",
            with(&|t| {
                t.attrs = sign_attrs;
                t.parms = ecc_parms(0x0010, 0, 0, &cat(&[&be16(0x0018), &null]), 3, &null)
            }),
        ),
        (
            "signing key with RSASSA",
            with(&|t| {
                t.attrs = sign_attrs;
                t.parms = ecc_parms(
                    0x0010,
                    0,
                    0,
                    &cat(&[&be16(0x0014), &be16(0x000B)]),
                    3,
                    &null,
                )
            }),
        ),
        (
            "restricted signing key, NULL scheme",
            with(&|t| {
                t.attrs = sign_attrs | 0x1_0000;
                t.parms = ecc_parms(0x0010, 0, 0, &null, 3, &null)
            }),
        ),
        (
            "unique x of 67 octets",
            with(&|t| t.unique = cat(&[&be16(67), &[0; 67], &be16(0)])),
        ),
    ];
    for (what, t) in templates {
        add(
            format!("CreatePrimary {what}"),
            create_primary(0x4000_0001, &empty, &t),
        );
    }
    for (what, sensitive) in [
        (
            "authValue of 33 octets",
            cat(&[&be16(33), &[1; 33], &be16(0)]),
        ),
        ("data for an ECC key", cat(&[&be16(0), &be16(4), b"data"])),
        ("sensitive size 0", Vec::new()),
    ] {
        add(
            format!("CreatePrimary {what}"),
            create_primary(0x4000_0001, &sensitive, &base),
        );
    }
    for h in [0x4000_000Au32, 0x4000_0009, 0x8000_0000, 0x4000_0007] {
        add(
            format!("CreatePrimary hierarchy {h:#x}"),
            create_primary(h, &empty, &base),
        );
    }
    out
}
