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
}

fn io<'a>(
    path: &'a std::path::Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
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
        let mut slots = Vec::new();
        let mut blank = true;
        for i in 0..2u64 {
            let mut b = vec![0u8; SLOT_SIZE as usize];
            be.read_at(i * SLOT_SIZE, &mut b)
                .map_err(io(&path, "reading the header"))?;
            blank &= b.iter().all(|&x| x == 0);
            slots.push(Header::decode(&b));
        }
        if blank && !opts.read_only {
            // A blank raw image or block device (both header slots all zero) is
            // formatted; anything else that fails the checks is reported, never reset.
            return Store::format(be, &opts);
        }
        let header = match (&slots[0], &slots[1]) {
            (Ok(a), Ok(b)) => {
                if a.generation >= b.generation {
                    a.clone()
                } else {
                    b.clone()
                }
            }
            (Ok(a), Err(_)) => a.clone(),
            (Err(_), Ok(b)) => b.clone(),
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
        s.recover()?;
        Ok(s)
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
        let region_size = ((size - format::REGIONS_START) / 2) & !(SLOT_SIZE - 1);
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
        let epoch = rand::rngs::OsRng.next_u64() >> 1;
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

    fn push_record(&self, out: &mut Vec<u8>, kind: Kind, epoch: u64, seq: u64, plain: &[u8]) {
        let (flags, payload) = match &self.key {
            Some(k) => (1u8, k.seal(plain, &Self::aad(kind, epoch, seq))),
            None => (0u8, plain.to_vec()),
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

    fn encode_batch(&self, ops: &[Op], epoch: u64, seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Put(name, data) => self.push_record(
                    &mut out,
                    Kind::Put,
                    epoch,
                    seq,
                    &format::put_payload(name, data),
                ),
                Op::Delete(name) => {
                    self.push_record(&mut out, Kind::Delete, epoch, seq, name.as_bytes())
                }
            }
        }
        self.push_record(
            &mut out,
            Kind::Commit,
            epoch,
            seq,
            &(ops.len() as u32).to_be_bytes(),
        );
        out
    }

    /// Rebuild the committed state from the active region.
    fn recover(&mut self) -> Result<()> {
        let base = self.header.region_offset(self.header.active);
        let rsize = self.header.region_size;
        let epoch = self.header.epoch;
        let mut off = 0u64;
        let mut committed_end = 0u64;
        let mut expected: Option<u64> = None;
        let mut pending: Vec<Op> = Vec::new();
        let mut batch_seq = 0u64;
        loop {
            if off + REC_HDR as u64 > rsize {
                break;
            }
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
            if off + h.total() > rsize {
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
            let at = format!("record at region {} offset {off}", self.header.active);
            let plain: Zeroizing<Vec<u8>> = match (&self.key, h.flags & 1 != 0) {
                (Some(k), true) => k
                    .open(payload, &Self::aad(h.kind, h.epoch, h.seq))
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
                    for op in pending.drain(..) {
                        apply(&mut self.blobs, op);
                    }
                    committed_end = off;
                    expected = Some(batch_seq + 1);
                }
            }
        }
        let next = expected.unwrap_or(1);
        if let Some(found) = self.later_commit(base, committed_end, next)? {
            return Err(damaged(
                &self.path,
                &format!("record at region {} offset {committed_end}", self.header.active),
                format!("does not check out, yet committed records follow it (offset {found}): the image is damaged"),
            ));
        }
        self.tail = committed_end;
        self.next_seq = next;
        Ok(())
    }

    /// Offset of a valid record header of this epoch with a sequence number
    /// beyond `next` after `from`: proof that the log stopped at damage rather
    /// than at an interrupted write (which can only be the last batch).
    fn later_commit(&mut self, base: u64, from: u64, next: u64) -> Result<Option<u64>> {
        let rsize = self.header.region_size;
        if from >= rsize {
            return Ok(None);
        }
        let mut rest = vec![0u8; (rsize - from) as usize];
        self.be
            .read_at(base + from, &mut rest)
            .map_err(io(&self.path, "reading the log"))?;
        let magic = format::REC_MAGIC.to_be_bytes();
        for i in 1..rest.len().saturating_sub(REC_HDR) {
            if rest[i] == magic[0] && rest[i + 1] == magic[1] {
                if let Some(h) = RecHeader::decode(&rest[i..]) {
                    if h.epoch == self.header.epoch && h.seq > next {
                        return Ok(Some(from + i as u64));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Append `ops` as one batch with one flush (durable mode); compacts first when
    /// the region is full. On error nothing changes in memory.
    pub fn commit(&mut self, ops: &[Op]) -> Result<()> {
        if self.read_only {
            return Err(Error::Usage("the image is open read-only"));
        }
        let seq = self.next_seq;
        let batch = self.encode_batch(ops, self.header.epoch, seq);
        if self.tail + batch.len() as u64 > self.header.region_size {
            return self.compact(ops);
        }
        let base = self.header.region_offset(self.header.active);
        self.be
            .write_at(base + self.tail, &batch)
            .map_err(io(&self.path, "writing a batch"))?;
        if self.sync == SyncMode::Durable {
            self.be
                .flush()
                .map_err(io(&self.path, "flushing a batch"))?;
        }
        self.tail += batch.len() as u64;
        self.next_seq += 1;
        for op in ops {
            apply(&mut self.blobs, op.clone());
        }
        Ok(())
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
        let epoch = self.header.epoch.wrapping_add(1);
        let seq = self.next_seq;
        let batch = self.encode_batch(&snapshot, epoch, seq);
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
        self.next_seq = seq + 1;
        self.blobs = next;
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

fn damaged(path: &std::path::Path, structure: &str, problem: String) -> Error {
    Error::Damaged {
        path: path.to_path_buf(),
        structure: structure.to_string(),
        problem,
    }
}
