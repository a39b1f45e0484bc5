//! The command line: `vtpm socket` (swtpm's `swtpm socket`), `vtpm chardev`
//! (swtpm's `swtpm chardev`, with `--vtpm-proxy`), `vtpm cuse` (swtpm's
//! `swtpm cuse`), `vtpm mssim` (the Microsoft/IBM simulator protocol), `vtpm
//! nvram` (image inspection); `vtpm setup` and `vtpm install` have their own
//! parsers (crate::setup, crate::install).
//! Parsing produces a [`Plan`]; nothing is opened or bound here, so every
//! mistake is reported before anything happens.
//!
//! Top level: `vtpm` alone prints the usage and exits 1 (swtpm too requires a
//! mode); `vtpm --help`, `--version` and `--print-capabilities` work without
//! a mode.

pub mod chardev_mode;
pub mod common;
pub mod cuse_mode;
pub mod mssim_mode;
pub mod options;
pub mod socket_mode;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::keys::KeySpec;
use crate::logging::LogSpec;
use crate::pidfile::PidSpec;
use crate::state_dir::StateSpec;

/// How loud a note about an accepted-but-ignored option is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteLevel {
    /// Harmless.
    Info,
    /// The user may expect an effect vtpm does not provide.
    Warn,
}

/// A remark about the command line, logged once the logger is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// How loud.
    pub level: NoteLevel,
    /// What to say.
    pub text: String,
}

impl Note {
    /// An informational note.
    pub fn info(text: impl Into<String>) -> Note {
        Note {
            level: NoteLevel::Info,
            text: text.into(),
        }
    }
    /// A warning.
    pub fn warn(text: impl Into<String>) -> Note {
        Note {
            level: NoteLevel::Warn,
            text: text.into(),
        }
    }
}

/// Which TPM2_Startup to send at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupType {
    /// TPM2_Startup(SU_CLEAR).
    Clear,
    /// TPM2_Startup(SU_STATE).
    State,
}

/// What `--flags` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupFlags {
    /// Power the TPM on at start (no CMD_INIT needed).
    pub power_on: bool,
    /// Send TPM2_Startup at start.
    pub startup: Option<StartupType>,
    /// Send TPM2_Shutdown before power-off / exit (swtpm's auto-shutdown).
    pub auto_shutdown: bool,
}

/// What `--migration` asks for (swtpm 0.8's option; see docs/architecture.md,
/// "Formatting and locking").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigrationSpec {
    /// `incoming`: take the state lock only when the state is first needed
    /// (CMD_SET_STATEBLOB, CMD_INIT or CMD_LOCK_STORAGE), so this instance
    /// can start while the outgoing one still holds it.
    pub incoming: bool,
    /// `release-lock-outgoing`: hand the state over (release the lock) once
    /// the savestate blob has been read with CMD_GET_STATEBLOB.
    pub release_lock_outgoing: bool,
}

/// A socket to serve on, before anything is bound or taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSpec {
    /// Listen on TCP.
    Tcp(SocketAddr),
    /// Listen on a UNIX socket path.
    Unix(PathBuf),
    /// An inherited descriptor (listening or connected socket).
    Fd {
        /// The number.
        fd: i32,
        /// The option it came from, for messages.
        option: &'static str,
    },
}

/// Ownership and mode to give a UNIX socket path after binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixPerm {
    /// The socket path.
    pub path: PathBuf,
    /// Mode bits (swtpm's default is 0770).
    pub mode: u32,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
}

/// `vtpm socket`: the swtpm data and control channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwtpmPlan {
    /// The data channel (TPM commands).
    pub data: Option<EndpointSpec>,
    /// The control channel.
    pub ctrl: Option<EndpointSpec>,
    /// Honour TPM2_SetLocality-style requests (swtpm `--locality allow-set-locality`).
    pub allow_set_locality: bool,
    /// End when the control connection closes (`--ctrl ...,terminate`).
    pub terminate_on_ctrl_close: bool,
    /// End when the data connection closes (`-t`, `--terminate`, `--fd`).
    pub terminate_on_data_close: bool,
    /// Close the data connection after each response (`--server ...,disconnect`).
    pub disconnect: bool,
    /// The control port also speaks the mssim platform protocol (bare `vtpm socket`,
    /// or the vtpm extension `--ctrl ...,mssim`), so `mssim:` TCTIs work too.
    pub ctrl_accepts_mssim: bool,
    /// Modes and owners of UNIX socket paths.
    pub unix_perms: Vec<UnixPerm>,
}

/// Where `vtpm chardev` takes TPM commands from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `--vtpm-proxy`: a new device from /dev/vtpmx.
    VtpmProxy,
    /// `--fd N`.
    Fd(i32),
    /// `--chardev PATH`.
    Path(PathBuf),
}

/// `vtpm chardev`: a character device and the swtpm control channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChardevPlan {
    /// The device.
    pub device: DeviceSpec,
    /// The control channel.
    pub ctrl: Option<EndpointSpec>,
    /// Honour the in-band TPM2_SetLocality (`--locality allow-set-locality`, implied by `--vtpm-proxy`).
    pub allow_set_locality: bool,
    /// End when the control connection closes (`--ctrl ...,terminate`).
    pub terminate_on_ctrl_close: bool,
    /// Modes and owners of UNIX socket paths.
    pub unix_perms: Vec<UnixPerm>,
}

/// `vtpm mssim`: the simulator's command and platform ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MssimPlan {
    /// TPM commands (port N).
    pub command: SocketAddr,
    /// Platform signals (port N+1).
    pub platform: SocketAddr,
}

/// `vtpm cuse`: a CUSE character device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CusePlan {
    /// /dev/NAME.
    pub name: String,
    /// Major number; 0: chosen by the kernel.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// `--locality allow-set-locality`.
    pub allow_set_locality: bool,
}

/// Which protocol to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serve {
    /// swtpm's.
    Swtpm(SwtpmPlan),
    /// swtpm's chardev mode.
    Chardev(ChardevPlan),
    /// mssim's.
    Mssim(MssimPlan),
    /// swtpm's CUSE device.
    Cuse(CusePlan),
}

impl Serve {
    /// The UNIX socket paths to give a mode and owner once bound.
    pub fn unix_perms(&self) -> &[UnixPerm] {
        match self {
            Serve::Swtpm(s) => &s.unix_perms,
            Serve::Chardev(c) => &c.unix_perms,
            Serve::Mssim(_) | Serve::Cuse(_) => &[],
        }
    }
}

/// Everything the command line asked for.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the state is.
    pub state: StateSpec,
    /// Logging.
    pub log: LogSpec,
    /// The pid file.
    pub pid: Option<PidSpec>,
    /// The state encryption key.
    pub key: Option<KeySpec>,
    /// Start-up and shutdown behaviour.
    pub startup: StartupFlags,
    /// `--daemon`.
    pub daemon: bool,
    /// `--locality reject-locality-4`.
    pub reject_locality_4: bool,
    /// `--migration` (socket mode only; mssim has none).
    pub migration: MigrationSpec,
    /// The protocol and its sockets.
    pub serve: Serve,
    /// Remarks to log at start.
    pub notes: Vec<Note>,
    /// Say on stderr where the TPM is served and its state kept (defaults were used).
    pub announce: bool,
    /// `--runas USER`.
    pub runas: Option<String>,
    /// `--migration-key`.
    pub migration_key: Option<crate::migration_key::MigrationKeySpec>,
    /// `--seccomp action=...`.
    pub seccomp: crate::seccomp::SeccompAction,
    /// `--chroot DIR`.
    pub chroot: Option<PathBuf>,
}

/// What to do.
#[derive(Debug)]
pub enum Action {
    /// Serve a TPM.
    Run(Box<Plan>),
    /// Print the capabilities JSON.
    PrintCapabilities,
    /// Print the state blobs JSON.
    PrintStates(StateSpec, Option<KeySpec>),
    /// Print this text on stdout and exit 0 (help, version).
    Print(String),
}

/// The one-line version.
pub fn version() -> String {
    format!(
        "vtpm {} (TPM 2.0 emulator, swtpm-compatible command line)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The top-level usage.
pub fn usage() -> String {
    format!(
        "\
{}
Usage: vtpm socket [OPTIONS]    serve a TPM 2.0 like `swtpm socket` (see vtpm socket --help)
       vtpm chardev [OPTIONS]   serve a TPM 2.0 like `swtpm chardev`: --chardev DEVICE, --fd N or --vtpm-proxy
       vtpm cuse -n NAME [OPTIONS]  serve a TPM 2.0 as /dev/NAME like `swtpm cuse` (needs the cuse module)
       vtpm mssim [OPTIONS]     serve a TPM 2.0 over the Microsoft/IBM simulator protocol
       vtpm nvram COMMAND ...   inspect, check, salvage or format an NVRAM image
       vtpm setup --tpm2 --tpmstate DIR [OPTIONS]  manufacture a TPM like swtpm_setup (EKs, certificates)
       vtpm install --prefix DIR  install DIR/bin/vtpm, swtpm and swtpm_setup (links) for libvirt
       vtpm --print-capabilities | --version | --help

`vtpm socket` without options serves on 127.0.0.1:2321 (data) and 127.0.0.1:2322
(control), powered on, with its state in $XDG_STATE_HOME/vtpm (or
~/.local/state/vtpm).
",
        version().trim_end()
    )
}

/// Turn a clap error into one line: its first line, without "error: ", plus its tip.
/// Arguments of a mode that embed the common options.
pub(crate) trait ModeArgs: clap::Parser {
    /// The common options.
    fn common(&self) -> &common::CommonArgs;
}

/// Parse `vtpm MODE args...`; `Err(action)` when help, `--version` or
/// `--print-capabilities` ends the run before anything else.
pub(crate) fn parse_mode<T: ModeArgs>(
    mode: &str,
    args: &[String],
) -> Result<std::result::Result<T, Action>> {
    let argv = std::iter::once(format!("vtpm {mode}")).chain(args.iter().cloned());
    let a = match T::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok(Err(Action::Print(e.render().to_string())))
        }
        Err(e) => return Err(clap_error(mode, e)),
    };
    if a.common().version {
        return Ok(Err(Action::Print(version())));
    }
    if a.common().print_capabilities {
        return Ok(Err(Action::PrintCapabilities));
    }
    Ok(Ok(a))
}

pub(crate) fn clap_error(mode: &str, e: clap::Error) -> Error {
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    let tip = lines.find_map(|l| l.trim().strip_prefix("tip: ").map(str::to_string));
    Error::Usage(match tip {
        Some(t) => format!("{mode}: {first} ({t})"),
        None => format!("{mode}: {first}"),
    })
}

/// Parse the whole command line (without the program name).
pub fn parse(args: &[String]) -> Result<Action> {
    let Some(first) = args.first() else {
        return Err(Error::Usage(
            "a mode is required (socket, chardev, cuse, mssim, nvram, setup or install); see `vtpm --help`".into(),
        ));
    };
    let rest = &args[1..];
    match first.as_str() {
        "socket" => socket_mode::parse(rest),
        "chardev" => chardev_mode::parse(rest),
        "mssim" => mssim_mode::parse(rest),
        "cuse" => cuse_mode::parse(rest),
        "-h" | "--help" | "help" => Ok(Action::Print(usage())),
        "-v" | "-V" | "--version" => Ok(Action::Print(version())),
        "--print-capabilities" => Ok(Action::PrintCapabilities),
        other if other.starts_with('-') => {
            Err(Error::Usage(format!("{other}: options come after the mode, e.g. `vtpm socket {other}`")))
        }
        other => Err(Error::Usage(format!("unknown mode '{other}' (expected socket, chardev, cuse, mssim, nvram, setup or install)"))),
    }
}

/// An IPv4 or IPv6 address (IPv6 may be in brackets), for `option`.
pub fn ip_addr(option: &'static str, s: &str) -> Result<std::net::IpAddr> {
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse().map_err(|_| {
        Error::usage(
            option,
            format!("bindaddr={s}: expected an IPv4 or IPv6 address"),
        )
    })
}

/// A descriptor number may be handed to one option only (each takes ownership).
pub fn check_fds(plan: &Plan) -> Result<()> {
    use crate::keys::KeyInput;
    use crate::logging::LogTarget;
    let mut fds: Vec<(i32, &str)> = Vec::new();
    let endpoints = match &plan.serve {
        Serve::Swtpm(s) => vec![&s.data, &s.ctrl],
        Serve::Chardev(c) => {
            if let DeviceSpec::Fd(fd) = c.device {
                fds.push((fd, "--fd"));
            }
            vec![&c.ctrl]
        }
        Serve::Mssim(_) | Serve::Cuse(_) => Vec::new(),
    };
    for e in endpoints.into_iter().flatten() {
        if let EndpointSpec::Fd { fd, option } = e {
            fds.push((*fd, option));
        }
    }
    if let LogTarget::Fd(n) = plan.log.target {
        // stdout and stderr are shared, not taken.
        if n > 2 {
            fds.push((n, "--log"));
        }
    }
    if let Some(PidSpec::Fd(n)) = plan.pid {
        fds.push((n, "--pid"));
    }
    if let Some(KeySpec {
        input: KeyInput::Fd(n) | KeyInput::PwdFd(n),
        ..
    }) = plan.key
    {
        fds.push((n, "--key"));
    }
    if let Some(crate::migration_key::MigrationKeySpec {
        source:
            KeySpec {
                input: KeyInput::Fd(n) | KeyInput::PwdFd(n),
                ..
            },
        ..
    }) = plan.migration_key
    {
        fds.push((n, "--migration-key"));
    }
    for (fd, option) in &fds {
        if *fd <= 2 {
            return Err(Error::Usage(format!(
                "{option}: file descriptor {fd} is stdin, stdout or stderr and cannot be used"
            )));
        }
        // Checked now, before any state is touched; taken later by fds::take.
        if nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            return Err(Error::Usage(format!(
                "{option}: file descriptor {fd} is not open"
            )));
        }
    }
    for (i, (fd, a)) in fds.iter().enumerate() {
        if let Some((_, b)) = fds[i + 1..].iter().find(|(f, _)| f == fd) {
            return Err(Error::Usage(format!(
                "file descriptor {fd} is given to both {a} and {b}"
            )));
        }
    }
    Ok(())
}

/// The plan a mode's `parse` makes of `args`; panics on any other action
/// (for the modes' tests).
#[cfg(test)]
pub(crate) fn plan_of(parse: fn(&[String]) -> Result<Action>, args: &[&str]) -> Result<Plan> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match parse(&args)? {
        Action::Run(p) => Ok(*p),
        other => panic!("{other:?}"),
    }
}
