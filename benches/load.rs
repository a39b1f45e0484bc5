//! Side-by-side load bench: drives vtpm and swtpm + libtpms over the same swtpm
//! socket protocol (one persistent data connection, as QEMU uses), runs the
//! same workloads against both in one run and prints, for each TPM side by
//! side (issue 13 asks for all of these from one run):
//!
//! * **idle**: the server CPU ticks (utime+stime from /proc/PID/stat) of a
//!   started TPM with a data and a control client connected that send nothing,
//!   over `--idle` seconds (10 by default; vtpm must spend zero ticks);
//! * **sparse**: GetRandom and PCR_Extend sent one every 10 ms, as a guest
//!   sends them, p50/p90 round trip and server CPU time per 1,000 commands
//!   (vtpm's and swtpm's commands interleaved, so that both meet the same
//!   machine);
//! * **back to back**: every workload as fast as one client can send it:
//!   ops/s, p50/p99 latency, server CPU time per 1,000 operations, ratio;
//! * **relaxed**: the NV-writing workloads again on a second vtpm with
//!   `--tpmstate ...,sync=off`, against the same swtpm figures;
//! * **NBD**: the NV-writing workloads on a durable vtpm whose image is an
//!   NBD export: a qcow2 served by qemu-storage-daemon (issue 16's case) and,
//!   when nbdkit is installed, a raw file served by nbdkit's file plugin (a
//!   server whose FLUSH is one fdatasync: what is left is vtpm's part), each
//!   beside a bare NBD round trip and a bare durable commit on the same export;
//! * **durable NV cost**: the storage floor of the filesystem both keep their
//!   state on (pwrite 4 KiB + fdatasync, p50) and what each durable NV command
//!   costs above it, and above swtpm's (which does not flush);
//! * **targets**: issue 13's targets, each with the figures it compares.
//!
//! `cargo bench -p vtpm --bench load` (options after `--`: `--secs N` time
//! per back-to-back workload, `--sparse N` commands per sparse workload,
//! `--idle N` seconds of the idle measurement, `--only TEXT` only the
//! workloads whose name contains TEXT; `VTPM_BIN_BEFORE=path` adds, per NBD
//! server, NV_Write on that other vtpm build interleaved with this one's;
//! `VTPM_BIN=path` benches
//! another vtpm binary instead of the one built). Take figures on a quiet
//! machine: sparse latency and CPU per command are what other load disturbs
//! most.
//!
//! Workloads: GetRandom (the transport floor: what getting a command from a
//! socket to the engine and back costs), PCR_Extend, and the key-persisting ones:
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

/// Default seconds per back-to-back workload and TPM.
const DEFAULT_SECS: f64 = 1.5;
/// Timed operations a workload runs at least (if `MAX_SECS_FACTOR` allows)...
const MIN_OPS: usize = 3;
/// ...and the multiple of `--secs` after which it stops anyway.
const MAX_SECS_FACTOR: f64 = 4.0;
/// Default commands per sparse workload: with one tick of CPU time worth
/// 10 ms, 1,000 commands give CPU per 1,000 commands to 10 ms.
const DEFAULT_SPARSE: usize = 1000;
/// The gap between two sparse commands.
const SPARSE_GAP: Duration = Duration::from_millis(10);
/// Default seconds of the idle measurement.
const DEFAULT_IDLE_SECS: u64 = 10;

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

/// A TPM process under load, killed on drop (with its storage daemon, if any).
struct Target {
    name: &'static str,
    child: Child,
    conn: TcpStream,
    ctrl_port: u16,
    /// The NBD server serving the image.
    storage: Option<Child>,
    /// Its export's URI (to time a bare NBD round trip beside vtpm).
    nbd_uri: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(s) = self.storage.as_mut() {
            let _ = s.kill();
            let _ = s.wait();
        }
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

/// Start `program` (vtpm or swtpm) with its state in a new directory under
/// the bench's temporary directory (the filesystem the storage floor is
/// measured on), powered on and started, and connect one data client.
fn start(name: &'static str, program: &str, relaxed: bool) -> Option<Target> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).ok()?;
    let state = if relaxed {
        format!("dir={},sync=off", dir.path().display())
    } else {
        format!("dir={}", dir.path().display())
    };
    start_on(name, program, &state, dir, None)
}

/// The NBD servers the bench puts vtpm's image on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NbdServer {
    /// qemu-storage-daemon exporting a qcow2 (issue 16's case).
    QemuStorageDaemon,
    /// nbdkit's file plugin on a raw file: a reference server whose FLUSH
    /// is one fdatasync, to tell vtpm's part from the server's.
    Nbdkit,
}

impl NbdServer {
    fn describe(self) -> &'static str {
        match self {
            NbdServer::QemuStorageDaemon => "qemu-storage-daemon, a qcow2",
            NbdServer::Nbdkit => "nbdkit's file plugin, a raw file",
        }
    }

    /// The server's command serving a new 4 MiB image in `dir` on `sock`.
    fn command(self, dir: &Path, sock: &Path) -> Option<Command> {
        match self {
            NbdServer::QemuStorageDaemon => {
                let img = dir.join("tpm.qcow2");
                let ok = Command::new("qemu-img")
                    .args(["create", "-q", "-f", "qcow2"])
                    .arg(&img)
                    .arg("4M")
                    .status()
                    .ok()?
                    .success();
                if !ok {
                    return None;
                }
                let mut c = Command::new("qemu-storage-daemon");
                c.arg("--blockdev")
                    .arg(format!(
                        "driver=file,node-name=f0,filename={}",
                        img.display()
                    ))
                    .args(["--blockdev", "driver=qcow2,node-name=q0,file=f0"])
                    .arg("--nbd-server")
                    .arg(format!("addr.type=unix,addr.path={}", sock.display()))
                    .args([
                        "--export",
                        "type=nbd,id=e0,node-name=q0,name=tpm,writable=on",
                    ]);
                Some(c)
            }
            NbdServer::Nbdkit => {
                let img = dir.join("tpm.raw");
                std::fs::write(&img, vec![0u8; 4 << 20]).ok()?;
                let mut c = Command::new("nbdkit");
                c.args(["--foreground", "--exit-with-parent", "--unix"])
                    .arg(sock)
                    .arg("file")
                    .arg(format!("file={}", img.display()));
                Some(c)
            }
        }
    }
}

/// vtpm with its image on a 4 MiB image in the bench's temporary directory,
/// exported by `server` on a Unix socket (durable: every commit ends with
/// NBD_CMD_FLUSH, which the server turns into an fdatasync).
fn start_nbd(program: &str, server: NbdServer) -> Option<Target> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).ok()?;
    let sock = dir.path().join("nbd.sock");
    let storage = server
        .command(dir.path(), &sock)?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let uri = format!("nbd+unix:///tpm?socket={}", sock.display());
    let mut t = start_on(
        "vtpm",
        program,
        &format!("backend-uri={uri}"),
        dir,
        Some(storage),
    )?;
    t.nbd_uri = Some(uri);
    Some(t)
}

/// Bare NBD figures, p50 in microseconds.
struct NbdBare {
    /// A round trip: a 4 KiB read of the first block.
    rtt: f64,
    /// A durable commit of a 754-byte batch as vtpm sends one (format 3):
    /// the batch and its copy, padded to whole blocks, as one 8 KiB write
    /// with FUA where the server offers it, else write, reply, FLUSH.
    commit: f64,
    /// The same commit as format 2 sent it: two 754-byte writes (the batch
    /// and its copy), their replies, then FLUSH.
    two_writes: f64,
}

/// On `uri`, through a second connection, the [`NbdBare`] figures; the
/// commits (the two kinds alternating) go to the last 64 KiB before the
/// lease block, which no image uses.
fn nbd_round_trips_us(uri: &str) -> Option<NbdBare> {
    use nvram::Backend;
    let uri = nvram::nbd::NbdUri::parse(uri).ok()?;
    let mut be = nvram::nbd::NbdBackend::connect(&uri, Duration::from_secs(5), false).ok()?;
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let mut buf = vec![0u8; 4096];
    let mut reads = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        be.read_at(0, &mut buf).ok()?;
        reads.push(t.elapsed());
    }
    let scratch = nvram::lease::lease_offset(be.size())?.checked_sub(64 * 1024)?;
    let record = vec![0x5au8; 754];
    let layout = nvram::format::Layout::of(nvram::format::VERSION, 1 << 20);
    let placed = layout.placements(0, &record);
    let (mut commits, mut two) = (Vec::with_capacity(300), Vec::with_capacity(300));
    for i in 0..600u64 {
        let t = Instant::now();
        if i % 2 == 0 {
            let off = scratch + (i / 2 % 4) * 8192;
            let writes: Vec<(u64, &[u8])> = placed.iter().map(|(o, b)| (off + o, &b[..])).collect();
            be.write_durable(&writes).ok()?;
            commits.push(t.elapsed());
        } else {
            let off = scratch + 32 * 1024 + (i / 2 % 16) * 1024;
            be.write_durable(&[(off, &record), (off + 16 * 1024, &record)])
                .ok()?;
            two.push(t.elapsed());
        }
    }
    Some(NbdBare {
        rtt: p50(reads),
        commit: p50(commits),
        two_writes: p50(two),
    })
}

/// Start `program` on `state`, powered on and started, and connect one data client.
fn start_on(
    name: &'static str,
    program: &str,
    state: &str,
    dir: tempfile::TempDir,
    mut storage: Option<Child>,
) -> Option<Target> {
    let port = free_port_pair();
    let child = Command::new(program)
        .args(["socket", "--tpm2", "--tpmstate", state])
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
            if let Some(s) = storage.as_mut() {
                let _ = s.kill();
                let _ = s.wait();
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    conn.set_nodelay(true).ok()?;
    Some(Target {
        name,
        child,
        conn,
        ctrl_port: port + 1,
        storage,
        nbd_uri: None,
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

    /// CPU ticks the server process has used so far (user + system, all its
    /// threads, also those that have ended).
    fn cpu_ticks(&self) -> Option<u64> {
        cpu_ticks(self.child.id())
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

/// utime + stime of process `pid` from /proc/PID/stat (fields 14 and 15,
/// counted after the parenthesised command name, which may hold spaces).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of /proc's CPU times (USER_HZ; 100 on Linux).
fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Milliseconds of server CPU per 1,000 operations, from the ticks spent on `ops`.
fn cpu_per_1000(ticks: Option<u64>, ops: usize, hz: f64) -> Option<f64> {
    let t = ticks?;
    (ops > 0).then(|| t as f64 * 1000.0 / hz / ops as f64 * 1000.0)
}

// ---------------------------------------------------------------------------
// Workloads

/// One workload: an untimed setup once per TPM (its result, a handle the
/// operation works on, differs between TPMs), and the timed operation.
struct Workload {
    name: &'static str,
    setup: fn(&mut Target) -> Res<u32>,
    op: fn(&mut Target, u32) -> Res<()>,
    /// Durable NV writes one operation makes (0: none).
    nv_writes: u32,
}

fn op_get_random(t: &mut Target, _: u32) -> Res<()> {
    t.ok("GetRandom", &get_random(32)).map(drop)
}

fn op_pcr_extend(t: &mut Target, _: u32) -> Res<()> {
    t.ok("PCR_Extend", &pcr_extend_sha256(16, [0x42; 32]))
        .map(drop)
}

const GET_RANDOM: &str = "GetRandom(32)";
const PCR_EXTEND: &str = "PCR_Extend(16, sha256)";
const EVICT: &str = "EvictControl persist+evict";
const NV_WRITE: &str = "NV_Write 64 B (ordinary)";
const NV_INCREMENT: &str = "NV_Increment (counter)";
const NV_EXTEND_W: &str = "NV_Extend (sha256 index)";

fn workloads() -> Vec<Workload> {
    let w = |name, setup, op, nv_writes| Workload {
        name,
        setup,
        op,
        nv_writes,
    };
    vec![
        w(GET_RANDOM, no_setup, op_get_random, 0),
        w(PCR_EXTEND, no_setup, op_pcr_extend, 0),
        w(EVICT, primary_ecc_storage, op_persist_evict, 2),
        w(
            "Create/Load/Evict x2/Flush",
            primary_ecc_storage,
            op_child_key,
            2,
        ),
        w(NV_WRITE, nv_ordinary_64, op_nv_write, 1),
        w(NV_INCREMENT, nv_counter, op_nv_increment, 1),
        w(NV_EXTEND_W, nv_extend_sha256, op_nv_extend, 1),
        w("CreatePrimary P-256+Flush", no_setup, op_primary_ecc, 0),
        w("CreatePrimary RSA2048+Flush", no_setup, op_primary_rsa, 0),
    ]
}

/// What one workload measured on one TPM.
#[derive(Clone, Copy)]
struct Figures {
    ops: usize,
    ops_per_s: f64,
    p50_us: f64,
    /// p99 back to back, p90 sparse.
    tail_us: f64,
    /// Server CPU milliseconds per 1,000 operations (None: /proc unreadable).
    cpu_ms_per_1000: Option<f64>,
}

/// Setup, one untimed operation (warm-up and check), the timed operations
/// back to back for `secs`, then clean-up whatever the outcome.
fn run(t: &mut Target, w: &Workload, secs: f64, hz: f64) -> Res<Figures> {
    let result = (w.setup)(t).and_then(|obj| measure(t, w, obj, secs, hz));
    t.clean_up();
    result
}

fn measure(t: &mut Target, w: &Workload, obj: u32, secs: f64, hz: f64) -> Res<Figures> {
    (w.op)(t, obj)?;
    let mut lat = Vec::new();
    let ticks0 = t.cpu_ticks();
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
    let ticks = t.cpu_ticks().zip(ticks0).map(|(b, a)| b.saturating_sub(a));
    Ok(figures(lat, start.elapsed().as_secs_f64(), ticks, 0.99, hz))
}

/// The figures of `lat` (microseconds), timed over `elapsed` seconds with
/// `ticks` of server CPU; `tail` is the percentile reported beside p50.
fn figures(mut lat: Vec<f64>, elapsed: f64, ticks: Option<u64>, tail: f64, hz: f64) -> Figures {
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    Figures {
        ops: lat.len(),
        ops_per_s: lat.len() as f64 / elapsed,
        p50_us: pct(0.50),
        tail_us: pct(tail),
        cpu_ms_per_1000: cpu_per_1000(ticks, lat.len(), hz),
    }
}

/// `count` operations on each TPM, one every `SPARSE_GAP`, interleaved: the
/// second TPM's half a gap after the first's, so that both see the machine
/// as it is over the same seconds (a sparse round trip is mostly the wake-up
/// of an idle CPU, which whatever else runs changes).
fn sparse(tpms: &mut [&mut Target], w: &Workload, count: usize, hz: f64) -> Vec<Res<Figures>> {
    // Setup and one untimed operation on each.
    let mut objs: Vec<Res<u32>> = tpms
        .iter_mut()
        .map(|t| (w.setup)(t).and_then(|obj| (w.op)(t, obj).map(|()| obj)))
        .collect();
    let mut lat = vec![Vec::with_capacity(count); tpms.len()];
    let ticks0: Vec<Option<u64>> = tpms.iter().map(|t| t.cpu_ticks()).collect();
    let start = Instant::now();
    let offset = SPARSE_GAP / tpms.len().max(1) as u32;
    for i in 0..count {
        for (k, t) in tpms.iter_mut().enumerate() {
            let Ok(obj) = objs[k].clone() else { continue };
            // Deadlines from the start, so a slow answer does not shift the rest.
            let due = start + SPARSE_GAP * (i as u32 + 1) + offset * k as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let t0 = Instant::now();
            match (w.op)(t, obj) {
                Ok(()) => lat[k].push(t0.elapsed().as_secs_f64() * 1e6),
                Err(e) => objs[k] = Err(e),
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut out = Vec::new();
    for (k, t) in tpms.iter_mut().enumerate() {
        let ticks = t
            .cpu_ticks()
            .zip(ticks0[k])
            .map(|(b, a)| b.saturating_sub(a));
        let lat = std::mem::take(&mut lat[k]);
        out.push(
            objs[k]
                .clone()
                .map(|_| figures(lat, elapsed, ticks, 0.90, hz)),
        );
        t.clean_up();
    }
    out
}

fn cpu_cell(f: &Figures) -> String {
    f.cpu_ms_per_1000
        .map_or_else(|| format!("{:>8}", "?"), |v| format!("{v:>8.1}"))
}

/// One TPM's back-to-back columns: figures, or the failure.
fn cells(r: &Res<Figures>) -> String {
    match r {
        Ok(f) => format!(
            "{:>10.0} {:>8.1} {:>8.1} {}",
            f.ops_per_s,
            f.p50_us,
            f.tail_us,
            cpu_cell(f)
        ),
        Err(_) => format!("{:>37}", "FAILED (below)"),
    }
}

/// One TPM's sparse columns.
fn sparse_cells(r: &Res<Figures>) -> String {
    match r {
        Ok(f) => format!("{:>8.1} {:>8.1} {}", f.p50_us, f.tail_us, cpu_cell(f)),
        Err(_) => format!("{:>26}", "FAILED (below)"),
    }
}

/// A p50 in microseconds, or "-" when there is none.
fn p50_cell(f: Option<&Res<Figures>>) -> String {
    match f {
        Some(Ok(f)) => format!("{:.1}", f.p50_us),
        _ => "-".into(),
    }
}

fn ratio(a: &Res<Figures>, b: Option<&Res<Figures>>, f: impl Fn(&Figures) -> f64) -> String {
    match (a, b) {
        (Ok(a), Some(Ok(b))) => format!("{:>6.2}x", f(a) / f(b)),
        _ => format!("{:>7}", "-"),
    }
}

/// One workload's figures on vtpm and (if it runs) swtpm.
type Pair = (&'static str, Res<Figures>, Option<Res<Figures>>);

/// Figures kept for the targets, by workload name.
#[derive(Default)]
struct Results {
    back_to_back: Vec<Pair>,
    relaxed: Vec<(&'static str, Res<Figures>)>,
    sparse: Vec<Pair>,
    idle_ticks: Option<u64>,
    floor_us: Option<f64>,
    /// Per NBD server: NV_Write p50 on it and the bare figures (issue 16's target).
    nbd: Vec<NbdRun>,
}

/// What one NBD server gave.
struct NbdRun {
    server: NbdServer,
    nv_write_us: Option<f64>,
    bare: Option<NbdBare>,
}

fn find<'a>(v: &'a [Pair], name: &str) -> Option<(&'a Figures, &'a Figures)> {
    let (_, ours, theirs) = v.iter().find(|(n, _, _)| *n == name)?;
    Some((ours.as_ref().ok()?, theirs.as_ref()?.as_ref().ok()?))
}

struct Options {
    secs: f64,
    sparse: usize,
    idle_secs: u64,
    /// Only the workloads whose name contains this (quick looks).
    only: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        secs: value("--secs")
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SECS),
        sparse: value("--sparse")
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SPARSE)
            .max(1),
        idle_secs: value("--idle")
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_IDLE_SECS),
        only: value("--only"),
    }
}

fn main() {
    let begin = Instant::now();
    let opts = options();
    let hz = ticks_per_sec();
    let swtpm = ["/usr/bin/swtpm", "/usr/local/bin/swtpm"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let vtpm_bin = vtpm_program();
    let Some(mut vtpm) = start("vtpm", &vtpm_bin, false) else {
        eprintln!("load bench: vtpm did not start");
        std::process::exit(1);
    };
    let mut sw = swtpm.and_then(|p| start("swtpm", p, false));
    if sw.is_none() {
        eprintln!(
            "load bench: swtpm is not installed; vtpm figures only (scripts/test.sh installs it)"
        );
    }
    let mut res = Results::default();
    println!(
        "\n== load bench: one persistent data connection per TPM, CPU = server utime+stime \
         from /proc/PID/stat ({hz} ticks/s) =="
    );

    // Idle first, on the fresh instances.
    println!(
        "\n-- idle: a data and a control client connected, nothing sent, {} s --",
        opts.idle_secs
    );
    let tpms: Vec<&Target> = std::iter::once(&vtpm).chain(sw.as_ref()).collect();
    let ctrl: Vec<Option<TcpStream>> = tpms
        .iter()
        .map(|t| TcpStream::connect(("127.0.0.1", t.ctrl_port)).ok())
        .collect();
    // Let the connections settle (accept, thread start) before counting.
    std::thread::sleep(Duration::from_millis(200));
    let before: Vec<Option<u64>> = tpms.iter().map(|t| t.cpu_ticks()).collect();
    std::thread::sleep(Duration::from_secs(opts.idle_secs));
    for (i, t) in tpms.iter().enumerate() {
        let ticks = t.cpu_ticks().zip(before[i]).map(|(b, a)| b - a);
        println!(
            "{:<6} {} ticks{}",
            t.name,
            ticks.map_or("?".to_string(), |v| v.to_string()),
            if ctrl[i].is_some() {
                ""
            } else {
                " (control connection failed)"
            }
        );
        if i == 0 {
            res.idle_ticks = ticks;
        }
    }
    drop(ctrl);

    println!(
        "\n-- sparse: {} commands to each TPM, one every {} ms, the two interleaved --",
        opts.sparse,
        SPARSE_GAP.as_millis()
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>7}",
        "workload", "vtpm p50", "p90", "CPU/1k", "swtpm p50", "p90", "CPU/1k", "p50 v/s"
    );
    let mut notes = Vec::new();
    let all: Vec<Workload> = workloads()
        .into_iter()
        .filter(|w| {
            opts.only
                .as_ref()
                .is_none_or(|o| w.name.contains(o.as_str()))
        })
        .collect();
    for w in all
        .iter()
        .filter(|w| [GET_RANDOM, PCR_EXTEND].contains(&w.name))
    {
        let mut tpms: Vec<&mut Target> = std::iter::once(&mut vtpm).chain(sw.as_mut()).collect();
        let mut figs = sparse(&mut tpms, w, opts.sparse, hz).into_iter();
        let ours = figs.next().unwrap_or_else(|| Err("not run".into()));
        let theirs = figs.next();
        println!(
            "{:<28} {} | {} | {}",
            w.name,
            sparse_cells(&ours),
            theirs.as_ref().map_or(format!("{:>26}", "-"), sparse_cells),
            ratio(&ours, theirs.as_ref(), |f| f.p50_us)
        );
        note_failures(&mut notes, w.name, &ours, theirs.as_ref());
        res.sparse.push((w.name, ours, theirs));
    }

    let secs = opts.secs;
    println!(
        "\n-- back to back: {} s (at least {MIN_OPS} ops, at most {} s) per workload, vtpm durable --",
        opts.secs,
        opts.secs * MAX_SECS_FACTOR
    );
    println!(
        "{:<28} {:>10} {:>8} {:>8} {:>8} | {:>10} {:>8} {:>8} {:>8} | {:>7}",
        "workload",
        "vtpm ops/s",
        "p50 us",
        "p99 us",
        "CPU/1k",
        "swtpm ops/s",
        "p50 us",
        "p99 us",
        "CPU/1k",
        "ops v/s"
    );
    for w in &all {
        let ours = run(&mut vtpm, w, secs, hz);
        let theirs = sw.as_mut().map(|s| run(s, w, secs, hz));
        let mut line = format!("{:<28} {}", w.name, cells(&ours));
        if let Some(theirs) = &theirs {
            line += &format!(
                " | {} | {}",
                cells(theirs),
                ratio(&ours, Some(theirs), |f| f.ops_per_s)
            );
        }
        println!("{line}");
        note_failures(&mut notes, w.name, &ours, theirs.as_ref());
        res.back_to_back.push((w.name, ours, theirs));
    }
    drop(vtpm);

    println!(
        "\n-- relaxed: the NV-writing workloads on a vtpm with sync=off, against swtpm above --"
    );
    match start("vtpm", &vtpm_bin, true) {
        None => println!("vtpm with sync=off did not start"),
        Some(mut relaxed) => {
            println!(
                "{:<28} {:>10} {:>8} {:>8} {:>8} | {:>7}",
                "workload", "vtpm ops/s", "p50 us", "p99 us", "CPU/1k", "ops v/s"
            );
            for w in all.iter().filter(|w| w.nv_writes > 0) {
                let ours = run(&mut relaxed, w, secs, hz);
                let theirs = res
                    .back_to_back
                    .iter()
                    .find(|(n, _, _)| *n == w.name)
                    .and_then(|(_, _, t)| t.as_ref());
                println!(
                    "{:<28} {} | {}",
                    w.name,
                    cells(&ours),
                    ratio(&ours, theirs, |f| f.ops_per_s)
                );
                note_failures(&mut notes, w.name, &ours, None);
                res.relaxed.push((w.name, ours));
            }
        }
    }

    println!(
        "\n-- NBD: the NV-writing workloads on a durable vtpm whose image is an NBD export --"
    );
    for server in [NbdServer::QemuStorageDaemon, NbdServer::Nbdkit] {
        println!("{}:", server.describe());
        let Some(mut nbd) = start_nbd(&vtpm_bin, server) else {
            println!(
                "  the server or vtpm on it did not start ({} installed?)",
                match server {
                    NbdServer::QemuStorageDaemon => "qemu-utils",
                    NbdServer::Nbdkit => "nbdkit",
                }
            );
            continue;
        };
        let mut run_of = NbdRun {
            server,
            nv_write_us: None,
            bare: nbd.nbd_uri.as_deref().and_then(nbd_round_trips_us),
        };
        if let Some(b) = &run_of.bare {
            println!(
                "bare NBD, p50 through a second connection: round trip (4 KiB read, of 2,000) {:.1} us; \
                 durable commit as vtpm sends it (754 B + copy in one 8 KiB write, FUA where offered; of 300) {:.1} us; \
                 the same as format 2 sent it (2 x 754 B, replies, FLUSH; of 300) {:.1} us",
                b.rtt, b.commit, b.two_writes
            );
        }
        println!(
            "{:<28} {:>10} {:>8} {:>8} {:>8} | {:>13} {:>13} | {:>9}",
            "workload",
            "vtpm ops/s",
            "p50 us",
            "p99 us",
            "CPU/1k",
            "local p50 us",
            "swtpm p50 us",
            "NBD-local"
        );
        for w in all.iter().filter(|w| w.nv_writes > 0) {
            let ours = run(&mut nbd, w, secs, hz);
            let local = res.back_to_back.iter().find(|(n, _, _)| *n == w.name);
            let diff = match (&ours, local.map(|(_, o, _)| o)) {
                (Ok(n), Some(Ok(l))) => format!("{:+.1}", n.p50_us - l.p50_us),
                _ => "-".into(),
            };
            println!(
                "{:<28} {} | {:>13} {:>13} | {:>9}",
                w.name,
                cells(&ours),
                p50_cell(local.map(|(_, o, _)| o)),
                p50_cell(local.and_then(|(_, _, t)| t.as_ref())),
                diff
            );
            if w.name == NV_WRITE {
                run_of.nv_write_us = ours.as_ref().ok().map(|f| f.p50_us);
            }
            note_failures(&mut notes, w.name, &ours, None);
        }
        if let Some(before) = std::env::var_os("VTPM_BIN_BEFORE") {
            compare_on_nbd(&mut nbd, &before.to_string_lossy(), server, &all, &opts, hz);
        }
        res.nbd.push(run_of);
    }

    println!("\n-- durable NV cost --");
    res.floor_us = storage_floor();
    if let Some(floor) = res.floor_us {
        println!(
            "{:<28} {:>8} {:>8} {:>14} {:>16}",
            "workload (per NV command)", "vtpm p50", "swtpm p50", "vtpm - floor", "vtpm - swtpm"
        );
        for (name, ours, theirs) in &res.back_to_back {
            let Some(w) = all.iter().find(|w| w.name == *name && w.nv_writes > 0) else {
                continue;
            };
            let n = f64::from(w.nv_writes);
            let Ok(o) = ours else { continue };
            let t = theirs.as_ref().and_then(|t| t.as_ref().ok());
            println!(
                "{:<28} {:>8.1} {:>9} {:>14.1} {:>16}",
                name,
                o.p50_us / n,
                t.map_or("-".into(), |t| format!("{:.1}", t.p50_us / n)),
                o.p50_us / n - floor,
                t.map_or("-".into(), |t| format!("{:.1}", (o.p50_us - t.p50_us) / n)),
            );
        }
        println!(
            "(durability costs one flush per NV command when vtpm - swtpm <= the floor, {floor:.1} us)"
        );
    }

    for n in notes {
        println!("  {n}");
    }
    targets(&res);
    println!("(whole run {:.1} s)", begin.elapsed().as_secs_f64());
}

/// `$VTPM_BIN_BEFORE` (another vtpm build) on a server of its own beside
/// `nbd`: NV_Write sparse and interleaved on both, so both see the machine
/// over the same seconds (back-to-back runs one after the other differ by
/// more than a change to the commit path).
fn compare_on_nbd(
    nbd: &mut Target,
    before: &str,
    server: NbdServer,
    all: &[Workload],
    opts: &Options,
    hz: f64,
) {
    let Some(w) = all.iter().find(|w| w.name == NV_WRITE) else {
        return;
    };
    let Some(mut old) = start_nbd(before, server) else {
        println!("  {before} did not start on {}", server.describe());
        return;
    };
    let gap = SPARSE_GAP.as_millis();
    let r = sparse(&mut [nbd, &mut old], w, opts.sparse, hz);
    println!(
        "{NV_WRITE}, sparse ({} each, {gap} ms apart, interleaved): p50 this build {} us, \
         VTPM_BIN_BEFORE {} us: this/before {}",
        opts.sparse,
        p50_cell(Some(&r[0])),
        p50_cell(Some(&r[1])),
        ratio(&r[0], Some(&r[1]), |f| f.p50_us).trim()
    );
}

/// The vtpm to bench: the one this build made, or `$VTPM_BIN` (to compare
/// another build against the same swtpm and the same bench).
fn vtpm_program() -> String {
    std::env::var("VTPM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vtpm").to_string())
}

fn note_failures(
    notes: &mut Vec<String>,
    name: &str,
    ours: &Res<Figures>,
    theirs: Option<&Res<Figures>>,
) {
    for (tpm, r) in [("vtpm", Some(ours)), ("swtpm", theirs)] {
        match r {
            Some(Err(e)) => notes.push(format!("{name}: {tpm} FAILED at {e}")),
            Some(Ok(f)) if f.ops < 20 => notes.push(format!(
                "{name}: {tpm} timed {} ops only (p99 is their maximum)",
                f.ops
            )),
            _ => {}
        }
    }
}

/// Issue 13's targets, each with the figures it compares.
fn targets(res: &Results) {
    println!("\n-- targets (issues 13 and 16) --");
    let line = |what: String, ok: Option<bool>| {
        let verdict = match ok {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        println!("{verdict:>6}  {what}");
    };
    for name in [GET_RANDOM, PCR_EXTEND] {
        if let Some((o, t)) = find(&res.sparse, name) {
            line(
                format!(
                    "sparse p50 <= 0.8x swtpm's: {name} {:.1} us vs {:.1} us ({:.2}x)",
                    o.p50_us,
                    t.p50_us,
                    o.p50_us / t.p50_us
                ),
                Some(o.p50_us <= 0.8 * t.p50_us),
            );
            if let (Some(a), Some(b)) = (o.cpu_ms_per_1000, t.cpu_ms_per_1000) {
                line(
                    format!(
                        "sparse CPU per command <= swtpm's: {name} {a:.1} vs {b:.1} ms per 1,000"
                    ),
                    Some(a <= b),
                );
            }
        }
    }
    for name in [GET_RANDOM, PCR_EXTEND] {
        if let Some((o, t)) = find(&res.back_to_back, name) {
            line(
                format!(
                    "back-to-back ops/s >= 1.5x swtpm's: {name} {:.0} vs {:.0} ({:.2}x)",
                    o.ops_per_s,
                    t.ops_per_s,
                    o.ops_per_s / t.ops_per_s
                ),
                Some(o.ops_per_s >= 1.5 * t.ops_per_s),
            );
            line(
                format!(
                    "back-to-back p99 <= swtpm's: {name} {:.1} vs {:.1} us",
                    o.tail_us, t.tail_us
                ),
                Some(o.tail_us <= t.tail_us),
            );
            if let (Some(a), Some(b)) = (o.cpu_ms_per_1000, t.cpu_ms_per_1000) {
                line(
                    format!(
                        "back-to-back CPU per command <= swtpm's: {name} {a:.1} vs {b:.1} ms per 1,000"
                    ),
                    Some(a <= b),
                );
            }
        }
    }
    for name in [NV_WRITE, NV_INCREMENT, NV_EXTEND_W, EVICT] {
        let relaxed = res
            .relaxed
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, r)| r.as_ref().ok());
        let theirs = find(&res.back_to_back, name).map(|(_, t)| t);
        if let (Some(o), Some(t)) = (relaxed, theirs) {
            line(
                format!(
                    "relaxed ops/s >= 5x swtpm's: {name} {:.0} vs {:.0} ({:.2}x)",
                    o.ops_per_s,
                    t.ops_per_s,
                    o.ops_per_s / t.ops_per_s
                ),
                Some(o.ops_per_s >= 5.0 * t.ops_per_s),
            );
        }
    }
    if let (Some((o, t)), Some(floor)) = (find(&res.back_to_back, NV_WRITE), res.floor_us) {
        line(
            format!(
                "durable NV_Write p50 <= swtpm's p50 + one flush: {:.1} vs {:.1} + {floor:.1} us",
                o.p50_us, t.p50_us
            ),
            Some(o.p50_us <= t.p50_us + floor),
        );
    }
    for r in &res.nbd {
        let (Some(n), Some(b), Some((o, _))) = (
            r.nv_write_us,
            r.bare.as_ref(),
            find(&res.back_to_back, NV_WRITE),
        ) else {
            continue;
        };
        line(
            format!(
                "(issue 16) durable NV_Write on NBD ({}) p50 <= local p50 + 2 NBD round trips: {n:.1} vs {:.1} + 2 x {:.1} us",
                r.server.describe(),
                o.p50_us,
                b.rtt
            ),
            Some(n <= o.p50_us + 2.0 * b.rtt),
        );
        println!(
            "        (the server's part: a bare durable NBD commit alone takes {:.1} us; \
             vtpm's whole NV_Write on NBD {n:.1} us, {:+.1} us beyond it)",
            b.commit,
            n - b.commit
        );
    }
    line(
        format!(
            "idle vtpm spends zero CPU ticks: {}",
            res.idle_ticks.map_or("?".into(), |t| t.to_string())
        ),
        res.idle_ticks.map(|t| t == 0),
    );
}

/// What one durable NV write must cost on this filesystem (pwrite 4 KiB +
/// fdatasync, p50), beside what swtpm does per NV write (write a new state
/// file, no flush, rename it over the old one), measured here in the same
/// run. Returns the p50 of the durable write in microseconds.
fn storage_floor() -> Option<f64> {
    use std::os::unix::fs::FileExt;
    const ROUNDS: usize = 300;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).ok()?;
    let page = vec![0x5au8; 4096];
    let image = dir.path().join("image");
    let f = std::fs::File::create(&image).ok()?;
    // Allocated up front, as the NVRAM image is.
    let mut synced = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        f.write_all_at(&page, (i * 4096) as u64).ok()?;
    }
    let _ = f.sync_all();
    for i in 0..ROUNDS {
        let t = Instant::now();
        f.write_all_at(&page, (i * 4096) as u64).ok()?;
        f.sync_data().ok()?;
        synced.push(t.elapsed());
    }
    let (state, tmp) = (dir.path().join("tpm2-00.permall"), dir.path().join("tmp"));
    let mut renamed = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        std::fs::write(&tmp, &page).ok()?;
        std::fs::rename(&tmp, &state).ok()?;
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
    Some(sync_us)
}
