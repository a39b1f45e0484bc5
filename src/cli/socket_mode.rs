//! `vtpm socket`: swtpm's `swtpm socket` command line.
//!
//! With no channel option at all (`--server`, `--ctrl`, `--port`, `--fd`,
//! `TPM_PORT`), vtpm serves data on 127.0.0.1:2321 and control on
//! 127.0.0.1:2322, and unless `--flags` is given the TPM is powered on at
//! start, so `tpm2_startup -c` works right away. Any channel option switches
//! to swtpm's exact behaviour: only the channels asked for, and the TPM waits
//! for CMD_INIT unless `--flags not-need-init` (or a `startup-*` flag).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{ColorChoice, Parser};

use super::common::{self, port, tcp_addr, unix_perm, CommonArgs, ModeParts};
use super::options::{flag, value, Spec, SubOptions};
use super::{Action, EndpointSpec, Note, Serve, StartupType, SwtpmPlan};
use crate::error::{Error, Result};

/// Default data port when no channel is given (the mssim/swtpm convention).
pub const DEFAULT_DATA_PORT: u16 = 2321;
/// Default control port when no channel is given.
pub const DEFAULT_CTRL_PORT: u16 = 2322;

/// `vtpm socket` options (swtpm's names; see swtpm(8)).
#[derive(Parser, Debug)]
#[command(
    name = "vtpm socket",
    about = "Serve a TPM 2.0 over swtpm's data and control channels",
    args_override_self = true,
    infer_long_args = true,
    color = ColorChoice::Never,
    disable_version_flag = true
)]
struct SocketArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Data channel: type=tcp,port=N[,bindaddr=A][,ifname=I][,disconnect] | type=tcp,fd=N | type=unixio,path=P[,mode=0770][,uid=U][,gid=G] | type=unixio,fd=N
    #[arg(long, value_name = "SPEC")]
    server: Option<String>,
    /// Control channel: type=tcp,port=N[,bindaddr=A] | type=tcp,fd=N | type=unixio,path=P[,mode=..][,uid=..][,gid=..] | type=unixio,fd=N | type=unixio,clientfd=N; add ,terminate to end when it closes
    #[arg(long, value_name = "SPEC")]
    ctrl: Option<String>,
    /// Data channel on this TCP port of 127.0.0.1 (like --server type=tcp,port=N).
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<String>,
    /// Data channel on this inherited socket descriptor (implies --terminate).
    #[arg(short = 'f', long, value_name = "FD")]
    fd: Option<String>,
    /// End when the data connection closes.
    #[arg(short = 't', long)]
    terminate: bool,
    /// reject-locality-4,allow-set-locality
    #[arg(long, value_name = "SPEC")]
    locality: Option<String>,
    /// [incoming][,release-lock-outgoing]: take the state lock only when the state arrives or is first used; release it once the savestate blob was read out
    #[arg(long, value_name = "SPEC")]
    migration: Option<String>,
    /// `vtpm chardev` (swtpm chardev mode).
    #[arg(long, hide = true)]
    vtpm_proxy: bool,
    /// `vtpm chardev` (swtpm chardev mode).
    #[arg(short = 'c', long, hide = true, value_name = "DEVICE")]
    chardev: Option<String>,
}

impl super::ModeArgs for SocketArgs {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

const SERVER: Spec = Spec {
    option: "--server",
    keys: &[
        value("type"),
        value("port"),
        value("bindaddr"),
        value("ifname"),
        value("fd"),
        flag("disconnect"),
        value("path"),
        value("mode"),
        value("uid"),
        value("gid"),
    ],
};

/// Parse the arguments after `socket`.
pub fn parse(args: &[String]) -> Result<Action> {
    let a = match super::parse_mode::<SocketArgs>("socket", args)? {
        Ok(a) => a,
        Err(done) => return Ok(done),
    };
    if a.vtpm_proxy || a.chardev.is_some() {
        return Err(Error::Usage(
            "--vtpm-proxy and --chardev belong to swtpm's chardev mode: use `vtpm chardev`".into(),
        ));
    }
    let mut s = match common::start(&a.common)? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let mut startup = common::flags(a.common.flags.as_deref(), &mut s.notes)?;

    let (reject_locality_4, allow_set_locality) = common::locality(a.locality.as_deref())?;

    let env_port = std::env::var("TPM_PORT").ok().filter(|s| !s.is_empty());
    let bare = a.server.is_none()
        && a.ctrl.is_none()
        && a.port.is_none()
        && a.fd.is_none()
        && env_port.is_none();
    let given: Vec<&str> = [
        ("--server", a.server.is_some()),
        ("--port", a.port.is_some()),
        ("--fd", a.fd.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, g)| g.then_some(n))
    .collect();
    if given.len() > 1 {
        return Err(Error::Usage(format!(
            "{} cannot be combined: each gives the data channel",
            given.join(" and ")
        )));
    }

    let mut plan = SwtpmPlan {
        data: None,
        ctrl: None,
        allow_set_locality,
        terminate_on_ctrl_close: false,
        terminate_on_data_close: a.terminate,
        disconnect: false,
        ctrl_accepts_mssim: false,
        unix_perms: Vec::new(),
    };
    if bare {
        // Both tpm2-tss TCTIs default to port 2321 (+1): serve both.
        plan.ctrl_accepts_mssim = true;
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        plan.data = Some(EndpointSpec::Tcp(SocketAddr::new(lo, DEFAULT_DATA_PORT)));
        plan.ctrl = Some(EndpointSpec::Tcp(SocketAddr::new(lo, DEFAULT_CTRL_PORT)));
        if a.common.flags.is_none() {
            // A useful default: a TPM ready for commands, as with
            // `--flags not-need-init,startup-clear`.
            startup.power_on = true;
            startup.startup = Some(StartupType::Clear);
        }
    } else {
        plan.data = if let Some(text) = &a.server {
            Some(server(text, &env_port, &mut plan, common::base(&a.common))?)
        } else if let Some(p) = &a.port {
            Some(EndpointSpec::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port("--port", p)?,
            )))
        } else if let Some(f) = &a.fd {
            let fd = f.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Error::usage("--fd", format!("{f}: expected a file descriptor number"))
            })?;
            // swtpm(8): "For the socket interface, this option automatically assumes -t."
            plan.terminate_on_data_close = true;
            Some(EndpointSpec::Fd { fd, option: "--fd" })
        } else if let Some(p) = &env_port {
            Some(EndpointSpec::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port("TPM_PORT", p)?,
            )))
        } else {
            None
        };
        if let Some(text) = &a.ctrl {
            let c = common::ctrl(text, common::base(&a.common))?;
            plan.terminate_on_ctrl_close = c.terminate;
            plan.ctrl_accepts_mssim = c.mssim;
            plan.unix_perms.extend(c.perm);
            plan.ctrl = Some(c.endpoint);
        }
        if plan.ctrl.is_none() && !startup.power_on {
            s.notes.push(Note::warn(
                "no control channel and no --flags not-need-init: nothing can initialise the TPM, every command will fail",
            ));
        }
    }
    if reject_locality_4 && !allow_set_locality {
        s.notes.push(Note::info(
            "--locality reject-locality-4 applies to every command's locality",
        ));
    }
    let migration = common::migration(a.migration.as_deref(), &startup, &mut s.notes)?;
    let parts = ModeParts {
        startup,
        serve: Serve::Swtpm(plan),
        announce: bare || s.state.defaulted,
        daemon: a.common.daemon,
        reject_locality_4,
        migration,
    };
    common::finish(&a.common, s, parts)
}

fn server(
    text: &str,
    env_port: &Option<String>,
    plan: &mut SwtpmPlan,
    base: common::Base,
) -> Result<EndpointSpec> {
    let o = SubOptions::parse(&SERVER, text)?;
    match o.choice("type", &["tcp", "unixio"])?.unwrap_or("tcp") {
        "tcp" => {
            o.forbid(&["path", "mode", "uid", "gid"], "with type=tcp")?;
            plan.disconnect = o.flag("disconnect");
            match o.at_most_one(&["port", "fd"])? {
                Some("fd") => {
                    o.forbid(&["bindaddr", "ifname"], "with fd=")?;
                    Ok(EndpointSpec::Fd {
                        fd: o.fd("fd")?.unwrap_or_default(),
                        option: "--server",
                    })
                }
                Some(_) => Ok(EndpointSpec::Tcp(tcp_addr(
                    &o,
                    port("--server", o.str("port").unwrap_or_default())?,
                )?)),
                None => match env_port {
                    Some(p) => Ok(EndpointSpec::Tcp(tcp_addr(&o, port("TPM_PORT", p)?)?)),
                    None => Err(Error::usage(
                        "--server",
                        "type=tcp needs port= or fd= (or TPM_PORT in the environment)",
                    )),
                },
            }
        }
        _ => {
            o.forbid(
                &["port", "bindaddr", "ifname", "disconnect"],
                "with type=unixio",
            )?;
            match o.exactly_one(&["path", "fd"])? {
                "path" => {
                    let path =
                        common::resolve("--server", o.str("path").unwrap_or_default(), base)?;
                    plan.unix_perms.push(unix_perm(&o, path.clone())?);
                    Ok(EndpointSpec::Unix(path))
                }
                _ => {
                    o.forbid(&["mode", "uid", "gid"], "with fd=")?;
                    Ok(EndpointSpec::Fd {
                        fd: o.fd("fd")?.unwrap_or_default(),
                        option: "--server",
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Plan;

    fn run(args: &[&str]) -> Result<Plan> {
        crate::cli::plan_of(parse, args)
    }

    #[test]
    fn qemu_style_command_line() {
        let p = run(&[
            "--tpmstate",
            "dir=/tmp/x,mode=0600",
            "--ctrl",
            "type=unixio,path=/tmp/s.sock",
            "--tpm2",
        ])
        .unwrap();
        let Serve::Swtpm(s) = &p.serve else { panic!() };
        assert_eq!(s.data, None);
        assert_eq!(s.ctrl, Some(EndpointSpec::Unix("/tmp/s.sock".into())));
        assert_eq!(s.unix_perms[0].mode, 0o770);
        assert!(!p.startup.power_on);
        assert_eq!(p.state.mode, 0o600);
    }

    #[test]
    fn tcp_pair_with_startup() {
        let p = run(&[
            "--tpmstate=dir=/tmp/x",
            "--server",
            "type=tcp,port=4000,bindaddr=::1",
            "--ctrl",
            "type=tcp,port=4001",
            "--flags",
            "not-need-init,startup-clear",
        ])
        .unwrap();
        let Serve::Swtpm(s) = &p.serve else { panic!() };
        assert_eq!(
            s.data,
            Some(EndpointSpec::Tcp("[::1]:4000".parse().unwrap()))
        );
        assert_eq!(
            s.ctrl,
            Some(EndpointSpec::Tcp("127.0.0.1:4001".parse().unwrap()))
        );
        assert_eq!(p.startup.startup, Some(super::super::StartupType::Clear));
    }

    #[test]
    fn ifname_gives_the_scope_of_a_link_local_address() {
        let p = run(&["--server", "type=tcp,port=4000,bindaddr=fe80::1,ifname=lo"]).unwrap();
        let Serve::Swtpm(s) = &p.serve else { panic!() };
        let Some(EndpointSpec::Tcp(std::net::SocketAddr::V6(a))) = s.data else {
            panic!("{:?}", s.data)
        };
        assert_eq!(a.scope_id(), 1, "the loopback interface is index 1");
        for bad in ["ifname=no-such-if0", "ifname=a/b"] {
            let server = format!("type=tcp,port=4000,bindaddr=fe80::1,{bad}");
            let e = run(&["--server", &server]).unwrap_err().to_string();
            assert!(e.contains("ifname="), "{e}");
        }
    }

    #[test]
    fn errors_are_one_line_and_name_the_option() {
        for bad in [
            &["--server", "type=udp,port=1"][..],
            &["--server", "type=tcp,port=70000"],
            &["--ctrl", "path=/x"],
            &["--ctrl", "type=unixio,path=/x,port=3"],
            &["--flags", "startup-clear,startup-state"],
            &["--bogus"],
            &["--tpmstate", "backend-uri=http://x"],
            &[
                "--server",
                "type=tcp,fd=5",
                "--ctrl",
                "type=unixio,clientfd=5",
                "--tpmstate",
                "dir=/x",
            ],
            &["--port", "1", "--server", "type=tcp,port=2"],
        ] {
            let e = run(bad).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
    }
}
