//! TPM2_SetAlgorithmSet as libtpms has it: the platform sets a vendor value,
//! GetCapability reports it as TPM_PT_ALGORITHM_SET, it survives a restart;
//! the same response codes as swtpm for the platform, another hierarchy and
//! a short command.

mod common;
mod support;

use common::{start_swtpm, RawConn, Vtpm};
use support::corpus::{command, pw_area, NO_SESSIONS, SESSIONS};

const PT_ALGORITHM_SET: u32 = 0x20C;

fn send(t: &Vtpm, cmd: &[u8]) -> (u32, Vec<u8>) {
    RawConn::open(t.port).send(cmd)
}

fn set(t: &Vtpm, hierarchy: u32, value: &[u8]) -> u32 {
    let body = [&hierarchy.to_be_bytes()[..], &pw_area(), value].concat();
    send(t, &command(SESSIONS, 0x13F, &body)).0
}

/// TPM_PT_ALGORITHM_SET as GetCapability(TPM_CAP_TPM_PROPERTIES) reports it.
fn reported(t: &Vtpm) -> u32 {
    let body = [6u32, PT_ALGORITHM_SET, 1]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<_>>();
    let (rc, r) = send(t, &command(NO_SESSIONS, 0x17A, &body));
    assert_eq!(rc, 0);
    // moreData, capability, count, then (property, value).
    assert_eq!(
        u32::from_be_bytes(r[9..13].try_into().unwrap()),
        PT_ALGORITHM_SET
    );
    u32::from_be_bytes(r[13..17].try_into().unwrap())
}

fn run(t: &Vtpm) -> Vec<u32> {
    vec![
        reported(t),
        set(t, 0x4000_000C, &7u32.to_be_bytes()),
        reported(t),
        set(t, 0x4000_0001, &9u32.to_be_bytes()),
        set(t, 0x4000_000C, &[0, 1]),
        reported(t),
    ]
}

#[test]
fn set_algorithm_set_as_swtpm_and_kept_across_a_restart() {
    let mut v = Vtpm::start_socket();
    let ours = run(&v);
    println!("vtpm: {ours:x?}");
    assert_eq!(&ours[..3], &[0, 0, 7]);
    if let Some(sw) = start_swtpm() {
        assert_eq!(ours, run(&sw), "swtpm");
    }
    assert!(v.guard.terminate().is_some());
    v.restart_socket(&["--flags", "not-need-init,startup-clear"]);
    assert_eq!(reported(&v), 7, "kept in permanent state");
}
