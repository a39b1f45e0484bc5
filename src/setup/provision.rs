//! The manufacturing steps of `vtpm setup`, in swtpm_setup's order: the RSA
//! EK (2048 or 3072) and the ECC P-384 EK made persistent, each with its
//! certificate (and the platform certificate after the RSA one) written to
//! the TCG indices and locked, the storage primary key if asked, then the
//! PCR banks allocated (effective from the next start) and the TPM shut
//! down cleanly.

use std::path::Path;

use tpm_core::constants as c;
use tpm_core::marshal::Marshal;
use tpm_core::types::{PublicArea, Unique};

use super::certs::{self, EkPublic, Issuer, Subject, TpmIdentity};
use super::config::{self, LocalCaConfig, SetupConfig};
use super::error::{Result, SetupError};
use super::localca::LocalCa;
use super::options::SetupOptions;
use super::templates::{self, EkKind, EkUse, CERT_NV_ATTRIBUTES, PLATFORM_CERT_INDEX};
use super::tpm::{Existing, SetupTpm};
use super::Log;
use crate::state_dir::{StateLocation, StateSpec};

/// PCR bank names as swtpm_setup spells them.
const BANKS: &[(&str, u16)] = &[
    ("sha1", c::ALG_SHA1),
    ("sha256", c::ALG_SHA256),
    ("sha384", c::ALG_SHA384),
    ("sha512", c::ALG_SHA512),
];

fn bank_name(alg: u16) -> String {
    BANKS
        .iter()
        .find(|(_, a)| *a == alg)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("{alg:02x}"))
}

/// The TPM's identity as CMD_GET_INFO reports it (what swtpm_setup passes
/// to swtpm-localca for the certificates).
fn tpm_identity() -> TpmIdentity {
    let i = transport::device::TpmInfo::OURS;
    TpmIdentity {
        manufacturer: format!("id:{:08X}", i.manufacturer),
        model: i.model.to_string(),
        version: format!("id:{:08X}", i.version),
        family: i.family.to_string(),
        level: i.level,
        revision: i.revision,
    }
}

/// The EK's public key from its public area.
fn ek_public(p: &PublicArea) -> Result<EkPublic> {
    match &p.unique {
        Unique::Rsa(n) => Ok(EkPublic::Rsa(n.0.clone())),
        Unique::Ecc(pt) => match &p.parms {
            tpm_core::types::Parms::Ecc { curve, .. } => Ok(EkPublic::Ecc {
                curve: *curve,
                x: pt.x.0.clone(),
                y: pt.y.0.clone(),
            }),
            _ => Err(SetupError::Response("TPM2_CreatePrimary")),
        },
        Unique::Digest(_) => Err(SetupError::Response("TPM2_CreatePrimary")),
    }
}

/// What `--tpm-state` names (a directory, `dir://DIR` or `file://IMAGE`),
/// built directly: a path is a path, whatever commas it holds.
fn state_spec(text: &str) -> Result<StateSpec> {
    let resolve =
        |p: &str| crate::cli::common::resolve("--tpm-state", p, crate::cli::common::Base::Cwd);
    let location = match text.strip_prefix("file://") {
        Some(p) => StateLocation::Image(resolve(p)?),
        None => StateLocation::Dir(resolve(text.strip_prefix("dir://").unwrap_or(text))?),
    };
    Ok(StateSpec {
        location,
        mode: 0o640,
        relaxed: false,
        defaulted: false,
    })
}

/// Everything the certificate steps need, made on first use.
struct Certifier<'a> {
    opts: &'a SetupOptions,
    setup: &'a SetupConfig,
    ca: Option<LocalCa>,
    tpm: TpmIdentity,
}

impl Certifier<'_> {
    fn ca(&mut self, log: &mut Log) -> Result<&LocalCa> {
        if self.ca.is_none() {
            let conf = LocalCaConfig::load(self.setup.ca_config.as_deref())?;
            if let Some(tool) = &self.setup.create_certs_tool {
                log.line(&format!(
                    "Certificates are made in-process with the local CA in {} (create_certs_tool {tool} is not run).",
                    conf.statedir.display()
                ));
            }
            let ca = LocalCa::open(&conf, &mut |m| log.line(m))?;
            log.line(&format!(
                "Certificates chain to the root CA {}.",
                ca.root_path.display()
            ));
            self.ca = Some(ca);
        }
        self.ca
            .as_ref()
            .ok_or_else(|| SetupError::Cert("the local CA is not open".into()))
    }

    fn write_file(&self, name: &str, der: &[u8]) -> Result<()> {
        let Some(dir) = &self.opts.write_ek_cert_files else {
            return Ok(());
        };
        let path = dir.join(name);
        std::fs::write(&path, der).map_err(|e| SetupError::io("cannot write", &path, e))
    }
}

fn store(tpm: &SetupTpm, lock: bool, index: u32, data: &[u8]) -> Result<()> {
    tpm.nv_store(index, CERT_NV_ATTRIBUTES, data)?;
    if lock {
        tpm.nv_lock(index)?;
    }
    Ok(())
}

fn make_ek(
    tpm: &SetupTpm,
    kind: EkKind,
    o: &SetupOptions,
    certifier: &mut Certifier<'_>,
    log: &mut Log,
) -> Result<()> {
    let usage = EkUse::new(o.allow_signing, o.decryption);
    let template = kind.template(usage);
    let (handle, public) = tpm.create_primary(c::RH_ENDORSEMENT, &template)?;
    tpm.persist(handle, kind.handle())?;
    tpm.flush(handle)?;
    log.line(&format!(
        "Successfully created {} EK with handle {:#x}.",
        kind.label(),
        kind.handle()
    ));
    if kind.stores_template(usage) {
        let mut bytes = Vec::new();
        template.marshal(&mut bytes);
        store(tpm, o.lock_nvram, kind.template_index(), &bytes)?;
        log.line(&format!(
            "Successfully created NVRAM area {:#x} for {} EK template.",
            kind.template_index(),
            kind.label()
        ));
    }
    if !o.create_ek_cert {
        return Ok(());
    }
    let ek = ek_public(&public)?;
    let subject = Subject {
        vmid: o.vmid.as_deref(),
        ek: &ek,
        sign: usage.sign,
        decrypt: usage.decrypt,
    };
    let identity = certifier.tpm.clone();
    let platform_id = if o.create_platform_cert && matches!(ek, EkPublic::Rsa(_)) {
        Some(config::platform_identity(
            certifier.setup.ca_options.as_deref(),
        )?)
    } else {
        None
    };
    let ca = certifier.ca(log)?;
    let issuer = Issuer {
        cert: &ca.cert,
        key: &ca.key,
    };
    let der = certs::ek_certificate(&subject, &identity, &issuer, ca.next_serial()?)?;
    let platform = match &platform_id {
        Some(id) => Some(certs::platform_certificate(
            &subject,
            id,
            &issuer,
            ca.next_serial()?,
        )?),
        None => None,
    };
    store(tpm, o.lock_nvram, kind.cert_index(), &der)?;
    log.line(&format!(
        "Successfully created NVRAM area {:#x} for {} EK certificate.",
        kind.cert_index(),
        kind.label()
    ));
    certifier.write_file(&format!("ek-{}.crt", kind.file_label()), &der)?;
    if let Some(p) = platform {
        store(tpm, o.lock_nvram, PLATFORM_CERT_INDEX, &p)?;
        log.line(&format!(
            "Successfully created NVRAM area {PLATFORM_CERT_INDEX:#x} for platform certificate."
        ));
        certifier.write_file(&format!("platform-{}.crt", kind.file_label()), &p)?;
    }
    Ok(())
}

fn allocate_banks(tpm: &SetupTpm, wanted: &str, log: &mut Log) -> Result<()> {
    if wanted == "-" {
        return Ok(());
    }
    let all = tpm.pcr_banks()?;
    let mut active = Vec::new();
    let mut names = Vec::new();
    for name in wanted.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let alg = BANKS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a);
        // As swtpm_setup: a bank the TPM lacks is skipped, but one must remain.
        if let Some(a) = alg.filter(|a| all.contains(a) && !active.contains(a)) {
            active.push(a);
            names.push(name.to_string());
        }
    }
    if active.is_empty() {
        return Err(SetupError::Usage(format!(
            "--pcr-banks {wanted}: none of these banks is implemented (the TPM has {})",
            all.iter()
                .map(|&a| bank_name(a))
                .collect::<Vec<_>>()
                .join(",")
        )));
    }
    tpm.pcr_allocate(&all, &active)?;
    log.line(&format!(
        "Successfully activated PCR banks {} among {}.",
        names.join(","),
        all.iter()
            .map(|&a| bank_name(a))
            .collect::<Vec<_>>()
            .join(",")
    ));
    Ok(())
}

/// Manufacture the TPM `o` describes.
pub fn run(o: &SetupOptions, log: &mut Log) -> Result<()> {
    o.validate()?;
    let Some(state_text) = o.tpm_state.as_deref() else {
        return Err(SetupError::Usage("--tpm-state is required".into()));
    };
    let rsa_bits = o.rsa_bits()?;
    let spec = state_spec(state_text)?;
    let key = o.key_spec()?;
    if let Some(dir) = &o.write_ek_cert_files {
        if !dir.is_dir() {
            return Err(SetupError::io(
                "--write-ek-cert-files:",
                dir,
                std::io::ErrorKind::NotFound.into(),
            ));
        }
    }
    let setup = SetupConfig::load(o.config.as_deref())?;
    let banks = o
        .pcr_banks
        .clone()
        .or_else(|| setup.active_pcr_banks.clone())
        .unwrap_or_else(|| "sha256".into());
    if let Some(tpm) = &o.tpm {
        log.line(&format!(
            "--tpm {tpm}: not started; vtpm setup runs its own TPM engine."
        ));
    }
    let existing = match (o.reconfigure, o.overwrite, o.not_overwrite) {
        (true, _, _) => Existing::Reuse,
        (_, true, _) => Existing::Overwrite,
        (_, _, true) => Existing::Keep,
        _ => Existing::Refuse,
    };
    // A state this run creates is removed again if manufacturing fails, as
    // swtpm_setup removes its state files: a half-made TPM (an EK without
    // its certificate) would otherwise be kept by a later --not-overwrite.
    let new_image = !o.reconfigure
        && matches!(
            spec.location,
            crate::state_dir::StateLocation::Dir(_) | crate::state_dir::StateLocation::Image(_)
        )
        && !spec.image().exists();
    let Some(tpm) = SetupTpm::start(&spec, key.as_ref(), existing)? else {
        log.line("Not overwriting existing state file.");
        return Ok(());
    };
    let mut certifier = Certifier {
        opts: o,
        setup: &setup,
        ca: None,
        tpm: tpm_identity(),
    };
    let steps = (|| {
        if o.create_ek {
            let rsa = if rsa_bits == 3072 {
                EkKind::Rsa3072
            } else {
                EkKind::Rsa2048
            };
            make_ek(&tpm, rsa, o, &mut certifier, log)?;
            let ecc = if o.ecc_p256()? {
                EkKind::EccP256
            } else {
                EkKind::EccP384
            };
            make_ek(&tpm, ecc, o, &mut certifier, log)?;
        }
        if o.create_spk {
            let (h, _) =
                tpm.create_primary(c::RH_OWNER, &templates::spk_template(o.ecc, rsa_bits))?;
            tpm.persist(h, templates::SPK_HANDLE)?;
            tpm.flush(h)?;
            log.line(&format!(
                "Successfully created storage primary key with handle {:#x}.",
                templates::SPK_HANDLE
            ));
        }
        allocate_banks(&tpm, &banks, log)
    })();
    // Shut down and write the state even after a failed step: the lock is released either way.
    let finished = tpm.finish();
    if let Err(e) = steps.and(finished) {
        if new_image {
            let image = spec.image();
            match std::fs::remove_file(&image) {
                Ok(()) => log.line(&format!(
                    "Removed the partly manufactured state {}.",
                    image.display()
                )),
                Err(r) => log.line(&format!("Could not remove {}: {r}", image.display())),
            }
        }
        return Err(e);
    }
    spec.apply_mode()?;
    log.line("Successfully authored TPM state.");
    Ok(())
}

/// Whether `path` can be used as a log file (created if missing).
pub fn check_logfile(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|e| SetupError::io("cannot open log file", path, e))
}
