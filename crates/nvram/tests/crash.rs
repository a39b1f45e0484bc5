//! Crash consistency: randomised write sequences with a power loss at every
//! operation (each write and each flush), the unflushed writes partly kept and
//! the last kept one torn at a 512-byte boundary. After reopening, the state
//! must be exactly the state after some batch, never torn or mixed, and in
//! durable mode never older than the last acknowledged batch. Also: injected
//! write and flush failures reach the caller and leave the old contents.

use std::collections::BTreeMap;

use nvram::backend::MemBackend;
use nvram::fault::{FaultBackend, FaultPlan};
use nvram::store::{Op, Store, StoreOptions};
use nvram::SyncMode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type State = BTreeMap<String, Vec<u8>>;

const IMAGE: usize = 64 * 1024;

fn formatted() -> Vec<u8> {
    let be = FaultBackend::new(vec![0; IMAGE], FaultPlan::default());
    let opts = StoreOptions {
        key: None,
        refuse_encrypted: false,
        sync: SyncMode::Durable,
        read_only: false,
        fresh: true,
    };
    Store::open(Box::new(be.clone()), opts).unwrap();
    be.image()
}

fn open(be: Box<dyn nvram::Backend>, sync: SyncMode) -> nvram::Result<Store> {
    Store::open(
        be,
        StoreOptions {
            key: None,
            refuse_encrypted: false,
            sync,
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

/// Run one sequence with a crash at operation `crash_at`; check every recovery variant.
fn crash_once(
    base: &[u8],
    seq: &[Vec<Op>],
    sync: SyncMode,
    crash_at: u64,
    rng: &mut StdRng,
) -> usize {
    let be = FaultBackend::new(
        base.to_vec(),
        FaultPlan {
            crash_at: Some(crash_at),
            fail_at: None,
        },
    );
    let mut store = open(Box::new(be.clone()), sync).unwrap();
    let mut states = vec![State::new()];
    let mut floor = 0; // index of the oldest state recovery may return
    for ops in seq {
        let next = apply(states.last().unwrap(), ops);
        states.push(next);
        match store.commit(ops) {
            Ok(()) => {
                if sync == SyncMode::Durable || be.unflushed() == 0 {
                    floor = states.len() - 1;
                }
            }
            Err(_) => break,
        }
    }
    assert!(be.crashed(), "the crash point lies inside the sequence");
    let mut checked = 0;
    let unflushed = be.unflushed();
    let mut variants = vec![(0, 0), (unflushed, 0), (unflushed, 3)];
    variants.push((rng.gen_range(0..=unflushed), rng.gen_range(0..16)));
    for (keep, torn) in variants {
        let image = be.after_power_loss(keep, torn);
        let store = open(Box::new(MemBackend { data: image }), sync).unwrap_or_else(|e| {
            panic!("reopen after crash at op {crash_at} (keep {keep}, torn {torn}): {e}")
        });
        let got = recovered(&store);
        let ok = states
            .iter()
            .enumerate()
            .skip(floor)
            .any(|(_, s)| *s == got);
        assert!(ok, "crash at op {crash_at} (keep {keep}, torn {torn}): recovered state is torn, mixed or older than acknowledged (floor {floor})");
        checked += 1;
    }
    checked
}

fn run(sync: SyncMode, sequences: u64) -> (u64, usize) {
    let base = formatted();
    let mut points = 0u64;
    let mut recoveries = 0usize;
    for s in 0..sequences {
        let mut rng = StdRng::seed_from_u64(s * 7919 + sync as u64);
        let seq = batches(&mut rng);
        // A dry run counts the operations of this sequence.
        let dry = FaultBackend::new(base.clone(), FaultPlan::default());
        let mut store = open(Box::new(dry.clone()), sync).unwrap();
        for ops in &seq {
            store.commit(ops).unwrap();
        }
        for p in 0..dry.ops() {
            recoveries += crash_once(&base, &seq, sync, p, &mut rng);
            points += 1;
        }
    }
    (points, recoveries)
}

#[test]
fn crash_at_every_point_durable() {
    let (points, recoveries) = run(SyncMode::Durable, 600);
    println!("durable mode: {points} crash points tried, {recoveries} recoveries checked");
    assert!(points >= 10_000, "only {points} crash points");
}

#[test]
fn crash_at_every_point_relaxed() {
    let (points, recoveries) = run(SyncMode::Relaxed, 600);
    println!("relaxed mode: {points} crash points tried, {recoveries} recoveries checked");
    assert!(points >= 5_000, "only {points} crash points");
}

#[test]
fn failed_writes_and_flushes_reach_the_caller_and_keep_old_contents() {
    let base = formatted();
    let mut tried = 0;
    for fail_at in 0..40u64 {
        let be = FaultBackend::new(
            base.clone(),
            FaultPlan {
                fail_at: Some(fail_at),
                crash_at: None,
            },
        );
        let mut store = open(Box::new(be.clone()), SyncMode::Durable).unwrap();
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
        assert!(failed, "op {fail_at} was inside the run");
        assert_eq!(recovered(&store), state);
        // What is on the disk reopens to the acknowledged state or a newer one.
        let reopened = open(Box::new(MemBackend { data: be.image() }), SyncMode::Durable).unwrap();
        assert_eq!(recovered(&reopened), state);
        tried += 1;
    }
    assert_eq!(tried, 40);
}
