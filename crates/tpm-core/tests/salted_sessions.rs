//! Salted HMAC sessions through raw commands, with the client side computed
//! by tpm-crypto: the salt shared to an RSA or ECC primary key, the session
//! key, command and response HMACs, and parameter encryption both ways with
//! XOR obfuscation (which no tpm2-tools option selects) and AES-CFB.

use tpm_core::constants as c;
use tpm_core::{MemoryStore, Tpm, TpmConfig};
use tpm_crypto::protect::{ecc_secret_encrypt, rsa_secret_encrypt};
use tpm_crypto::session::{param_encrypt_cfb, session_key, xor_obfuscate};
use tpm_crypto::{digest, hmac, Curve, HashAlg, Point, RsaPublic, SystemRng};

const SHA256: HashAlg = HashAlg::Sha256;
const CONTINUE: u8 = 0x01;
const DECRYPT: u8 = 0x20;
const ENCRYPT: u8 = 0x40;

fn b16(v: &[u8]) -> Vec<u8> {
    [&(v.len() as u16).to_be_bytes()[..], v].concat()
}

fn u16_at(r: &[u8], at: usize) -> usize {
    u16::from_be_bytes([r[at], r[at + 1]]) as usize
}

fn u32_at(r: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(r[at..at + 4].try_into().unwrap())
}

fn rc(r: &[u8]) -> u32 {
    u32_at(r, 6)
}

fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    [
        &tag.to_be_bytes()[..],
        &((10 + body.len()) as u32).to_be_bytes(),
        &cc.to_be_bytes(),
        body,
    ]
    .concat()
}

/// A password authorization area with an empty password.
fn pw_area() -> Vec<u8> {
    let area = [&c::RS_PW.to_be_bytes()[..], &[0, 0, 0, 0, 0]].concat();
    [&(area.len() as u32).to_be_bytes()[..], &area].concat()
}

fn started() -> Tpm {
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    let r = t.execute(0, &command(c::ST_NO_SESSIONS, c::CC_Startup, &[0, 0]));
    assert_eq!(rc(&r), 0);
    t
}

/// The public key of a primary, as the client sees it in outPublic.
enum KeyPub {
    Rsa(Vec<u8>),
    Ecc(Point),
}

/// A storage primary (restricted decrypt, AES-128-CFB) in the owner hierarchy:
/// its handle, Name and public key.
fn storage_primary(t: &mut Tpm, rsa: bool) -> (u32, Vec<u8>, KeyPub) {
    let attrs: u32 = 0x0003_0072; // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|decrypt
    let sym = [6u16, 128, 0x43].map(u16::to_be_bytes).concat();
    let mut public = [
        &(if rsa { c::ALG_RSA } else { c::ALG_ECC }).to_be_bytes()[..],
        &c::ALG_SHA256.to_be_bytes(),
        &attrs.to_be_bytes(),
        &[0, 0],
        &sym,
        &c::ALG_NULL.to_be_bytes(),
    ]
    .concat();
    if rsa {
        public.extend([&2048u16.to_be_bytes()[..], &0u32.to_be_bytes(), &[0, 0]].concat());
    } else {
        public.extend(
            [
                &3u16.to_be_bytes()[..],
                &c::ALG_NULL.to_be_bytes(),
                &[0, 0, 0, 0],
            ]
            .concat(),
        );
    }
    let body = [
        &c::RH_OWNER.to_be_bytes()[..],
        &pw_area(),
        &b16(&[0, 0, 0, 0]),
        &b16(&public),
        &[0, 0],
        &0u32.to_be_bytes(),
    ]
    .concat();
    let r = t.execute(0, &command(c::ST_SESSIONS, c::CC_CreatePrimary, &body));
    assert_eq!(rc(&r), 0, "CreatePrimary {r:02x?}");
    let handle = u32_at(&r, 10);
    let out_public = &r[20..20 + u16_at(&r, 18)];
    let name = [
        &c::ALG_SHA256.to_be_bytes()[..],
        &digest(SHA256, &[out_public]),
    ]
    .concat();
    // type, nameAlg, attributes, empty authPolicy, symmetric (6), scheme (2).
    let mut at = 2 + 2 + 4 + 2 + 6 + 2;
    let key = if rsa {
        at += 2 + 4;
        KeyPub::Rsa(out_public[at + 2..at + 2 + u16_at(out_public, at)].to_vec())
    } else {
        at += 2 + 2;
        let x = out_public[at + 2..at + 2 + u16_at(out_public, at)].to_vec();
        at += 2 + x.len();
        let y = out_public[at + 2..at + 2 + u16_at(out_public, at)].to_vec();
        KeyPub::Ecc(Point::new(&x, &y))
    };
    (handle, name, key)
}

/// The client's view of an HMAC session.
struct Session {
    handle: u32,
    key: Vec<u8>,
    nonce_tpm: Vec<u8>,
    /// (TPM_ALG_XOR, hash) or (TPM_ALG_AES, key bits).
    sym: (u16, u16),
}

/// StartAuthSession salted to `tpm_key`; returns the session as the client derives it.
fn start_salted(t: &mut Tpm, tpm_key: u32, key: &KeyPub, sym: (u16, u16)) -> Session {
    let (salt, encrypted) = match key {
        KeyPub::Rsa(n) => {
            let pk = RsaPublic::new(n, 0).unwrap();
            let (seed, ct) = rsa_secret_encrypt(&pk, SHA256, b"SECRET", &mut SystemRng).unwrap();
            (seed.to_vec(), ct)
        }
        KeyPub::Ecc(q) => {
            let (seed, qe) =
                ecc_secret_encrypt(Curve::P256, q, SHA256, b"SECRET", &mut SystemRng).unwrap();
            (seed.to_vec(), [b16(&qe.x), b16(&qe.y)].concat())
        }
    };
    let nonce_caller = [0x5au8; 32];
    let sym_def = if sym.0 == c::ALG_AES {
        [sym.0, sym.1, c::ALG_CFB].map(u16::to_be_bytes).concat()
    } else {
        [sym.0, sym.1].map(u16::to_be_bytes).concat()
    };
    let body = [
        &tpm_key.to_be_bytes()[..],
        &c::RH_NULL.to_be_bytes(),
        &b16(&nonce_caller),
        &b16(&encrypted),
        &[c::SE_HMAC],
        &sym_def,
        &c::ALG_SHA256.to_be_bytes(),
    ]
    .concat();
    let r = t.execute(
        0,
        &command(c::ST_NO_SESSIONS, c::CC_StartAuthSession, &body),
    );
    assert_eq!(rc(&r), 0, "StartAuthSession {r:02x?}");
    let nonce_tpm = r[16..16 + u16_at(&r, 14)].to_vec();
    let key = session_key(SHA256, &[], &salt, &nonce_tpm, &nonce_caller).to_vec();
    Session {
        handle: u32_at(&r, 10),
        key,
        nonce_tpm,
        sym,
    }
}

impl Session {
    fn crypt(&self, value: &[u8], newer: &[u8], older: &[u8], data: &mut [u8], encrypt: bool) {
        let key = [&self.key[..], value].concat();
        if self.sym.0 == c::ALG_XOR {
            xor_obfuscate(SHA256, &key, newer, older, data).unwrap();
        } else {
            param_encrypt_cfb(
                SHA256,
                &key,
                newer,
                older,
                tpm_crypto::SymKey::aes(self.sym.1),
                data,
                encrypt,
            )
            .unwrap();
        }
    }

    /// Run `cc` on `handles` (with their Names), authorizing the first with this
    /// session and `auth` (the entity's authValue), with session attributes
    /// `attrs`. The first command parameter (a TPM2B) is encrypted when DECRYPT
    /// is set, the first response parameter decrypted when ENCRYPT is set, and
    /// the response HMAC is checked. Returns the response code and parameters.
    fn call(
        &mut self,
        t: &mut Tpm,
        cc: u32,
        handles: &[(u32, Vec<u8>)],
        auth: &[u8],
        attrs: u8,
        params: &[u8],
    ) -> (u32, Vec<u8>) {
        let mut params = params.to_vec();
        let nonce_caller: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
        if attrs & DECRYPT != 0 {
            let n = u16_at(&params, 0);
            let nonce_tpm = self.nonce_tpm.clone();
            self.crypt(auth, &nonce_caller, &nonce_tpm, &mut params[2..2 + n], true);
        }
        let names: Vec<&[u8]> = handles.iter().map(|(_, n)| n.as_slice()).collect();
        let cp_hash = digest(
            SHA256,
            &[&[&cc.to_be_bytes()[..]], &names[..], &[&params]].concat(),
        );
        let key = [&self.key[..], auth].concat();
        let mac = hmac(
            SHA256,
            &key,
            &[&cp_hash, &nonce_caller, &self.nonce_tpm, &[attrs]],
        );
        let area = [
            &self.handle.to_be_bytes()[..],
            &b16(&nonce_caller),
            &[attrs],
            &b16(&mac),
        ]
        .concat();
        let mut body: Vec<u8> = handles.iter().flat_map(|(h, _)| h.to_be_bytes()).collect();
        body.extend((area.len() as u32).to_be_bytes());
        body.extend(area);
        body.extend(&params);
        let r = t.execute(0, &command(c::ST_SESSIONS, cc, &body));
        if rc(&r) != 0 {
            return (rc(&r), Vec::new());
        }
        // Response handles: only Load here, one handle.
        let at = if cc == c::CC_Load { 14 } else { 10 };
        let psize = u32_at(&r, at) as usize;
        let mut out = r[at + 4..at + 4 + psize].to_vec();
        let mut a = at + 4 + psize;
        let nonce_tpm = r[a + 2..a + 2 + u16_at(&r, a)].to_vec();
        a += 2 + nonce_tpm.len();
        let r_attrs = r[a];
        let r_mac = &r[a + 3..a + 3 + u16_at(&r, a + 1)];
        let rp_hash = digest(SHA256, &[&0u32.to_be_bytes(), &cc.to_be_bytes(), &out]);
        let expect = hmac(
            SHA256,
            &key,
            &[&rp_hash, &nonce_tpm, &nonce_caller, &[r_attrs]],
        );
        assert_eq!(r_mac, expect.as_slice(), "response HMAC of {cc:#x}");
        self.nonce_tpm = nonce_tpm;
        if attrs & ENCRYPT != 0 {
            let n = u16_at(&out, 0);
            let nonce_tpm = self.nonce_tpm.clone();
            self.crypt(auth, &nonce_tpm, &nonce_caller, &mut out[2..2 + n], false);
        }
        (0, out)
    }
}

/// Seal `secret` under the primary over the salted session (inSensitive
/// encrypted, outPrivate returned encrypted), load it with a password, then
/// unseal it over the session (outData encrypted); wrong authValues fail with
/// TPM_RC_AUTH_FAIL, or TPM_RC_BAD_AUTH for a noDA object.
fn seal_and_unseal(rsa: bool, sym: (u16, u16)) {
    let mut t = started();
    let (primary, primary_name, key) = storage_primary(&mut t, rsa);
    let mut s = start_salted(&mut t, primary, &key, sym);
    let r = t.execute(0, &command(c::ST_NO_SESSIONS, c::CC_GetRandom, &[0, 8]));
    assert_eq!(rc(&r), 0);
    for no_da in [false, true] {
        let secret = b"a secret sealed over a salted session";
        let attrs: u32 = 0x52 | if no_da { 0x400 } else { 0 }; // fixedTPM|fixedParent|userWithAuth [|noDA]
        let public = [
            &c::ALG_KEYEDHASH.to_be_bytes()[..],
            &c::ALG_SHA256.to_be_bytes(),
            &attrs.to_be_bytes(),
            &[0, 0],
            &c::ALG_NULL.to_be_bytes(),
            &[0, 0],
        ]
        .concat();
        let params = [
            &b16(&[b16(b"pw"), b16(secret)].concat())[..],
            &b16(&public),
            &[0, 0],
            &0u32.to_be_bytes(),
        ]
        .concat();
        let parent = [(primary, primary_name.clone())];
        let (code, out) = s.call(
            &mut t,
            c::CC_Create,
            &parent,
            b"",
            CONTINUE | DECRYPT | ENCRYPT,
            &params,
        );
        assert_eq!(code, 0, "Create over the salted session");
        let private = &out[..2 + u16_at(&out, 0)];
        let out_public = &out[private.len()..private.len() + 2 + u16_at(&out, private.len())];
        let load = [&primary.to_be_bytes()[..], &pw_area(), private, out_public].concat();
        let r = t.execute(0, &command(c::ST_SESSIONS, c::CC_Load, &load));
        assert_eq!(rc(&r), 0, "Load of the decrypted outPrivate {r:02x?}");
        let item = u32_at(&r, 10);
        let item_name = r[20..20 + u16_at(&r, 18)].to_vec();
        let obj = [(item, item_name)];
        let (code, out) = s.call(&mut t, c::CC_Unseal, &obj, b"pw", CONTINUE | ENCRYPT, &[]);
        assert_eq!(code, 0, "Unseal over the salted session");
        assert_eq!(&out[2..], secret, "outData decrypted by the client");
        let (code, _) = s.call(
            &mut t,
            c::CC_Unseal,
            &obj,
            b"wrong",
            CONTINUE | ENCRYPT,
            &[],
        );
        let expect = if no_da {
            c::RC_BAD_AUTH
        } else {
            c::RC_AUTH_FAIL
        };
        assert_eq!(
            code,
            expect | c::RC_S | 0x100,
            "wrong authValue, noDA {no_da}"
        );
        let r = t.execute(
            0,
            &command(c::ST_NO_SESSIONS, c::CC_FlushContext, &item.to_be_bytes()),
        );
        assert_eq!(rc(&r), 0);
    }
}

#[test]
fn ecc_salted_session_with_xor_obfuscation() {
    seal_and_unseal(false, (c::ALG_XOR, c::ALG_SHA256));
}

#[test]
fn rsa_salted_session_with_xor_obfuscation() {
    seal_and_unseal(true, (c::ALG_XOR, c::ALG_SHA256));
}

#[test]
fn ecc_salted_session_with_aes_cfb() {
    seal_and_unseal(false, (c::ALG_AES, 128));
}

#[test]
fn bad_salts_are_refused_with_value_on_encrypted_salt() {
    // An ephemeral point off the curve and an empty salt: TPM_RC_VALUE on encryptedSalt.
    let mut t = started();
    let (primary, _, _) = storage_primary(&mut t, false);
    let other = tpm_crypto::EccKey::generate(Curve::P256, &mut SystemRng);
    let (_, qe) = ecc_secret_encrypt(
        Curve::P256,
        &other.public,
        SHA256,
        b"SECRET",
        &mut SystemRng,
    )
    .unwrap();
    let mut bad = qe.clone();
    bad.y[31] ^= 1;
    let body = |salt: &[u8]| {
        [
            &primary.to_be_bytes()[..],
            &c::RH_NULL.to_be_bytes(),
            &b16(&[1; 16]),
            &b16(salt),
            &[c::SE_HMAC],
            &c::ALG_NULL.to_be_bytes(),
            &c::ALG_SHA256.to_be_bytes(),
        ]
        .concat()
    };
    let r = t.execute(
        0,
        &command(
            c::ST_NO_SESSIONS,
            c::CC_StartAuthSession,
            &body(&[b16(&bad.x), b16(&bad.y)].concat()),
        ),
    );
    assert_eq!(rc(&r), c::RC_VALUE | c::RC_P | 0x200);
    let r = t.execute(
        0,
        &command(c::ST_NO_SESSIONS, c::CC_StartAuthSession, &body(&[])),
    );
    assert_eq!(rc(&r), c::RC_VALUE | c::RC_P | 0x200, "empty salt");
}
