//! tpm2-tools against the transport, with a mock that answers the few
//! commands `tpm2_getrandom` sends. Skipped when tpm2-tools is not installed.

mod common;

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use transport::{serve_mssim, serve_swtpm, Endpoint, MssimConfig, Server, SwtpmConfig};

const GET_RANDOM: u32 = 0x17b;
const GET_CAPABILITY: u32 = 0x17a;

fn response(params: &[u8]) -> Vec<u8> {
    let mut r = vec![0x80, 0x01];
    r.extend(((10 + params.len()) as u32).to_be_bytes());
    r.extend(0u32.to_be_bytes());
    r.extend(params);
    r
}

/// Answers GetRandom with 0x00, 0x01, ...; GetCapability(TPM_PROPERTIES) with
/// TPM2_PT_MAX_DIGEST (or the asked property if later) = 32; anything else
/// with a bare success.
fn smart(_loc: u8, cmd: &[u8]) -> Vec<u8> {
    let code = u32_at(cmd, 6);
    match code {
        GET_RANDOM if cmd.len() >= 12 => {
            let n = u16::from_be_bytes([cmd[10], cmd[11]]).min(32);
            let mut p = n.to_be_bytes().to_vec();
            p.extend((0..n).map(|i| i as u8));
            response(&p)
        }
        GET_CAPABILITY if cmd.len() >= 22 => {
            let cap = u32_at(cmd, 10);
            // tpm2-tools asks from TPM2_PT_FIXED on and looks for TPM2_PT_MAX_DIGEST.
            let prop = u32_at(cmd, 14).max(0x120);
            let mut p = vec![0u8]; // moreData
            p.extend(cap.to_be_bytes());
            p.extend(1u32.to_be_bytes());
            p.extend(prop.to_be_bytes());
            p.extend(32u32.to_be_bytes());
            response(&p)
        }
        _ => response(&[]),
    }
}

/// Two listeners on adjacent ports (P, P+1), as the TCTIs expect.
fn adjacent_ports() -> (TcpListener, TcpListener, u16) {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p == u16::MAX {
            continue;
        }
        if let Ok(b) = TcpListener::bind(("127.0.0.1", p + 1)) {
            return (a, b, p);
        }
    }
    panic!("no adjacent free ports");
}

fn have_tools() -> bool {
    Path::new("/usr/bin/tpm2_getrandom").exists()
}

fn getrandom(tcti: &str) -> std::process::Output {
    Command::new("tpm2_getrandom")
        .args(["8", "--hex", "-T", tcti])
        .env("TSS2_LOG", "all+none")
        .output()
        .unwrap()
}

fn check(out: std::process::Output, dev: &MockDevice) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let codes: Vec<u32> = dev
        .calls()
        .iter()
        .filter_map(|c| {
            if let Call::Execute { command, .. } = c {
                Some(u32_at(command, 6))
            } else {
                None
            }
        })
        .collect();
    assert!(
        out.status.success(),
        "status {:?}\nstdout {stdout}\nstderr {stderr}\ncommands {codes:x?}",
        out.status
    );
    assert_eq!(stdout.trim(), "0001020304050607", "stderr {stderr}");
    assert!(codes.contains(&GET_RANDOM), "{codes:x?}");
}

fn keep(_s: &Server) {}

#[test]
fn tpm2_getrandom_over_swtpm_tcti() {
    if !have_tools() {
        eprintln!("tpm2-tools not installed; skipped");
        return;
    }
    let dev = MockDevice::with_responder(true, Box::new(smart));
    let (data, ctrl, port) = adjacent_ports();
    let cfg = SwtpmConfig {
        data: Some(Endpoint::Fd(OwnedFd::from(data))),
        ctrl: Some(Endpoint::Fd(OwnedFd::from(ctrl))),
        ..Default::default()
    };
    let srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
    keep(&srv);
    let out = getrandom(&format!("swtpm:host=127.0.0.1,port={port}"));
    check(out, &dev);
}

#[test]
fn tpm2_getrandom_over_mssim_tcti() {
    if !have_tools() {
        eprintln!("tpm2-tools not installed; skipped");
        return;
    }
    // Powered off: the TCTI's POWER_ON must switch it on.
    let dev = MockDevice::with_responder(false, Box::new(smart));
    let (cmd, plat, port) = adjacent_ports();
    let cfg = MssimConfig {
        command: Endpoint::Fd(OwnedFd::from(cmd)),
        platform: Endpoint::Fd(OwnedFd::from(plat)),
    };
    let srv = serve_mssim(cfg, &tpm(&dev)).unwrap();
    keep(&srv);
    let out = getrandom(&format!("mssim:host=127.0.0.1,port={port}"));
    check(out, &dev);
    let calls = dev.calls();
    assert_eq!(
        calls.first(),
        Some(&Call::Init {
            delete_volatile: false
        })
    );
    assert!(calls.contains(&Call::NvAvailable(true)));
    // A second client finds the TPM already on.
    let out = getrandom(&format!("mssim:host=127.0.0.1,port={port}"));
    check(out, &dev);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        dev.calls()
            .iter()
            .filter(|c| matches!(c, Call::Init { .. }))
            .count(),
        1
    );
}
