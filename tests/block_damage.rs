//! A failing disk under a realistic TPM state: every 4 KiB block of the image
//! is zeroed, and separately has one random bit flipped. The state (persistent
//! keys, NV indices of each type, a counter after 1,000 increments) is made by
//! the real vtpm with tpm2-tools. Each damaged image must open with exactly
//! the latest state (repaired from the redundant copies, and the repair
//! logged) or be refused with a clear error; never start empty or older.
//!
//! Every block is tried on the NVRAM the way `vtpm` opens it (in memory, so
//! the matrix takes seconds); a sample of blocks (both header slots, the
//! first and last blocks of both copies of the live log, a block of the other
//! region and a few unused ones) is tried through the real binary, checked
//! with tpm2-tools.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{tpm2_ok, try_start_dir, vtpm_output, RawConn, Vtpm};
use nvram::format::{Header, SLOT_SIZE};
use nvram::{MemBackend, Nvram, OpenOptions};
use rand::{Rng, SeedableRng};

const BLOCK: usize = 4096;
const ORDINARY: &str = "0x1500001";
const COUNTER: &str = "0x1500002";
const BITS: &str = "0x1500003";
const EXTEND: &str = "0x1500004";
const PINFAIL: &str = "0x1500005";
const INCREMENTS: u64 = 1000;

/// NV_Increment(owner, index) with an empty password session, raw.
fn increment_command(index: u32) -> Vec<u8> {
    let mut v = 0x8002u16.to_be_bytes().to_vec();
    let body: Vec<u8> = [
        &0x4000_0001u32.to_be_bytes()[..],
        &index.to_be_bytes(),
        &9u32.to_be_bytes(),
        &0x4000_0009u32.to_be_bytes(),
        &[0, 0, 1, 0, 0],
    ]
    .concat();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&0x134u32.to_be_bytes());
    v.extend(body);
    v
}

/// Send `cmd` `n` times over one data connection; every answer must be success.
fn send_repeatedly(port: u16, cmd: &[u8], n: u64) {
    let mut c = RawConn::open(port);
    for i in 0..n {
        let (rc, _) = c.send(cmd);
        assert_eq!(rc, 0, "command {i} answered {rc:#x}");
    }
}

/// What the TPM shows of its state, read with tpm2-tools.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    persistent: String,
    names: Vec<String>,
    nv: Vec<String>,
}

fn look(tcti: &str, scratch: &Path) -> Seen {
    let persistent = tpm2_ok("tpm2_getcap", &["handles-persistent"], tcti);
    let names = ["0x81000001", "0x81000002"]
        .iter()
        .map(|h| {
            let out = tpm2_ok("tpm2_readpublic", &["-c", h], tcti);
            out.lines()
                .find(|l| l.starts_with("name:"))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let nv = [ORDINARY, COUNTER, BITS, EXTEND]
        .iter()
        .map(|i| {
            let f = scratch.join("nv.out");
            tpm2_ok(
                "tpm2_nvread",
                &[i, "-C", "o", "-o", f.to_str().unwrap()],
                tcti,
            );
            std::fs::read(&f)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .collect();
    Seen {
        persistent,
        names,
        nv,
    }
}

/// Blob name → contents.
type Blobs = BTreeMap<String, Vec<u8>>;

/// The blobs an image opens to, what opening it repaired (writable, in
/// memory), and the image after the repair.
fn open_mem(image: Vec<u8>) -> Result<(Blobs, Vec<String>, Vec<u8>), String> {
    let be = MemBackend { data: image };
    let shared = std::sync::Arc::new(capture::Slot::default());
    let nv = Nvram::open_backend(
        Box::new(capture::Capture {
            inner: be,
            out: shared.clone(),
        }),
        false,
        OpenOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let repairs = nv.repairs().to_vec();
    let blobs = nv
        .blobs()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect();
    drop(nv);
    let after = shared.take();
    Ok((blobs, repairs, after))
}

/// A backend over memory that hands its bytes back when dropped, so the test
/// can see what a repair wrote.
mod capture {
    use std::sync::Mutex;

    use nvram::backend::Backend;
    use nvram::MemBackend;

    #[derive(Default)]
    pub struct Slot(Mutex<Vec<u8>>);

    impl Slot {
        pub fn take(&self) -> Vec<u8> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    pub struct Capture {
        pub inner: MemBackend,
        pub out: std::sync::Arc<Slot>,
    }

    impl Backend for Capture {
        fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.inner.read_at(off, buf)
        }
        fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
            self.inner.write_at(off, data)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn path(&self) -> std::path::PathBuf {
            self.inner.path()
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            *self.out.0.lock().unwrap() = std::mem::take(&mut self.inner.data);
        }
    }
}

/// The realistic state, made by vtpm and tpm2-tools; returns the stopped
/// instance's image and what the TPM showed.
fn realistic_state() -> (Vtpm, Vec<u8>, Seen) {
    let mut v = Vtpm::start_socket();
    let t = v.tcti();
    let tmp = v.tmp.path().to_path_buf();
    let p = |n: &str| tmp.join(n).to_str().unwrap().to_string();
    tpm2_ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", &p("prim.ctx")],
        &t,
    );
    tpm2_ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &p("prim.ctx"), "0x81000001"],
        &t,
    );
    // Only three transient slots: keep them free between steps.
    tpm2_ok("tpm2_flushcontext", &["-t"], &t);
    tpm2_ok(
        "tpm2_create",
        &[
            "-C",
            "0x81000001",
            "-G",
            "ecc256",
            "-u",
            &p("k.pub"),
            "-r",
            &p("k.priv"),
        ],
        &t,
    );
    tpm2_ok("tpm2_flushcontext", &["-t"], &t);
    tpm2_ok(
        "tpm2_load",
        &[
            "-C",
            "0x81000001",
            "-u",
            &p("k.pub"),
            "-r",
            &p("k.priv"),
            "-c",
            &p("k.ctx"),
        ],
        &t,
    );
    tpm2_ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &p("k.ctx"), "0x81000002"],
        &t,
    );
    let rw = "ownerread|ownerwrite|no_da";
    tpm2_ok(
        "tpm2_nvdefine",
        &[ORDINARY, "-C", "o", "-s", "64", "-a", rw],
        &t,
    );
    std::fs::write(p("data"), b"the state that must never be lost").unwrap();
    tpm2_ok("tpm2_nvwrite", &[ORDINARY, "-C", "o", "-i", &p("data")], &t);
    tpm2_ok(
        "tpm2_nvdefine",
        &[
            COUNTER,
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            &format!("{rw}|nt=counter"),
        ],
        &t,
    );
    tpm2_ok(
        "tpm2_nvdefine",
        &[BITS, "-C", "o", "-s", "8", "-a", &format!("{rw}|nt=bits")],
        &t,
    );
    tpm2_ok(
        "tpm2_nvsetbits",
        &[BITS, "-C", "o", "-i", "0x8000000000000005"],
        &t,
    );
    tpm2_ok(
        "tpm2_nvdefine",
        &[
            EXTEND,
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            &format!("{rw}|nt=extend"),
        ],
        &t,
    );
    std::fs::write(p("ext"), b"measured").unwrap();
    tpm2_ok("tpm2_nvextend", &[EXTEND, "-C", "o", "-i", &p("ext")], &t);
    tpm2_ok(
        "tpm2_nvdefine",
        &[
            PINFAIL,
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            &format!("{rw}|nt=pinfail"),
        ],
        &t,
    );
    std::fs::write(p("pin"), [0, 0, 0, 0, 0, 0, 0, 5]).unwrap();
    tpm2_ok("tpm2_nvwrite", &[PINFAIL, "-C", "o", "-i", &p("pin")], &t);
    send_repeatedly(v.port, &increment_command(0x0150_0002), INCREMENTS);
    let seen = look(&t, &tmp);
    assert_eq!(seen.nv[1], format!("{INCREMENTS:016x}"));
    assert!(v.guard.terminate().is_some());
    let image = std::fs::read(v.dir().join("vtpm-nvram.img")).unwrap();
    (v, image, seen)
}

/// Byte ranges of the live log (both copies: one range holding batches and
/// their copies in format 3, two in format 2) in the image.
fn live_log(image: &[u8]) -> Vec<(usize, usize)> {
    let slot = SLOT_SIZE as usize;
    let h = [
        Header::decode(&image[..slot]),
        Header::decode(&image[slot..2 * slot]),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|h| h.generation)
    .expect("a valid header");
    let base = h.region_offset(h.active) as usize;
    let areas = h.layout().areas();
    areas
        .into_iter()
        .map(|(start, end)| {
            let area = &image[base + start as usize..base + end as usize];
            let used = area.iter().rposition(|&b| b != 0).unwrap_or(0) + 1;
            (base + start as usize, used)
        })
        .collect()
}

#[test]
fn every_damaged_block_opens_with_the_latest_state_or_is_refused() {
    need_tools!();
    let (v, golden, seen) = realistic_state();
    let (latest, repairs, _) = open_mem(golden.clone()).expect("the undamaged image opens");
    assert!(repairs.is_empty(), "{repairs:?}");
    let blocks = golden.len() / BLOCK;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let (mut tried, mut flips, mut exact, mut repaired_blocks) = (0, 0, 0, 0);
    let mut refused: Vec<(usize, &str, String)> = Vec::new();
    for b in 0..blocks {
        let range = b * BLOCK..(b + 1) * BLOCK;
        for kind in ["zeroed", "bit flip"] {
            let mut img = golden.clone();
            if kind == "zeroed" {
                img[range.clone()].fill(0);
                tried += 1;
            } else {
                let bit = rng.gen_range(0..BLOCK * 8);
                img[b * BLOCK + bit / 8] ^= 1 << (bit % 8);
                flips += 1;
            }
            if img == golden {
                // An all-zero block zeroed: nothing changed.
                exact += 1;
                continue;
            }
            match open_mem(img) {
                Ok((blobs, repairs, after)) => {
                    assert!(
                        blobs == latest,
                        "block {b} {kind}: opened with another state (repairs: {repairs:?})"
                    );
                    exact += 1;
                    if !repairs.is_empty() {
                        repaired_blocks += 1;
                        // The repair was written: the image opens clean now.
                        let (again, more, _) = open_mem(after).expect("reopens");
                        assert!(
                            again == latest && more.is_empty(),
                            "block {b} {kind}: {more:?}"
                        );
                    }
                }
                Err(e) => {
                    assert!(
                        e.contains("damaged") || e.contains("header"),
                        "block {b} {kind}: unclear refusal: {e}"
                    );
                    refused.push((b, kind, e));
                }
            }
        }
    }
    println!(
        "{blocks} blocks of {BLOCK} bytes: {tried} zeroed, {flips} with a bit flipped; \
         {exact} opened with exactly the latest state ({repaired_blocks} of them repaired from the copies), \
         {} refused, 0 empty or older starts",
        refused.len()
    );
    for (b, kind, e) in &refused {
        println!("refused: block {b} {kind}: {e}");
    }
    // Every byte that matters is held twice (two header slots; each record
    // and its copy in different 4 KiB blocks): no single block is beyond the
    // redundancy.
    assert!(
        refused.is_empty(),
        "a single damaged block was not repaired"
    );

    // Through the real binary, checked with tpm2-tools: the header slots,
    // the first and last blocks of both copies of the live log, and random
    // other blocks.
    let scratch = tempfile::tempdir().unwrap();
    let mut sample = vec![0, 1];
    for (start, used) in live_log(&golden) {
        sample.push(start / BLOCK);
        sample.push((start + used - 1) / BLOCK);
    }
    for _ in 0..3 {
        sample.push(rng.gen_range(2..blocks));
    }
    sample.sort();
    sample.dedup();
    for (n, &b) in sample.iter().enumerate() {
        for kind in ["zeroed", "bit flip"] {
            let dir = scratch.path().join(format!("s{n}{}", &kind[..1]));
            std::fs::create_dir(&dir).unwrap();
            let mut img = golden.clone();
            if kind == "zeroed" {
                img[b * BLOCK..(b + 1) * BLOCK].fill(0);
            } else {
                let bit = rng.gen_range(0..BLOCK * 8);
                img[b * BLOCK + bit / 8] ^= 1 << (bit % 8);
            }
            let path = dir.join("vtpm-nvram.img");
            std::fs::write(&path, &img).unwrap();
            let (mut g, port) = try_start_dir(&dir, scratch.path())
                .unwrap_or_else(|e| panic!("block {b} {kind}: refused: {e}"));
            let tcti = format!("swtpm:host=127.0.0.1,port={port}");
            assert_eq!(look(&tcti, scratch.path()), seen, "block {b} {kind}");
            g.terminate();
            let log = g.stderr();
            let out = vtpm_output(&["nvram", "check", path.to_str().unwrap()]);
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && report.contains("nothing damaged"),
                "block {b} {kind}: after the start: {report}"
            );
            println!(
                "binary: block {b} {kind}: latest state; {}",
                log.lines()
                    .find(|l| l.contains("rewritten"))
                    .unwrap_or("nothing to repair (no live data in it)")
            );
        }
    }
    drop(v);
}
