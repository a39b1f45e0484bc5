//! The NVRAM API: registration, reads and writes, deletes, other users' blobs,
//! limits, encryption, and persistence across reopen.

use nvram::{Error, KeySource, Nvram, OpenOptions, SyncMode};
use zeroize::Zeroizing;

fn raw_key(b: u8) -> KeySource {
    KeySource::Raw(Zeroizing::new([b; 32]))
}

/// Two images are byte for byte the same (names the first difference, not the whole image).
fn assert_same(a: &[u8], b: &[u8], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: sizes differ");
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!(
            "{what}: images differ first at byte {i}: {} != {}",
            a[i], b[i]
        );
    }
}

/// How far the copy of the first batch of region 0 is from the batch, from
/// the image's live header.
fn mirror_offset(image: &[u8]) -> usize {
    let slot = nvram::format::SLOT_SIZE as usize;
    let h = nvram::format::Header::decode(&image[slot..2 * slot])
        .or_else(|_| nvram::format::Header::decode(&image[..slot]))
        .unwrap();
    let log = &image[nvram::format::REGIONS_START as usize..];
    let (_, len) = nvram::format::batches(log, &h.layout())[0];
    h.layout().copy_distance(len).unwrap() as usize
}

fn open(path: &std::path::Path, key: Option<KeySource>) -> nvram::Result<Nvram> {
    Nvram::open(
        path,
        OpenOptions {
            key,
            create_size: Some(256 * 1024),
            ..Default::default()
        },
    )
}

#[test]
fn write_read_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = open(&img, None).unwrap();
    nv.register("tpm2/permanent", 4096).unwrap();
    nv.register("tpm2/volatile", 4096).unwrap();
    let h = nv.start().unwrap();
    assert_eq!(h.read("tpm2/permanent").unwrap(), None, "absent");
    h.write("tpm2/volatile", Vec::new()).wait().unwrap();
    assert_eq!(
        h.read("tpm2/volatile").unwrap(),
        Some(Vec::new()),
        "present and empty"
    );
    h.write("tpm2/permanent", b"one".to_vec()).wait().unwrap();
    h.write("tpm2/permanent", b"two".to_vec()).wait().unwrap();
    assert_eq!(h.read("tpm2/permanent").unwrap().unwrap(), b"two");
    h.delete("tpm2/volatile").wait().unwrap();
    assert_eq!(h.read("tpm2/volatile").unwrap(), None);
    assert_eq!(h.total_size(), 256 * 1024);
    assert_eq!(h.total_kib(), 256);
    drop(h);

    let mut nv = open(&img, None).unwrap();
    nv.register("tpm2/permanent", 4096).unwrap();
    let h = nv.start().unwrap();
    assert_eq!(h.read("tpm2/permanent").unwrap().unwrap(), b"two");
    assert_eq!(h.read("tpm2/volatile").unwrap(), None);
    let l = h.list();
    assert_eq!(l.len(), 1);
    assert_eq!(
        (l[0].name.as_str(), l[0].size, l[0].max_size),
        ("tpm2/permanent", 3, Some(4096))
    );
}

#[test]
fn other_users_blobs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = open(&img, None).unwrap();
    nv.register("efi/vars", 1000).unwrap();
    let h = nv.start().unwrap();
    h.write("efi/vars", vec![5; 900]).wait().unwrap();
    drop(h);
    let mut nv = open(&img, None).unwrap();
    nv.register("tpm2/permanent", 1000).unwrap();
    let h = nv.start().unwrap();
    h.write("tpm2/permanent", vec![1; 10]).wait().unwrap();
    let l = h.list();
    assert!(l
        .iter()
        .any(|b| b.name == "efi/vars" && b.size == 900 && b.max_size.is_none()));
    assert!(
        matches!(
            h.write("efi/vars", vec![]).wait(),
            Err(Error::NotRegistered(_))
        ),
        "not ours to write"
    );
    assert_eq!(
        h.read("efi/vars").unwrap().unwrap(),
        vec![5; 900],
        "readable"
    );
}

#[test]
fn limits_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = open(&img, None).unwrap();
    nv.register("a", 100).unwrap();
    let h = nv.start().unwrap();
    assert!(matches!(
        h.write("a", vec![0; 101]).wait(),
        Err(Error::WriteTooLarge { .. })
    ));
    h.write("a", vec![0; 100]).wait().unwrap();
    drop(h);
    let mut nv = open(&img, None).unwrap();
    nv.register("a", 50).unwrap();
    let e = nv.start().err().expect("blob larger than its new maximum");
    assert!(matches!(e, Error::BlobTooLarge { .. }), "{e}");
    let mut nv = open(&img, None).unwrap();
    nv.register("huge", 10 * 1024 * 1024).unwrap();
    let e = nv.start().err().expect("image too small");
    assert!(e.to_string().contains("image too small"), "{e}");
    assert!(matches!(
        Nvram::open(
            &dir.path().join("x"),
            OpenOptions {
                create_size: Some(1000),
                ..Default::default()
            }
        ),
        Err(Error::TooSmall { .. })
    ));
}

#[test]
fn encryption_needs_the_right_key() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = open(&img, Some(raw_key(7))).unwrap();
    nv.register("secret", 100).unwrap();
    let h = nv.start().unwrap();
    h.write("secret", b"the seed of all keys".to_vec())
        .wait()
        .unwrap();
    drop(h);
    let bytes = std::fs::read(&img).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"secret"),
        "names are encrypted"
    );
    assert!(
        !bytes.windows(8).any(|w| w == b"the seed"),
        "data is encrypted"
    );
    assert!(matches!(open(&img, None), Err(Error::KeyRequired(_))));
    assert!(matches!(
        open(&img, Some(raw_key(8))),
        Err(Error::WrongKey(_))
    ));
    let refused = Nvram::open(
        &img,
        OpenOptions {
            key: Some(raw_key(7)),
            refuse_encrypted: true,
            ..Default::default()
        },
    );
    assert!(matches!(refused, Err(Error::EncryptedRefused(_))));
    let nv = open(&img, Some(raw_key(7))).unwrap();
    assert_eq!(
        nv.blobs().next().map(|(n, d)| (n.to_string(), d.to_vec())),
        Some(("secret".into(), b"the seed of all keys".to_vec()))
    );
}

#[test]
fn passphrase_keys_work_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let pass = || KeySource::from_bytes(b"correct horse battery staple\n".to_vec());
    let mut nv = open(&img, Some(pass())).unwrap();
    nv.register("b", 100).unwrap();
    let h = nv.start().unwrap();
    h.write("b", vec![0xAB; 64]).wait().unwrap();
    drop(h);
    assert!(open(&img, Some(pass())).is_ok());
    assert!(matches!(
        open(&img, Some(KeySource::from_bytes(b"wrong".to_vec()))),
        Err(Error::WrongKey(_))
    ));
    // Flip one ciphertext byte and fix up the record's checksum: only
    // authentication can tell. One copy altered is repaired from the other;
    // both altered is refused.
    let mut bytes = std::fs::read(&img).unwrap();
    let mirror = mirror_offset(&bytes);
    let good = bytes.clone();
    for copy in [0, mirror] {
        let base = nvram::format::REGIONS_START as usize + copy;
        let len = u32::from_be_bytes(bytes[base + 20..base + 24].try_into().unwrap()) as usize;
        let p = base + nvram::format::REC_HDR;
        bytes[p + 20] ^= 1;
        let crc = crc32c::crc32c(&bytes[p..p + len]);
        bytes[p + len..p + len + 4].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&img, &bytes).unwrap();
        if copy == 0 {
            let nv = open(&img, Some(pass())).expect("one altered copy is repaired");
            assert_eq!(nv.repairs().len(), 1);
            drop(nv);
            assert_same(&std::fs::read(&img).unwrap(), &good, "rewritten");
        }
    }
    let e = open(&img, Some(pass())).err().expect("tampering detected");
    assert!(e.to_string().contains("fails authentication"), "{e}");
}

#[test]
fn damage_is_reported_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = open(&img, None).unwrap();
    nv.register("a", 1000).unwrap();
    let h = nv.start().unwrap();
    for i in 0..5u8 {
        h.write("a", vec![i; 300]).wait().unwrap();
    }
    drop(h);
    let good = std::fs::read(&img).unwrap();
    let base = nvram::format::REGIONS_START as usize;
    let mirror = mirror_offset(&good);
    // A flipped byte in the first record, with committed records after it:
    // repaired from its copy, whichever copy it is in.
    for at in [base + 100, base + mirror + 100] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&img, &bad).unwrap();
        let nv = open(&img, None).expect("repaired");
        assert_eq!(nv.repairs().len(), 1, "{:?}", nv.repairs());
        assert_eq!(nv.blobs().next().unwrap().1, &[4u8; 300][..]);
        drop(nv);
        assert_same(&std::fs::read(&img).unwrap(), &good, "rewritten");
    }
    // Both copies damaged: beyond the redundancy, reported and left alone.
    let mut bad = good.clone();
    bad[base + 100] ^= 0x40;
    bad[base + mirror + 100] ^= 0x40;
    std::fs::write(&img, &bad).unwrap();
    let e = open(&img, None).err().expect("damage reported");
    assert!(e.to_string().contains("damaged"), "{e}");
    assert_same(&std::fs::read(&img).unwrap(), &bad, "left untouched");
    // A damaged header slot is rewritten from the other one; both damaged is refused.
    let mut bad = good.clone();
    bad[nvram::format::SLOT_SIZE as usize + 3] ^= 1;
    std::fs::write(&img, &bad).unwrap();
    let nv = open(&img, None).expect("header repaired");
    assert!(
        nv.repairs()[0].contains("header slot 1"),
        "{:?}",
        nv.repairs()
    );
    drop(nv);
    assert_same(&std::fs::read(&img).unwrap(), &good, "rewritten");
    bad[3] ^= 1;
    std::fs::write(&img, &bad).unwrap();
    assert!(open(&img, None)
        .err()
        .expect("bad header")
        .to_string()
        .contains("header"));
    // A truncated image.
    std::fs::write(&img, &good[..100 * 1024]).unwrap();
    assert!(open(&img, None)
        .err()
        .expect("truncated")
        .to_string()
        .contains("truncated"));
    // A blank image is refused, never formatted: wiped headers look the same.
    std::fs::write(&img, vec![0u8; 128 * 1024]).unwrap();
    assert!(open(&img, None)
        .err()
        .expect("blank")
        .to_string()
        .contains("vtpm nvram format"));
    assert!(
        std::fs::read(&img).unwrap().iter().all(|&b| b == 0),
        "left untouched"
    );
    // Formatting is explicit.
    assert!(Nvram::format(&img, 0, false, OpenOptions::default()).is_ok());
    assert!(open(&img, None).is_ok());
    assert_eq!(
        std::fs::metadata(&img).unwrap().len(),
        128 * 1024,
        "never resized"
    );
}

#[test]
fn group_commit_and_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = Nvram::open(
        &img,
        OpenOptions {
            sync: SyncMode::Durable,
            create_size: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..8 {
        nv.register(&format!("w{i}"), 4096).unwrap();
    }
    let h = nv.start().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || {
                for j in 0..50u32 {
                    h.write(&format!("w{i}"), j.to_be_bytes().repeat(100))
                        .wait()
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    h.write_with(
        "w0",
        b"cb".to_vec(),
        Box::new(move |r| tx.send(r.is_ok()).unwrap()),
    );
    assert!(rx.recv().unwrap());
    assert_eq!(h.read("w0").unwrap().unwrap(), b"cb");
    for i in 1..8 {
        assert_eq!(
            h.read(&format!("w{i}")).unwrap().unwrap(),
            49u32.to_be_bytes().repeat(100)
        );
    }
    drop(h);
    let nv = Nvram::open(&img, OpenOptions::default()).unwrap();
    assert_eq!(nv.blobs().count(), 8);
}

#[test]
fn a_failed_write_reaches_the_writer_and_the_old_contents_stay() {
    use nvram::fault::{FaultBackend, FaultPlan};
    // Operations: 0-2 format (both header slots, flush), then per batch one
    // write (the batch and its copy) and a flush.
    let cases = [
        (5u64, "injected write failure"),
        (6, "injected flush failure"),
    ];
    for ((fail_at, what), sync) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let be = FaultBackend::new(
            vec![0; 256 * 1024],
            FaultPlan {
                fail_at: Some(fail_at),
                crash_at: None,
            },
        );
        let mut nv =
            Nvram::open_backend(Box::new(be.clone()), true, OpenOptions::default()).unwrap();
        nv.register("tpm2/permanent", 4096).unwrap();
        let h = nv.start().unwrap();
        h.write("tpm2/permanent", b"old".to_vec()).wait().unwrap();
        // Both ways of waiting: a posted write, and write_sync (inline).
        let e = if sync {
            h.write_sync("tpm2/permanent", b"new".to_vec())
        } else {
            h.write("tpm2/permanent", b"new".to_vec()).wait()
        }
        .expect_err("the injected failure reaches the writer");
        let msg = e.to_string();
        assert!(msg.contains("not stored") && msg.contains(what), "{msg}");
        assert_eq!(h.read("tpm2/permanent").unwrap().unwrap(), b"old");
        // The next write goes through, and is what a reopen finds.
        h.write("tpm2/permanent", b"newer".to_vec()).wait().unwrap();
        drop(h);
        let nv = Nvram::open_backend(
            Box::new(nvram::MemBackend { data: be.image() }),
            false,
            OpenOptions::default(),
        )
        .unwrap();
        let blobs: Vec<_> = nv
            .blobs()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect();
        assert_eq!(
            blobs,
            vec![("tpm2/permanent".to_string(), b"newer".to_vec())]
        );
    }
}

#[test]
fn a_callback_may_drop_the_last_handle() {
    let dir = tempfile::tempdir().unwrap();
    let mut nv = open(&dir.path().join("nv.img"), None).unwrap();
    nv.register("a", 16).unwrap();
    let h = nv.start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let last = h.clone();
    h.write_with(
        "a",
        b"x".to_vec(),
        Box::new(move |r| {
            // Wait until the caller's handle is gone, then drop the last one
            // here, on the storage thread.
            go_rx.recv().unwrap();
            drop(last);
            tx.send(r.is_ok()).unwrap();
        }),
    );
    drop(h);
    go_tx.send(()).unwrap();
    assert!(rx.recv().unwrap());
}

/// Whoever commits a batch (the storage thread, or a writer waiting on its
/// own write), writes to one blob land in the order they were posted, and
/// every completion fires once.
#[test]
fn posting_order_is_kept_whoever_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut nv = open(&dir.path().join("nv.img"), None).unwrap();
    nv.register("a", 64).unwrap();
    nv.register("b", 64).unwrap();
    let h = nv.start().unwrap();
    let fired = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0u32..300 {
        // An asynchronous write, then a blocking one to the same blob: the
        // blocking one was posted last and must win.
        let f = fired.clone();
        h.write_with(
            "a",
            i.to_be_bytes().to_vec(),
            Box::new(move |r| {
                r.unwrap();
                f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        );
        if i % 2 == 0 {
            h.write("a", (i + 1_000_000).to_be_bytes().to_vec())
                .wait()
                .unwrap();
        } else {
            h.write_sync("a", (i + 1_000_000).to_be_bytes().to_vec())
                .unwrap();
        }
        assert_eq!(
            h.read("a").unwrap().unwrap(),
            (i + 1_000_000).to_be_bytes().to_vec()
        );
    }
    // Concurrent blocking writers on another blob, each checking its own
    // write is visible (or overtaken by a later one) once acknowledged.
    let threads: Vec<_> = (0..4u32)
        .map(|w| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..100u32 {
                    h.write_sync("b", (w * 1000 + i).to_be_bytes().to_vec())
                        .unwrap();
                    assert_eq!(h.read("b").unwrap().unwrap().len(), 4);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(h);
    assert_eq!(fired.load(std::sync::atomic::Ordering::SeqCst), 300);
}

/// A second writer is refused with Error::InUse while the first holds the
/// image; after the first hands the image over (what it had queued, even in
/// relaxed mode, is on the image) the second opens it, and the first can
/// no longer write.
#[test]
fn the_lock_is_handed_over_once_and_never_written_after() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    let mut nv = Nvram::open(
        &img,
        OpenOptions {
            sync: SyncMode::Relaxed,
            create_size: Some(256 * 1024),
            ..Default::default()
        },
    )
    .unwrap();
    nv.register("tpm2/permanent", 4096).unwrap();
    let h = nv.start().unwrap();
    h.write("tpm2/permanent", b"before".to_vec())
        .wait()
        .unwrap();
    // Posted, not waited for: the hand-over commits it first.
    let pending = h.write("tpm2/permanent", b"queued".to_vec());
    assert!(matches!(open(&img, None), Err(Error::InUse(p)) if p == img));

    assert!(!h.lock_released());
    h.release_lock().unwrap();
    assert!(h.lock_released());
    pending.wait().unwrap();
    h.release_lock().unwrap();

    let mut other = open(&img, None).expect("the lock was released");
    other.register("tpm2/permanent", 4096).unwrap();
    let o = other.start().unwrap();
    assert_eq!(o.read("tpm2/permanent").unwrap().unwrap(), b"queued");

    // The first handle reads what it had, and every write fails, naming why.
    assert_eq!(h.read("tpm2/permanent").unwrap().unwrap(), b"queued");
    for r in [
        h.write_sync("tpm2/permanent", b"late".to_vec()),
        h.write("tpm2/permanent", b"later".to_vec()).wait(),
        h.delete("tpm2/permanent").wait(),
    ] {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("released") && e.contains("nv.img"), "{e}");
    }
    drop(h);
    o.write("tpm2/permanent", b"second".to_vec())
        .wait()
        .unwrap();
    drop(o);
    let mut again = open(&img, None).unwrap();
    again.register("tpm2/permanent", 4096).unwrap();
    let a = again.start().unwrap();
    assert_eq!(a.read("tpm2/permanent").unwrap().unwrap(), b"second");
}

/// Opening reads the log in pieces, not record by record: on NBD every read
/// is a round trip. 200 batches (a region of 1.6 MiB of log and copies)
/// open in a few dozen reads.
#[test]
fn opening_reads_the_log_in_pieces() {
    struct Counting(
        nvram::MemBackend,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    );
    impl nvram::Backend for Counting {
        fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.read_at(off, buf)
        }
        fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
            self.0.write_at(off, data)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn path(&self) -> std::path::PathBuf {
            self.0.path()
        }
    }
    let be = nvram::fault::FaultBackend::new(vec![0; 4 << 20], Default::default());
    let mut nv = Nvram::open_backend(Box::new(be.clone()), true, OpenOptions::default()).unwrap();
    nv.register("tpm2/permanent", 4096).unwrap();
    let h = nv.start().unwrap();
    for i in 0..200u32 {
        h.write("tpm2/permanent", i.to_be_bytes().repeat(200))
            .wait()
            .unwrap();
    }
    drop(h);
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = Counting(nvram::MemBackend { data: be.image() }, reads.clone());
    let nv = Nvram::open_backend(Box::new(counting), false, OpenOptions::default()).unwrap();
    assert_eq!(
        nv.blobs().next().unwrap().1,
        &199u32.to_be_bytes().repeat(200)[..]
    );
    let n = reads.load(std::sync::atomic::Ordering::SeqCst);
    println!("200 batches opened in {n} reads");
    assert!(n < 64, "{n} reads");
}
