//! One running vtpm: lock the state, open the NVRAM, start the TPM thread,
//! power on (and TPM2_Startup) if asked, bind the transport, write the pid
//! file, then serve until a signal or the protocol ends it, and power off
//! cleanly with the state saved. With `--migration incoming` the state is
//! locked and opened later, by the TPM thread, when it is first needed
//! ([`crate::holder`]).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use tpm_core::TpmConfig;

use crate::cli::{ChardevPlan, DeviceSpec, EndpointSpec, NoteLevel, Plan, Serve, StartupType};
use crate::daemon;
use crate::device::{DeviceOptions, TpmDevice};
use crate::error::{Error, Result};
use crate::holder::StateHolder;
use crate::logging::LogTarget;
use crate::pidfile::PidFile;
use crate::signals::{self, TermSignals};

/// Serve the TPM as `plan` says; returns when vtpm should exit (Ok: status 0).
pub fn run(plan: Plan) -> Result<()> {
    crate::logging::init(&plan.log, plan.state.mode)?;
    for note in &plan.notes {
        match note.level {
            NoteLevel::Info => log::info!("{}", note.text),
            NoteLevel::Warn => log::warn!("{}", note.text),
        }
    }
    if let Serve::Cuse(c) = &plan.serve {
        // Said before anything else happens (the state is not touched).
        transport::cuse::preflight(&c.name).map_err(|e| Error::Transport(e.to_string()))?;
    }
    let notifier = if plan.daemon {
        Some(daemon::daemonize()?)
    } else {
        None
    };
    let logs_elsewhere = matches!(plan.log.target, LogTarget::File { .. } | LogTarget::Fd(_));
    match start(&plan) {
        Ok(running) => {
            // The syscall filter is compiled before the parent hears
            // "ready" (an architecture it cannot be built for is a failed
            // start), and installed last: every thread runs, the daemon has
            // detached, and only serving is left.
            let network = matches!(plan.state.location, crate::state_dir::StateLocation::Nbd(_));
            let filter = match crate::seccomp::program(plan.seccomp, network) {
                Ok(f) => f,
                Err(e) => {
                    log::error!("{e}");
                    running.stop();
                    if let Some(n) = notifier {
                        n.failed(&e);
                        std::process::exit(1);
                    }
                    return Err(e);
                }
            };
            if let Some(n) = notifier {
                n.ready();
            }
            if let Err(e) = crate::seccomp::install(filter, plan.seccomp, network) {
                log::error!("{e}");
                running.stop();
                return Err(e);
            }
            let r = running.serve();
            if let Err(e) = &r {
                log::error!("{e}");
            }
            r
        }
        Err(e) => {
            if logs_elsewhere {
                log::error!("{e}");
            }
            if let Some(n) = notifier {
                // The waiting parent prints the message on the terminal.
                n.failed(&e);
                std::process::exit(1);
            }
            Err(e)
        }
    }
}

struct Running {
    server: transport::Server,
    device: TpmDevice,
    pid: Option<PidFile>,
    signals: TermSignals,
}

fn start(plan: &Plan) -> Result<Running> {
    // Installed first, so a SIGTERM during start-up is handled once serving.
    let signals = TermSignals::install()?;
    // A missing vTPM proxy driver is the start's error before the state is touched.
    let vtpmx = match &plan.serve {
        Serve::Chardev(ChardevPlan {
            device: DeviceSpec::VtpmProxy,
            ..
        }) => Some(
            transport::vtpm_proxy::Vtpmx::open(std::path::Path::new(transport::vtpm_proxy::VTPMX))
                .map_err(transport_error)?,
        ),
        _ => None,
    };
    let runas = plan
        .runas
        .as_deref()
        .map(crate::privileges::resolve)
        .transpose()?;
    // Everything from here on (state, keys, pid file, UNIX sockets) is
    // inside the new root, as with swtpm; the log is already open.
    if let Some(dir) = &plan.chroot {
        crate::privileges::enter_chroot(dir)?;
    }
    let migration_key = plan.migration_key.as_ref().map(|k| k.load()).transpose()?;
    let mut holder = StateHolder::new(
        plan.state.clone(),
        plan.key.as_ref(),
        plan.migration.incoming,
    )?;
    if plan.migration.incoming {
        log::info!(
            "--migration incoming: the TPM state {} is locked when it is first needed (CMD_SET_STATEBLOB, CMD_INIT or CMD_LOCK_STORAGE), waiting up to 3 s for the outgoing instance to release it",
            plan.state.display().display()
        );
    } else {
        // At once, on this thread: a held lock or a bad image is the start's error.
        holder.acquire(Some(std::time::Duration::ZERO))?;
    }
    let device = TpmDevice::start(
        holder,
        DeviceOptions {
            auto_shutdown: plan.startup.auto_shutdown,
            encrypted: plan.key.is_some(),
            migration_key,
            migration: plan.migration,
            config: TpmConfig {
                reject_locality_4: plan.reject_locality_4,
            },
        },
    )?;
    match serve_device(plan, &device, vtpmx) {
        Ok(server) => {
            let pid = plan
                .pid
                .as_ref()
                .map(|p| PidFile::write(p, plan.state.mode))
                .transpose();
            // Privileges go once sockets, state and pid file are open.
            let dropped = match (&pid, &runas) {
                (Ok(_), Some(user)) => user.apply(),
                _ => Ok(()),
            };
            let pid = match pid.and_then(|p| dropped.map(|()| p)) {
                Ok(p) => p,
                Err(e) => {
                    server.shutdown();
                    let _ = device.shutdown();
                    return Err(e);
                }
            };
            Ok(Running {
                server,
                device,
                pid,
                signals,
            })
        }
        Err(e) => {
            let _ = device.shutdown();
            Err(e)
        }
    }
}

/// Power on as `--flags` says, then bind the transport (`vtpmx`: the vTPM
/// proxy driver, opened, for `chardev --vtpm-proxy`).
fn serve_device(
    plan: &Plan,
    device: &TpmDevice,
    vtpmx: Option<transport::vtpm_proxy::Vtpmx>,
) -> Result<transport::Server> {
    if plan.startup.power_on {
        device
            .init(false)
            .map_err(|e| Error::Engine(format!("cannot power on: {}", e.msg)))?;
        if let Some(st) = plan.startup.startup {
            let su = match st {
                StartupType::Clear => 0,
                StartupType::State => 1,
            };
            // As swtpm: a failing startup is reported, the TPM is served anyway.
            match device.startup(su) {
                0 => log::info!("TPM2_Startup({st:?}) sent"),
                rc => {
                    log::error!("TPM2_Startup({st:?}) at start failed with response code {rc:#x}")
                }
            }
        }
    }
    let tpm = device.handle();
    let server = match &plan.serve {
        Serve::Swtpm(s) => {
            let opts = transport::DataOptions {
                terminate_on_data_close: s.terminate_on_data_close,
                disconnect: s.disconnect,
            };
            let cfg = transport::SwtpmConfig {
                data: s.data.as_ref().map(endpoint).transpose()?,
                ctrl: s.ctrl.as_ref().map(endpoint).transpose()?,
                allow_set_locality: s.allow_set_locality,
                reject_locality_4: plan.reject_locality_4,
                terminate_on_ctrl_close: s.terminate_on_ctrl_close,
                buffer_size: transport::swtpm::DEFAULT_BUFFER_SIZE,
                ctrl_accepts_mssim: s.ctrl_accepts_mssim,
            };
            transport::serve_swtpm_with(cfg, opts, tpm).map_err(transport_error)?
        }
        Serve::Chardev(c) => {
            let device = match (&c.device, vtpmx) {
                (DeviceSpec::VtpmProxy, Some(x)) => {
                    let dev = x.new_device().map_err(transport_error)?;
                    // As swtpm: the device's name on stdout, for whoever started us.
                    println!("{}", dev.announcement());
                    log::info!("{}", dev.announcement());
                    transport::CharDevice::VtpmProxy(dev.fd)
                }
                (DeviceSpec::VtpmProxy, None) => {
                    return Err(Error::Transport("the vTPM proxy driver is not open".into()))
                }
                (DeviceSpec::Fd(n), _) => transport::CharDevice::Fd(crate::fds::take("--fd", *n)?),
                (DeviceSpec::Path(p), _) => transport::CharDevice::Path(p.clone()),
            };
            let cfg = transport::ChardevConfig {
                ctrl: c.ctrl.as_ref().map(endpoint).transpose()?,
                allow_set_locality: c.allow_set_locality,
                reject_locality_4: plan.reject_locality_4,
                terminate_on_ctrl_close: c.terminate_on_ctrl_close,
                ..transport::ChardevConfig::new(device)
            };
            transport::serve_chardev(cfg, tpm).map_err(transport_error)?
        }
        Serve::Mssim(m) => {
            let cfg = transport::MssimConfig {
                command: transport::Endpoint::Tcp(m.command),
                platform: transport::Endpoint::Tcp(m.platform),
            };
            transport::serve_mssim(cfg, tpm).map_err(transport_error)?
        }
        Serve::Cuse(c) => {
            let cfg = transport::CuseConfig {
                name: c.name.clone(),
                major: c.major,
                minor: c.minor,
                allow_set_locality: c.allow_set_locality,
                reject_locality_4: plan.reject_locality_4,
                buffer_size: transport::swtpm::DEFAULT_BUFFER_SIZE,
            };
            transport::serve_cuse(cfg, tpm).map_err(|e| Error::Transport(e.to_string()))?
        }
    };
    for p in plan.serve.unix_perms() {
        let set = std::fs::set_permissions(&p.path, std::fs::Permissions::from_mode(p.mode))
            .and_then(|()| match (p.uid, p.gid) {
                (None, None) => Ok(()),
                (u, g) => std::os::unix::fs::chown(&p.path, u, g),
            });
        if let Err(e) = set {
            server.shutdown();
            return Err(Error::io("cannot set mode/owner of socket", &p.path, e));
        }
    }
    announce(plan, &server.local_addrs());
    Ok(server)
}

fn transport_error(e: transport::Error) -> Error {
    Error::Transport(e.to_string())
}

fn endpoint(e: &EndpointSpec) -> Result<transport::Endpoint> {
    Ok(match e {
        EndpointSpec::Tcp(a) => transport::Endpoint::Tcp(*a),
        EndpointSpec::Unix(p) => transport::Endpoint::Unix(p.clone()),
        EndpointSpec::Fd { fd, option } => transport::Endpoint::Fd(crate::fds::take(option, *fd)?),
    })
}

/// Say where the TPM is served and where its state is: in the log, and on
/// stderr when defaults were used (the user did not say where).
fn announce(plan: &Plan, addrs: &[SocketAddr]) {
    let describe = |e: &Option<EndpointSpec>| match e {
        None => "none".to_string(),
        Some(EndpointSpec::Tcp(a)) if a.port() != 0 => a.to_string(),
        Some(EndpointSpec::Tcp(a)) => format!("{} (port chosen by the system)", a.ip()),
        Some(EndpointSpec::Unix(p)) => p.display().to_string(),
        Some(EndpointSpec::Fd { fd, .. }) => format!("descriptor {fd}"),
    };
    let channels = match &plan.serve {
        Serve::Swtpm(s) => format!(
            "swtpm protocol, data {}, control {}",
            describe(&s.data),
            describe(&s.ctrl)
        ),
        Serve::Chardev(c) => format!(
            "swtpm chardev mode, device {}, control {}",
            match &c.device {
                DeviceSpec::VtpmProxy => "from the vTPM proxy".to_string(),
                DeviceSpec::Fd(fd) => format!("descriptor {fd}"),
                DeviceSpec::Path(p) => p.display().to_string(),
            },
            describe(&c.ctrl)
        ),
        Serve::Mssim(m) => format!(
            "mssim protocol, commands {}, platform {}",
            m.command, m.platform
        ),
        Serve::Cuse(c) => format!("CUSE device /dev/{}, control by ioctl", c.name),
    };
    let listening: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let msg = format!(
        "serving a TPM 2.0 ({channels}; listening on {}); state in {}",
        if listening.is_empty() {
            "no TCP port".to_string()
        } else {
            listening.join(", ")
        },
        plan.state.image().display()
    );
    log::info!("{msg}");
    let already_on_stderr =
        plan.log.target == LogTarget::Stderr && log::max_level() >= log::LevelFilter::Info;
    if plan.announce && !already_on_stderr {
        eprintln!("vtpm: {msg}");
    }
}

impl Running {
    /// End without serving (start-up failed after everything was opened).
    fn stop(self) {
        self.server.shutdown();
        let _ = self.device.shutdown();
        if let Some(p) = self.pid {
            p.remove();
        }
    }

    fn serve(self) -> Result<()> {
        let Running {
            server,
            device,
            pid,
            mut signals,
        } = self;
        let close = signals.handle();
        let server_ref = &server;
        let reason = std::thread::scope(|s| {
            s.spawn(move || {
                if let Some(sig) = signals.wait() {
                    log::info!("{} received, shutting down", signals::name(sig));
                    server_ref.shutdown();
                }
            });
            let reason = server.wait();
            close.close();
            reason
        });
        log::info!("server ended ({reason:?}); powering off");
        // No new commands may arrive while the TPM powers off.
        server.shutdown();
        let r = device
            .shutdown()
            .map_err(|e| Error::Engine(format!("power off failed: {}", e.msg)));
        drop(server);
        if let Some(p) = pid {
            p.remove();
        }
        // The TPM thread has ended: its state holder closed the NVRAM and
        // released the lock (and logged it).
        r
    }
}
