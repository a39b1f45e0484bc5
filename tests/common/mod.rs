//! Shared helpers of the end-to-end tests: run the real `vtpm` binary (and,
//! for comparison, the real `swtpm`) on free ports with a temporary state
//! directory, wait for it to listen, and kill it on drop so no test leaves a
//! process behind. Every helper is parallel-safe: ports come from the kernel
//! and each instance has its own directory.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

pub mod provisioned;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

/// The `vtpm` binary under test.
pub fn vtpm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vtpm")
}

/// Run `vtpm args...` to completion (for options that print and exit).
pub fn vtpm_output(args: &[&str]) -> Output {
    Command::new(vtpm_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vtpm")
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A port N such that N and N+1 were both free a moment ago.
pub fn free_port_pair() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let n = l.local_addr().expect("addr").port();
        if n < u16::MAX && TcpListener::bind(("127.0.0.1", n + 1)).is_ok() {
            return n;
        }
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Wait until `cond` holds (polling), at most `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    cond()
}

/// A running child process, killed (SIGKILL) and reaped on drop.
pub struct Guard {
    /// The process; None once it has been waited for.
    pub child: Option<Child>,
    /// Where its stderr goes (read with [`Guard::stderr`]).
    pub stderr_path: PathBuf,
}

impl Guard {
    /// Spawn `program args...` with stderr to `stderr_path` (a file, so it never blocks).
    pub fn spawn(
        program: &str,
        args: &[String],
        stderr_path: PathBuf,
        env: &[(&str, &str)],
    ) -> Guard {
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        Guard {
            child: Some(child),
            stderr_path,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Its exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait for it to exit, at most `timeout` (None: still running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.try_status();
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Send `sig`.
    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// SIGTERM, then wait up to 20 s for the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        self.wait_timeout(Duration::from_secs(20))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kill a process we do not own as a child (a daemonized vtpm) on drop.
pub struct PidGuard(pub i32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if self.0 > 0 {
            let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }
}

/// Whether process `pid` exists.
pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Which protocol an instance speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// swtpm data + control channels.
    Swtpm,
    /// mssim command + platform ports.
    Mssim,
}

/// A running `vtpm` (or `swtpm`) on two TCP ports with its own state directory.
pub struct Vtpm {
    /// The process.
    pub guard: Guard,
    /// Data (swtpm) or command (mssim) port.
    pub port: u16,
    /// Control (swtpm) or platform (mssim) port: `port + 1`.
    pub ctrl_port: u16,
    /// Holds the state directory (`dir()`), the stderr file and anything else.
    pub tmp: TempDir,
    /// The protocol.
    pub protocol: Protocol,
}

impl Vtpm {
    /// The state directory.
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// The TCTI string for tpm2-tools / tpm2-tss.
    pub fn tcti(&self) -> String {
        match self.protocol {
            Protocol::Swtpm => format!("swtpm:host=127.0.0.1,port={}", self.port),
            Protocol::Mssim => format!("mssim:host=127.0.0.1,port={}", self.port),
        }
    }

    /// `vtpm socket` powered on with TPM2_Startup(CLEAR) sent, on free ports.
    pub fn start_socket() -> Vtpm {
        Vtpm::start_socket_with(&["--flags", "not-need-init,startup-clear"])
    }

    /// `vtpm socket` with `extra` options, on free TCP ports, state in a temp dir.
    pub fn start_socket_with(extra: &[&str]) -> Vtpm {
        Vtpm::start(vtpm_bin(), Protocol::Swtpm, |dir, port| {
            socket_args(dir, port, extra)
        })
    }

    /// Start `vtpm socket` again on the same state directory (the previous process
    /// must have ended), on new ports, with `extra` options.
    pub fn restart_socket(&mut self, extra: &[&str]) {
        let (dir, tmp) = (self.dir(), self.tmp.path().to_path_buf());
        let (guard, port) = spawn_listening(
            vtpm_bin(),
            |port| tmp.join(format!("stderr.{port}")),
            |port| socket_args(&dir, port, extra),
        )
        .unwrap_or_else(|e| panic!("vtpm did not restart: {e}"));
        self.guard = guard;
        (self.port, self.ctrl_port) = (port, port + 1);
    }

    /// `vtpm mssim` on free ports N, N+1, with `extra` options.
    pub fn start_mssim_with(extra: &[&str]) -> Vtpm {
        Vtpm::start(vtpm_bin(), Protocol::Mssim, |dir, port| {
            let mut a = vec![
                "mssim".to_string(),
                "--tpmstate".into(),
                format!("dir={}", dir.display()),
                "--port".into(),
                port.to_string(),
            ];
            a.extend(extra.iter().map(|s| s.to_string()));
            a
        })
    }

    /// `vtpm mssim` on free ports (powered off: the mssim TCTI powers it on).
    pub fn start_mssim() -> Vtpm {
        Vtpm::start_mssim_with(&[])
    }

    /// Start `program` with the arguments `args(state_dir, port)` and wait until
    /// both ports listen. A port taken between choosing and binding makes the
    /// process exit early; that is retried with new ports.
    pub fn start(
        program: &str,
        protocol: Protocol,
        args: impl Fn(&Path, u16) -> Vec<String>,
    ) -> Vtpm {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).expect("state dir");
        let (guard, port) = spawn_listening(
            program,
            |port| tmp.path().join(format!("stderr.{port}")),
            |port| args(&dir, port),
        )
        .unwrap_or_else(|e| panic!("{program} did not start listening: {e}"));
        Vtpm {
            guard,
            port,
            ctrl_port: port + 1,
            tmp,
            protocol,
        }
    }
}

/// Spawn `program` with `args(port)` on a free port pair until it listens on
/// both ports. A port taken between choosing and binding (by another test's
/// listener or client) makes the process exit; that is retried with new
/// ports, five times. Any other early exit is an error with its stderr.
fn spawn_listening(
    program: &str,
    stderr: impl Fn(u16) -> PathBuf,
    args: impl Fn(u16) -> Vec<String>,
) -> Result<(Guard, u16), String> {
    let mut last_err = String::new();
    for _attempt in 0..5 {
        let port = free_port_pair();
        let mut guard = Guard::spawn(program, &args(port), stderr(port), &[]);
        let mut exited = false;
        let up = wait_until(Duration::from_secs(20), || {
            if guard.try_status().is_some() {
                exited = true;
                return true;
            }
            listening(port) && listening(port + 1)
        });
        if up && !exited {
            return Ok((guard, port));
        }
        last_err = guard.stderr();
        if !last_err.contains("bind") && !last_err.contains("in use") {
            break;
        }
    }
    Err(last_err)
}

/// The arguments of `vtpm socket` on `dir` and TCP ports `port`, `port + 1`.
pub fn socket_args(dir: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    socket_args_on(&format!("dir={}", dir.display()), port, extra)
}

/// The arguments of `vtpm socket --tpmstate STATE` on TCP ports `port`, `port + 1`.
pub fn socket_args_on(state: &str, port: u16, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "socket".to_string(),
        "--tpm2".into(),
        "--tpmstate".into(),
        state.to_string(),
        "--server".into(),
        format!("type=tcp,port={port}"),
        "--ctrl".into(),
        format!("type=tcp,port={}", port + 1),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// The real `swtpm socket --tpm2 ... --flags not-need-init,startup-clear` on free
/// ports, for side-by-side comparisons. None when swtpm is not installed.
pub fn start_swtpm() -> Option<Vtpm> {
    let swtpm = ["/usr/bin/swtpm", "/usr/local/bin/swtpm"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    Some(Vtpm::start(swtpm, Protocol::Swtpm, |dir, port| {
        vec![
            "socket".into(),
            "--tpm2".into(),
            "--tpmstate".into(),
            format!("dir={}", dir.display()),
            "--server".into(),
            format!("type=tcp,port={port}"),
            "--ctrl".into(),
            format!("type=tcp,port={}", port + 1),
            "--flags".into(),
            "not-need-init,startup-clear".into(),
        ]
    }))
}

/// Whether libtss2-esys and the swtpm TCTI are installed (scripts/test.sh
/// installs libtss2-dev, which brings both): the tss-esapi tests need them.
pub fn have_tss() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .any(|d| Path::new(d).join("libtss2-tcti-swtpm.so.0").exists())
}

/// Run a tpm2-tools program (`tpm2_getrandom`, ...) against `tcti`, at most 60 s.
pub fn run_tpm2(tool: &str, args: &[&str], tcti: &str) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(tool)
        .args(args)
        .env("TPM2TOOLS_TCTI", tcti)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

/// Whether tpm2-tools are installed (tests needing them skip otherwise).
pub fn have_tpm2_tools() -> bool {
    Path::new("/usr/bin/tpm2_getrandom").exists()
}

/// Run a tpm2-tools program that must succeed; returns its stdout.
pub fn tpm2_ok(tool: &str, args: &[&str], tcti: &str) -> String {
    let out = run_tpm2(tool, args, tcti);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a tpm2-tools program that must fail; returns its stderr.
pub fn tpm2_fails(tool: &str, args: &[&str], tcti: &str) -> String {
    let out = run_tpm2(tool, args, tcti);
    assert!(!out.status.success(), "{tool} {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Return from the test (with a note) when tpm2-tools or openssl are not installed.
#[macro_export]
macro_rules! need_tools_and_openssl {
    () => {
        if !common::have_tpm2_tools() || !std::path::Path::new("/usr/bin/openssl").exists() {
            eprintln!(
                "tpm2-tools or openssl not installed: skipped (scripts/test.sh installs them)"
            );
            return;
        }
    };
}

/// Return from the test (with a note) when tpm2-tools are not installed.
#[macro_export]
macro_rules! need_tools {
    () => {
        if !common::have_tpm2_tools() {
            eprintln!("tpm2-tools not installed: skipped (scripts/test.sh installs them)");
            return;
        }
    };
}

/// Start `program socket --tpmstate STATE EXTRA...` on free ports: the
/// running process and its data port, or its stderr when it exits instead
/// of listening (a refused start).
pub fn try_start_on(
    program: &str,
    state: &str,
    extra: &[&str],
    scratch: &Path,
) -> Result<(Guard, u16), String> {
    let port = free_port_pair();
    let args = socket_args_on(state, port, extra);
    let mut g = Guard::spawn(program, &args, scratch.join(format!("e.{port}")), &[]);
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if g.try_status().is_some() {
            return Err(g.stderr());
        }
        if listening(port) && listening(port + 1) {
            return Ok((g, port));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{program} neither started nor exited: {}", g.stderr());
}

/// `vtpm socket` on the state directory `dir`, powered on with Startup sent;
/// as [`try_start_on`].
pub fn try_start_dir(dir: &Path, scratch: &Path) -> Result<(Guard, u16), String> {
    try_start_on(
        vtpm_bin(),
        &format!("dir={}", dir.display()),
        &["--flags", "not-need-init,startup-clear"],
        scratch,
    )
}

/// One data connection carrying raw TPM commands.
pub struct RawConn(TcpStream);

impl RawConn {
    /// Connect to the data port `port` on 127.0.0.1.
    pub fn open(port: u16) -> RawConn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the data port");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        RawConn(s)
    }

    /// Send one command; the response code and the bytes after the header.
    pub fn send(&mut self, cmd: &[u8]) -> (u32, Vec<u8>) {
        use std::io::{Read, Write};
        self.0.write_all(cmd).expect("send a command");
        let mut hdr = [0u8; 10];
        self.0.read_exact(&mut hdr).expect("read a response header");
        let size = u32::from_be_bytes(hdr[2..6].try_into().unwrap()) as usize;
        let mut rest = vec![0u8; size.saturating_sub(10)];
        self.0.read_exact(&mut rest).expect("read a response");
        (u32::from_be_bytes(hdr[6..10].try_into().unwrap()), rest)
    }
}

/// A TPM under test and a scratch directory tpm2-tools run in.
pub struct ToolBench {
    /// The TPM.
    pub tpm: Vtpm,
    /// The scratch directory.
    pub work: PathBuf,
}

impl ToolBench {
    /// A bench over `tpm`, its scratch directory inside the TPM's temp dir.
    pub fn new(tpm: Vtpm) -> ToolBench {
        let work = tpm.tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        ToolBench { tpm, work }
    }

    /// A file of the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Read a file of the scratch directory.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// Write a file of the scratch directory.
    pub fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.path(name), data).unwrap();
    }

    /// Run `tool` in the scratch directory. Without a resource manager the
    /// tools leave their objects (and, some, sessions: on failure, and
    /// tpm2_ecdhzgen even on success) loaded: flush transient objects and
    /// loaded and saved sessions afterwards.
    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        let run = |tool: &str, args: &[&str]| {
            Command::new("timeout")
                .arg("60")
                .arg(tool)
                .args(args)
                .current_dir(&self.work)
                .env("TPM2TOOLS_TCTI", self.tpm.tcti())
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run {tool}: {e}"))
        };
        let out = run(tool, args);
        if tool.starts_with("tpm2_") {
            for w in ["-t", "-l", "-s"] {
                let f = run("tpm2_flushcontext", &[w]);
                assert!(f.status.success(), "flushcontext {w}: {f:?}");
            }
        }
        out
    }

    /// A child key `name.ctx` of `prim.ctx` (created and loaded):
    /// `name.pub`, `name.priv` and `name.ctx` in the scratch directory.
    pub fn key(&self, name: &str, alg: &str, attrs: Option<&str>) {
        let (pubf, privf, ctx) = (
            format!("{name}.pub"),
            format!("{name}.priv"),
            format!("{name}.ctx"),
        );
        let mut args = vec!["-C", "prim.ctx", "-G", alg, "-u", &pubf, "-r", &privf, "-Q"];
        if let Some(a) = attrs {
            args.extend(["-a", a]);
        }
        self.ok("tpm2_create", &args);
        self.ok(
            "tpm2_load",
            &[
                "-C", "prim.ctx", "-u", &pubf, "-r", &privf, "-c", &ctx, "-Q",
            ],
        );
    }

    /// Run a tool that must succeed; its stdout.
    pub fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// "ok", or the TPM response code a failing tool reports ("0x000002d2").
    pub fn code(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        if out.status.success() {
            return "ok".into();
        }
        let err = String::from_utf8_lossy(&out.stderr);
        match err.find("ErrorCode (0x") {
            Some(at) => err[at + 11..at + 21].to_string(),
            None => panic!("{tool} {args:?}: no TPM error code in:\n{err}"),
        }
    }

    /// Run a tool that must fail; the TPM response code it reports.
    pub fn fails(&self, tool: &str, args: &[&str]) -> u32 {
        let code = self.code(tool, args);
        assert!(code != "ok", "{tool} {args:?} should have failed");
        u32::from_str_radix(&code[2..], 16).unwrap()
    }
}
