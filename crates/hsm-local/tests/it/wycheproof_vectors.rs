//! Wycheproof vectors through the same primitive functions the provider calls
//! (`hsm_local::primitives`). Each test prints how many vectors it ran; run with
//! `cargo test -p hsm-local wycheproof -- --nocapture` to see the counts.
//!
//! Only parameter sets hsm-local offers are run (e.g. 96-bit GCM nonces and 128-bit tags,
//! OAEP with the same hash for label and MGF1, PSS with salt = digest length); everything
//! else is counted as skipped, with the reason.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use aws_lc_rs::rsa::PrivateDecryptingKey;
use hsm_core::{EncryptionAlgorithm, KeySpec, SignInput, SignatureAlgorithm};
use hsm_local::primitives::{self as prim, AesGcmKey};
use wycheproof::{HashFunction, TestResult};

/// Per-family counters.
#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    skipped: BTreeMap<&'static str, usize>,
    /// Vectors where AWS-LC deliberately differs from Wycheproof's verdict (see each use).
    deviations: BTreeMap<&'static str, usize>,
}

impl Tally {
    /// Asserts `ok` matches the vector's expected result and counts it.
    fn check(&mut self, expected: TestResult, ok: bool, what: impl std::fmt::Display) {
        match expected {
            TestResult::Valid => {
                assert!(ok, "valid vector rejected: {what}");
                self.valid += 1;
            }
            TestResult::Invalid => {
                assert!(!ok, "invalid vector accepted: {what}");
                self.invalid += 1;
            }
            TestResult::Acceptable => self.acceptable += 1,
        }
    }

    /// A vector Wycheproof calls valid that AWS-LC refuses on purpose: assert it is refused
    /// (so a behaviour change is noticed) and count it apart.
    fn deviation(&mut self, ok: bool, why: &'static str, what: impl std::fmt::Display) {
        assert!(!ok, "AWS-LC no longer refuses this vector ({why}): {what}");
        *self.deviations.entry(why).or_default() += 1;
    }

    fn skip(&mut self, why: &'static str, n: usize) {
        *self.skipped.entry(why).or_default() += n;
    }

    fn ran(&self) -> usize {
        self.valid + self.invalid + self.acceptable + self.deviations.values().sum::<usize>()
    }

    /// Prints the counts and asserts the family actually ran.
    fn report(&self, family: &str, min: usize) {
        println!(
            "wycheproof {family}: {} vectors ran ({} valid, {} invalid, {} acceptable); \
             known deviations {:?}; skipped {:?}",
            self.ran(),
            self.valid,
            self.invalid,
            self.acceptable,
            self.deviations,
            self.skipped
        );
        assert!(self.ran() >= min, "{family}: only {} vectors ran", self.ran());
    }
}

fn hash_of(alg: SignatureAlgorithm, msg: &[u8]) -> Vec<u8> {
    let d = match alg.digest().map(|d| d.output_len()) {
        Some(32) => &digest::SHA256,
        Some(48) => &digest::SHA384,
        _ => &digest::SHA512,
    };
    digest::digest(d, msg).as_ref().to_vec()
}

#[test]
fn wycheproof_aes_gcm() {
    use wycheproof::aead::{TestName, TestSet};
    let mut t = Tally::default();
    for g in TestSet::load(TestName::AesGcm).unwrap().test_groups {
        if g.nonce_size != 96 || g.tag_size != 128 {
            t.skip("nonce not 96 bits or tag not 128 bits", g.tests.len());
            continue;
        }
        for v in g.tests {
            let Ok(key) = AesGcmKey::new(&v.key) else {
                t.skip("key size", 1);
                continue;
            };
            let mut payload = v.nonce.to_vec();
            payload.extend_from_slice(&v.ct);
            payload.extend_from_slice(&v.tag);
            let opened = key.open(&payload, &v.aad);
            let ok = opened.as_ref().is_ok_and(|pt| pt[..] == v.pt[..]);
            t.check(v.result, ok, format_args!("tc {} {}", v.tc_id, v.comment));
            if v.result == TestResult::Valid {
                let nonce: [u8; 12] = v.nonce[..].try_into().unwrap();
                let sealed = key.seal_with_nonce(&nonce, &v.pt, &v.aad).unwrap();
                assert_eq!(sealed, payload, "tc {}: seal reproduces the vector", v.tc_id);
            }
        }
    }
    t.report("AES-GCM", 100);
}

fn keywrap(name: wycheproof::keywrap::TestName, padded: bool, family: &str) {
    use wycheproof::keywrap::TestSet;
    let mut t = Tally::default();
    for g in TestSet::load(name).unwrap().test_groups {
        for v in g.tests {
            if !matches!(v.key.len(), 16 | 24 | 32) {
                t.skip("key size", 1);
                continue;
            }
            let unwrapped =
                if padded { prim::aes_kwp_unwrap(&v.key, &v.ct) } else { prim::aes_kw_unwrap(&v.key, &v.ct) };
            let ok = unwrapped.as_ref().is_ok_and(|pt| pt[..] == v.pt[..]);
            t.check(v.result, ok, format_args!("tc {} {}", v.tc_id, v.comment));
            if v.result == TestResult::Valid {
                let wrapped =
                    if padded { prim::aes_kwp_wrap(&v.key, &v.pt) } else { prim::aes_kw_wrap(&v.key, &v.pt) };
                assert_eq!(wrapped.unwrap(), v.ct.to_vec(), "tc {}: wrap reproduces the vector", v.tc_id);
            }
        }
    }
    t.report(family, 100);
}

#[test]
fn wycheproof_aes_kw() {
    keywrap(wycheproof::keywrap::TestName::AesKeyWrap, false, "AES-KW (RFC 3394)");
}

#[test]
fn wycheproof_aes_kwp() {
    keywrap(wycheproof::keywrap::TestName::AesKeyWrapWithPadding, true, "AES-KWP (RFC 5649)");
}

#[test]
fn wycheproof_rsa_oaep_decrypt() {
    use wycheproof::rsa_oaep::{TestName, TestSet};
    let mut t = Tally::default();
    for name in [
        TestName::Rsa2048Sha1Mgf1Sha1,
        TestName::Rsa2048Sha256Mgf1Sha256,
        TestName::Rsa3072Sha256Mgf1Sha256,
        TestName::Rsa4096Sha256Mgf1Sha256,
        TestName::RsaMisc,
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            let alg = match (g.hash, g.mgf_hash) {
                (HashFunction::Sha1, HashFunction::Sha1) => EncryptionAlgorithm::RsaOaepSha1,
                (HashFunction::Sha2_256, HashFunction::Sha2_256) => EncryptionAlgorithm::RsaOaepSha256,
                _ => {
                    t.skip("OAEP hash pair hsm does not offer", g.tests.len());
                    continue;
                }
            };
            let Ok(key) = PrivateDecryptingKey::from_pkcs8(&g.pkcs8) else {
                t.skip("modulus below 2048 bits (aws-lc-rs refuses to import it)", g.tests.len());
                continue;
            };
            for v in g.tests {
                let label = (!v.label.is_empty()).then_some(&v.label[..]);
                let ok = prim::rsa_decrypt(&key, alg, &v.ct, label).is_ok_and(|pt| pt[..] == v.pt[..]);
                let what = format!("{name:?} tc {} {}", v.tc_id, v.comment);
                let (last, rest) = v.ct.split_last().unwrap_or((&0, &[]));
                if v.result == TestResult::Valid && *last == 1 && rest.iter().all(|b| *b == 0) {
                    // AWS-LC's private-key operation refuses the inputs 0, 1 and n - 1 (SP 800-56B
                    // range check) before any padding is looked at; Wycheproof built two valid
                    // OAEP vectors whose ciphertext is 1. Refusing them leaks nothing.
                    t.deviation(ok, "ciphertext is the integer 1, refused by AWS-LC", what);
                } else {
                    t.check(v.result, ok, what);
                }
            }
        }
    }
    t.report("RSA-OAEP decryption", 100);
}

#[test]
fn wycheproof_rsa_pkcs1_decrypt() {
    use wycheproof::rsa_pkcs1_decrypt::{TestName, TestSet};
    let mut t = Tally::default();
    for name in [TestName::Rsa2048, TestName::Rsa3072, TestName::Rsa4096] {
        for g in TestSet::load(name).unwrap().test_groups {
            let key = PrivateDecryptingKey::from_pkcs8(&g.pkcs8).unwrap();
            for v in g.tests {
                let ok = prim::rsa_decrypt(&key, EncryptionAlgorithm::RsaPkcs1v15, &v.ct, None)
                    .is_ok_and(|pt| pt[..] == v.pt[..]);
                t.check(v.result, ok, format_args!("{name:?} tc {} {}", v.tc_id, v.comment));
            }
        }
    }
    t.report("RSA PKCS#1 v1.5 decryption", 100);
}

/// Verifies through the message path and the digest path; both must agree.
fn verify_both(
    t: &mut Tally,
    spec: KeySpec,
    alg: SignatureAlgorithm,
    key: &[u8],
    v: (&[u8], &[u8]),
    expected: TestResult,
    what: String,
) -> bool {
    let (msg, sig) = v;
    let ok = prim::verify(spec, alg, key, SignInput::Message(msg), sig);
    t.check(expected, ok, &what);
    if alg.digest().is_some() {
        let via_digest = prim::verify(spec, alg, key, SignInput::Digest(&hash_of(alg, msg)), sig);
        assert_eq!(via_digest, ok, "digest path disagrees: {what}");
    }
    ok
}

#[test]
fn wycheproof_rsa_pkcs1_verify() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut t = Tally::default();
    for name in [
        TestName::Rsa2048Sha256,
        TestName::Rsa2048Sha384,
        TestName::Rsa2048Sha512,
        TestName::Rsa3072Sha256,
        TestName::Rsa3072Sha384,
        TestName::Rsa3072Sha512,
        TestName::Rsa4096Sha256,
        TestName::Rsa4096Sha384,
        TestName::Rsa4096Sha512,
        TestName::Rsa8192Sha256,
        TestName::Rsa8192Sha384,
        TestName::Rsa8192Sha512,
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            let alg = match g.hash {
                HashFunction::Sha2_256 => SignatureAlgorithm::RsaPkcs1v15Sha256,
                HashFunction::Sha2_384 => SignatureAlgorithm::RsaPkcs1v15Sha384,
                HashFunction::Sha2_512 => SignatureAlgorithm::RsaPkcs1v15Sha512,
                _ => {
                    t.skip("hash hsm does not offer", g.tests.len());
                    continue;
                }
            };
            for v in g.tests {
                let what = format!("{name:?} tc {} {}", v.tc_id, v.comment);
                let _ = verify_both(&mut t, KeySpec::Rsa2048, alg, &g.der, (&v.msg, &v.sig), v.result, what);
            }
        }
    }
    t.report("RSA PKCS#1 v1.5 signature verification", 100);
}

#[test]
fn wycheproof_rsa_pss_verify() {
    use wycheproof::Mgf;
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut t = Tally::default();
    for name in [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha256Mgf1SaltLen32WithParams,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss3072Sha256Mgf1SaltLen32WithParams,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha512Mgf1SaltLen64,
        TestName::RsaPss4096Sha512Mgf1SaltLen64WithParams,
        TestName::RsaPssmisc,
        TestName::RsaPssmiscWithParams,
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            let alg = match (g.hash, g.mgf, g.mgf_hash, g.salt_size) {
                (HashFunction::Sha2_256, Mgf::Mgf1, Some(HashFunction::Sha2_256), 32) => {
                    SignatureAlgorithm::RsaPssSha256
                }
                (HashFunction::Sha2_384, Mgf::Mgf1, Some(HashFunction::Sha2_384), 48) => {
                    SignatureAlgorithm::RsaPssSha384
                }
                (HashFunction::Sha2_512, Mgf::Mgf1, Some(HashFunction::Sha2_512), 64) => {
                    SignatureAlgorithm::RsaPssSha512
                }
                _ => {
                    t.skip("hash, MGF or salt length hsm does not offer", g.tests.len());
                    continue;
                }
            };
            if prim::verifier(KeySpec::Rsa2048, alg, &g.der).is_err() {
                t.skip(
                    "public key not importable (RSASSA-PSS parameters in the SPKI, or < 2048 bits)",
                    g.tests.len(),
                );
                continue;
            }
            for v in g.tests {
                let what = format!("{name:?} tc {} {}", v.tc_id, v.comment);
                let _ = verify_both(&mut t, KeySpec::Rsa2048, alg, &g.der, (&v.msg, &v.sig), v.result, what);
            }
        }
    }
    t.report("RSA-PSS signature verification", 100);
}

#[test]
fn wycheproof_ecdsa_verify() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let mut t = Tally::default();
    for (name, spec, alg) in [
        (TestName::EcdsaSecp256r1Sha256, KeySpec::EcP256, SignatureAlgorithm::EcdsaSha256),
        (TestName::EcdsaSecp384r1Sha384, KeySpec::EcP384, SignatureAlgorithm::EcdsaSha384),
        (TestName::EcdsaSecp521r1Sha512, KeySpec::EcP521, SignatureAlgorithm::EcdsaSha512),
        (TestName::EcdsaSecp256k1Sha256, KeySpec::EcSecp256k1, SignatureAlgorithm::EcdsaSha256),
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            for v in g.tests {
                let what = format!("{name:?} tc {} {}", v.tc_id, v.comment);
                let _ = verify_both(&mut t, spec, alg, &g.der, (&v.msg, &v.sig), v.result, what);
            }
        }
    }
    t.report("ECDSA signature verification (DER)", 1000);
}

#[test]
fn wycheproof_ed25519_verify() {
    use wycheproof::eddsa::{TestName, TestSet};
    let mut t = Tally::default();
    for g in TestSet::load(TestName::Ed25519).unwrap().test_groups {
        for v in g.tests {
            let what = format!("tc {} {}", v.tc_id, v.comment);
            let raw = verify_both(
                &mut t,
                KeySpec::Ed25519,
                SignatureAlgorithm::Ed25519,
                &g.key.pk,
                (&v.msg, &v.sig),
                v.result,
                what,
            );
            // The SPKI form of the key (what public_key() exports) gives the same answer.
            let spki = prim::verify(
                KeySpec::Ed25519,
                SignatureAlgorithm::Ed25519,
                &g.der,
                SignInput::Message(&v.msg),
                &v.sig,
            );
            assert_eq!(spki, raw, "tc {}", v.tc_id);
        }
    }
    t.report("Ed25519 signature verification", 100);
}
