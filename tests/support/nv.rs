//! A raw NV counter over one data connection, for the crash tests: define,
//! increment and read it with empty password sessions, and a small seeded
//! generator for kill timings.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::corpus::{command, pw_area, SESSIONS};

pub const CC_NV_DEFINE_SPACE: u32 = 0x12A;
pub const CC_NV_INCREMENT: u32 = 0x134;
pub const CC_NV_READ: u32 = 0x14E;
pub const RH_OWNER: u32 = 0x4000_0001;
pub const INDEX: u32 = 0x0100_0010;
/// TPM_NT_COUNTER | AUTHWRITE | AUTHREAD | NO_DA.
pub const COUNTER_ATTRS: u32 = 0x10 | 0x4 | 0x4_0000 | 0x0200_0000;
/// TPMA_NV_ORDERLY.
pub const ORDERLY: u32 = 0x0400_0000;

/// One command on a persistent connection; an error once vtpm is gone.
pub fn xfer(s: &mut TcpStream, cmd: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(cmd)?;
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr)?;
    let size = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
    let mut rest = vec![0u8; size.saturating_sub(10)];
    s.read_exact(&mut rest)?;
    Ok([hdr.to_vec(), rest].concat())
}

pub fn rc(resp: &[u8]) -> u32 {
    u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]])
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to vtpm");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_nodelay(true).ok();
    s
}

/// Handles, an empty password session, then parameters.
pub fn authorized(cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    let mut body: Vec<u8> = handles.iter().flat_map(|h| h.to_be_bytes()).collect();
    body.extend(pw_area());
    body.extend_from_slice(params);
    command(SESSIONS, cc, &body)
}

pub fn define_counter(attrs: u32) -> Vec<u8> {
    let mut public = INDEX.to_be_bytes().to_vec();
    public.extend(0x000Bu16.to_be_bytes()); // nameAlg SHA-256
    public.extend(attrs.to_be_bytes());
    public.extend(0u16.to_be_bytes()); // authPolicy
    public.extend(8u16.to_be_bytes()); // dataSize
    let mut params = 0u16.to_be_bytes().to_vec(); // auth
    params.extend((public.len() as u16).to_be_bytes());
    params.extend(public);
    authorized(CC_NV_DEFINE_SPACE, &[RH_OWNER], &params)
}

/// The counter's value (NV_Read of 8 bytes, authorized by the index).
pub fn read_counter(s: &mut TcpStream) -> u64 {
    try_read_counter(s).unwrap_or_else(|rc| panic!("NV_Read answered {rc:#x}"))
}

/// The counter's value, or the response code of a failed NV_Read (0 when
/// the connection failed).
pub fn try_read_counter(s: &mut TcpStream) -> Result<u64, u32> {
    let mut params = 8u16.to_be_bytes().to_vec();
    params.extend(0u16.to_be_bytes());
    let r = xfer(s, &authorized(CC_NV_READ, &[INDEX, INDEX], &params)).map_err(|_| 0u32)?;
    if rc(&r) != 0 {
        return Err(rc(&r));
    }
    // header, parameterSize, TPM2B size
    Ok(u64::from_be_bytes(r[16..24].try_into().map_err(|_| 0u32)?))
}

/// NV_Increment of the counter.
pub fn increment() -> Vec<u8> {
    authorized(CC_NV_INCREMENT, &[INDEX, INDEX], &[])
}

/// A small xorshift generator: the test prints its seed so a failure can be replayed.
pub struct Rng(pub u64);
impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
