//! The public-key operations Cloud KMS leaves to the client: RSA-OAEP encryption and
//! signature verification with the version's public key, on hsm-crypto's primitives (the
//! same code the local provider and hsm-aws's local verification use).

use aws_lc_rs::digest;
use aws_lc_rs::rsa::PublicEncryptingKey;
use base64::Engine as _;
use hsm_core::{DigestAlgorithm, EncryptionAlgorithm, Error, KeySpec, Result, SignInput, SignatureAlgorithm};
use hsm_crypto as primitives;

use crate::PROVIDER;

/// The DER inside a `-----BEGIN PUBLIC KEY-----` PEM.
///
/// # Errors
/// `Provider` when the service's PEM does not decode.
pub(crate) fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let body: String =
        pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| Error::Provider {
        provider: PROVIDER,
        code: "GetPublicKey".into(),
        message: format!("Cloud KMS returned a public key PEM that does not decode: {e}"),
        source: None,
    })
}

fn bad_key() -> Error {
    Error::Provider {
        provider: PROVIDER,
        code: "GetPublicKey".into(),
        message: "Cloud KMS returned a public key aws-lc-rs cannot parse".into(),
        source: None,
    }
}

/// RSA-OAEP (SHA-1 or SHA-256, empty label) with an SPKI public key: what Cloud KMS's
/// `AsymmetricDecrypt` opens.
///
/// # Errors
/// `Provider` for a key that does not parse; `InvalidInput` for another algorithm or a
/// plaintext too long (the provider checks lengths first).
pub(crate) fn rsa_oaep_encrypt(
    spki_der: &[u8],
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    if !matches!(alg, EncryptionAlgorithm::RsaOaepSha1 | EncryptionAlgorithm::RsaOaepSha256) {
        return Err(Error::invalid_input(PROVIDER, format!("{alg} is not an RSA-OAEP algorithm")));
    }
    let key = PublicEncryptingKey::from_der(spki_der).map_err(|_| bad_key())?;
    primitives::rsa_encrypt(&key, alg, plaintext).map_err(|_| {
        Error::invalid_input(PROVIDER, format!("{alg} cannot encrypt {} bytes", plaintext.len()))
    })
}

fn digest_alg(d: DigestAlgorithm) -> Option<&'static digest::Algorithm> {
    match d {
        DigestAlgorithm::Sha256 => Some(&digest::SHA256),
        DigestAlgorithm::Sha384 => Some(&digest::SHA384),
        DigestAlgorithm::Sha512 => Some(&digest::SHA512),
        _ => None,
    }
}

/// The digest Cloud KMS signs for `alg`: the caller's, or computed here from the message.
pub(crate) fn digest_of(alg: SignatureAlgorithm, input: &SignInput<'_>) -> Option<Vec<u8>> {
    match input {
        SignInput::Digest(d) => Some(d.to_vec()),
        _ => {
            let d = alg.digest().and_then(digest_alg)?;
            Some(digest::digest(d, input.bytes()).as_ref().to_vec())
        }
    }
}

/// Verifies `sig` over a message or digest with an SPKI public key. Every failure,
/// including a signature that does not decode, is `Ok(false)`.
///
/// # Errors
/// `Provider` when the public key does not parse.
pub(crate) fn verify(
    spec: KeySpec,
    alg: SignatureAlgorithm,
    spki_der: &[u8],
    input: SignInput<'_>,
    sig: &[u8],
) -> Result<bool> {
    if !alg.fits(spec) {
        return Err(Error::unsupported(
            PROVIDER,
            format!("verifying {alg} on an {spec} key"),
            "Cloud KMS has no such key",
        ));
    }
    let key = primitives::verifier(spec, alg, spki_der).map_err(|_| bad_key())?;
    Ok(primitives::verify_with(&key, alg, input, sig))
}
