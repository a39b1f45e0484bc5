//! Nothing on the wire may panic the engine: mutated and random commands,
//! each answered with a well-formed response, while the TPM keeps working.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tpm_core::constants as c;
use tpm_core::{MemoryStore, Tpm, TpmConfig};

fn cmd(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn pw() -> Vec<u8> {
    [
        &9u32.to_be_bytes()[..],
        &c::RS_PW.to_be_bytes(),
        &[0, 0, 1, 0, 0],
    ]
    .concat()
}

/// Valid commands of every implemented kind, as mutation seeds.
fn seeds() -> Vec<Vec<u8>> {
    let sel = [
        &1u32.to_be_bytes()[..],
        &0x000Bu16.to_be_bytes(),
        &[3, 0xff, 0xff, 0xff],
    ]
    .concat();
    vec![
        cmd(c::ST_NO_SESSIONS, c::CC_GetRandom, &16u16.to_be_bytes()),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_GetCapability,
            &[
                &6u32.to_be_bytes()[..],
                &0x100u32.to_be_bytes(),
                &64u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_GetCapability,
            &[
                &1u32.to_be_bytes()[..],
                &0u32.to_be_bytes(),
                &64u32.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(c::ST_NO_SESSIONS, c::CC_PCR_Read, &sel),
        cmd(
            c::ST_SESSIONS,
            c::CC_PCR_Extend,
            &[
                &16u32.to_be_bytes()[..],
                &pw(),
                &1u32.to_be_bytes(),
                &0x000Bu16.to_be_bytes(),
                &[7; 32],
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_PCR_Event,
            &[&23u32.to_be_bytes()[..], &pw(), &3u16.to_be_bytes(), b"abc"].concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_Hash,
            &[
                &3u16.to_be_bytes()[..],
                b"abc",
                &0x000Bu16.to_be_bytes(),
                &c::RH_OWNER.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_HashSequenceStart,
            &[&0u16.to_be_bytes()[..], &0x0010u16.to_be_bytes()].concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_SequenceUpdate,
            &[
                &c::TRANSIENT_FIRST.to_be_bytes()[..],
                &pw(),
                &2u16.to_be_bytes(),
                b"xy",
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_StartAuthSession,
            &[
                &c::RH_NULL.to_be_bytes()[..],
                &c::RH_NULL.to_be_bytes(),
                &16u16.to_be_bytes(),
                &[1; 16],
                &0u16.to_be_bytes(),
                &[0],
                &6u16.to_be_bytes(),
                &128u16.to_be_bytes(),
                &0x43u16.to_be_bytes(),
                &0x000Bu16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_TestParms,
            &[
                &0x25u16.to_be_bytes()[..],
                &6u16.to_be_bytes(),
                &256u16.to_be_bytes(),
                &0x43u16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(c::ST_NO_SESSIONS, c::CC_ReadClock, &[]),
        cmd(
            c::ST_SESSIONS,
            c::CC_ClockSet,
            &[
                &c::RH_OWNER.to_be_bytes()[..],
                &pw(),
                &u64::MAX.to_be_bytes()[..],
            ]
            .concat(),
        ),
        cmd(
            c::ST_SESSIONS,
            c::CC_HierarchyChangeAuth,
            &[
                &c::RH_PLATFORM.to_be_bytes()[..],
                &pw(),
                &0u16.to_be_bytes(),
            ]
            .concat(),
        ),
        cmd(
            c::ST_NO_SESSIONS,
            c::CC_FlushContext,
            &c::HMAC_SESSION_FIRST.to_be_bytes(),
        ),
        cmd(c::ST_NO_SESSIONS, c::CC_SelfTest, &[1]),
        cmd(c::ST_NO_SESSIONS, c::CC_Shutdown, &0u16.to_be_bytes()),
    ]
}

fn well_formed(resp: &[u8]) {
    assert!(resp.len() >= 10, "short response {resp:02x?}");
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    assert_eq!(size, resp.len(), "size field of {resp:02x?}");
    let tag = u16::from_be_bytes([resp[0], resp[1]]);
    assert!(
        matches!(tag, 0x8001 | 0x8002 | 0x00C4),
        "tag of {resp:02x?}"
    );
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    if rc != 0 {
        assert_eq!(resp.len(), 10, "an error response carries nothing else");
    }
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        match rng.gen_range(0..5) {
            0 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] = rng.gen();
            }
            2 => v.truncate(rng.gen_range(0..=v.len())),
            3 => v.extend((0..rng.gen_range(1..8)).map(|_| rng.gen::<u8>())),
            _ => {
                // Keep the size field consistent so the damage reaches deeper layers.
                if v.len() >= 6 {
                    let n = v.len() as u32;
                    v[2..6].copy_from_slice(&n.to_be_bytes());
                }
            }
        }
    }
    v
}

#[test]
fn mutated_and_random_commands_never_panic() {
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).unwrap();
    t.power_on(false).unwrap();
    well_formed(&t.execute(
        0,
        &cmd(c::ST_NO_SESSIONS, c::CC_Startup, &0u16.to_be_bytes()),
    ));
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x7e57);
    let mut n = 0;
    for round in 0..60_000 {
        let input = if round % 10 == 0 {
            (0..rng.gen_range(0..64)).map(|_| rng.gen::<u8>()).collect()
        } else {
            {
                let pick = rng.gen_range(0..seeds.len());
                mutate(&mut rng, &seeds[pick])
            }
        };
        let locality = [0u8, 0, 0, 1, 2, 3, 4, 32][rng.gen_range(0..8)];
        well_formed(&t.execute(locality, &input));
        n += 1;
        if round % 5_000 == 0 {
            // A TPM left shut down or out of sessions still answers; start over now and then.
            t.power_off().unwrap();
            t.power_on(false).unwrap();
            well_formed(&t.execute(
                0,
                &cmd(c::ST_NO_SESSIONS, c::CC_Startup, &0u16.to_be_bytes()),
            ));
        }
    }
    // Still a working TPM.
    let r = t.execute(
        0,
        &cmd(c::ST_NO_SESSIONS, c::CC_GetRandom, &8u16.to_be_bytes()),
    );
    assert!(r.len() == 20 || u32::from_be_bytes([r[6], r[7], r[8], r[9]]) == c::RC_INITIALIZE);
    println!("{n} hostile commands, every one answered well-formed");
}
