//! File descriptors passed on the command line (`--server fd=N`, `--ctrl
//! clientfd=N`, `--log fd=N`, `--pid fd=N`, `--key fd=N`, ...).

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg};

use crate::error::{Error, Result};

/// Take ownership of descriptor `fd`, which the parent process left open for us.
/// Each number must be taken at most once; the caller (the plan) guarantees it
/// by refusing the same number in two options.
pub fn take(option: &'static str, fd: i32) -> Result<OwnedFd> {
    if fd <= 2 {
        // stdin/stdout/stderr are not ours to take over (and closing them would
        // let the next open() reuse the number).
        return Err(Error::Fd {
            option,
            fd,
            reason: "0, 1 and 2 cannot be used here".into(),
        });
    }
    fcntl(fd, FcntlArg::F_GETFD).map_err(|e| Error::Fd {
        option,
        fd,
        reason: format!("not open ({e})"),
    })?;
    // fcntl(F_GETFD) just confirmed that `fd` is an open descriptor of this process.
    // It was inherited for exactly this option, nothing in vtpm has wrapped it, and
    // the plan rejects a number used twice.
    // SAFETY: so this OwnedFd is its only owner and closing it on drop is correct.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Take ownership of descriptor `fd` as a file (a key, a pid file, a log).
pub fn take_file(option: &'static str, fd: i32) -> Result<File> {
    take(option, fd).map(File::from)
}
