//! Where a channel lives (TCP address, UNIX path, inherited descriptor) and
//! the listener / stream types the servers use for all of them alike.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::socket::{
    getsockname, getsockopt, recv, send, sockopt, AddressFamily, MsgFlags, SockaddrLike,
    SockaddrStorage,
};

use crate::error::Error;

/// Where a channel listens or which descriptor it uses.
#[derive(Debug)]
pub enum Endpoint {
    /// Listen on a TCP address (port 0 picks a free port, see `Server::local_addrs`).
    Tcp(SocketAddr),
    /// Listen on a UNIX stream socket at this path (a stale socket file is replaced).
    Unix(PathBuf),
    /// An inherited descriptor: a listening socket (TCP or UNIX) is accepted on;
    /// a connected socket or any other file is served as one connection.
    Fd(OwnedFd),
}

/// One connection, whatever carries it.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// A descriptor that is not a socket (character device, pipe pair):
    /// no shutdown, no timeouts, no descriptor passing.
    File(File),
    /// The server side of a vTPM proxy device (see `vtpm_proxy`): a file
    /// whose writes the kernel refuses with EIO when it no longer waits
    /// for the response.
    VtpmProxy(File),
}

impl Stream {
    /// Another handle on the same connection (so a registry can shut it down).
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::File(f) => Stream::File(f.try_clone()?),
            Stream::VtpmProxy(f) => Stream::VtpmProxy(f.try_clone()?),
        })
    }

    /// Wake every reader/writer of this connection (used at server shutdown).
    pub(crate) fn shutdown(&self) {
        // Errors only mean the peer is already gone.
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::File(_) | Stream::VtpmProxy(_) => Ok(()),
        };
    }

    /// Limit how long one read may block (`None`: forever). No-op on plain files.
    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::File(_) | Stream::VtpmProxy(_) => Ok(()),
        }
    }

    /// Whether this is a socket (so `recvmsg` works on it).
    pub(crate) fn is_socket(&self) -> bool {
        !matches!(self, Stream::File(_) | Stream::VtpmProxy(_))
    }

    /// Read what has arrived without waiting (`WouldBlock` if nothing has).
    /// The descriptor itself stays blocking: `MSG_DONTWAIT` works per call,
    /// where `O_NONBLOCK` would also change an inherited or passed
    /// descriptor for every other process holding it. A plain file is read
    /// normally; call this only when epoll reported it readable.
    pub(crate) fn recv_nowait(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::File(f) | Stream::VtpmProxy(f) => f.read(buf),
            _ => {
                recv(self.as_fd().as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)
            }
        }
    }

    /// Send what fits without waiting (`WouldBlock` if nothing does); a
    /// client that went away is an error, not a SIGPIPE. A plain file is
    /// written in full (it cannot be polled for room reliably).
    pub(crate) fn send_nowait(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::File(f) => f.write_all(buf).map(|()| buf.len()),
            // One write is one whole response to the proxy.
            Stream::VtpmProxy(f) => match f.write(buf) {
                Err(e) if abandoned_by_proxy(&e) => {
                    // The kernel gave up on the command (it timed out there);
                    // the next command is already waiting: serve it.
                    log::warn!("vTPM proxy: the kernel no longer waits for this response; dropped");
                    Ok(buf.len())
                }
                r => r,
            },
            _ => send(
                self.as_fd().as_raw_fd(),
                buf,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            )
            .map_err(io::Error::from),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::File(f) | Stream::VtpmProxy(f) => f.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::File(f) | Stream::VtpmProxy(f) => f.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::File(f) | Stream::VtpmProxy(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::File(f) | Stream::VtpmProxy(f) => f.flush(),
        }
    }
}

/// Whether a write to a vTPM proxy failed because the kernel abandoned the
/// command (EIO: it is not waiting for a response), rather than because the
/// device is gone (EPIPE) or broken.
pub(crate) fn abandoned_by_proxy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::EIO as i32)
}

/// A listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    /// `path` is set when we created the socket file and must remove it.
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
    },
}

impl Listener {
    /// Accept one connection.
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                // Commands are small request/response exchanges: do not let
                // Nagle delay the last segment of a response.
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
            Listener::Unix { listener, .. } => Ok(Stream::Unix(listener.accept()?.0)),
        }
    }

    /// Make `accept` return `WouldBlock` instead of waiting (the TPM thread
    /// accepts only what epoll announced, and a client may give up in between).
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix { listener, .. } => listener.set_nonblocking(true),
        }
    }

    /// The bound TCP address, if TCP.
    pub(crate) fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }

    /// The socket file we created, if any.
    pub(crate) fn unix_path(&self) -> Option<PathBuf> {
        match self {
            Listener::Unix { path, .. } => path.clone(),
            Listener::Tcp(_) => None,
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix { listener, .. } => listener.as_fd(),
        }
    }
}

/// An endpoint made ready: something to accept on, or one connection.
#[derive(Debug)]
pub(crate) enum Bound {
    Listener(Listener),
    Connected(Stream),
}

/// Bind or adopt an endpoint.
pub(crate) fn bind(ep: Endpoint) -> Result<Bound, Error> {
    match ep {
        Endpoint::Tcp(addr) => {
            // std sets SO_REUSEADDR on Unix, so a restart does not hit TIME_WAIT.
            let l = TcpListener::bind(addr).map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
            Ok(Bound::Listener(Listener::Tcp(l)))
        }
        Endpoint::Unix(path) => {
            remove_stale_socket(&path)?;
            let l = UnixListener::bind(&path).map_err(|source| Error::Bind {
                addr: path.display().to_string(),
                source,
            })?;
            Ok(Bound::Listener(Listener::Unix {
                listener: l,
                path: Some(path),
            }))
        }
        Endpoint::Fd(fd) => classify_fd(fd),
    }
}

/// Remove a socket file left by a previous run; refuse to touch anything else.
fn remove_stale_socket(path: &std::path::Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| Error::Bind {
                addr: path.display().to_string(),
                source,
            })
        }
        Ok(_) => Err(Error::NotASocket {
            path: path.display().to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Bind {
            addr: path.display().to_string(),
            source,
        }),
    }
}

/// Decide what an inherited or received descriptor is.
pub(crate) fn classify_fd(fd: OwnedFd) -> Result<Bound, Error> {
    let raw = fd.as_raw_fd();
    let listening = match getsockopt(&fd, sockopt::AcceptConn) {
        Ok(l) => l,
        Err(nix::errno::Errno::ENOTSOCK) => {
            return Ok(Bound::Connected(Stream::File(File::from(fd))))
        }
        Err(e) => {
            return Err(Error::BadFd {
                fd: raw,
                source: e.into(),
            })
        }
    };
    let family = getsockname::<SockaddrStorage>(raw)
        .map_err(|e| Error::BadFd {
            fd: raw,
            source: e.into(),
        })?
        .family();
    let is_unix = matches!(family, Some(AddressFamily::Unix));
    let is_inet = matches!(
        family,
        Some(AddressFamily::Inet) | Some(AddressFamily::Inet6)
    );
    if !is_unix && !is_inet {
        return Err(Error::BadFd {
            fd: raw,
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                "socket family is neither UNIX nor IP",
            ),
        });
    }
    Ok(match (listening, is_unix) {
        (true, true) => Bound::Listener(Listener::Unix {
            listener: UnixListener::from(fd),
            path: None,
        }),
        (true, false) => Bound::Listener(Listener::Tcp(TcpListener::from(fd))),
        (false, true) => Bound::Connected(Stream::Unix(UnixStream::from(fd))),
        (false, false) => Bound::Connected(Stream::Tcp(TcpStream::from(fd))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_eio_means_the_proxy_abandoned_the_command() {
        assert!(abandoned_by_proxy(&io::Error::from_raw_os_error(
            nix::errno::Errno::EIO as i32
        )));
        for e in [nix::errno::Errno::EPIPE, nix::errno::Errno::EBADF] {
            assert!(!abandoned_by_proxy(&io::Error::from_raw_os_error(e as i32)));
        }
        assert!(!abandoned_by_proxy(&io::ErrorKind::WouldBlock.into()));
    }
}
