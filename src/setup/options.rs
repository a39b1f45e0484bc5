//! swtpm_setup's command line, as `vtpm setup` (and vtpm invoked as
//! `swtpm_setup`) accepts it: `--opt value` or `--opt=value`, long options
//! only. The TPM 1.2 options, `--display` and `--create-config-files` are
//! refused with a clear message; the deprecated
//! `--tcsd-system-ps-file` and `--swtpm_ioctl` have no effect, as in
//! swtpm_setup; `--tpm` names the TPM swtpm_setup would start, while
//! `vtpm setup` runs its own engine in-process, so it is accepted and noted.

use std::path::PathBuf;

use super::error::{Result, SetupError};
use crate::keys::{KeyFormat, KeyInput, KeySpec};

/// The parsed options.
#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    /// `--tpm-state` / `--tpmstate`.
    pub tpm_state: Option<String>,
    /// `--tpm` (not started: the engine runs in-process).
    pub tpm: Option<String>,
    /// `--tpm2`.
    pub tpm2: bool,
    /// `--createek`.
    pub create_ek: bool,
    /// `--allow-signing`.
    pub allow_signing: bool,
    /// `--decryption`.
    pub decryption: bool,
    /// `--ecc` (the storage primary key is ECC).
    pub ecc: bool,
    /// `--create-ek-cert`.
    pub create_ek_cert: bool,
    /// `--create-platform-cert`.
    pub create_platform_cert: bool,
    /// `--create-spk`.
    pub create_spk: bool,
    /// `--lock-nvram`.
    pub lock_nvram: bool,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--logfile`.
    pub logfile: Option<PathBuf>,
    /// `--keyfile`.
    pub keyfile: Option<String>,
    /// `--keyfile-fd`.
    pub keyfile_fd: Option<String>,
    /// `--pwdfile`.
    pub pwdfile: Option<String>,
    /// `--pwdfile-fd`.
    pub pwdfile_fd: Option<String>,
    /// `--cipher`.
    pub cipher: Option<String>,
    /// `--overwrite`.
    pub overwrite: bool,
    /// `--not-overwrite`.
    pub not_overwrite: bool,
    /// `--pcr-banks`.
    pub pcr_banks: Option<String>,
    /// `--rsa-keysize`.
    pub rsa_keysize: Option<String>,
    /// `--write-ek-cert-files`.
    pub write_ek_cert_files: Option<PathBuf>,
    /// `--vmid`.
    pub vmid: Option<String>,
    /// `--ecc-curve` (vtpm's own: p384, swtpm_setup's, or p256).
    pub ecc_curve: Option<String>,
    /// `--runas`.
    pub runas: Option<String>,
    /// `--reconfigure` (change the PCR banks of an existing state).
    pub reconfigure: bool,
    /// `--print-capabilities`.
    pub print_capabilities: bool,
    /// `--help`.
    pub help: bool,
    /// `--version`.
    pub version: bool,
}

/// The usage text.
pub const USAGE: &str = "\
Usage: vtpm setup [options]   (also: vtpm invoked as swtpm_setup)

Manufactures a TPM 2.0 state as swtpm_setup does, with vtpm's engine in this
process and certificates from a local CA kept like swtpm-localca's.

  --tpm-state DIR|dir://DIR|file://PATH   the state (alias --tpmstate; mandatory)
  --tpm2                  a TPM 2.0 (required: vtpm has no TPM 1.2)
  --createek              create the RSA and ECC (P-384) EKs, made persistent
  --allow-signing         the EKs sign (non-standard EK; template stored in NV)
  --decryption            the EKs decrypt (the default unless --allow-signing)
  --create-ek-cert        EK certificates in NV (implies --createek)
  --create-platform-cert  a platform certificate in NV (implies --create-ek-cert)
  --create-spk            a storage primary key at 0x81000001 (--ecc: P-384)
  --ecc                   make the storage primary key ECC
  --lock-nvram            write-lock the NV indices written
  --rsa-keysize 2048|3072 the RSA EK's size (default 2048)
  --ecc-curve p384|p256   the ECC EK: P-384 (H-3, 0x81010016, cert 0x01c00016; the
                          default, as swtpm_setup) or P-256 (L-2, 0x81010002, cert 0x01c0000a)
  --pcr-banks LIST        PCR banks to activate (e.g. sha256,sha384; '-' keeps all)
  --overwrite             replace an existing state
  --not-overwrite         keep an existing state and succeed
  --reconfigure           on an existing state, only activate --pcr-banks
  --vmid ID               the certificates' subject (CN=ID)
  --config FILE           swtpm_setup.conf (default $XDG_CONFIG_HOME or /etc)
  --logfile FILE          log here instead of stderr
  --write-ek-cert-files DIR   also write the certificates (DER) into DIR
  --keyfile FILE | --keyfile-fd N | --pwdfile FILE | --pwdfile-fd N [--cipher C]
                          encrypt the state (the same key must be given to vtpm socket)
  --runas USER            run as USER (from root)
  --tpm PROG              accepted; vtpm setup runs its own engine
  --print-capabilities | --version | --help
";

fn refused(opt: &str) -> SetupError {
    SetupError::Usage(match opt {
        "--take-ownership" | "--ownerpass" | "--owner-well-known" | "--srkpass"
        | "--srk-well-known" => format!("{opt} is a TPM 1.2 option; vtpm is a TPM 2.0"),
        _ => format!("{opt} is not supported by vtpm setup"),
    })
}

/// Parse the arguments after `setup` (or after `swtpm_setup`).
pub fn parse(args: &[String]) -> Result<SetupOptions> {
    let mut o = SetupOptions::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |o: &str| -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| SetupError::Usage(format!("{o} needs a value"))),
            }
        };
        let flag = |o: &str| -> Result<bool> {
            if inline.is_some() {
                return Err(SetupError::Usage(format!("{o} takes no value")));
            }
            Ok(true)
        };
        match name {
            "--tpm-state" | "--tpmstate" => o.tpm_state = Some(value(name)?),
            "--tpm" => o.tpm = Some(value(name)?),
            "--swtpm_ioctl" | "--tcsd-system-ps-file" => {
                value(name)?;
            }
            "--tpm2" => o.tpm2 = flag(name)?,
            "--createek" => o.create_ek = flag(name)?,
            "--allow-signing" => o.allow_signing = flag(name)?,
            "--decryption" => o.decryption = flag(name)?,
            "--ecc" => o.ecc = flag(name)?,
            "--create-ek-cert" => o.create_ek_cert = flag(name)?,
            "--create-platform-cert" => o.create_platform_cert = flag(name)?,
            "--create-spk" => o.create_spk = flag(name)?,
            "--lock-nvram" => o.lock_nvram = flag(name)?,
            "--config" => o.config = Some(PathBuf::from(value(name)?)),
            "--logfile" => o.logfile = Some(PathBuf::from(value(name)?)),
            "--keyfile" => o.keyfile = Some(value(name)?),
            "--keyfile-fd" => o.keyfile_fd = Some(value(name)?),
            "--pwdfile" => o.pwdfile = Some(value(name)?),
            "--pwdfile-fd" => o.pwdfile_fd = Some(value(name)?),
            "--cipher" => o.cipher = Some(value(name)?),
            "--overwrite" => o.overwrite = flag(name)?,
            "--not-overwrite" => o.not_overwrite = flag(name)?,
            "--pcr-banks" => o.pcr_banks = Some(value(name)?),
            "--rsa-keysize" => o.rsa_keysize = Some(value(name)?),
            "--write-ek-cert-files" => o.write_ek_cert_files = Some(PathBuf::from(value(name)?)),
            "--vmid" => o.vmid = Some(value(name)?),
            "--ecc-curve" => o.ecc_curve = Some(value(name)?),
            "--runas" => o.runas = Some(value(name)?),
            "--print-capabilities" => o.print_capabilities = flag(name)?,
            "--help" | "-h" => o.help = true,
            "--version" | "-v" => o.version = true,
            "--reconfigure" => o.reconfigure = flag(name)?,
            "--take-ownership" | "--owner-well-known" | "--srk-well-known" | "--display" => {
                return Err(refused(name))
            }
            "--ownerpass" | "--srkpass" | "--create-config-files" => return Err(refused(name)),
            other => {
                return Err(SetupError::Usage(format!(
                    "unknown option {other} (see vtpm setup --help)"
                )))
            }
        }
    }
    if o.create_platform_cert {
        o.create_ek_cert = true;
    }
    if o.create_ek_cert {
        o.create_ek = true;
    }
    Ok(o)
}

impl SetupOptions {
    /// The checks that need nothing but the command line.
    pub fn validate(&self) -> Result<()> {
        if !self.tpm2 {
            return Err(SetupError::Usage(
                "vtpm emulates a TPM 2.0 only: pass --tpm2".into(),
            ));
        }
        if self.tpm_state.is_none() {
            return Err(SetupError::Usage("--tpm-state is required".into()));
        }
        if self.overwrite && self.not_overwrite {
            return Err(SetupError::Usage(
                "--overwrite and --not-overwrite exclude each other".into(),
            ));
        }
        if self.reconfigure
            && (self.create_ek || self.create_spk || self.overwrite || self.not_overwrite)
        {
            return Err(SetupError::Usage(
                "--reconfigure changes the PCR banks of an existing state only: no keys, certificates or overwrite options with it".into(),
            ));
        }
        self.rsa_bits()?;
        self.ecc_p256()?;
        self.key_spec()?;
        Ok(())
    }

    /// The RSA EK's size.
    pub fn rsa_bits(&self) -> Result<u16> {
        match self.rsa_keysize.as_deref() {
            None | Some("2048") => Ok(2048),
            Some("3072") => Ok(3072),
            Some("max") => Ok(3072),
            Some(other) => Err(SetupError::Usage(format!(
                "--rsa-keysize {other}: vtpm makes RSA EKs of 2048 or 3072 bits"
            ))),
        }
    }

    /// Whether the ECC EK is P-256 (`--ecc-curve p256`) rather than P-384.
    pub fn ecc_p256(&self) -> Result<bool> {
        match self.ecc_curve.as_deref() {
            None | Some("p384") | Some("secp384r1") => Ok(false),
            Some("p256") | Some("secp256r1") => Ok(true),
            Some(other) => Err(SetupError::Usage(format!(
                "--ecc-curve {other}: expected p384 or p256"
            ))),
        }
    }

    /// The state key `--keyfile`, `--keyfile-fd`, `--pwdfile` or
    /// `--pwdfile-fd` gives (a key file in hex, as swtpm_setup passes it on),
    /// built directly: a path is a path, whatever commas it holds.
    /// (`--cipher` only names swtpm's mode; the image is AES-256-GCM.)
    pub fn key_spec(&self) -> Result<Option<KeySpec>> {
        let path = |option: &'static str, p: &str| {
            crate::cli::common::resolve(option, p, crate::cli::common::Base::Cwd)
        };
        let fd = |option: &str, n: &str| {
            n.parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| SetupError::Usage(format!("{option} {n}: not a file descriptor")))
        };
        let mut given = Vec::new();
        if let Some(f) = &self.keyfile {
            given.push(KeyInput::File(path("--keyfile", f)?));
        }
        if let Some(n) = &self.keyfile_fd {
            given.push(KeyInput::Fd(fd("--keyfile-fd", n)?));
        }
        if let Some(f) = &self.pwdfile {
            given.push(KeyInput::PwdFile(path("--pwdfile", f)?));
        }
        if let Some(n) = &self.pwdfile_fd {
            given.push(KeyInput::PwdFd(fd("--pwdfile-fd", n)?));
        }
        match given.len() {
            0 => Ok(None),
            1 => Ok(given.pop().map(|input| KeySpec {
                input,
                format: KeyFormat::Hex,
                remove: false,
            })),
            _ => Err(SetupError::Usage(
                "give only one of --keyfile, --keyfile-fd, --pwdfile, --pwdfile-fd".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<SetupOptions> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn libvirts_command_line_parses() {
        let o = p(&[
            "--tpm2",
            "--tpm-state",
            "/s",
            "--vmid",
            "vm:1",
            "--logfile=/l",
            "--createek",
            "--create-platform-cert",
            "--lock-nvram",
            "--not-overwrite",
        ])
        .unwrap();
        assert!(o.tpm2 && o.create_ek && o.create_ek_cert && o.lock_nvram && o.not_overwrite);
        assert_eq!(o.tpm_state.as_deref(), Some("/s"));
        assert_eq!(o.logfile, Some(PathBuf::from("/l")));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(p(&["--tpm-state"]).is_err());
        assert!(p(&["--tpm2=yes"]).is_err());
        assert!(p(&["--take-ownership"]).is_err());
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--rsa-keysize", "4096"]).unwrap().rsa_bits().is_err());
        assert!(p(&["--keyfile", "a", "--pwdfile", "b"])
            .unwrap()
            .key_spec()
            .is_err());
    }
}
