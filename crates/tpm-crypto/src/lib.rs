//! The cryptography of TPM 2.0 (Part 1) for vtpm: hashes, HMAC, KDFa/KDFe,
//! MGF1, a KDFa-driven deterministic generator, AES modes, RSA and ECC on the
//! NIST curves, and Part 1's session, object, credential and duplication
//! protection — thin wrappers over RustCrypto crates, on byte slices and small
//! enums (no TPM wire structures). Kept apart from tpm-core so it builds and
//! is tested on its own.
//!
//! Nothing here panics on bad input: wrong lengths, invalid points or keys and
//! non-block-multiple CBC/ECB input are [`Error`]s. Secrets (seeds, private
//! keys, derived keys, decrypted secrets) are held in zeroizing containers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cmac;
mod curve;
pub mod drbg;
pub mod ecc;
mod ecc_generic;
pub mod ecc_math;
pub mod ecdaa;
pub mod ecmqv;
mod error;
pub mod hash;
pub mod kdf;
pub mod protect;
pub mod resumable;
pub mod rsa;
pub mod session;
pub mod sm2;
pub mod sym;
pub mod weierstrass;

pub use drbg::{random_bytes, KdfaRng, SystemRng};
pub use ecc::{Curve, EccKey, Point};
pub use error::{Error, Result};
pub use hash::{ct_eq, digest, hmac, HashAlg, Hasher, HmacState};
pub use kdf::{kdfa, kdfe, mgf1, pbkdf2_hmac_sha512};
pub use resumable::ResumableHash;
pub use rsa::{RsaKey, RsaPublic};
pub use sym::{BlockCipher, SymKey, SymMode};
pub use zeroize::Zeroizing;

/// Hostile input: random lengths and contents through every entry point that
/// takes untrusted bytes must give errors or `false`, never a panic.
#[cfg(test)]
mod hostile_input {
    use super::*;
    use rand_core::RngCore;

    fn junk(rng: &mut KdfaRng, max: usize) -> Vec<u8> {
        let len = (rng.next_u32() as usize) % (max + 1);
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        v
    }

    #[test]
    fn nothing_panics() {
        let mut rng = KdfaRng::new(HashAlg::Sha256, b"fuzz", b"junk", b"");
        let rsa_key = RsaKey::generate(1024, 0, &mut rng).unwrap();
        let ecc_keys: Vec<EccKey> = ecc::Curve::ALL
            .iter()
            .map(|c| EccKey::generate(*c, &mut rng))
            .collect();
        for round in 0..200 {
            let a = junk(&mut rng, 140);
            let b = junk(&mut rng, 140);
            let c = junk(&mut rng, 70);
            let hash = HashAlg::ALL[round % 4];
            for mode in SymMode::ALL {
                for cipher in [
                    sym::BlockCipher::Aes,
                    sym::BlockCipher::Camellia,
                    sym::BlockCipher::Tdes,
                ] {
                    let _ = sym::encrypt(cipher, mode, &c, &b, &a);
                    let _ = sym::decrypt(
                        cipher,
                        mode,
                        &c[..c.len().min(32)],
                        &b[..b.len().min(16)],
                        &a,
                    );
                }
            }
            let _ = rsa_key.decrypt_oaep(hash, &b, &a);
            let _ = rsa_key.decrypt_pkcs1(&a);
            let _ = rsa_key.raw_private(&a);
            let _ = rsa_key.public().verify_pss(hash, &b, &a);
            let _ = rsa_key.public().verify_pkcs1(hash, &b, &a);
            let _ = rsa_key.public().raw_public(&a);
            let _ = RsaPublic::new(&a, rng.next_u32());
            let _ = RsaKey::from_prime(&a, 0, &c);
            let _ = protect::rsa_secret_decrypt(&rsa_key, hash, &c, &a);
            for key in &ecc_keys {
                let curve = key.curve;
                let p = Point::new(&a[..a.len().min(70)], &b[..b.len().min(70)]);
                let _ = ecc::is_on_curve(curve, &p);
                let _ = key.ecdh(&p);
                let _ = ecc::verify_ecdsa(curve, &key.public, &c, &a, &b);
                let _ = ecc::verify_schnorr(curve, &key.public, hash, &c, &a, &b);
                let _ = ecc::verify_ecdsa(curve, &p, &c, &a, &b);
                let _ = EccKey::from_scalar(curve, &c);
                let _ = key.sign_ecdsa(&a);
                let _ = protect::ecc_secret_decrypt(key, hash, &c, &p);
            }
            let _ = protect::outer_unwrap(hash, sym::SymKey::aes(128), &c, &b, &c, &a);
            let _ = protect::inner_unwrap(hash, sym::BlockCipher::Tdes, &c, &b, &a);
            let _ = protect::activate_credential(hash, sym::SymKey::aes(256), &c, &b, &c, &a);
            let _ = session::param_encrypt_cfb(
                hash,
                &a,
                &b,
                &c,
                sym::SymKey::aes(128),
                &mut a.clone(),
                false,
            );
            let _ = session::xor_obfuscate(hash, &a, &b, &c, &mut b.clone());
            let _ = kdfa(hash, &a, &b, &c, &a, (round as u32) * 7);
            let _ = kdfe(hash, &a, &b, &c, &a, (round as u32) * 7);
        }
    }
}
