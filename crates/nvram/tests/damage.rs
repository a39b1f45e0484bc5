//! Single-block damage on images written in each mode (plain and encrypted,
//! durable and relaxed): every 4 KiB block zeroed, and one random bit of it
//! flipped, must open with exactly the latest state, repaired from the
//! redundant copy, and the repaired image must open clean.

use std::collections::BTreeMap;

use nvram::{KeySource, MemBackend, Nvram, OpenOptions, SyncMode};
use rand::{Rng, SeedableRng};
use zeroize::Zeroizing;

const BLOCK: usize = 4096;

fn options(encrypted: bool, sync: SyncMode) -> OpenOptions {
    OpenOptions {
        key: encrypted.then(|| KeySource::Raw(Zeroizing::new([7; 32]))),
        sync,
        ..Default::default()
    }
}

/// An image of 1 MiB after 1,000 writes of a counter-like blob, a larger
/// blob now and then, and a deletion: several compactions, both regions used.
fn written(encrypted: bool, sync: SyncMode) -> Vec<u8> {
    let be = nvram::fault::FaultBackend::new(vec![0; 1 << 20], Default::default());
    let mut nv = Nvram::open_backend(Box::new(be.clone()), true, options(encrypted, sync)).unwrap();
    for (name, max) in [
        ("tpm2/permanent", 8192),
        ("tpm2/volatile", 16384),
        ("tmp", 64),
    ] {
        nv.register(name, max).unwrap();
    }
    let h = nv.start().unwrap();
    h.write("tmp", vec![1; 10]).wait().unwrap();
    for i in 0..1000u32 {
        let mut p = vec![0x50; 1100];
        p[..4].copy_from_slice(&i.to_be_bytes());
        h.write("tpm2/permanent", p).wait().unwrap();
        if i % 97 == 0 {
            h.write("tpm2/volatile", vec![i as u8; 5000])
                .wait()
                .unwrap();
        }
        if i == 500 {
            h.delete("tmp").wait().unwrap();
        }
    }
    drop(h);
    be.image()
}

fn open(image: Vec<u8>, encrypted: bool) -> Result<(BTreeMap<String, Vec<u8>>, usize), String> {
    let nv = Nvram::open_backend(
        Box::new(MemBackend { data: image }),
        false,
        options(encrypted, SyncMode::Durable),
    )
    .map_err(|e| e.to_string())?;
    Ok((
        nv.blobs()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect(),
        nv.repairs().len(),
    ))
}

fn matrix(encrypted: bool, sync: SyncMode) {
    let golden = written(encrypted, sync);
    let (latest, none) = open(golden.clone(), encrypted).unwrap();
    assert_eq!(none, 0);
    assert!(!latest.contains_key("tmp"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut exact, mut repaired) = (0, 0);
    for b in 0..golden.len() / BLOCK {
        for zero in [true, false] {
            let mut img = golden.clone();
            if zero {
                img[b * BLOCK..(b + 1) * BLOCK].fill(0);
            } else {
                let bit = rng.gen_range(0..BLOCK * 8);
                img[b * BLOCK + bit / 8] ^= 1 << (bit % 8);
            }
            let (blobs, repairs) = open(img, encrypted)
                .unwrap_or_else(|e| panic!("block {b} (zeroed: {zero}): refused: {e}"));
            assert!(blobs == latest, "block {b} (zeroed: {zero}): another state");
            exact += 1;
            repaired += usize::from(repairs > 0);
        }
    }
    println!(
        "encrypted {encrypted}, {sync:?}: {exact} damaged images opened with the latest state, {repaired} after repairs"
    );
    assert!(repaired > 0, "the live log was damaged in some cases");
}

#[test]
fn any_single_block_is_repaired_plain_durable() {
    matrix(false, SyncMode::Durable);
}

#[test]
fn any_single_block_is_repaired_encrypted_durable() {
    matrix(true, SyncMode::Durable);
}

#[test]
fn any_single_block_is_repaired_plain_relaxed() {
    matrix(false, SyncMode::Relaxed);
}

/// Both copies of a format 3 batch damaged: beyond the redundancy, so the
/// image is refused. A later batch whose length puts it exactly where the
/// lost batch's copy would be (a 2-block batch right after a 1-block batch
/// and its copy) must not be taken for that copy.
#[test]
fn a_later_batch_is_never_taken_for_a_lost_copy() {
    let be = nvram::fault::FaultBackend::new(vec![0; 1 << 20], Default::default());
    let mut nv = Nvram::open_backend(
        Box::new(be.clone()),
        true,
        options(false, SyncMode::Durable),
    )
    .unwrap();
    nv.register("a", 64).unwrap();
    nv.register("b", 8192).unwrap();
    let h = nv.start().unwrap();
    h.write("a", vec![1; 10]).wait().unwrap(); // 1 block + its copy
    h.write("b", vec![2; 5000]).wait().unwrap(); // 2 blocks + their copy
    h.write("b", vec![3; 10]).wait().unwrap();
    drop(h);
    let golden = be.image();
    let (latest, _) = open(golden.clone(), false).unwrap();
    assert_eq!(latest["a"], vec![1; 10]);
    let region = nvram::format::REGIONS_START as usize;
    let mut img = golden;
    img[region..region + 2 * BLOCK].fill(0);
    let e = open(img, false).expect_err("both copies of the first batch are gone");
    assert!(e.contains("damaged"), "{e}");
}
