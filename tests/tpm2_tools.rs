//! tpm2-tools (the Debian package) against the real `vtpm` binary over the
//! `swtpm:` and `mssim:` TCTIs, and side by side with swtpm + libtpms.

mod common;

use common::{start_swtpm, tpm2_fails as fails, tpm2_ok as ok, Vtpm};

/// A fixed sequence of measurements; returns the PCR values it leaves (all banks).
fn measure(tcti: &str, scratch: &std::path::Path) -> String {
    ok(
        "tpm2_pcrextend",
        &["0:sha256=0101010101010101010101010101010101010101010101010101010101010101"],
        tcti,
    );
    ok(
        "tpm2_pcrextend",
        &["7:sha1=0202020202020202020202020202020202020202,sha384=030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303"],
        tcti,
    );
    let event = scratch.join("event.bin");
    std::fs::write(&event, b"an event in the log").unwrap();
    ok("tpm2_pcrevent", &["16", event.to_str().unwrap()], tcti);
    ok("tpm2_pcrevent", &["23", event.to_str().unwrap()], tcti);
    ok("tpm2_pcrreset", &["23"], tcti);
    ok(
        "tpm2_pcrread",
        &["sha1:0,7,16,23+sha256:0,7,16,23+sha384:0,7,16+sha512:0,16"],
        tcti,
    )
}

/// The tool list over one TCTI.
fn tool_tour(tcti: &str) {
    let scratch = tempfile::tempdir().unwrap();
    ok("tpm2_selftest", &["--fulltest"], tcti);
    assert!(ok("tpm2_gettestresult", &[], tcti).contains("success"));
    let r = ok("tpm2_getrandom", &["--hex", "32"], tcti);
    assert_eq!(r.trim().len(), 64, "32 random bytes in hex: {r}");
    let stir = scratch.path().join("stir");
    std::fs::write(&stir, [7u8; 32]).unwrap();
    ok("tpm2_stirrandom", &[stir.to_str().unwrap()], tcti);
    let values = measure(tcti, scratch.path());
    assert!(values.contains("sha512"), "{values}");

    let data = scratch.path().join("abc");
    std::fs::write(&data, b"abc").unwrap();
    let h = ok(
        "tpm2_hash",
        &["-g", "sha256", "--hex", data.to_str().unwrap()],
        tcti,
    );
    assert_eq!(
        h.trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let ticket = scratch.path().join("ticket");
    ok(
        "tpm2_hash",
        &[
            "-C",
            "o",
            "-g",
            "sha1",
            "-t",
            ticket.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        tcti,
    );
    assert!(
        std::fs::metadata(&ticket).unwrap().len() > 10,
        "an owner hierarchy hash ticket"
    );

    let clock = ok("tpm2_readclock", &[], tcti);
    assert!(
        clock.contains("reset_count") && clock.contains("safe: yes"),
        "{clock}"
    );

    // PCR 0 cannot be reset from locality 0; PCR 16 can.
    assert!(fails("tpm2_pcrreset", &["0"], tcti).contains("0x907"));
    ok("tpm2_pcrreset", &["16"], tcti);

    let alloc = ok("tpm2_pcrallocate", &["sha256:all+sha1:none"], tcti);
    assert!(alloc.contains("sha256"), "{alloc}");
    ok("tpm2_shutdown", &["-c"], tcti);
}

#[test]
fn tools_over_swtpm_tcti() {
    need_tools!();
    let v = Vtpm::start_socket();
    tool_tour(&v.tcti());
}

#[test]
fn tools_over_mssim_tcti() {
    need_tools!();
    let v = Vtpm::start_mssim();
    ok("tpm2_startup", &["-c"], &v.tcti());
    tool_tour(&v.tcti());
}

#[test]
fn getcap_answers_every_capability_tpm2_getcap_lists() {
    need_tools!();
    let v = Vtpm::start_socket();
    let list = ok("tpm2_getcap", &["-l"], &v.tcti());
    let caps: Vec<&str> = list
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    assert!(caps.len() >= 10, "tpm2_getcap -l: {list}");
    for cap in caps {
        ok("tpm2_getcap", &[cap], &v.tcti());
    }
    let fixed = ok("tpm2_getcap", &["properties-fixed"], &v.tcti());
    assert!(fixed.contains("VTPM"), "honest manufacturer: {fixed}");
    let cmds = ok("tpm2_getcap", &["commands"], &v.tcti());
    assert!(
        cmds.contains("TPM2_CC_PCR_Extend") && cmds.contains("TPM2_CC_NV_Write"),
        "{cmds}"
    );
}

/// The policy commands in a `tpm2_getcap commands` listing.
fn policy_commands(listing: &str) -> Vec<String> {
    let mut v: Vec<String> = listing
        .lines()
        .filter_map(|l| l.trim().strip_suffix(':'))
        .filter(|l| l.starts_with("TPM2_CC_Policy"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn getcap_lists_the_policy_commands_swtpm_lists() {
    need_tools!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: comparison skipped (scripts/test.sh installs it)");
        return;
    };
    let v = Vtpm::start_socket();
    let ours = policy_commands(&ok("tpm2_getcap", &["commands"], &v.tcti()));
    let theirs = policy_commands(&ok("tpm2_getcap", &["commands"], &sw.tcti()));
    println!("{} policy commands: {}", ours.len(), ours.join(" "));
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 21, "{ours:?}");
}

/// `tpm2_getcap algorithms` as (name, attribute lines).
fn algorithms(text: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.starts_with(' ') {
            out.entry(cur.clone())
                .or_insert_with(Vec::new)
                .push(line.trim().to_string());
        } else {
            cur = line.trim_end_matches(':').to_string();
        }
    }
    out
}

/// vtpm lists the algorithms swtpm lists, each with the same
/// TPMA_ALGORITHM attributes (OAEP is no hash, ECDSA no method, TPM_ALG_NULL
/// is not an algorithm to list): tools that pick hashes or schemes from this
/// list choose what they would on swtpm.
#[test]
fn getcap_algorithms_have_swtpms_attributes() {
    need_tools!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: comparison skipped (scripts/test.sh installs it)");
        return;
    };
    let v = Vtpm::start_socket();
    let ours = algorithms(&ok("tpm2_getcap", &["algorithms"], &v.tcti()));
    let theirs = algorithms(&ok("tpm2_getcap", &["algorithms"], &sw.tcti()));
    for (alg, attrs) in &ours {
        assert_eq!(Some(attrs), theirs.get(alg), "{alg}: vtpm {attrs:?}");
    }
    let missing: Vec<&String> = theirs.keys().filter(|a| !ours.contains_key(*a)).collect();
    assert!(missing.is_empty(), "not in vtpm: {missing:?}");
    assert_eq!(ours.len(), 33, "{ours:?}");
}

/// Every command in a `tpm2_getcap commands` listing with its TPMA_CC
/// value. tpm2-tools 5.4 has no name for CertifyX509 and lists it by value
/// ("0x4000197").
fn command_values(listing: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut name = None;
    for line in listing.lines() {
        if let Some(n) = line.strip_suffix(':').filter(|n| !n.starts_with(' ')) {
            name = Some(n.to_string());
        } else if let (Some(value), Some(n)) = (line.trim().strip_prefix("value: "), &name) {
            let n = if n == "0x4000197" {
                "TPM2_CC_CertifyX509"
            } else {
                n
            };
            v.push((n.to_string(), value.to_string()));
        }
    }
    v.sort();
    v
}

/// The commands swtpm 0.7.1 lists that vtpm does not implement yet; each
/// piece of work that implements some takes them off this list.
const NOT_YET: &[&str] = &[];

#[test]
fn getcap_lists_the_commands_swtpm_lists_but_those_not_done_yet() {
    need_tools!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: comparison skipped (scripts/test.sh installs it)");
        return;
    };
    let v = Vtpm::start_socket();
    let ours = command_values(&ok("tpm2_getcap", &["commands"], &v.tcti()));
    let theirs = command_values(&ok("tpm2_getcap", &["commands"], &sw.tcti()));
    let names = |l: &[(String, String)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let missing: Vec<String> = names(&theirs)
        .into_iter()
        .filter(|n| !names(&ours).contains(n))
        .collect();
    println!(
        "vtpm {} commands, swtpm {}; not yet: {missing:?}",
        ours.len(),
        theirs.len()
    );
    assert_eq!(missing, NOT_YET, "swtpm's commands that vtpm lacks");
    let extra: Vec<String> = names(&ours)
        .into_iter()
        .filter(|n| !names(&theirs).contains(n))
        .collect();
    assert!(extra.is_empty(), "commands swtpm does not have: {extra:?}");
    // The attestation commands with the same TPMA_CC (handles, flags).
    let attestation = |l: &[(String, String)]| {
        l.iter()
            .filter(|(n, _)| {
                [
                    "Certify",
                    "CertifyCreation",
                    "CertifyX509",
                    "Quote",
                    "GetTime",
                    "NV_Certify",
                    "GetSessionAuditDigest",
                    "GetCommandAuditDigest",
                    "SetCommandCodeAuditStatus",
                    "Commit",
                    "EC_Ephemeral",
                    "ZGen_2Phase",
                ]
                .iter()
                .any(|c| *n == format!("TPM2_CC_{c}"))
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(attestation(&ours), attestation(&theirs));
    assert_eq!(attestation(&ours).len(), 12);
}

#[test]
fn pcr_digests_match_swtpm() {
    need_tools!();
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: comparison skipped (scripts/test.sh installs it)");
        return;
    };
    let v = Vtpm::start_socket();
    let scratch = tempfile::tempdir().unwrap();
    let ours = measure(&v.tcti(), scratch.path());
    let theirs = measure(&sw.tcti(), scratch.path());
    assert_eq!(
        ours, theirs,
        "the same measurements give the same PCR values"
    );
    // And the same response codes for refused operations.
    let a = fails("tpm2_pcrreset", &["0"], &v.tcti());
    let b = fails("tpm2_pcrreset", &["0"], &sw.tcti());
    assert!(
        a.contains("0x907") && b.contains("0x907"),
        "vtpm: {a}\nswtpm: {b}"
    );
}

#[test]
fn shutdown_state_then_startup_state_keeps_pcrs_across_a_restart() {
    need_tools!();
    let mut v = Vtpm::start_socket();
    let scratch = tempfile::tempdir().unwrap();
    let before = measure(&v.tcti(), scratch.path());
    let clock_before = ok("tpm2_readclock", &[], &v.tcti());
    ok("tpm2_shutdown", &[], &v.tcti()); // TPM2_Shutdown(STATE)
    assert!(
        v.guard.terminate().is_some_and(|s| s.success()),
        "SIGTERM ends vtpm cleanly"
    );

    v.restart_socket(&["--flags", "not-need-init"]);
    let tcti = v.tcti();
    ok("tpm2_startup", &[], &tcti); // TPM2_Startup(STATE)
    let after = ok(
        "tpm2_pcrread",
        &["sha1:0,7,16,23+sha256:0,7,16,23+sha384:0,7,16+sha512:0,16"],
        &tcti,
    );
    // PCRs 0-15 are restored; 16 and 23 are reset by Startup(STATE).
    let pick = |s: &str, bank: &str, pcr: &str| -> String {
        let sect = s.split(bank).nth(1).unwrap_or("");
        sect.lines()
            .find(|l| {
                l.trim_start()
                    .strip_prefix(pcr)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            })
            .unwrap_or("")
            .trim()
            .to_string()
    };
    for bank in ["sha1:", "sha256:", "sha384:"] {
        assert_eq!(
            pick(&before, bank, "0"),
            pick(&after, bank, "0"),
            "{bank} PCR 0"
        );
        assert_eq!(
            pick(&before, bank, "7"),
            pick(&after, bank, "7"),
            "{bank} PCR 7"
        );
    }
    assert!(
        pick(&after, "sha256:", "16")
            .ends_with("0x0000000000000000000000000000000000000000000000000000000000000000"),
        "PCR 16 is reset by Startup(STATE): {after}"
    );
    let clock_after = ok("tpm2_readclock", &[], &tcti);
    let clock = |s: &str| -> u64 {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("clock: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        clock(&clock_after) >= clock(&clock_before),
        "the clock does not go back:\n{clock_before}\n{clock_after}"
    );
    assert!(
        clock_after.contains("restart_count: 1"),
        "Startup(STATE) is a TPM Resume: {clock_after}"
    );
}

#[test]
fn pcr_allocate_takes_effect_at_the_next_startup_clear() {
    need_tools!();
    let mut v = Vtpm::start_socket();
    ok(
        "tpm2_pcrallocate",
        &["sha256:all+sha1:none+sha384:none+sha512:none"],
        &v.tcti(),
    );
    let now = ok("tpm2_getcap", &["pcrs"], &v.tcti());
    assert!(
        now.contains("sha1: [ 0, 1"),
        "still allocated until the next Startup(CLEAR): {now}"
    );
    ok("tpm2_shutdown", &["-c"], &v.tcti());
    assert!(v.guard.terminate().is_some());
    v.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    let tcti = v.tcti();
    let later = ok("tpm2_getcap", &["pcrs"], &tcti);
    assert!(
        later.contains("sha1: [ ]") && later.contains("sha256: [ 0, 1"),
        "{later}"
    );
}

#[test]
fn session_contexts_live_across_tool_invocations() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.ctx");
    let s = s.to_str().unwrap();
    ok("tpm2_startauthsession", &["-S", s, "--hmac-session"], &t);
    assert!(ok("tpm2_getcap", &["handles-saved-session"], &t).contains("0x2000000"));
    ok(
        "tpm2_sessionconfig",
        &[s, "--enable-encrypt", "--enable-decrypt"],
        &t,
    );
    assert!(ok("tpm2_sessionconfig", &[s], &t).contains("decrypt|encrypt"));
    let r = ok("tpm2_getrandom", &["-S", s, "--hex", "16"], &t);
    assert_eq!(
        r.trim().len(),
        32,
        "a response decrypted by the client: {r}"
    );
    ok(
        "tpm2_changeauth",
        &["-c", "owner", "-S", s, "owner-secret"],
        &t,
    );
    ok(
        "tpm2_changeauth",
        &["-c", "owner", "-p", "owner-secret", ""],
        &t,
    );
    ok("tpm2_flushcontext", &[s], &t);
    assert!(!ok("tpm2_getcap", &["handles-saved-session"], &t).contains("0x2000000"));
}

/// Trial-session policy digests of `tcti` (PolicyCommandCode, PolicySecret(owner), PolicyPassword).
fn policy_digests(tcti: &str, dir: &std::path::Path) -> Vec<String> {
    let t = dir.join("t.ctx");
    let t = t.to_str().unwrap();
    let mut out = Vec::new();
    for (i, steps) in [
        vec![vec![
            "tpm2_policycommandcode",
            "-S",
            t,
            "-L",
            "POLICY",
            "TPM2_CC_HierarchyChangeAuth",
        ]],
        vec![vec![
            "tpm2_policysecret",
            "-S",
            t,
            "-c",
            "o",
            "-L",
            "POLICY",
        ]],
        vec![vec!["tpm2_policypassword", "-S", t, "-L", "POLICY"]],
    ]
    .into_iter()
    .enumerate()
    {
        let file = dir.join(format!("policy{i}"));
        ok("tpm2_startauthsession", &["-S", t], tcti);
        for step in steps {
            let args: Vec<&str> = step[1..]
                .iter()
                .map(|a| {
                    if *a == "POLICY" {
                        file.to_str().unwrap()
                    } else {
                        a
                    }
                })
                .collect();
            ok(step[0], &args, tcti);
        }
        ok("tpm2_flushcontext", &[t], tcti);
        out.push(
            std::fs::read(&file)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        );
    }
    out
}

#[test]
fn policy_sessions_authorize_and_digests_match_swtpm() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let ours = policy_digests(&t, dir.path());
    if let Some(sw) = start_swtpm() {
        let swdir = tempfile::tempdir().unwrap();
        assert_eq!(
            ours,
            policy_digests(&sw.tcti(), swdir.path()),
            "policy digests agree with libtpms"
        );
    }
    // The owner hierarchy's policy: only HierarchyChangeAuth.
    let policy = dir.path().join("policy0");
    ok(
        "tpm2_setprimarypolicy",
        &["-C", "o", "-L", policy.to_str().unwrap(), "-g", "sha256"],
        &t,
    );
    let p = dir.path().join("p.ctx");
    let p = p.to_str().unwrap();
    ok("tpm2_startauthsession", &["--policy-session", "-S", p], &t);
    ok(
        "tpm2_policycommandcode",
        &["-S", p, "TPM2_CC_HierarchyChangeAuth"],
        &t,
    );
    ok(
        "tpm2_changeauth",
        &["-c", "o", "-p", &format!("session:{p}"), "by-policy"],
        &t,
    );
    ok("tpm2_flushcontext", &[p], &t);
    ok("tpm2_changeauth", &["-c", "o", "-p", "by-policy", ""], &t);
    // A policy for another command does not authorize this one: its digest
    // differs, which libtpms reports before the command code.
    ok("tpm2_startauthsession", &["--policy-session", "-S", p], &t);
    ok("tpm2_policycommandcode", &["-S", p, "TPM2_CC_ClockSet"], &t);
    let e = fails(
        "tpm2_changeauth",
        &["-c", "o", "-p", &format!("session:{p}"), "x"],
        &t,
    );
    assert!(
        e.contains("0x99d") || e.contains("0x99D"),
        "TPM_RC_POLICY_FAIL: {e}"
    );
}

#[test]
fn bound_sessions_authorize_with_the_session_key_tpm2_tss_derives() {
    need_tools!();
    let v = Vtpm::start_socket();
    let t = v.tcti();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b.ctx");
    let b = b.to_str().unwrap();
    // Bound to the owner hierarchy while its authValue is empty: the HMAC only
    // checks out if the sessionKey is KDFa over the empty key, as tpm2-tss derives it.
    ok(
        "tpm2_startauthsession",
        &["--hmac-session", "-S", b, "--bind-context", "o"],
        &t,
    );
    ok(
        "tpm2_changeauth",
        &["-c", "o", "-p", &format!("session:{b}"), "owner-pw"],
        &t,
    );
    ok("tpm2_flushcontext", &[b], &t);
    // Bound with a non-empty authValue.
    ok(
        "tpm2_startauthsession",
        &[
            "--hmac-session",
            "-S",
            b,
            "--bind-context",
            "o",
            "--bind-auth",
            "owner-pw",
        ],
        &t,
    );
    ok(
        "tpm2_changeauth",
        &["-c", "o", "-p", &format!("session:{b}"), ""],
        &t,
    );
    ok("tpm2_flushcontext", &[b], &t);
}
