//! swtpm_setup's configuration files, read as swtpm_setup and
//! swtpm-localca read them: `key = value` lines (`#` starts a comment),
//! `${NAME}` in a value replaced by the environment variable.
//!
//! * swtpm_setup.conf (`--config`, else `$XDG_CONFIG_HOME/swtpm_setup.conf`,
//!   else `/etc/swtpm_setup.conf`): `create_certs_tool`,
//!   `create_certs_tool_config` (the CA's configuration),
//!   `create_certs_tool_options` (the platform's identity), `active_pcr_banks`.
//! * swtpm-localca.conf: `statedir`, `signingkey`, `issuercert`,
//!   `certserial` (defaults under /var/lib/swtpm-localca, as swtpm-localca's).
//! * swtpm-localca.options: `--platform-manufacturer`, `--platform-model`,
//!   `--platform-version` lines.

use std::path::{Path, PathBuf};

use super::certs::PlatformIdentity;
use super::error::{Result, SetupError};

/// swtpm-localca's default state directory.
const DEFAULT_CA_DIR: &str = "/var/lib/swtpm-localca";

/// Key/value lines of a configuration file.
struct Lines(Vec<(String, String)>);

/// Replace `${NAME}` with the environment variable NAME (empty when unset).
fn expand(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 2..).unwrap_or_default();
        match after.find('}') {
            Some(j) => {
                let name = after.get(..j).unwrap_or_default();
                out.push_str(&std::env::var(name).unwrap_or_default());
                rest = after.get(j + 1..).unwrap_or_default();
            }
            None => {
                out.push_str(rest.get(i..).unwrap_or_default());
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Lines {
    fn read(path: &Path) -> Result<Lines> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SetupError::io("cannot read configuration file", path, e))?;
        Ok(Lines::parse(&text))
    }

    fn parse(text: &str) -> Lines {
        let mut v = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, val)) = line.split_once('=') {
                v.push((k.trim().to_string(), expand(val.trim())));
            }
        }
        Lines(v)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// `$XDG_CONFIG_HOME/<name>` (or `~/.config/<name>`) if readable, else `/etc/<name>`.
fn default_file(name: &str) -> PathBuf {
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join(name));
    match user {
        Some(p) if p.is_file() => p,
        _ => Path::new("/etc").join(name),
    }
}

/// What swtpm_setup.conf says.
#[derive(Debug, Clone, Default)]
pub struct SetupConfig {
    /// `create_certs_tool` (vtpm makes the certificates itself; kept for the log).
    pub create_certs_tool: Option<String>,
    /// `create_certs_tool_config`.
    pub ca_config: Option<PathBuf>,
    /// `create_certs_tool_options`.
    pub ca_options: Option<PathBuf>,
    /// `active_pcr_banks`.
    pub active_pcr_banks: Option<String>,
}

impl SetupConfig {
    /// Read `path` (`--config`), or the default file if it exists.
    pub fn load(path: Option<&Path>) -> Result<SetupConfig> {
        let file = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let f = default_file("swtpm_setup.conf");
                if !f.is_file() {
                    return Ok(SetupConfig::default());
                }
                f
            }
        };
        let l = Lines::read(&file)?;
        Ok(SetupConfig {
            create_certs_tool: l.get("create_certs_tool").map(str::to_string),
            ca_config: l.get("create_certs_tool_config").map(PathBuf::from),
            ca_options: l.get("create_certs_tool_options").map(PathBuf::from),
            active_pcr_banks: l.get("active_pcr_banks").map(str::to_string),
        })
    }
}

/// What swtpm-localca.conf says: where the CA is kept.
#[derive(Debug, Clone)]
pub struct LocalCaConfig {
    /// `statedir`.
    pub statedir: PathBuf,
    /// `signingkey`.
    pub signingkey: PathBuf,
    /// `issuercert`.
    pub issuercert: PathBuf,
    /// `certserial`.
    pub certserial: PathBuf,
}

impl LocalCaConfig {
    /// Read `path`, or the default swtpm-localca.conf, or use swtpm-localca's defaults.
    pub fn load(path: Option<&Path>) -> Result<LocalCaConfig> {
        let file = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| default_file("swtpm-localca.conf"));
        let l = if path.is_some() || file.is_file() {
            Lines::read(&file)?
        } else {
            Lines(Vec::new())
        };
        if l.get("signingkey")
            .is_some_and(|k| k.starts_with("pkcs11:"))
        {
            return Err(SetupError::Cert(format!(
                "{}: a PKCS#11 signing key is not supported by vtpm setup",
                file.display()
            )));
        }
        if l.get("signingkey_password").is_some() || l.get("parentkey_password").is_some() {
            return Err(SetupError::Cert(format!(
                "{}: password-protected CA keys are not supported by vtpm setup",
                file.display()
            )));
        }
        let statedir = PathBuf::from(l.get("statedir").unwrap_or(DEFAULT_CA_DIR));
        let or_in_dir = |key: &str, name: &str| {
            l.get(key)
                .map(PathBuf::from)
                .unwrap_or_else(|| statedir.join(name))
        };
        Ok(LocalCaConfig {
            signingkey: or_in_dir("signingkey", "signkey.pem"),
            issuercert: or_in_dir("issuercert", "issuercert.pem"),
            certserial: or_in_dir("certserial", "certserial"),
            statedir,
        })
    }
}

/// The platform identity of swtpm-localca.options (defaults where a line is missing).
pub fn platform_identity(path: Option<&Path>) -> Result<PlatformIdentity> {
    let mut p = PlatformIdentity {
        manufacturer: "vtpm".into(),
        model: "vtpm".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let file = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_file("swtpm-localca.options"));
    if path.is_none() && !file.is_file() {
        return Ok(p);
    }
    let text = std::fs::read_to_string(&file)
        .map_err(|e| SetupError::io("cannot read options file", &file, e))?;
    let words: Vec<&str> = text.split_whitespace().collect();
    for pair in words.windows(2) {
        if let [opt, value] = pair {
            match *opt {
                "--platform-manufacturer" => p.manufacturer = value.to_string(),
                "--platform-model" => p.model = value.to_string(),
                "--platform-version" => p.version = value.to_string(),
                _ => {}
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_key_value_with_comments_and_variables() {
        std::env::set_var("VTPM_SETUP_TEST_DIR", "/x");
        let l = Lines::parse("# comment\nstatedir = ${VTPM_SETUP_TEST_DIR}/ca\ncreate_certs_tool= /usr/bin/swtpm_localca\n\n");
        assert_eq!(l.get("statedir"), Some("/x/ca"));
        assert_eq!(l.get("create_certs_tool"), Some("/usr/bin/swtpm_localca"));
        assert_eq!(l.get("missing"), None);
    }
}
