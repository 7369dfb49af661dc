//! Key material: generation, parsing into aws-lc-rs key objects (cached per version) and the
//! public half of asymmetric keys.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, Pkcs8V2Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair};
use hsm_core::{Error, KeyFamily, KeySpec, KeyUsage, Result, SignatureAlgorithm};
use zeroize::Zeroizing;

use crate::PROVIDER;
use crate::primitives::{AesGcmKey, CryptoError, ecdsa_signing_alg, verifier};
use crate::state::{Secret, VersionRecord};

/// A key version parsed into the objects its usage needs.
pub(crate) enum Parsed {
    /// AES: the GCM key (key wrap works on the raw bytes).
    Aes(AesGcmKey),
    /// RSA with usage sign.
    RsaSign { pair: RsaKeyPair, spki: Vec<u8> },
    /// RSA with usage encrypt or wrap.
    RsaDecrypt { key: PrivateDecryptingKey, public: PublicEncryptingKey, spki: Vec<u8> },
    /// ECDSA on any curve, with its public key parsed for the curve's one algorithm.
    Ecdsa { pair: EcdsaKeyPair, spki: Vec<u8>, verifier: ParsedPublicKey },
    /// Ed25519, with its public key parsed for verification.
    Ed25519 { pair: Ed25519KeyPair, spki: Vec<u8>, verifier: ParsedPublicKey },
    /// HMAC (boxed: its context is large).
    Hmac(Box<hmac::Key>),
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Parsed::Aes(_) => "Aes",
            Parsed::RsaSign { .. } => "RsaSign",
            Parsed::RsaDecrypt { .. } => "RsaDecrypt",
            Parsed::Ecdsa { .. } => "Ecdsa",
            Parsed::Ed25519 { .. } => "Ed25519",
            Parsed::Hmac(_) => "Hmac",
        };
        write!(f, "Parsed::{kind}([redacted])")
    }
}

impl Parsed {
    /// The SPKI DER of an asymmetric key.
    pub(crate) fn spki(&self) -> Option<&[u8]> {
        match self {
            Parsed::RsaSign { spki, .. }
            | Parsed::RsaDecrypt { spki, .. }
            | Parsed::Ecdsa { spki, .. }
            | Parsed::Ed25519 { spki, .. } => Some(spki),
            Parsed::Aes(_) | Parsed::Hmac(_) => None,
        }
    }
}

fn internal(what: &str) -> Error {
    Error::Provider {
        provider: PROVIDER,
        code: "internal".into(),
        message: format!("{what}; the key store may be damaged"),
        source: None,
    }
}

fn hmac_alg(spec: KeySpec) -> Option<hmac::Algorithm> {
    match spec {
        KeySpec::HmacSha256 => Some(hmac::HMAC_SHA256),
        KeySpec::HmacSha384 => Some(hmac::HMAC_SHA384),
        KeySpec::HmacSha512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn spki_of(
    der: std::result::Result<aws_lc_rs::encoding::PublicKeyX509Der<'static>, aws_lc_rs::error::Unspecified>,
) -> std::result::Result<Vec<u8>, CryptoError> {
    Ok(der?.as_ref().to_vec())
}

fn parse(spec: KeySpec, usage: KeyUsage, material: &[u8]) -> std::result::Result<Parsed, CryptoError> {
    Ok(match spec.family() {
        KeyFamily::Aes => {
            if material.len() * 8 != spec.bits() as usize {
                return Err(CryptoError);
            }
            Parsed::Aes(AesGcmKey::new(material)?)
        }
        KeyFamily::Rsa if usage == KeyUsage::SignVerify => {
            let pair = RsaKeyPair::from_pkcs8(material)?;
            let spki = spki_of(pair.public_key().as_der())?;
            Parsed::RsaSign { pair, spki }
        }
        KeyFamily::Rsa => {
            let key = PrivateDecryptingKey::from_pkcs8(material)?;
            let public = key.public_key();
            let spki = spki_of(public.as_der())?;
            Parsed::RsaDecrypt { key, public, spki }
        }
        KeyFamily::Ec => {
            let pair = EcdsaKeyPair::from_pkcs8(ecdsa_signing_alg(spec).ok_or(CryptoError)?, material)?;
            let spki = spki_of(pair.public_key().as_der())?;
            let alg = spec.default_signature_algorithm().ok_or(CryptoError)?;
            let verifier = verifier(spec, alg, &spki)?;
            Parsed::Ecdsa { pair, spki, verifier }
        }
        KeyFamily::Ed25519 => {
            let pair = Ed25519KeyPair::from_pkcs8(material)?;
            let spki = spki_of(pair.public_key().as_der())?;
            let verifier = verifier(spec, SignatureAlgorithm::Ed25519, &spki)?;
            Parsed::Ed25519 { pair, spki, verifier }
        }
        KeyFamily::Hmac => {
            let alg = hmac_alg(spec).ok_or(CryptoError)?;
            if material.len() * 8 != spec.bits() as usize {
                return Err(CryptoError);
            }
            Parsed::Hmac(Box::new(hmac::Key::new(alg, material)))
        }
        _ => return Err(CryptoError),
    })
}

/// The parsed objects of `version`, parsing (once) on first use.
///
/// # Errors
/// `Error::Provider` when stored material does not parse (a damaged store).
pub(crate) fn parsed(spec: KeySpec, usage: KeyUsage, version: &VersionRecord) -> Result<Arc<Parsed>> {
    if let Some(p) = version.parsed.get() {
        return Ok(p.clone());
    }
    let p = Arc::new(
        parse(spec, usage, version.material.expose())
            .map_err(|_| internal(&format!("the material of a {spec} key version does not parse")))?,
    );
    Ok(version.parsed.get_or_init(|| p).clone())
}

fn random(len: usize) -> std::result::Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut b = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut b)?;
    Ok(b)
}

fn owned(der: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(der.to_vec())
}

fn generate_bytes(spec: KeySpec) -> std::result::Result<Zeroizing<Vec<u8>>, CryptoError> {
    Ok(match spec.family() {
        KeyFamily::Aes | KeyFamily::Hmac => random(spec.bits() as usize / 8)?,
        KeyFamily::Rsa => {
            let size = match spec {
                KeySpec::Rsa2048 => KeySize::Rsa2048,
                KeySpec::Rsa3072 => KeySize::Rsa3072,
                KeySpec::Rsa4096 => KeySize::Rsa4096,
                _ => return Err(CryptoError),
            };
            let der: Pkcs8V1Der<'static> = RsaKeyPair::generate(size)?.as_der()?;
            owned(der.as_ref())
        }
        KeyFamily::Ec => {
            let pair = EcdsaKeyPair::generate(ecdsa_signing_alg(spec).ok_or(CryptoError)?)?;
            owned(pair.to_pkcs8v1()?.as_ref())
        }
        KeyFamily::Ed25519 => {
            let der: Pkcs8V2Der<'static> = Ed25519KeyPair::generate()?.as_der()?;
            owned(der.as_ref())
        }
        _ => return Err(CryptoError),
    })
}

/// Generates fresh material for `spec` (and checks it parses for `usage`). RSA generation
/// takes up to a second or two for 4096 bits: call it off the async executor.
///
/// # Errors
/// `Error::Provider` if the generator fails.
pub(crate) fn generate(spec: KeySpec, usage: KeyUsage) -> Result<Secret> {
    let bytes = generate_bytes(spec)
        // Fail now rather than at first use if the material would not parse.
        .and_then(|b| parse(spec, usage, &b).map(|_| b))
        .map_err(|_| internal(&format!("generating a {spec} key failed")))?;
    Ok(Secret::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn every_spec_generates_and_parses_and_spki_is_der() {
        for &spec in KeySpec::ALL {
            if matches!(spec, KeySpec::Rsa3072 | KeySpec::Rsa4096) {
                continue; // slow; covered by the integration tests
            }
            let usage = spec.default_usage();
            let s = generate(spec, usage).unwrap();
            let v = VersionRecord::new(1, SystemTime::now(), s);
            let p = parsed(spec, usage, &v).unwrap();
            assert!(Arc::ptr_eq(&p, &parsed(spec, usage, &v).unwrap()), "cached");
            match p.spki() {
                Some(spki) => assert_eq!(spki[0], 0x30, "{spec}: SPKI is a DER SEQUENCE"),
                None => assert!(spec.is_symmetric()),
            }
            assert!(!format!("{p:?}").contains(&format!("{:?}", v.material.expose())));
        }
    }
}
