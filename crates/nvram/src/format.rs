//! The on-disk layout (docs/nvram-format.md): two header slots, two log
//! regions, checksummed records grouped into committed batches.

use std::borrow::Cow;

/// Size of one header slot; two slots precede the regions.
pub const SLOT_SIZE: u64 = 4096;
/// Where the first region starts.
pub const REGIONS_START: u64 = 2 * SLOT_SIZE;
/// Smallest image accepted.
pub const MIN_IMAGE: u64 = 64 * 1024;
/// Image magic.
pub const MAGIC: &[u8; 8] = b"VTPMNVR1";
/// Format version written: 3 writes every batch and its copy as one request
/// (see [`Layout`]).
pub const VERSION: u32 = 3;
/// The second format: a mirror copy of the log half a region further on.
/// Still read; upgraded to [`VERSION`] by the first write (a compaction).
pub const VERSION_2: u32 = 2;
/// The first format: one copy of each record. Still read; upgraded to
/// [`VERSION`] by the first write (a compaction).
pub const VERSION_1: u32 = 1;
/// The unit damage is assumed to hit (a sector, or a 4 KiB block): the two
/// copies of a record never share one.
pub const BLOCK: u64 = 4096;
/// Header flag: records are encrypted.
pub const FLAG_ENCRYPTED: u32 = 1;
/// Largest region a new image gets (a block device larger than two of them
/// leaves the rest unused).
pub const MAX_REGION: u64 = 64 * 1024 * 1024;
/// Largest argon2id memory cost accepted from a header (KiB): 1 GiB.
pub const MAX_ARGON2_M: u32 = 1 << 20;
/// Largest argon2id iteration count accepted from a header.
pub const MAX_ARGON2_T: u32 = 64;
/// Largest argon2id parallelism accepted from a header.
pub const MAX_ARGON2_P: u32 = 16;
/// Record flag: the payload is AES-256-GCM sealed.
pub const REC_ENCRYPTED: u8 = 1;
/// Record flag: the batch was written without a flush behind it (relaxed
/// mode), so a later batch may reach the disk before it.
pub const REC_UNFLUSHED: u8 = 2;
/// Record magic.
pub const REC_MAGIC: u16 = 0x5242;
/// Record header size: magic 2, kind 1, flags 1, epoch 8, seq 8, len 4, crc 4.
pub const REC_HDR: usize = 28;
/// Record trailer: payload crc.
pub const REC_TRAILER: usize = 4;
/// Largest payload a record may announce (bounds allocations on hostile images).
pub const MAX_PAYLOAD: u32 = 64 * 1024 * 1024;

/// Record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A blob's new contents.
    Put = 1,
    /// A blob removed.
    Delete = 2,
    /// End of a batch: the batch counts only with its commit.
    Commit = 3,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Put),
            2 => Some(Kind::Delete),
            3 => Some(Kind::Commit),
            _ => None,
        }
    }
}

/// How the encryption key is derived (kept in the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// Not encrypted.
    None,
    /// The key is 32 raw bytes.
    Raw,
    /// argon2id over a passphrase with the header's salt and costs.
    Argon2id {
        /// Memory cost in KiB.
        m_cost: u32,
        /// Iterations.
        t_cost: u32,
        /// Parallelism.
        p_cost: u32,
    },
}

/// The region size a new image of `size` bytes gets: half of what follows
/// the header slots, a whole number of 8 KiB (so a format 2 log and its copy
/// are whole 4 KiB blocks), capped (a large block device gets a bounded log:
/// recovery reads it all).
pub fn region_size_for(size: u64) -> u64 {
    ((size.saturating_sub(REGIONS_START) / 2) & !(2 * SLOT_SIZE - 1)).min(MAX_REGION)
}

/// Where the copy of each record lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyAt {
    /// No copy (format 1).
    None,
    /// A fixed distance further on: the log fills the first half of the
    /// region, its byte-for-byte copy the second (format 2).
    Mirror(u64),
    /// Right behind its batch: a batch is padded with zeros to whole
    /// [`BLOCK`]s and followed by its copy, padded the same way, so the
    /// two copies go to the image in one write (format 3).
    Next,
}

/// Where the log of a region lies: from the region start up to `capacity`,
/// and where each record's copy is. Whatever the format, no sector and no
/// 4 KiB block holds both copies of any byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes the log may take (with the copies, in format 3).
    pub capacity: u64,
    /// Where the copies are.
    pub copy: CopyAt,
}

/// `n` rounded up to whole blocks.
pub fn whole_blocks(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

impl Layout {
    /// The layout of a region of `region_size` bytes in format `version`.
    pub fn of(version: u32, region_size: u64) -> Layout {
        match version {
            VERSION_1 => Layout {
                capacity: region_size,
                copy: CopyAt::None,
            },
            VERSION_2 => {
                let half = (region_size / 2) & !(BLOCK - 1);
                Layout {
                    capacity: half,
                    copy: CopyAt::Mirror(half),
                }
            }
            _ => Layout {
                capacity: region_size & !(BLOCK - 1),
                copy: CopyAt::Next,
            },
        }
    }

    /// Whether records have a second copy.
    pub fn has_copies(&self) -> bool {
        self.copy != CopyAt::None
    }

    /// How far the copy of a batch of `len` bytes is from the batch.
    pub fn copy_distance(&self, len: u64) -> Option<u64> {
        match self.copy {
            CopyAt::None => None,
            CopyAt::Mirror(m) => Some(m),
            CopyAt::Next => Some(whole_blocks(len)),
        }
    }

    /// Bytes of the log a batch of `len` bytes takes: where the next one starts.
    pub fn footprint(&self, len: u64) -> u64 {
        match self.copy {
            CopyAt::Next => 2 * whole_blocks(len),
            _ => len,
        }
    }

    /// The largest batch an empty log holds.
    pub fn largest_batch(&self) -> u64 {
        match self.copy {
            CopyAt::Next => (self.capacity / 2) & !(BLOCK - 1),
            _ => self.capacity,
        }
    }

    /// The parts of a region a log of this layout may have written to
    /// (region-relative start and end): what a scan for records covers.
    pub fn areas(&self) -> Vec<(u64, u64)> {
        match self.copy {
            CopyAt::Mirror(m) => vec![(0, self.capacity), (m, m + self.capacity)],
            _ => vec![(0, self.capacity)],
        }
    }

    /// What to write for `batch` at log offset `at`: (region offset, bytes),
    /// the batch and its copy as one piece in format 3.
    pub fn placements<'b>(&self, at: u64, batch: &'b [u8]) -> Vec<(u64, Cow<'b, [u8]>)> {
        match self.copy {
            CopyAt::None => vec![(at, Cow::Borrowed(batch))],
            CopyAt::Mirror(m) => vec![(at, Cow::Borrowed(batch)), (m + at, Cow::Borrowed(batch))],
            CopyAt::Next => {
                let span = whole_blocks(batch.len() as u64) as usize;
                let mut both = vec![0u8; 2 * span];
                both[..batch.len()].copy_from_slice(batch);
                both[span..span + batch.len()].copy_from_slice(batch);
                vec![(at, Cow::Owned(both))]
            }
        }
    }
}

/// The batches of a log as laid out in `log` (a region's bytes): the offset
/// and length of each, read from the first copy of its record headers, up to
/// the first that does not check out. For tools and tests that look at an
/// image's bytes.
pub fn batches(log: &[u8], layout: &Layout) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut at) = (0usize, 0usize);
    while let Some(h) = log.get(at..at + REC_HDR).and_then(RecHeader::decode) {
        at += h.total() as usize;
        if h.kind == Kind::Commit {
            let len = (at - start) as u64;
            out.push((start as u64, len));
            start += layout.footprint(len) as usize;
            at = start;
        }
    }
    out
}

/// One header slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version ([`VERSION_1`] to [`VERSION`]): decides the [`Layout`].
    pub version: u32,
    /// FLAG_* bits.
    pub flags: u32,
    /// Image size when formatted.
    pub image_size: u64,
    /// Size of each of the two regions.
    pub region_size: u64,
    /// Increases with every header write (compaction); the valid slot with the highest wins.
    pub generation: u64,
    /// Region holding the live log (0 or 1).
    pub active: u32,
    /// Epoch of the live log: every record carries it.
    pub epoch: u64,
    /// Key derivation.
    pub kdf: Kdf,
    /// KDF salt.
    pub salt: [u8; 16],
    /// nonce || AES-GCM(zero block) under the image key: proves a key right or wrong.
    pub key_check: [u8; 44],
}

/// Encoded size of a header slot's meaningful part.
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 8 + 4 + 8 + 1 + 12 + 16 + 44 + 4;

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Header {
    /// Whether records are encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Where the log lies in each region.
    pub fn layout(&self) -> Layout {
        Layout::of(self.version, self.region_size)
    }

    /// Byte offset of region `r`.
    pub fn region_offset(&self, r: u32) -> u64 {
        REGIONS_START + u64::from(r) * self.region_size
    }

    /// The slot image (SLOT_SIZE bytes, zero padded, crc32c at the end of the used part).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(SLOT_SIZE as usize);
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.flags.to_be_bytes());
        v.extend_from_slice(&self.image_size.to_be_bytes());
        v.extend_from_slice(&self.region_size.to_be_bytes());
        v.extend_from_slice(&self.generation.to_be_bytes());
        v.extend_from_slice(&self.active.to_be_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        let (k, m, t, p) = match self.kdf {
            Kdf::None => (0u8, 0, 0, 0),
            Kdf::Raw => (1, 0, 0, 0),
            Kdf::Argon2id {
                m_cost,
                t_cost,
                p_cost,
            } => (2, m_cost, t_cost, p_cost),
        };
        v.push(k);
        v.extend_from_slice(&m.to_be_bytes());
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&p.to_be_bytes());
        v.extend_from_slice(&self.salt);
        v.extend_from_slice(&self.key_check);
        let crc = crc32c::crc32c(&v);
        v.extend_from_slice(&crc.to_be_bytes());
        v.resize(SLOT_SIZE as usize, 0);
        v
    }

    /// Parse a slot; `Err` says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Header, String> {
        if b.len() < HEADER_LEN {
            return Err("truncated".into());
        }
        if &b[..8] != MAGIC {
            return Err("bad magic (not a vtpm NVRAM image)".into());
        }
        let crc = be_u32(b, HEADER_LEN - 4);
        if crc32c::crc32c(&b[..HEADER_LEN - 4]) != crc {
            return Err("checksum mismatch".into());
        }
        let version = be_u32(b, 8);
        if !(VERSION_1..=VERSION).contains(&version) {
            return Err(format!(
                "format version {version}, this vtpm reads versions {VERSION_1} to {VERSION}"
            ));
        }
        let kdf = match b[52] {
            0 => Kdf::None,
            1 => Kdf::Raw,
            2 => {
                let (m_cost, t_cost, p_cost) = (be_u32(b, 53), be_u32(b, 57), be_u32(b, 61));
                // Bounded, or a hostile header could make key derivation take
                // all memory or all day.
                if m_cost > MAX_ARGON2_M || t_cost > MAX_ARGON2_T || p_cost > MAX_ARGON2_P {
                    return Err(format!(
                        "argon2id costs m={m_cost}KiB t={t_cost} p={p_cost} exceed the limits \
                         ({MAX_ARGON2_M}KiB, {MAX_ARGON2_T}, {MAX_ARGON2_P})"
                    ));
                }
                Kdf::Argon2id {
                    m_cost,
                    t_cost,
                    p_cost,
                }
            }
            k => return Err(format!("unknown key derivation {k}")),
        };
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&b[65..81]);
        let mut key_check = [0u8; 44];
        key_check.copy_from_slice(&b[81..125]);
        let h = Header {
            version,
            flags: be_u32(b, 12),
            image_size: be_u64(b, 16),
            region_size: be_u64(b, 24),
            generation: be_u64(b, 32),
            active: be_u32(b, 40),
            epoch: be_u64(b, 44),
            kdf,
            salt,
            key_check,
        };
        if h.active > 1 {
            return Err(format!("active region {} (must be 0 or 1)", h.active));
        }
        if h.region_size == 0
            || REGIONS_START
                .checked_add(h.region_size.saturating_mul(2))
                .is_none_or(|e| e > h.image_size)
        {
            return Err(format!(
                "regions of {} bytes do not fit an image of {}",
                h.region_size, h.image_size
            ));
        }
        if h.layout().capacity == 0 {
            return Err(format!(
                "regions of {} bytes cannot hold a log and its copy",
                h.region_size
            ));
        }
        Ok(h)
    }
}

/// A record's fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecHeader {
    /// Put, delete or commit.
    pub kind: Kind,
    /// REC_ENCRYPTED, REC_UNFLUSHED.
    pub flags: u8,
    /// Log epoch.
    pub epoch: u64,
    /// Batch sequence number.
    pub seq: u64,
    /// Payload length.
    pub len: u32,
}

impl RecHeader {
    /// The 28 header bytes (crc included).
    pub fn encode(&self) -> [u8; REC_HDR] {
        let mut b = [0u8; REC_HDR];
        b[..2].copy_from_slice(&REC_MAGIC.to_be_bytes());
        b[2] = self.kind as u8;
        b[3] = self.flags;
        b[4..12].copy_from_slice(&self.epoch.to_be_bytes());
        b[12..20].copy_from_slice(&self.seq.to_be_bytes());
        b[20..24].copy_from_slice(&self.len.to_be_bytes());
        let crc = crc32c::crc32c(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Parse and check a record header; None if it is not a valid one.
    pub fn decode(b: &[u8]) -> Option<RecHeader> {
        if b.len() < REC_HDR || b[..2] != REC_MAGIC.to_be_bytes() {
            return None;
        }
        if crc32c::crc32c(&b[..24]) != be_u32(b, 24) {
            return None;
        }
        let h = RecHeader {
            kind: Kind::from_u8(b[2])?,
            flags: b[3],
            epoch: be_u64(b, 4),
            seq: be_u64(b, 12),
            len: be_u32(b, 20),
        };
        (h.len <= MAX_PAYLOAD).then_some(h)
    }

    /// Total on-disk size of the record.
    pub fn total(&self) -> u64 {
        (REC_HDR + REC_TRAILER) as u64 + u64::from(self.len)
    }
}

/// Every record header in `buf` that checks out, with its offset: what a
/// scan of a region for records (recovery's look past the tail, salvage)
/// walks over.
pub fn headers_in(buf: &[u8]) -> impl Iterator<Item = (usize, RecHeader)> + '_ {
    let magic = REC_MAGIC.to_be_bytes();
    buf.windows(REC_HDR)
        .enumerate()
        .filter(move |(_, w)| w[..2] == magic)
        .filter_map(|(i, w)| RecHeader::decode(w).map(|h| (i, h)))
}

/// A whole record: header, payload, payload crc.
pub fn encode_record(h: &RecHeader, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
}

/// Payload of a put (plaintext): name length, name, data.
pub fn put_payload(name: &str, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + name.len() + data.len());
    v.extend_from_slice(&(name.len() as u16).to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(data);
    v
}

/// Split a put payload into name and data.
pub fn split_put(p: &[u8]) -> Option<(String, &[u8])> {
    let n = u16::from_be_bytes([*p.first()?, *p.get(1)?]) as usize;
    let name = std::str::from_utf8(p.get(2..2 + n)?).ok()?.to_string();
    Some((name, p.get(2 + n..)?))
}

/// Record overhead of a put of `name` (without encryption overhead).
pub fn put_overhead(name: &str) -> u64 {
    (REC_HDR + REC_TRAILER + 2 + name.len()) as u64
}
