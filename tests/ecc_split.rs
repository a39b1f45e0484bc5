//! The split ECC operations end to end: TPM2_Commit + ECDAA signing as
//! tpm2-tools does it (the signatures checked against the commitment),
//! TPM2_EC_Ephemeral + TPM2_ZGen_2Phase (ECDH and ECMQV) with one party on
//! vtpm and the other on swtpm, the response codes for bad input compared
//! with swtpm, and the commit state kept by Shutdown(STATE) and renewed by a
//! TPM Reset.

mod common;
mod support;

use common::{start_swtpm, RawConn, ToolBench, Vtpm};
use support::corpus::{command, pw_area, NO_SESSIONS, SESSIONS};
use support::ecc::*;
use tpm_crypto::{ecc_math, ecdaa, Curve, HashAlg, Point};

const P256: Curve = Curve::P256;
const ALG_SM2: u16 = 0x001B;
/// The generator of `curve`.
fn g_of(curve: Curve) -> Point {
    let p = curve.params();
    Point::new(&p.gx, &p.gy)
}

/// [k]G on P-256.
fn mul_g(k: &[u8]) -> Point {
    ecc_math::mul(P256, k, None).unwrap()
}

/// `p` moved off the curve.
fn off_curve(p: &Point) -> Point {
    let mut q = p.clone();
    if let Some(last) = q.y.last_mut() {
        *last ^= 1;
    }
    q
}

/// LoadExternal of the P-256 key with private scalar `d`.
fn load_external(c: &mut RawConn, d: &[u8], attrs: u32, scheme: &[u8]) -> u32 {
    load_external_on(P256, c, d, attrs, scheme)
}

fn ecdaa_scheme() -> Vec<u8> {
    [ALG_ECDAA, ALG_SHA256, 0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// The answer to TPM2_Commit: K, L, E, counter.
struct Commit {
    k: Point,
    l: Point,
    e: Point,
    counter: u16,
}

fn commit(c: &mut RawConn, h: u32, p1: &[u8], s2: &[u8], y2: &[u8]) -> Result<Commit, u32> {
    let body = [&h.to_be_bytes()[..], &pw_area(), p1, &tpm2b(s2), &tpm2b(y2)].concat();
    let (rc, r) = send(c, &command(SESSIONS, 0x18B, &body));
    if rc != 0 {
        return Err(rc);
    }
    let mut rd = Rd(&r);
    rd.u32();
    Ok(Commit {
        k: rd.point(),
        l: rd.point(),
        e: rd.point(),
        counter: rd.u16(),
    })
}

fn ec_ephemeral(c: &mut RawConn, curve: u16) -> Result<(Point, u16), u32> {
    let (rc, r) = send(c, &command(NO_SESSIONS, 0x18E, &curve.to_be_bytes()));
    if rc != 0 {
        return Err(rc);
    }
    let mut rd = Rd(&r);
    Ok((rd.point(), rd.u16()))
}

fn zgen(
    c: &mut RawConn,
    h: u32,
    qs_b: &Point,
    qe_b: &Point,
    scheme: u16,
    counter: u16,
) -> Result<(Point, Point), u32> {
    let body = [
        &h.to_be_bytes()[..],
        &pw_area(),
        &point2b(qs_b),
        &point2b(qe_b),
        &scheme.to_be_bytes(),
        &counter.to_be_bytes(),
    ]
    .concat();
    let (rc, r) = send(c, &command(SESSIONS, 0x18D, &body));
    if rc != 0 {
        return Err(rc);
    }
    let mut rd = Rd(&r);
    rd.u32();
    Ok((rd.point(), rd.point()))
}

/// TPM2_Sign of `digest` with ECDAA and commit count `count`: (k, s).
fn sign_ecdaa(
    c: &mut RawConn,
    h: u32,
    digest: &[u8],
    count: u16,
) -> Result<(Vec<u8>, Vec<u8>), u32> {
    let (rc, r) = sign_raw(c, h, &[ALG_ECDAA, ALG_SHA256, count], digest);
    if rc != 0 {
        return Err(rc);
    }
    let mut rd = Rd(&r);
    rd.u32();
    assert_eq!(rd.u16(), ALG_ECDAA);
    assert_eq!(rd.u16(), ALG_SHA256);
    Ok((rd.b2(), rd.b2()))
}

/// An s2 whose x2 = SHA-256(s2) mod p is on P-256, with its y2.
fn s2_on_curve(curve: Curve) -> (Vec<u8>, Point) {
    (0u8..=255)
        .find_map(|i| {
            let s2 = vec![b's', i];
            let x2 = ecc_math::mod_p(curve, &tpm_crypto::digest(HashAlg::Sha256, &[&s2]));
            ecc_math::decompress(curve, &x2, false).map(|p| (s2, p))
        })
        .unwrap()
}

fn hex(p: &Point) -> String {
    p.x.iter().chain(&p.y).map(|b| format!("{b:02x}")).collect()
}

/// Commit's answers and refusals on one TPM, as comparable lines.
fn commit_cases(port: u16, curve: Curve) -> Vec<String> {
    let mut c = RawConn::open(port);
    let d = [0x11u8; 32];
    let key = load_external_on(curve, &mut c, &d, SIGN_KEY, &ecdaa_scheme());
    let ecdsa_key = load_external_on(curve, &mut c, &d, SIGN_KEY, &scheme(ALG_ECDSA));
    let decrypt_key = load_external_on(curve, &mut c, &[0x12; 32], DECRYPT_KEY, &scheme(ALG_NULL));
    let (s2, p2) = s2_on_curve(curve);
    let mut out = Vec::new();
    // P1 = G and P2 from s2: K = [d]P2 is the same on every TPM; L = [r]P2
    // and E = [r]G hold the secret r (E is checked through a signature below).
    let full = commit(&mut c, key, &point2b(&g_of(curve)), &s2, &p2.y).unwrap();
    assert_eq!(full.k, ecc_math::mul(curve, &d, Some(&p2)).unwrap());
    assert!(tpm_crypto::ecc::is_on_curve(curve, &full.l));
    assert!(tpm_crypto::ecc::is_on_curve(curve, &full.e));
    out.push(format!("K {}", hex(&full.k)));
    // Neither P1 nor s2: E = [r]G only.
    let bare = commit(&mut c, key, &EMPTY_POINT, &[], &[]).unwrap();
    out.push(format!(
        "bare: K {:?} L {:?} E on curve {}, counter step {}",
        bare.k,
        bare.l,
        tpm_crypto::ecc::is_on_curve(curve, &bare.e),
        bare.counter.wrapping_sub(full.counter)
    ));
    // s2 and y2 without P1: K and L, no E.
    let no_p1 = commit(&mut c, key, &EMPTY_POINT, &s2, &p2.y).unwrap();
    out.push(format!("no P1: K {} E {:?}", hex(&no_p1.k), no_p1.e));
    for (what, r) in [
        ("s2 without y2", commit(&mut c, key, &EMPTY_POINT, &s2, &[])),
        (
            "y2 without s2",
            commit(&mut c, key, &EMPTY_POINT, &[], &p2.y),
        ),
        (
            "P1 off the curve",
            commit(&mut c, key, &point2b(&off_curve(&g_of(curve))), &[], &[]),
        ),
        (
            "P2 off the curve",
            commit(&mut c, key, &EMPTY_POINT, &s2, &off_curve(&p2).y),
        ),
        (
            "an ECDSA key",
            commit(&mut c, ecdsa_key, &EMPTY_POINT, &[], &[]),
        ),
        (
            "a decryption key",
            commit(&mut c, decrypt_key, &EMPTY_POINT, &[], &[]),
        ),
        ("an empty P1 buffer", commit(&mut c, key, &[0, 0], &[], &[])),
    ] {
        out.push(format!("{what}: {:#x}", r.err().unwrap_or(0)));
    }
    out.push(format!(
        "EC_Ephemeral bad curve: {:#x}",
        ec_ephemeral(&mut c, 0x0999).err().unwrap_or(0)
    ));
    // ECDAA signing: the count of the bare commit signs once, then is spent;
    // a count never handed out is refused the same way.
    let digest = tpm_crypto::digest(HashAlg::Sha256, &[b"message"]);
    let q = ecc_math::mul(curve, &d, None).unwrap();
    let (k, s) = sign_ecdaa(&mut c, key, &digest, full.counter).unwrap();
    assert!(ecdaa::verify_ecdaa(
        curve,
        &q,
        &full.e,
        HashAlg::Sha256,
        &digest,
        &k,
        &s
    ));
    let (k, s) = sign_ecdaa(&mut c, key, &digest, bare.counter).unwrap();
    assert!(ecdaa::verify_ecdaa(
        curve,
        &q,
        &bare.e,
        HashAlg::Sha256,
        &digest,
        &k,
        &s
    ));
    for (what, count) in [
        ("spent", bare.counter),
        ("never handed out", bare.counter.wrapping_add(40)),
    ] {
        out.push(format!(
            "sign, count {what}: {:#x}",
            sign_ecdaa(&mut c, key, &digest, count).err().unwrap_or(0)
        ));
    }
    // VerifySignature does not check ECDAA signatures.
    let sig = [
        &ALG_ECDAA.to_be_bytes()[..],
        &ALG_SHA256.to_be_bytes(),
        &tpm2b(&k),
        &tpm2b(&s),
    ]
    .concat();
    let body = [&key.to_be_bytes()[..], &tpm2b(&digest), &sig].concat();
    out.push(format!(
        "verify ECDAA: {:#x}",
        send(&mut c, &command(NO_SESSIONS, 0x177, &body)).0
    ));
    for h in [key, ecdsa_key, decrypt_key] {
        assert_eq!(
            send(&mut c, &command(NO_SESSIONS, 0x165, &h.to_be_bytes())).0,
            0
        );
    }
    out
}

/// On P-256 and on BN P-256, the curve DAA schemes use.
#[test]
fn commit_and_ecdaa_signing_answer_as_swtpm() {
    let v = Vtpm::start_socket();
    let sw = start_swtpm();
    for curve in [P256, Curve::BnP256] {
        let ours = commit_cases(v.port, curve);
        println!("vtpm {curve:?}: {ours:#?}");
        assert_eq!(ours[3], "s2 without y2: 0x3d5", "TPM_RC_SIZE on y2");
        if let Some(sw) = &sw {
            assert_eq!(ours, commit_cases(sw.port, curve), "swtpm, {curve:?}");
        }
    }
}

/// Party A's side of a two-phase exchange on one TPM, party B's on another:
/// (A's Z1, Z2), (B's Z1, Z2).
type Zs = ((Point, Point), (Point, Point));

fn exchange(
    a: &mut RawConn,
    b: &mut RawConn,
    ha: u32,
    hb: u32,
    qs_a: &Point,
    qs_b: &Point,
    alg: u16,
) -> Zs {
    let (qe_a, ca) = ec_ephemeral(a, 3).unwrap();
    let (qe_b, cb) = ec_ephemeral(b, 3).unwrap();
    let za = zgen(a, ha, qs_b, &qe_b, alg, ca).unwrap();
    let zb = zgen(b, hb, qs_a, &qe_a, alg, cb)
        .unwrap_or_else(|rc| panic!("party B, scheme {alg:#x}: {rc:#x}"));
    (za, zb)
}

/// Two parties' static keys loaded on `a` and `b`: (handle on a, handle on
/// b, QsA, QsB).
fn static_keys(a: &mut RawConn, b: &mut RawConn) -> (u32, u32, Point, Point) {
    let (ds_a, ds_b) = ([0x21u8; 32], [0x42u8; 32]);
    let ha = load_external(a, &ds_a, DECRYPT_KEY, &scheme(ALG_NULL));
    let hb = load_external(b, &ds_b, DECRYPT_KEY, &scheme(ALG_NULL));
    (ha, hb, mul_g(&ds_a), mul_g(&ds_b))
}

#[test]
fn two_phase_ecdh_between_vtpm_and_swtpm() {
    let v = Vtpm::start_socket();
    // Party B on swtpm, or on a second vtpm when swtpm is not installed.
    let other = start_swtpm().unwrap_or_else(Vtpm::start_socket);
    let (mut a, mut b) = (RawConn::open(v.port), RawConn::open(other.port));
    let (ha, hb, qs_a, qs_b) = static_keys(&mut a, &mut b);
    // Zs = [dsA]QsB on both sides, and the same Ze.
    let ((zs_a, ze_a), (zs_b, ze_b)) = exchange(&mut a, &mut b, ha, hb, &qs_a, &qs_b, ALG_ECDH);
    assert_eq!(
        zs_a,
        ecc_math::mul(P256, &[0x21u8; 32], Some(&qs_b)).unwrap()
    );
    assert_eq!(zs_a, zs_b);
    assert_eq!(ze_a, ze_b, "Ze agrees with the other TPM");
    assert_ne!(ze_a, zs_a);
}

/// EC-MQV between two vtpm instances. (libtpms 0.9 cannot be the other
/// party: its ZGen_2Phase with TPM_ALG_ECMQV divides by an order it never
/// set and enters failure mode, TPM_RC_FAILURE.)
#[test]
fn two_phase_ecmqv_between_two_vtpms() {
    let (v, w) = (Vtpm::start_socket(), Vtpm::start_socket());
    let (mut a, mut b) = (RawConn::open(v.port), RawConn::open(w.port));
    let (ha, hb, qs_a, qs_b) = static_keys(&mut a, &mut b);
    let ((z_a, empty_a), (z_b, empty_b)) =
        exchange(&mut a, &mut b, ha, hb, &qs_a, &qs_b, ALG_ECMQV);
    assert_eq!(z_a, z_b, "both parties compute the same Z");
    assert!(tpm_crypto::ecc::is_on_curve(P256, &z_a));
    assert_ne!(
        z_a,
        ecc_math::mul(P256, &[0x21u8; 32], Some(&qs_b)).unwrap(),
        "not ECDH"
    );
    assert_eq!(
        (empty_a, empty_b),
        (Point::new(&[], &[]), Point::new(&[], &[]))
    );
}

/// The SM2 key exchange between two vtpm instances, on the SM2 curve's
/// stand-in P-256 (the exchange is defined on any curve).
#[test]
fn two_phase_sm2_between_two_vtpms() {
    let (v, w) = (Vtpm::start_socket(), Vtpm::start_socket());
    let (mut a, mut b) = (RawConn::open(v.port), RawConn::open(w.port));
    let (ha, hb, qs_a, qs_b) = static_keys(&mut a, &mut b);
    let ((u_a, empty), (u_b, _)) = exchange(&mut a, &mut b, ha, hb, &qs_a, &qs_b, ALG_SM2);
    assert_eq!(u_a, u_b, "both parties compute the same U");
    assert!(tpm_crypto::ecc::is_on_curve(P256, &u_a));
    assert_eq!(empty, Point::new(&[], &[]));
}

/// ZGen_2Phase and EC_Ephemeral refusals on one TPM.
fn zgen_cases(port: u16) -> Vec<String> {
    let mut c = RawConn::open(port);
    let key = load_external(&mut c, &[0x31; 32], DECRYPT_KEY, &scheme(ALG_NULL));
    let ecdh_key = load_external(&mut c, &[0x32; 32], DECRYPT_KEY, &scheme(ALG_ECDH));
    let sign_key = load_external(&mut c, &[0x33; 32], SIGN_KEY, &scheme(ALG_NULL));
    let (qs, qe) = (mul_g(&[5]), mul_g(&[7]));
    let (q, counter) = ec_ephemeral(&mut c, 3).unwrap();
    let mut out = vec![format!(
        "Q on curve: {}",
        tpm_crypto::ecc::is_on_curve(P256, &q)
    )];
    let mut rc = |h, qs: &Point, qe: &Point, alg, n| {
        format!("{:#x}", zgen(&mut c, h, qs, qe, alg, n).err().unwrap_or(0))
    };
    for (what, r) in [
        (
            "QsB off the curve",
            rc(key, &off_curve(&qs), &qe, ALG_ECDH, counter),
        ),
        (
            "QeB off the curve",
            rc(key, &qs, &off_curve(&qe), ALG_ECDH, counter),
        ),
        ("NULL scheme", rc(key, &qs, &qe, ALG_NULL, counter)),
        ("signing scheme", rc(key, &qs, &qe, ALG_ECDSA, counter)),
        (
            "key scheme ECDH, ECMQV asked",
            rc(ecdh_key, &qs, &qe, ALG_ECMQV, counter),
        ),
        ("a signing key", rc(sign_key, &qs, &qe, ALG_ECDH, counter)),
        (
            "count never handed out",
            rc(key, &qs, &qe, ALG_ECDH, counter.wrapping_add(9)),
        ),
        ("good", rc(key, &qs, &qe, ALG_ECDH, counter)),
        ("count spent", rc(key, &qs, &qe, ALG_ECDH, counter)),
    ] {
        out.push(format!("{what}: {r}"));
    }
    out
}

#[test]
fn zgen_2phase_refusals_as_swtpm() {
    let v = Vtpm::start_socket();
    let ours = zgen_cases(v.port);
    println!("vtpm: {ours:#?}");
    assert!(ours.contains(&"good: 0x0".to_string()));
    if let Some(sw) = start_swtpm() {
        assert_eq!(ours, zgen_cases(sw.port), "swtpm");
    }
}

fn shutdown(c: &mut RawConn, su: u16) {
    assert_eq!(
        send(c, &command(NO_SESSIONS, 0x145, &su.to_be_bytes())).0,
        0
    );
}

#[test]
fn commits_survive_shutdown_state_and_die_with_a_reset() {
    let mut v = Vtpm::start_socket();
    let d = [0x41u8; 32];
    let qs = mul_g(&[5]);
    // QeB = [7]G makes Ze = [de·7]G = [7]Qe, checkable without de.
    let qe_b = mul_g(&[7]);
    let (qe, c1, c2) = {
        let mut c = RawConn::open(v.port);
        let (qe, c1) = ec_ephemeral(&mut c, 3).unwrap();
        let (_, c2) = ec_ephemeral(&mut c, 3).unwrap();
        shutdown(&mut c, 1);
        (qe, c1, c2)
    };
    assert!(v.guard.terminate().is_some());
    v.restart_socket(&["--flags", "not-need-init"]);
    let mut c = RawConn::open(v.port);
    assert_eq!(
        send(&mut c, &command(NO_SESSIONS, 0x144, &1u16.to_be_bytes())).0,
        0,
        "Startup(STATE)"
    );
    let key = load_external(&mut c, &d, DECRYPT_KEY, &scheme(ALG_NULL));
    let (_, ze) =
        zgen(&mut c, key, &qs, &qe_b, ALG_ECDH, c1).expect("a commit from before the restart");
    assert_eq!(ze, ecc_math::mul(P256, &[7], Some(&qe)).unwrap());
    // A TPM Reset renews the nonce: the other count is gone.
    shutdown(&mut c, 0);
    assert!(v.guard.terminate().is_some());
    v.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let mut c = RawConn::open(v.port);
    let key = load_external(&mut c, &d, DECRYPT_KEY, &scheme(ALG_NULL));
    assert_eq!(
        zgen(&mut c, key, &qs, &qe_b, ALG_ECDH, c2).err(),
        Some(0x4C4),
        "TPM_RC_VALUE on counter"
    );
}

/// The ECDAA flow of tpm2-tools: tpm2_create -G ecc256:ecdaa, two
/// tpm2_commit, tpm2_sign with each --commit-index (the signatures verify
/// against the commitments E), and a spent index refused.
fn tools_ecdaa(tpm: Vtpm) -> Vec<String> {
    let b = ToolBench::new(tpm);
    b.ok("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx"]);
    b.key("key", "ecc256:ecdaa", None);
    b.ok("tpm2_commit", &["-c", "key.ctx", "-t", "c0", "-u", "E0"]);
    b.ok("tpm2_commit", &["-c", "key.ctx", "-t", "c1", "-u", "E1"]);
    let counters = (b.read("c0"), b.read("c1"));
    b.write("msg", b"attest this");
    let digest = tpm_crypto::digest(HashAlg::Sha256, &[b"attest this"]);
    // The public point is the end of TPM2B_PUBLIC: x and y, 32 octets each.
    let public = b.read("key.pub");
    let tail = &public[public.len() - 68..];
    assert_eq!((&tail[..2], &tail[34..36]), (&[0, 32][..], &[0, 32][..]));
    let q = Point::new(&tail[2..34], &tail[36..]);
    let mut out = vec![format!("counters {counters:?}")];
    for (index, e) in [("1", "E1"), ("0", "E0")] {
        let sig = format!("sig{index}");
        b.ok(
            "tpm2_sign",
            &[
                "-c",
                "key.ctx",
                "-g",
                "sha256",
                "-s",
                "ecdaa",
                "--commit-index",
                index,
                "-o",
                &sig,
                "msg",
            ],
        );
        let e = Rd(&b.read(e)).point();
        let bytes = b.read(&sig);
        let mut rd = Rd(&bytes);
        let (alg, hash, k, s) = (rd.u16(), rd.u16(), rd.b2(), rd.b2());
        assert!(
            ecdaa::verify_ecdaa(P256, &q, &e, HashAlg::Sha256, &digest, &k, &s),
            "index {index}"
        );
        out.push(format!(
            "index {index}: alg {alg:#x} hash {hash:#x}, s of {} octets",
            s.len()
        ));
    }
    out.push(format!(
        "spent index: {:#x}",
        b.fails(
            "tpm2_sign",
            &[
                "-c",
                "key.ctx",
                "-g",
                "sha256",
                "-s",
                "ecdaa",
                "--commit-index",
                "0",
                "-o",
                "x",
                "msg"
            ]
        )
    ));
    out.push(format!(
        "verifysignature: {}",
        b.code(
            "tpm2_verifysignature",
            &["-c", "key.ctx", "-g", "sha256", "-m", "msg", "-s", "sig0"]
        )
    ));
    out
}

#[test]
fn tpm2_tools_ecdaa_flow_as_swtpm() {
    need_tools!();
    let ours = tools_ecdaa(Vtpm::start_socket());
    println!("vtpm: {ours:#?}");
    assert_eq!(ours[0], "counters ([0, 0], [0, 1])");
    if let Some(sw) = start_swtpm() {
        assert_eq!(ours, tools_ecdaa(sw), "swtpm");
    }
}

/// tpm2_ecephemeral + tpm2_zgen2phase (ECDH) with a decryption key made by
/// tpm2_create; party B's points are [5]G and [7]G, so Z1 = [5]QsA and
/// Z2 = [7]QeA are known. A spent counter is refused. (No -s: tpm2-tools
/// 5.4 looks "ecdh" up among signing schemes and refuses it; the key's
/// scheme, ECDH, is used.)
fn tools_two_phase(tpm: Vtpm) -> Vec<String> {
    let b = ToolBench::new(tpm);
    b.ok("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx"]);
    b.key(
        "key",
        "ecc256:ecdh",
        Some("fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt"),
    );
    let public = b.read("key.pub");
    let tail = &public[public.len() - 68..];
    let qs_a = Point::new(&tail[2..34], &tail[36..]);
    b.write("QsB", &point2b(&mul_g(&[5])));
    b.write("QeB", &point2b(&mul_g(&[7])));
    b.ok("tpm2_ecephemeral", &["-u", "QeA", "-t", "ctr", "ecc256"]);
    let qe_a = Rd(&b.read("QeA")).point();
    let ctr = b.read("ctr");
    let counter = u16::from_be_bytes([ctr[0], ctr[1]]).to_string();
    let zgen = [
        "-c",
        "key.ctx",
        "-t",
        &counter,
        "--static-public",
        "QsB",
        "--ephemeral-public",
        "QeB",
        "--output-Z1",
        "z1",
        "--output-Z2",
        "z2",
    ];
    b.ok("tpm2_zgen2phase", &zgen);
    let (z1, z2) = (Rd(&b.read("z1")).point(), Rd(&b.read("z2")).point());
    assert_eq!(z1, ecc_math::mul(P256, &[5], Some(&qs_a)).unwrap());
    assert_eq!(z2, ecc_math::mul(P256, &[7], Some(&qe_a)).unwrap());
    vec![
        format!("counter {counter}"),
        format!("spent counter: {}", b.code("tpm2_zgen2phase", &zgen)),
    ]
}

#[test]
fn tpm2_tools_ecephemeral_and_zgen2phase_as_swtpm() {
    need_tools!();
    let ours = tools_two_phase(Vtpm::start_socket());
    println!("vtpm: {ours:?}");
    if let Some(sw) = start_swtpm() {
        assert_eq!(ours, tools_two_phase(sw), "swtpm");
    }
}
