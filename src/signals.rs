//! SIGTERM, SIGINT and SIGHUP end vtpm cleanly: the signal thread asks the
//! server to shut down, `main` then powers the TPM off (auto-shutdown and
//! state saved), removes the pid file and exits 0.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::error::{Error, Result};

/// The termination signals, caught from installation on (a signal arriving
/// during start-up is delivered once the server runs).
pub struct TermSignals {
    signals: Signals,
}

impl TermSignals {
    /// Catch SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> Result<TermSignals> {
        let signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map_err(|e| Error::Process(format!("cannot install signal handlers: {e}")))?;
        Ok(TermSignals { signals })
    }

    /// A handle that ends [`TermSignals::wait`] when closed.
    pub fn handle(&self) -> Handle {
        self.signals.handle()
    }

    /// Block until a termination signal arrives (its number) or the handle is closed (None).
    pub fn wait(&mut self) -> Option<i32> {
        self.signals.forever().next()
    }
}

/// The name of a signal number we catch, for logs.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        _ => "signal",
    }
}
