//! The local CA that signs `vtpm setup`'s certificates, kept as
//! swtpm-localca keeps its own (so either tool can use the other's): in its
//! state directory (`statedir`, default /var/lib/swtpm-localca) a root CA
//! (`swtpm-localca-rootca-privkey.pem`, `swtpm-localca-rootca-cert.pem`)
//! and the intermediate that signs (`signingkey`, `issuercert`), created on
//! first use; `certserial` holds the last serial number issued.
//!
//! A serial number is taken by writing the next number to a temporary file,
//! syncing it and renaming it over `certserial` (then syncing the
//! directory) before the certificate is made, so a crash can skip a number
//! but never hand one out twice. Concurrent setups serialise on a lock file
//! in the state directory.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use der::pem::LineEnding;
use der::{DecodePem, EncodePem};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::RsaPrivateKey;
use x509_cert::Certificate;

use super::certs;
use super::config::LocalCaConfig;
use super::error::{Result, SetupError};

/// Bits of the CA keys vtpm creates.
const CA_KEY_BITS: usize = 2048;
/// The lock file that serialises users of one CA directory.
const LOCK_NAME: &str = ".lock.swtpm-localca";

/// An open local CA: the signing key and its certificate.
pub struct LocalCa {
    /// The intermediate's key, which signs TPM certificates.
    pub key: RsaPrivateKey,
    /// The intermediate's certificate (the issuer of TPM certificates).
    pub cert: Certificate,
    /// The root CA certificate (the trust anchor to verify against).
    pub root_path: PathBuf,
    serial_path: PathBuf,
    _lock: File,
}

fn read(what: &'static str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| SetupError::io(what, path, e))
}

/// A PEM private key (PKCS#8 or PKCS#1), possibly after text such as certtool puts first.
fn parse_key(path: &Path) -> Result<RsaPrivateKey> {
    let text = read("cannot read CA key", path)?;
    let pem = text
        .find("-----BEGIN")
        .and_then(|i| text.get(i..))
        .unwrap_or_default();
    RsaPrivateKey::from_pkcs8_pem(pem)
        .ok()
        .or_else(|| RsaPrivateKey::from_pkcs1_pem(pem).ok())
        .ok_or_else(|| {
            SetupError::Cert(format!(
                "{}: not an unencrypted RSA private key in PEM (PKCS#8 or PKCS#1)",
                path.display()
            ))
        })
}

fn parse_cert(path: &Path) -> Result<Certificate> {
    let text = read("cannot read CA certificate", path)?;
    Certificate::from_pem(text.as_bytes())
        .map_err(|e| SetupError::Cert(format!("{}: not a PEM certificate: {e}", path.display())))
}

/// Write `data` to `path` durably: a temporary file, synced, renamed, directory synced.
fn write_durably(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    // A leftover of an interrupted write goes first, so the file is created
    // anew with exactly `mode` (a private key must never inherit 0644).
    let _ = std::fs::remove_file(&tmp);
    let mut f = crate::new_file::open(OpenOptions::new().write(true), &tmp, mode)
        .map_err(|e| SetupError::io("cannot create", &tmp, e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| SetupError::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| SetupError::io("cannot rename into", path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SetupError::io("cannot sync directory", dir, e))
}

fn new_key() -> Result<RsaPrivateKey> {
    RsaPrivateKey::new(&mut rand::thread_rng(), CA_KEY_BITS)
        .map_err(|e| SetupError::Cert(format!("cannot generate a CA key: {e}")))
}

fn key_pem(key: &RsaPrivateKey) -> Result<Vec<u8>> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.as_bytes().to_vec())
        .map_err(|e| SetupError::Cert(format!("cannot encode a CA key: {e}")))
}

fn cert_pem(cert: &Certificate) -> Result<Vec<u8>> {
    cert.to_pem(LineEnding::LF)
        .map(String::into_bytes)
        .map_err(|e| SetupError::Cert(format!("cannot encode a CA certificate: {e}")))
}

/// Take the CA lock, waiting for another setup that holds it.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_NAME);
    let f = crate::new_file::open(OpenOptions::new().write(true), &path, 0o600)
        .map_err(|e| SetupError::io("cannot open CA lock", &path, e))?;
    // A bounded wait: another setup holds it for a second or two at most.
    for _ in 0..600 {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(SetupError::io("cannot lock", &path, e))
            }
        }
    }
    Err(SetupError::io(
        "cannot lock (held for a minute by another setup)",
        &path,
        std::io::ErrorKind::WouldBlock.into(),
    ))
}

impl LocalCa {
    /// Open the CA `conf` describes, creating its directory, keys and
    /// certificates when they do not exist yet (`log` hears about it).
    pub fn open(conf: &LocalCaConfig, log: &mut dyn FnMut(&str)) -> Result<LocalCa> {
        std::fs::create_dir_all(&conf.statedir)
            .map_err(|e| SetupError::io("cannot create CA directory", &conf.statedir, e))?;
        let lock = lock(&conf.statedir)?;
        let root_key_path = conf.statedir.join("swtpm-localca-rootca-privkey.pem");
        let root_path = conf.statedir.join("swtpm-localca-rootca-cert.pem");
        if !conf.signingkey.exists() || !conf.issuercert.exists() {
            log("Creating root CA and a local CA's signing key and issuer cert.");
            let root_key = new_key()?;
            let root = certs::ca_certificate("swtpm-localca-rootca", &root_key, None)?;
            let key = new_key()?;
            let issuer = certs::ca_certificate("swtpm-localca", &key, Some((&root, &root_key)))?;
            write_durably(&root_key_path, &key_pem(&root_key)?, 0o600)?;
            write_durably(&root_path, &cert_pem(&root)?, 0o644)?;
            write_durably(&conf.signingkey, &key_pem(&key)?, 0o600)?;
            write_durably(&conf.issuercert, &cert_pem(&issuer)?, 0o644)?;
        }
        Ok(LocalCa {
            key: parse_key(&conf.signingkey)?,
            cert: parse_cert(&conf.issuercert)?,
            root_path,
            serial_path: conf.certserial.clone(),
            _lock: lock,
        })
    }

    /// The next serial number, recorded durably before it is returned.
    pub fn next_serial(&self) -> Result<u64> {
        let last = match std::fs::read_to_string(&self.serial_path) {
            Ok(t) => t.trim().parse::<u64>().map_err(|_| {
                SetupError::Cert(format!(
                    "{}: expected a decimal serial number",
                    self.serial_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(SetupError::io("cannot read", &self.serial_path, e)),
        };
        let next = last.checked_add(1).ok_or_else(|| {
            SetupError::Cert("the certificate serial numbers are exhausted".into())
        })?;
        write_durably(&self.serial_path, format!("{next}\n").as_bytes(), 0o644)?;
        Ok(next)
    }
}
