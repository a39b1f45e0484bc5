//! `vtpm cuse`: swtpm's `swtpm cuse` command line. A character device
//! /dev/NAME is created through the kernel's CUSE driver (/dev/cuse); TPM
//! commands are written to it and read back, the control channel is swtpm's
//! ioctl interface. As swtpm (through libfuse), vtpm goes to the background
//! once the device exists, unless `--foreground`; the TPM waits for
//! PTM_INIT unless `--flags not-need-init` (or a `startup-*` flag).

use clap::{ColorChoice, Parser};

use super::common::{self, CommonArgs, ModeParts};
use super::{Action, CusePlan, Note, Serve};
use crate::error::{Error, Result};

/// `vtpm cuse` options (swtpm's names; see swtpm(8)).
#[derive(Parser, Debug)]
#[command(
    name = "vtpm cuse",
    about = "Serve a TPM 2.0 as a CUSE character device /dev/NAME with swtpm's ioctl control interface",
    args_override_self = true,
    infer_long_args = true,
    color = ColorChoice::Never,
    disable_version_flag = true
)]
struct CuseArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The device name: /dev/NAME (required).
    #[arg(short = 'n', long, value_name = "NAME")]
    name: Option<String>,
    /// Device major number (default: chosen by the kernel).
    #[arg(short = 'M', long, value_name = "MAJ")]
    maj: Option<String>,
    /// Device minor number.
    #[arg(short = 'm', long, value_name = "MIN")]
    min: Option<String>,
    /// reject-locality-4,allow-set-locality
    #[arg(long, value_name = "SPEC")]
    locality: Option<String>,
    /// [incoming][,release-lock-outgoing]: take the state lock only when the state arrives or is first used; release it once the savestate blob was read out
    #[arg(long, value_name = "SPEC")]
    migration: Option<String>,
    /// Stay in the foreground (vtpm extension; swtpm's CUSE mode always detaches).
    #[arg(short = 'f', long)]
    foreground: bool,
    /// swtpm's short form of --version.
    #[arg(short = 'v', hide = true)]
    version_short: bool,
}

impl super::ModeArgs for CuseArgs {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// A device number as swtpm takes it: 0-65535.
fn device_number(option: &'static str, s: &str) -> Result<u32> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n <= 65535)
        .ok_or_else(|| Error::usage(option, format!("{s}: expected a number 0-65535")))
}

/// Parse the arguments after `cuse`.
pub fn parse(args: &[String]) -> Result<Action> {
    let a = match super::parse_mode::<CuseArgs>("cuse", args)? {
        Ok(a) => a,
        Err(done) => return Ok(done),
    };
    if a.version_short {
        return Ok(Action::Print(super::version()));
    }
    if a.common.chroot.is_some() {
        // /dev/cuse is opened when serving starts, after the chroot.
        return Err(Error::usage(
            "--chroot",
            "not supported in cuse mode (/dev/cuse is opened after the root changes)",
        ));
    }
    let mut s = match common::start(&a.common)? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let Some(name) = a.name.clone() else {
        return Err(Error::usage(
            "--name",
            "the device name is required (-n NAME creates /dev/NAME)",
        ));
    };
    if !transport::cuse::valid_name(&name) {
        return Err(Error::usage(
            "--name",
            format!("'{name}' cannot name a device under /dev"),
        ));
    }
    let major = a
        .maj
        .as_deref()
        .map(|s| device_number("--maj", s))
        .transpose()?;
    let minor = a
        .min
        .as_deref()
        .map(|s| device_number("--min", s))
        .transpose()?;
    let startup = common::flags(a.common.flags.as_deref(), &mut s.notes)?;
    let (reject_locality_4, allow_set_locality) = common::locality(a.locality.as_deref())?;
    if a.common.daemon {
        s.notes
            .push(Note::info("--daemon: the CUSE mode detaches anyway"));
    }
    let migration = common::migration(a.migration.as_deref(), &startup, &mut s.notes)?;
    let parts = ModeParts {
        startup,
        serve: Serve::Cuse(CusePlan {
            name,
            major: major.unwrap_or(0),
            minor: minor.unwrap_or(0),
            allow_set_locality,
        }),
        announce: s.state.defaulted,
        daemon: !a.foreground,
        reject_locality_4,
        migration,
    };
    common::finish(&a.common, s, parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Plan;

    fn run(args: &[&str]) -> Result<Plan> {
        crate::cli::plan_of(parse, args)
    }

    #[test]
    fn swtpm_cuse_command_line() {
        let p = run(&[
            "-n",
            "vtpm0",
            "--maj",
            "10",
            "-m",
            "224",
            "--tpmstate",
            "dir=/tmp/x",
            "--tpm2",
            "--locality",
            "reject-locality-4",
            "--flags",
            "not-need-init",
            "--seccomp",
            "action=none",
        ])
        .unwrap();
        let Serve::Cuse(c) = &p.serve else { panic!() };
        assert_eq!((c.name.as_str(), c.major, c.minor), ("vtpm0", 10, 224));
        assert!(p.daemon && p.reject_locality_4 && p.startup.power_on);
        assert_eq!(p.seccomp, crate::seccomp::SeccompAction::None);
        // swtpm's -R: refused here, /dev/cuse is opened after a chroot.
        let e = run(&["-n", "x", "-R", "/var/empty"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--chroot"), "{e}");
        assert!(!run(&["-n", "x", "--foreground"]).unwrap().daemon);
    }

    #[test]
    fn errors_are_one_line() {
        for bad in [
            &["--tpmstate", "dir=/x"][..],
            &["-n", "a/b"],
            &["-n", "x", "--maj", "70000"],
            &["-n", "x", "-m", "-1"],
            &["-n", "x", "--locality", "bogus"],
            &["-n", "x", "--server", "type=tcp,port=1"],
        ] {
            let e = run(bad).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
    }
}
