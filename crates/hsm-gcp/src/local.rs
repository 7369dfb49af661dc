//! The public-key operations Cloud KMS leaves to the client: RSA-OAEP encryption and
//! signature verification, on aws-lc-rs, with the version's public key.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use hsm_core::{DigestAlgorithm, EncryptionAlgorithm, Error, KeySpec, Result, SignInput, SignatureAlgorithm};

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
    let oaep = match alg {
        EncryptionAlgorithm::RsaOaepSha1 => &OAEP_SHA1_MGF1SHA1,
        EncryptionAlgorithm::RsaOaepSha256 => &OAEP_SHA256_MGF1SHA256,
        other => return Err(Error::invalid_input(PROVIDER, format!("{other} is not an RSA-OAEP algorithm"))),
    };
    let key = PublicEncryptingKey::from_der(spki_der).map_err(|_| bad_key())?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| bad_key())?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(oaep, plaintext, &mut out, None)
        .map_err(|_| {
            Error::invalid_input(PROVIDER, format!("{alg} cannot encrypt {} bytes", plaintext.len()))
        })?
        .len();
    out.truncate(n);
    Ok(out)
}

fn verification_alg(
    spec: KeySpec,
    alg: SignatureAlgorithm,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    Some(match (alg, spec) {
        (SignatureAlgorithm::RsaPkcs1v15Sha256, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (SignatureAlgorithm::RsaPkcs1v15Sha384, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (SignatureAlgorithm::RsaPkcs1v15Sha512, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (SignatureAlgorithm::RsaPssSha256, _) => &signature::RSA_PSS_2048_8192_SHA256,
        (SignatureAlgorithm::RsaPssSha384, _) => &signature::RSA_PSS_2048_8192_SHA384,
        (SignatureAlgorithm::RsaPssSha512, _) => &signature::RSA_PSS_2048_8192_SHA512,
        (SignatureAlgorithm::EcdsaSha256, KeySpec::EcP256) => &signature::ECDSA_P256_SHA256_ASN1,
        (SignatureAlgorithm::EcdsaSha256, KeySpec::EcSecp256k1) => &signature::ECDSA_P256K1_SHA256_ASN1,
        (SignatureAlgorithm::EcdsaSha384, KeySpec::EcP384) => &signature::ECDSA_P384_SHA384_ASN1,
        (SignatureAlgorithm::Ed25519, KeySpec::Ed25519) => &signature::ED25519,
        _ => return None,
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
    let v = verification_alg(spec, alg).ok_or_else(|| {
        Error::unsupported(PROVIDER, format!("verifying {alg} on an {spec} key"), "Cloud KMS has no such key")
    })?;
    let key = ParsedPublicKey::new(v, spki_der).map_err(|_| bad_key())?;
    Ok(match input {
        SignInput::Digest(d) => {
            let Some(dalg) = alg.digest().and_then(digest_alg) else { return Ok(false) };
            match Digest::import_less_safe(d, dalg) {
                Ok(d) => key.verify_digest_sig(&d, sig).is_ok(),
                Err(_) => false,
            }
        }
        _ => key.verify_sig(input.bytes(), sig).is_ok(),
    })
}
