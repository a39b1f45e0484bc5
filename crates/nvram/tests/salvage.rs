//! `check` and `salvage` on an image damaged beyond its copies: what is
//! intact, which batches are lost, and a new image with the newest intact
//! version of each blob, saying which may be older. The damaged image is
//! never written.

use nvram::format::{batches, Header, RecHeader, REC_HDR, SLOT_SIZE};
use nvram::salvage::{check, salvage};
use nvram::{Nvram, OpenOptions};

/// Log offsets (region-relative) of every record of batch `seq` in the live
/// region, and how far their copies are.
fn records_of(image: &[u8], seq: u64) -> (Header, Vec<usize>, usize) {
    let slot = SLOT_SIZE as usize;
    let h = Header::decode(&image[slot..2 * slot]).unwrap();
    let base = h.region_offset(h.active) as usize;
    let log = &image[base..base + h.region_size as usize];
    for (start, len) in batches(log, &h.layout()) {
        let (start, end) = (start as usize, (start + len) as usize);
        let mut at = start;
        let mut found = Vec::new();
        while at < end {
            let r = RecHeader::decode(&log[at..at + REC_HDR]).unwrap();
            if r.seq == seq {
                found.push(at);
            }
            at += r.total() as usize;
        }
        if !found.is_empty() {
            let dist = h.layout().copy_distance(len).unwrap() as usize;
            return (h, found, dist);
        }
    }
    panic!("no batch {seq}");
}

#[test]
fn salvage_takes_the_newest_intact_versions_and_says_which_may_be_older() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = Nvram::open(&img, OpenOptions::default()).unwrap();
    nv.register("a", 100).unwrap();
    nv.register("b", 100).unwrap();
    let h = nv.start().unwrap();
    // Batches 1..=5: a=1, b=1, a=2, b=2, a=3.
    for (name, v) in [("a", 1u8), ("b", 1), ("a", 2), ("b", 2), ("a", 3)] {
        h.write(name, vec![v; 50]).wait().unwrap();
    }
    drop(h);
    let mut image = std::fs::read(&img).unwrap();
    // Both copies of the put of b=2 (batch 4): beyond the redundancy.
    let (header, recs, mirror) = records_of(&image, 4);
    let base = header.region_offset(header.active) as usize;
    for copy in [0, mirror] {
        image[base + copy + recs[0] + REC_HDR + 3] ^= 0x01;
    }
    std::fs::write(&img, &image).unwrap();

    let e = Nvram::open(&img, OpenOptions::default())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("vtpm nvram check"), "{e}");

    let c = check(&img, None).unwrap();
    assert!(!c.opens && c.open_error.is_some());
    assert_eq!(c.damaged_batches, vec![4]);
    assert_eq!(c.slots.len(), 2);
    let newest_b = c
        .versions
        .iter()
        .filter(|v| v.name == "b")
        .map(|v| v.batch)
        .max();
    assert_eq!(newest_b, Some(2));

    let to = dir.path().join("new.img");
    let out = salvage(&img, None, &to).unwrap();
    let a = out.iter().find(|s| s.name == "a").unwrap();
    let b = out.iter().find(|s| s.name == "b").unwrap();
    assert!(a.latest && a.batch == 5, "{a:?}");
    assert!(!b.latest && b.batch == 2, "b may be older: {b:?}");
    assert_eq!(
        std::fs::read(&img).unwrap(),
        image,
        "the damaged image is unchanged"
    );

    let nv = Nvram::open(&to, OpenOptions::default()).unwrap();
    let blobs: Vec<(String, Vec<u8>)> = nv.blobs().map(|(n, d)| (n.into(), d.to_vec())).collect();
    assert_eq!(
        blobs,
        vec![("a".into(), vec![3; 50]), ("b".into(), vec![1; 50])]
    );
    // The target is never overwritten.
    assert!(salvage(&img, None, &to).is_err());
}
