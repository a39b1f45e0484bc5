//! Key derivation as TPM 2.0 Part 1 defines it: KDFa (SP800-108 counter mode
//! with HMAC), KDFe (SP800-56A concatenation KDF with a hash) and MGF1.
//!
//! Labels: Part 1 requires the label to be followed by a zero octet in the
//! KDF input. These functions take the label with or without its terminating
//! zero and add one only when it is missing (`b"ATH"` and `b"ATH\0"` are the
//! same label). An empty label therefore becomes the single octet 0.

use crate::hash::{digest, HashAlg, Hasher, HmacState};

/// The label as used in the KDFs: with its terminating zero octet (added unless present).
pub(crate) fn label_z(label: &[u8]) -> Vec<u8> {
    let mut l = label.to_vec();
    if l.last() != Some(&0) {
        l.push(0);
    }
    l
}

/// Mask the first octet so that a `bits`-long result that is not a multiple
/// of 8 keeps only its low `bits % 8` bits there (Part 1: the unused high bits
/// of the most significant octet are cleared).
fn mask_first(out: &mut [u8], bits: u32) {
    if !bits.is_multiple_of(8) {
        if let Some(first) = out.first_mut() {
            *first &= (1u8 << (bits % 8)) - 1;
        }
    }
}

/// PBKDF2 with HMAC-SHA-512 (RFC 8018) into `out`: for passphrases given
/// on vtpm's command line (`--migration-key pwdfile=`). Here rather than in
/// the binary so that test builds run it optimised like the rest of this
/// crate.
pub fn pbkdf2_hmac_sha512(password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, out);
}

/// KDFa(hashAlg, key, label, contextU, contextV, bits).
///
/// Output block i (i = 1, 2, ...) is
/// `HMAC(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32)`, both
/// integers big-endian; the blocks are concatenated, cut to `ceil(bits / 8)`
/// octets, and when `bits` is not a multiple of 8 the high bits of the first
/// octet are cleared. `bits = 0` gives an empty result. Empty contexts are
/// simply absent (Part 1's "NULL").
pub fn kdfa(
    alg: HashAlg,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let label = label_z(label);
    // The key and fixed input are the same for every block: key the HMAC once.
    let keyed = HmacState::new(alg, key);
    let mut out = Vec::with_capacity(bytes + alg.size());
    let mut i: u32 = 1;
    while out.len() < bytes {
        let mut m = keyed.clone();
        m.update(&i.to_be_bytes());
        m.update(&label);
        m.update(context_u);
        m.update(context_v);
        m.update(&bits.to_be_bytes());
        out.extend_from_slice(&m.finish());
        i = i.wrapping_add(1);
    }
    out.truncate(bytes);
    mask_first(&mut out, bits);
    out
}

/// KDFe(hashAlg, Z, label, partyUInfo, partyVInfo, bits).
///
/// Output block i (i = 1, 2, ...) is
/// `H([i]32 || Z || label || 0x00 || partyUInfo || partyVInfo)`; cut and
/// masked as for [`kdfa`]. For the TPM's ECC secret sharing, Z is the
/// x coordinate of the shared point, partyUInfo the x coordinate of the
/// ephemeral key and partyVInfo the x coordinate of the TPM key (see
/// [`crate::protect`]).
pub fn kdfe(
    alg: HashAlg,
    z: &[u8],
    label: &[u8],
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let label = label_z(label);
    let mut out = Vec::with_capacity(bytes + alg.size());
    let mut i: u32 = 1;
    while out.len() < bytes {
        out.extend_from_slice(&digest(
            alg,
            &[&i.to_be_bytes(), z, &label, party_u, party_v],
        ));
        i = i.wrapping_add(1);
    }
    out.truncate(bytes);
    mask_first(&mut out, bits);
    out
}

/// MGF1 (PKCS #1, B.2.1): `len` octets of `H(seed || [c]32)` for c = 0, 1, ...
pub fn mgf1(alg: HashAlg, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + alg.size());
    let mut c: u32 = 0;
    while out.len() < len {
        let mut h = Hasher::new(alg);
        h.update(seed);
        h.update(&c.to_be_bytes());
        out.extend_from_slice(&h.finish());
        c = c.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// HMAC as KDFa's PRF, for callers that need one block by hand (tests).
#[cfg(test)]
pub(crate) fn kdfa_block(alg: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    crate::hash::hmac(alg, key, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }

    #[test]
    fn kdfa_is_the_hmac_counter_construction() {
        let k = kdfa(HashAlg::Sha256, b"key", b"ATH", b"u", b"v", 256);
        let expect = kdfa_block(
            HashAlg::Sha256,
            b"key",
            &[
                &1u32.to_be_bytes(),
                b"ATH\0",
                b"u",
                b"v",
                &256u32.to_be_bytes(),
            ],
        );
        assert_eq!(k, expect);
        assert_eq!(
            k,
            kdfa(HashAlg::Sha256, b"key", b"ATH\0", b"u", b"v", 256),
            "label zero is not doubled"
        );
        let long = kdfa(HashAlg::Sha1, b"key", b"L", b"", b"", 400);
        assert_eq!(long.len(), 50);
        let block2 = kdfa_block(
            HashAlg::Sha1,
            b"key",
            &[&2u32.to_be_bytes(), b"L\0", &400u32.to_be_bytes()],
        );
        assert_eq!(long[20..40], block2[..]);
        let short = kdfa(HashAlg::Sha256, b"key", b"L", b"", b"", 12);
        assert!(short.len() == 2 && short[0] < 16);
        assert!(kdfa(HashAlg::Sha256, b"key", b"L", b"", b"", 0).is_empty());
    }

    /// The KDFa self-test vector of the TCG reference implementation
    /// (KdfTestData.h): 20-octet key, label "KDFSELFTESTLABEL\0", two 8-octet
    /// contexts, 160 bits, one expected result per hash.
    #[test]
    fn kdfa_reference_self_test_vectors() {
        let key = hex("271fa08bbdc5060ec3dfa928ff9b73123a12da0c");
        let label = b"KDFSELFTESTLABEL\0";
        let u = hex("ce244f395dca7391");
        let v = hex("da504031ddf12e83");
        let cases = [
            (HashAlg::Sha1, "55b5a7184aa07423c47dae766c26a2377d7cf851"),
            (HashAlg::Sha256, "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4"),
            (HashAlg::Sha384, "1dce70c9113eb2dba47bd9cfc72bf46f45b09312"),
            (HashAlg::Sha512, "8be2c1b85b78569b9fa759f5857c56d684810fd3"),
        ];
        for (alg, expect) in cases {
            assert_eq!(kdfa(alg, &key, label, &u, &v, 160), hex(expect), "{alg:?}");
        }
    }

    /// Vectors from the public tpm-test-vectors project (kdfe.json, produced
    /// with go-tpm and checked against a TPM simulator).
    #[test]
    fn kdfe_known_answers() {
        let cases = [
            (
                HashAlg::Sha1,
                "beefefba63c91e8eb318785c374600",
                "ATH",
                "ff8318b65e46b3",
                "32aa861b336c991a52b15c0c72889895e8cad4ff",
                111,
                "123decb8050fca8d6585f61946e2",
            ),
            (
                HashAlg::Sha1,
                "",
                "STORAGE",
                "",
                "c0227aff",
                253,
                "0f10d821af67e1ec776b390f3b4572bb433efd2b94fa7842d879d24d825ed2f9",
            ),
            (
                HashAlg::Sha1,
                "356f9d00d61b54cf010580b1755d1975905c00",
                "CFB",
                "006c5c2bcdd650f6c836dba98c4734",
                "8849bd3d05d69f",
                7,
                "58",
            ),
            (
                HashAlg::Sha256,
                "c3e3c34e82ccfa82d8999bf2635bb7cd01f3d65f03ff",
                "CFB",
                "55576a51c0e45b86557535e9ea50d5e7f4a80bb426e7ff",
                "dffdece923181dc335c1e936ff",
                109,
                "1106264c89948737c140d2f5b40e",
            ),
            (
                HashAlg::Sha256,
                "e89fc5304cf46c1cf7d1f5de5d3d1ec7eddc80b0386700",
                "SECRET",
                "e602bc959fd97af0405649e0c80e02e9dd64e9d79e698292b043c79dfa9f9261",
                "",
                431,
                "3a8e893b8b76cdddbf87845b2567fa7152577829f6a55b73cb82d4a1f0342a05\
                 1d6e50e20ec2f96bc4de38d7d0d79a9caf99e1d574b9",
            ),
        ];
        for (alg, z, label, u, v, bits, expect) in cases {
            assert_eq!(
                kdfe(alg, &hex(z), label.as_bytes(), &hex(u), &hex(v), bits),
                hex(expect),
                "{label} {bits}"
            );
        }
    }

    #[test]
    fn kdfe_is_the_hash_counter_construction() {
        let k = kdfe(HashAlg::Sha256, b"Z", b"SECRET", b"U", b"V", 128);
        let expect = digest(
            HashAlg::Sha256,
            &[&1u32.to_be_bytes(), b"Z", b"SECRET\0", b"U", b"V"],
        );
        assert_eq!(k, expect[..16]);
    }

    #[test]
    fn mgf1_counter_starts_at_zero() {
        let m = mgf1(HashAlg::Sha256, b"seed", 40);
        assert_eq!(m.len(), 40);
        assert_eq!(
            m[..32],
            digest(HashAlg::Sha256, &[b"seed", &[0, 0, 0, 0]])[..]
        );
        assert_eq!(
            m[32..],
            digest(HashAlg::Sha256, &[b"seed", &[0, 0, 0, 1]])[..8]
        );
        assert!(mgf1(HashAlg::Sha1, b"seed", 0).is_empty());
    }
}
