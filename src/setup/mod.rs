//! `vtpm setup` (and vtpm invoked as `swtpm_setup`): manufacture a TPM 2.0
//! state as swtpm_setup does — endorsement keys, EK and platform
//! certificates from a local CA, locked NV, PCR banks — without external
//! tools: the engine runs in this process on the state `--tpm-state` names
//! ([`tpm`]), the certificates are made with RustCrypto's X.509 builder
//! ([`certs`]) and signed by a CA kept like swtpm-localca's ([`localca`]).
//! Options and configuration files are swtpm_setup's ([`options`],
//! [`config`]); the EK templates and NV indices are the TCG EK Credential
//! Profile's as swtpm_setup uses them ([`templates`]); the steps are in
//! [`provision`].

pub mod certs;
pub mod config;
pub mod error;
pub mod localca;
pub mod options;
pub mod provision;
pub mod templates;
pub mod tpm;

use std::io::Write;
use std::path::PathBuf;

/// swtpm_setup's log: lines to `--logfile` (appended) or to stderr.
pub struct Log {
    file: Option<PathBuf>,
}

impl Log {
    /// Log one line.
    pub fn line(&mut self, text: &str) {
        let written = self.file.as_ref().is_some_and(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| writeln!(f, "{text}"))
                .is_ok()
        });
        if !written {
            eprintln!("{text}");
        }
    }
}

/// What `vtpm setup` does, in swtpm_setup's vocabulary (libvirt reads it).
pub const FEATURES: &[&str] = &[
    // --tpm2 (TPM 1.2 is not offered).
    "tpm-2.0",
    // --keyfile-fd and --pwdfile-fd (the state is encrypted at rest).
    "cmdarg-keyfile-fd",
    "cmdarg-pwdfile-fd",
    // --write-ek-cert-files DIR.
    "cmdarg-write-ek-cert-files",
    // --reconfigure --pcr-banks on an existing state.
    "cmdarg-reconfigure-pcr-banks",
    // --rsa-keysize 2048 and 3072.
    "tpm2-rsa-keysize-2048",
    "tpm2-rsa-keysize-3072",
];

/// The JSON `--print-capabilities` prints.
pub fn capabilities_json() -> String {
    crate::capabilities::document("swtpm_setup", FEATURES)
}

/// Run `vtpm setup ARGS`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let o = match options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vtpm setup: {e}");
            return 1;
        }
    };
    if o.help {
        print!("{}", options::USAGE);
        return 0;
    }
    if o.version {
        println!(
            "vtpm setup {} (TPM 2.0 manufacturing, swtpm_setup-compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return 0;
    }
    if o.print_capabilities {
        println!("{}", capabilities_json());
        return 0;
    }
    if let Err(e) = o.validate() {
        eprintln!("vtpm setup: {e}");
        return 1;
    }
    if let Some(user) = &o.runas {
        if let Err(e) = crate::privileges::resolve(user).and_then(|u| u.apply()) {
            eprintln!("vtpm setup: {e}");
            return 1;
        }
    }
    if let Some(p) = &o.logfile {
        if let Err(e) = provision::check_logfile(p) {
            eprintln!("vtpm setup: {e}");
            return 1;
        }
    }
    let mut log = Log {
        file: o.logfile.clone(),
    };
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| nix::unistd::getuid().to_string());
    log.line(&format!(
        "Starting vTPM manufacturing as {user} with vtpm setup"
    ));
    match provision::run(&o, &mut log) {
        Ok(()) => 0,
        Err(e) => {
            log.line(&format!(
                "An error occurred. Authoring the TPM state failed: {e}"
            ));
            if o.logfile.is_some() {
                eprintln!("vtpm setup: {e}");
            }
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities_are_swtpm_setup_shaped() {
        let (_, listed) = crate::capabilities::parse_checked(
            &super::capabilities_json(),
            "swtpm_setup",
            "tpm2-rsa-keysize-3072",
        );
        assert!(listed);
    }
}
