//! Key objects through tpm2-tools against the real binary: primaries in every
//! hierarchy, create/load, external keys, persistence across restarts and
//! `kill -9`, authValue changes and sealed data.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run_tpm2, tpm2_fails as fails, tpm2_ok as ok, Vtpm};

/// A scratch file path in the test's temp dir.
fn f(t: &Vtpm, name: &str) -> String {
    t.tmp.path().join(name).display().to_string()
}

/// `tpm2_flushcontext -t`: the tools leave objects loaded (no resource manager).
fn flush(tcti: &str) {
    ok("tpm2_flushcontext", &["-t"], tcti);
}

/// The value of `key:` in a tool's YAML output.
fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn primaries_are_deterministic_per_hierarchy_and_null_changes_at_reset() {
    need_tools!();
    let mut t = Vtpm::start_socket();
    let tcti = t.tcti();
    let mut names = Vec::new();
    for alg in ["rsa2048", "ecc256", "ecc384", "ecc521", "rsa3072"] {
        for h in ["o", "e", "n"] {
            let ctx = f(&t, &format!("{alg}-{h}.ctx"));
            let a = ok(
                "tpm2_createprimary",
                &["-C", h, "-G", alg, "-c", &ctx],
                &tcti,
            );
            flush(&tcti);
            let b = ok(
                "tpm2_createprimary",
                &["-C", h, "-G", alg, "-c", &ctx],
                &tcti,
            );
            flush(&tcti);
            // The output is the public area: the same key twice.
            assert_eq!(a, b, "{alg} in {h} twice differs");
            names.push((alg, h, a));
        }
    }
    // Different hierarchies give different keys.
    for w in names.chunks(3) {
        assert_ne!(w[0].2, w[1].2);
        assert_ne!(w[1].2, w[2].2);
    }
    // A TPM Reset (here: power lost, no Shutdown(STATE)) renews the null seed,
    // not the others. (A TPM Restart after Shutdown(STATE) keeps it.)
    t.guard.signal(nix::sys::signal::Signal::SIGKILL);
    t.guard.wait_timeout(std::time::Duration::from_secs(10));
    t.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let tcti = t.tcti();
    for (alg, h, name) in names.iter().filter(|(a, _, _)| *a == "ecc256") {
        let out = ok(
            "tpm2_createprimary",
            &["-C", h, "-G", alg, "-c", &f(&t, "again.ctx")],
            &tcti,
        );
        flush(&tcti);
        if *h == "n" {
            assert_ne!(&out, name, "null seed survived a reset");
        } else {
            assert_eq!(&out, name, "{h} seed changed");
        }
    }
    // `unique` is part of the template: another value, another key.
    // (tpm2-tools reads `-u` as a TPM2B: size, then the bytes.)
    let u = f(&t, "unique.bin");
    let mut unique = vec![1u8, 0];
    unique.extend([7u8; 256]);
    std::fs::write(&u, unique).unwrap();
    let a = ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa2048", "-c", &f(&t, "u.ctx"), "-u", &u],
        &tcti,
    );
    flush(&tcti);
    assert!(!names.iter().any(|(_, _, n)| *n == a));
}

#[test]
fn create_load_readpublic_changeauth_unseal() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    let prim = f(&t, "prim.ctx");
    ok("tpm2_createprimary", &["-C", "o", "-c", &prim], &tcti);
    flush(&tcti);
    // An ECC and an RSA child.
    for alg in ["ecc256", "rsa2048"] {
        let (pubf, privf, ctx) = (f(&t, "k.pub"), f(&t, "k.priv"), f(&t, "k.ctx"));
        ok(
            "tpm2_create",
            &["-C", &prim, "-G", alg, "-u", &pubf, "-r", &privf],
            &tcti,
        );
        flush(&tcti);
        let loaded = ok(
            "tpm2_load",
            &["-C", &prim, "-u", &pubf, "-r", &privf, "-c", &ctx],
            &tcti,
        );
        flush(&tcti);
        let rp = ok("tpm2_readpublic", &["-c", &ctx], &tcti);
        flush(&tcti);
        assert_eq!(field(&loaded, "name"), field(&rp, "name"));
    }
    // Sealed data with an authValue; change the authValue; unseal with each.
    let secret = f(&t, "secret");
    std::fs::write(&secret, b"disk key 0123456789").unwrap();
    let (sp, sk, sc) = (f(&t, "s.pub"), f(&t, "s.priv"), f(&t, "s.ctx"));
    ok(
        "tpm2_create",
        &[
            "-C", &prim, "-i", &secret, "-u", &sp, "-r", &sk, "-p", "old",
        ],
        &tcti,
    );
    flush(&tcti);
    ok(
        "tpm2_load",
        &["-C", &prim, "-u", &sp, "-r", &sk, "-c", &sc],
        &tcti,
    );
    flush(&tcti);
    let out = ok("tpm2_unseal", &["-c", &sc, "-p", "old"], &tcti);
    assert_eq!(out, "disk key 0123456789");
    flush(&tcti);
    let err = fails("tpm2_unseal", &["-c", &sc, "-p", "wrong"], &tcti);
    assert!(
        err.contains("0x98e") || err.contains("authorization"),
        "{err}"
    );
    flush(&tcti);
    let newpriv = f(&t, "s2.priv");
    ok(
        "tpm2_changeauth",
        &["-c", &sc, "-C", &prim, "-p", "old", "-r", &newpriv, "new"],
        &tcti,
    );
    flush(&tcti);
    let sc2 = f(&t, "s2.ctx");
    ok(
        "tpm2_load",
        &["-C", &prim, "-u", &sp, "-r", &newpriv, "-c", &sc2],
        &tcti,
    );
    flush(&tcti);
    assert_eq!(
        ok("tpm2_unseal", &["-c", &sc2, "-p", "new"], &tcti),
        "disk key 0123456789"
    );
    flush(&tcti);
    fails("tpm2_unseal", &["-c", &sc2, "-p", "old"], &tcti);
    flush(&tcti);
    // A private blob under the wrong parent is refused.
    let other = f(&t, "other.ctx");
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", &other],
        &tcti,
    );
    flush(&tcti);
    let err = fails(
        "tpm2_load",
        &["-C", &other, "-u", &sp, "-r", &sk, "-c", &f(&t, "x.ctx")],
        &tcti,
    );
    assert!(err.contains("0x19f") || err.contains("integrity"), "{err}");
    flush(&tcti);
}

#[test]
fn loadexternal_of_openssl_keys() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    let dir = t.tmp.path();
    openssl(&["genrsa", "-out", "rsa.pem", "2048"], dir);
    openssl(
        &["rsa", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"],
        dir,
    );
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "ec.pem",
        ],
        dir,
    );
    openssl(
        &["ec", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"],
        dir,
    );
    for (pem, alg) in [("rsa.pub.pem", "rsa"), ("ec.pub.pem", "ecc")] {
        let out = ok(
            "tpm2_loadexternal",
            &[
                "-C",
                "o",
                "-G",
                alg,
                "-u",
                &f(&t, pem),
                "-c",
                &f(&t, "ext.ctx"),
            ],
            &tcti,
        );
        assert!(out.contains("name:"), "{out}");
        flush(&tcti);
    }
    // With the private part: only the null hierarchy.
    for (pem, alg) in [("rsa.pem", "rsa"), ("ec.pem", "ecc")] {
        ok(
            "tpm2_loadexternal",
            &[
                "-C",
                "n",
                "-G",
                alg,
                "-r",
                &f(&t, pem),
                "-c",
                &f(&t, "extp.ctx"),
            ],
            &tcti,
        );
        flush(&tcti);
    }
}

/// The persistent handles tpm2_getcap lists.
fn persistent(tcti: &str) -> String {
    ok("tpm2_getcap", &["handles-persistent"], tcti)
}

#[test]
fn evictcontrol_persists_across_restart_and_kill_9() {
    need_tools!();
    let mut t = Vtpm::start_socket();
    let tcti = t.tcti();
    let prim = f(&t, "prim.ctx");
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", &prim],
        &tcti,
    );
    flush(&tcti);
    let created = ok("tpm2_readpublic", &["-c", &prim], &tcti);
    flush(&tcti);
    ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &prim, "0x81000001"],
        &tcti,
    );
    flush(&tcti);
    assert!(persistent(&tcti).contains("0x81000001"));
    // An occupied handle and a platform handle by the owner are refused.
    fails(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &prim, "0x81000001"],
        &tcti,
    );
    flush(&tcti);
    fails(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &prim, "0x81800001"],
        &tcti,
    );
    flush(&tcti);
    // Persist a child key too, then kill -9 right after EvictControl answered.
    let (pubf, privf, ctx) = (f(&t, "c.pub"), f(&t, "c.priv"), f(&t, "c.ctx"));
    ok(
        "tpm2_create",
        &[
            "-C",
            "0x81000001",
            "-G",
            "ecc256",
            "-u",
            &pubf,
            "-r",
            &privf,
        ],
        &tcti,
    );
    ok(
        "tpm2_load",
        &["-C", "0x81000001", "-u", &pubf, "-r", &privf, "-c", &ctx],
        &tcti,
    );
    flush(&tcti);
    ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &ctx, "0x81000002"],
        &tcti,
    );
    t.guard.signal(nix::sys::signal::Signal::SIGKILL);
    t.guard.wait_timeout(std::time::Duration::from_secs(10));
    t.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let tcti = t.tcti();
    let list = persistent(&tcti);
    assert!(
        list.contains("0x81000001") && list.contains("0x81000002"),
        "{list}"
    );
    // The persistent key works as a parent and has the same Name.
    let rp = ok("tpm2_readpublic", &["-c", "0x81000001"], &tcti);
    assert_eq!(field(&rp, "name"), field(&created, "name"));
    ok(
        "tpm2_create",
        &[
            "-C",
            "0x81000001",
            "-G",
            "rsa2048",
            "-u",
            &pubf,
            "-r",
            &privf,
        ],
        &tcti,
    );
    // Evict both; they are gone after another restart.
    ok("tpm2_evictcontrol", &["-C", "o", "-c", "0x81000002"], &tcti);
    ok("tpm2_evictcontrol", &["-C", "o", "-c", "0x81000001"], &tcti);
    assert!(!persistent(&tcti).contains("0x8100"));
    t.guard.terminate();
    t.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    assert!(!persistent(&t.tcti()).contains("0x8100"));
}

#[test]
fn object_slots_and_contexts() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    let ctx: Vec<PathBuf> = (0..4)
        .map(|i| t.tmp.path().join(format!("p{i}.ctx")))
        .collect();
    for c in &ctx[..3] {
        ok(
            "tpm2_createprimary",
            &["-C", "o", "-G", "ecc256", "-c", &c.display().to_string()],
            &tcti,
        );
    }
    let handles = ok("tpm2_getcap", &["handles-transient"], &tcti);
    assert_eq!(handles.lines().count(), 3, "{handles}");
    // A fourth object does not fit: TPM_RC_OBJECT_MEMORY.
    let err = fails(
        "tpm2_createprimary",
        &["-C", "o", "-c", &ctx[3].display().to_string()],
        &tcti,
    );
    assert!(err.contains("0x902"), "{err}");
    let props = ok("tpm2_getcap", &["properties-variable"], &tcti);
    assert!(props.contains("TPM2_PT_HR_TRANSIENT_AVAIL: 0x0"), "{props}");
    flush(&tcti);
    // Saved contexts load again (tpm2-tools ContextLoads the saved file).
    ok(
        "tpm2_readpublic",
        &["-c", &ctx[0].display().to_string()],
        &tcti,
    );
    flush(&tcti);
}

/// Wrong authValues for a DA-protected object, three times (libtpms' default
/// maxTries), then the right one: the codes tpm2-tools reports.
fn lockout_sequence(t: &Vtpm) -> Vec<String> {
    let tcti = t.tcti();
    let prim = f(t, "prim.ctx");
    ok("tpm2_createprimary", &["-C", "o", "-c", &prim], &tcti);
    flush(&tcti);
    let secret = f(t, "secret");
    std::fs::write(&secret, b"s").unwrap();
    let (sp, sk, sc) = (f(t, "s.pub"), f(t, "s.priv"), f(t, "s.ctx"));
    ok(
        "tpm2_create",
        &["-C", &prim, "-i", &secret, "-u", &sp, "-r", &sk, "-p", "pw"],
        &tcti,
    );
    ok(
        "tpm2_load",
        &["-C", &prim, "-u", &sp, "-r", &sk, "-c", &sc],
        &tcti,
    );
    flush(&tcti);
    let mut codes = Vec::new();
    for pw in ["a", "b", "c", "pw"] {
        let out = run_tpm2("tpm2_unseal", &["-c", &sc, "-p", pw], &tcti);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        codes.push(if out.status.success() {
            "ok".to_string()
        } else {
            err.split("ErrorCode (")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .unwrap_or("?")
                .to_string()
        });
        flush(&tcti);
    }
    let props = ok("tpm2_getcap", &["properties-variable"], &tcti);
    codes.push(
        props
            .lines()
            .find(|l| l.contains("LOCKOUT_COUNTER"))
            .unwrap_or("")
            .trim()
            .to_string(),
    );
    codes
}

#[test]
fn failed_authorizations_lock_out_like_swtpm() {
    need_tools!();
    let ours = lockout_sequence(&Vtpm::start_socket());
    assert_eq!(ours[3], "0x00000921", "no lockout: {ours:?}");
    if let Some(sw) = common::start_swtpm() {
        assert_eq!(ours, lockout_sequence(&sw));
    }
}

/// Saved contexts of objects survive a TPM Restart (Shutdown(STATE) then
/// Startup(CLEAR)), except those of stClear objects, which answer
/// TPM_RC_INTEGRITY; after a Resume (Startup(STATE)) both load.
#[test]
fn stclear_object_contexts_do_not_survive_a_restart() {
    need_tools!();
    let mut t = Vtpm::start_socket();
    let dir = t.tmp.path().to_path_buf();
    let (plain, stclear) = (dir.join("plain.ctx"), dir.join("stclear.ctx"));
    let (plain, stclear) = (plain.to_str().unwrap(), stclear.to_str().unwrap());
    let attrs = "restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth";
    let tcti = t.tcti();
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-a", attrs, "-c", plain],
        &tcti,
    );
    ok("tpm2_flushcontext", &["-t"], &tcti);
    let with_stclear = format!("{attrs}|stclear");
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-a", &with_stclear, "-c", stclear],
        &tcti,
    );
    ok("tpm2_flushcontext", &["-t"], &tcti);
    // Resume: Shutdown(STATE), power cycle, Startup(STATE).
    ok("tpm2_shutdown", &[], &tcti);
    t.guard.terminate();
    t.restart_socket(&["--flags", "not-need-init,startup-state"]);
    for ctx in [plain, stclear] {
        ok("tpm2_readpublic", &["-c", ctx], &t.tcti());
    }
    // Restart: Shutdown(STATE), power cycle, Startup(CLEAR).
    ok("tpm2_shutdown", &[], &t.tcti());
    t.guard.terminate();
    t.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    ok("tpm2_readpublic", &["-c", plain], &t.tcti());
    let err = fails("tpm2_readpublic", &["-c", stclear], &t.tcti());
    assert!(err.contains("0x1df") || err.contains("0x000001df"), "{err}");
}
