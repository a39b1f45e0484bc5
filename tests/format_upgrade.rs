//! Images in the earlier formats, as earlier vtpms wrote them, are still
//! read, and the first write upgrades them to the current format:
//! tests/fixtures/format1-nvram.img.gz (one copy of each record) was made by
//! vtpm 0dd69b0 with tpm2-tools: a persistent ECC key, an ordinary, a counter
//! (10 increments), a bits and an extend index; format2-nvram.img.gz (a
//! mirror copy half a region on) is that image opened by vtpm 46341ca, the
//! counter incremented and the ordinary index rewritten. Until the new format
//! is durable the old log and header stay as they were: a power cut at any
//! write or flush of the upgrade leaves the old state or the new one.

#[macro_use]
mod common;

use std::path::Path;

use common::{tpm2_ok, vtpm_output, Vtpm};
use nvram::fault::{FaultBackend, FaultPlan};
use nvram::ops::Op;
use nvram::store::{Store, StoreOptions};
use nvram::{MemBackend, SyncMode};

/// The fixture of format `version`, decompressed.
fn fixture(version: u32) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/format{version}-nvram.img.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new("gzip")
        .args(["-dc", &path])
        .output()
        .expect("gzip");
    assert!(out.status.success());
    out.stdout
}

fn info(path: &Path) -> String {
    let out = vtpm_output(&["nvram", "info", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The NV indices and the key, as tpm2-tools read them.
fn state(tcti: &str, scratch: &Path) -> Vec<String> {
    let f = scratch.join("out");
    let fs = f.to_str().unwrap();
    let mut seen = Vec::new();
    for index in ["0x1500001", "0x1500002", "0x1500003", "0x1500004"] {
        tpm2_ok("tpm2_nvread", &[index, "-C", "o", "-o", fs], tcti);
        seen.push(
            std::fs::read(&f)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        );
    }
    let public = tpm2_ok("tpm2_readpublic", &["-c", "0x81000001"], tcti);
    seen.push(
        public
            .lines()
            .find(|l| l.starts_with("name:"))
            .unwrap_or_default()
            .to_string(),
    );
    seen
}

/// Start vtpm on the fixture of format `version`, check what tpm2-tools
/// read (the ordinary index starts with `ordinary`, the counter is at
/// `counter`), increment the counter and check the image is in the current
/// format, both slots, nothing damaged, and holds the same state.
fn read_and_upgrade(version: u32, ordinary: &[u8], counter: u64) {
    let mut v = Vtpm::start_socket();
    assert!(v.guard.terminate().is_some());
    let img = v.dir().join("vtpm-nvram.img");
    std::fs::write(&img, fixture(version)).unwrap();
    assert!(info(&img).contains(&format!("format version: {version}")));

    v.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let scratch = v.tmp.path().to_path_buf();
    let before = state(&v.tcti(), &scratch);
    let expected_ordinary: String = ordinary.iter().map(|b| format!("{b:02x}")).collect();
    assert!(before[0].starts_with(&expected_ordinary), "{before:?}");
    assert_eq!(before[1], format!("{counter:016x}"));
    assert_eq!(before[2], "0000000000000005");
    assert_eq!(
        before[3],
        "365aa7d8f7f9402c4b9434502b4cc89ddb09fe50d7cd95b493b834c62d5a5370"
    );
    assert_eq!(
        before[4],
        "name: 000bfd3f8bf55ab3654d2c6a94a76fa98f1ed1aa7738b8ee10d9d9dc78a46de5b96a"
    );
    tpm2_ok("tpm2_nvincrement", &["0x1500002", "-C", "o"], &v.tcti());
    assert!(v.guard.terminate().is_some());
    let upgraded = info(&img);
    let now = nvram::format::VERSION;
    assert!(
        upgraded.contains(&format!("format version: {now}")),
        "{upgraded}"
    );
    let out = vtpm_output(&["nvram", "check", img.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("nothing damaged"),
        "{report}"
    );
    assert_eq!(
        report.matches(&format!("format {now}")).count(),
        2,
        "both slots: {report}"
    );

    v.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let after = state(&v.tcti(), &scratch);
    assert_eq!(after[1], format!("{:016x}", counter + 1));
    assert_eq!((&after[..1], &after[2..]), (&before[..1], &before[2..]));
}

#[test]
fn a_format_1_image_is_read_and_upgraded_by_the_first_write() {
    need_tools!();
    read_and_upgrade(1, b"written by format 1 vtpm", 10);
}

#[test]
fn a_format_2_image_is_read_and_upgraded_by_the_first_write() {
    need_tools!();
    read_and_upgrade(2, b"written by format 2 vtpm", 11);
}

/// Open an image the way the storage thread does.
fn open(image: Box<dyn nvram::backend::Backend>) -> nvram::Result<Store> {
    Store::open(
        image,
        StoreOptions {
            key: None,
            refuse_encrypted: false,
            sync: SyncMode::Durable,
            read_only: false,
            fresh: false,
        },
    )
}

fn blobs(s: &Store) -> Vec<(String, Vec<u8>)> {
    s.blobs()
        .iter()
        .map(|(n, d)| (n.clone(), d.to_vec()))
        .collect()
}

#[test]
fn a_power_cut_during_the_upgrade_leaves_the_old_or_the_new_state() {
    for version in [1, 2] {
        power_cut_during_upgrade(version);
    }
}

fn power_cut_during_upgrade(version: u32) {
    let image = fixture(version);
    let old = blobs(
        &open(Box::new(MemBackend {
            data: image.clone(),
        }))
        .unwrap(),
    );
    let write = vec![Op::Put(
        "tpm2/permanent".into(),
        b"after the upgrade".to_vec(),
    )];
    let mut new = old.clone();
    new.retain(|(n, _)| n != "tpm2/permanent");
    new.push(("tpm2/permanent".into(), b"after the upgrade".to_vec()));
    new.sort();
    let mut points = 0;
    for crash_at in 0.. {
        let be = FaultBackend::new(
            image.clone(),
            FaultPlan {
                fail_at: None,
                crash_at: Some(crash_at),
            },
        );
        let mut store = open(Box::new(be.clone())).unwrap();
        let done = store.commit(&write).is_ok();
        if done && !be.crashed() {
            assert_eq!(store.header.version, nvram::format::VERSION);
            break;
        }
        drop(store);
        points += 1;
        let unflushed = be.unflushed();
        for keep in 0..=unflushed {
            for torn in [0, 1, 8] {
                let after = be.after_power_loss(keep, torn);
                let s = open(Box::new(MemBackend { data: after })).unwrap_or_else(|e| {
                    panic!("crash at op {crash_at}, {keep} unflushed writes kept: {e}")
                });
                let got = blobs(&s);
                assert!(
                    got == old || got == new,
                    "crash at op {crash_at}: neither the old nor the new state"
                );
            }
        }
    }
    println!(
        "upgrade from format {version}: {points} crash points, each recovering the old or the new state"
    );
    assert!(
        points >= 3,
        "the upgrade writes the log, flushes, writes the header"
    );
}
