//! Crash consistency: randomised write sequences with a power loss at every
//! operation (each write and each flush), the unflushed writes partly kept and
//! the last kept one torn at a 512-byte boundary. After reopening, the state
//! must be exactly the state after some batch, never torn or mixed, and in
//! durable mode never older than the last acknowledged batch. Also: injected
//! write and flush failures reach the caller and leave the old contents.

use std::collections::BTreeMap;

use nvram::backend::MemBackend;
use nvram::fault::{FaultBackend, FaultPlan};
use nvram::format::{Header, Kind};
use nvram::ops::Op;
use nvram::store::{Store, StoreOptions};
use nvram::{KeySource, SyncMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type State = BTreeMap<String, Vec<u8>>;

const IMAGE: usize = 64 * 1024;

/// Durable or relaxed, plain or encrypted.
#[derive(Clone, Copy)]
struct Mode {
    sync: SyncMode,
    encrypted: bool,
}

const DURABLE: Mode = Mode {
    sync: SyncMode::Durable,
    encrypted: false,
};

fn key(mode: Mode) -> Option<KeySource> {
    mode.encrypted
        .then(|| KeySource::Raw(zeroize::Zeroizing::new([7; 32])))
}

fn formatted(mode: Mode) -> Vec<u8> {
    let be = FaultBackend::new(vec![0; IMAGE], FaultPlan::default());
    let key = key(mode);
    let opts = StoreOptions {
        key: key.as_ref(),
        refuse_encrypted: false,
        sync: SyncMode::Durable,
        read_only: false,
        fresh: true,
    };
    Store::open(Box::new(be.clone()), opts).unwrap();
    be.image()
}

fn open(be: Box<dyn nvram::Backend>, mode: Mode) -> nvram::Result<Store> {
    let key = key(mode);
    Store::open(
        be,
        StoreOptions {
            key: key.as_ref(),
            refuse_encrypted: false,
            sync: mode.sync,
            read_only: false,
            fresh: false,
        },
    )
}

fn batches(rng: &mut StdRng) -> Vec<Vec<Op>> {
    let names = ["tpm2/permanent", "tpm2/volatile", "efi/vars"];
    (0..rng.gen_range(4..14))
        .map(|_| {
            (0..rng.gen_range(1..=3))
                .map(|_| {
                    let name = names[rng.gen_range(0..names.len())].to_string();
                    if rng.gen_bool(0.15) {
                        Op::Delete(name)
                    } else {
                        let len = rng.gen_range(0..2500);
                        let fill: u8 = rng.gen();
                        Op::Put(name, (0..len).map(|i| fill.wrapping_add(i as u8)).collect())
                    }
                })
                .collect()
        })
        .collect()
}

fn apply(state: &State, ops: &[Op]) -> State {
    let mut s = state.clone();
    for op in ops {
        match op {
            Op::Put(n, d) => {
                s.insert(n.clone(), d.clone());
            }
            Op::Delete(n) => {
                s.remove(n);
            }
        }
    }
    s
}

fn recovered(store: &Store) -> State {
    store
        .blobs()
        .iter()
        .map(|(n, d)| (n.clone(), d.to_vec()))
        .collect()
}

/// How the disk looked after the power went out.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// The first `keep` unflushed writes in order, the last torn after `torn` sectors.
    Prefix { keep: usize, torn: usize },
    /// Any subset of the unflushed sectors (out-of-order write-back).
    Scrambled(u64),
}

/// Run one sequence with a crash at operation `crash_at`; check every recovery variant.
fn crash_once(base: &[u8], seq: &[Vec<Op>], mode: Mode, crash_at: u64, rng: &mut StdRng) -> usize {
    let be = FaultBackend::new(
        base.to_vec(),
        FaultPlan {
            crash_at: Some(crash_at),
            fail_at: None,
        },
    );
    let mut store = open(Box::new(be.clone()), mode).unwrap();
    let mut states = vec![State::new()];
    let mut floor = 0; // index of the oldest state recovery may return
    for ops in seq {
        let next = apply(states.last().unwrap(), ops);
        states.push(next);
        match store.commit(ops) {
            Ok(()) => {
                if mode.sync == SyncMode::Durable || be.unflushed() == 0 {
                    floor = states.len() - 1;
                }
            }
            Err(_) => break,
        }
    }
    assert!(be.crashed(), "the crash point lies inside the sequence");
    let mut checked = 0;
    let unflushed = be.unflushed();
    let variants = [
        Loss::Prefix { keep: 0, torn: 0 },
        Loss::Prefix {
            keep: unflushed,
            torn: 0,
        },
        Loss::Prefix {
            keep: unflushed,
            torn: 3,
        },
        Loss::Prefix {
            keep: rng.gen_range(0..=unflushed),
            torn: rng.gen_range(0..16),
        },
        Loss::Scrambled(rng.gen()),
    ];
    for (i, loss) in variants.into_iter().enumerate() {
        let image = match loss {
            Loss::Prefix { keep, torn } => be.after_power_loss(keep, torn),
            Loss::Scrambled(seed) => be.after_power_loss_scrambled(seed),
        };
        let disk = FaultBackend::new(image, FaultPlan::default());
        let mut store = open(Box::new(disk.clone()), mode)
            .unwrap_or_else(|e| panic!("reopen after crash at op {crash_at} ({loss:?}): {e}"));
        let got = recovered(&store);
        let ok = states.iter().skip(floor).any(|s| *s == got);
        assert!(ok, "crash at op {crash_at} ({loss:?}): recovered state is torn, mixed or older than acknowledged (floor {floor})");
        checked += 1;
        // Life goes on after the crash: what is written next must come back
        // exactly, never mixed with leftovers of the interrupted run.
        if i >= 3 {
            let mut want = got;
            for ops in seq.iter().take(2) {
                store.commit(ops).unwrap();
                want = apply(&want, ops);
            }
            drop(store);
            let again = open(Box::new(MemBackend { data: disk.image() }), mode).unwrap();
            assert_eq!(
                recovered(&again),
                want,
                "crash at op {crash_at} ({loss:?}), then two more batches"
            );
        }
    }
    checked
}

fn run(mode: Mode, sequences: u64) -> (u64, usize) {
    let base = formatted(mode);
    let mut points = 0u64;
    let mut recoveries = 0usize;
    for s in 0..sequences {
        let mut rng = StdRng::seed_from_u64(s * 7919 + mode.sync as u64);
        let seq = batches(&mut rng);
        // A dry run counts the operations of this sequence.
        let dry = FaultBackend::new(base.clone(), FaultPlan::default());
        let mut store = open(Box::new(dry.clone()), mode).unwrap();
        for ops in &seq {
            store.commit(ops).unwrap();
        }
        for p in 0..dry.ops() {
            recoveries += crash_once(&base, &seq, mode, p, &mut rng);
            points += 1;
        }
    }
    (points, recoveries)
}

#[test]
fn crash_at_every_point_durable() {
    let (points, recoveries) = run(DURABLE, 600);
    println!("durable mode: {points} crash points tried, {recoveries} recoveries checked");
    assert!(points >= 10_000, "only {points} crash points");
}

#[test]
fn crash_at_every_point_relaxed() {
    let mode = Mode {
        sync: SyncMode::Relaxed,
        encrypted: false,
    };
    let (points, recoveries) = run(mode, 1200);
    println!("relaxed mode: {points} crash points tried, {recoveries} recoveries checked");
    assert!(points >= 10_000, "only {points} crash points");
}

#[test]
fn crash_at_every_point_encrypted() {
    let mode = Mode {
        sync: SyncMode::Durable,
        encrypted: true,
    };
    let (points, recoveries) = run(mode, 150);
    println!("encrypted, durable: {points} crash points tried, {recoveries} recoveries checked");
    assert!(points >= 2_000, "only {points} crash points");
}

#[test]
fn failed_writes_and_flushes_reach_the_caller_and_keep_old_contents() {
    let base = formatted(DURABLE);
    let mut tried = 0;
    for fail_at in 0..40u64 {
        let be = FaultBackend::new(
            base.clone(),
            FaultPlan {
                fail_at: Some(fail_at),
                crash_at: None,
            },
        );
        let mut store = open(Box::new(be.clone()), DURABLE).unwrap();
        let mut state = State::new();
        let mut failed = false;
        for i in 0..20u8 {
            let ops = vec![Op::Put("tpm2/permanent".into(), vec![i; 1500])];
            let before = recovered(&store);
            match store.commit(&ops) {
                Ok(()) => state = apply(&state, &ops),
                Err(e) => {
                    failed = true;
                    assert!(e.to_string().contains("injected"), "{e}");
                    assert_eq!(
                        recovered(&store),
                        before,
                        "a failed write leaves the previous contents readable"
                    );
                }
            }
        }
        // Every failure reaches the caller, except that of the second header
        // slot after a compaction: that write is redundancy, the commit is
        // durable without it, and the next open rewrites the slot.
        let twin = be.op_log()[fail_at as usize]
            .is_some_and(|off| off < nvram::format::REGIONS_START)
            && be.op_log()[fail_at as usize - 1].is_none();
        assert!(failed || twin, "op {fail_at} was inside the run");
        assert_eq!(recovered(&store), state);
        // What is on the disk reopens to the acknowledged state or a newer one.
        let reopened = open(Box::new(MemBackend { data: be.image() }), DURABLE).unwrap();
        assert_eq!(recovered(&reopened), state);
        tried += 1;
    }
    assert_eq!(tried, 40);
}

/// A store on a fresh simulated disk that has compacted at least once, with
/// batches appended after the compaction; returns it with the disk and state.
fn compacted() -> (FaultBackend, Store, State) {
    let be = FaultBackend::new(formatted(DURABLE), FaultPlan::default());
    let mut store = open(Box::new(be.clone()), DURABLE).unwrap();
    let mut state = State::new();
    let mut i = 0u8;
    while store.header.generation < 2 || store.tail < 8000 {
        let ops = vec![Op::Put(format!("b{}", i % 3), vec![i; 1800])];
        store.commit(&ops).unwrap();
        state = apply(&state, &ops);
        i = i.wrapping_add(1);
    }
    (be, store, state)
}

#[test]
fn a_lost_live_header_slot_rolls_forward_to_the_compacted_log() {
    let (be, store, state) = compacted();
    let live = (store.header.generation % 2) as usize * nvram::format::SLOT_SIZE as usize;
    drop(store);
    for damage in [0u8, 0x10] {
        let mut image = be.image();
        if damage == 0 {
            // Never written (a torn first write of slot 0).
            image[live..live + 4096].fill(0);
        } else {
            image[live + 20] ^= damage;
        }
        let disk = FaultBackend::new(image, FaultPlan::default());
        let store = open(Box::new(disk.clone()), DURABLE).unwrap();
        assert_eq!(recovered(&store), state, "no acknowledged batch lost");
        drop(store);
        // The slot was rewritten: the image now opens with both slots valid.
        let slot = disk.image()[live..live + 4096].to_vec();
        assert!(nvram::format::Header::decode(&slot).is_ok());
    }
}

#[test]
fn a_damaged_older_header_slot_is_harmless() {
    let (be, store, state) = compacted();
    let older = ((store.header.generation + 1) % 2) as usize * nvram::format::SLOT_SIZE as usize;
    drop(store);
    let mut image = be.image();
    image[older + 30] ^= 0x01;
    let store = open(Box::new(MemBackend { data: image }), DURABLE).unwrap();
    assert_eq!(recovered(&store), state);
}

#[test]
fn a_failed_header_flush_never_resurfaces_a_stale_compaction() {
    // Find the compaction's header flush in a dry run, then fail exactly it.
    let base = formatted(DURABLE);
    let dry = FaultBackend::new(base.clone(), FaultPlan::default());
    let mut store = open(Box::new(dry.clone()), DURABLE).unwrap();
    let big = |i: u8| vec![Op::Put("big".into(), vec![i; 9000])];
    let mut header_flush = None;
    for i in 0..6u8 {
        let gen = store.header.generation;
        store.commit(&big(i)).unwrap();
        if store.header.generation != gen {
            let log = dry.op_log();
            header_flush = log.iter().rposition(|op| op.is_none()).map(|i| i as u64);
            break;
        }
    }
    let fail_at = header_flush.expect("a compaction happened");
    let be = FaultBackend::new(
        base,
        FaultPlan {
            fail_at: Some(fail_at),
            crash_at: None,
        },
    );
    let mut store = open(Box::new(be.clone()), DURABLE).unwrap();
    let mut state = State::new();
    let mut failed = 0;
    for i in 0..6u8 {
        // Small writes after the failure would fit in the old region.
        let ops = if failed > 0 {
            vec![Op::Put("small".into(), vec![i; 10])]
        } else {
            big(i)
        };
        match store.commit(&ops) {
            Ok(()) => state = apply(&state, &ops),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(failed, 1);
    let reopened = open(Box::new(MemBackend { data: be.image() }), DURABLE).unwrap();
    assert_eq!(recovered(&reopened), state);
}

#[test]
fn hostile_images_give_errors_never_panics() {
    let mut rng = StdRng::seed_from_u64(99);
    for encrypted in [false, true] {
        let mode = Mode {
            sync: SyncMode::Durable,
            encrypted,
        };
        let be = FaultBackend::new(formatted(mode), FaultPlan::default());
        let mut store = open(Box::new(be.clone()), mode).unwrap();
        for ops in batches(&mut rng).iter().chain(batches(&mut rng).iter()) {
            store.commit(ops).unwrap();
        }
        drop(store);
        let good = be.image();
        let live = [&good[..4096], &good[4096..8192]]
            .into_iter()
            .filter_map(|b| Header::decode(b).ok())
            .max_by_key(|h| h.generation)
            .unwrap();
        let (mut ok, mut refused) = (0, 0);
        for i in 0..2000 {
            let mut img = good.clone();
            match i % 4 {
                // Flipped bytes anywhere.
                0 => {
                    for _ in 0..rng.gen_range(1..8) {
                        let at = rng.gen_range(0..img.len());
                        img[at] ^= 1 << rng.gen_range(0..8);
                    }
                }
                // A header slot with random sizes and positions, checksum fixed up.
                1 => {
                    let slot = rng.gen_range(0..2) * 4096;
                    // image_size, region_size, generation, active, epoch.
                    for (field, len) in [(16usize, 8usize), (24, 8), (32, 8), (40, 4), (44, 8)] {
                        if rng.gen_bool(0.5) {
                            let v: u64 = match rng.gen_range(0..3) {
                                0 => rng.gen(),
                                1 => rng.gen_range(0..4),
                                _ => rng.gen_range(0..IMAGE as u64 * 2),
                            };
                            img[slot + field..slot + field + len]
                                .copy_from_slice(&v.to_be_bytes()[8 - len..]);
                        }
                    }
                    let crc = crc32c::crc32c(&img[slot..slot + 125]);
                    img[slot + 125..slot + 129].copy_from_slice(&crc.to_be_bytes());
                }
                // Record headers of the live epoch, checksums right, of
                // random kinds, sequence numbers and lengths, at block
                // boundaries of the live region: what recovery follows to
                // find a batch's copy.
                3 => {
                    let base = live.region_offset(live.active) as usize;
                    let blocks = live.region_size as usize / 4096;
                    for _ in 0..rng.gen_range(1..6) {
                        let h = nvram::format::RecHeader {
                            kind: [Kind::Put, Kind::Delete, Kind::Commit][rng.gen_range(0..3)],
                            flags: rng.gen_range(0..4),
                            epoch: live.epoch,
                            seq: rng.gen_range(0..64),
                            len: match rng.gen_range(0..3) {
                                0 => rng.gen_range(0..64),
                                1 => rng.gen_range(0..20_000),
                                _ => rng.gen_range(0..=nvram::format::MAX_PAYLOAD),
                            },
                        };
                        let at = base + rng.gen_range(0..blocks) * 4096;
                        img[at..at + nvram::format::REC_HDR].copy_from_slice(&h.encode());
                    }
                }
                // Truncated, or garbage over part of a region.
                _ => {
                    if rng.gen_bool(0.3) {
                        img.truncate(rng.gen_range(0..img.len()));
                    } else {
                        let at = rng.gen_range(8192..img.len());
                        let end = (at + rng.gen_range(1..3000)).min(img.len());
                        rng.fill(&mut img[at..end]);
                    }
                }
            }
            match open(Box::new(MemBackend { data: img }), mode) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    refused += 1;
                }
            }
        }
        println!("hostile images (encrypted {encrypted}): {ok} opened, {refused} refused");
        assert!(refused > 0);
    }
}
