//! Reading a region's log back: whole committed batches in sequence order,
//! each record taken from whichever of its two copies checks out (formats 2
//! and 3),
//! the copies that did not noted for rewriting, and what lies beyond the
//! committed tail looked at for proof of damage.

use std::path::Path;

use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::cipher::ImageKey;
use crate::error::Result;
use crate::error::{damaged, io};
use crate::format::{self, CopyAt, Kind, Layout, RecHeader, BLOCK, REC_HDR, REC_TRAILER};
use crate::ops::{apply, Blobs, Op};

/// A copy of a committed record that does not check out while the other
/// copy does: rewrite `len` bytes at `bad` from `good` (region-relative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    /// Region holding both copies.
    pub region: u32,
    /// Offset of the damaged copy.
    pub bad: u64,
    /// Offset of the good copy.
    pub good: u64,
    /// Bytes of the record.
    pub len: u64,
    /// Batch sequence number of the record (for messages).
    pub seq: u64,
}

/// What reading one region's log found.
pub(crate) struct Log {
    pub blobs: Blobs,
    /// End of the last committed batch.
    pub tail: u64,
    pub next_seq: u64,
    /// The epoch the first batch (a compaction's snapshot) replaced.
    pub first_parent: Option<u64>,
    /// The format version a compaction's snapshot was written in (None: format 1).
    pub snapshot_version: Option<u32>,
    /// Records of the epoch beyond the tail.
    pub leftovers: bool,
    /// Damaged copies of committed records.
    pub repairs: Vec<Repair>,
}

/// One copy of a record as read, checksums verified.
#[derive(PartialEq, Eq)]
struct Copy {
    h: RecHeader,
    payload: Vec<u8>,
}

/// Reads the log of one region of an image.
pub(crate) struct Reader<'a> {
    be: &'a mut dyn Backend,
    path: &'a Path,
    key: Option<&'a ImageKey>,
    region: u32,
    /// Byte offset of the region on the image.
    base: u64,
    layout: Layout,
    /// How far the copies of the batch being read are from its records.
    dist: Option<u64>,
    /// Two pieces of the region read ahead (the log and, in format 2, its
    /// copy): the log is read front to back in small reads, each a round
    /// trip on NBD. The one not used last is replaced.
    ahead: [(u64, Vec<u8>); 2],
    replace: usize,
}

/// How much a small read of the log reads ahead.
const READ_AHEAD: u64 = 64 * 1024;

/// Associated data of a sealed record: its kind, epoch and sequence number.
pub(crate) fn aad(kind: Kind, epoch: u64, seq: u64) -> [u8; 17] {
    let mut a = [0u8; 17];
    a[0] = kind as u8;
    a[1..9].copy_from_slice(&epoch.to_be_bytes());
    a[9..].copy_from_slice(&seq.to_be_bytes());
    a
}

impl<'a> Reader<'a> {
    /// A reader of the log in `region` (at byte `base`), laid out as `layout`.
    pub fn new(
        be: &'a mut dyn Backend,
        (path, key): (&'a Path, Option<&'a ImageKey>),
        (region, base): (u32, u64),
        layout: Layout,
    ) -> Reader<'a> {
        Reader {
            be,
            path,
            key,
            region,
            base,
            layout,
            dist: match layout.copy {
                CopyAt::Mirror(m) => Some(m),
                _ => None,
            },
            ahead: [(0, Vec::new()), (0, Vec::new())],
            replace: 0,
        }
    }

    /// Where the parts of the region a log may use end.
    fn areas_end(&self) -> u64 {
        self.layout.areas().iter().map(|a| a.1).max().unwrap_or(0)
    }

    /// Region bytes at `at`: from what was read ahead, or read with up to
    /// [`READ_AHEAD`] bytes more (within the log's areas).
    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        let end = at.saturating_add(buf.len() as u64);
        for (i, (start, data)) in self.ahead.iter().enumerate() {
            if at >= *start && end <= start + data.len() as u64 {
                let from = (at - start) as usize;
                buf.copy_from_slice(&data[from..from + buf.len()]);
                self.replace = 1 - i;
                return Ok(());
            }
        }
        let len = READ_AHEAD
            .min(self.areas_end().saturating_sub(at))
            .max(buf.len() as u64);
        if len == buf.len() as u64 {
            return self.read_direct(at, buf);
        }
        let mut data = vec![0u8; len as usize];
        self.read_direct(at, &mut data)?;
        buf.copy_from_slice(&data[..buf.len()]);
        self.ahead[self.replace] = (at, data);
        self.replace = 1 - self.replace;
        Ok(())
    }

    fn read_direct(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        self.be
            .read_at(self.base + at, buf)
            .map_err(io(self.path, "reading the log"))
    }

    /// The copy of a record of `epoch` at region offset `at`, if it is whole
    /// and its checksums check out; `end` bounds this copy's log area.
    fn copy_at(&mut self, at: u64, end: u64, epoch: u64) -> Result<Option<Copy>> {
        if at.saturating_add(REC_HDR as u64) > end {
            return Ok(None);
        }
        let mut hb = [0u8; REC_HDR];
        self.read(at, &mut hb)?;
        let Some(h) = RecHeader::decode(&hb) else {
            return Ok(None);
        };
        if h.epoch != epoch || at.saturating_add(h.total()) > end {
            return Ok(None);
        }
        let mut body = vec![0u8; h.len as usize + REC_TRAILER];
        self.read(at + REC_HDR as u64, &mut body)?;
        let crc = body.split_off(h.len as usize);
        if crc32c::crc32c(&body).to_be_bytes()[..] != crc[..] {
            return Ok(None);
        }
        Ok(Some(Copy { h, payload: body }))
    }

    /// Both copies of the record at log offset `off`: (primary, mirror).
    fn copies(&mut self, off: u64, epoch: u64) -> Result<(Option<Copy>, Option<Copy>)> {
        let cap = self.layout.capacity;
        let primary = self.copy_at(off, cap, epoch)?;
        let copy_end = match self.layout.copy {
            CopyAt::Mirror(m) => m + cap,
            _ => cap,
        };
        let mirror = match self.dist {
            Some(d) => self.copy_at(d + off, copy_end, epoch)?,
            None => None,
        };
        Ok((primary, mirror))
    }

    /// The sequence number and length of the batch whose record headers
    /// start at `at` and check out up to its commit record, all of `epoch`
    /// and of one sequence number (`seq` when given).
    fn walk(&mut self, at: u64, epoch: u64, mut seq: Option<u64>) -> Result<Option<(u64, u64)>> {
        let cap = self.layout.capacity;
        let mut p = at;
        while p.saturating_add(REC_HDR as u64) <= cap {
            let mut hb = [0u8; REC_HDR];
            self.read(p, &mut hb)?;
            let Some(h) = RecHeader::decode(&hb) else {
                return Ok(None);
            };
            if h.epoch != epoch || seq.is_some_and(|s| s != h.seq) {
                return Ok(None);
            }
            seq = Some(h.seq);
            p = p.saturating_add(h.total());
            if h.kind == Kind::Commit {
                return Ok((p <= cap).then_some((h.seq, p - at)));
            }
        }
        Ok(None)
    }

    /// How far the copy of the batch starting at `start` is (format 3): the
    /// batch's length in whole blocks, from its record headers. When those
    /// do not check out, the copy is the first block-aligned batch further on
    /// of the expected sequence number whose own length puts it exactly
    /// there, unless the same batch follows it at that distance again (then
    /// it is a later batch and its copy, not this one's copy).
    fn find_copy(&mut self, start: u64, epoch: u64, expected: Option<u64>) -> Result<Option<u64>> {
        let cap = self.layout.capacity;
        let fits = |d: u64| start.saturating_add(2 * d) <= cap;
        if let Some((_, len)) = self.walk(start, epoch, expected)? {
            let d = format::whole_blocks(len);
            return Ok(fits(d).then_some(d));
        }
        let last = start + ((cap.saturating_sub(start) / 2) & !(BLOCK - 1));
        for at in self.block_headers(start + BLOCK, last, epoch, expected)? {
            let d = at - start;
            let Some((seq, len)) = self.walk(at, epoch, expected)? else {
                continue;
            };
            if format::whole_blocks(len) != d || !fits(d) {
                continue;
            }
            if self.walk(at + d, epoch, Some(seq))?.map(|(_, l)| l) != Some(len) {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// Block-aligned region offsets in `from..=last` where a record header
    /// of `epoch` (and sequence number `seq`, when given) starts; read in
    /// large pieces, since an NBD read is a round trip.
    fn block_headers(
        &mut self,
        from: u64,
        last: u64,
        epoch: u64,
        seq: Option<u64>,
    ) -> Result<Vec<u64>> {
        const CHUNK: u64 = 1 << 20;
        let mut found = Vec::new();
        let mut at = from;
        while at <= last {
            let len = (last - at + REC_HDR as u64).min(CHUNK);
            let mut buf = vec![0u8; len as usize];
            self.read(at, &mut buf)?;
            let mut i = 0usize;
            while i + REC_HDR <= buf.len() {
                if let Some(h) = RecHeader::decode(&buf[i..i + REC_HDR]) {
                    if h.epoch == epoch && seq.is_none_or(|s| s == h.seq) {
                        found.push(at + i as u64);
                    }
                }
                i += BLOCK as usize;
            }
            at += (buf.len() as u64).div_ceil(BLOCK) * BLOCK;
        }
        Ok(found)
    }

    /// The plaintext of a record, or why it cannot be had.
    fn open(&self, c: &Copy, at: &str) -> Result<Zeroizing<Vec<u8>>> {
        let sealed = c.h.flags & format::REC_ENCRYPTED != 0;
        match (self.key, sealed) {
            (Some(k), true) => k
                .open_record(c.h.epoch, &c.payload, &aad(c.h.kind, c.h.epoch, c.h.seq))
                .ok_or_else(|| {
                    damaged(
                        self.path,
                        at,
                        "fails authentication: the image was altered".into(),
                    )
                }),
            (None, false) => Ok(Zeroizing::new(c.payload.clone())),
            (Some(_), false) => Err(damaged(
                self.path,
                at,
                "plaintext record in an encrypted image".into(),
            )),
            (None, true) => Err(damaged(
                self.path,
                at,
                "encrypted record in a plaintext image".into(),
            )),
        }
    }

    /// Read the log under `epoch`: whole committed batches in sequence order,
    /// up to the first record neither copy of which checks out.
    pub fn read_log(&mut self, epoch: u64) -> Result<Log> {
        let region = self.region;
        let mut blobs = Blobs::new();
        let mut off = 0u64;
        let mut committed_end = 0u64;
        let mut batches = 0u64;
        let mut expected: Option<u64> = None;
        let mut pending: Vec<Op> = Vec::new();
        let mut pending_repairs: Vec<Repair> = Vec::new();
        let mut repairs = Vec::new();
        let mut batch_seq = 0u64;
        let mut first_parent = None;
        let mut snapshot_version = None;
        let mut batch_start = 0u64;
        loop {
            if pending.is_empty() {
                batch_start = off;
                if self.layout.copy == CopyAt::Next {
                    self.dist = self.find_copy(off, epoch, expected)?;
                    if self.dist.is_none() {
                        break;
                    }
                }
            }
            let (primary, mirror) = self.copies(off, epoch)?;
            let Some(first) = primary.as_ref().or(mirror.as_ref()) else {
                break;
            };
            let h = first.h;
            if pending.is_empty() {
                if expected.is_some_and(|e| e != h.seq) {
                    break;
                }
                batch_seq = h.seq;
            } else if h.seq != batch_seq {
                break;
            }
            let at = format!("record at region {region} offset {off}");
            // Within an epoch every byte is written once, with the same bytes
            // in both copies, so a copy that checks out is the record. The
            // primary is taken when it also opens (authenticates); a copy
            // that differs from the one taken is rewritten.
            let (plain, from_mirror) = match self.open(first, &at) {
                Ok(p) => (p, primary.is_none()),
                Err(e) => match (&primary, &mirror) {
                    (Some(p), Some(m)) if p != m && m.h == h => (self.open(m, &at)?, true),
                    _ => return Err(e),
                },
            };
            if let Some(d) = self.dist {
                let same = primary.is_some() && primary == mirror;
                if !same {
                    let (bad, good) = if from_mirror {
                        (off, d + off)
                    } else {
                        (d + off, off)
                    };
                    pending_repairs.push(Repair {
                        region,
                        bad,
                        good,
                        len: h.total(),
                        seq: h.seq,
                    });
                }
            }
            off += h.total();
            match h.kind {
                Kind::Put => {
                    let (name, data) = format::split_put(&plain)
                        .ok_or_else(|| damaged(self.path, &at, "malformed blob record".into()))?;
                    pending.push(Op::Put(name, data.to_vec()));
                }
                Kind::Delete => {
                    let name = std::str::from_utf8(&plain)
                        .map_err(|_| damaged(self.path, &at, "blob name is not UTF-8".into()))?;
                    pending.push(Op::Delete(name.to_string()));
                }
                Kind::Commit => {
                    let count = plain
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if count != Some(pending.len() as u32) {
                        break;
                    }
                    if batches == 0 {
                        first_parent = plain
                            .get(4..12)
                            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
                        snapshot_version = plain
                            .get(12..16)
                            .map(|b| u32::from_be_bytes(b.try_into().unwrap_or([0; 4])));
                    }
                    for op in pending.drain(..) {
                        apply(&mut blobs, op);
                    }
                    repairs.append(&mut pending_repairs);
                    if self.layout.copy == CopyAt::Next {
                        // The batch's copy follows it.
                        off = batch_start + self.layout.footprint(off - batch_start);
                    }
                    committed_end = off;
                    batches += 1;
                    expected = Some(batch_seq.wrapping_add(1));
                }
            }
        }
        let next = expected.unwrap_or(1);
        let rest = self.scan_rest(committed_end, epoch, next)?;
        if let Some(found) = rest.damage_at {
            let what = if self.layout.has_copies() {
                "neither copy checks out"
            } else {
                "does not check out"
            };
            return Err(damaged(
                self.path,
                &format!("record at region {region} offset {committed_end}"),
                format!(
                    "{what}, yet committed records follow it (offset {found}): the image is damaged \
                     beyond what it can repair; `vtpm nvram check` shows what is intact and \
                     `vtpm nvram salvage` copies it to a new image"
                ),
            ));
        }
        Ok(Log {
            blobs,
            tail: committed_end,
            next_seq: next,
            first_parent,
            snapshot_version,
            leftovers: rest.leftovers,
            repairs,
        })
    }

    /// Look at both copies of the log after the recovered tail for records of
    /// `epoch`. One written with a flush behind it and a sequence number beyond
    /// `next` proves damage: a durable batch is written only after every
    /// earlier batch was flushed, so only damage can have made an earlier one
    /// unreadable. Unflushed (relaxed) batches may reach the disk in any order:
    /// losing an earlier one just means an older state.
    fn scan_rest(&mut self, from: u64, epoch: u64, next: u64) -> Result<Rest> {
        let mut rest = Rest::default();
        for (start, end) in self.layout.areas() {
            self.scan_area(start + from, end, epoch, next, &mut rest)?;
            if let Some(d) = rest.damage_at.as_mut() {
                *d -= start;
                break;
            }
        }
        Ok(rest)
    }

    /// Scan region offsets `from..end` for record headers of `epoch`.
    fn scan_area(
        &mut self,
        from: u64,
        end: u64,
        epoch: u64,
        next: u64,
        rest: &mut Rest,
    ) -> Result<()> {
        const CHUNK: u64 = 1 << 20;
        let mut at = from;
        // Chunks overlap by a record header so no header is missed at a seam.
        while at.saturating_add(REC_HDR as u64) <= end {
            let len = (end - at).min(CHUNK);
            let mut buf = vec![0u8; len as usize];
            self.read(at, &mut buf)?;
            for (i, h) in format::headers_in(&buf) {
                if h.epoch != epoch {
                    continue;
                }
                rest.leftovers = true;
                if h.seq > next && h.flags & format::REC_UNFLUSHED == 0 {
                    rest.damage_at = Some(at + i as u64);
                    return Ok(());
                }
            }
            if at + len >= end {
                break;
            }
            at += len - (REC_HDR as u64 - 1);
        }
        Ok(())
    }
}

/// What lies beyond a log's tail.
#[derive(Default)]
struct Rest {
    /// Log offset of a record proving damage before it.
    damage_at: Option<u64>,
    /// Any record of the live epoch at all.
    leftovers: bool,
}
