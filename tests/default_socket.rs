//! `vtpm socket` with no flags at all: a TPM on 127.0.0.1:2321/2322, state in
//! the default directory, reachable by the `swtpm:` and the `mssim:` TCTI
//! (both default to port 2321), and by swtpm control clients on 2322.

mod common;

use std::time::Duration;

use common::{free_port_pair, have_tpm2_tools, listening, run_tpm2, vtpm_bin, wait_until, Guard};

fn getrandom_over(tcti: &str) {
    let out = run_tpm2("tpm2_getrandom", &["--hex", "16"], tcti);
    assert!(
        out.status.success(),
        "tpm2_getrandom over {tcti}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 32);
}

fn swtpm_ioctl_caps(port: u16) -> Option<String> {
    let out = std::process::Command::new("swtpm_ioctl")
        .args(["--tcp", &format!("127.0.0.1:{port}"), "-c"])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn bare_vtpm_socket_serves_both_tctis_on_the_default_ports() {
    if !have_tpm2_tools() {
        eprintln!("tpm2-tools not installed: skipped");
        return;
    }
    if listening(2321) || listening(2322) {
        eprintln!("ports 2321/2322 are taken on this machine: skipped");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let state_home = home.path().join("state");
    let g = Guard::spawn(
        vtpm_bin(),
        &["socket".to_string()],
        home.path().join("stderr"),
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("XDG_STATE_HOME", state_home.to_str().unwrap()),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(20), || listening(2321)
            && listening(2322)),
        "{}",
        g.stderr()
    );
    // The line is written once the sockets are bound: it may follow them.
    assert!(
        wait_until(Duration::from_secs(10), || g.stderr().contains("2321")),
        "says where it serves: {}",
        g.stderr()
    );
    assert!(
        state_home.join("vtpm").join("vtpm-nvram.img").exists(),
        "state in the default directory"
    );
    getrandom_over("swtpm:host=127.0.0.1,port=2321");
    getrandom_over("mssim:host=127.0.0.1,port=2321");
    getrandom_over("swtpm");
    getrandom_over("mssim");
}

#[test]
fn ctrl_port_with_mssim_serves_swtpm_and_mssim_clients() {
    if !have_tpm2_tools() {
        eprintln!("tpm2-tools not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let args: Vec<String> = [
        "socket",
        "--tpmstate",
        &format!("dir={}", tmp.path().display()),
        "--server",
        &format!("type=tcp,port={port}"),
        "--ctrl",
        &format!("type=tcp,port={},mssim", port + 1),
        "--flags",
        "not-need-init,startup-clear",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let g = Guard::spawn(vtpm_bin(), &args, tmp.path().join("stderr"), &[]);
    assert!(
        wait_until(Duration::from_secs(20), || listening(port)
            && listening(port + 1)),
        "{}",
        g.stderr()
    );
    for _ in 0..3 {
        getrandom_over(&format!("mssim:host=127.0.0.1,port={port}"));
        getrandom_over(&format!("swtpm:host=127.0.0.1,port={port}"));
        if let Some(caps) = swtpm_ioctl_caps(port + 1) {
            assert!(
                caps.contains("0x1ffff"),
                "a swtpm control client still gets its 8-byte answer: {caps}"
            );
        }
    }
}
