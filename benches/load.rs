//! Side-by-side load bench: drives vtpm and swtpm + libtpms over the same swtpm
//! socket protocol (one persistent data connection, as QEMU uses), runs the
//! same workloads against both in one run, and prints ops/s, p50/p99 latency
//! and the ratio vtpm/swtpm. Both keep their state on the same filesystem.
//!
//! `cargo bench -p vtpm --bench load` (add `-- --secs N` to change the time per
//! workload, `-- --relaxed` to run vtpm with `--tpmstate ...,sync=off`).
//!
//! Workloads: GetRandom (the transport floor: what the hand-off from a socket
//! to the TPM thread and back costs), PCR_Extend, and the key-persisting ones:
//! EvictControl persist + evict of a loaded key (two NV writes), a child key's
//! Create + Load + persist + evict + FlushContext, the NV ones (NV_Write of 64
//! octets to an ordinary index, NV_Increment of a counter, NV_Extend of a
//! SHA-256 index: one durable NV write each), and CreatePrimary (ECC P-256
//! and RSA-2048) + FlushContext. Every response code is checked: a workload
//! that fails on a TPM is reported as failed there, with the command and code,
//! and not timed. A workload runs for `--secs` and at least `MIN_OPS`
//! operations, but never much past `MAX_SECS_FACTOR` times `--secs`, so slow
//! key generation bounds the number of operations instead of the run time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tpm_core::constants as c;

#[path = "support/workloads.rs"]
mod workloads;
use workloads::{
    be32, cmd, evict_control, flush, no_setup, nv_counter, nv_extend_sha256, nv_ordinary_64,
    nv_undefine, op_child_key, op_nv_extend, op_nv_increment, op_nv_write, op_persist_evict,
    op_primary_ecc, op_primary_rsa, primary_ecc_storage, Exec, Res, NV_COUNTER, NV_EXTEND,
    NV_ORDINARY, PERSISTENT,
};

/// Default seconds per workload and TPM: 9 workloads on 2 TPMs stay around 2 minutes at most.
const DEFAULT_SECS: f64 = 1.5;
/// Timed operations a workload runs at least (if `MAX_SECS_FACTOR` allows)...
const MIN_OPS: usize = 3;
/// ...and the multiple of `--secs` after which it stops anyway.
const MAX_SECS_FACTOR: f64 = 4.0;

// ---------------------------------------------------------------------------
// Commands only this bench sends (the rest are in support/workloads.rs)

fn get_random(n: u16) -> Vec<u8> {
    cmd(c::CC_GetRandom).u16(n).done()
}

fn pcr_extend_sha256(pcr: u32, digest: [u8; 32]) -> Vec<u8> {
    cmd(c::CC_PCR_Extend)
        .u32(pcr)
        .pw()
        .u32(1) // TPML_DIGEST_VALUES count
        .u16(c::ALG_SHA256)
        .raw(&digest)
        .done()
}

fn transient_handles() -> Vec<u8> {
    cmd(c::CC_GetCapability)
        .u32(c::CAP_HANDLES)
        .u32(c::HR_TRANSIENT)
        .u32(16)
        .done()
}

// ---------------------------------------------------------------------------
// Responses

fn rc_name(rc: u32) -> &'static str {
    match rc {
        c::RC_COMMAND_CODE => " TPM_RC_COMMAND_CODE (not implemented)",
        c::RC_OBJECT_MEMORY => " TPM_RC_OBJECT_MEMORY",
        c::RC_NV_DEFINED => " TPM_RC_NV_DEFINED",
        c::RC_NV_RATE => " TPM_RC_NV_RATE",
        c::RC_NV_UNAVAILABLE => " TPM_RC_NV_UNAVAILABLE",
        _ => "",
    }
}

// ---------------------------------------------------------------------------
// The TPMs

/// A TPM process under load, killed on drop.
struct Target {
    name: &'static str,
    child: Child,
    conn: TcpStream,
    _dir: tempfile::TempDir,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port_pair() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if p < 65000 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn start(name: &'static str, program: &str, relaxed: bool) -> Option<Target> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).ok()?;
    let port = free_port_pair();
    let state = if relaxed && name == "vtpm" {
        format!("dir={},sync=off", dir.path().display())
    } else {
        format!("dir={}", dir.path().display())
    };
    let child = Command::new(program)
        .args(["socket", "--tpm2", "--tpmstate", &state])
        .args(["--server", &format!("type=tcp,port={port}")])
        .args(["--ctrl", &format!("type=tcp,port={}", port + 1)])
        .args(["--flags", "not-need-init,startup-clear"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let conn = loop {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            break c;
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    conn.set_nodelay(true).ok()?;
    Some(Target {
        name,
        child,
        conn,
        _dir: dir,
    })
}

impl Target {
    /// Send one command and read its whole response.
    fn exchange(&mut self, cmd: &[u8]) -> std::io::Result<Vec<u8>> {
        self.conn.write_all(cmd)?;
        let mut resp = vec![0u8; 10];
        self.conn.read_exact(&mut resp)?;
        let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
        resp.resize(size.max(10), 0);
        self.conn.read_exact(&mut resp[10..])?;
        Ok(resp)
    }

    /// Leaves no object behind for the next workload (3 transient slots):
    /// evicts `PERSISTENT`, undefines the NV workloads' indices and flushes
    /// every transient object. Errors are
    /// ignored; there may be nothing to evict or flush.
    fn clean_up(&mut self) {
        let _ = self.ok("EvictControl", &evict_control(PERSISTENT, PERSISTENT));
        for index in [NV_ORDINARY, NV_COUNTER, NV_EXTEND] {
            let _ = self.ok("NV_UndefineSpace", &nv_undefine(index));
        }
        if let Ok(resp) = self.ok("GetCapability", &transient_handles()) {
            // moreData, capability, TPML_HANDLE count, handles
            let count = be32(&resp, 15).unwrap_or(0) as usize;
            for h in (0..count).filter_map(|i| be32(&resp, 19 + 4 * i)) {
                let _ = self.ok("FlushContext", &flush(h));
            }
        }
    }
}

impl Exec for Target {
    fn ok(&mut self, step: &str, cmd: &[u8]) -> Res<Vec<u8>> {
        let resp = self
            .exchange(cmd)
            .map_err(|e| format!("{step}: connection: {e}"))?;
        match be32(&resp, 6) {
            Some(0) => Ok(resp),
            Some(rc) => Err(format!("{step}: {rc:#x}{}", rc_name(rc))),
            None => Err(format!("{step}: short response")),
        }
    }
}

// ---------------------------------------------------------------------------
// Workloads

/// One workload: an untimed setup once per TPM (its result, a handle the
/// operation works on, differs between TPMs), and the timed operation.
struct Workload {
    name: &'static str,
    setup: fn(&mut Target) -> Res<u32>,
    op: fn(&mut Target, u32) -> Res<()>,
}

fn op_get_random(t: &mut Target, _: u32) -> Res<()> {
    t.ok("GetRandom", &get_random(32)).map(drop)
}

fn op_pcr_extend(t: &mut Target, _: u32) -> Res<()> {
    t.ok("PCR_Extend", &pcr_extend_sha256(16, [0x42; 32]))
        .map(drop)
}

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "GetRandom(32)",
            setup: no_setup,
            op: op_get_random,
        },
        Workload {
            name: "PCR_Extend(16, sha256)",
            setup: no_setup,
            op: op_pcr_extend,
        },
        Workload {
            name: "EvictControl persist+evict",
            setup: primary_ecc_storage,
            op: op_persist_evict,
        },
        Workload {
            name: "Create/Load/Evict x2/Flush",
            setup: primary_ecc_storage,
            op: op_child_key,
        },
        Workload {
            name: "NV_Write 64 B (ordinary)",
            setup: nv_ordinary_64,
            op: op_nv_write,
        },
        Workload {
            name: "NV_Increment (counter)",
            setup: nv_counter,
            op: op_nv_increment,
        },
        Workload {
            name: "NV_Extend (sha256 index)",
            setup: nv_extend_sha256,
            op: op_nv_extend,
        },
        Workload {
            name: "CreatePrimary P-256+Flush",
            setup: no_setup,
            op: op_primary_ecc,
        },
        Workload {
            name: "CreatePrimary RSA2048+Flush",
            setup: no_setup,
            op: op_primary_rsa,
        },
    ]
}

struct Figures {
    ops: usize,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Setup, one untimed operation (warm-up and check), the timed operations,
/// then clean-up whatever the outcome.
fn run(t: &mut Target, w: &Workload, secs: f64) -> Res<Figures> {
    let result = (w.setup)(t).and_then(|obj| measure(t, w, obj, secs));
    t.clean_up();
    result
}

fn measure(t: &mut Target, w: &Workload, obj: u32, secs: f64) -> Res<Figures> {
    (w.op)(t, obj)?;
    let mut lat = Vec::new();
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        if (elapsed >= secs && lat.len() >= MIN_OPS) || elapsed >= secs * MAX_SECS_FACTOR {
            break;
        }
        let t0 = Instant::now();
        (w.op)(t, obj)?;
        lat.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    Ok(Figures {
        ops: lat.len(),
        ops_per_s: lat.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

/// One TPM's columns: figures, or the failure.
fn cells(r: &Res<Figures>) -> String {
    match r {
        Ok(f) => format!("{:>12.0} {:>9.1} {:>9.1}", f.ops_per_s, f.p50_us, f.p99_us),
        Err(_) => format!("{:>32}", "FAILED (below)"),
    }
}

fn main() {
    let begin = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let relaxed = args.iter().any(|a| a == "--relaxed");
    let swtpm = ["/usr/bin/swtpm", "/usr/local/bin/swtpm"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(mut vtpm) = start("vtpm", env!("CARGO_BIN_EXE_vtpm"), relaxed) else {
        eprintln!("load bench: vtpm did not start");
        std::process::exit(1);
    };
    let mut sw = swtpm.and_then(|p| start("swtpm", p, false));
    if sw.is_none() {
        eprintln!(
            "load bench: swtpm is not installed; vtpm figures only (scripts/test.sh installs it)"
        );
    }
    println!(
        "\n== load bench: {secs} s (at least {MIN_OPS} ops, at most {} s) per workload, \
         one persistent data connection, vtpm {} ==",
        secs * MAX_SECS_FACTOR,
        if relaxed { "sync=off" } else { "durable" }
    );
    println!(
        "{:<28} {:>12} {:>9} {:>9} | {:>12} {:>9} {:>9} | {:>7}",
        "workload", "vtpm ops/s", "p50 us", "p99 us", "swtpm ops/s", "p50 us", "p99 us", "ratio"
    );
    let mut notes = Vec::new();
    for w in workloads() {
        let ours = run(&mut vtpm, &w, secs);
        let theirs = sw.as_mut().map(|s| run(s, &w, secs));
        let mut line = format!("{:<28} {}", w.name, cells(&ours));
        if let Some(theirs) = &theirs {
            let ratio = match (&ours, theirs) {
                (Ok(a), Ok(b)) => format!("{:>6.2}x", a.ops_per_s / b.ops_per_s),
                _ => format!("{:>7}", "-"),
            };
            line += &format!(" | {} | {ratio}", cells(theirs));
        }
        println!("{line}");
        for (tpm, r) in [(vtpm.name, Some(&ours)), ("swtpm", theirs.as_ref())] {
            match r {
                Some(Err(e)) => notes.push(format!("{}: {tpm} FAILED at {e}", w.name)),
                Some(Ok(f)) if f.ops < 20 => notes.push(format!(
                    "{}: {tpm} timed {} ops only (p99 is their maximum)",
                    w.name, f.ops
                )),
                _ => {}
            }
        }
    }
    for n in notes {
        println!("  {n}");
    }
    storage_floor();
    println!("(whole run {:.1} s)", begin.elapsed().as_secs_f64());
}

/// What one durable NV write must cost on this filesystem, beside what swtpm
/// does per NV write (write a new state file, no flush, rename it over the
/// old one), measured here in the same run: the durable ratios of the NV
/// workloads cannot beat the ratio of these two.
fn storage_floor() {
    use std::os::unix::fs::FileExt;
    const ROUNDS: usize = 300;
    let Ok(dir) = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    let page = vec![0x5au8; 4096];
    let image = dir.path().join("image");
    let Ok(f) = std::fs::File::create(&image) else {
        return;
    };
    // Allocated up front, as the NVRAM image is.
    let mut synced = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        if f.write_all_at(&page, (i * 4096) as u64).is_err() {
            return;
        }
    }
    let _ = f.sync_all();
    for i in 0..ROUNDS {
        let t = Instant::now();
        if f.write_all_at(&page, (i * 4096) as u64).is_err() || f.sync_data().is_err() {
            return;
        }
        synced.push(t.elapsed());
    }
    let (state, tmp) = (dir.path().join("tpm2-00.permall"), dir.path().join("tmp"));
    let mut renamed = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        if std::fs::write(&tmp, &page).is_err() || std::fs::rename(&tmp, &state).is_err() {
            return;
        }
        renamed.push(t.elapsed());
    }
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let (sync_us, rename_us) = (p50(synced), p50(renamed));
    println!(
        "storage floor on this filesystem (p50 of {ROUNDS}): pwrite 4 KiB + fdatasync {sync_us:.1} us; \
         swtpm-style write 4 KiB + rename, unflushed {rename_us:.1} us (ratio {:.2}x)",
        rename_us / sync_us
    );
}
