//! Independent implementations (RustCrypto, public-key operations only) that check what
//! a provider produces: signatures must verify, its public keys must parse, and RSA
//! ciphertexts made here must decrypt through the provider.

use ed25519_dalek::Verifier as _;
use hsm_core::{EncryptionAlgorithm, KeyFamily, KeySpec, SignatureAlgorithm};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

fn rsa_key(spec: KeySpec, spki: &[u8]) -> Result<RsaPublicKey, String> {
    let key = RsaPublicKey::from_public_key_der(spki)
        .map_err(|e| format!("the public key is not an RSA SubjectPublicKeyInfo: {e}"))?;
    if let Some(bytes) = spec.rsa_modulus_bytes()
        && key.size() != bytes
    {
        return Err(format!("the {spec} public key has a {}-bit modulus", key.size() * 8));
    }
    Ok(key)
}

/// Parses a provider's SPKI with the parser for `spec` (checking the algorithm, curve and size).
pub(crate) fn check_spki(spec: KeySpec, spki: &[u8]) -> Result<(), String> {
    let res = match spec {
        KeySpec::EcP256 => p256::PublicKey::from_public_key_der(spki).map(drop),
        KeySpec::EcP384 => p384::PublicKey::from_public_key_der(spki).map(drop),
        KeySpec::EcP521 => p521::PublicKey::from_public_key_der(spki).map(drop),
        KeySpec::EcSecp256k1 => k256::PublicKey::from_public_key_der(spki).map(drop),
        KeySpec::Ed25519 => ed25519_dalek::VerifyingKey::from_public_key_der(spki).map(drop),
        _ if spec.family() == KeyFamily::Rsa => return rsa_key(spec, spki).map(drop),
        _ => return Err(format!("{spec} has no public key")),
    };
    res.map_err(|e| format!("the public key is not a {spec} SubjectPublicKeyInfo: {e}"))
}

/// Verifies `sig` over `msg` with the public key `spki`, independently of the provider.
pub(crate) fn verify(
    spec: KeySpec,
    alg: SignatureAlgorithm,
    spki: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| format!("independent {alg} verification ({spec}) failed: {e}");
    let rsa = |scheme: RsaScheme| -> Result<(), String> {
        let key = rsa_key(spec, spki)?;
        let res = match scheme {
            RsaScheme::Pkcs1(256) => key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig),
            RsaScheme::Pkcs1(384) => key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg), sig),
            RsaScheme::Pkcs1(_) => key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg), sig),
            // Pss::new sets the salt length to the digest length, as the vocabulary declares.
            RsaScheme::Pss(256) => key.verify(Pss::new::<Sha256>(), &Sha256::digest(msg), sig),
            RsaScheme::Pss(384) => key.verify(Pss::new::<Sha384>(), &Sha384::digest(msg), sig),
            RsaScheme::Pss(_) => key.verify(Pss::new::<Sha512>(), &Sha512::digest(msg), sig),
        };
        res.map_err(|e| bad(&e))
    };
    match (alg, spec) {
        (SignatureAlgorithm::RsaPkcs1v15Sha256, _) => rsa(RsaScheme::Pkcs1(256)),
        (SignatureAlgorithm::RsaPkcs1v15Sha384, _) => rsa(RsaScheme::Pkcs1(384)),
        (SignatureAlgorithm::RsaPkcs1v15Sha512, _) => rsa(RsaScheme::Pkcs1(512)),
        (SignatureAlgorithm::RsaPssSha256, _) => rsa(RsaScheme::Pss(256)),
        (SignatureAlgorithm::RsaPssSha384, _) => rsa(RsaScheme::Pss(384)),
        (SignatureAlgorithm::RsaPssSha512, _) => rsa(RsaScheme::Pss(512)),
        (SignatureAlgorithm::EcdsaSha256, KeySpec::EcP256) => {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let sig = p256::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
            key.verify(msg, &sig).map_err(|e| bad(&e))
        }
        (SignatureAlgorithm::EcdsaSha256, KeySpec::EcSecp256k1) => {
            let key = k256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let sig = k256::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
            // k256 accepts only low-S signatures (BIP 62); ECDSA itself accepts both.
            let sig = sig.normalize_s().unwrap_or(sig);
            key.verify(msg, &sig).map_err(|e| bad(&e))
        }
        (SignatureAlgorithm::EcdsaSha384, KeySpec::EcP384) => {
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let sig = p384::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
            key.verify(msg, &sig).map_err(|e| bad(&e))
        }
        (SignatureAlgorithm::EcdsaSha512, KeySpec::EcP521) => {
            let public = p521::PublicKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let key = p521::ecdsa::VerifyingKey::from_affine(*public.as_affine()).map_err(|e| bad(&e))?;
            let sig = p521::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
            key.verify(msg, &sig).map_err(|e| bad(&e))
        }
        (SignatureAlgorithm::Ed25519, KeySpec::Ed25519) => {
            let key = ed25519_dalek::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|e| bad(&e))?;
            key.verify_strict(msg, &sig).map_err(|e| bad(&e))
        }
        _ => Err(format!("the kit has no independent verifier for {alg} on {spec}")),
    }
}

#[derive(Clone, Copy)]
enum RsaScheme {
    Pkcs1(u16),
    Pss(u16),
}

/// Encrypts `plaintext` to the RSA public key `spki` with `alg`, independently of the provider.
pub(crate) fn rsa_encrypt(
    spec: KeySpec,
    alg: EncryptionAlgorithm,
    spki: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, String> {
    let key = rsa_key(spec, spki)?;
    let mut rng = rand_core::OsRng;
    let res = match alg {
        EncryptionAlgorithm::RsaOaepSha1 => key.encrypt(&mut rng, Oaep::new::<sha1::Sha1>(), plaintext),
        EncryptionAlgorithm::RsaOaepSha256 => key.encrypt(&mut rng, Oaep::new::<Sha256>(), plaintext),
        EncryptionAlgorithm::RsaPkcs1v15 => key.encrypt(&mut rng, Pkcs1v15Encrypt, plaintext),
        _ => return Err(format!("the kit has no independent {alg} encryption")),
    };
    res.map_err(|e| format!("independent {alg} encryption failed: {e}"))
}
