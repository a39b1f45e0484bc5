//! Reading one TPM command from a byte stream, raw or in the simulator
//! framing, and building the small TPM responses the transport answers itself.

use std::io::{self, Read};

use crate::wire::Wire;

/// Simulator command code that announces a framed TPM command (`TPM_SEND_COMMAND`).
pub const TPM_SEND_COMMAND: u32 = 8;
/// Size of a TPM 2.0 command/response header: tag u16, size u32, code u32.
pub const TPM_HEADER_SIZE: usize = 10;
/// TPM_ST_NO_SESSIONS, the tag of every response the transport builds.
pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
/// TPM_RC_SUCCESS.
pub const TPM_RC_SUCCESS: u32 = 0;
/// TPM_RC_FAILURE (RC_VER1 + 0x001): the TPM is not accepting commands.
pub const TPM_RC_FAILURE: u32 = 0x101;
/// TPM_RC_COMMAND_SIZE (RC_VER1 + 0x042): size field and octets received disagree.
pub const TPM_RC_COMMAND_SIZE: u32 = 0x142;
/// TPM_RC_LOCALITY (RC_WARN + 0x007).
pub const TPM_RC_LOCALITY: u32 = 0x907;
/// TPM_RC_INSUFFICIENT (RC_FMT1 + 0x01A): not enough octets to unmarshal.
pub const TPM_RC_INSUFFICIENT: u32 = 0x09A;
/// The vendor command the Linux vTPM proxy uses to set the locality in band
/// (swtpm's TPM2_CC_SET_LOCALITY); honoured only with `allow_set_locality`.
pub const TPM2_CC_SET_LOCALITY: u32 = 0x2000_1000;

crate::wire! {
    /// The part of a simulator frame after the `TPM_SEND_COMMAND` code.
    pub struct SimCommandHdr { pub locality: u8, pub length: u32 }
}

crate::wire! {
    /// A TPM 2.0 command or response header.
    pub struct TpmHeader { pub tag: u16, pub size: u32, pub code: u32 }
}

/// A 10-byte TPM 2.0 response carrying only a response code.
pub fn tpm_error_response(rc: u32) -> Vec<u8> {
    TpmHeader {
        tag: TPM_ST_NO_SESSIONS,
        size: TPM_HEADER_SIZE as u32,
        code: rc,
    }
    .to_bytes()
}

/// Wrap a response in the simulator framing: u32 length, response, u32 0.
pub fn sim_response(resp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(resp.len() + 8);
    out.extend_from_slice(&(resp.len() as u32).to_be_bytes());
    out.extend_from_slice(resp);
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

/// Check that `cmd` is one whole TPM command: a header and a size field equal
/// to its length. Returns the response code to answer with otherwise.
pub fn check_command(cmd: &[u8]) -> Result<TpmHeader, u32> {
    let hdr = TpmHeader::decode(cmd).ok_or(TPM_RC_COMMAND_SIZE)?;
    if hdr.size as usize != cmd.len() {
        return Err(TPM_RC_COMMAND_SIZE);
    }
    Ok(hdr)
}

/// One command read from a data stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A bare TPM command (its header's size field told where it ends).
    Raw(Vec<u8>),
    /// A command in the simulator framing; answer with [`sim_response`].
    Sim {
        /// The locality byte of the frame.
        locality: u8,
        /// The command bytes (not yet validated as a TPM command).
        command: Vec<u8>,
    },
}

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended inside a frame.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The announced size is below a header or above the buffer size. The
    /// stream cannot be resynchronised: answer TPM_RC_COMMAND_SIZE and close.
    #[error("command size {size} out of range")]
    BadSize {
        /// The size announced.
        size: u32,
        /// Whether the frame was in the simulator framing.
        sim: bool,
    },
    /// The client ended its side of the stream after a whole header but
    /// before the octets the size field announced. Its read side may still be
    /// open: answer TPM_RC_COMMAND_SIZE (as swtpm does) and close.
    #[error("stream ended {missing} octets short of a {size}-octet command")]
    Truncated {
        /// The size announced.
        size: u32,
        /// Octets that never came.
        missing: usize,
    },
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
pub fn read_fill<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read exactly `buf.len()` bytes; a clean end before the first byte gives `Ok(false)`.
pub fn read_or_eof<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match read_fill(r, buf)? {
        0 if !buf.is_empty() => Ok(false),
        n if n == buf.len() => Ok(true),
        _ => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Read a big-endian u32; `None` at a clean end of stream.
pub fn read_u32<R: Read + ?Sized>(r: &mut R) -> io::Result<Option<u32>> {
    let mut b = [0u8; 4];
    Ok(read_or_eof(r, &mut b)?.then(|| u32::from_be_bytes(b)))
}

/// Read `len` bytes into a new vector; the caller has bounded `len`.
pub fn read_vec<R: Read + ?Sized>(r: &mut R, len: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// Read the rest of a simulator frame after its `TPM_SEND_COMMAND` code.
/// `max` bounds the command length (and so the allocation).
pub fn read_sim_body<R: Read + ?Sized>(r: &mut R, max: usize) -> Result<(u8, Vec<u8>), FrameError> {
    let mut h = [0u8; SimCommandHdr::SIZE];
    r.read_exact(&mut h)?;
    let hdr = SimCommandHdr::decode(&h).ok_or(io::Error::from(io::ErrorKind::InvalidData))?;
    if !sim_length_ok(hdr.length, max) {
        return Err(FrameError::BadSize {
            size: hdr.length,
            sim: true,
        });
    }
    Ok((hdr.locality, read_vec(r, hdr.length as usize)?))
}

/// Whether a raw command's size field is one a frame may have.
fn raw_size_ok(size: u32, max: usize) -> bool {
    (TPM_HEADER_SIZE..=max).contains(&(size as usize))
}

/// Whether a simulator frame's command length is one it may have.
fn sim_length_ok(length: u32, max: usize) -> bool {
    length as usize <= max
}

/// Whether `input` is the start of a frame (raw, or simulator-framed when it
/// starts with `TPM_SEND_COMMAND`) that has not fully arrived: its header is
/// incomplete, or announces a size within `max` that is not all here. The
/// callers then wait for more without parsing, so a command that arrives in
/// many pieces is not copied again for each. A size out of range is not
/// "incomplete": the parser answers it.
pub fn frame_incomplete(input: &[u8], max: usize) -> bool {
    let sim = input.get(..4) == Some(&TPM_SEND_COMMAND.to_be_bytes()[..]);
    let whole = if sim {
        match input
            .get(4..4 + SimCommandHdr::SIZE)
            .and_then(SimCommandHdr::decode)
        {
            Some(h) if sim_length_ok(h.length, max) => 4 + SimCommandHdr::SIZE + h.length as usize,
            Some(_) => return false,
            None => return true,
        }
    } else {
        match input.get(..TPM_HEADER_SIZE).and_then(TpmHeader::decode) {
            Some(h) if raw_size_ok(h.size, max) => h.size as usize,
            Some(_) => return false,
            None => return true,
        }
    };
    input.len() < whole
}

/// Read one command from a swtpm data channel: a raw TPM command, or one in
/// the simulator framing when the first u32 is `TPM_SEND_COMMAND` (a TPM 2.0
/// tag is 0x8001/0x8002, so the two cannot be confused). `Ok(None)` at a
/// clean end of stream between commands.
pub fn read_data_frame<R: Read + ?Sized>(
    r: &mut R,
    max: usize,
) -> Result<Option<Frame>, FrameError> {
    let mut first = [0u8; 4];
    if !read_or_eof(r, &mut first)? {
        return Ok(None);
    }
    if u32::from_be_bytes(first) == TPM_SEND_COMMAND {
        let (locality, command) = read_sim_body(r, max)?;
        return Ok(Some(Frame::Sim { locality, command }));
    }
    let mut hdr = [0u8; TPM_HEADER_SIZE];
    hdr[..4].copy_from_slice(&first);
    r.read_exact(&mut hdr[4..])?;
    let size = TpmHeader::decode(&hdr).map(|h| h.size).unwrap_or(0);
    if !raw_size_ok(size, max) {
        return Err(FrameError::BadSize { size, sim: false });
    }
    let mut cmd = Vec::with_capacity(size as usize);
    cmd.extend_from_slice(&hdr);
    cmd.resize(size as usize, 0);
    let got = read_fill(r, &mut cmd[TPM_HEADER_SIZE..])?;
    let missing = size as usize - TPM_HEADER_SIZE - got;
    if missing > 0 {
        return Err(FrameError::Truncated { size, missing });
    }
    Ok(Some(Frame::Raw(cmd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut v = TpmHeader {
            tag: 0x8001,
            size: (10 + extra.len()) as u32,
            code,
        }
        .to_bytes();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn incomplete_frames_are_told_without_parsing() {
        let c = cmd(0x17b, &[0, 8]);
        for n in 0..c.len() {
            assert!(frame_incomplete(&c[..n], 4096), "{n} octets");
        }
        assert!(!frame_incomplete(&c, 4096));
        let mut sim = TPM_SEND_COMMAND.to_be_bytes().to_vec();
        sim.push(0);
        sim.extend_from_slice(&(c.len() as u32).to_be_bytes());
        sim.extend_from_slice(&c);
        for n in 0..sim.len() {
            assert!(frame_incomplete(&sim[..n], 4096), "sim {n} octets");
        }
        assert!(!frame_incomplete(&sim, 4096));
        // Sizes out of range are for the parser to answer.
        assert!(!frame_incomplete(&c[..10], 11));
        assert!(!frame_incomplete(&sim[..9], 11));
        let tiny = TpmHeader {
            tag: 0x8001,
            size: 3,
            code: 0x17b,
        }
        .to_bytes();
        assert!(!frame_incomplete(&tiny, 4096));
    }

    #[test]
    fn raw_frames_back_to_back() {
        let mut s = cmd(0x17b, &[0, 8]);
        s.extend(cmd(0x144, &[]));
        let mut r = &s[..];
        assert_eq!(
            read_data_frame(&mut r, 4096).unwrap(),
            Some(Frame::Raw(cmd(0x17b, &[0, 8])))
        );
        assert_eq!(
            read_data_frame(&mut r, 4096).unwrap(),
            Some(Frame::Raw(cmd(0x144, &[])))
        );
        assert_eq!(read_data_frame(&mut r, 4096).unwrap(), None);
    }

    #[test]
    fn sim_frame() {
        let c = cmd(0x17b, &[0, 8]);
        let mut s = vec![0, 0, 0, 8, 3];
        s.extend_from_slice(&(c.len() as u32).to_be_bytes());
        s.extend_from_slice(&c);
        let mut r = &s[..];
        assert_eq!(
            read_data_frame(&mut r, 4096).unwrap(),
            Some(Frame::Sim {
                locality: 3,
                command: c
            })
        );
    }

    #[test]
    fn bad_sizes() {
        let mut small = cmd(0x17b, &[]);
        small[5] = 9;
        assert!(matches!(
            read_data_frame(&mut &small[..], 4096),
            Err(FrameError::BadSize {
                size: 9,
                sim: false
            })
        ));
        let mut big = cmd(0x17b, &[]);
        big[2..6].copy_from_slice(&0xffff_ffffu32.to_be_bytes());
        assert!(matches!(
            read_data_frame(&mut &big[..], 4096),
            Err(FrameError::BadSize { sim: false, .. })
        ));
        let sim = [0u8, 0, 0, 8, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_data_frame(&mut &sim[..], 4096),
            Err(FrameError::BadSize { sim: true, .. })
        ));
    }

    #[test]
    fn truncated_header_is_io_error_truncated_body_is_answered() {
        let c = cmd(0x17b, &[0, 8]);
        assert!(matches!(
            read_data_frame(&mut &c[..7], 4096),
            Err(FrameError::Io(_))
        ));
        assert!(matches!(
            read_data_frame(&mut &c[..11], 4096),
            Err(FrameError::Truncated {
                size: 12,
                missing: 1
            })
        ));
        assert!(matches!(
            read_data_frame(&mut &c[..2], 4096),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn responses() {
        assert_eq!(
            tpm_error_response(TPM_RC_COMMAND_SIZE),
            [0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x42]
        );
        assert_eq!(sim_response(&[1, 2]), [0, 0, 0, 2, 1, 2, 0, 0, 0, 0]);
        assert_eq!(check_command(&cmd(1, &[1])).map(|h| h.code), Ok(1));
        let mut bad = cmd(1, &[1]);
        bad.pop();
        assert_eq!(check_command(&bad), Err(TPM_RC_COMMAND_SIZE));
        assert_eq!(check_command(&[0x80, 1]), Err(TPM_RC_COMMAND_SIZE));
    }
}
