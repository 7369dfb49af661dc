//! What the provider declares: the token's mechanism list intersected with what this crate
//! implements.

use std::time::Duration;

use cryptoki::mechanism::{Mechanism, MechanismType as M};
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::Session;
use hsm_core::{
    Capabilities, DeletionPolicy, EncryptionAlgorithm as E, KeySpec, KeyUsage, MacAlgorithm,
    SignatureAlgorithm as S, SpecCapabilities, WrapAlgorithm as W,
};

/// Largest page `list_keys` returns (and the default page size).
pub(crate) const MAX_PAGE_SIZE: u32 = 100;

/// Largest AES-GCM plaintext: one `C_Encrypt` call holds it all in the token's memory;
/// use envelope encryption for bulk data.
pub(crate) const MAX_AES_PLAINTEXT: usize = 4 * 1024 * 1024;

const DAY: u64 = 86_400;

/// Deletion windows: immediate deletion allowed, at most 365 days, 30 by default, cancellable.
pub(crate) const DELETION: DeletionPolicy =
    DeletionPolicy::new(Duration::ZERO, Duration::from_secs(365 * DAY), Duration::from_secs(30 * DAY), true);

/// What the mechanism list cannot tell, found out by trying at connect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Probed {
    /// `CKM_RSA_PKCS_OAEP` accepts SHA-256 with MGF1-SHA-256 (SoftHSM 2.6 takes only SHA-1).
    pub(crate) oaep_sha256: bool,
    /// `CKM_EC_KEY_PAIR_GEN` generates keys on secp256k1.
    pub(crate) secp256k1: bool,
}

/// Tries what the mechanism list does not tell, with short-lived session objects that are
/// destroyed at once (nothing is written to the token):
/// - RSA-OAEP with SHA-256: one `C_Encrypt` under a public key object made from a fixed
///   2048-bit modulus (no key generation, so it takes microseconds);
/// - secp256k1: a session key pair generated on the curve (about a millisecond).
pub(crate) fn probe(s: &Session, mechs: &[M]) -> Probed {
    let mut p = Probed::default();
    if mechs.contains(&M::RSA_PKCS_OAEP) {
        // Any odd 2048-bit number is a usable public modulus for a trial encryption.
        let mut modulus = vec![0xc9u8; 256];
        modulus[255] = 0x4b;
        let made = s.create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            Attribute::Modulus(modulus),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ]);
        if let Ok(h) = made {
            let mech = crate::provider::rsa_mechanism(E::RsaOaepSha256);
            p.oaep_sha256 = s.encrypt(&mech, h, b"probe").is_ok_and(|ct| ct.len() == 256);
            let _ = s.destroy_object(h);
        }
    }
    if mechs.contains(&M::ECC_KEY_PAIR_GEN)
        && let Some(params) = crate::der::ec_params(KeySpec::EcSecp256k1)
    {
        let public = [Attribute::Token(false), Attribute::EcParams(params.to_vec()), Attribute::Verify(true)];
        let private = [
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
        ];
        if let Ok((a, b)) = s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private) {
            p.secp256k1 = true;
            let _ = s.destroy_object(a);
            let _ = s.destroy_object(b);
        }
    }
    tracing::debug!(?p, "PKCS#11 capability probes");
    p
}

/// The capabilities of a token offering `mechs`.
pub(crate) fn from_mechanisms(mechs: &[M], probed: Probed) -> Capabilities {
    let has = |m: M| mechs.contains(&m);
    let mut caps = Capabilities::new().with_deletion(DELETION).with_max_page_size(MAX_PAGE_SIZE);
    let base = || SpecCapabilities::new().with_rotation(true);

    if has(M::AES_KEY_GEN) {
        let mut usages = Vec::new();
        let mut enc = Vec::new();
        let mut wrap = Vec::new();
        if has(M::AES_GCM) {
            usages.push(KeyUsage::EncryptDecrypt);
            enc.push(E::AesGcm);
        }
        for (m, w) in [(M::AES_KEY_WRAP, W::AesKeyWrap), (M::AES_KEY_WRAP_PAD, W::AesKeyWrapPad)] {
            if has(m) {
                wrap.push(w);
            }
        }
        if !wrap.is_empty() {
            usages.push(KeyUsage::WrapUnwrap);
        }
        if !usages.is_empty() {
            for spec in [KeySpec::Aes128, KeySpec::Aes192, KeySpec::Aes256] {
                let c = base()
                    .with_usages(usages.clone())
                    .with_encryption(enc.clone())
                    .with_wrap(wrap.clone())
                    .with_max_plaintext_len(MAX_AES_PLAINTEXT);
                caps = caps.with_spec(spec, c);
            }
        }
    }

    if has(M::RSA_PKCS_KEY_PAIR_GEN) {
        let mut usages = Vec::new();
        let mut enc = Vec::new();
        // The mechanism list does not say which OAEP hashes the token takes (SoftHSM lists
        // CKM_RSA_PKCS_OAEP but refuses SHA-256 parameters): SHA-256 only when probed.
        if has(M::RSA_PKCS_OAEP) {
            if probed.oaep_sha256 {
                enc.push(E::RsaOaepSha256);
            }
            enc.push(E::RsaOaepSha1);
        }
        if has(M::RSA_PKCS) {
            enc.push(E::RsaPkcs1v15);
        }
        if !enc.is_empty() {
            usages.push(KeyUsage::EncryptDecrypt);
        }
        let mut sig = Vec::new();
        if has(M::RSA_PKCS) {
            sig.extend([S::RsaPkcs1v15Sha256, S::RsaPkcs1v15Sha384, S::RsaPkcs1v15Sha512]);
        }
        if has(M::RSA_PKCS_PSS) {
            sig.extend([S::RsaPssSha256, S::RsaPssSha384, S::RsaPssSha512]);
        }
        if !sig.is_empty() {
            usages.push(KeyUsage::SignVerify);
        }
        if !usages.is_empty() {
            for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
                let c = base()
                    .with_usages(usages.clone())
                    .with_encryption(enc.clone())
                    .with_signature(sig.clone())
                    .with_sign_digest(true);
                caps = caps.with_spec(spec, c);
            }
        }
    }

    if has(M::ECC_KEY_PAIR_GEN) && has(M::ECDSA) {
        let k1 = probed.secp256k1.then_some(KeySpec::EcSecp256k1);
        for spec in [KeySpec::EcP256, KeySpec::EcP384, KeySpec::EcP521].into_iter().chain(k1) {
            let c = base()
                .with_usages([KeyUsage::SignVerify])
                .with_signature(spec.default_signature_algorithm())
                .with_sign_digest(true);
            caps = caps.with_spec(spec, c);
        }
    }

    if has(M::ECC_EDWARDS_KEY_PAIR_GEN) && has(M::EDDSA) {
        caps = caps.with_spec(
            KeySpec::Ed25519,
            base().with_usages([KeyUsage::SignVerify]).with_signature([S::Ed25519]),
        );
    }

    if has(M::GENERIC_SECRET_KEY_GEN) {
        for (spec, m, a) in [
            (KeySpec::HmacSha256, M::SHA256_HMAC, MacAlgorithm::HmacSha256),
            (KeySpec::HmacSha384, M::SHA384_HMAC, MacAlgorithm::HmacSha384),
            (KeySpec::HmacSha512, M::SHA512_HMAC, MacAlgorithm::HmacSha512),
        ] {
            if has(m) {
                caps = caps.with_spec(spec, base().with_usages([KeyUsage::Mac]).with_mac([a]));
            }
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_token_lists_is_declared() {
        let mechs =
            [M::AES_KEY_GEN, M::AES_KEY_WRAP, M::ECC_KEY_PAIR_GEN, M::ECDSA, M::RSA_PKCS_KEY_PAIR_GEN];
        let mut mechs = mechs.to_vec();
        mechs.push(M::RSA_PKCS_OAEP);
        let caps = from_mechanisms(&mechs, Probed::default());
        assert!(caps.supports_key(KeySpec::Aes256, KeyUsage::WrapUnwrap));
        assert!(!caps.supports_key(KeySpec::Aes256, KeyUsage::EncryptDecrypt));
        assert!(caps.supports_wrap(KeySpec::Aes128, W::AesKeyWrap));
        assert!(!caps.supports_wrap(KeySpec::Aes128, W::AesKeyWrapPad));
        assert!(caps.supports_signature(KeySpec::EcP384, S::EcdsaSha384));
        assert!(caps.supports_encryption(KeySpec::Rsa2048, E::RsaOaepSha1));
        assert!(!caps.supports_encryption(KeySpec::Rsa2048, E::RsaOaepSha256));
        assert!(caps.spec(KeySpec::EcSecp256k1).is_none());
        let probed = Probed { oaep_sha256: true, secp256k1: true };
        let caps = from_mechanisms(&mechs, probed);
        assert!(caps.supports_encryption(KeySpec::Rsa4096, E::RsaOaepSha256));
        assert!(caps.supports_signature(KeySpec::EcSecp256k1, S::EcdsaSha256));
        assert!(from_mechanisms(&[], probed).specs.is_empty());
    }
}
