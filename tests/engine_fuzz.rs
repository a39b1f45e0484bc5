//! Mutational fuzzing of the engine in process: commands built for every
//! command code the TPM offers (handles from a pool that exists, password
//! sessions, parameter bytes made of algorithm IDs, handles and sized
//! buffers) and the well-formed corpus, then mutated; and state blobs as a
//! migration would bring them (CMD_SET_STATEBLOB), mutated. Nothing may
//! panic, every response must be well formed, and an engine that accepted a
//! mutated state must still answer commands.
//!
//! Deterministic (a fixed seed); `VTPM_FUZZ_ITERS=N` runs N commands per
//! round instead of the default, `VTPM_FUZZ_SEED=S` another seed.

// support::ecc talks to a running vtpm through common.
mod common;
mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use support::corpus::{
    command, create_primary, ecc_parms, pw_area, pw_areas, valid_commands, Template, NO_SESSIONS,
    SESSIONS,
};
use tpm_core::persist::BlobKind;
use tpm_core::{MemoryStore, Tpm, TpmConfig};

/// A seeded generator with the few draws the fuzzers make.
struct Rng(StdRng);

impl Rng {
    fn seeded(seed: u64) -> Rng {
        Rng(StdRng::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.gen()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ALGS: &[u16] = &[
    0x0001, 0x0004, 0x0005, 0x0006, 0x0008, 0x000A, 0x000B, 0x000C, 0x000D, 0x0010, 0x0014, 0x0015,
    0x0016, 0x0017, 0x0018, 0x0019, 0x001A, 0x001B, 0x001C, 0x0020, 0x0021, 0x0022, 0x0023, 0x0025,
    0x003F, 0x0040, 0x0041, 0x0042, 0x0043, 0x0044, 0x0003, 0x0001, 0x0010,
];

/// Handles that exist after [`prepare`], and the permanent ones.
const HANDLES: &[u32] = &[
    0x4000_0001,
    0x4000_0007,
    0x4000_000A,
    0x4000_000B,
    0x4000_000C,
    0x4000_0009,
    0x8000_0000,
    0x8000_0001,
    0x8000_0002,
    0x8000_0003,
    0x8000_0004,
    0x8000_0005,
    0x8100_0001,
    0x8100_0002,
    0x8101_0001,
    0x0150_0001,
    0x0150_0002,
    0x0200_0000,
    0x0300_0000,
    0x0000_0000,
    0x0000_0010,
    0x0000_0017,
    0x0100_0000,
    0x4000_010F,
];

/// One parameter token: an algorithm, a handle, a sized buffer, a number.
fn token(r: &mut Rng, out: &mut Vec<u8>) {
    match r.below(8) {
        0 => out.extend_from_slice(&r.pick(ALGS).to_be_bytes()),
        1 => out.extend_from_slice(&r.pick(HANDLES).to_be_bytes()),
        2 | 3 => {
            let n = r.pick(&[0usize, 1, 2, 16, 20, 32, 48, 64, 128, 256, 600]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
            (0..n).for_each(|_| out.push(r.next() as u8));
        }
        4 => out.extend_from_slice(&(r.below(5) as u16).to_be_bytes()),
        5 => out.extend_from_slice(&(r.below(3) as u32).to_be_bytes()),
        6 => out.push(r.next() as u8),
        _ => out.extend_from_slice(&(r.next() as u32).to_be_bytes()),
    }
}

/// A command for `cc` with `handles` handles from the pool, a password
/// session per handle or none, and tokens.
fn generated(r: &mut Rng, cc: u32, handles: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..handles {
        body.extend_from_slice(&r.pick(HANDLES).to_be_bytes());
    }
    let sessions = handles > 0 && !r.chance(4);
    if sessions {
        let area = pw_area();
        // pw_area is one password session with its size prefix; several
        // handles get several sessions (the size prefix rewritten).
        let one = &area[4..];
        let n = 1 + r.below(handles.min(3));
        body.extend_from_slice(&((one.len() * n) as u32).to_be_bytes());
        (0..n).for_each(|_| body.extend_from_slice(one));
    }
    for _ in 0..r.below(12) {
        token(r, &mut body);
    }
    command(if sessions { SESSIONS } else { NO_SESSIONS }, cc, &body)
}

/// Flip, set, insert, delete or truncate bytes; usually the size field is
/// set right again so that the command gets past the header.
fn mutate(r: &mut Rng, mut c: Vec<u8>) -> Vec<u8> {
    damage(r, &mut c, 4, |r, c, at| {
        let mut t = Vec::new();
        token(r, &mut t);
        c.splice(at..at, t);
    });
    if c.len() >= 6 && !r.chance(8) {
        let n = c.len() as u32;
        c[2..6].copy_from_slice(&n.to_be_bytes());
    }
    c
}

/// 1 to `rounds` random changes to `b`: a bit flipped, an octet set to a
/// special value or a random one, one inserted or removed, a cut (never
/// inside a command header), or `more` at a random place.
fn damage(
    r: &mut Rng,
    b: &mut Vec<u8>,
    rounds: usize,
    mut more: impl FnMut(&mut Rng, &mut Vec<u8>, usize),
) {
    for _ in 0..1 + r.below(rounds) {
        if b.is_empty() {
            break;
        }
        let at = r.below(b.len());
        match r.below(7) {
            0 => b[at] ^= 1 << r.below(8),
            1 => b[at] = r.pick(&[0, 0xff, 0x7f, 0x80, 1, 2]),
            2 => b[at] = r.next() as u8,
            3 => b.insert(at, r.next() as u8),
            4 => {
                b.remove(at);
            }
            5 => b.truncate(at.max(10)),
            _ => more(r, b, at),
        }
    }
}

/// Execute, catching a panic; the response is checked for form.
fn run(tpm: &mut Tpm, cmd: &[u8]) -> Result<Vec<u8>, String> {
    let resp =
        catch_unwind(AssertUnwindSafe(|| tpm.execute(0, cmd))).map_err(|e| panic_text(&e))?;
    if resp.len() < 10 {
        return Err(format!("a response of {} bytes", resp.len()));
    }
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    let tag = u16::from_be_bytes([resp[0], resp[1]]);
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    if size != resp.len() {
        return Err(format!("size field {size} on {} bytes", resp.len()));
    }
    // TPM_ST_RSP_COMMAND only with TPM_RC_BAD_TAG, as TPM 1.2 clients expect.
    let bad_tag_answer = tag == 0x00C4 && rc == 0x1E;
    if tag != NO_SESSIONS && tag != SESSIONS && !bad_tag_answer {
        return Err(format!("response tag {tag:#x}"));
    }
    if rc != 0 && resp.len() != 10 {
        return Err(format!("error {rc:#x} with {} bytes", resp.len()));
    }
    Ok(resp)
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    let msg = e
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    format!("panic: {msg}")
}

/// A started engine with a primary key, a child, a persistent key, two NV
/// indices and a session, so that the handle pool names real things.
fn prepare() -> (Tpm, Vec<Vec<u8>>) {
    let mut tpm = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).expect("engine");
    tpm.power_on(false).expect("power on");
    let startup = command(NO_SESSIONS, 0x144, &0u16.to_be_bytes());
    run(&mut tpm, &startup).expect("startup");
    for (_, c) in valid_commands() {
        run(&mut tpm, &c).expect("a valid command");
    }
    // Persist the first primary; two NV indices.
    let persist = command(
        SESSIONS,
        0x120,
        &[
            &0x4000_0001u32.to_be_bytes()[..],
            &0x8000_0000u32.to_be_bytes(),
            &pw_area(),
            &0x8100_0001u32.to_be_bytes(),
        ]
        .concat(),
    );
    run(&mut tpm, &persist).expect("EvictControl");
    define_nv(&mut tpm);
    let seeds = children_and_their_commands(&mut tpm);
    (tpm, seeds)
}

/// A command with password sessions for the first `auths` of `handles`.
fn with_auth(cc: u32, handles: &[u32], auths: usize, params: &[&[u8]]) -> Vec<u8> {
    let mut body: Vec<u8> = handles.iter().flat_map(|h| h.to_be_bytes()).collect();
    body.extend(pw_areas(auths));
    params.iter().for_each(|p| body.extend_from_slice(p));
    command(SESSIONS, cc, &body)
}

/// A sized buffer.
fn b2(v: &[u8]) -> Vec<u8> {
    [&(v.len() as u16).to_be_bytes()[..], v].concat()
}

/// A storage primary and its children (an ECDSA signing key, an HMAC key,
/// an AES key, a sealed object), created; the transient objects flushed and
/// three children loaded (the TPM has three object slots); well-formed
/// commands that use them, to seed the pool past parameter parsing.
fn children_and_their_commands(tpm: &mut Tpm) -> Vec<Vec<u8>> {
    let ok =
        |r: &[u8], what: &str| assert_eq!(&r[6..10], &[0, 0, 0, 0], "{what}: {:02x?}", &r[..10]);
    let flush_all = |tpm: &mut Tpm| {
        for h in 0x8000_0000u32..0x8000_0008 {
            let _ = run(tpm, &command(NO_SESSIONS, 0x165, &h.to_be_bytes()));
        }
    };
    flush_all(tpm);
    let r = run(
        tpm,
        &create_primary(0x4000_0001, &[0, 0, 0, 0], &Template::ecc_storage()),
    )
    .expect("CreatePrimary");
    ok(&r, "CreatePrimary");
    // Persisted, so that it takes no object slot.
    let transient = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
    let parent = 0x8100_0002u32;
    let persist = with_auth(
        0x120,
        &[0x4000_0001, transient],
        1,
        &[&parent.to_be_bytes()],
    );
    ok(&run(tpm, &persist).expect("EvictControl"), "EvictControl");
    flush_all(tpm);
    let keyed = |attrs: u32, parms: Vec<u8>, ty: u16| Template {
        ty,
        name_alg: 0x000B,
        attrs,
        policy: Vec::new(),
        parms,
        unique: 0u16.to_be_bytes().to_vec(),
    };
    let signing = Template {
        attrs: 0x0004_0072,
        parms: ecc_parms(
            0x0010,
            0,
            0,
            &[0x00, 0x18, 0x00, 0x0B],
            0x0003,
            &[0x00, 0x10],
        ),
        ..Template::ecc_storage()
    };
    let children = [
        (signing, Vec::new()),
        (
            keyed(0x0004_0072, vec![0x00, 0x05, 0x00, 0x0B], 0x0008),
            Vec::new(),
        ),
        (
            keyed(
                0x0006_0072,
                vec![0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
                0x0025,
            ),
            Vec::new(),
        ),
        (
            keyed(0x0000_0052, vec![0x00, 0x10], 0x0008),
            b"sealed".to_vec(),
        ),
    ];
    let mut blobs = Vec::new();
    for (template, data) in &children {
        let sensitive = b2(&[&b2(b"")[..], &b2(data)].concat());
        let create = with_auth(
            0x153,
            &[parent],
            1,
            &[&sensitive, &template.to_2b(), &b2(b""), &0u32.to_be_bytes()],
        );
        let r = run(tpm, &create).expect("Create");
        ok(&r, "Create");
        // header, parameterSize, then outPrivate and outPublic.
        let take = |at: usize| -> Option<(Vec<u8>, usize)> {
            let n = u16::from_be_bytes([*r.get(at)?, *r.get(at + 1)?]) as usize;
            Some((r.get(at..at + 2 + n)?.to_vec(), at + 2 + n))
        };
        let (private, at) = take(14).expect("outPrivate");
        let (public, _) = take(at).expect("outPublic");
        blobs.push(with_auth(0x157, &[parent], 1, &[&private, &public]));
    }
    // The AES key's Load is a seed; the others fill the three slots.
    let mut handles = Vec::new();
    for load in [&blobs[0], &blobs[1], &blobs[3]] {
        let r = run(tpm, load).expect("Load");
        ok(&r, "Load");
        handles.push(u32::from_be_bytes([r[10], r[11], r[12], r[13]]));
    }
    let [sign, hmac, sealed] = handles[..] else {
        panic!("three children");
    };
    let null_ticket = [
        &0x8024u16.to_be_bytes()[..],
        &0x4000_0007u32.to_be_bytes(),
        &b2(b""),
    ]
    .concat();
    // A signature to verify: Sign's TPMT_SIGNATURE (ECDSA: alg, hash, r, s).
    let sign_cmd = with_auth(
        0x15D,
        &[sign],
        1,
        &[&b2(&[7; 32]), &0x0010u16.to_be_bytes(), &null_ticket],
    );
    let r = run(tpm, &sign_cmd).expect("Sign");
    ok(&r, "Sign");
    let sig = {
        let size = |at: usize| u16::from_be_bytes([r[at], r[at + 1]]) as usize;
        let r_end = 18 + 2 + size(18);
        r[14..r_end + 2 + size(r_end)].to_vec()
    };
    let pcrs = [
        &1u32.to_be_bytes()[..],
        &0x000Bu16.to_be_bytes(),
        &[3, 0xff, 0, 0],
    ]
    .concat();
    vec![
        sign_cmd,
        with_auth(
            0x158,
            &[sign],
            1,
            &[&b2(b"nonce"), &0x0010u16.to_be_bytes(), &pcrs],
        ),
        with_auth(
            0x148,
            &[hmac, sign],
            2,
            &[&b2(b"q"), &0x0010u16.to_be_bytes()],
        ),
        with_auth(
            0x155,
            &[hmac],
            1,
            &[&b2(b"data to mac"), &0x0010u16.to_be_bytes()],
        ),
        blobs[2].clone(),
        with_auth(0x15E, &[sealed], 1, &[]),
        with_auth(0x150, &[sealed, parent], 1, &[&b2(b"new auth")]),
        with_auth(
            0x137,
            &[0x4000_0001, 0x0150_0001],
            1,
            &[&b2(b"nvdata"), &0u16.to_be_bytes()],
        ),
        with_auth(
            0x14E,
            &[0x4000_0001, 0x0150_0001],
            1,
            &[&6u16.to_be_bytes(), &0u16.to_be_bytes()],
        ),
        with_auth(0x134, &[0x4000_0001, 0x0150_0002], 1, &[]),
        command(NO_SESSIONS, 0x173, &sign.to_be_bytes()),
        command(
            NO_SESSIONS,
            0x177,
            &[&sign.to_be_bytes()[..], &b2(&[7; 32]), &sig].concat(),
        ),
    ]
}

/// Two NV indices: an ordinary one and a counter.
fn define_nv(tpm: &mut Tpm) {
    for (index, attrs) in [(0x0150_0001u32, 0x0006_0006u32), (0x0150_0002, 0x0006_0016)] {
        let public = [
            &index.to_be_bytes()[..],
            &0x000Bu16.to_be_bytes(),
            &attrs.to_be_bytes(),
            &0u16.to_be_bytes(),
            &8u16.to_be_bytes(),
        ]
        .concat();
        let define = command(
            SESSIONS,
            0x12A,
            &[
                &0x4000_0001u32.to_be_bytes()[..],
                &pw_area(),
                &0u16.to_be_bytes(),
                &(public.len() as u16).to_be_bytes(),
                &public,
            ]
            .concat(),
        );
        run(tpm, &define).expect("NV_DefineSpace");
    }
}

/// The command codes the TPM lists, with their handle counts (TPMA_CC).
fn commands(tpm: &mut Tpm) -> Vec<(u32, usize)> {
    let get = command(
        NO_SESSIONS,
        0x17A,
        &[
            &2u32.to_be_bytes()[..],
            &0x11Fu32.to_be_bytes(),
            &256u32.to_be_bytes(),
        ]
        .concat(),
    );
    let r = run(tpm, &get).expect("GetCapability(COMMANDS)");
    let n = u32::from_be_bytes([r[15], r[16], r[17], r[18]]) as usize;
    (0..n)
        .map(|i| {
            let a = &r[19 + 4 * i..23 + 4 * i];
            let attrs = u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
            (attrs & 0xFFFF, ((attrs >> 25) & 7) as usize)
        })
        .collect()
}

#[test]
fn mutated_commands_never_panic_the_engine() {
    let iters = env_or("VTPM_FUZZ_ITERS", 100_000);
    let mut r = Rng::seeded(env_or("VTPM_FUZZ_SEED", 0x5EED_1234_ABCD_0001));
    let (mut tpm, seeds) = prepare();
    // The seeds that use the children work on a prepared TPM (all but the
    // AES key's Load, which finds the three object slots taken).
    for c in &seeds {
        let r = run(&mut tpm, c).expect("a seed");
        let (cc, rc) = (
            u32::from_be_bytes([c[6], c[7], c[8], c[9]]),
            u32::from_be_bytes([r[6], r[7], r[8], r[9]]),
        );
        assert!(
            rc == 0 || (cc == 0x157 && rc == 0x902),
            "seed {cc:#x}: {rc:#x}"
        );
    }
    let (mut tpm, _) = prepare();
    let ccs = commands(&mut tpm);
    assert!(ccs.len() > 100, "{} commands listed", ccs.len());
    // The pool grows by every command that met a (command code, response
    // code) pair not seen before: a cheap stand-in for coverage, which
    // walks generated commands past one parameter check after another.
    let mut pool: Vec<Vec<u8>> = valid_commands().into_iter().map(|(_, c)| c).collect();
    pool.extend(seeds);
    let mut pairs = std::collections::HashSet::<(u32, u32)>::new();
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeMap::<u32, usize>::new();
    for i in 0..iters {
        // A fresh engine now and then: commands that succeeded change state
        // (Clear, hierarchy changes, flushed handles).
        if i % 500 == 499 {
            tpm = prepare().0;
        }
        let base = if !r.chance(3) {
            pool[r.below(pool.len())].clone()
        } else {
            let (cc, handles) = ccs[r.below(ccs.len())];
            generated(&mut r, cc, handles)
        };
        let cmd = if r.chance(3) {
            base
        } else {
            mutate(&mut r, base)
        };
        match run(&mut tpm, &cmd) {
            Ok(resp) => {
                let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
                *codes.entry(rc).or_default() += 1;
                let cc = cmd
                    .get(6..10)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if ccs.iter().any(|(c, _)| *c == cc) && pairs.insert((cc, rc)) {
                    pool.push(cmd);
                }
            }
            Err(e) => {
                failures.push(format!("{e}: command {}", hex(&cmd)));
                tpm = prepare().0;
            }
        }
    }
    // What the commands reached (shown with --nocapture): success and the
    // response codes, so a change that stops them getting past parsing shows.
    let ok = codes.get(&0).copied().unwrap_or(0);
    let done: std::collections::HashSet<u32> = pairs
        .iter()
        .filter(|(_, rc)| *rc == 0)
        .map(|(cc, _)| *cc)
        .collect();
    eprintln!(
        "{iters} commands, {ok} succeeded, {} distinct response codes, {} (command, code) pairs, {} command codes succeeded",
        codes.len(),
        pairs.len(),
        done.len()
    );
    assert!(ok > 0, "no mutated or generated command succeeded");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutated_state_blobs_never_panic_the_engine() {
    let iters = env_or("VTPM_FUZZ_ITERS", 100_000) / 20;
    let mut r = Rng::seeded(env_or("VTPM_FUZZ_SEED", 0x5EED_1234_ABCD_0002));
    let (mut tpm, _) = prepare();
    let blobs: Vec<(BlobKind, Vec<u8>)> = [BlobKind::Permanent, BlobKind::Volatile]
        .into_iter()
        .map(|k| (k, tpm.state_blob(k).expect("state blob")))
        .collect();
    let probe = command(NO_SESSIONS, 0x17B, &16u16.to_be_bytes());
    let mut failures = Vec::new();
    for _ in 0..iters {
        let (kind, good) = &blobs[r.below(blobs.len())];
        let mut b = good.clone();
        damage(&mut r, &mut b, 3, |_, b, at| b.truncate(at));
        let mut fresh =
            Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).expect("engine");
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if fresh.set_state_blob(*kind, &b).is_ok() && fresh.power_on(false).is_ok() {
                let startup = command(NO_SESSIONS, 0x144, &1u16.to_be_bytes());
                let _ = fresh.execute(0, &startup);
                Some(fresh.execute(0, &probe))
            } else {
                None
            }
        }));
        match outcome {
            Err(e) => failures.push(format!("{}: {kind:?} blob {}", panic_text(&e), hex(&b))),
            Ok(Some(resp)) if resp.len() < 10 => {
                failures.push(format!("{kind:?}: a {}-byte answer", resp.len()))
            }
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
