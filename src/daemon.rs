//! `--daemon`: detach from the terminal without losing start-up errors.
//!
//! A multi-threaded process cannot fork safely (only the forking thread
//! survives), and vtpm's TPM, storage and transport threads start while it
//! binds its sockets. So the fork happens first, while the process is still
//! single-threaded: the parent stays attached to the terminal and waits on a
//! pipe; the child (after `setsid`) opens the state, binds the sockets and
//! writes the pid file, then reports "ready" (the parent exits 0) or its
//! error message (the parent prints it and exits 1). Only then does the child
//! point stdin/stdout/stderr at /dev/null and move to `/`.

use std::fs::File;
use std::io::{Read, Write};

use nix::unistd::{fork, setsid, ForkResult};

use crate::error::{Error, Result};

/// The child's line back to the waiting parent.
pub struct Notifier {
    pipe: File,
}

fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Fork. In the parent this never returns: it exits with the child's verdict.
/// In the child it returns the [`Notifier`] to report on.
pub fn daemonize() -> Result<Notifier> {
    if let Some(n) = thread_count().filter(|n| *n > 1) {
        return Err(Error::Process(format!(
            "internal error: cannot daemonize a process with {n} threads"
        )));
    }
    let (read_end, write_end) = nix::unistd::pipe()
        .map_err(|e| Error::Process(format!("cannot create a pipe for --daemon: {e}")))?;
    // SAFETY: the process is single-threaded here (checked above through
    // /proc/self/task, and vtpm starts no thread before this point), so the child
    // inherits a consistent copy of the whole process and may run arbitrary code.
    match unsafe { fork() } {
        Err(e) => Err(Error::Process(format!("cannot fork for --daemon: {e}"))),
        Ok(ForkResult::Parent { .. }) => {
            drop(write_end);
            let mut msg = String::new();
            let _ = File::from(read_end).read_to_string(&mut msg);
            if msg == "ready\n" {
                std::process::exit(0);
            }
            if msg.is_empty() {
                msg = "vtpm: the daemon exited during start-up".into();
            }
            eprintln!("{}", msg.trim_end());
            std::process::exit(1);
        }
        Ok(ForkResult::Child) => {
            drop(read_end);
            setsid().map_err(|e| Error::Process(format!("setsid: {e}")))?;
            Ok(Notifier {
                pipe: File::from(write_end),
            })
        }
    }
}

impl Notifier {
    /// Start-up failed: hand the message to the parent.
    pub fn failed(mut self, e: &Error) {
        let _ = writeln!(self.pipe, "vtpm: {e}");
    }

    /// Start-up succeeded: release the parent, detach the standard descriptors.
    pub fn ready(mut self) {
        let _ = self.pipe.write_all(b"ready\n");
        drop(self.pipe);
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            use std::os::fd::AsRawFd;
            for fd in 0..=2 {
                let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
            }
        }
        // All paths were made absolute when the command line was parsed.
        let _ = std::env::set_current_dir("/");
    }
}
