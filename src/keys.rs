//! `--key`: the key that encrypts the NVRAM image at rest.
//!
//! vtpm's image is encrypted with AES-256-GCM by the nvram crate, whatever
//! swtpm `mode=` is given (swtpm's aes-cbc modes describe swtpm's own file
//! format, which vtpm does not write). The key material maps as follows:
//! a 32-byte key (binary, or 64 hex digits) is the AES-256 key itself; a
//! 16-byte key (binary, or 32 hex digits, swtpm's aes-128-cbc) and any
//! passphrase (`pwdfile=`/`pwdfd=`) are stretched by the nvram crate's
//! password KDF, whose salt is kept in the image header. `kdf=` is accepted
//! for compatibility; the KDF is always the nvram crate's.

use std::io::Read;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Where the key bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyInput {
    /// `file=F`.
    File(PathBuf),
    /// `fd=N`.
    Fd(i32),
    /// `pwdfile=F`.
    PwdFile(PathBuf),
    /// `pwdfd=N`.
    PwdFd(i32),
}

/// How a key file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// 32 or 64 hex digits, optional `0x`, surrounding whitespace ignored (swtpm's default).
    Hex,
    /// 16 or 32 raw bytes.
    Binary,
}

/// The parsed `--key` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// The source.
    pub input: KeyInput,
    /// The encoding of a key (not a passphrase).
    pub format: KeyFormat,
    /// `remove`: delete the key/passphrase file once read.
    pub remove: bool,
}

/// What a key option (`--key`, `--migration-key`) holds once read.
pub(crate) enum KeyMaterial {
    /// A passphrase (`pwdfile=`/`pwdfd=`), never empty.
    Passphrase(Zeroizing<Vec<u8>>),
    /// A key (`file=`/`fd=`), decoded from its `format=`.
    Key(Zeroizing<Vec<u8>>),
}

impl KeySpec {
    /// Read the key material and turn it into the NVRAM's key source.
    pub fn load(&self) -> Result<nvram::KeySource> {
        match self.material("--key")? {
            KeyMaterial::Passphrase(p) => Ok(nvram::KeySource::Passphrase(p)),
            KeyMaterial::Key(key) => match key.len() {
                32 => {
                    let mut k = Zeroizing::new([0u8; 32]);
                    k.copy_from_slice(&key);
                    Ok(nvram::KeySource::Raw(k))
                }
                16 => Ok(nvram::KeySource::Passphrase(key)),
                n => Err(Error::usage(
                    "--key",
                    format!("the key has {n} bytes; 16 or 32 are supported"),
                )),
            },
        }
    }

    /// Read the passphrase, or the key decoded from its `format=`; errors
    /// name `option`.
    pub(crate) fn material(&self, option: &'static str) -> Result<KeyMaterial> {
        let bytes = self.read(option)?;
        match self.input {
            KeyInput::PwdFile(_) | KeyInput::PwdFd(_) if bytes.is_empty() => {
                Err(Error::usage(option, "the passphrase is empty"))
            }
            KeyInput::PwdFile(_) | KeyInput::PwdFd(_) => Ok(KeyMaterial::Passphrase(bytes)),
            KeyInput::File(_) | KeyInput::Fd(_) => Ok(KeyMaterial::Key(match self.format {
                KeyFormat::Binary => bytes,
                KeyFormat::Hex => decode_hex(option, &bytes)?,
            })),
        }
    }

    /// The bytes as stored: a key still in its `format=`, or a passphrase.
    fn read(&self, option: &'static str) -> Result<Zeroizing<Vec<u8>>> {
        let mut buf = Zeroizing::new(Vec::new());
        match &self.input {
            KeyInput::File(p) | KeyInput::PwdFile(p) => {
                let mut f =
                    std::fs::File::open(p).map_err(|e| Error::io("cannot open key file", p, e))?;
                f.read_to_end(&mut buf)
                    .map_err(|e| Error::io("cannot read key file", p, e))?;
                if self.remove {
                    std::fs::remove_file(p)
                        .map_err(|e| Error::io("cannot remove key file", p, e))?;
                }
            }
            KeyInput::Fd(n) | KeyInput::PwdFd(n) => {
                let mut f = crate::fds::take_file(option, *n)?;
                // A key is small; refuse a descriptor that streams without end.
                (&mut f)
                    .take(64 * 1024)
                    .read_to_end(&mut buf)
                    .map_err(|e| Error::Fd {
                        option,
                        fd: *n,
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(buf)
    }
}

/// A `format=hex` key: hex digits, optionally 0x-prefixed, whitespace around ignored.
fn decode_hex(option: &'static str, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let bad = || {
        Error::usage(
            option,
            "format=hex: the key file must hold 32 or 64 hex digits (optionally 0x-prefixed)",
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad())?.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.len() % 2 != 0 || digits.is_empty() {
        return Err(bad());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
    for pair in digits.as_bytes().chunks(2) {
        let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
        let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
        out.push((hi * 16 + lo) as u8);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys() {
        assert_eq!(
            decode_hex("--key", b"0x00ff\n").unwrap().as_slice(),
            &[0, 255]
        );
        assert!(decode_hex("--key", b"0x0").is_err());
        assert!(decode_hex("--key", b"zz").is_err());
        assert!(decode_hex("--key", b"").is_err());
    }
}
