//! The `log` backend of the binary: stderr by default, or swtpm's
//! `--log file=F|fd=N[,level=N][,prefix=P][,truncate]`.
//!
//! swtpm's numeric levels map onto `log` levels as follows (swtpm itself only
//! distinguishes "on" and "level ≥ 5 adds libtpms debugging"):
//!
//! | level | logged                                        |
//! |-------|-----------------------------------------------|
//! | 0     | nothing                                       |
//! | 1–4   | error, warn, info (start-up, shutdown, notes) |
//! | 5–19  | + debug (control messages, power transitions) |
//! | ≥ 20  | + trace (every TPM command code and result)   |
//!
//! Without `--log`, errors and warnings go to stderr. With `--log` but no
//! `level=`, the level is 1 (swtpm's default). `file=-` turns logging off.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata, Record};

use crate::error::{Error, Result};

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error.
    Stderr,
    /// A file, appended to (or truncated first).
    File {
        /// The file.
        path: PathBuf,
        /// Truncate at start instead of appending.
        truncate: bool,
    },
    /// An inherited descriptor.
    Fd(i32),
    /// Nowhere (`file=-`, or `level=0`).
    Off,
}

/// The `--log` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    /// Where.
    pub target: LogTarget,
    /// swtpm's numeric level.
    pub level: u32,
    /// Prepended to every line.
    pub prefix: String,
}

impl Default for LogSpec {
    /// No `--log`: errors and warnings on stderr.
    fn default() -> Self {
        LogSpec {
            target: LogTarget::Stderr,
            level: 0,
            prefix: String::new(),
        }
    }
}

impl LogSpec {
    /// The `log` filter for this spec.
    pub fn filter(&self) -> LevelFilter {
        match (&self.target, self.level) {
            (LogTarget::Off, _) => LevelFilter::Off,
            // The default spec (no --log) still reports problems on stderr.
            (LogTarget::Stderr, 0) if self == &LogSpec::default() => LevelFilter::Warn,
            (_, 0) => LevelFilter::Off,
            (_, 1..=4) => LevelFilter::Info,
            (_, 5..=19) => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        }
    }
}

struct Logger {
    out: Mutex<Box<dyn Write + Send>>,
    prefix: String,
    filter: LevelFilter,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.filter
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // One write per line so concurrent threads never interleave inside a line.
        let line = format!(
            "{}vtpm[{}]: {} {}\n",
            self.prefix,
            std::process::id(),
            r.level(),
            r.args()
        );
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }

    fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}

/// Install the logger. Called once, before daemonizing, so that a bad log
/// file is reported on the terminal. A new log file gets mode bits `mode`.
pub fn init(spec: &LogSpec, mode: u32) -> Result<()> {
    let out: Box<dyn Write + Send> = match &spec.target {
        LogTarget::Stderr | LogTarget::Off => Box::new(std::io::stderr()),
        LogTarget::Fd(1) => Box::new(std::io::stdout()),
        LogTarget::Fd(2) => Box::new(std::io::stderr()),
        LogTarget::Fd(n) => Box::new(crate::fds::take_file("--log", *n)?),
        LogTarget::File { path, truncate } => {
            let mut o = OpenOptions::new();
            o.create(true);
            if *truncate {
                o.write(true).truncate(true);
            } else {
                o.append(true);
            }
            let f: File = crate::new_file::open(&o, path, mode)
                .map_err(|e| Error::io("cannot open log file", path, e))?;
            Box::new(f)
        }
    };
    let filter = spec.filter();
    let logger = Logger {
        out: Mutex::new(out),
        prefix: spec.prefix.clone(),
        filter,
    };
    // The logger lives for the whole process (log's set_boxed_logger needs its std feature).
    log::set_logger(Box::leak(Box::new(logger)))
        .map_err(|e| Error::Process(format!("cannot install the logger: {e}")))?;
    log::set_max_level(filter);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_mapping() {
        let at = |level| {
            LogSpec {
                target: LogTarget::Fd(2),
                level,
                prefix: String::new(),
            }
            .filter()
        };
        assert_eq!(at(0), LevelFilter::Off);
        assert_eq!(at(1), LevelFilter::Info);
        assert_eq!(at(5), LevelFilter::Debug);
        assert_eq!(at(20), LevelFilter::Trace);
        assert_eq!(LogSpec::default().filter(), LevelFilter::Warn);
    }
}
