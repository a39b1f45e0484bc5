//! NV indices through tpm2-tools against the real binary: every index type,
//! the TPMA_NV rules each tried both ways (allowed, refused with the code),
//! counters across restarts (never backwards, also after `kill -9`), the
//! STCLEAR locks across Startup(CLEAR), NV_ChangeAuth with a policy session,
//! a 2 KiB index in TPM_PT_NV_BUFFER_MAX chunks, and one sequence compared
//! code by code with swtpm.

mod common;

use std::time::Duration;

use common::{run_tpm2, tpm2_fails as fails, tpm2_ok as ok, Vtpm};
use nix::sys::signal::Signal;

/// A scratch file path in the test's temp dir.
fn f(t: &Vtpm, name: &str) -> String {
    t.tmp.path().join(name).display().to_string()
}

/// The TPM response code tpm2-tss reports in a failed tool's stderr.
fn code(stderr: &str) -> String {
    stderr
        .split("ErrorCode (")
        .last()
        .filter(|_| stderr.contains("ErrorCode ("))
        .and_then(|r| r.split(')').next())
        .unwrap_or("no TPM code")
        .to_string()
}

/// Run a tool that must fail with TPM response code `rc` (e.g. "0x00000149").
fn refused(tool: &str, args: &[&str], tcti: &str, rc: &str) {
    let err = fails(tool, args, tcti);
    assert_eq!(code(&err), rc, "{tool} {args:?}:\n{err}");
}

/// `tpm2_nvread` of `size` octets as bytes.
fn read(t: &Vtpm, index: &str, auth: &[&str], size: usize) -> Vec<u8> {
    let out = f(t, "read.bin");
    let size = size.to_string();
    let mut args = vec![index, "-s", &size, "-o", &out];
    args.extend_from_slice(auth);
    ok("tpm2_nvread", &args, &t.tcti());
    std::fs::read(&out).unwrap()
}

/// `tpm2_nvwrite` of `data` (through a file).
fn write(t: &Vtpm, index: &str, auth: &[&str], data: &[u8]) {
    let file = f(t, "write.bin");
    std::fs::write(&file, data).unwrap();
    let mut args = vec![index, "-i", &file];
    args.extend_from_slice(auth);
    ok("tpm2_nvwrite", &args, &t.tcti());
}

fn counter(t: &Vtpm, index: &str) -> u64 {
    let v = read(t, index, &["-C", "o"], 8);
    u64::from_be_bytes(v.try_into().unwrap())
}

/// The attributes line of `tpm2_nvreadpublic`.
fn attributes(t: &Vtpm, index: &str) -> String {
    let out = ok("tpm2_nvreadpublic", &[index], &t.tcti());
    out.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("friendly: ")
                .filter(|v| v.contains("read"))
        })
        .unwrap_or_else(|| panic!("no attributes in {out}"))
        .to_string()
}

/// SIGKILL vtpm (no Shutdown) or SIGTERM it (auto Shutdown(STATE)) and start
/// it again on the same state with Startup(CLEAR).
fn restart(t: &mut Vtpm, kill: bool) {
    if kill {
        t.guard.signal(Signal::SIGKILL);
        t.guard.wait_timeout(Duration::from_secs(10));
    } else {
        t.guard.terminate();
    }
    t.restart_socket(&["--flags", "not-need-init,startup-clear"]);
}

#[test]
fn every_index_type_defines_writes_reads_and_undefines() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    let o = ["-C", "o"];
    // Ordinary.
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500001",
            "-C",
            "o",
            "-s",
            "16",
            "-a",
            "ownerread|ownerwrite",
        ],
        &tcti,
    );
    refused(
        "tpm2_nvread",
        &["0x1500001", "-C", "o", "-s", "4"],
        &tcti,
        "0x0000014a",
    );
    write(&t, "0x1500001", &o, b"0123456789abcdef");
    assert_eq!(read(&t, "0x1500001", &o, 16), b"0123456789abcdef");
    assert!(attributes(&t, "0x1500001").contains("written"));
    // Counter.
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500002",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|nt=counter",
        ],
        &tcti,
    );
    ok("tpm2_nvincrement", &["0x1500002", "-C", "o"], &tcti);
    let first = counter(&t, "0x1500002");
    ok("tpm2_nvincrement", &["0x1500002", "-C", "o"], &tcti);
    assert_eq!(counter(&t, "0x1500002"), first + 1);
    // A counter is written only by NV_Increment (TPM_RC_ATTRIBUTES).
    let file = f(&t, "eight");
    std::fs::write(&file, [0u8; 8]).unwrap();
    refused(
        "tpm2_nvwrite",
        &["0x1500002", "-C", "o", "-i", &file],
        &tcti,
        "0x00000082",
    );
    // Bits.
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500003",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|nt=bits",
        ],
        &tcti,
    );
    ok(
        "tpm2_nvsetbits",
        &["0x1500003", "-C", "o", "-i", "0x5"],
        &tcti,
    );
    ok(
        "tpm2_nvsetbits",
        &["0x1500003", "-C", "o", "-i", "0x100"],
        &tcti,
    );
    assert_eq!(counter(&t, "0x1500003"), 0x105);
    refused(
        "tpm2_nvincrement",
        &["0x1500003", "-C", "o"],
        &tcti,
        "0x00000282",
    );
    // Extend (SHA-256): H(zeros || data), then H(previous || data).
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500004",
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite|nt=extend",
        ],
        &tcti,
    );
    let data = f(&t, "ext");
    std::fs::write(&data, b"abc").unwrap();
    ok(
        "tpm2_nvextend",
        &["0x1500004", "-C", "o", "-i", &data],
        &tcti,
    );
    ok(
        "tpm2_nvextend",
        &["0x1500004", "-C", "o", "-i", &data],
        &tcti,
    );
    let once = sha256(&[[0u8; 32].as_slice(), b"abc"].concat());
    let twice = sha256(&[once.as_slice(), b"abc"].concat());
    assert_eq!(read(&t, "0x1500004", &o, 32), twice);
    refused(
        "tpm2_nvextend",
        &["0x1500001", "-C", "o", "-i", &data],
        &tcti,
        "0x00000282",
    );
    refused(
        "tpm2_nvsetbits",
        &["0x1500004", "-C", "o", "-i", "1"],
        &tcti,
        "0x00000282",
    );
    // PIN Pass: pinCount counts the uses of the PIN up to pinLimit.
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500005",
            "-C",
            "o",
            "-s",
            "8",
            "-p",
            "pin",
            "-a",
            "ownerread|ownerwrite|authread|nt=pinpass",
        ],
        &tcti,
    );
    write(&t, "0x1500005", &o, &[0, 0, 0, 0, 0, 0, 0, 2]);
    let pin = ["-C", "0x1500005", "-P", "pin"];
    assert_eq!(read(&t, "0x1500005", &pin, 8), [0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(read(&t, "0x1500005", &pin, 8), [0, 0, 0, 2, 0, 0, 0, 2]);
    refused(
        "tpm2_nvread",
        &["0x1500005", "-C", "0x1500005", "-P", "pin", "-s", "8"],
        &tcti,
        "0x0000012f",
    );
    // PIN Fail: pinCount counts failures, a success resets it; NO_DA is required.
    refused(
        "tpm2_nvdefine",
        &[
            "0x1500006",
            "-C",
            "o",
            "-s",
            "8",
            "-p",
            "pin",
            "-a",
            "ownerread|ownerwrite|authread|nt=pinfail",
        ],
        &tcti,
        "0x000002c2",
    );
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500006",
            "-C",
            "o",
            "-s",
            "8",
            "-p",
            "pin",
            "-a",
            "ownerread|ownerwrite|authread|no_da|nt=pinfail",
        ],
        &tcti,
    );
    write(&t, "0x1500006", &o, &[0, 0, 0, 0, 0, 0, 0, 3]);
    refused(
        "tpm2_nvread",
        &["0x1500006", "-C", "0x1500006", "-P", "bad", "-s", "8"],
        &tcti,
        "0x000009a2",
    );
    assert_eq!(read(&t, "0x1500006", &o, 8), [0, 0, 0, 1, 0, 0, 0, 3]);
    assert_eq!(
        read(&t, "0x1500006", &["-C", "0x1500006", "-P", "pin"], 8),
        [0, 0, 0, 0, 0, 0, 0, 3]
    );
    // All listed, then all gone.
    let handles = ok("tpm2_getcap", &["handles-nv-index"], &tcti);
    for i in 1..=6 {
        assert!(handles.contains(&format!("0x150000{i}")), "{handles}");
        ok(
            "tpm2_nvundefine",
            &[&format!("0x150000{i}"), "-C", "o"],
            &tcti,
        );
    }
    assert!(!ok("tpm2_getcap", &["handles-nv-index"], &tcti).contains("0x15"));
    let props = ok("tpm2_getcap", &["properties-fixed"], &tcti);
    for (p, v) in [
        ("NV_INDEX_MAX", "0x800"),
        ("NV_BUFFER_MAX", "0x400"),
        ("ORDERLY_COUNT", "0xFF"),
    ] {
        let line = props
            .split(&format!("TPM2_PT_{p}:"))
            .nth(1)
            .unwrap_or_else(|| panic!("{p}: {props}"));
        assert!(
            line.trim_start().starts_with(&format!("raw: {v}")),
            "{p}: {line}"
        );
    }
}

/// SHA-256 of `data` by openssl (an implementation independent of vtpm's).
fn sha256(data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d");
    std::fs::write(&file, data).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .arg(&file)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn attribute_rules_allow_and_refuse() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    let def = |idx: &str, attrs: &str, extra: &[&str]| {
        let mut a = vec![idx, "-C", "o", "-s", "8", "-a", attrs];
        a.extend_from_slice(extra);
        run_tpm2("tpm2_nvdefine", &a, &tcti)
    };
    // Define-time consistency (publicInfo is parameter 2, authHandle handle 1).
    for (attrs, rc) in [
        ("ownerwrite", "0x000002c2"),
        ("ownerread", "0x000002c2"),
        ("ownerread|ownerwrite|written", "0x000002c2"),
        ("ownerread|ownerwrite|writelocked", "0x000002c2"),
        (
            "ownerread|ownerwrite|clear_stclear|writedefine",
            "0x000002c2",
        ),
        (
            "ownerread|ownerwrite|nt=counter|clear_stclear",
            "0x000002c2",
        ),
        ("ownerread|ownerwrite|platformcreate", "0x00000182"),
        ("ownerread|ownerwrite|nt=pinpass|authwrite", "0x000002c2"),
    ] {
        let out = def("0x1500010", attrs, &[]);
        assert!(!out.status.success(), "{attrs} accepted");
        assert_eq!(code(&String::from_utf8_lossy(&out.stderr)), rc, "{attrs}");
    }
    refused(
        "tpm2_nvdefine",
        &[
            "0x1500010",
            "-C",
            "o",
            "-s",
            "2049",
            "-a",
            "ownerread|ownerwrite",
        ],
        &tcti,
        "0x000002d5",
    );
    refused(
        "tpm2_nvdefine",
        &[
            "0x1500010",
            "-C",
            "o",
            "-s",
            "1500",
            "-a",
            "ownerread|ownerwrite|writeall",
        ],
        &tcti,
        "0x000002d5",
    );
    // Already defined.
    assert!(def("0x1500010", "ownerread|ownerwrite", &[])
        .status
        .success());
    refused(
        "tpm2_nvdefine",
        &[
            "0x1500010",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite",
        ],
        &tcti,
        "0x0000014c",
    );

    // AUTHREAD/AUTHWRITE: the index's own authValue; the owner is refused.
    assert!(def("0x1500011", "authread|authwrite|no_da", &["-p", "pw"])
        .status
        .success());
    let idx = ["-C", "0x1500011", "-P", "pw"];
    write(&t, "0x1500011", &idx, b"12345678");
    assert_eq!(read(&t, "0x1500011", &idx, 8), b"12345678");
    refused(
        "tpm2_nvread",
        &["0x1500011", "-C", "o", "-s", "8"],
        &tcti,
        "0x00000149",
    );
    refused(
        "tpm2_nvread",
        &["0x1500011", "-C", "0x1500011", "-P", "no", "-s", "8"],
        &tcti,
        "0x000009a2",
    );
    // OWNERREAD only: the index's authValue is unavailable for reads.
    assert!(def("0x1500012", "ownerread|authwrite", &["-p", "pw"])
        .status
        .success());
    write(
        &t,
        "0x1500012",
        &["-C", "0x1500012", "-P", "pw"],
        b"abcdefgh",
    );
    assert_eq!(read(&t, "0x1500012", &["-C", "o"], 8), b"abcdefgh");
    refused(
        "tpm2_nvread",
        &["0x1500012", "-C", "0x1500012", "-P", "pw", "-s", "8"],
        &tcti,
        "0x0000012f",
    );
    let file = f(&t, "x");
    std::fs::write(&file, b"x").unwrap();
    refused(
        "tpm2_nvwrite",
        &["0x1500012", "-C", "o", "-i", &file],
        &tcti,
        "0x00000149",
    );
    // WRITEALL: a partial write is out of range.
    assert!(def("0x1500013", "ownerread|ownerwrite|writeall", &[])
        .status
        .success());
    refused(
        "tpm2_nvwrite",
        &["0x1500013", "-C", "o", "-i", &file],
        &tcti,
        "0x00000146",
    );
    write(&t, "0x1500013", &["-C", "o"], b"ABCDEFGH");
    // WriteLock needs WRITEDEFINE or WRITE_STCLEAR.
    refused(
        "tpm2_nvwritelock",
        &["0x1500013", "-C", "o"],
        &tcti,
        "0x00000282",
    );
    // The platform may remove an owner index, the owner not a platform one.
    ok(
        "tpm2_nvdefine",
        &[
            "0x1400001",
            "-C",
            "p",
            "-s",
            "8",
            "-a",
            "ppread|ppwrite|platformcreate",
        ],
        &tcti,
    );
    refused(
        "tpm2_nvundefine",
        &["0x1400001", "-C", "o"],
        &tcti,
        "0x00000149",
    );
    ok("tpm2_nvundefine", &["0x1500013", "-C", "p"], &tcti);
    ok("tpm2_nvundefine", &["0x1400001", "-C", "p"], &tcti);
    // A missing index is TPM_RC_HANDLE.
    refused("tpm2_nvreadpublic", &["0x1500099"], &tcti, "0x0000018b");
}

#[test]
fn counters_never_go_back_across_restarts() {
    need_tools!();
    let mut t = Vtpm::start_socket();
    let tcti = t.tcti();
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500020",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|nt=counter",
        ],
        &tcti,
    );
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500021",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|nt=counter|orderly",
        ],
        &tcti,
    );
    for _ in 0..3 {
        ok("tpm2_nvincrement", &["0x1500020", "-C", "o"], &t.tcti());
        ok("tpm2_nvincrement", &["0x1500021", "-C", "o"], &t.tcti());
    }
    let (mut plain, mut orderly) = (counter(&t, "0x1500020"), counter(&t, "0x1500021"));
    // Orderly (SIGTERM sends Shutdown), then power lost (kill -9) twice.
    for kill in [false, true, true] {
        restart(&mut t, kill);
        let (p, o) = (counter(&t, "0x1500020"), counter(&t, "0x1500021"));
        assert_eq!(p, plain, "a non-orderly counter is exact");
        if kill {
            assert!(o >= orderly, "orderly counter went back: {o} < {orderly}");
        } else {
            assert_eq!(o, orderly, "an orderly shutdown keeps the exact value");
        }
        ok("tpm2_nvincrement", &["0x1500020", "-C", "o"], &t.tcti());
        ok("tpm2_nvincrement", &["0x1500021", "-C", "o"], &t.tcti());
        (plain, orderly) = (counter(&t, "0x1500020"), counter(&t, "0x1500021"));
    }
    // A counter defined later starts above both.
    let tcti = t.tcti();
    ok("tpm2_nvundefine", &["0x1500021", "-C", "o"], &tcti);
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500022",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|nt=counter",
        ],
        &tcti,
    );
    ok("tpm2_nvincrement", &["0x1500022", "-C", "o"], &tcti);
    assert!(counter(&t, "0x1500022") > orderly.max(plain));
}

#[test]
fn stclear_locks_last_until_startup_clear() {
    need_tools!();
    let mut t = Vtpm::start_socket();
    let tcti = t.tcti();
    let o = ["-C", "o"];
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500030",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|write_stclear|read_stclear",
        ],
        &tcti,
    );
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500031",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|writedefine",
        ],
        &tcti,
    );
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500032",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|clear_stclear",
        ],
        &tcti,
    );
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500033",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|globallock",
        ],
        &tcti,
    );
    for i in 0..4 {
        write(&t, &format!("0x150003{i}"), &o, b"abcdefgh");
    }
    let file = f(&t, "x");
    std::fs::write(&file, b"x").unwrap();
    ok("tpm2_nvwritelock", &["0x1500030", "-C", "o"], &tcti);
    ok("tpm2_nvwritelock", &["0x1500031", "-C", "o"], &tcti);
    ok("tpm2_nvwritelock", &["--global", "-C", "o"], &tcti);
    ok("tpm2_nvreadlock", &["0x1500030", "-C", "o"], &tcti);
    for i in [0, 1, 3] {
        refused(
            "tpm2_nvwrite",
            &[&format!("0x150003{i}"), "-C", "o", "-i", &file],
            &tcti,
            "0x00000148",
        );
        assert!(attributes(&t, &format!("0x150003{i}")).contains("writelocked"));
    }
    refused(
        "tpm2_nvread",
        &["0x1500030", "-C", "o", "-s", "8"],
        &tcti,
        "0x00000148",
    );
    // Locking again is no error.
    ok("tpm2_nvwritelock", &["0x1500030", "-C", "o"], &tcti);
    ok("tpm2_nvreadlock", &["0x1500030", "-C", "o"], &tcti);
    // Startup(CLEAR) (vtpm restarted): the STCLEAR and global locks are gone,
    // the WRITEDEFINE lock of a written index stays, CLEAR_STCLEAR forgets WRITTEN.
    restart(&mut t, false);
    let tcti = t.tcti();
    assert_eq!(read(&t, "0x1500030", &o, 8), b"abcdefgh");
    write(&t, "0x1500030", &o, b"x");
    write(&t, "0x1500033", &o, b"x");
    refused(
        "tpm2_nvwrite",
        &["0x1500031", "-C", "o", "-i", &file],
        &tcti,
        "0x00000148",
    );
    refused(
        "tpm2_nvread",
        &["0x1500032", "-C", "o", "-s", "8"],
        &tcti,
        "0x0000014a",
    );
}

#[test]
fn change_auth_of_an_index_needs_its_policy() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    let (s, pol) = (f(&t, "s.ctx"), f(&t, "pol"));
    ok("tpm2_startauthsession", &["-S", &s], &tcti);
    ok(
        "tpm2_policycommandcode",
        &["-S", &s, "-L", &pol, "TPM2_CC_NV_ChangeAuth"],
        &tcti,
    );
    ok("tpm2_flushcontext", &[&s], &tcti);
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500040",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "authread|authwrite|no_da",
            "-p",
            "old",
            "-L",
            &pol,
        ],
        &tcti,
    );
    // A password cannot act in the ADMIN role (TPM_RC_AUTH_TYPE).
    refused(
        "tpm2_changeauth",
        &["-c", "0x1500040", "-p", "old", "new"],
        &tcti,
        "0x00000124",
    );
    ok(
        "tpm2_startauthsession",
        &["--policy-session", "-S", &s],
        &tcti,
    );
    ok(
        "tpm2_policycommandcode",
        &["-S", &s, "TPM2_CC_NV_ChangeAuth"],
        &tcti,
    );
    ok(
        "tpm2_changeauth",
        &["-c", "0x1500040", "-p", &format!("session:{s}"), "new"],
        &tcti,
    );
    ok("tpm2_flushcontext", &[&s], &tcti);
    write(
        &t,
        "0x1500040",
        &["-C", "0x1500040", "-P", "new"],
        b"changed!",
    );
    refused(
        "tpm2_nvread",
        &["0x1500040", "-C", "0x1500040", "-P", "old", "-s", "8"],
        &tcti,
        "0x000009a2",
    );
    // An HMAC session keyed with the index's new authValue (its Name in the cpHash).
    ok(
        "tpm2_startauthsession",
        &["--hmac-session", "-S", &s],
        &tcti,
    );
    let data = read(
        &t,
        "0x1500040",
        &["-C", "0x1500040", "-P", &format!("session:{s}+new")],
        8,
    );
    assert_eq!(data, b"changed!");
    ok("tpm2_flushcontext", &[&s], &tcti);
}

#[test]
fn a_2k_index_goes_in_buffer_max_chunks() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500050",
            "-C",
            "o",
            "-s",
            "2048",
            "-a",
            "ownerread|ownerwrite",
        ],
        &tcti,
    );
    let data: Vec<u8> = (0..2048u32).map(|i| (i * 7 + i / 256) as u8).collect();
    // tpm2_nvwrite/nvread split by TPM_PT_NV_BUFFER_MAX (1024).
    write(&t, "0x1500050", &["-C", "o"], &data);
    assert_eq!(read(&t, "0x1500050", &["-C", "o"], 2048), data);
    let tail = f(&t, "tail");
    ok(
        "tpm2_nvread",
        &[
            "0x1500050",
            "-C",
            "o",
            "-s",
            "100",
            "--offset",
            "1948",
            "-o",
            &tail,
        ],
        &tcti,
    );
    assert_eq!(std::fs::read(&tail).unwrap(), &data[1948..]);
}

/// One NV sequence with its refusals: the code (or "ok" and any output) of
/// each step, for comparison between vtpm and swtpm.
fn nv_sequence(t: &Vtpm) -> Vec<String> {
    let tcti = t.tcti();
    let file = f(t, "in");
    let mut log = Vec::new();
    let mut step = |tool: &str, args: &[&str], input: Option<&[u8]>| {
        if let Some(d) = input {
            std::fs::write(&file, d).unwrap();
        }
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "IN" { file.as_str() } else { a })
            .collect();
        let out = run_tpm2(tool, &args, &tcti);
        let what = if out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            // Of the variable properties only the NV ones are NV business.
            let shown: Vec<&str> = stdout
                .lines()
                .filter(|l| {
                    !args.contains(&"properties-variable")
                        // How many more counters fit is the implementation's.
                        || (l.contains("NV_") && !l.contains("COUNTERS_AVAIL"))
                })
                .collect();
            format!("ok {}", shown.join("\n").trim())
        } else {
            code(&String::from_utf8_lossy(&out.stderr))
        };
        let tmp = t.tmp.path().display().to_string();
        log.push(format!("{tool} {args:?}: {what}").replace(&tmp, "TMP"));
    };
    let ordinary = "ownerread|ownerwrite|authread|authwrite|no_da";
    step(
        "tpm2_nvdefine",
        &[
            "0x1500001",
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            ordinary,
            "-p",
            "pw",
        ],
        None,
    );
    step(
        "tpm2_nvdefine",
        &["0x1500001", "-C", "o", "-s", "32", "-a", ordinary],
        None,
    );
    step("tpm2_nvread", &["0x1500001", "-C", "o", "-s", "32"], None);
    step(
        "tpm2_nvwrite",
        &[
            "0x1500001",
            "-C",
            "0x1500001",
            "-P",
            "pw",
            "-i",
            "IN",
            "--offset",
            "3",
        ],
        Some(b"hello"),
    );
    step(
        "tpm2_nvwrite",
        &["0x1500001", "-C", "0x1500001", "-P", "px", "-i", "IN"],
        Some(b"x"),
    );
    step("tpm2_nvread", &["0x1500001", "-C", "o", "-s", "12"], None);
    step("tpm2_nvreadpublic", &["0x1500001"], None);
    step(
        "tpm2_nvextend",
        &["0x1500001", "-C", "o", "-i", "IN"],
        Some(b"x"),
    );
    step("tpm2_nvwritelock", &["0x1500001", "-C", "o"], None);
    step("tpm2_nvreadlock", &["0x1500001", "-C", "o"], None);
    step(
        "tpm2_nvdefine",
        &[
            "0x1500002",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|nt=counter",
        ],
        None,
    );
    step("tpm2_nvincrement", &["0x1500002", "-C", "o"], None);
    step("tpm2_nvincrement", &["0x1500002", "-C", "o"], None);
    step("tpm2_nvread", &["0x1500002", "-C", "o", "-s", "8"], None);
    step("tpm2_nvsetbits", &["0x1500002", "-C", "o", "-i", "1"], None);
    step(
        "tpm2_nvdefine",
        &[
            "0x1500003",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|nt=bits|orderly",
        ],
        None,
    );
    step(
        "tpm2_nvsetbits",
        &["0x1500003", "-C", "o", "-i", "0x8000000000000001"],
        None,
    );
    step("tpm2_nvread", &["0x1500003", "-C", "o", "-s", "8"], None);
    step(
        "tpm2_nvdefine",
        &[
            "0x1500004",
            "-C",
            "o",
            "-s",
            "48",
            "-g",
            "sha384",
            "-a",
            "ownerread|ownerwrite|nt=extend",
        ],
        None,
    );
    step(
        "tpm2_nvextend",
        &["0x1500004", "-C", "o", "-i", "IN"],
        Some(b"measure"),
    );
    step("tpm2_nvread", &["0x1500004", "-C", "o", "-s", "48"], None);
    step("tpm2_nvreadpublic", &["0x1500004"], None);
    step(
        "tpm2_nvdefine",
        &[
            "0x1500005",
            "-C",
            "o",
            "-s",
            "8",
            "-p",
            "pin",
            "-a",
            "ownerread|ownerwrite|authread|no_da|nt=pinfail",
        ],
        None,
    );
    step(
        "tpm2_nvread",
        &["0x1500005", "-C", "0x1500005", "-P", "pin", "-s", "8"],
        None,
    );
    step(
        "tpm2_nvwrite",
        &["0x1500005", "-C", "o", "-i", "IN"],
        Some(&[0, 0, 0, 0, 0, 0, 0, 1]),
    );
    step(
        "tpm2_nvread",
        &["0x1500005", "-C", "0x1500005", "-P", "bad", "-s", "8"],
        None,
    );
    step(
        "tpm2_nvread",
        &["0x1500005", "-C", "0x1500005", "-P", "pin", "-s", "8"],
        None,
    );
    step("tpm2_nvread", &["0x1500005", "-C", "o", "-s", "8"], None);
    step(
        "tpm2_nvdefine",
        &[
            "0x1500006",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|write_stclear|read_stclear",
        ],
        None,
    );
    step("tpm2_nvreadlock", &["0x1500006", "-C", "o"], None);
    step("tpm2_nvread", &["0x1500006", "-C", "o", "-s", "8"], None);
    step("tpm2_nvwritelock", &["0x1500006", "-C", "o"], None);
    step(
        "tpm2_nvwrite",
        &["0x1500006", "-C", "o", "-i", "IN"],
        Some(b"x"),
    );
    step("tpm2_nvreadpublic", &["0x1500006"], None);
    step(
        "tpm2_nvdefine",
        &[
            "0x1500007",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ownerread|ownerwrite|globallock",
        ],
        None,
    );
    step("tpm2_nvwritelock", &["--global", "-C", "o"], None);
    step(
        "tpm2_nvwrite",
        &["0x1500007", "-C", "o", "-i", "IN"],
        Some(b"x"),
    );
    step(
        "tpm2_nvdefine",
        &[
            "0x1400001",
            "-C",
            "p",
            "-s",
            "8",
            "-a",
            "ppread|ppwrite|platformcreate|no_da",
        ],
        None,
    );
    step(
        "tpm2_nvdefine",
        &["0x1400002", "-C", "p", "-s", "8", "-a", "ppread|ppwrite"],
        None,
    );
    step(
        "tpm2_nvdefine",
        &[
            "0x1400002",
            "-C",
            "o",
            "-s",
            "8",
            "-a",
            "ppread|ppwrite|policydelete",
        ],
        None,
    );
    step(
        "tpm2_nvwrite",
        &["0x1400001", "-C", "o", "-i", "IN"],
        Some(b"x"),
    );
    step("tpm2_nvundefine", &["0x1400001", "-C", "o"], None);
    // POLICY_DELETE: only NV_UndefineSpaceSpecial with the index's policy.
    let (s, pol) = (f(t, "s.ctx"), f(t, "pol"));
    step("tpm2_startauthsession", &["-S", &s], None);
    step(
        "tpm2_policycommandcode",
        &["-S", &s, "-L", &pol, "TPM2_CC_NV_UndefineSpaceSpecial"],
        None,
    );
    step("tpm2_flushcontext", &[&s], None);
    step(
        "tpm2_nvdefine",
        &[
            "0x1400003",
            "-C",
            "p",
            "-s",
            "8",
            "-a",
            "ppread|ppwrite|platformcreate|policydelete",
            "-L",
            &pol,
        ],
        None,
    );
    step("tpm2_nvundefine", &["0x1400003", "-C", "p"], None);
    step(
        "tpm2_startauthsession",
        &["--policy-session", "-S", &s],
        None,
    );
    step(
        "tpm2_policycommandcode",
        &["-S", &s, "TPM2_CC_NV_UndefineSpaceSpecial"],
        None,
    );
    step("tpm2_nvundefine", &["0x1400003", "-C", "p", "-S", &s], None);
    step("tpm2_nvundefine", &["0x1400001", "-C", "p"], None);
    step("tpm2_nvundefine", &["0x1500001", "-C", "p"], None);
    step("tpm2_nvundefine", &["0x1500001", "-C", "o"], None);
    step("tpm2_getcap", &["handles-nv-index"], None);
    step("tpm2_getcap", &["properties-variable"], None);
    log
}

#[test]
fn nv_sequence_answers_like_swtpm() {
    need_tools!();
    let ours = nv_sequence(&Vtpm::start_socket());
    assert!(ours[0].ends_with("ok nv-index: 0x1500001"), "{}", ours[0]);
    let Some(sw) = common::start_swtpm() else {
        eprintln!("swtpm not installed: comparison skipped");
        return;
    };
    let theirs = nv_sequence(&sw);
    eprintln!("{}", ours.join("\n"));
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b);
    }
    assert_eq!(ours.len(), theirs.len());
}

#[test]
fn data_goes_encrypted_in_a_salted_session() {
    need_tools!();
    let t = Vtpm::start_socket();
    let tcti = t.tcti();
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500060",
            "-C",
            "o",
            "-s",
            "16",
            "-a",
            "authread|authwrite|no_da",
            "-p",
            "pw",
        ],
        &tcti,
    );
    let (prim, s) = (f(&t, "p.ctx"), f(&t, "s.ctx"));
    ok("tpm2_createprimary", &["-C", "o", "-c", &prim], &tcti);
    // Salted with the primary, encrypting NV_Write's data and NV_Read's answer.
    ok(
        "tpm2_startauthsession",
        &["--hmac-session", "-S", &s, "-c", &prim],
        &tcti,
    );
    ok(
        "tpm2_sessionconfig",
        &[&s, "--enable-encrypt", "--enable-decrypt"],
        &tcti,
    );
    let auth = format!("session:{s}+pw");
    write(
        &t,
        "0x1500060",
        &["-C", "0x1500060", "-P", &auth],
        b"secret-data-1234",
    );
    assert_eq!(
        read(&t, "0x1500060", &["-C", "0x1500060", "-P", &auth], 16),
        b"secret-data-1234"
    );
    ok("tpm2_flushcontext", &[&s], &tcti);
}

/// NV_Certify with an endorsement signing key: the attestation verifies, holds
/// the qualifying data and the certified octets; the codes of the refusals,
/// compared with swtpm's when it is installed.
fn certify_codes(t: &Vtpm) -> Vec<String> {
    let tcti = t.tcti();
    let (sign, stor) = (f(t, "sign.ctx"), f(t, "stor.ctx"));
    let attrs = "sign|fixedtpm|fixedparent|sensitivedataorigin|userwithauth";
    ok(
        "tpm2_createprimary",
        &["-C", "e", "-G", "ecc", "-a", attrs, "-c", &sign],
        &tcti,
    );
    ok("tpm2_flushcontext", &["-t"], &tcti);
    ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc", "-c", &stor],
        &tcti,
    );
    ok("tpm2_flushcontext", &["-t"], &tcti);
    ok(
        "tpm2_nvdefine",
        &[
            "0x1500070",
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite|no_da",
        ],
        &tcti,
    );
    write(
        t,
        "0x1500070",
        &["-C", "o"],
        b"0123456789abcdef0123456789abcdef",
    );
    let mut codes = Vec::new();
    let (sig, att) = (f(t, "sig"), f(t, "att"));
    for (key, auth, size, offset) in [
        (&sign, "o", "8", "4"),
        (&sign, "o", "0", "0"),
        (&stor, "o", "8", "0"),
        (&sign, "0x1500070", "8", "0"),
        (&sign, "p", "8", "0"),
    ] {
        let args = [
            "-C",
            key,
            "-c",
            auth,
            "-g",
            "sha256",
            "-o",
            &sig,
            "-q",
            "1122",
            "--attestation",
            &att,
            "--size",
            size,
            "--offset",
            offset,
            "0x1500070",
        ];
        let out = run_tpm2("tpm2_nvcertify", &args, &tcti);
        codes.push(if out.status.success() {
            "ok".to_string()
        } else {
            code(&String::from_utf8_lossy(&out.stderr))
        });
        ok("tpm2_flushcontext", &["-t"], &tcti);
        if (size, offset) == ("8", "4") {
            ok(
                "tpm2_verifysignature",
                &["-c", &sign, "-g", "sha256", "-m", &att, "-s", &sig],
                &tcti,
            );
            ok("tpm2_flushcontext", &["-t"], &tcti);
            let a = std::fs::read(&att).unwrap();
            // magic, TPM_ST_ATTEST_NV, ..., offset 4, 8 octets of data.
            assert_eq!(&a[..6], &[0xff, 0x54, 0x43, 0x47, 0x80, 0x14]);
            assert!(a.ends_with(b"\x00\x04\x00\x08456789ab"), "{a:02x?}");
            assert!(a.windows(4).any(|w| w == [0, 2, 0x11, 0x22]), "extraData");
        }
    }
    codes
}

#[test]
fn nv_certify_signs_the_contents_like_swtpm() {
    need_tools!();
    let ours = certify_codes(&Vtpm::start_socket());
    assert_eq!(ours, ["ok", "ok", "0x0000019c", "0x0000012f", "0x00000149"]);
    if let Some(sw) = common::start_swtpm() {
        assert_eq!(ours, certify_codes(&sw));
    }
}

/// tpm2_clear removes the owner's indices (not platform-created ones), and a
/// counter defined after it still starts above every counter before it.
#[test]
fn clear_removes_owner_indices_and_counters_never_go_back() {
    need_tools!();
    clear_sequence(&Vtpm::start_socket());
    // swtpm (libtpms) behaves the same way.
    if let Some(sw) = common::start_swtpm() {
        clear_sequence(&sw);
    }
}

fn clear_sequence(t: &Vtpm) {
    let tcti = t.tcti();
    let define = |index: &str, hierarchy: &str, attrs: &str| {
        ok(
            "tpm2_nvdefine",
            &[index, "-C", hierarchy, "-s", "8", "-a", attrs],
            &tcti,
        );
    };
    define("0x1500030", "o", "ownerread|ownerwrite|nt=counter");
    define("0x1400030", "p", "ppread|ppwrite|platformcreate");
    for _ in 0..5 {
        ok("tpm2_nvincrement", &["0x1500030", "-C", "o"], &tcti);
    }
    let before = counter(t, "0x1500030");
    write(t, "0x1400030", &["-C", "p"], b"platform");
    ok("tpm2_clear", &["-c", "p"], &tcti);
    let listed = ok("tpm2_getcap", &["handles-nv-index"], &tcti);
    assert!(
        !listed.contains("0x1500030"),
        "owner index survived Clear: {listed}"
    );
    assert!(
        listed.contains("0x1400030"),
        "platform index lost: {listed}"
    );
    refused(
        "tpm2_nvreadpublic",
        &["0x1500030"],
        &tcti,
        "0x0000018b", // TPM_RC_HANDLE (handle 1)
    );
    assert_eq!(read(t, "0x1400030", &["-C", "p"], 8), b"platform");
    define("0x1500030", "o", "ownerread|ownerwrite|nt=counter");
    ok("tpm2_nvincrement", &["0x1500030", "-C", "o"], &tcti);
    let after = counter(t, "0x1500030");
    assert!(
        after > before,
        "counter went back across Clear: {after} <= {before}"
    );
}
