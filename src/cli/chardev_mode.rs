//! `vtpm chardev`: swtpm's `swtpm chardev` command line. TPM commands come
//! from one character device: `--chardev PATH` (opened read-write), `--fd N`
//! (a descriptor the parent passed: a character device or a connected
//! socket) or `--vtpm-proxy` (a new /dev/tpmN from the Linux vTPM proxy
//! driver, announced on stdout as swtpm does). As swtpm, `--vtpm-proxy`
//! powers the TPM on and sends TPM2_Startup(SU_CLEAR) unless a `startup-*`
//! flag says otherwise, and honours the driver's locality command; otherwise
//! the TPM waits for CMD_INIT on `--ctrl` unless `--flags not-need-init`.

use clap::{ColorChoice, Parser};

use super::common::{self, CommonArgs, ModeParts};
use super::{Action, ChardevPlan, DeviceSpec, Note, Serve};
use crate::error::{Error, Result};

/// `vtpm chardev` options (swtpm's names; see swtpm(8)).
#[derive(Parser, Debug)]
#[command(
    name = "vtpm chardev",
    about = "Serve a TPM 2.0 on a character device, a passed descriptor or a Linux vTPM proxy device",
    args_override_self = true,
    infer_long_args = true,
    color = ColorChoice::Never,
    disable_version_flag = true
)]
struct ChardevArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Read TPM commands from this character device (opened read-write).
    #[arg(short = 'c', long, value_name = "DEVICE")]
    chardev: Option<String>,
    /// Read TPM commands from this inherited descriptor (a character device or a connected socket).
    #[arg(short = 'f', long, value_name = "FD")]
    fd: Option<String>,
    /// Create a TPM device (/dev/tpmN, /dev/tpmrmN) with the Linux vTPM proxy driver (/dev/vtpmx) and serve it.
    #[arg(long)]
    vtpm_proxy: bool,
    /// Control channel: type=tcp,port=N[,bindaddr=A] | type=tcp,fd=N | type=unixio,path=P[,mode=..][,uid=..][,gid=..] | type=unixio,fd=N | type=unixio,clientfd=N; add ,terminate to end when it closes
    #[arg(long, value_name = "SPEC")]
    ctrl: Option<String>,
    /// reject-locality-4,allow-set-locality (allow-set-locality is implied by --vtpm-proxy)
    #[arg(long, value_name = "SPEC")]
    locality: Option<String>,
    /// [incoming][,release-lock-outgoing]: take the state lock only when the state arrives or is first used; release it once the savestate blob was read out
    #[arg(long, value_name = "SPEC")]
    migration: Option<String>,
}

impl super::ModeArgs for ChardevArgs {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Parse the arguments after `chardev`.
pub fn parse(args: &[String]) -> Result<Action> {
    let a = match super::parse_mode::<ChardevArgs>("chardev", args)? {
        Ok(a) => a,
        Err(done) => return Ok(done),
    };
    let mut s = match common::start(&a.common)? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let device = device(&a)?;
    let proxy = device == DeviceSpec::VtpmProxy;
    let startup = if proxy {
        common::proxy_flags(a.common.flags.as_deref(), &mut s.notes)?
    } else {
        common::flags(a.common.flags.as_deref(), &mut s.notes)?
    };
    let (reject_locality_4, allow_set_locality) = common::locality(a.locality.as_deref())?;
    let mut plan = ChardevPlan {
        device,
        ctrl: None,
        allow_set_locality: allow_set_locality || proxy,
        terminate_on_ctrl_close: false,
        unix_perms: Vec::new(),
    };
    if let Some(text) = &a.ctrl {
        let c = common::ctrl(text, common::base(&a.common))?;
        if c.mssim {
            return Err(Error::usage(
                "--ctrl",
                "'mssim' needs the data port of `vtpm socket`; chardev mode has none",
            ));
        }
        plan.terminate_on_ctrl_close = c.terminate;
        plan.unix_perms.extend(c.perm);
        plan.ctrl = Some(c.endpoint);
    }
    if plan.ctrl.is_none() && !startup.power_on {
        s.notes.push(Note::warn(
            "no control channel and no --flags not-need-init: nothing can initialise the TPM, every command will fail",
        ));
    }
    let migration = common::migration(a.migration.as_deref(), &startup, &mut s.notes)?;
    let parts = ModeParts {
        startup,
        serve: Serve::Chardev(plan),
        announce: s.state.defaulted,
        daemon: a.common.daemon,
        reject_locality_4,
        migration,
    };
    common::finish(&a.common, s, parts)
}

/// Which of --chardev, --fd and --vtpm-proxy (exactly one).
fn device(a: &ChardevArgs) -> Result<DeviceSpec> {
    let given: Vec<&str> = [
        ("--chardev", a.chardev.is_some()),
        ("--fd", a.fd.is_some()),
        ("--vtpm-proxy", a.vtpm_proxy),
    ]
    .into_iter()
    .filter_map(|(n, g)| g.then_some(n))
    .collect();
    if given.len() > 1 {
        return Err(Error::Usage(format!(
            "{} cannot be combined: each gives the device to serve",
            given.join(" and ")
        )));
    }
    if a.vtpm_proxy {
        return Ok(DeviceSpec::VtpmProxy);
    }
    if let Some(f) = &a.fd {
        let fd = f.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            Error::usage("--fd", format!("{f}: expected a file descriptor number"))
        })?;
        return Ok(DeviceSpec::Fd(fd));
    }
    match &a.chardev {
        Some(p) => Ok(DeviceSpec::Path(common::absolute("--chardev", p)?)),
        None => Err(Error::Usage(
            "chardev: one of --chardev DEVICE, --fd N or --vtpm-proxy is required".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EndpointSpec, StartupType};
    use super::*;
    use crate::cli::Plan;

    fn run(args: &[&str]) -> Result<Plan> {
        crate::cli::plan_of(parse, args)
    }

    fn chardev(p: &Plan) -> &ChardevPlan {
        match &p.serve {
            Serve::Chardev(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vtpm_proxy_starts_the_tpm_and_allows_the_locality_command() {
        let p = run(&["--vtpm-proxy", "--tpmstate", "dir=/tmp/x", "--tpm2"]).unwrap();
        assert_eq!(chardev(&p).device, DeviceSpec::VtpmProxy);
        assert!(chardev(&p).allow_set_locality);
        assert!(p.startup.power_on);
        assert_eq!(p.startup.startup, Some(StartupType::Clear));
        // A startup-* flag still chooses, as in swtpm.
        let p = run(&[
            "--vtpm-proxy",
            "--tpmstate=dir=/tmp/x",
            "--flags",
            "startup-state",
        ])
        .unwrap();
        assert_eq!(p.startup.startup, Some(StartupType::State));
        let p = run(&[
            "--vtpm-proxy",
            "--tpmstate=dir=/tmp/x",
            "--flags",
            "startup-none",
        ])
        .unwrap();
        assert_eq!((p.startup.power_on, p.startup.startup), (true, None));
    }

    #[test]
    fn a_device_path_with_a_control_channel_waits_for_init() {
        let p = run(&[
            "--chardev",
            "/dev/vtpm0",
            "--tpmstate",
            "dir=/tmp/x",
            "--ctrl",
            "type=unixio,path=/tmp/c.sock,terminate",
            "--locality",
            "reject-locality-4",
            "--runas",
            "tss",
        ])
        .unwrap();
        let c = chardev(&p);
        assert_eq!(c.device, DeviceSpec::Path("/dev/vtpm0".into()));
        assert_eq!(c.ctrl, Some(EndpointSpec::Unix("/tmp/c.sock".into())));
        assert!(c.terminate_on_ctrl_close && !c.allow_set_locality);
        assert!(p.reject_locality_4);
        assert!(!p.startup.power_on);
        assert_eq!(p.runas.as_deref(), Some("tss"));
    }

    #[test]
    fn every_option_of_swtpm_chardev_is_accepted() {
        let p = run(&[
            "-c",
            "/dev/vtpm0",
            "-d",
            "--ctrl",
            "type=tcp,port=4001,bindaddr=127.0.0.1",
            "--migration-key",
            "file=/tmp/mk,mode=aes-cbc,format=hex,remove=false",
            "--log",
            "file=/tmp/log,level=5,prefix=x,truncate",
            "--key",
            "pwdfile=/tmp/pw,kdf=pbkdf2",
            "--pid",
            "file=/tmp/pid",
            "--tpmstate",
            "dir=/tmp/x,mode=0600",
            "-r",
            "0",
            "--locality",
            "reject-locality-4,allow-set-locality",
            "--flags",
            "not-need-init,startup-clear,disable-auto-shutdown",
            "--tpm2",
            "--seccomp",
            "action=none",
            "--chroot",
            "/",
            "--migration",
            "incoming",
        ])
        .unwrap();
        assert!(p.daemon && chardev(&p).allow_set_locality && p.reject_locality_4);
        assert!(!p.startup.auto_shutdown);
        // The security options are taken, not just noted.
        assert!(p.migration_key.is_some());
        assert_eq!(p.seccomp, crate::seccomp::SeccompAction::None);
        assert_eq!(p.chroot.as_deref(), Some(std::path::Path::new("/")));
    }

    #[test]
    fn bad_combinations_are_one_line_errors() {
        for bad in [
            &["--tpmstate", "dir=/x"][..],
            &["--vtpm-proxy", "--chardev", "/dev/x"],
            &["--fd", "5", "--chardev", "/dev/x"],
            &["--fd", "x"],
            &["--fd", "1"],
            &["--vtpm-proxy", "--ctrl", "type=tcp,port=1,mssim"],
            &["--vtpm-proxy", "--flags", "startup-clear,startup-state"],
            &["--vtpm-proxy", "--server", "type=tcp,port=1"],
        ] {
            let e = run(bad).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
    }
}
