//! State blobs are input too (CMD_SET_STATEBLOB for migration, or a damaged
//! image): intact blobs migrate, mutated ones are refused with an error (each
//! blob ends in a SHA-256 of its contents), and nothing panics either way.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tpm_core::constants as c;
use tpm_core::{BlobKind, MemoryStore, Tpm, TpmConfig};

fn cmd(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn exercise(t: &mut Tpm) {
    let pw: Vec<u8> = [
        &9u32.to_be_bytes()[..],
        &c::RS_PW.to_be_bytes(),
        &[0, 0, 1, 0, 0],
    ]
    .concat();
    let sel = [
        &1u32.to_be_bytes()[..],
        &0x000Bu16.to_be_bytes(),
        &[3, 0xff, 0xff, 0xff],
    ]
    .concat();
    for command in [
        cmd(c::ST_NO_SESSIONS, c::CC_Startup, &1u16.to_be_bytes()),
        cmd(c::ST_NO_SESSIONS, c::CC_Startup, &0u16.to_be_bytes()),
        cmd(c::ST_NO_SESSIONS, c::CC_PCR_Read, &sel),
        cmd(
            c::ST_SESSIONS,
            c::CC_PCR_Extend,
            &[
                &0u32.to_be_bytes()[..],
                &pw,
                &1u32.to_be_bytes(),
                &0x000Bu16.to_be_bytes(),
                &[1; 32],
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_GetCapability,
            &[
                &6u32.to_be_bytes()[..],
                &0x100u32.to_be_bytes(),
                &200u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_GetCapability,
            &[
                &5u32.to_be_bytes()[..],
                &0u32.to_be_bytes(),
                &8u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(c::ST_NO_SESSIONS, c::CC_ReadClock, &[]),
        cmd(c::ST_NO_SESSIONS, c::CC_Shutdown, &1u16.to_be_bytes()),
    ] {
        let r = t.execute(0, &command);
        assert!(r.len() >= 10 && u32::from_be_bytes([r[2], r[3], r[4], r[5]]) as usize == r.len());
    }
}

#[test]
fn mutated_state_blobs_are_refused_or_harmless() {
    // Real blobs to mutate.
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    exercise(&mut t);
    let blobs: Vec<(BlobKind, Vec<u8>)> = BlobKind::ALL
        .iter()
        .map(|&k| (k, t.state_blob(k).unwrap()))
        .collect();
    t.power_off().unwrap();

    // The untouched blobs migrate. With the volatile blob the TPM resumes running
    // (the guest sends no Startup); without it, Startup(STATE) resumes from the save state.
    let mut dst = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    for (kind, b) in &blobs {
        dst.set_state_blob(*kind, b).unwrap();
    }
    dst.power_on(false).unwrap();
    let r = dst.execute(
        0,
        &cmd(c::ST_NO_SESSIONS, c::CC_GetRandom, &8u16.to_be_bytes()),
    );
    assert_eq!(&r[6..10], &[0, 0, 0, 0], "running right after migration");
    let mut dst = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    for (kind, b) in blobs.iter().filter(|(k, _)| *k != BlobKind::Volatile) {
        dst.set_state_blob(*kind, b).unwrap();
    }
    dst.power_on(false).unwrap();
    let r = dst.execute(
        0,
        &cmd(c::ST_NO_SESSIONS, c::CC_Startup, &1u16.to_be_bytes()),
    );
    assert_eq!(
        &r[6..10],
        &[0, 0, 0, 0],
        "Startup(STATE) from a migrated save state"
    );

    let mut rng = StdRng::seed_from_u64(99);
    let (mut refused, mut accepted) = (0, 0);
    for round in 0..3000 {
        let (kind, base) = &blobs[round % blobs.len()];
        let mut b = base.clone();
        match rng.gen_range(0..3) {
            0 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => b.truncate(rng.gen_range(0..=b.len())),
            _ => {
                let i = rng.gen_range(0..=b.len());
                b.insert(i, rng.gen());
            }
        }
        let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
        match t.set_state_blob(*kind, &b) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
            Ok(()) => {
                accepted += 1;
                if t.power_on(false).is_ok() {
                    exercise(&mut t);
                }
            }
        }
    }
    println!("mutated state blobs: {refused} refused, {accepted} accepted and served");
    assert!(refused > 0);
}
