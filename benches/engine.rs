//! The engine alone (no sockets, no threads, state in memory): the cost of a
//! command's execution itself, to compare with the load bench's end-to-end
//! figures. `cargo bench -p vtpm --bench engine`.

use criterion::{criterion_group, criterion_main, Criterion};
use tpm_core::constants as c;
use tpm_core::{MemoryStore, Tpm, TpmConfig};

fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn started() -> Tpm {
    let mut t = Tpm::new(Box::new(MemoryStore::default()), TpmConfig::default()).expect("engine");
    t.power_on(false).expect("power on");
    t.execute(
        0,
        &command(c::ST_NO_SESSIONS, c::CC_Startup, &0u16.to_be_bytes()),
    );
    t
}

fn engine(cr: &mut Criterion) {
    let pw: Vec<u8> = [
        &9u32.to_be_bytes()[..],
        &c::RS_PW.to_be_bytes(),
        &[0, 0, 1, 0, 0],
    ]
    .concat();
    let cases = [
        (
            "GetRandom(32)",
            command(c::ST_NO_SESSIONS, c::CC_GetRandom, &32u16.to_be_bytes()),
        ),
        (
            "PCR_Extend(16, sha256)",
            command(
                c::ST_SESSIONS,
                c::CC_PCR_Extend,
                &[
                    &16u32.to_be_bytes()[..],
                    &pw,
                    &1u32.to_be_bytes(),
                    &c::ALG_SHA256.to_be_bytes(),
                    &[0x42; 32],
                ]
                .concat(),
            ),
        ),
        (
            "PCR_Read(sha256, 8 PCRs)",
            command(
                c::ST_NO_SESSIONS,
                c::CC_PCR_Read,
                &[
                    &1u32.to_be_bytes()[..],
                    &c::ALG_SHA256.to_be_bytes(),
                    &[3, 0xff, 0, 0],
                ]
                .concat(),
            ),
        ),
        (
            "Hash(1 KiB, sha256, owner ticket)",
            command(
                c::ST_NO_SESSIONS,
                c::CC_Hash,
                &[
                    &1024u16.to_be_bytes()[..],
                    &[7; 1024],
                    &c::ALG_SHA256.to_be_bytes(),
                    &c::RH_OWNER.to_be_bytes(),
                ]
                .concat(),
            ),
        ),
        (
            "GetCapability(TPM_PROPERTIES)",
            command(
                c::ST_NO_SESSIONS,
                c::CC_GetCapability,
                &[
                    &c::CAP_TPM_PROPERTIES.to_be_bytes()[..],
                    &c::PT_FIXED.to_be_bytes(),
                    &64u32.to_be_bytes(),
                ]
                .concat(),
            ),
        ),
    ];
    let mut g = cr.benchmark_group("engine");
    for (name, cmd) in cases {
        let mut t = started();
        assert_eq!(&t.execute(0, &cmd)[6..10], &[0, 0, 0, 0], "{name} succeeds");
        g.bench_function(name, |b| b.iter(|| t.execute(0, &cmd)));
    }
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
