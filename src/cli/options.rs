//! swtpm's sub-option syntax, `key=value,key,key=value`, parsed once and
//! generically: each option declares its keys in a [`Spec`], and the typed
//! getters turn values into numbers, modes, descriptors or choices with an
//! error message that names the option and the key.

use std::str::FromStr;

use crate::error::{Error, Result};

/// How a key takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `key=value`, the value is required.
    Value,
    /// `key` alone; a value is an error.
    Flag,
    /// `key`, `key=true` or `key=false` (swtpm's `remove[=true|false]`);
    /// `1`/`0` and any case too, as swtpm reads them. Any other value is
    /// refused, where swtpm would silently read it as false.
    Bool,
}

/// The value of a [`Kind::Bool`] key: Some(true|false), None if it is neither.
fn truth(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// One key an option accepts.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key as typed.
    pub name: &'static str,
    /// How it takes a value.
    pub kind: Kind,
}

/// A key that takes a value.
pub const fn value(name: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Value,
    }
}

/// A key that stands alone.
pub const fn flag(name: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Flag,
    }
}

/// A key that is alone or `=true|false`.
pub const fn boolean(name: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Bool,
    }
}

/// The keys of one option, e.g. `--server`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The option, with its dashes, for messages.
    pub option: &'static str,
    /// Every key it accepts.
    pub keys: &'static [Key],
}

/// The parsed sub-options of one option.
#[derive(Debug, Clone)]
pub struct SubOptions {
    option: &'static str,
    entries: Vec<(&'static str, Option<String>)>,
}

impl SubOptions {
    /// Parse `text` against `spec`. Unknown keys, missing or unexpected values and
    /// repeated keys are errors naming the option.
    pub fn parse(spec: &Spec, text: &str) -> Result<SubOptions> {
        let mut entries: Vec<(&'static str, Option<String>)> = Vec::new();
        // Empty items ("a=1,,b" or a trailing comma) are tolerated like swtpm does.
        for item in text.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (item, None),
            };
            let Some(key) = spec.keys.iter().find(|key| key.name == k) else {
                let known: Vec<&str> = spec.keys.iter().map(|k| k.name).collect();
                return Err(Error::usage(
                    spec.option,
                    format!("unknown parameter '{k}' (known: {})", known.join(", ")),
                ));
            };
            match (key.kind, &v) {
                (Kind::Value, None) => {
                    return Err(Error::usage(
                        spec.option,
                        format!("'{k}' needs a value ({k}=...)"),
                    ))
                }
                (Kind::Value, Some(s)) if s.is_empty() => {
                    return Err(Error::usage(
                        spec.option,
                        format!("'{k}' needs a value ({k}=...)"),
                    ))
                }
                (Kind::Flag, Some(_)) => {
                    return Err(Error::usage(spec.option, format!("'{k}' takes no value")))
                }
                (Kind::Bool, Some(s)) if truth(s).is_none() => {
                    return Err(Error::usage(
                        spec.option,
                        format!("'{k}' must be '{k}', '{k}=true' or '{k}=false'"),
                    ))
                }
                _ => {}
            }
            if entries.iter().any(|(n, _)| *n == key.name) {
                return Err(Error::usage(spec.option, format!("'{k}' is given twice")));
            }
            entries.push((key.name, v));
        }
        Ok(SubOptions {
            option: spec.option,
            entries,
        })
    }

    /// The option these came from, for messages.
    pub fn option(&self) -> &'static str {
        self.option
    }

    /// Whether `key` was given (with or without a value).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(n, _)| *n == key)
    }

    /// The raw value of `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| *n == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// A [`Kind::Flag`] or [`Kind::Bool`] key: given (and not `=false` or `=0`).
    pub fn flag(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|(n, v)| *n == key && v.as_deref().and_then(truth) != Some(false))
    }

    /// The value of `key` parsed as `T`; `what` describes the expected form.
    pub fn parsed<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>> {
        match self.str(key) {
            None => Ok(None),
            Some(s) => s
                .parse::<T>()
                .map(Some)
                .map_err(|_| Error::usage(self.option, format!("{key}={s}: expected {what}"))),
        }
    }

    /// A file descriptor number.
    pub fn fd(&self, key: &str) -> Result<Option<i32>> {
        let fd: Option<i32> = self.parsed(key, "a file descriptor number")?;
        match fd {
            Some(n) if n < 0 => Err(Error::usage(
                self.option,
                format!("{key}={n}: expected a file descriptor number"),
            )),
            other => Ok(other),
        }
    }

    /// File mode bits, octal with a leading 0 as swtpm requires (e.g. `0600`).
    pub fn mode(&self, key: &str) -> Result<Option<u32>> {
        let Some(s) = self.str(key) else {
            return Ok(None);
        };
        let bad = || {
            Error::usage(
                self.option,
                format!("{key}={s}: expected octal mode bits starting with 0, e.g. 0600"),
            )
        };
        if !s.starts_with('0') {
            return Err(bad());
        }
        let m = u32::from_str_radix(s, 8).map_err(|_| bad())?;
        if m > 0o7777 {
            return Err(bad());
        }
        Ok(Some(m))
    }

    /// The value of `key`, which must be one of `choices`.
    pub fn choice(&self, key: &str, choices: &[&'static str]) -> Result<Option<&'static str>> {
        let Some(s) = self.str(key) else {
            return Ok(None);
        };
        match choices.iter().find(|c| **c == s) {
            Some(c) => Ok(Some(*c)),
            None => Err(Error::usage(
                self.option,
                format!("{key}={s}: expected one of {}", choices.join(", ")),
            )),
        }
    }

    /// Exactly one of `keys` must be present; returns which.
    pub fn exactly_one(&self, keys: &[&'static str]) -> Result<&'static str> {
        let given: Vec<&'static str> = keys.iter().copied().filter(|k| self.has(k)).collect();
        match given.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::usage(
                self.option,
                format!("one of {} is required", keys.join(", ")),
            )),
            many => Err(Error::usage(
                self.option,
                format!("{} cannot be combined", many.join(" and ")),
            )),
        }
    }

    /// At most one of `keys` may be present; returns which, if any.
    pub fn at_most_one(&self, keys: &[&'static str]) -> Result<Option<&'static str>> {
        if keys.iter().any(|k| self.has(k)) {
            self.exactly_one(keys).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Keys in `keys` are only valid with `context` (e.g. only with `type=tcp`).
    pub fn forbid(&self, keys: &[&str], context: &str) -> Result<()> {
        match keys.iter().find(|k| self.has(k)) {
            Some(k) => Err(Error::usage(
                self.option,
                format!("'{k}' cannot be used {context}"),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        option: "--x",
        keys: &[
            value("port"),
            value("mode"),
            flag("disconnect"),
            boolean("remove"),
        ],
    };

    #[test]
    fn parses_values_flags_and_bools() {
        let o = SubOptions::parse(&SPEC, "port=10,disconnect,remove=false,").unwrap();
        assert_eq!(o.parsed::<u16>("port", "a port").unwrap(), Some(10));
        assert!(o.flag("disconnect"));
        assert!(!o.flag("remove"));
        assert!(o.has("remove"));
        for (text, on) in [
            ("remove", true),
            ("remove=TRUE", true),
            ("remove=1", true),
            ("remove=0", false),
            ("remove=False", false),
        ] {
            assert_eq!(
                SubOptions::parse(&SPEC, text).unwrap().flag("remove"),
                on,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_input_with_the_option_name() {
        for bad in [
            "foo=1",
            "port",
            "port=",
            "disconnect=1",
            "remove=yes",
            "port=1,port=2",
        ] {
            let e = SubOptions::parse(&SPEC, bad).unwrap_err().to_string();
            assert!(e.starts_with("--x: "), "{bad}: {e}");
        }
        let o = SubOptions::parse(&SPEC, "port=99999,mode=600").unwrap();
        assert!(o.parsed::<u16>("port", "a port").is_err());
        assert!(o.mode("mode").is_err());
        let o = SubOptions::parse(&SPEC, "mode=0600").unwrap();
        assert_eq!(o.mode("mode").unwrap(), Some(0o600));
    }
}
