//! An NBD client as a [`Backend`]: the image is an export of an NBD server
//! (qemu-storage-daemon, qemu-nbd: a qcow2 or LUKS image, a Ceph RBD
//! volume...). The fixed newstyle handshake with NBD_OPT_GO (the export's
//! size, transmission flags and block size constraints), simple replies,
//! NBD_CMD_READ / WRITE / FLUSH, NBD_CMD_FLAG_FUA where the server advertises
//! it on a durable commit of one write (the header's: one round trip instead
//! of the write, its reply, then FLUSH), NBD_CMD_DISC at close. Names follow
//! the NBD protocol document.
//!
//! A dropped connection fails the operation in progress (the NVRAM then
//! reports the write as not stored and moves to a fresh epoch) and is
//! re-established by a later operation, at most once per back-off interval.
//! Anything a server sends that does not fit the protocol is an error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wire_record::{wire, Wire};

use crate::backend::Backend;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

const NBD_FLAG_FIXED_NEWSTYLE: u16 = 1;
const NBD_FLAG_NO_ZEROES: u16 = 2;
const NBD_FLAG_C_FIXED_NEWSTYLE: u32 = 1;
const NBD_FLAG_C_NO_ZEROES: u32 = 2;

const NBD_OPT_GO: u32 = 7;
const NBD_REP_ACK: u32 = 1;
const NBD_REP_INFO: u32 = 3;
const NBD_REP_FLAG_ERROR: u32 = 1 << 31;
const NBD_INFO_EXPORT: u16 = 0;
const NBD_INFO_BLOCK_SIZE: u16 = 3;

const NBD_FLAG_HAS_FLAGS: u16 = 1;
const NBD_FLAG_READ_ONLY: u16 = 2;
const NBD_FLAG_SEND_FLUSH: u16 = 4;
const NBD_FLAG_SEND_FUA: u16 = 8;
const NBD_CMD_FLAG_FUA: u16 = 1;

const NBD_CMD_READ: u16 = 0;
const NBD_CMD_WRITE: u16 = 1;
const NBD_CMD_DISC: u16 = 2;
const NBD_CMD_FLUSH: u16 = 3;

/// Largest option reply accepted (bounds allocations on hostile servers).
const MAX_OPTION_REPLY: u32 = 64 * 1024;
/// Size of the receive buffer (replies that arrive together are taken in one
/// `read`); larger read payloads go straight to their destination.
const RECV_BUFFER: usize = 4096;
/// Largest request sent (the protocol's default maximum payload).
const DEFAULT_MAX_REQUEST: u32 = 32 << 20;
/// Back-off between reconnection attempts: first, and at most.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `nbd://HOST[:PORT]/EXPORT`.
    Tcp(String, u16),
    /// `nbd+unix:///EXPORT?socket=PATH`.
    Unix(PathBuf),
}

/// An NBD URI (the NBD URI standard's `nbd://` and `nbd+unix://` forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdUri {
    /// The server.
    pub address: Address,
    /// The export name (may be empty: the default export).
    pub export: String,
}

impl NbdUri {
    /// Parse `nbd://HOST[:PORT][/EXPORT]` or `nbd+unix:///[EXPORT]?socket=PATH`.
    pub fn parse(uri: &str) -> Result<NbdUri, String> {
        if let Some(rest) = uri.strip_prefix("nbd+unix://") {
            let (path, query) = rest
                .split_once('?')
                .ok_or("nbd+unix:// needs ?socket=PATH")?;
            let export = path
                .strip_prefix('/')
                .ok_or("nbd+unix:// takes no host: nbd+unix:///EXPORT?socket=PATH")?;
            let socket = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("socket="))
                .filter(|s| !s.is_empty())
                .ok_or("nbd+unix:// needs ?socket=PATH")?;
            return Ok(NbdUri {
                address: Address::Unix(PathBuf::from(socket)),
                export: export.to_string(),
            });
        }
        let rest = uri
            .strip_prefix("nbd://")
            .ok_or("expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH")?;
        let (host_port, export) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match host_port.rsplit_once(':') {
            // An IPv6 literal's colons are inside brackets.
            Some((h, p)) if !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{p:?} is not a port number"))?,
            ),
            _ => (host_port, 10809),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("nbd:// needs a host".into());
        }
        Ok(NbdUri {
            address: Address::Tcp(host.to_string(), port),
            export: export.to_string(),
        })
    }
}

impl std::fmt::Display for NbdUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.address {
            Address::Tcp(h, p) if h.contains(':') => write!(f, "nbd://[{h}]:{p}/{}", self.export),
            Address::Tcp(h, p) => write!(f, "nbd://{h}:{p}/{}", self.export),
            Address::Unix(s) => write!(f, "nbd+unix:///{}?socket={}", self.export, s.display()),
        }
    }
}

/// A connection: a TCP or Unix stream.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

wire! {
    /// The server's greeting (fixed newstyle: its handshake flags follow,
    /// read apart so that an old-style server is told at once).
    pub struct Greeting { pub nbdmagic: u64, pub ihaveopt: u64 }
}

wire! {
    /// The server's handshake flags.
    pub struct HandshakeFlags { pub flags: u16 }
}

wire! {
    /// The header of an option request (its data follows).
    pub struct OptionRequest { pub ihaveopt: u64, pub option: u32, pub length: u32 }
}

wire! {
    /// NBD_OPT_GO's data after the export name: the information asked for.
    pub struct GoInfoRequests { pub count: u16, pub info: u16 }
}

wire! {
    /// The header of an option reply (its data follows).
    pub struct OptionReply { pub magic: u64, pub option: u32, pub kind: u32, pub length: u32 }
}

wire! {
    /// NBD_INFO_EXPORT: size and transmission flags.
    pub struct InfoExport { pub info: u16, pub size: u64, pub flags: u16 }
}

wire! {
    /// NBD_INFO_BLOCK_SIZE: the block size constraints.
    pub struct InfoBlockSize { pub info: u16, pub minimum: u32, pub preferred: u32, pub maximum: u32 }
}

wire! {
    /// A transmission request (a write's data follows).
    pub struct Request { pub magic: u32, pub flags: u16, pub kind: u16, pub cookie: u64, pub offset: u64, pub length: u32 }
}

wire! {
    /// A simple reply (a read's data follows when error is 0).
    pub struct SimpleReply { pub magic: u32, pub error: u32, pub cookie: u64 }
}

/// Read one record `T` from the stream.
fn read_record<T: Wire>(s: &mut dyn Stream) -> std::io::Result<T> {
    let mut b = vec![0u8; T::SIZE];
    s.read_exact(&mut b)?;
    T::decode(&b).ok_or_else(|| bad("a short record"))
}

/// What NBD_OPT_GO told about the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Export {
    size: u64,
    flags: u16,
    /// Minimum block size: requests are aligned to it.
    min_block: u32,
    /// Maximum payload of one request.
    max_request: u32,
}

/// Connect and negotiate; the stream in transmission phase and the export.
fn connect(uri: &NbdUri, timeout: Duration) -> std::io::Result<(Box<dyn Stream>, Export)> {
    let mut s: Box<dyn Stream> = match &uri.address {
        Address::Tcp(host, port) => {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?
                .next()
                .ok_or_else(|| bad(format!("{host} does not resolve")))?;
            let t = TcpStream::connect_timeout(&addr, timeout)?;
            t.set_read_timeout(Some(timeout))?;
            t.set_write_timeout(Some(timeout))?;
            t.set_nodelay(true)?;
            Box::new(t)
        }
        Address::Unix(path) => {
            let u = UnixStream::connect(path)?;
            u.set_read_timeout(Some(timeout))?;
            u.set_write_timeout(Some(timeout))?;
            Box::new(u)
        }
    };
    let greeting: Greeting = read_record(s.as_mut())?;
    if greeting.nbdmagic != NBDMAGIC || greeting.ihaveopt != IHAVEOPT {
        return Err(bad("not an NBD server (no fixed newstyle greeting)"));
    }
    let server_flags = read_record::<HandshakeFlags>(s.as_mut())?.flags;
    if server_flags & NBD_FLAG_FIXED_NEWSTYLE == 0 {
        return Err(bad("the server does not speak fixed newstyle NBD"));
    }
    let mut client_flags = NBD_FLAG_C_FIXED_NEWSTYLE;
    if server_flags & NBD_FLAG_NO_ZEROES != 0 {
        client_flags |= NBD_FLAG_C_NO_ZEROES;
    }
    s.write_all(&client_flags.to_be_bytes())?;
    // NBD_OPT_GO: the export name, and a request for the block size info.
    let name = uri.export.as_bytes();
    let mut data = (name.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(name);
    GoInfoRequests {
        count: 1,
        info: NBD_INFO_BLOCK_SIZE,
    }
    .encode(&mut data);
    let mut opt = OptionRequest {
        ihaveopt: IHAVEOPT,
        option: NBD_OPT_GO,
        length: data.len() as u32,
    }
    .to_bytes();
    opt.extend_from_slice(&data);
    s.write_all(&opt)?;
    let mut export = Export {
        size: 0,
        flags: 0,
        min_block: 1,
        max_request: DEFAULT_MAX_REQUEST,
    };
    let mut have_export = false;
    loop {
        let reply: OptionReply = read_record(s.as_mut())?;
        if reply.magic != REPLY_MAGIC {
            return Err(bad("bad option reply magic"));
        }
        if reply.option != NBD_OPT_GO {
            return Err(bad("an option reply for another option"));
        }
        let (kind, len) = (reply.kind, reply.length);
        if len > MAX_OPTION_REPLY {
            return Err(bad(format!("an option reply of {len} bytes")));
        }
        let mut body = vec![0u8; len as usize];
        s.read_exact(&mut body)?;
        match kind {
            NBD_REP_ACK if have_export => {
                // Offsets are computed as size + a block: a size the server
                // cannot really have, or one that leaves a partial last
                // block, is refused rather than trusted.
                if export.size > i64::MAX as u64
                    || !export.size.is_multiple_of(u64::from(export.min_block))
                {
                    return Err(bad(format!(
                        "an export of {} bytes with {}-byte blocks",
                        export.size, export.min_block
                    )));
                }
                return Ok((s, export));
            }
            NBD_REP_ACK => return Err(bad("the server gave no export information")),
            NBD_REP_INFO => {
                let info = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                match (info, body.len()) {
                    (Some(NBD_INFO_EXPORT), n) if n == InfoExport::SIZE => {
                        let e = InfoExport::decode(&body)
                            .ok_or_else(|| bad("short export information"))?;
                        export.size = e.size;
                        export.flags = e.flags;
                        have_export = true;
                    }
                    (Some(NBD_INFO_BLOCK_SIZE), n) if n == InfoBlockSize::SIZE => {
                        let b = InfoBlockSize::decode(&body)
                            .ok_or_else(|| bad("short block size information"))?;
                        let (min, max) = (b.minimum, b.maximum);
                        if min == 0 || !min.is_power_of_two() || min > 65536 || max < min {
                            return Err(bad(format!("block sizes min {min} max {max}")));
                        }
                        export.min_block = min;
                        // Whole blocks only, so that every request stays aligned.
                        let max = max.min(DEFAULT_MAX_REQUEST).max(min);
                        export.max_request = max - max % min;
                    }
                    (Some(NBD_INFO_EXPORT | NBD_INFO_BLOCK_SIZE), n) => {
                        return Err(bad(format!("an export information of {n} bytes")));
                    }
                    // Other information (name, description) is not needed.
                    _ => {}
                }
            }
            k if k & NBD_REP_FLAG_ERROR != 0 => {
                let msg = String::from_utf8_lossy(&body);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "the server refused export {:?} (error {k:#x}{}{msg})",
                        uri.export,
                        if msg.is_empty() { "" } else { ": " }
                    ),
                ));
            }
            k => return Err(bad(format!("unexpected option reply {k:#x}"))),
        }
    }
}

/// An export of an NBD server as the image.
pub struct NbdBackend {
    uri: NbdUri,
    stream: Option<Box<dyn Stream>>,
    export: Export,
    cookie: u64,
    /// Cookies of writes and flushes sent whose replies are still due.
    pending: Vec<u64>,
    /// Writes were sent that no flush has covered yet: a FUA write would not
    /// make them durable, so the next durable commit flushes.
    unflushed: bool,
    /// Received and not yet consumed: `recv[recv_at..]`.
    recv: Vec<u8>,
    recv_at: usize,
    /// The connection was lost with replies due: the next drain says so.
    lost: bool,
    /// Given up after a hand-over: never reconnect.
    released: bool,
    timeout: Duration,
    /// When a reconnection may next be tried, and the interval after that.
    retry_at: Instant,
    backoff: Duration,
}

impl NbdBackend {
    /// Connect to `uri` and negotiate its export; `timeout` bounds each
    /// network operation. A read-only export is refused for writing.
    pub fn connect(
        uri: &NbdUri,
        timeout: Duration,
        read_only: bool,
    ) -> std::io::Result<NbdBackend> {
        let (stream, export) = connect(uri, timeout).map_err(|e| match e.kind() {
            // A server that takes one client at a time (qemu-nbd, or
            // qemu-storage-daemon with max-connections=1) leaves a second
            // one waiting without a greeting.
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => std::io::Error::new(
                e.kind(),
                "the server sent no handshake: is another client (another vtpm) connected to a server that takes one?",
            ),
            _ => e,
        })?;
        if !read_only && export.flags & NBD_FLAG_READ_ONLY != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{uri}: the export is read-only"),
            ));
        }
        if !read_only
            && export.flags & NBD_FLAG_HAS_FLAGS != 0
            && export.flags & NBD_FLAG_SEND_FLUSH == 0
        {
            // Without FLUSH nothing can be made durable: refuse rather than pretend.
            return Err(std::io::Error::other(format!(
                "{uri}: the export does not accept NBD_CMD_FLUSH, so writes cannot be made durable"
            )));
        }
        Ok(NbdBackend {
            uri: uri.clone(),
            stream: Some(stream),
            export,
            cookie: 0,
            pending: Vec::new(),
            unflushed: false,
            recv: Vec::with_capacity(RECV_BUFFER),
            recv_at: 0,
            lost: false,
            released: false,
            timeout,
            retry_at: Instant::now(),
            backoff: BACKOFF_MIN,
        })
    }

    /// The connection, re-established if it was lost (at most once per
    /// back-off interval; the export must still be the same size).
    fn stream(&mut self) -> std::io::Result<&mut Box<dyn Stream>> {
        if self.stream.is_none() && self.released {
            return Err(std::io::Error::other(format!(
                "{}: the export was handed over: this instance does not use it any more",
                self.uri
            )));
        }
        if self.stream.is_none() {
            let now = Instant::now();
            if now < self.retry_at {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    format!("{}: the NBD server is unreachable (retrying)", self.uri),
                ));
            }
            match connect(&self.uri, self.timeout) {
                Ok((s, e)) if e.size == self.export.size => {
                    log_reconnect(&self.uri);
                    self.set_stream(Some(s));
                    self.export = e;
                    self.backoff = BACKOFF_MIN;
                }
                Ok((_, e)) => {
                    return Err(bad(format!(
                        "{}: the export is now {} bytes, it was {}",
                        self.uri, e.size, self.export.size
                    )))
                }
                Err(e) => {
                    self.retry_at = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    return Err(e);
                }
            }
        }
        self.stream
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }

    /// Send one request; its cookie. Replies are read by [`NbdBackend::drain`].
    fn send(
        &mut self,
        (cmd, flags): (u16, u16),
        offset: u64,
        payload: &[u8],
        length: u32,
    ) -> std::io::Result<u64> {
        let mut req = Vec::with_capacity(Request::SIZE + payload.len());
        let cookie = self.encode_request(&mut req, (cmd, flags), offset, payload, length);
        self.transmit(&req)?;
        Ok(cookie)
    }

    /// Append one request to `out`; its cookie.
    fn encode_request(
        &mut self,
        out: &mut Vec<u8>,
        (cmd, flags): (u16, u16),
        offset: u64,
        payload: &[u8],
        length: u32,
    ) -> u64 {
        self.cookie = self.cookie.wrapping_add(1);
        Request {
            magic: REQUEST_MAGIC,
            flags,
            kind: cmd,
            cookie: self.cookie,
            offset,
            length,
        }
        .encode(out);
        out.extend_from_slice(payload);
        self.cookie
    }

    /// Send encoded requests; a failure forgets the connection.
    fn transmit(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let r = self.stream().and_then(|s| s.write_all(bytes));
        if r.is_err() {
            self.drop_connection();
        }
        r
    }

    /// Replace the connection (or forget it); what was received on the old
    /// one and not consumed goes with it.
    fn set_stream(&mut self, stream: Option<Box<dyn Stream>>) {
        self.stream = stream;
        self.recv.clear();
        self.recv_at = 0;
    }

    /// Fill `dst` from the connection through the receive buffer: one `read`
    /// takes whatever has arrived, so replies that came together cost one
    /// system call.
    fn recv_exact(&mut self, dst: &mut [u8]) -> std::io::Result<()> {
        let mut got = 0;
        while got < dst.len() {
            if self.recv_at < self.recv.len() {
                let n = (self.recv.len() - self.recv_at).min(dst.len() - got);
                dst[got..got + n].copy_from_slice(&self.recv[self.recv_at..self.recv_at + n]);
                self.recv_at += n;
                got += n;
                continue;
            }
            let s = self
                .stream
                .as_mut()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
            let direct = dst.len() - got >= RECV_BUFFER;
            self.recv_at = 0;
            let r = if direct {
                s.read(&mut dst[got..])
            } else {
                self.recv.resize(RECV_BUFFER, 0);
                s.read(&mut self.recv)
            };
            let n = match r {
                Ok(n) if n > 0 => n,
                Ok(_) => {
                    self.recv.clear();
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                Err(e) => {
                    self.recv.clear();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
            };
            if direct {
                self.recv.clear();
                got += n;
            } else {
                self.recv.truncate(n);
            }
        }
        Ok(())
    }

    /// Forget the connection (it may be mid-message); requests whose replies
    /// were still due are lost, which the next drain reports.
    fn drop_connection(&mut self) {
        let had = self.stream.is_some();
        self.set_stream(None);
        if had && !self.pending.is_empty() {
            self.pending.clear();
            self.lost = true;
        }
    }

    /// Read the replies of every request in flight (writes and flushes are
    /// pipelined: sent at once, their replies read here), and of `read`'s
    /// request into its buffer. The first error is returned after every reply
    /// was read, so the connection stays in step.
    fn drain(&mut self, mut read: Option<(u64, &mut [u8])>) -> std::io::Result<()> {
        if std::mem::take(&mut self.lost) {
            return Err(std::io::Error::other(
                "the connection to the NBD server was lost with writes in flight",
            ));
        }
        let mut first_error = None;
        while !self.pending.is_empty() || read.is_some() {
            let r = (|| -> std::io::Result<(u64, u32)> {
                let mut b = [0u8; SimpleReply::SIZE];
                self.recv_exact(&mut b)?;
                let reply = SimpleReply::decode(&b).ok_or_else(|| bad("a short record"))?;
                if reply.magic != SIMPLE_REPLY_MAGIC {
                    return Err(bad("bad reply magic"));
                }
                Ok((reply.cookie, reply.error))
            })();
            let (cookie, error) = match r {
                Ok(v) => v,
                Err(e) => {
                    self.pending.clear();
                    self.set_stream(None);
                    return Err(e);
                }
            };
            if let Some(i) = self.pending.iter().position(|&c| c == cookie) {
                self.pending.swap_remove(i);
            } else if read.as_ref().is_some_and(|(c, _)| *c == cookie) {
                if let Some((_, buf)) = read.take() {
                    if error == 0 {
                        if let Err(e) = self.recv_exact(buf) {
                            self.pending.clear();
                            self.set_stream(None);
                            return Err(e);
                        }
                    }
                }
            } else {
                self.pending.clear();
                self.set_stream(None);
                return Err(bad("a reply to no request in flight"));
            }
            if error != 0 && first_error.is_none() {
                first_error = Some(std::io::Error::other(format!(
                    "the server answered error {error}"
                )));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn check_range(&self, off: u64, len: usize) -> std::io::Result<()> {
        match off.checked_add(len as u64) {
            Some(end) if end <= self.export.size => Ok(()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "beyond the end of the export",
            )),
        }
    }

    /// Split `[off, off+len)` into requests of at most the export's maximum.
    fn chunks(&self, off: u64, len: usize) -> impl Iterator<Item = (u64, usize)> {
        let max = self.export.max_request as usize;
        (0..len)
            .step_by(max.max(1))
            .map(move |i| (off + i as u64, max.min(len - i)))
    }

    /// Add the write requests of `data` at `off` with command `flags` to
    /// `out` (their cookies to `pending`: the caller transmits `out`);
    /// partial blocks are read, patched and written whole (what `out` holds
    /// is sent first, so that the read's drain finds those replies coming).
    fn queue_write(
        &mut self,
        out: &mut Vec<u8>,
        (off, data): (u64, &[u8]),
        flags: u16,
    ) -> std::io::Result<()> {
        let b = u64::from(self.export.min_block);
        let (start, end) = (off / b * b, (off + data.len() as u64).div_ceil(b) * b);
        let patched;
        let whole = if start == off && end == off + data.len() as u64 {
            data
        } else {
            if !out.is_empty() {
                self.transmit(&std::mem::take(out))?;
            }
            let mut w = vec![0u8; (end - start) as usize];
            self.read_aligned(start, &mut w)?;
            let at = (off - start) as usize;
            w[at..at + data.len()].copy_from_slice(data);
            patched = w;
            &patched[..]
        };
        let chunks: Vec<_> = self.chunks(start, whole.len()).collect();
        for (o, n) in chunks {
            let i = (o - start) as usize;
            let cookie =
                self.encode_request(out, (NBD_CMD_WRITE, flags), o, &whole[i..i + n], n as u32);
            self.pending.push(cookie);
        }
        Ok(())
    }

    /// Send `writes` (with command `flags`) in one transmission.
    fn send_writes(&mut self, writes: &[(u64, &[u8])], flags: u16) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(writes.iter().map(|w| Request::SIZE + w.1.len()).sum());
        for &w in writes {
            self.queue_write(&mut out, w, flags)?;
        }
        self.transmit(&out)
    }

    /// Read aligned to the minimum block size (writes in flight are settled first).
    fn read_aligned(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.drain(None)?;
        let chunks: Vec<_> = self.chunks(off, buf.len()).collect();
        for (o, n) in chunks {
            let start = (o - off) as usize;
            let cookie = self.send((NBD_CMD_READ, 0), o, &[], n as u32)?;
            self.drain(Some((cookie, &mut buf[start..start + n])))?;
        }
        Ok(())
    }
}

fn log_reconnect(uri: &NbdUri) {
    // Worth a warning: writes failed while the server was away.
    log::warn!("{uri}: reconnected to the NBD server");
}

impl Backend for NbdBackend {
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.check_range(off, buf.len())?;
        let b = u64::from(self.export.min_block);
        let (start, end) = (off / b * b, (off + buf.len() as u64).div_ceil(b) * b);
        if start == off && end == off + buf.len() as u64 {
            return self.read_aligned(off, buf);
        }
        let mut whole = vec![0u8; (end - start) as usize];
        self.read_aligned(start, &mut whole)?;
        let at = (off - start) as usize;
        buf.copy_from_slice(&whole[at..at + buf.len()]);
        Ok(())
    }

    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.check_range(off, data.len())?;
        self.unflushed = true;
        // Writes are pipelined: their replies are read together at the flush
        // (or the next read), so a commit costs one round trip for its
        // writes and one for the flush that must follow their replies. A
        // failed write fails that flush.
        self.send_writes(&[(off, data)], 0)?;
        // Bounded: a relaxed NVRAM flushes rarely.
        if self.pending.len() >= 64 {
            self.drain(None)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // A flush covers only the writes the server has completed (replied
        // to) before it processes the flush: a server runs requests
        // concurrently (qemu's does), so a flush sent behind writes still in
        // flight may persist without them. Their replies first, then the flush.
        self.drain(None)?;
        let cookie = self.send((NBD_CMD_FLUSH, 0), 0, &[], 0)?;
        self.pending.push(cookie);
        self.drain(None)?;
        self.unflushed = false;
        Ok(())
    }

    fn write_durable(&mut self, writes: &[(u64, &[u8])]) -> std::io::Result<()> {
        // FUA only for a lone write: qemu's server turns each FUA write into
        // a write and a flush of the image, and two flushes cost more than
        // the round trip FUA saves (two FUA writes 418-534 us against writes,
        // replies, FLUSH 361-469 us, qemu-storage-daemon on a qcow2).
        let fua = self.export.flags & NBD_FLAG_HAS_FLAGS != 0
            && self.export.flags & NBD_FLAG_SEND_FUA != 0
            && !self.unflushed
            && writes.len() == 1;
        for (off, data) in writes {
            self.check_range(*off, data.len())?;
        }
        // All the writes go in one transmission (one system call, and the
        // server finds them together). Until every reply is in, what was
        // sent may be stored undurably.
        self.unflushed = true;
        self.send_writes(writes, if fua { NBD_CMD_FLAG_FUA } else { 0 })?;
        if !fua {
            return self.flush();
        }
        // Durable when its reply comes (FUA): one round trip for the commit.
        self.drain(None)?;
        self.unflushed = false;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.export.size
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(self.uri.to_string())
    }

    fn release(&mut self) -> std::io::Result<()> {
        // Everything was flushed before (the NVRAM syncs first); a reply
        // still due cannot change that.
        let _ = self.drain(None);
        self.disconnect();
        self.released = true;
        Ok(())
    }
}

impl NbdBackend {
    /// NBD_CMD_DISC (no reply is sent) and close the connection.
    fn disconnect(&mut self) {
        let stream = self.stream.take();
        self.set_stream(None);
        if let Some(mut s) = stream {
            let req = Request {
                magic: REQUEST_MAGIC,
                kind: NBD_CMD_DISC,
                ..Request::default()
            };
            let _ = s.write_all(&req.to_bytes());
        }
    }
}

impl Drop for NbdBackend {
    fn drop(&mut self) {
        let _ = self.drain(None);
        self.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            NbdUri::parse("nbd+unix:///tpm?socket=/run/q.sock").unwrap(),
            NbdUri {
                address: Address::Unix("/run/q.sock".into()),
                export: "tpm".into()
            }
        );
        assert_eq!(
            NbdUri::parse("nbd://localhost/exp").unwrap().address,
            Address::Tcp("localhost".into(), 10809)
        );
        assert_eq!(
            NbdUri::parse("nbd://[::1]:1234/e").unwrap().address,
            Address::Tcp("::1".into(), 1234)
        );
        assert_eq!(NbdUri::parse("nbd://h:1/").unwrap().export, "");
        for bad in [
            "nbd://",
            "nbd://h:x/e",
            "nbd+unix:///e",
            "nbd+unix://h/e?socket=s",
            "file:///x",
        ] {
            assert!(NbdUri::parse(bad).is_err(), "{bad}");
        }
        let u = NbdUri::parse("nbd://[::1]:1234/e").unwrap();
        assert_eq!(NbdUri::parse(&u.to_string()).unwrap(), u);
    }

    /// A fake server that sends `greeting` and reads whatever comes.
    fn fake(greeting: Vec<u8>) -> NbdUri {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("s");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = l.accept() {
                let _ = c.write_all(&greeting);
                let mut sink = [0u8; 4096];
                while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
            }
        });
        NbdUri {
            address: Address::Unix(path),
            export: "x".into(),
        }
    }

    /// An in-memory export of `size` bytes with transmission `flags` that
    /// answers every request and reports each one's (kind, flags).
    fn recording(size: u64, flags: u16) -> (NbdUri, std::sync::mpsc::Receiver<(u16, u16)>) {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("s");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || -> std::io::Result<()> {
            let (mut c, _) = l.accept()?;
            let mut hello = NBDMAGIC.to_be_bytes().to_vec();
            hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
            hello.extend_from_slice(&NBD_FLAG_FIXED_NEWSTYLE.to_be_bytes());
            c.write_all(&hello)?;
            let mut client_flags = [0u8; 4];
            c.read_exact(&mut client_flags)?;
            let opt: OptionRequest = read_record(&mut c)?;
            std::io::copy(
                &mut (&mut c).take(u64::from(opt.length)),
                &mut std::io::sink(),
            )?;
            let mut info = NBD_INFO_EXPORT.to_be_bytes().to_vec();
            info.extend_from_slice(&size.to_be_bytes());
            info.extend_from_slice(&(NBD_FLAG_HAS_FLAGS | flags).to_be_bytes());
            for (kind, body) in [(NBD_REP_INFO, info), (NBD_REP_ACK, vec![])] {
                let mut r = REPLY_MAGIC.to_be_bytes().to_vec();
                r.extend_from_slice(&NBD_OPT_GO.to_be_bytes());
                r.extend_from_slice(&kind.to_be_bytes());
                r.extend_from_slice(&(body.len() as u32).to_be_bytes());
                r.extend_from_slice(&body);
                c.write_all(&r)?;
            }
            let mut disk = vec![0u8; size as usize];
            loop {
                let q: Request = read_record(&mut c)?;
                let _ = tx.send((q.kind, q.flags));
                let range = q.offset as usize..q.offset as usize + q.length as usize;
                let mut reply = SIMPLE_REPLY_MAGIC.to_be_bytes().to_vec();
                reply.extend_from_slice(&0u32.to_be_bytes());
                reply.extend_from_slice(&q.cookie.to_be_bytes());
                match q.kind {
                    NBD_CMD_WRITE => c.read_exact(&mut disk[range])?,
                    NBD_CMD_READ => reply.extend_from_slice(&disk[range]),
                    NBD_CMD_DISC => return Ok(()),
                    _ => {}
                }
                c.write_all(&reply)?;
            }
        });
        let uri = NbdUri {
            address: Address::Unix(path),
            export: "x".into(),
        };
        (uri, rx)
    }

    #[test]
    fn a_lone_durable_write_uses_fua_where_offered_and_others_flush() {
        let t = Duration::from_secs(5);
        let fua_write = (NBD_CMD_WRITE, NBD_CMD_FLAG_FUA);
        let (write, flush) = ((NBD_CMD_WRITE, 0), (NBD_CMD_FLUSH, 0));
        let lone: [(u64, &[u8]); 1] = [(512, b"header")];
        let two: [(u64, &[u8]); 2] = [(1024, b"record"), (4096, b"copy")];
        let requests = |rx: &std::sync::mpsc::Receiver<_>| rx.try_iter().collect::<Vec<_>>();

        let (uri, seen) = recording(65536, NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
        let mut be = NbdBackend::connect(&uri, t, false).unwrap();
        be.write_durable(&lone).unwrap();
        assert_eq!(requests(&seen), [fua_write]);
        // Two writes: their replies, then one FLUSH (cheaper than two FUAs).
        be.write_durable(&two).unwrap();
        assert_eq!(requests(&seen), [write, write, flush]);
        // A plain write not yet flushed: a FUA write would not cover it.
        be.write_at(0, b"relaxed").unwrap();
        be.write_durable(&lone).unwrap();
        assert_eq!(requests(&seen), [write, write, flush]);
        let mut back = [0u8; 6];
        be.read_at(512, &mut back).unwrap();
        assert_eq!(&back, b"header");

        let (uri, seen) = recording(65536, NBD_FLAG_SEND_FLUSH);
        let mut be = NbdBackend::connect(&uri, t, false).unwrap();
        be.write_durable(&lone).unwrap();
        assert_eq!(requests(&seen), [write, flush]);
    }

    #[test]
    fn hostile_servers_are_errors() {
        let t = Duration::from_secs(2);
        let hello = [
            &NBDMAGIC.to_be_bytes()[..],
            &IHAVEOPT.to_be_bytes(),
            &3u16.to_be_bytes(),
        ]
        .concat();
        // Not NBD; old style; a huge option reply; a short greeting.
        let huge = [
            &hello[..],
            &REPLY_MAGIC.to_be_bytes(),
            &NBD_OPT_GO.to_be_bytes(),
            &NBD_REP_INFO.to_be_bytes(),
            &u32::MAX.to_be_bytes(),
        ]
        .concat();
        let refused = [
            &hello[..],
            &REPLY_MAGIC.to_be_bytes(),
            &NBD_OPT_GO.to_be_bytes(),
            &(NBD_REP_FLAG_ERROR | 6).to_be_bytes(),
            &0u32.to_be_bytes(),
        ]
        .concat();
        // An export "of" u64::MAX bytes.
        let huge_export = [
            &hello[..],
            &REPLY_MAGIC.to_be_bytes(),
            &NBD_OPT_GO.to_be_bytes(),
            &NBD_REP_INFO.to_be_bytes(),
            &12u32.to_be_bytes(),
            &NBD_INFO_EXPORT.to_be_bytes(),
            &u64::MAX.to_be_bytes(),
            &(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH).to_be_bytes(),
            &REPLY_MAGIC.to_be_bytes(),
            &NBD_OPT_GO.to_be_bytes(),
            &NBD_REP_ACK.to_be_bytes(),
            &0u32.to_be_bytes(),
        ]
        .concat();
        for (g, what) in [
            (huge_export, "an export of"),
            (b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), "not an NBD server"),
            (
                [
                    &NBDMAGIC.to_be_bytes()[..],
                    &0x0000_4202_8186_1253_u64.to_be_bytes(),
                ]
                .concat(),
                "not an NBD server",
            ),
            (huge, "option reply of"),
            (refused, "refused export"),
            (hello[..10].to_vec(), ""),
        ] {
            let e = NbdBackend::connect(&fake(g), t, false)
                .err()
                .expect("refused");
            assert!(e.to_string().contains(what), "{e}");
        }
    }
}
