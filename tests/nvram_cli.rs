//! `vtpm nvram info|list|dump` on images tests leave behind: plain, encrypted,
//! written by a real vtpm, and damaged ones (one clear line, non-zero exit).

mod common;

use std::path::Path;

use common::{vtpm_output, Vtpm};
use nvram::{KeySource, Nvram, OpenOptions};
use zeroize::Zeroizing;

fn make_image(path: &Path, key: Option<KeySource>) {
    let mut nv = Nvram::open(
        path,
        OpenOptions {
            key,
            create_size: Some(256 * 1024),
            ..Default::default()
        },
    )
    .unwrap();
    nv.register("tpm2/permanent", 4096).unwrap();
    nv.register("efi/vars", 4096).unwrap();
    let h = nv.start().unwrap();
    for i in 0..4u8 {
        h.write("tpm2/permanent", vec![i; 300]).wait().unwrap();
    }
    h.write("efi/vars", b"BootOrder=0001".to_vec())
        .wait()
        .unwrap();
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = vtpm_output(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// A failure: non-zero exit, exactly one line on stderr, containing `what`.
fn fails_with(args: &[&str], what: &str) {
    let (code, _, err) = run(args);
    assert_ne!(code, 0, "{args:?} should fail");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(what), "{args:?}: expected {what:?} in {err}");
}

#[test]
fn inspects_a_plain_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    make_image(&img, None);
    let p = img.to_str().unwrap();
    let (code, out, _) = run(&["nvram", "info", p]);
    assert_eq!(code, 0);
    assert!(
        out.contains("encrypted:      no") && out.contains("blobs:          2"),
        "{out}"
    );
    let (_, out, _) = run(&["nvram", "list", p]);
    assert!(
        out.contains("tpm2/permanent") && out.contains("300") && out.contains("efi/vars"),
        "{out}"
    );
    let (_, out, _) = run(&["nvram", "list", p, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (_, out, _) = run(&["nvram", "dump", p, "efi/vars"]);
    assert!(out.contains("BootOrder=0001"), "{out}");
    let (_, out, _) = run(&["nvram", "dump", p, "tpm2/permanent", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["size"], 300);
    assert_eq!(v["hex"].as_str().unwrap(), "03".repeat(300));
    let (_, out, _) = run(&["nvram", "info", p, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["size_kib"], 256);
    fails_with(&["nvram", "dump", p, "nope"], "no blob named");
    fails_with(&["nvram", "frobnicate", p], "unknown action");
}

#[test]
fn inspects_an_encrypted_image_only_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    make_image(&img, Some(KeySource::Raw(Zeroizing::new([9; 32]))));
    let key = dir.path().join("key");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, [8u8; 32]).unwrap();
    let (p, k, w) = (
        img.to_str().unwrap(),
        key.to_str().unwrap(),
        wrong.to_str().unwrap(),
    );
    let (code, out, _) = run(&["nvram", "info", p, "--key-file", k]);
    assert_eq!(code, 0);
    assert!(out.contains("AES-256-GCM"), "{out}");
    let (_, out, _) = run(&[
        "nvram",
        "dump",
        p,
        "efi/vars",
        "--key",
        &format!("file={k},format=binary"),
    ]);
    assert!(out.contains("BootOrder=0001"), "{out}");
    fails_with(&["nvram", "list", p], "a key is needed");
    fails_with(&["nvram", "list", p, "--key-file", w], "wrong key");
}

#[test]
fn key_from_a_passphrase_file_or_an_inherited_descriptor() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    make_image(
        &img,
        Some(KeySource::Passphrase(Zeroizing::new(
            b"correct horse".to_vec(),
        ))),
    );
    let pass = dir.path().join("pass");
    std::fs::write(&pass, b"correct horse").unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"battery staple").unwrap();
    let p = img.to_str().unwrap();
    let (code, out, err) = run(&[
        "nvram",
        "list",
        p,
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("efi/vars"), "{out}");
    fails_with(
        &[
            "nvram",
            "list",
            p,
            "--passphrase-file",
            bad.to_str().unwrap(),
        ],
        "wrong key",
    );

    // A raw key on an inherited descriptor (std opens files close-on-exec:
    // clear the flag so the child inherits this one).
    let raw = dir.path().join("raw.img");
    make_image(&raw, Some(KeySource::Raw(Zeroizing::new([5; 32]))));
    let keyfile = dir.path().join("key");
    std::fs::write(&keyfile, [5u8; 32]).unwrap();
    let f = std::fs::File::open(&keyfile).unwrap();
    let fd = f.as_raw_fd();
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let fd = fd.to_string();
    let (code, out, err) = run(&[
        "nvram",
        "dump",
        raw.to_str().unwrap(),
        "efi/vars",
        "--key-fd",
        &fd,
    ]);
    drop(f);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("BootOrder=0001"), "{out}");
    fails_with(&["nvram", "list", p, "--key-fd", "x"], "--key-fd");
}

#[test]
fn damaged_images_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("nv.img");
    make_image(&img, None);
    let good = std::fs::read(&img).unwrap();
    let p = img.to_str().unwrap();

    std::fs::write(&img, &good[..64 * 1024]).unwrap();
    fails_with(&["nvram", "info", p], "truncated");

    // One copy of a record damaged: read through the other (inspection
    // repairs nothing); `check` says what the next start repairs.
    let slot = nvram::format::SLOT_SIZE as usize;
    let layout = nvram::format::Header::decode(&good[slot..2 * slot])
        .unwrap()
        .layout();
    let log = &good[nvram::format::REGIONS_START as usize..];
    let (_, first) = nvram::format::batches(log, &layout)[0];
    let mirror = layout.copy_distance(first).unwrap() as usize;
    let at = nvram::format::REGIONS_START as usize + 200;
    let mut bad = good.clone();
    bad[at] ^= 0x01;
    std::fs::write(&img, &bad).unwrap();
    let (code, out, _) = run(&["nvram", "list", p]);
    assert!(code == 0 && out.contains("tpm2/permanent"), "{out}");
    let (code, out, _) = run(&["nvram", "check", p]);
    assert!(
        code == 0 && out.contains("rewritten from the other copy"),
        "{out}"
    );
    // Both copies: refused in one line; `check` reports (exit 1) and
    // `salvage` copies what is intact to a new image.
    bad[at + mirror] ^= 0x01;
    std::fs::write(&img, &bad).unwrap();
    fails_with(&["nvram", "list", p], "damaged");
    let (code, out, _) = run(&["nvram", "check", p]);
    assert!(
        code == 1 && out.contains("opens: NO") && out.contains("salvage"),
        "{out}"
    );
    let new = dir.path().join("salvaged.img");
    let (code, out, err) = run(&["nvram", "salvage", p, "--to", new.to_str().unwrap()]);
    assert!(code == 0 && out.contains("efi/vars"), "{out}{err}");
    let (code, out, _) = run(&["nvram", "dump", new.to_str().unwrap(), "tpm2/permanent"]);
    assert!(
        code == 0 && out.contains("03 03 03"),
        "the latest version: {out}"
    );
    assert_eq!(
        std::fs::read(&img).unwrap(),
        bad,
        "salvage never writes the image"
    );

    std::fs::write(&img, b"not an image at all").unwrap();
    fails_with(&["nvram", "info", p], p);
    fails_with(
        &[
            "nvram",
            "info",
            dir.path().join("missing").to_str().unwrap(),
        ],
        "No such file",
    );
    assert_eq!(
        std::fs::read(&img).unwrap(),
        b"not an image at all",
        "inspection never writes"
    );
}

#[test]
fn inspects_the_state_a_real_vtpm_left_behind() {
    let mut v = Vtpm::start_socket();
    assert!(v.guard.terminate().is_some());
    let img = v.dir().join("vtpm-nvram.img");
    let (code, out, err) = run(&["nvram", "list", img.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tpm2/permanent"), "{out}");
}
