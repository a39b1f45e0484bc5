//! The log store: recovery of the committed state from the image, appending
//! a batch with one flush, and compaction into the other region.
//! Synchronous and single-owner; the storage thread drives it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::RngCore;
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::cipher::{self, ImageKey};
use crate::error::{Error, Result};
use crate::format::{self, Header, Kdf, Kind, RecHeader, REC_HDR, REC_TRAILER, SLOT_SIZE};
use crate::{KeySource, SyncMode};

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set a blob's contents.
    Put(String, Vec<u8>),
    /// Remove a blob.
    Delete(String),
}

impl Op {
    /// The blob the op changes.
    pub fn name(&self) -> &str {
        match self {
            Op::Put(n, _) | Op::Delete(n) => n,
        }
    }
}

/// The committed blobs.
pub type Blobs = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// How to open.
pub struct StoreOptions<'a> {
    /// Key for encrypted images (and to encrypt a new one).
    pub key: Option<&'a KeySource>,
    /// Refuse encrypted images.
    pub refuse_encrypted: bool,
    /// Flush policy.
    pub sync: SyncMode,
    /// Never write (inspection).
    pub read_only: bool,
    /// The backend was just created: format it.
    pub fresh: bool,
}

/// An opened image.
pub struct Store {
    be: Box<dyn Backend>,
    path: PathBuf,
    /// The live header.
    pub header: Header,
    key: Option<ImageKey>,
    blobs: Blobs,
    /// Next free offset in the active region.
    pub tail: u64,
    next_seq: u64,
    sync: SyncMode,
    read_only: bool,
    /// The next batch must start a fresh epoch in the other region (after a
    /// failed write, or when recovery found leftovers of the live epoch).
    compact_pending: bool,
}

/// An I/O error on the image at `path` while doing `op`.
pub(crate) fn io<'a>(
    path: &'a std::path::Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The two header slots as stored.
fn read_slots(be: &mut dyn Backend) -> Result<[Vec<u8>; 2]> {
    let mut slots = [vec![0u8; SLOT_SIZE as usize], vec![0u8; SLOT_SIZE as usize]];
    for (i, b) in slots.iter_mut().enumerate() {
        be.read_at(i as u64 * SLOT_SIZE, b)
            .map_err(io(&be.path(), "reading the header"))?;
    }
    Ok(slots)
}

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Whether both header slots are all zeros (an image never formatted, or wiped).
pub fn headers_blank(be: &mut dyn Backend) -> Result<bool> {
    if be.size() < 2 * SLOT_SIZE {
        return Ok(true);
    }
    Ok(read_slots(be)?.iter().all(|b| is_blank(b)))
}

impl Store {
    /// Open (formatting a fresh backend), check the key, recover the committed state.
    pub fn open(mut be: Box<dyn Backend>, opts: StoreOptions<'_>) -> Result<Store> {
        let path = be.path();
        if opts.fresh {
            return Store::format(be, &opts);
        }
        let size = be.size();
        if size < format::MIN_IMAGE {
            return Err(damaged(
                &path,
                "image",
                format!(
                    "{size} bytes, smaller than any NVRAM image ({} bytes)",
                    format::MIN_IMAGE
                ),
            ));
        }
        let raw = read_slots(be.as_mut())?;
        let slots: Vec<_> = raw.iter().map(|b| Header::decode(b)).collect();
        if raw.iter().all(|b| is_blank(b)) {
            // Both header slots all zero: never formatted, or its headers were
            // wiped. Formatting is only ever explicit (a file created in this
            // start, or `vtpm nvram format`): a wiped image must not be taken for
            // a new one and written over.
            return Err(Error::Unformatted(path));
        }
        let (header, repair) = match (&slots[0], &slots[1]) {
            (Ok(a), Ok(b)) => {
                if a.generation >= b.generation {
                    (a.clone(), false)
                } else {
                    (b.clone(), false)
                }
            }
            // One slot unreadable: either a compaction's header write was torn
            // (its log was flushed before) or the slot decayed. See below.
            (Ok(h), Err(_)) | (Err(_), Ok(h)) => (h.clone(), true),
            (Err(e), Err(_)) => return Err(damaged(&path, "header", e.clone())),
        };
        if header.image_size > size {
            return Err(damaged(
                &path,
                "image",
                format!(
                    "truncated: {size} bytes, the header says {}",
                    header.image_size
                ),
            ));
        }
        let key = match (header.encrypted(), opts.key) {
            (true, _) if opts.refuse_encrypted => return Err(Error::EncryptedRefused(path)),
            (true, None) => return Err(Error::KeyRequired(path)),
            (true, Some(src)) => {
                let k = ImageKey::derive(src, header.kdf, &header.salt)
                    .ok_or_else(|| Error::WrongKey(path.clone()))?;
                if !k.verify(&header.key_check) {
                    return Err(Error::WrongKey(path));
                }
                Some(k)
            }
            (false, Some(_)) => return Err(Error::NotEncrypted(path)),
            (false, None) => None,
        };
        let mut s = Store::empty(be, path, header, key, opts.sync, opts.read_only);
        if repair && s.roll_forward()? {
            return Ok(s);
        }
        s.recover()?;
        Ok(s)
    }

    /// With one header slot unreadable, the other region may hold the log of
    /// a compaction whose header is the unreadable one: a committed snapshot
    /// naming the live epoch as its parent, fully flushed before that header
    /// was written. If so it is the newest state: use it and (when writable)
    /// rewrite the slot, so the next compaction cannot overwrite the only good one.
    fn roll_forward(&mut self) -> Result<bool> {
        let other = 1 - self.header.active;
        let mut first = [0u8; REC_HDR];
        self.be
            .read_at(self.header.region_offset(other), &mut first)
            .map_err(io(&self.path, "reading the log"))?;
        let Some(epoch) = RecHeader::decode(&first).map(|h| h.epoch) else {
            return Ok(false);
        };
        let log = match self.read_log(other, epoch) {
            Ok(log) if log.first_parent == Some(self.header.epoch) => log,
            _ => return Ok(false),
        };
        self.header.generation += 1;
        self.header.active = other;
        self.header.epoch = epoch;
        self.blobs = log.blobs;
        self.tail = log.tail;
        self.next_seq = log.next_seq;
        self.compact_pending = log.leftovers;
        if !self.read_only {
            self.write_header()?;
        }
        Ok(true)
    }

    fn format(be: Box<dyn Backend>, opts: &StoreOptions<'_>) -> Result<Store> {
        let path = be.path();
        let size = be.size();
        if size < format::MIN_IMAGE {
            return Err(Error::TooSmall {
                path,
                size,
                needed: format::MIN_IMAGE,
            });
        }
        // Capped: a large block device gets a bounded log (recovery reads it all).
        let region_size =
            (((size - format::REGIONS_START) / 2) & !(SLOT_SIZE - 1)).min(format::MAX_REGION);
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let (kdf, key) = match opts.key {
            Some(src) => {
                let kdf = cipher::kdf_for(src);
                (
                    kdf,
                    Some(
                        ImageKey::derive(src, kdf, &salt)
                            .ok_or(Error::Usage("the key cannot be derived"))?,
                    ),
                )
            }
            None => (Kdf::None, None),
        };
        // A random epoch: records left on a reused device by an older image never match.
        let epoch = fresh_epoch(0);
        let header = Header {
            flags: if key.is_some() {
                format::FLAG_ENCRYPTED
            } else {
                0
            },
            image_size: size,
            region_size,
            generation: 1,
            active: 0,
            epoch,
            kdf,
            salt,
            key_check: key.as_ref().map(|k| k.key_check()).unwrap_or([0; 44]),
        };
        let mut s = Store::empty(be, path, header, key, opts.sync, false);
        s.write_header()?;
        Ok(s)
    }

    /// A store with no blobs yet, at the start of its log.
    fn empty(
        be: Box<dyn Backend>,
        path: PathBuf,
        header: Header,
        key: Option<ImageKey>,
        sync: SyncMode,
        read_only: bool,
    ) -> Store {
        Store {
            be,
            path,
            header,
            key,
            blobs: Blobs::new(),
            tail: 0,
            next_seq: 1,
            sync,
            read_only,
            compact_pending: false,
        }
    }

    fn write_header(&mut self) -> Result<()> {
        let slot = self.header.generation % 2;
        let bytes = self.header.encode();
        self.be
            .write_at(slot * SLOT_SIZE, &bytes)
            .map_err(io(&self.path, "writing the header"))?;
        self.be
            .flush()
            .map_err(io(&self.path, "flushing the header"))
    }

    /// The committed blobs.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The image's path (for messages).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Whether records are encrypted.
    pub fn encrypted(&self) -> bool {
        self.key.is_some()
    }

    fn aad(kind: Kind, epoch: u64, seq: u64) -> [u8; 17] {
        let mut a = [0u8; 17];
        a[0] = kind as u8;
        a[1..9].copy_from_slice(&epoch.to_be_bytes());
        a[9..].copy_from_slice(&seq.to_be_bytes());
        a
    }

    /// Bytes a record with a plaintext payload of `plain` bytes takes.
    pub fn record_size(&self, plain: usize) -> u64 {
        (REC_HDR
            + REC_TRAILER
            + plain
            + if self.key.is_some() {
                cipher::OVERHEAD
            } else {
                0
            }) as u64
    }

    fn push_record(&self, out: &mut Vec<u8>, rec: (Kind, u8), epoch: u64, seq: u64, plain: &[u8]) {
        let (kind, mut flags) = rec;
        let payload = match &self.key {
            Some(k) => {
                flags |= format::REC_ENCRYPTED;
                k.seal_record(epoch, plain, &Self::aad(kind, epoch, seq))
            }
            None => plain.to_vec(),
        };
        let h = RecHeader {
            kind,
            flags,
            epoch,
            seq,
            len: payload.len() as u32,
        };
        format::encode_record(&h, &payload, out);
    }

    /// The records of one batch and its commit record, ready for one write.
    /// `unflushed`: the batch is written without a flush behind it (relaxed mode).
    /// A compaction's snapshot names the epoch it replaces (`parent`).
    fn encode_batch(
        &self,
        ops: &[Op],
        (epoch, seq): (u64, u64),
        unflushed: bool,
        parent: Option<u64>,
    ) -> Vec<u8> {
        let flags = if unflushed { format::REC_UNFLUSHED } else { 0 };
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Put(name, data) => self.push_record(
                    &mut out,
                    (Kind::Put, flags),
                    epoch,
                    seq,
                    &format::put_payload(name, data),
                ),
                Op::Delete(name) => {
                    self.push_record(&mut out, (Kind::Delete, flags), epoch, seq, name.as_bytes())
                }
            }
        }
        let mut commit = (ops.len() as u32).to_be_bytes().to_vec();
        if let Some(p) = parent {
            commit.extend_from_slice(&p.to_be_bytes());
        }
        self.push_record(&mut out, (Kind::Commit, flags), epoch, seq, &commit);
        out
    }

    /// Rebuild the committed state from the active region.
    fn recover(&mut self) -> Result<()> {
        let log = self.read_log(self.header.active, self.header.epoch)?;
        self.blobs = log.blobs;
        self.tail = log.tail;
        self.next_seq = log.next_seq;
        // Records of the live epoch beyond the tail (an interrupted batch, or
        // unflushed relaxed batches of which a later one reached the disk) must
        // never be linked up with what is appended next: move to a fresh epoch
        // in the other region before the next write.
        self.compact_pending |= log.leftovers;
        Ok(())
    }

    /// Read the log of `region` under `epoch`: whole committed batches in
    /// sequence order, up to the first record that does not check out.
    fn read_log(&mut self, region: u32, epoch: u64) -> Result<Log> {
        let base = self.header.region_offset(region);
        let rsize = self.header.region_size;
        let mut blobs = Blobs::new();
        let mut off = 0u64;
        let mut committed_end = 0u64;
        let mut batches = 0u64;
        let mut expected: Option<u64> = None;
        let mut pending: Vec<Op> = Vec::new();
        let mut batch_seq = 0u64;
        let mut first_parent = None;
        while off.saturating_add(REC_HDR as u64) <= rsize {
            let mut hb = [0u8; REC_HDR];
            self.be
                .read_at(base + off, &mut hb)
                .map_err(io(&self.path, "reading the log"))?;
            let Some(h) = RecHeader::decode(&hb) else {
                break;
            };
            if h.epoch != epoch {
                break;
            }
            if pending.is_empty() {
                if expected.is_some_and(|e| e != h.seq) {
                    break;
                }
                batch_seq = h.seq;
            } else if h.seq != batch_seq {
                break;
            }
            if off.saturating_add(h.total()) > rsize {
                break;
            }
            let mut body = vec![0u8; h.len as usize + REC_TRAILER];
            self.be
                .read_at(base + off + REC_HDR as u64, &mut body)
                .map_err(io(&self.path, "reading the log"))?;
            let (payload, crc) = body.split_at(h.len as usize);
            if crc32c::crc32c(payload).to_be_bytes() != crc {
                break;
            }
            let at = format!("record at region {region} offset {off}");
            let plain: Zeroizing<Vec<u8>> = match (&self.key, h.flags & format::REC_ENCRYPTED != 0)
            {
                (Some(k), true) => k
                    .open_record(h.epoch, payload, &Self::aad(h.kind, h.epoch, h.seq))
                    .ok_or_else(|| {
                        damaged(
                            &self.path,
                            &at,
                            "fails authentication: the image was altered".into(),
                        )
                    })?,
                (None, false) => Zeroizing::new(payload.to_vec()),
                (Some(_), false) => {
                    return Err(damaged(
                        &self.path,
                        &at,
                        "plaintext record in an encrypted image".into(),
                    ))
                }
                (None, true) => {
                    return Err(damaged(
                        &self.path,
                        &at,
                        "encrypted record in a plaintext image".into(),
                    ))
                }
            };
            off += h.total();
            match h.kind {
                Kind::Put => {
                    let (name, data) = format::split_put(&plain)
                        .ok_or_else(|| damaged(&self.path, &at, "malformed blob record".into()))?;
                    pending.push(Op::Put(name, data.to_vec()));
                }
                Kind::Delete => {
                    let name = std::str::from_utf8(&plain)
                        .map_err(|_| damaged(&self.path, &at, "blob name is not UTF-8".into()))?;
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
                    }
                    for op in pending.drain(..) {
                        apply(&mut blobs, op);
                    }
                    committed_end = off;
                    batches += 1;
                    expected = Some(batch_seq.wrapping_add(1));
                }
            }
        }
        let next = expected.unwrap_or(1);
        let rest = self.scan_rest(base, committed_end, epoch, next)?;
        if let Some(found) = rest.damage_at {
            return Err(damaged(
                &self.path,
                &format!("record at region {region} offset {committed_end}"),
                format!("does not check out, yet committed records follow it (offset {found}): the image is damaged"),
            ));
        }
        Ok(Log {
            blobs,
            tail: committed_end,
            next_seq: next,
            first_parent,
            leftovers: rest.leftovers,
        })
    }

    /// Look at the region after the recovered tail for records of `epoch`.
    /// One written with a flush behind it and a sequence number beyond `next`
    /// proves damage: a durable batch was written only after every earlier
    /// batch was flushed, so only damage can have made an earlier one unreadable.
    /// Unflushed (relaxed) batches may reach the disk in any order: losing an
    /// earlier one just means an older state.
    fn scan_rest(&mut self, base: u64, from: u64, epoch: u64, next: u64) -> Result<Rest> {
        const CHUNK: u64 = 1 << 20;
        let rsize = self.header.region_size;
        let mut rest = Rest::default();
        let magic = format::REC_MAGIC.to_be_bytes();
        let mut at = from;
        // Chunks overlap by a record header so no header is missed at a seam.
        while at.saturating_add(REC_HDR as u64) <= rsize {
            let len = (rsize - at).min(CHUNK);
            let mut buf = vec![0u8; len as usize];
            self.be
                .read_at(base + at, &mut buf)
                .map_err(io(&self.path, "reading the log"))?;
            for (i, w) in buf.windows(REC_HDR).enumerate() {
                if w[..2] != magic {
                    continue;
                }
                let Some(h) = RecHeader::decode(w) else {
                    continue;
                };
                if h.epoch != epoch {
                    continue;
                }
                rest.leftovers = true;
                if h.seq > next && h.flags & format::REC_UNFLUSHED == 0 {
                    rest.damage_at = Some(at + i as u64);
                    return Ok(rest);
                }
            }
            if at + len >= rsize {
                break;
            }
            at += len - (REC_HDR as u64 - 1);
        }
        Ok(rest)
    }

    /// Append `ops` as one batch with one flush (durable mode); compacts first when
    /// the region is full. On error nothing changes in memory, and the next batch
    /// goes to a fresh epoch (compaction) rather than over the failed one.
    pub fn commit(&mut self, ops: &[Op]) -> Result<()> {
        if self.read_only {
            return Err(Error::Usage("the image is open read-only"));
        }
        let r = self.try_commit(ops);
        if r.is_err() {
            self.compact_pending = true;
        }
        r
    }

    fn try_commit(&mut self, ops: &[Op]) -> Result<()> {
        let seq = self.next_seq;
        let relaxed = self.sync == SyncMode::Relaxed;
        let batch = self.encode_batch(ops, (self.header.epoch, seq), relaxed, None);
        if self.compact_pending || self.tail + batch.len() as u64 > self.header.region_size {
            return self.compact(ops);
        }
        let base = self.header.region_offset(self.header.active);
        self.be
            .write_at(base + self.tail, &batch)
            .map_err(io(&self.path, "writing a batch"))?;
        if !relaxed {
            self.be
                .flush()
                .map_err(io(&self.path, "flushing a batch"))?;
        }
        self.tail += batch.len() as u64;
        self.next_seq = seq.wrapping_add(1);
        for op in ops {
            apply(&mut self.blobs, op.clone());
        }
        Ok(())
    }

    /// Make relaxed-mode batches durable (at a clean shutdown).
    pub fn sync_all(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.be.flush().map_err(io(&self.path, "flushing"))
    }

    /// Write the whole state (with `ops` applied) as the first batch of the other
    /// region, flush, then switch the header to it and flush again. The old region
    /// stays intact until the new header is durable; both flushes happen in relaxed
    /// mode too, or a power cut could leave the header pointing at nothing.
    fn compact(&mut self, ops: &[Op]) -> Result<()> {
        let mut next = self.blobs.clone();
        for op in ops {
            apply(&mut next, op.clone());
        }
        let snapshot: Vec<Op> = next
            .iter()
            .map(|(n, d)| Op::Put(n.clone(), d.to_vec()))
            .collect();
        // A fresh random epoch per attempt: what an interrupted or failed
        // attempt left in the other region can never pass for this log.
        let epoch = fresh_epoch(self.header.epoch);
        let seq = self.next_seq;
        let batch = self.encode_batch(&snapshot, (epoch, seq), false, Some(self.header.epoch));
        if batch.len() as u64 > self.header.region_size {
            return Err(Error::TooSmall {
                path: self.path.clone(),
                size: self.be.size(),
                needed: format::REGIONS_START + 2 * batch.len() as u64,
            });
        }
        let other = 1 - self.header.active;
        let base = self.header.region_offset(other);
        self.be
            .write_at(base, &batch)
            .map_err(io(&self.path, "writing a compacted log"))?;
        self.be
            .flush()
            .map_err(io(&self.path, "flushing a compacted log"))?;
        let mut header = self.header.clone();
        header.generation += 1;
        header.active = other;
        header.epoch = epoch;
        let old = std::mem::replace(&mut self.header, header);
        if let Err(e) = self.write_header() {
            self.header = old;
            return Err(e);
        }
        self.tail = batch.len() as u64;
        self.next_seq = seq.wrapping_add(1);
        self.blobs = next;
        self.compact_pending = false;
        Ok(())
    }

    /// Bytes a state holding `blobs` (name, size) takes as one batch: what a region must hold.
    pub fn snapshot_size<'a>(&self, blobs: impl Iterator<Item = (&'a str, u64)>) -> u64 {
        let mut total = self.record_size(4);
        for (name, size) in blobs {
            total += self.record_size(2 + name.len() + size as usize);
        }
        total
    }

    /// Size of the image.
    pub fn image_size(&self) -> u64 {
        self.be.size()
    }
}

fn apply(blobs: &mut Blobs, op: Op) {
    match op {
        Op::Put(n, d) => {
            blobs.insert(n, Zeroizing::new(d));
        }
        Op::Delete(n) => {
            blobs.remove(&n);
        }
    }
}

/// A random epoch other than `old` (63 bits, so it prints the same signed or not).
fn fresh_epoch(old: u64) -> u64 {
    loop {
        let e = rand::rngs::OsRng.next_u64() >> 1;
        if e != old && e != 0 {
            return e;
        }
    }
}

/// What reading one region's log found.
struct Log {
    blobs: Blobs,
    tail: u64,
    next_seq: u64,
    /// The epoch the first batch (a compaction's snapshot) replaced.
    first_parent: Option<u64>,
    leftovers: bool,
}

/// What lies beyond a log's tail.
#[derive(Default)]
struct Rest {
    /// A record proving damage before it.
    damage_at: Option<u64>,
    /// Any record of the live epoch at all.
    leftovers: bool,
}

fn damaged(path: &std::path::Path, structure: &str, problem: String) -> Error {
    Error::Damaged {
        path: path.to_path_buf(),
        structure: structure.to_string(),
        problem,
    }
}
