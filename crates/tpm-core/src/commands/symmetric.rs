//! Symmetric primitives (Part 3 chapter 15): EncryptDecrypt, EncryptDecrypt2,
//! HMAC and HMAC_Start. The HMAC sequence HMAC_Start opens is completed by
//! the SequenceUpdate/SequenceComplete of `hash`.
//!
//! Where Part 3 rev 1.16 and libtpms differ, this follows libtpms (the later
//! specification): an EncryptDecrypt key must be unrestricted and have
//! `decrypt` SET to decrypt and `sign` SET to encrypt (TPM_RC_ATTRIBUTES), and
//! a mode other than the key's is TPM_RC_MODE rather than TPM_RC_VALUE.
//! libtpms serves the HMAC and HMAC_Start codes as TPM2_MAC and MAC_Start,
//! which share them: hashAlg is a TPMI_ALG_MAC_SCHEME+ and the key choice
//! follows its MAC selection (see `hmac_key`).

use crate::constants as c;
use crate::crypto::{sym_crypt, Hmac};
use crate::dispatch::Ctx;
use crate::engine::objects::{Object, Sequence};
use crate::engine::{Response, Tpm};
use crate::marshal::Buffer;
use crate::object::Loaded;
use crate::rc::{Rc, TpmResult};
use crate::types::{is_hash, Auth, Digest, MaxBuffer, Parms, SymDef, YesNo};
use crate::{tpm_interface, tpm_params, tpm_response};

/// The AES block size: the size of every IV but ECB's (none).
const BLOCK: usize = 16;

/// TPM2B_IV.
pub type Iv = Buffer<BLOCK>;

tpm_interface! {
    /// TPMI_ALG_CIPHER_MODE+: a block cipher mode or TPM_ALG_NULL (the key's mode).
    pub struct CipherMode(u16), error = c::RC_MODE,
    accept = |m| matches!(m, c::ALG_CTR | c::ALG_OFB | c::ALG_CBC | c::ALG_CFB | c::ALG_ECB | c::ALG_NULL)
}

tpm_params! {
    /// TPM2_EncryptDecrypt parameters.
    pub struct EncryptDecryptIn { pub decrypt: YesNo, pub mode: CipherMode, pub iv_in: Iv, pub in_data: MaxBuffer }
}

tpm_params! {
    /// TPM2_EncryptDecrypt2 parameters (inData first, so it can be parameter-encrypted).
    pub struct EncryptDecrypt2In { pub in_data: MaxBuffer, pub decrypt: YesNo, pub mode: CipherMode, pub iv_in: Iv }
}

tpm_response! {
    /// TPM2_EncryptDecrypt and TPM2_EncryptDecrypt2 response.
    pub struct EncryptDecryptOut { pub out_data: MaxBuffer, pub iv_out: Iv }
}

tpm_interface! {
    /// TPMI_ALG_MAC_SCHEME+: a hash (HMAC), TPM_ALG_CMAC or TPM_ALG_NULL (the
    /// key's). libtpms serves these command codes as TPM2_MAC/MAC_Start, whose
    /// parameter this is; anything else is TPM_RC_SYMMETRIC there.
    pub struct MacScheme(u16), error = c::RC_SYMMETRIC,
    accept = |a| a == c::ALG_NULL || a == c::ALG_CMAC || is_hash(a)
}

tpm_params! {
    /// TPM2_HMAC parameters.
    pub struct HmacIn { pub buffer: MaxBuffer, pub hash_alg: MacScheme }
}

tpm_response! {
    /// TPM2_HMAC response.
    pub struct HmacOut { pub out_hmac: Digest }
}

tpm_params! {
    /// TPM2_HMAC_Start parameters.
    pub struct HmacStartIn { pub auth: Auth, pub hash_alg: MacScheme }
}

/// Parameter numbers of EncryptDecrypt's fields, which differ between the two commands.
struct Numbers {
    mode: u32,
    iv_in: u32,
    in_data: u32,
}

/// One encryption or decryption with the SYMCIPHER key at handle 1.
fn encrypt_decrypt(
    key: &Loaded,
    decrypt: bool,
    mode_in: u16,
    iv: &[u8],
    data: &[u8],
    n: Numbers,
) -> TpmResult<EncryptDecryptOut> {
    let Parms::SymCipher {
        sym:
            SymDef::Cipher {
                alg,
                bits,
                mode: key_mode,
            },
    } = key.public.parms
    else {
        return Err(Rc(c::RC_KEY).handle(1));
    };
    let cipher = tpm_crypto::BlockCipher::from_tpm_alg(alg).ok_or(Rc(c::RC_KEY).handle(1))?;
    let block = cipher.block_size();
    let a = key.public.attributes;
    let allowed = if decrypt {
        c::TPMA_OBJECT_DECRYPT
    } else {
        c::TPMA_OBJECT_SIGN_ENCRYPT
    };
    if a & c::TPMA_OBJECT_RESTRICTED != 0 || a & allowed == 0 {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    // A CMAC key MACs and does not encrypt (libtpms: TPM_RC_MODE on the key).
    if key_mode == c::ALG_CMAC {
        return Err(Rc(c::RC_MODE).handle(1));
    }
    // The key's mode rules when it has one; the caller may only repeat it.
    let mode = match (key_mode, mode_in) {
        (c::ALG_NULL, c::ALG_NULL) => return Err(Rc(c::RC_MODE).param(n.mode)),
        (c::ALG_NULL, m) => m,
        (k, m) if m == c::ALG_NULL || m == k => k,
        _ => return Err(Rc(c::RC_MODE).param(n.mode)),
    };
    let iv_size = if mode == c::ALG_ECB { 0 } else { block };
    if iv.len() != iv_size {
        return Err(Rc(c::RC_SIZE).param(n.iv_in));
    }
    if matches!(mode, c::ALG_CBC | c::ALG_ECB) && !data.len().is_multiple_of(block) {
        return Err(Rc(c::RC_SIZE).param(n.in_data));
    }
    let secret = &key.sensitive().map_err(|e| e.handle(1))?.sensitive.0;
    if secret.len() * 8 != bits as usize {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    let (out, iv_out) =
        sym_crypt(cipher, mode, secret, iv, data, decrypt).ok_or(Rc(c::RC_FAILURE))?;
    Ok(EncryptDecryptOut {
        out_data: Buffer(out),
        iv_out: Buffer(iv_out),
    })
}

/// TPM2_EncryptDecrypt.
pub fn encrypt_decrypt1(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = EncryptDecryptIn::parse(&mut ctx.params)?;
    let n = Numbers {
        mode: 2,
        iv_in: 3,
        in_data: 4,
    };
    run(tpm, ctx, p, n)
}

/// TPM2_EncryptDecrypt2: EncryptDecrypt with inData first.
pub fn encrypt_decrypt2(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let EncryptDecrypt2In {
        in_data,
        decrypt,
        mode,
        iv_in,
    } = EncryptDecrypt2In::parse(&mut ctx.params)?;
    let p = EncryptDecryptIn {
        decrypt,
        mode,
        iv_in,
        in_data,
    };
    let n = Numbers {
        mode: 3,
        iv_in: 4,
        in_data: 1,
    };
    run(tpm, ctx, p, n)
}

/// Both EncryptDecrypt commands once their parameters are parsed: the key at
/// handle 1, then [`encrypt_decrypt`].
fn run(tpm: &mut Tpm, ctx: &Ctx<'_>, p: EncryptDecryptIn, n: Numbers) -> TpmResult<Response> {
    let key = tpm.object_at(ctx.handles[0], 1)?;
    let out = encrypt_decrypt(
        key,
        p.decrypt.0 == 1,
        p.mode.0,
        p.iv_in.as_slice(),
        p.in_data.as_slice(),
        n,
    )?;
    Ok(Response::of(&out))
}

/// The MAC key at handle 1 and the MAC to use, with libtpms's checks and
/// their order: the key's own MAC algorithm (a keyed-hash key's scheme hash,
/// a symmetric key's mode) must equal hashAlg when both are given, one of them
/// must be (TPM_RC_VALUE); the result must be a MAC this key can compute
/// (TPM_RC_SCHEME: HMAC with a keyed-hash key, CMAC with a symmetric one);
/// then the key must be unrestricted (TPM_RC_ATTRIBUTES) and a signing key
/// (TPM_RC_KEY). The answer is the MAC, keyed and empty.
fn hmac_key(tpm: &Tpm, h: u32, mac_in: u16) -> TpmResult<Hmac> {
    let key = tpm.object_at(h, 1)?;
    let (key_mac, cipher) = match &key.public.parms {
        Parms::KeyedHash { scheme } => (scheme.hash, None),
        Parms::SymCipher {
            sym: SymDef::Cipher { mode, alg, .. },
        } => (*mode, tpm_crypto::BlockCipher::from_tpm_alg(*alg)),
        _ => return Err(Rc(c::RC_TYPE).handle(1)),
    };
    let keyed_hash = cipher.is_none();
    let alg = match (key_mac, mac_in) {
        (c::ALG_NULL, c::ALG_NULL) => return Err(Rc(c::RC_VALUE).param(2)),
        (k, c::ALG_NULL) => k,
        (k, m) if k == c::ALG_NULL || k == m => m,
        _ => return Err(Rc(c::RC_VALUE).param(2)),
    };
    let fits = if keyed_hash {
        is_hash(alg)
    } else {
        alg == c::ALG_CMAC
    };
    if !fits {
        return Err(Rc(c::RC_SCHEME).param(2));
    }
    if key.public.has(c::TPMA_OBJECT_RESTRICTED) {
        return Err(Rc(c::RC_ATTRIBUTES).handle(1));
    }
    if !key.public.has(c::TPMA_OBJECT_SIGN_ENCRYPT) {
        return Err(Rc(c::RC_KEY).handle(1));
    }
    let bits = &key.sensitive().map_err(|e| e.handle(1))?.sensitive.0;
    match cipher {
        Some(cipher) => Hmac::new_cmac(cipher, bits),
        None => Hmac::new(alg, bits),
    }
    .ok_or(Rc(c::RC_FAILURE))
}

/// TPM2_HMAC (libtpms's TPM2_MAC): the HMAC of `buffer` under a keyed-hash
/// signing key, or its CMAC under a symmetric one.
pub fn hmac(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = HmacIn::parse(&mut ctx.params)?;
    let mut m = hmac_key(tpm, ctx.handles[0], p.hash_alg.0)?;
    m.update(p.buffer.as_slice());
    Ok(Response::of(&HmacOut {
        out_hmac: Buffer(m.finish()),
    }))
}

/// TPM2_HMAC_Start (MAC_Start): an HMAC or CMAC sequence object keyed with
/// the key's bits.
pub fn hmac_start(tpm: &mut Tpm, ctx: &mut Ctx<'_>) -> TpmResult<Response> {
    let p = HmacStartIn::parse(&mut ctx.params)?;
    let m = hmac_key(tpm, ctx.handles[0], p.hash_alg.0)?;
    let seq = Sequence {
        auth: p.auth,
        hashers: Vec::new(),
        hmac: Some(Box::new(m)),
        event: false,
        started: false,
        ticket_ok: false,
    };
    let handle = tpm.powered()?.objects.insert(Object::Sequence(seq))?;
    Ok(Response {
        handle: Some(handle),
        params: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use crate::constants as c;
    use crate::crypto::{digest, hmac};
    use crate::{MemoryStore, Tpm, TpmConfig};

    const USER_WITH_AUTH: u32 = 0x40;

    /// A command with (if `sessions`) one empty password session.
    fn command(sessions: bool, cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
        crate::test_cmd::command(cc, handles, sessions.then_some(&[&b""[..]][..]), params)
    }

    fn rc(r: &[u8]) -> u32 {
        u32::from_be_bytes(r[6..10].try_into().unwrap())
    }

    use crate::test_cmd::b2;

    /// The TPM2B fields of a successful response with sessions, after `skip` octets of handle.
    fn sized_fields(r: &[u8], skip: usize) -> Vec<Vec<u8>> {
        let mut at = 10 + skip + 4;
        let end = at + u32::from_be_bytes(r[at - 4..at].try_into().unwrap()) as usize;
        let mut out = Vec::new();
        while at + 2 <= end {
            let n = u16::from_be_bytes([r[at], r[at + 1]]) as usize;
            out.push(r[at + 2..at + 2 + n].to_vec());
            at += 2 + n;
        }
        out
    }

    fn started() -> Tpm {
        let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
        t.power_on(false).unwrap();
        let r = t.execute(
            0,
            &command(false, c::CC_Startup, &[], &c::SU_CLEAR.to_be_bytes()),
        );
        assert_eq!(rc(&r), 0);
        t
    }

    /// LoadExternal of an object with known secret `key` in the null hierarchy.
    fn load(t: &mut Tpm, ty: u16, attributes: u32, parms: &[u8], key: &[u8]) -> u32 {
        let mut sens = ty.to_be_bytes().to_vec();
        sens.extend(b2(&[]));
        sens.extend(b2(&[]));
        sens.extend(b2(key));
        let mut public = ty.to_be_bytes().to_vec();
        public.extend_from_slice(&c::ALG_SHA256.to_be_bytes());
        public.extend_from_slice(&attributes.to_be_bytes());
        public.extend(b2(&[]));
        public.extend_from_slice(parms);
        public.extend(b2(&digest(c::ALG_SHA256, &[key])));
        let mut p = b2(&sens);
        p.extend(b2(&public));
        p.extend_from_slice(&c::RH_NULL.to_be_bytes());
        let r = t.execute(0, &command(false, c::CC_LoadExternal, &[], &p));
        assert_eq!(rc(&r), 0, "{r:02x?}");
        u32::from_be_bytes(r[10..14].try_into().unwrap())
    }

    fn aes_parms(mode: u16) -> Vec<u8> {
        [c::ALG_AES, 128, mode]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    }

    const SIGN_DECRYPT: u32 = USER_WITH_AUTH | c::TPMA_OBJECT_SIGN_ENCRYPT | c::TPMA_OBJECT_DECRYPT;

    /// EncryptDecrypt (v1, or v2 with inData first); returns the raw response.
    fn crypt(
        t: &mut Tpm,
        v2: bool,
        h: u32,
        dec: bool,
        mode: u16,
        iv: &[u8],
        data: &[u8],
    ) -> Vec<u8> {
        let mut p = Vec::new();
        let head = [&[dec as u8][..], &mode.to_be_bytes()].concat();
        if v2 {
            p.extend(b2(data));
            p.extend(head);
            p.extend(b2(iv));
        } else {
            p.extend(head);
            p.extend(b2(iv));
            p.extend(b2(data));
        }
        let cc = if v2 {
            c::CC_EncryptDecrypt2
        } else {
            c::CC_EncryptDecrypt
        };
        t.execute(0, &command(true, cc, &[h], &p))
    }

    fn param(rc: u32, n: u32) -> u32 {
        rc | c::RC_P | (n << 8)
    }

    fn handle(rc: u32, n: u32) -> u32 {
        rc | (n << 8)
    }

    // NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), first block.
    const KEY: [u8; 16] = [
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f,
        0x3c,
    ];
    const P1: [u8; 16] = [
        0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17,
        0x2a,
    ];
    const C1: [u8; 16] = [
        0x76, 0x49, 0xab, 0xac, 0x81, 0x19, 0xb2, 0x46, 0xce, 0xe9, 0x8e, 0x9b, 0x12, 0xe9, 0x19,
        0x7d,
    ];

    #[test]
    fn cbc_known_answer_and_round_trip_in_both_commands() {
        let mut t = started();
        let h = load(
            &mut t,
            c::ALG_SYMCIPHER,
            SIGN_DECRYPT,
            &aes_parms(c::ALG_CBC),
            &KEY,
        );
        let iv: Vec<u8> = (0..16).collect();
        for v2 in [false, true] {
            let r = crypt(&mut t, v2, h, false, c::ALG_NULL, &iv, &P1);
            assert_eq!(rc(&r), 0, "{r:02x?}");
            let f = sized_fields(&r, 0);
            assert_eq!(f[0], C1);
            assert_eq!(f[1], C1, "CBC ivOut is the last ciphertext block");
            let r = crypt(&mut t, v2, h, true, c::ALG_CBC, &iv, &C1);
            assert_eq!(sized_fields(&r, 0)[0], P1);
        }
    }

    #[test]
    fn mode_selection() {
        let mut t = started();
        let cfb = load(
            &mut t,
            c::ALG_SYMCIPHER,
            SIGN_DECRYPT,
            &aes_parms(c::ALG_CFB),
            &KEY,
        );
        let free = load(
            &mut t,
            c::ALG_SYMCIPHER,
            SIGN_DECRYPT,
            &aes_parms(c::ALG_NULL),
            &KEY,
        );
        let iv = [0u8; 16];
        // A key with a mode takes only that mode or NULL.
        let r = crypt(&mut t, false, cfb, false, c::ALG_CBC, &iv, &P1);
        assert_eq!(rc(&r), param(c::RC_MODE, 2));
        let r = crypt(&mut t, true, cfb, false, c::ALG_CBC, &iv, &P1);
        assert_eq!(rc(&r), param(c::RC_MODE, 3));
        assert_eq!(
            rc(&crypt(&mut t, false, cfb, false, c::ALG_CFB, &iv, &P1)),
            0
        );
        // A key without one needs the caller's.
        let r = crypt(&mut t, false, free, false, c::ALG_NULL, &iv, &P1);
        assert_eq!(rc(&r), param(c::RC_MODE, 2));
        assert_eq!(
            rc(&crypt(&mut t, false, free, false, c::ALG_OFB, &iv, &P1)),
            0
        );
        // Not a block mode at all: refused while unmarshalling.
        let r = crypt(&mut t, false, free, false, c::ALG_SHA256, &iv, &P1);
        assert_eq!(rc(&r), param(c::RC_MODE, 2));
    }

    #[test]
    fn iv_and_data_sizes() {
        let mut t = started();
        let free = load(
            &mut t,
            c::ALG_SYMCIPHER,
            SIGN_DECRYPT,
            &aes_parms(c::ALG_NULL),
            &KEY,
        );
        let iv = [0u8; 16];
        for (v2, iv_n, data_n) in [(false, 3, 4), (true, 4, 1)] {
            let r = crypt(&mut t, v2, free, false, c::ALG_CFB, &iv[..8], &P1);
            assert_eq!(rc(&r), param(c::RC_SIZE, iv_n), "short IV");
            let r = crypt(&mut t, v2, free, false, c::ALG_ECB, &iv, &P1);
            assert_eq!(rc(&r), param(c::RC_SIZE, iv_n), "ECB takes no IV");
            let r = crypt(&mut t, v2, free, false, c::ALG_CBC, &iv, &P1[..15]);
            assert_eq!(rc(&r), param(c::RC_SIZE, data_n), "CBC needs whole blocks");
            let r = crypt(&mut t, v2, free, true, c::ALG_ECB, &[], &[0; 17]);
            assert_eq!(rc(&r), param(c::RC_SIZE, data_n), "ECB needs whole blocks");
            // Stream modes take any length, and an empty input.
            for mode in [c::ALG_CFB, c::ALG_CTR, c::ALG_OFB] {
                assert_eq!(rc(&crypt(&mut t, v2, free, false, mode, &iv, &P1[..5])), 0);
                assert_eq!(rc(&crypt(&mut t, v2, free, false, mode, &iv, &[])), 0);
            }
        }
        // An IV longer than TPM2B_IV allows fails unmarshalling.
        let r = crypt(&mut t, false, free, false, c::ALG_CFB, &[0; 17], &P1);
        assert_eq!(rc(&r), param(c::RC_SIZE, 3));
    }

    #[test]
    fn key_type_and_attributes() {
        let mut t = started();
        let iv = [0u8; 16];
        let decrypt_only = load(
            &mut t,
            c::ALG_SYMCIPHER,
            USER_WITH_AUTH | c::TPMA_OBJECT_DECRYPT,
            &aes_parms(c::ALG_CFB),
            &KEY,
        );
        let r = crypt(&mut t, false, decrypt_only, false, c::ALG_NULL, &iv, &P1);
        assert_eq!(rc(&r), handle(c::RC_ATTRIBUTES, 1), "encrypting needs sign");
        assert_eq!(
            rc(&crypt(
                &mut t,
                false,
                decrypt_only,
                true,
                c::ALG_NULL,
                &iv,
                &P1
            )),
            0
        );
        let hmac_parms = [c::ALG_HMAC, c::ALG_SHA256]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>();
        let hkey = load(
            &mut t,
            c::ALG_KEYEDHASH,
            USER_WITH_AUTH | c::TPMA_OBJECT_SIGN_ENCRYPT,
            &hmac_parms,
            b"hmac key",
        );
        let r = crypt(&mut t, false, hkey, false, c::ALG_CFB, &iv, &P1);
        assert_eq!(rc(&r), handle(c::RC_KEY, 1), "not a symmetric cipher key");
    }

    fn hmac_cmd(t: &mut Tpm, h: u32, data: &[u8], alg: u16) -> Vec<u8> {
        let mut p = b2(data);
        p.extend_from_slice(&alg.to_be_bytes());
        t.execute(0, &command(true, c::CC_HMAC, &[h], &p))
    }

    #[test]
    fn hmac_hash_selection_and_value() {
        let mut t = started();
        let sign = USER_WITH_AUTH | c::TPMA_OBJECT_SIGN_ENCRYPT;
        let sha256 = [c::ALG_HMAC, c::ALG_SHA256]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>();
        let fixed = load(&mut t, c::ALG_KEYEDHASH, sign, &sha256, b"key one");
        let any = load(
            &mut t,
            c::ALG_KEYEDHASH,
            sign | c::TPMA_OBJECT_DECRYPT,
            &c::ALG_NULL.to_be_bytes(),
            b"key two",
        );
        let r = hmac_cmd(&mut t, fixed, b"data", c::ALG_NULL);
        assert_eq!(rc(&r), 0);
        assert_eq!(
            sized_fields(&r, 0)[0],
            hmac(c::ALG_SHA256, b"key one", &[b"data"])
        );
        assert_eq!(rc(&hmac_cmd(&mut t, fixed, b"data", c::ALG_SHA256)), 0);
        let r = hmac_cmd(&mut t, fixed, b"data", c::ALG_SHA1);
        assert_eq!(rc(&r), param(c::RC_VALUE, 2), "not the key's hash");
        let r = hmac_cmd(&mut t, any, b"data", c::ALG_NULL);
        assert_eq!(rc(&r), param(c::RC_VALUE, 2), "no hash at all");
        let r = hmac_cmd(&mut t, any, b"data", c::ALG_SHA384);
        assert_eq!(
            sized_fields(&r, 0)[0],
            hmac(c::ALG_SHA384, b"key two", &[b"data"])
        );
        let r = hmac_cmd(&mut t, any, b"data", c::ALG_AES);
        assert_eq!(rc(&r), param(c::RC_SYMMETRIC, 2), "not a MAC scheme");
        let aes = load(
            &mut t,
            c::ALG_SYMCIPHER,
            SIGN_DECRYPT,
            &aes_parms(c::ALG_CFB),
            &KEY,
        );
        let r = hmac_cmd(&mut t, aes, b"data", c::ALG_NULL);
        assert_eq!(rc(&r), param(c::RC_SCHEME, 2), "CFB is no MAC");
        let r = hmac_cmd(&mut t, aes, b"data", c::ALG_SHA256);
        assert_eq!(rc(&r), param(c::RC_VALUE, 2), "not the key's mode");
    }

    #[test]
    fn hmac_sequence_completes_with_a_null_ticket_and_fills_slots() {
        let mut t = started();
        let sha256 = [c::ALG_HMAC, c::ALG_SHA256]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>();
        let key = load(
            &mut t,
            c::ALG_KEYEDHASH,
            USER_WITH_AUTH | c::TPMA_OBJECT_SIGN_ENCRYPT,
            &sha256,
            b"sequence key",
        );
        let start = |t: &mut Tpm| {
            let mut p = b2(&[]);
            p.extend_from_slice(&c::ALG_NULL.to_be_bytes());
            t.execute(0, &command(true, c::CC_HMAC_Start, &[key], &p))
        };
        let r = start(&mut t);
        assert_eq!(rc(&r), 0, "{r:02x?}");
        let seq = u32::from_be_bytes(r[10..14].try_into().unwrap());
        let r = t.execute(
            0,
            &command(true, c::CC_SequenceUpdate, &[seq], &b2(b"hello, ")),
        );
        assert_eq!(rc(&r), 0);
        let mut p = b2(b"world");
        p.extend_from_slice(&c::RH_OWNER.to_be_bytes());
        let r = t.execute(0, &command(true, c::CC_SequenceComplete, &[seq], &p));
        assert_eq!(rc(&r), 0, "{r:02x?}");
        // outHash, then the ticket: TPM_ST_HASHCHECK, TPM_RH_NULL, an empty digest.
        let n = u16::from_be_bytes([r[14], r[15]]) as usize;
        assert_eq!(
            r[16..16 + n],
            hmac(c::ALG_SHA256, b"sequence key", &[b"hello, world"])
        );
        let at = 16 + n;
        assert_eq!(&r[at..at + 2], &c::ST_HASHCHECK.to_be_bytes());
        assert_eq!(&r[at + 2..at + 6], &c::RH_NULL.to_be_bytes());
        assert_eq!(&r[at + 6..at + 8], &[0, 0]);
        // The key and two sequences fill the three slots.
        assert_eq!(rc(&start(&mut t)), 0);
        assert_eq!(rc(&start(&mut t)), 0);
        assert_eq!(rc(&start(&mut t)), c::RC_OBJECT_MEMORY);
    }
}
