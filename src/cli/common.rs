//! The options the serving modes share: state, flags, log, pid, keys,
//! daemon, the swtpm options vtpm accepts but has no use for, and the
//! control channel, locality and socket addresses of `vtpm socket` and
//! `vtpm chardev`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};

use super::options::{boolean, flag, value, Spec, SubOptions};
use super::{
    Action, EndpointSpec, MigrationSpec, Note, Plan, Serve, StartupFlags, StartupType, UnixPerm,
};
use crate::error::{Error, Result};
use crate::keys::{KeyFormat, KeyInput, KeySpec};
use crate::logging::{LogSpec, LogTarget};
use crate::migration_key::{Kdf, MigrationKeySpec};
use crate::pidfile::PidSpec;
use crate::seccomp::SeccompAction;
use crate::state_dir::{StateLocation, StateSpec};

/// Options common to every serving mode (flattened into each mode's parser).
#[derive(clap::Args, Debug, Default)]
pub struct CommonArgs {
    /// TPM state: dir=DIR[,mode=0640][,lock][,sync=on|off] or backend-uri=file://IMAGE|dir://DIR[,mode=..][,sync=..]
    #[arg(long, value_name = "SPEC")]
    pub tpmstate: Option<String>,
    /// Choose TPM 2 (vtpm emulates only TPM 2.0; accepted for compatibility).
    #[arg(long)]
    pub tpm2: bool,
    /// not-need-init,startup-clear|startup-state|startup-none,disable-auto-shutdown
    #[arg(long, value_name = "FLAGS")]
    pub flags: Option<String>,
    /// Logging: file=F|fd=N[,level=N][,prefix=P][,truncate] (file=- disables logging)
    #[arg(long, value_name = "SPEC")]
    pub log: Option<String>,
    /// Write the process id: file=F|fd=N
    #[arg(long, value_name = "SPEC")]
    pub pid: Option<String>,
    /// Encrypt the state: file=F|fd=N[,format=hex|binary][,mode=..][,remove] or pwdfile=F|pwdfd=N[,kdf=..][,remove]
    #[arg(long, value_name = "SPEC")]
    pub key: Option<String>,
    /// Encrypt the state blobs read out for migration, and decrypt those written in: file=F|fd=N[,format=hex|binary][,mode=aes-cbc|aes-256-cbc][,remove] or pwdfile=F|pwdfd=N[,mode=..][,kdf=pbkdf2|sha512][,remove]
    #[arg(long = "migration-key", value_name = "SPEC")]
    pub migration_key: Option<String>,
    /// Detach from the terminal once the sockets are bound.
    #[arg(short = 'd', long)]
    pub daemon: bool,
    /// The syscall filter installed before serving: action=kill (the default: a syscall vtpm does not use ends it), log (allowed and logged by the kernel) or none
    #[arg(long, value_name = "SPEC")]
    pub seccomp: Option<String>,
    /// Switch to this user (a name or a uid) and its group once the sockets
    /// are bound, the state is open and the pid file is written.
    #[arg(short = 'r', long, value_name = "USER")]
    pub runas: Option<String>,
    /// Change the root directory to DIR at start (root only); --tpmstate, --pid, --key, --migration-key and UNIX socket paths are then inside DIR (--log is opened before)
    #[arg(short = 'R', long, value_name = "DIR")]
    pub chroot: Option<String>,
    /// Accepted for compatibility and ignored (vtpm has one fixed profile).
    #[arg(long, value_name = "SPEC")]
    pub profile: Option<String>,
    /// Print the features of vtpm as swtpm-style JSON and exit.
    #[arg(long)]
    pub print_capabilities: bool,
    /// Print the state blobs in the storage as swtpm-style JSON and exit.
    #[arg(long)]
    pub print_states: bool,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

const TPMSTATE: Spec = Spec {
    option: "--tpmstate",
    keys: &[
        value("dir"),
        value("backend-uri"),
        value("mode"),
        flag("lock"),
        value("sync"),
    ],
};

const FLAGS: Spec = Spec {
    option: "--flags",
    keys: &[
        flag("not-need-init"),
        flag("startup-clear"),
        flag("startup-state"),
        flag("startup-deactivated"),
        flag("startup-none"),
        flag("disable-auto-shutdown"),
    ],
};

/// The `--flags` that choose the TPM2_Startup sent at start.
const STARTUP_FLAGS: &[&str] = &[
    "startup-clear",
    "startup-state",
    "startup-deactivated",
    "startup-none",
];

const LOG: Spec = Spec {
    option: "--log",
    keys: &[
        value("file"),
        value("fd"),
        value("level"),
        value("prefix"),
        flag("truncate"),
    ],
};

const PID: Spec = Spec {
    option: "--pid",
    keys: &[value("file"), value("fd")],
};

const KEY_KEYS: &[super::options::Key] = &[
    value("file"),
    value("fd"),
    value("pwdfile"),
    value("pwdfd"),
    value("format"),
    value("mode"),
    boolean("remove"),
    value("kdf"),
];

const KEY: Spec = Spec {
    option: "--key",
    keys: KEY_KEYS,
};

const MIGRATION_KEY: Spec = Spec {
    option: "--migration-key",
    // swtpm's manual spells kdf= as pdf= for this option; accept both.
    keys: &[
        value("file"),
        value("fd"),
        value("pwdfile"),
        value("pwdfd"),
        value("format"),
        value("mode"),
        boolean("remove"),
        value("kdf"),
        value("pdf"),
    ],
};

const MIGRATION: Spec = Spec {
    option: "--migration",
    keys: &[boolean("incoming"), boolean("release-lock-outgoing")],
};

const SECCOMP: Spec = Spec {
    option: "--seccomp",
    keys: &[value("action")],
};

/// Make `p` absolute (the daemon moves to `/` after start-up).
pub fn absolute(option: &'static str, p: &str) -> Result<PathBuf> {
    std::path::absolute(Path::new(p)).map_err(|e| Error::usage(option, format!("{p}: {e}")))
}

/// What a relative path of a file opened after start-up is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The directory vtpm was started in.
    Cwd,
    /// The new root of `--chroot` (vtpm is in its `/` then, as swtpm).
    ChrootRoot,
}

/// `p` made absolute against `base`.
pub fn resolve(option: &'static str, p: &str, base: Base) -> Result<PathBuf> {
    match base {
        Base::ChrootRoot => Ok(Path::new("/").join(p)),
        Base::Cwd => absolute(option, p),
    }
}

/// The base of paths opened after start-up, given `--chroot`.
pub fn base(args: &CommonArgs) -> Base {
    if args.chroot.is_some() {
        Base::ChrootRoot
    } else {
        Base::Cwd
    }
}

/// `--tpmstate`, or the default location.
pub fn state(arg: Option<&str>, base: Base) -> Result<StateSpec> {
    let Some(text) = arg else {
        let dir = StateSpec::default_location()?;
        return Ok(StateSpec {
            location: StateLocation::Dir(absolute("--tpmstate", &dir.to_string_lossy())?),
            mode: 0o640,
            relaxed: false,
            defaulted: true,
        });
    };
    let o = SubOptions::parse(&TPMSTATE, text)?;
    let location = match o.exactly_one(&["dir", "backend-uri"])? {
        "dir" => StateLocation::Dir(resolve(
            "--tpmstate",
            o.str("dir").unwrap_or_default(),
            base,
        )?),
        _ => {
            let uri = o.str("backend-uri").unwrap_or_default();
            if let Some(p) = uri.strip_prefix("file://").filter(|p| !p.is_empty()) {
                StateLocation::Image(resolve("--tpmstate", p, base)?)
            } else if let Some(p) = uri.strip_prefix("dir://").filter(|p| !p.is_empty()) {
                StateLocation::Dir(resolve("--tpmstate", p, base)?)
            } else if uri.starts_with("nbd://") || uri.starts_with("nbd+unix://") {
                StateLocation::Nbd(
                    nvram::nbd::NbdUri::parse(uri).map_err(|e| {
                        Error::usage("--tpmstate", format!("backend-uri={uri}: {e}"))
                    })?,
                )
            } else {
                return Err(Error::usage(
                    "--tpmstate",
                    format!(
                        "backend-uri={uri}: expected file://PATH, dir://PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"
                    ),
                ));
            }
        }
    };
    let relaxed = o.choice("sync", &["on", "off"])? == Some("off");
    // `lock` (swtpm 0.8) asks for what vtpm always does: the state is locked at start.
    Ok(StateSpec {
        location,
        mode: o.mode("mode")?.unwrap_or(0o640),
        relaxed,
        defaulted: false,
    })
}

/// `--flags`.
pub fn flags(arg: Option<&str>, notes: &mut Vec<Note>) -> Result<StartupFlags> {
    let mut f = StartupFlags {
        power_on: false,
        startup: None,
        auto_shutdown: true,
    };
    let Some(text) = arg else { return Ok(f) };
    let o = SubOptions::parse(&FLAGS, text)?;
    f.power_on = o.flag("not-need-init");
    f.auto_shutdown = !o.flag("disable-auto-shutdown");
    match o.at_most_one(STARTUP_FLAGS)? {
        Some("startup-clear") => f.startup = Some(StartupType::Clear),
        Some("startup-state") => f.startup = Some(StartupType::State),
        Some("startup-deactivated") => {
            // As swtpm: a TPM 2 has no deactivated startup; it is reported, not sent.
            notes.push(Note::warn(
                "--flags startup-deactivated applies to TPM 1.2 only; no TPM2_Startup is sent",
            ));
            f.power_on = true;
        }
        _ => {}
    }
    if f.startup.is_some() {
        // The startup-* flags imply not-need-init (swtpm(8)).
        f.power_on = true;
    }
    Ok(f)
}

/// `--flags` of `chardev --vtpm-proxy`: as swtpm, the TPM is powered on (the
/// kernel talks to it at once) and TPM2_Startup(SU_CLEAR) is sent, unless a
/// `startup-*` flag chooses otherwise.
pub fn proxy_flags(arg: Option<&str>, notes: &mut Vec<Note>) -> Result<StartupFlags> {
    let mut f = flags(arg, notes)?;
    let chosen = match arg {
        Some(text) => {
            let o = SubOptions::parse(&FLAGS, text)?;
            STARTUP_FLAGS.iter().any(|k| o.has(k))
        }
        None => false,
    };
    if !chosen {
        f.startup = Some(StartupType::Clear);
    }
    f.power_on = true;
    Ok(f)
}

/// `--migration [incoming][,release-lock-outgoing]`. As swtpm, an unknown
/// parameter is refused before anything starts (exit status 1).
pub fn migration(
    arg: Option<&str>,
    startup: &StartupFlags,
    notes: &mut Vec<Note>,
) -> Result<MigrationSpec> {
    let Some(text) = arg else {
        return Ok(MigrationSpec::default());
    };
    let o = SubOptions::parse(&MIGRATION, text)?;
    let m = MigrationSpec {
        incoming: o.flag("incoming"),
        release_lock_outgoing: o.flag("release-lock-outgoing"),
    };
    if m.incoming && startup.power_on {
        notes.push(Note::warn(
            "--migration incoming with --flags not-need-init or startup-*: the TPM is powered on at start, which needs its state, so the state lock is taken at start (waiting up to 3 s for it)",
        ));
    }
    Ok(m)
}

/// `--log`.
pub fn log(arg: Option<&str>) -> Result<LogSpec> {
    let Some(text) = arg else {
        return Ok(LogSpec::default());
    };
    let o = SubOptions::parse(&LOG, text)?;
    let truncate = o.flag("truncate");
    let target = match o.at_most_one(&["file", "fd"])? {
        Some("file") if o.str("file") == Some("-") => LogTarget::Off,
        Some("file") => LogTarget::File {
            path: absolute("--log", o.str("file").unwrap_or_default())?,
            truncate,
        },
        Some(_) => LogTarget::Fd(o.fd("fd")?.unwrap_or_default()),
        None => LogTarget::Stderr,
    };
    let level = o.parsed::<u32>("level", "a number")?.unwrap_or(1);
    Ok(LogSpec {
        target,
        level,
        prefix: o.str("prefix").unwrap_or_default().to_string(),
    })
}

/// `--pid`.
pub fn pid(arg: Option<&str>, base: Base) -> Result<Option<PidSpec>> {
    let Some(text) = arg else { return Ok(None) };
    let o = SubOptions::parse(&PID, text)?;
    Ok(Some(match o.exactly_one(&["file", "fd"])? {
        "file" => PidSpec::File(resolve("--pid", o.str("file").unwrap_or_default(), base)?),
        _ => PidSpec::Fd(o.fd("fd")?.unwrap_or_default()),
    }))
}

fn key_spec(spec: &Spec, text: &str, base: Base) -> Result<(KeySpec, SubOptions)> {
    let o = SubOptions::parse(spec, text)?;
    let option = spec.option;
    let input = match o.exactly_one(&["file", "fd", "pwdfile", "pwdfd"])? {
        "file" => KeyInput::File(resolve(option, o.str("file").unwrap_or_default(), base)?),
        "fd" => KeyInput::Fd(o.fd("fd")?.unwrap_or_default()),
        "pwdfile" => {
            KeyInput::PwdFile(resolve(option, o.str("pwdfile").unwrap_or_default(), base)?)
        }
        _ => KeyInput::PwdFd(o.fd("pwdfd")?.unwrap_or_default()),
    };
    let passphrase = matches!(input, KeyInput::PwdFile(_) | KeyInput::PwdFd(_));
    if passphrase {
        o.forbid(&["format"], "with a passphrase (pwdfile=, pwdfd=)")?;
    } else {
        o.forbid(
            &["kdf", "pdf"],
            "with a key (file=, fd=); it is for passphrases",
        )?;
    }
    // aes-256-gcm: libvirt passes it for --key when swtpm offers it.
    let modes: &[&'static str] = if option == "--key" {
        &["aes-cbc", "aes-128-cbc", "aes-256-cbc", "aes-256-gcm"]
    } else {
        &["aes-cbc", "aes-128-cbc", "aes-256-cbc"]
    };
    o.choice("mode", modes)?;
    o.choice("kdf", &["sha512", "pbkdf2"])?;
    o.choice("pdf", &["sha512", "pbkdf2"])?;
    let format = match o.choice("format", &["hex", "binary"])? {
        Some("binary") => KeyFormat::Binary,
        _ => KeyFormat::Hex,
    };
    let remove = o.flag("remove");
    Ok((
        KeySpec {
            input,
            format,
            remove,
        },
        o,
    ))
}

/// `--key`.
pub fn key(arg: Option<&str>, notes: &mut Vec<Note>, base: Base) -> Result<Option<KeySpec>> {
    let Some(text) = arg else { return Ok(None) };
    let (k, o) = key_spec(&KEY, text, base)?;
    if o.has("mode") || o.has("kdf") {
        notes.push(Note::info(
            "--key: the image is encrypted with AES-256-GCM and the nvram crate's KDF whatever mode=/kdf= say",
        ));
    }
    Ok(Some(k))
}

/// `--migration-key`.
pub fn migration_key(arg: Option<&str>, base: Base) -> Result<Option<MigrationKeySpec>> {
    let Some(text) = arg else { return Ok(None) };
    let (source, o) = key_spec(&MIGRATION_KEY, text, base)?;
    let bits = match o.str("mode") {
        Some("aes-256-cbc") => Some(256),
        Some(_) => Some(128),
        None => None,
    };
    let kdf = match o.str("kdf").or(o.str("pdf")) {
        Some("sha512") => Kdf::Sha512,
        _ => Kdf::Pbkdf2,
    };
    Ok(Some(MigrationKeySpec { source, bits, kdf }))
}

/// `--seccomp action=kill|log|none` (swtpm's default: kill).
pub fn seccomp(arg: Option<&str>) -> Result<SeccompAction> {
    let Some(text) = arg else {
        return Ok(SeccompAction::Kill);
    };
    let o = SubOptions::parse(&SECCOMP, text)?;
    Ok(match o.choice("action", &["none", "log", "kill"])? {
        Some("none") => SeccompAction::None,
        Some("log") => SeccompAction::Log,
        _ => SeccompAction::Kill,
    })
}

/// `--chroot DIR`: an absolute path to a directory.
pub fn chroot(dir: &str) -> Result<PathBuf> {
    let p = absolute("--chroot", dir)?;
    if !p.is_dir() {
        return Err(Error::usage("--chroot", format!("{dir}: not a directory")));
    }
    Ok(p)
}

/// The swtpm options vtpm accepts and ignores, validated where they have a syntax.
pub fn ignored(args: &CommonArgs, notes: &mut Vec<Note>) -> Result<()> {
    if args.profile.is_some() {
        notes.push(Note::info(
            "--profile is accepted and ignored: vtpm has one fixed set of algorithms and commands",
        ));
    }
    if !args.tpm2 {
        notes.push(Note::info(
            "vtpm emulates a TPM 2.0 (there is no TPM 1.2; --tpm2 is implied)",
        ));
    }
    Ok(())
}

const CTRL: Spec = Spec {
    option: "--ctrl",
    keys: &[
        value("type"),
        value("path"),
        value("port"),
        value("bindaddr"),
        value("ifname"),
        value("fd"),
        value("clientfd"),
        value("mode"),
        value("uid"),
        value("gid"),
        flag("terminate"),
        // vtpm extension: also accept mssim platform clients on this port.
        flag("mssim"),
    ],
};

const LOCALITY: Spec = Spec {
    option: "--locality",
    keys: &[flag("reject-locality-4"), flag("allow-set-locality")],
};

/// `--ctrl` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtrlSpec {
    /// Where the control channel is.
    pub endpoint: EndpointSpec,
    /// `terminate`: end when the control connection closes.
    pub terminate: bool,
    /// `mssim` (vtpm extension): mssim platform clients on this port too.
    pub mssim: bool,
    /// Mode and owner of its UNIX socket file, for `type=unixio,path=`.
    pub perm: Option<UnixPerm>,
}

/// `--ctrl type=unixio|tcp,...`.
pub fn ctrl(text: &str, base: Base) -> Result<CtrlSpec> {
    let o = SubOptions::parse(&CTRL, text)?;
    let Some(kind) = o.choice("type", &["unixio", "tcp"])? else {
        return Err(Error::usage(
            "--ctrl",
            "type=unixio or type=tcp is required",
        ));
    };
    let fd = |key: &str| -> Result<EndpointSpec> {
        Ok(EndpointSpec::Fd {
            fd: o.fd(key)?.unwrap_or_default(),
            option: "--ctrl",
        })
    };
    let mut perm = None;
    let endpoint = if kind == "tcp" {
        o.forbid(&["path", "mode", "uid", "gid", "clientfd"], "with type=tcp")?;
        match o.exactly_one(&["port", "fd"])? {
            "port" => EndpointSpec::Tcp(tcp_addr(
                &o,
                port("--ctrl", o.str("port").unwrap_or_default())?,
            )?),
            _ => {
                o.forbid(&["bindaddr", "ifname"], "with fd=")?;
                fd("fd")?
            }
        }
    } else {
        o.forbid(&["port", "bindaddr", "ifname"], "with type=unixio")?;
        match o.exactly_one(&["path", "fd", "clientfd"])? {
            "path" => {
                let path = resolve("--ctrl", o.str("path").unwrap_or_default(), base)?;
                perm = Some(unix_perm(&o, path.clone())?);
                EndpointSpec::Unix(path)
            }
            which => {
                o.forbid(&["mode", "uid", "gid"], "with a descriptor")?;
                fd(which)?
            }
        }
    };
    Ok(CtrlSpec {
        endpoint,
        terminate: o.flag("terminate"),
        mssim: o.flag("mssim"),
        perm,
    })
}

/// `--locality [reject-locality-4][,allow-set-locality]`: (reject-locality-4, allow-set-locality).
pub fn locality(arg: Option<&str>) -> Result<(bool, bool)> {
    let Some(text) = arg else {
        return Ok((false, false));
    };
    let o = SubOptions::parse(&LOCALITY, text)?;
    Ok((o.flag("reject-locality-4"), o.flag("allow-set-locality")))
}

/// A TCP port number for `option`.
pub fn port(option: &'static str, s: &str) -> Result<u16> {
    s.parse::<u16>()
        .map_err(|_| Error::usage(option, format!("{s}: expected a port number 0-65535")))
}

/// `bindaddr=` (IPv4 or IPv6, brackets allowed; default 127.0.0.1) with `ifname=` for link-local IPv6.
pub fn tcp_addr(o: &SubOptions, port: u16) -> Result<SocketAddr> {
    let ip = match o.str("bindaddr") {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(s) => super::ip_addr(o.option(), s)?,
    };
    Ok(match (ip, o.str("ifname")) {
        (IpAddr::V6(v6), Some(ifname)) => {
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, ifindex(o.option(), ifname)?))
        }
        (ip, _) => SocketAddr::new(ip, port),
    })
}

/// The index of network interface `name` (for an IPv6 scope id).
fn ifindex(option: &'static str, name: &str) -> Result<u32> {
    if name.contains('/') || name.is_empty() {
        return Err(Error::usage(
            option,
            format!("ifname={name}: not an interface name"),
        ));
    }
    // if_nametoindex asks the kernel (no /sys needed, as in a container).
    nix::net::if_::if_nametoindex(name)
        .map_err(|_| Error::usage(option, format!("ifname={name}: no such network interface")))
}

/// `mode=`, `uid=`, `gid=` of a UNIX socket path (swtpm's default mode is 0770).
pub fn unix_perm(o: &SubOptions, path: PathBuf) -> Result<UnixPerm> {
    Ok(UnixPerm {
        path,
        mode: o.mode("mode")?.unwrap_or(0o770),
        uid: o.parsed("uid", "a numeric user id")?,
        gid: o.parsed("gid", "a numeric group id")?,
    })
}

/// What every serving mode reads first from the common options.
pub struct Start {
    /// Lines for the log (options taken but not used, key notes).
    pub notes: Vec<Note>,
    /// Where the state is.
    pub state: StateSpec,
    /// The state encryption key.
    pub key: Option<KeySpec>,
}

/// The first part of every serving mode: the options vtpm has no use for
/// noted, the state and its key read; `Err(action)` when `--print-states`
/// answers instead of serving.
pub fn start(c: &CommonArgs) -> Result<std::result::Result<Start, Action>> {
    let mut notes = Vec::new();
    ignored(c, &mut notes)?;
    let state = state(c.tpmstate.as_deref(), base(c))?;
    let key = key(c.key.as_deref(), &mut notes, base(c))?;
    if c.print_states {
        if c.chroot.is_some() {
            // The paths are inside the chroot, which --print-states does not enter.
            return Err(Error::Usage(
                "--print-states cannot be combined with --chroot".into(),
            ));
        }
        return Ok(Err(Action::PrintStates(state, key)));
    }
    Ok(Ok(Start { notes, state, key }))
}

/// What a serving mode decides itself.
pub struct ModeParts {
    /// Start-up and shutdown behaviour.
    pub startup: StartupFlags,
    /// The protocol and its channels.
    pub serve: Serve,
    /// Say where it serves (a defaulted state or channels).
    pub announce: bool,
    /// Go to the background.
    pub daemon: bool,
    /// `--locality reject-locality-4`.
    pub reject_locality_4: bool,
    /// `--migration`.
    pub migration: MigrationSpec,
}

/// The plan of a serving mode: `s` and `parts` with the rest of the common
/// options (log, pid file, user, migration key, syscall filter, chroot),
/// every descriptor checked to be given to one option only.
pub fn finish(c: &CommonArgs, s: Start, parts: ModeParts) -> Result<Action> {
    let plan = Plan {
        state: s.state,
        log: log(c.log.as_deref())?,
        pid: pid(c.pid.as_deref(), base(c))?,
        key: s.key,
        startup: parts.startup,
        daemon: parts.daemon,
        reject_locality_4: parts.reject_locality_4,
        migration: parts.migration,
        serve: parts.serve,
        notes: s.notes,
        announce: parts.announce,
        runas: c.runas.clone(),
        migration_key: migration_key(c.migration_key.as_deref(), base(c))?,
        seccomp: seccomp(c.seccomp.as_deref())?,
        chroot: c.chroot.as_deref().map(chroot).transpose()?,
    };
    super::check_fds(&plan)?;
    Ok(Action::Run(Box::new(plan)))
}
