//! Side-by-side load bench: drives vtpm and swtpm + libtpms over the same swtpm
//! socket protocol (one persistent data connection, as QEMU uses), runs the
//! same workloads against both in one run, and prints ops/s, p50/p99 latency
//! and the ratio vtpm/swtpm. Both keep their state on the same filesystem.
//!
//! `cargo bench -p vtpm --bench load` (add `-- --secs N` to change the time per
//! workload, `-- --relaxed` to run vtpm with `--tpmstate ...,sync=off`).
//!
//! Workloads so far: GetRandom (the transport floor: what the hand-off from a
//! socket to the TPM thread and back costs) and PCR_Extend. The key-persisting
//! workloads join with the object commands.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Send one command and read its response; returns the response code.
    fn call(&mut self, cmd: &[u8]) -> u32 {
        self.conn.write_all(cmd).expect("send");
        let mut hdr = [0u8; 10];
        self.conn.read_exact(&mut hdr).expect("response header");
        let size = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
        let mut rest = vec![0u8; size.saturating_sub(10)];
        self.conn.read_exact(&mut rest).expect("response body");
        u32::from_be_bytes([hdr[6], hdr[7], hdr[8], hdr[9]])
    }
}

fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// One workload: the commands of one operation.
struct Workload {
    name: &'static str,
    ops: Vec<Vec<u8>>,
}

fn workloads() -> Vec<Workload> {
    let pw: Vec<u8> = [
        &9u32.to_be_bytes()[..],
        &0x4000_0009u32.to_be_bytes(),
        &[0, 0, 1, 0, 0],
    ]
    .concat();
    let extend = [
        &16u32.to_be_bytes()[..],
        &pw,
        &1u32.to_be_bytes(),
        &0x000Bu16.to_be_bytes(),
        &[0x42; 32],
    ]
    .concat();
    vec![
        Workload {
            name: "GetRandom(32)",
            ops: vec![command(0x8001, 0x17B, &32u16.to_be_bytes())],
        },
        Workload {
            name: "PCR_Extend(16, sha256)",
            ops: vec![command(0x8002, 0x182, &extend)],
        },
    ]
}

struct Figures {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

fn run(t: &mut Target, w: &Workload, secs: f64) -> Figures {
    // Warm up, and make sure the workload succeeds on this TPM.
    for op in &w.ops {
        let rc = t.call(op);
        assert_eq!(rc, 0, "{} on {}: response code {rc:#x}", w.name, t.name);
    }
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let t0 = Instant::now();
        for op in &w.ops {
            t.call(op);
        }
        lat.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    Figures {
        ops_per_s: lat.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
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
        "\n== load bench: {secs} s per workload, one persistent data connection, vtpm {} ==",
        if relaxed { "sync=off" } else { "durable" }
    );
    println!(
        "{:<26} {:>12} {:>9} {:>9} | {:>12} {:>9} {:>9} | {:>7}",
        "workload", "vtpm ops/s", "p50 us", "p99 us", "swtpm ops/s", "p50 us", "p99 us", "ratio"
    );
    for w in workloads() {
        let ours = run(&mut vtpm, &w, secs);
        match sw.as_mut().map(|s| run(s, &w, secs)) {
            Some(theirs) => println!(
                "{:<26} {:>12.0} {:>9.1} {:>9.1} | {:>12.0} {:>9.1} {:>9.1} | {:>6.2}x",
                w.name,
                ours.ops_per_s,
                ours.p50_us,
                ours.p99_us,
                theirs.ops_per_s,
                theirs.p50_us,
                theirs.p99_us,
                ours.ops_per_s / theirs.ops_per_s
            ),
            None => println!(
                "{:<26} {:>12.0} {:>9.1} {:>9.1}",
                w.name, ours.ops_per_s, ours.p50_us, ours.p99_us
            ),
        }
    }
}
