//! `vtpm nvram check` and `vtpm nvram salvage`: what of an image is intact
//! (header slots, whether it opens and what opening repairs, every intact
//! version of every blob), and a new image made of the newest intact version
//! of each blob. The examined image is opened read-only and never written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use zeroize::Zeroizing;

use crate::backend::{Backend, FileBackend};
use crate::cipher::ImageKey;
use crate::error::io;
use crate::error::{Error, Result};
use crate::format::{self, Header, Kind, REC_HDR, REC_TRAILER, SLOT_SIZE};
use crate::recovery::aad;
use crate::store::{Store, StoreOptions};
use crate::{KeySource, Nvram, OpenOptions, SyncMode};

/// One version of a blob found intact on the image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Version {
    /// The blob.
    pub name: String,
    /// Sequence number of the batch that wrote it (grows with every write).
    pub batch: u64,
    /// Its size, or None for a deletion.
    pub size: Option<u64>,
    /// Region holding it.
    pub region: u32,
}

/// What `check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// The image.
    pub path: String,
    /// Each header slot: what it says, or what is wrong with it.
    pub slots: Vec<String>,
    /// Whether vtpm opens the image (possibly after repairs from the copies).
    pub opens: bool,
    /// Why it does not open.
    pub open_error: Option<String>,
    /// What opening it for writing repairs.
    pub repairs: Vec<String>,
    /// Every intact version of every blob, oldest first.
    pub versions: Vec<Version>,
    /// Batches that were written (a later one follows) but of which nothing,
    /// or not every record, is intact: any of them may have held newer
    /// versions than the intact ones.
    pub damaged_batches: Vec<u64>,
    /// A running vtpm holds the image (the view may be a moment old).
    pub in_use: bool,
}

/// One blob as `salvage` copies it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Salvaged {
    /// The blob.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// The batch its contents come from.
    pub batch: u64,
    /// Whether this is certainly the latest version (false: a damaged later
    /// batch may have held a newer one).
    pub latest: bool,
}

/// An intact record.
struct Rec {
    epoch: u64,
    seq: u64,
    kind: Kind,
    unflushed: bool,
    plain: Zeroizing<Vec<u8>>,
    region: u32,
}

/// A blob's contents in a batch, None for a deletion.
type Contents = Option<Zeroizing<Vec<u8>>>;

/// The records of one batch that are intact.
#[derive(Default)]
struct Batch {
    /// Blob, contents, region.
    ops: Vec<(String, Contents, u32)>,
    /// The count its commit record announces, when that record is intact.
    commit: Option<u32>,
    /// A compaction's commit names the epoch it replaced.
    parent: Option<u64>,
    unflushed: bool,
}

/// Everything intact on an image, by (sequence number, epoch).
struct Scan {
    batches: BTreeMap<(u64, u64), Batch>,
}

fn open_key(
    header: Option<&Header>,
    key: Option<&KeySource>,
    path: &Path,
) -> Result<Option<ImageKey>> {
    let Some(h) = header else {
        return Ok(None);
    };
    match (h.encrypted(), key) {
        (true, None) => Err(Error::KeyRequired(path.to_path_buf())),
        (true, Some(src)) => {
            let k = ImageKey::derive(src, h.kdf, &h.salt)
                .filter(|k| k.verify(&h.key_check))
                .ok_or_else(|| Error::WrongKey(path.to_path_buf()))?;
            Ok(Some(k))
        }
        (false, Some(_)) => Err(Error::NotEncrypted(path.to_path_buf())),
        (false, None) => Ok(None),
    }
}

/// Read every record that checks out (both copies, both regions, any
/// epoch), keeping those whose epoch `trusted` admits.
fn scan(
    be: &mut dyn Backend,
    path: &Path,
    region_size: u64,
    key: Option<&ImageKey>,
) -> Result<Vec<Rec>> {
    let mut recs = Vec::new();
    let size = be.size();
    for region in 0..2u32 {
        let base = format::REGIONS_START + u64::from(region) * region_size;
        let end = (base + region_size).min(size);
        if base >= end {
            continue;
        }
        let mut buf = vec![0u8; (end - base) as usize];
        be.read_at(base, &mut buf)
            .map_err(io(path, "reading the log"))?;
        for (at, h) in format::headers_in(&buf) {
            let body = at + REC_HDR;
            let Some(payload) = buf.get(body..body + h.len as usize) else {
                continue;
            };
            let Some(crc) = buf.get(body + h.len as usize..body + h.len as usize + REC_TRAILER)
            else {
                continue;
            };
            if crc32c::crc32c(payload).to_be_bytes()[..] != crc[..] {
                continue;
            }
            let plain = match (key, h.flags & format::REC_ENCRYPTED != 0) {
                (Some(k), true) => {
                    match k.open_record(h.epoch, payload, &aad(h.kind, h.epoch, h.seq)) {
                        Some(p) => p,
                        None => continue,
                    }
                }
                (None, false) => Zeroizing::new(payload.to_vec()),
                _ => continue,
            };
            recs.push(Rec {
                epoch: h.epoch,
                seq: h.seq,
                kind: h.kind,
                unflushed: h.flags & format::REC_UNFLUSHED != 0,
                plain,
                region,
            });
        }
    }
    Ok(recs)
}

impl Scan {
    /// Group intact records into batches, keeping only epochs a header slot
    /// names (or, through a compaction's parent, leads to); every epoch when
    /// no slot is readable.
    fn build(recs: Vec<Rec>, slot_epochs: &BTreeSet<u64>) -> Scan {
        let mut all: BTreeMap<(u64, u64), Batch> = BTreeMap::new();
        // The two copies of a record are the same bytes: keep one.
        let mut seen = BTreeSet::new();
        for r in recs {
            if !seen.insert((r.epoch, r.seq, r.kind as u8, r.plain.to_vec())) {
                continue;
            }
            let b = all.entry((r.seq, r.epoch)).or_default();
            b.unflushed |= r.unflushed;
            match r.kind {
                Kind::Put => {
                    if let Some((name, data)) = format::split_put(&r.plain) {
                        b.ops
                            .push((name, Some(Zeroizing::new(data.to_vec())), r.region));
                    }
                }
                Kind::Delete => {
                    if let Ok(name) = std::str::from_utf8(&r.plain) {
                        b.ops.push((name.to_string(), None, r.region));
                    }
                }
                Kind::Commit => {
                    b.commit = r
                        .plain
                        .get(..4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    b.parent = r
                        .plain
                        .get(4..12)
                        .map(|p| u64::from_be_bytes(p.try_into().unwrap_or([0; 8])));
                }
            }
        }
        if slot_epochs.is_empty() {
            return Scan { batches: all };
        }
        // A compaction links its epoch to the one it replaced: follow the
        // links both ways (a log whose header write was lost, and the log
        // before the live one).
        let mut trusted = slot_epochs.clone();
        for _ in 0..2 {
            let linked: Vec<u64> = all
                .iter()
                .filter_map(|(&(_, e), b)| Some((e, b.parent?)))
                .flat_map(
                    |(e, p)| match (trusted.contains(&e), trusted.contains(&p)) {
                        (true, false) => Some(p),
                        (false, true) => Some(e),
                        _ => None,
                    },
                )
                .collect();
            trusted.extend(linked);
        }
        all.retain(|&(_, e), _| trusted.contains(&e));
        Scan { batches: all }
    }

    /// Sequence numbers of batches that were written before a later durable
    /// one but are not wholly intact (missing, or with records lost).
    fn damaged(&self) -> Vec<u64> {
        let Some(&(last_durable, _)) = self
            .batches
            .iter()
            .rev()
            .find(|(_, b)| !b.unflushed && b.commit.is_some())
            .map(|(k, _)| k)
        else {
            return Vec::new();
        };
        let Some(&(first, _)) = self.batches.keys().next() else {
            return Vec::new();
        };
        (first..last_durable)
            .filter(|s| {
                let mut at = self.batches.range((*s, 0)..=(*s, u64::MAX)).peekable();
                at.peek().is_none() || at.all(|(_, b)| b.commit != Some(b.ops.len() as u32))
            })
            .collect()
    }

    /// The newest intact version of each blob, from batches known to have
    /// been committed (their commit is intact, or a later batch follows).
    fn newest(&self) -> BTreeMap<String, (u64, Contents)> {
        let last = self.batches.keys().next_back().map(|k| k.0).unwrap_or(0);
        let mut state = BTreeMap::new();
        for (&(seq, _), b) in &self.batches {
            if b.commit.is_none() && seq == last {
                continue;
            }
            for (name, data, _) in &b.ops {
                state.insert(name.clone(), (seq, data.clone()));
            }
        }
        state
    }
}

/// Header slots as read: what each says, and the valid ones.
fn read_header_slots(be: &mut dyn Backend, path: &Path) -> Result<(Vec<String>, Vec<Header>)> {
    let mut lines = Vec::new();
    let mut valid = Vec::new();
    for slot in 0..2u64 {
        let mut b = vec![0u8; SLOT_SIZE as usize];
        if be.size() < (slot + 1) * SLOT_SIZE {
            lines.push(format!("slot {slot}: beyond the end of the image"));
            continue;
        }
        be.read_at(slot * SLOT_SIZE, &mut b)
            .map_err(io(path, "reading the header"))?;
        if b.iter().all(|&x| x == 0) {
            lines.push(format!("slot {slot}: blank (all zeros)"));
            continue;
        }
        match Header::decode(&b) {
            Ok(h) => {
                lines.push(format!(
                    "slot {slot}: format {}, generation {}, live log in region {}{}",
                    h.version,
                    h.generation,
                    h.active,
                    if h.encrypted() { ", encrypted" } else { "" }
                ));
                valid.push(h);
            }
            Err(e) => lines.push(format!("slot {slot}: {e}")),
        }
    }
    Ok((lines, valid))
}

/// An image examined: what its header slots say, whether vtpm opens it
/// (read-only), and every intact record grouped into batches.
struct Examined {
    slots: Vec<String>,
    opened: Result<Store>,
    scan: Scan,
    size: u64,
}

/// Read the image at `path` without changing it. Only a missing, wrong or
/// unneeded key is an error: everything else is a finding.
fn examine(path: &Path, key: Option<&KeySource>) -> Result<Examined> {
    let read_only = || FileBackend::open(path, None, true).map_err(io(path, "opening"));
    let (mut be, _) = read_only()?;
    let size = be.size();
    let (slots, valid) = read_header_slots(&mut be, path)?;
    let opened = Store::open(
        Box::new(read_only()?.0),
        StoreOptions {
            key,
            refuse_encrypted: false,
            sync: SyncMode::Relaxed,
            read_only: true,
            fresh: false,
        },
    );
    let opened = match opened {
        Err(e @ (Error::KeyRequired(_) | Error::WrongKey(_) | Error::NotEncrypted(_))) => {
            return Err(e)
        }
        other => other,
    };
    let live = valid.iter().max_by_key(|h| h.generation);
    if live.is_none() && key.is_some() {
        return Err(Error::Damaged {
            path: path.to_path_buf(),
            structure: "header".into(),
            problem: "both header slots are unreadable: an encrypted image's key cannot be derived without them".into(),
        });
    }
    let keyed = open_key(live, key, path)?;
    let region_size = live
        .map(|h| h.region_size)
        .unwrap_or(format::region_size_for(size));
    let recs = scan(&mut be, path, region_size, keyed.as_ref())?;
    let epochs: BTreeSet<u64> = valid.iter().map(|h| h.epoch).collect();
    Ok(Examined {
        slots,
        opened,
        scan: Scan::build(recs, &epochs),
        size,
    })
}

/// Examine the image at `path` without changing it.
pub fn check(path: &Path, key: Option<&KeySource>) -> Result<Check> {
    let e = examine(path, key)?;
    let (opens, open_error, repairs) = match &e.opened {
        Ok(s) => (true, None, s.findings().to_vec()),
        Err(err) => (false, Some(err.to_string()), Vec::new()),
    };
    let mut versions = Vec::new();
    for (&(seq, _), b) in &e.scan.batches {
        for (name, data, region) in &b.ops {
            versions.push(Version {
                name: name.clone(),
                batch: seq,
                size: data.as_ref().map(|d| d.len() as u64),
                region: *region,
            });
        }
    }
    Ok(Check {
        path: path.display().to_string(),
        slots: e.slots,
        opens,
        open_error,
        repairs,
        versions,
        damaged_batches: e.scan.damaged(),
        in_use: crate::backend::in_use(path),
    })
}

/// Write a new image at `to` (which must not exist) holding the newest intact
/// version of each blob of the image at `path`, encrypted with `key` when the
/// image is. The image at `path` is never written. Returns what was copied.
pub fn salvage(path: &Path, key: Option<KeySource>, to: &Path) -> Result<Vec<Salvaged>> {
    if to.exists() {
        return Err(Error::Usage(
            "the salvage target exists: name a new file (it is never overwritten)",
        ));
    }
    let (blobs, size) = salvage_plan(path, key.as_ref())?;
    // As large as the image (so it can be copied back onto a device), at
    // least the default size (room for two copies of the TPM's blobs), at
    // most the largest image vtpm lays out.
    let size = size.clamp(
        crate::DEFAULT_IMAGE_SIZE,
        format::REGIONS_START + 2 * format::MAX_REGION,
    );
    let mut nv = Nvram::open(
        to,
        OpenOptions {
            key,
            create_size: Some(size),
            ..Default::default()
        },
    )?;
    let mut out = Vec::new();
    let mut ops = Vec::new();
    for (name, (batch, data, latest)) in blobs {
        out.push(Salvaged {
            name: name.clone(),
            size: data.len() as u64,
            batch,
            latest,
        });
        ops.push(crate::ops::Op::Put(name, data.to_vec()));
    }
    nv.commit_all(&ops)?;
    Ok(out)
}

/// Blob name → (batch, contents, certainly the latest), and the image size.
#[allow(clippy::type_complexity)]
fn salvage_plan(
    path: &Path,
    key: Option<&KeySource>,
) -> Result<(BTreeMap<String, (u64, Zeroizing<Vec<u8>>, bool)>, u64)> {
    let e = examine(path, key)?;
    // An image that opens gives exactly its latest state.
    if let Ok(s) = &e.opened {
        let seq = s.next_seq().saturating_sub(1);
        let blobs = s
            .blobs()
            .iter()
            .map(|(n, d)| (n.clone(), (seq, d.clone(), true)))
            .collect();
        return Ok((blobs, e.size));
    }
    let damaged = e.scan.damaged();
    let mut blobs = BTreeMap::new();
    for (name, (batch, data)) in e.scan.newest() {
        if let Some(data) = data {
            let latest = !damaged.iter().any(|&d| d > batch);
            blobs.insert(name, (batch, data, latest));
        }
    }
    if blobs.is_empty() {
        return Err(Error::Damaged {
            path: path.to_path_buf(),
            structure: "log".into(),
            problem: "no intact blob found: nothing to salvage".into(),
        });
    }
    Ok((blobs, e.size))
}
