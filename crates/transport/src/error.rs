//! Errors of setting up the transport. Errors on a live connection are not
//! reported here: they end that connection and are logged, nothing more.

use std::io;

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding a listening socket failed; `addr` names the TCP address or UNIX path.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address or path that could not be bound.
        addr: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// A path exists where a UNIX socket should be created and it is not a socket,
    /// so removing it could destroy user data.
    #[error("cannot bind {path}: it exists and is not a socket")]
    NotASocket {
        /// The offending path.
        path: String,
    },
    /// An inherited file descriptor could not be used.
    #[error("unusable file descriptor {fd}: {source}")]
    BadFd {
        /// The descriptor number.
        fd: i32,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The CUSE control device cannot be opened (missing module, no permission).
    #[error("cannot open {path}: {source}; the CUSE front end needs the cuse kernel module (modprobe cuse) and root")]
    Cuse {
        /// The control device, /dev/cuse.
        path: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The vTPM proxy driver is missing or refused to create a device.
    #[error("vTPM proxy {path}: {source}{hint}")]
    Proxy {
        /// The driver's control device (/dev/vtpmx).
        path: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
        /// What to do about it, with its leading "; ", or empty.
        hint: &'static str,
    },
    /// A descriptor or device that chardev mode cannot serve.
    #[error("cannot serve {what} as a TPM character device: {reason}")]
    NotADevice {
        /// The descriptor or path.
        what: String,
        /// Why not.
        reason: String,
    },
    /// The configuration cannot work (for example no endpoint at all).
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// Another I/O failure while setting up (threads, wake-up pipe).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
}
