//! `vtpm mssim`: the Microsoft/IBM TPM simulator protocol, TPM commands on
//! port N and platform signals (power, NV, cancel, physical presence) on
//! N+1, as the `mssim:` TCTI of tpm2-tss expects. The TPM starts powered off
//! (the TCTI powers it on) unless `--flags not-need-init` or `startup-*`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{ColorChoice, Parser};

use super::common::{self, port, CommonArgs, ModeParts};
use super::{Action, MssimPlan, Serve};
use crate::error::{Error, Result};

/// `vtpm mssim` options.
#[derive(Parser, Debug)]
#[command(
    name = "vtpm mssim",
    about = "Serve a TPM 2.0 over the Microsoft/IBM simulator protocol (ports N and N+1)",
    args_override_self = true,
    infer_long_args = true,
    color = ColorChoice::Never,
    disable_version_flag = true
)]
struct MssimArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// TPM command port N; the platform port is N+1.
    #[arg(short = 'p', long, value_name = "PORT", default_value = "2321")]
    port: String,
    /// Address to listen on (default 127.0.0.1).
    #[arg(long, value_name = "ADDRESS")]
    bindaddr: Option<String>,
}

impl super::ModeArgs for MssimArgs {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Parse the arguments after `mssim`.
pub fn parse(args: &[String]) -> Result<Action> {
    let a = match super::parse_mode::<MssimArgs>("mssim", args)? {
        Ok(a) => a,
        Err(done) => return Ok(done),
    };
    let mut s = match common::start(&a.common)? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let n = port("--port", &a.port)?;
    if n == 0 || n == u16::MAX {
        return Err(Error::usage(
            "--port",
            format!("{n}: mssim needs two consecutive ports N and N+1 (1-65534)"),
        ));
    }
    let ip = match &a.bindaddr {
        Some(s) => super::ip_addr("--bindaddr", s)?,
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let parts = ModeParts {
        startup: common::flags(a.common.flags.as_deref(), &mut s.notes)?,
        serve: Serve::Mssim(MssimPlan {
            command: SocketAddr::new(ip, n),
            platform: SocketAddr::new(ip, n + 1),
        }),
        announce: s.state.defaulted,
        daemon: a.common.daemon,
        reject_locality_4: false,
        migration: Default::default(),
    };
    common::finish(&a.common, s, parts)
}
