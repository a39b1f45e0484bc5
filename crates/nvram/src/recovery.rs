//! Reading a region's log back: whole committed batches in sequence order,
//! each record taken from whichever of its two copies checks out (format 2),
//! the copies that did not noted for rewriting, and what lies beyond the
//! committed tail looked at for proof of damage.

use std::path::Path;

use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::cipher::ImageKey;
use crate::error::Result;
use crate::error::{damaged, io};
use crate::format::{self, Kind, Layout, RecHeader, REC_HDR, REC_TRAILER};
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
    pub be: &'a mut dyn Backend,
    pub path: &'a Path,
    pub key: Option<&'a ImageKey>,
    pub region: u32,
    /// Byte offset of the region on the image.
    pub base: u64,
    pub layout: Layout,
}

/// Associated data of a sealed record: its kind, epoch and sequence number.
pub(crate) fn aad(kind: Kind, epoch: u64, seq: u64) -> [u8; 17] {
    let mut a = [0u8; 17];
    a[0] = kind as u8;
    a[1..9].copy_from_slice(&epoch.to_be_bytes());
    a[9..].copy_from_slice(&seq.to_be_bytes());
    a
}

impl Reader<'_> {
    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
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
        let mirror = match self.layout.mirror {
            Some(m) => self.copy_at(m + off, m + cap, epoch)?,
            None => None,
        };
        Ok((primary, mirror))
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
        loop {
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
            if let Some(m) = self.layout.mirror {
                let same = primary.is_some() && primary == mirror;
                if !same {
                    let (bad, good) = if from_mirror {
                        (off, m + off)
                    } else {
                        (m + off, off)
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
                    committed_end = off;
                    batches += 1;
                    expected = Some(batch_seq.wrapping_add(1));
                }
            }
        }
        let next = expected.unwrap_or(1);
        let rest = self.scan_rest(committed_end, epoch, next)?;
        if let Some(found) = rest.damage_at {
            let what = if self.layout.mirror.is_some() {
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
        let cap = self.layout.capacity;
        let mut rest = Rest::default();
        for start in self.layout.copies(0).collect::<Vec<_>>() {
            self.scan_area(start + from, start + cap, epoch, next, &mut rest)?;
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
