//! The log store: recovery of the committed state from the image, appending
//! a batch with one flush, and compaction into the other region.
//! Synchronous and single-owner; the storage thread drives it.

use std::path::PathBuf;

use rand::RngCore;

use crate::backend::Backend;
use crate::cipher::{self, ImageKey};
use crate::error::{damaged, io, Error, Result};
use crate::format::{
    self, CopyAt, Header, Kdf, Kind, Layout, RecHeader, REC_HDR, REC_TRAILER, SLOT_SIZE, VERSION,
    VERSION_1, VERSION_2,
};
use crate::ops::{apply, Blobs, Op};
use crate::recovery::{self, Log, Reader, Repair};
use crate::{KeySource, SyncMode};

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
    /// failed write, when recovery found leftovers of the live epoch, or to
    /// upgrade a format 1 image).
    compact_pending: bool,
    /// A format 1 image is to be rewritten in the current format by the next write.
    upgrade_pending: bool,
    /// Damaged copies of committed records found at open, not yet rewritten.
    repairs: Vec<Repair>,
    /// Header slots found unreadable at open, not yet rewritten.
    bad_slots: [bool; 2],
    /// What was found damaged and repairable at open, one line each.
    findings: Vec<String>,
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

/// What the header slots of `be` hold: nothing, an NVRAM header (its magic
/// is enough to tell the image is ours, valid or not), or something else.
pub(crate) fn header_slots(be: &mut dyn Backend) -> Result<Slots> {
    if be.size() < 2 * SLOT_SIZE {
        return Ok(Slots::Other);
    }
    let slots = read_slots(be)?;
    Ok(if slots.iter().any(|b| b.starts_with(format::MAGIC)) {
        Slots::Image
    } else if slots.iter().all(|b| is_blank(b)) {
        Slots::Blank
    } else {
        Slots::Other
    })
}

/// What [`header_slots`] found (and, for an NBD export, what it holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slots {
    /// Both slots all zeros.
    Blank,
    /// An NVRAM header in at least one slot.
    Image,
    /// Anything else.
    Other,
}

/// The offset of the header slot `h` goes to (`generation % 2`).
fn slot_of(h: &Header) -> u64 {
    (h.generation % 2) * SLOT_SIZE
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
        let header = match (&slots[0], &slots[1]) {
            (Ok(a), Ok(b)) => {
                if a.generation >= b.generation {
                    a.clone()
                } else {
                    b.clone()
                }
            }
            // One slot unreadable: either a compaction's header write was torn
            // (its log was flushed before) or the slot decayed. See below.
            (Ok(h), Err(_)) | (Err(_), Ok(h)) => h.clone(),
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
        let bad_slot = slots.iter().position(|h| h.is_err());
        let rolled = bad_slot.is_some() && s.roll_forward()?;
        if !rolled {
            s.recover()?;
        }
        if let Some(i) = bad_slot {
            s.bad_slots[i] = true;
            let what = match &slots[i] {
                Err(_) if is_blank(&raw[i]) && s.header.version == VERSION_1 => {
                    "never written (a format 1 image writes it at its first compaction)".to_string()
                }
                Err(e) => e.clone(),
                Ok(_) => String::new(),
            };
            s.findings.push(if rolled {
                format!(
                    "header slot {i}: {what}: it recorded a complete compaction; its log in region {} is used and the slot rewritten",
                    s.header.active
                )
            } else {
                format!("header slot {i}: {what}: rewritten from slot {}", 1 - i)
            });
        }
        // Upgraded by the first write: a compaction writes the whole state in
        // the current format to the other region, and the older log and
        // header stay untouched until the new ones are durable.
        s.upgrade_pending = s.header.version != VERSION;
        if !s.read_only {
            s.repair();
        }
        Ok(s)
    }

    /// A reader of `region`'s log laid out as `layout`.
    fn reader(&mut self, region: u32, layout: Layout) -> Reader<'_> {
        let base = self.header.region_offset(region);
        Reader::new(
            self.be.as_mut(),
            (&self.path, self.key.as_ref()),
            (region, base),
            layout,
        )
    }

    /// Take a recovered log as the committed state.
    fn adopt(&mut self, log: Log) {
        self.blobs = log.blobs;
        self.tail = log.tail;
        self.next_seq = log.next_seq;
        // Records of the live epoch beyond the tail (an interrupted batch, or
        // unflushed relaxed batches of which a later one reached the disk) must
        // never be linked up with what is appended next: move to a fresh epoch
        // in the other region before the next write.
        self.compact_pending |= log.leftovers;
        for r in &log.repairs {
            let which = if r.bad < r.good { "first" } else { "second" };
            self.findings.push(format!(
                "region {}: the {which} copy of a record of batch {} (offset {}, {} bytes) does not check out: rewritten from the other copy",
                r.region, r.seq, r.bad, r.len
            ));
        }
        self.repairs = log.repairs;
    }

    /// Rewrite what was found damaged at open from its redundant copy, with
    /// one flush. A failure here loses nothing (the state was recovered): it
    /// is reported, and the next write moves the whole state to the other
    /// region instead.
    fn repair(&mut self) {
        if self.repairs.is_empty() && self.bad_slots == [false; 2] {
            return;
        }
        if let Err(e) = self.try_repair() {
            self.findings.push(format!(
                "the repair could not be written ({e}); the next write moves the state to the other region"
            ));
            self.compact_pending = true;
        }
    }

    fn try_repair(&mut self) -> Result<()> {
        for r in std::mem::take(&mut self.repairs) {
            let base = self.header.region_offset(r.region);
            let mut buf = vec![0u8; r.len as usize];
            self.be
                .read_at(base + r.good, &mut buf)
                .map_err(io(&self.path, "reading a record to repair"))?;
            self.be
                .write_at(base + r.bad, &buf)
                .map_err(io(&self.path, "repairing a record"))?;
        }
        let live = (self.header.generation % 2) as usize;
        for slot in 0..2 {
            if std::mem::take(&mut self.bad_slots[slot]) {
                // The same header, its generation of this slot's parity.
                let mut h = self.header.clone();
                if slot != live {
                    h.generation = match h.generation {
                        0 => 1,
                        g => g - 1,
                    };
                }
                self.write_slot(&h)?;
            }
        }
        self.be
            .flush()
            .map_err(io(&self.path, "flushing the repairs"))
    }

    /// Note (for the log) that the image cannot hold `need` bytes twice
    /// over in a region: while the state fits, it keeps its copies; a state
    /// larger than that is kept in format 1, without them.
    pub fn note_small(&mut self, need: u64) {
        self.findings.push(format!(
            "the image ({} bytes) cannot hold the blobs at their registered maxima twice over ({need} bytes each): a state of up to {} bytes keeps a redundant copy of every record, a larger one is kept without (format 1); an image of {} bytes or more always has room",
            self.be.size(),
            Layout::of(VERSION, self.header.region_size).largest_batch(),
            format::REGIONS_START + 4 * need + 4 * SLOT_SIZE
        ));
    }

    /// What was found damaged at open (and, on a writable open, rewritten).
    pub fn findings(&self) -> &[String] {
        &self.findings
    }

    /// Add a line to what open found (for the log).
    pub fn note(&mut self, line: String) {
        self.findings.push(line);
    }

    /// With one header slot unreadable, the other region may hold the log of
    /// a compaction whose header is the unreadable one: a committed snapshot
    /// naming the live epoch as its parent, fully flushed before that header
    /// was written. If so it is the newest state: use it and (when writable)
    /// rewrite the slot, so the next compaction cannot overwrite the only good one.
    fn roll_forward(&mut self) -> Result<bool> {
        let other = 1 - self.header.active;
        let base = self.header.region_offset(other);
        // The epoch of the other region's first record: at its start, or at
        // its copy (format 2: half a region on; format 3: a few blocks on).
        let region = self.header.region_size;
        let mut at = vec![0];
        if let CopyAt::Mirror(m) = Layout::of(VERSION_2, region).copy {
            at.push(m);
        }
        at.extend((1..=16).map(|b| b * format::BLOCK));
        let mut epoch = None;
        for at in at {
            let mut first = [0u8; REC_HDR];
            self.be
                .read_at(base + at, &mut first)
                .map_err(io(&self.path, "reading the log"))?;
            if let Some(h) = RecHeader::decode(&first) {
                epoch = Some(h.epoch);
                break;
            }
        }
        let Some(epoch) = epoch else {
            return Ok(false);
        };
        // Compactions write the current format, or format 1 when the state
        // does not fit twice; an older image may hold one written by an older
        // vtpm in its own format. A snapshot says the format it was written in.
        for version in (VERSION_1..=VERSION).rev() {
            let layout = Layout::of(version, region);
            let log = match self.reader(other, layout).read_log(epoch) {
                Ok(log) => log,
                Err(e @ Error::Io { .. }) => return Err(e),
                Err(_) => continue,
            };
            let snapshot_ok = log.snapshot_version.unwrap_or(VERSION_1) == version;
            if log.first_parent != Some(self.header.epoch) || !snapshot_ok {
                continue;
            }
            self.header.version = version;
            self.header.generation += 1;
            self.header.active = other;
            self.header.epoch = epoch;
            self.adopt(log);
            return Ok(true);
        }
        Ok(false)
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
        let region_size = format::region_size_for(size);
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
            version: VERSION,
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
        // Both slots, so either alone describes the image.
        let mut older = s.header.clone();
        older.generation = 0;
        s.write_slot(&older)?;
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
            upgrade_pending: false,
            repairs: Vec::new(),
            bad_slots: [false; 2],
            findings: Vec::new(),
        }
    }

    /// Write `h` to its slot, without a flush.
    fn write_slot(&mut self, h: &Header) -> Result<()> {
        self.be
            .write_at(slot_of(h), &h.encode())
            .map_err(io(&self.path, "writing the header"))
    }

    /// Write the live header to its slot, durably.
    fn write_header(&mut self) -> Result<()> {
        let h = self.header.clone();
        self.be
            .write_durable(&[(slot_of(&h), &h.encode())])
            .map_err(io(&self.path, "writing the header and flushing it"))
    }

    /// Sequence number the next batch gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
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
                k.seal_record(epoch, plain, &recovery::aad(kind, epoch, seq))
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
        (parent, version): (Option<u64>, u32),
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
            commit.extend_from_slice(&version.to_be_bytes());
        }
        self.push_record(&mut out, (Kind::Commit, flags), epoch, seq, &commit);
        out
    }

    /// Rebuild the committed state from the active region.
    fn recover(&mut self) -> Result<()> {
        let (active, layout, epoch) = (self.header.active, self.header.layout(), self.header.epoch);
        let log = self.reader(active, layout).read_log(epoch)?;
        self.adopt(log);
        Ok(())
    }

    /// Write `batch` at log offset `at` of `region`, both copies; `durable`:
    /// made durable with everything before it before this returns.
    fn write_copies(
        &mut self,
        (region, layout, at): (u32, Layout, u64),
        batch: &[u8],
        durable: bool,
    ) -> Result<()> {
        let base = self.header.region_offset(region);
        let placed = layout.placements(at, batch);
        let writes: Vec<(u64, &[u8])> = placed.iter().map(|(o, b)| (base + o, &b[..])).collect();
        if durable {
            return self
                .be
                .write_durable(&writes)
                .map_err(io(&self.path, "writing a batch and flushing it"));
        }
        for (off, bytes) in writes {
            self.be
                .write_at(off, bytes)
                .map_err(io(&self.path, "writing a batch"))?;
        }
        Ok(())
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
        let batch = self.encode_batch(ops, (self.header.epoch, seq), relaxed, (None, 0));
        let layout = self.header.layout();
        let footprint = layout.footprint(batch.len() as u64);
        if self.compact_pending || self.upgrade_pending || self.tail + footprint > layout.capacity {
            return self.compact(ops);
        }
        self.write_copies((self.header.active, layout, self.tail), &batch, !relaxed)?;
        self.tail += footprint;
        self.next_seq = seq.wrapping_add(1);
        for op in ops {
            apply(&mut self.blobs, op.clone());
        }
        Ok(())
    }

    /// Give the backend up after a hand-over (see [`Backend::release`]).
    pub fn release_backend(&mut self) -> Result<()> {
        self.be
            .release()
            .map_err(io(&self.path, "releasing the lock"))
    }

    /// The backend's periodic work (see [`Backend::heartbeat`]); when to call again.
    pub fn heartbeat(&mut self) -> Option<std::time::Duration> {
        if self.read_only {
            return None;
        }
        self.be.heartbeat()
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
        // In the current format (this is how a format 1 image is upgraded);
        // in format 1, without copies, when the state no longer fits twice in
        // a region (only in images smaller than the default).
        let parent = Some(self.header.epoch);
        let mut version = VERSION;
        let mut batch = self.encode_batch(&snapshot, (epoch, seq), false, (parent, version));
        if batch.len() as u64 > Layout::of(VERSION, self.header.region_size).largest_batch() {
            version = VERSION_1;
            batch = self.encode_batch(&snapshot, (epoch, seq), false, (parent, version));
        }
        let layout = Layout::of(version, self.header.region_size);
        if batch.len() as u64 > layout.largest_batch() {
            return Err(Error::TooSmall {
                path: self.path.clone(),
                size: self.be.size(),
                needed: format::REGIONS_START + 4 * batch.len() as u64 + 4 * SLOT_SIZE,
            });
        }
        let other = 1 - self.header.active;
        self.write_copies((other, layout, 0), &batch, true)?;
        let mut header = self.header.clone();
        header.version = version;
        header.generation += 1;
        header.active = other;
        header.epoch = epoch;
        let old = std::mem::replace(&mut self.header, header);
        if let Err(e) = self.write_header() {
            self.header = old;
            return Err(e);
        }
        // The other slot gets the same header (one generation lower), so
        // either slot alone describes the image. Not flushed: the next batch's
        // flush carries it; if it fails or never lands, the live slot is
        // durable and the next open rewrites this one.
        let mut twin = self.header.clone();
        twin.generation -= 1;
        let _ = self.write_slot(&twin);
        self.tail = layout.footprint(batch.len() as u64);
        self.next_seq = seq.wrapping_add(1);
        self.blobs = next;
        self.compact_pending = false;
        self.upgrade_pending = false;
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

/// A random epoch other than `old` (63 bits, so it prints the same signed or not).
fn fresh_epoch(old: u64) -> u64 {
    loop {
        let e = rand::rngs::OsRng.next_u64() >> 1;
        if e != old && e != 0 {
            return e;
        }
    }
}
