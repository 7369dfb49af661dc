//! JOSE: compact JWS signing and verification with provider keys, and public keys as JWK
//! and JWK Sets, so tokens signed by a KMS or HSM key verify in any JWT library.
//!
//! Algorithms: RS256/384/512 (RSA PKCS#1 v1.5), PS256/384/512 (RSA-PSS), ES256/384/512
//! (ECDSA P-256/P-384/P-521, signatures as fixed `r ‖ s`), ES256K (secp256k1) and EdDSA
//! (Ed25519). The `kid` of every token and JWK is `name@version` of the key version that
//! signed, so verifiers pick the right key after a rotation.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hsm_core::{
    Error, KeyFamily, KeyRef, KeySpec, Provider, PublicKey, Result, SignInput, SignatureAlgorithm,
};
use serde_json::{Map, Value, json};

use crate::{KeySigner, der, signer::ec_field_len};

/// The JSON crate this module's claims, headers and JWKs are made of.
pub use serde_json;

/// The JWS `alg` name for signatures by a `spec` key with `algorithm`, or `None` when JOSE
/// has no name for the pair.
pub fn jws_algorithm(spec: KeySpec, algorithm: SignatureAlgorithm) -> Option<&'static str> {
    use SignatureAlgorithm as S;
    Some(match (spec, algorithm) {
        (_, S::RsaPkcs1v15Sha256) => "RS256",
        (_, S::RsaPkcs1v15Sha384) => "RS384",
        (_, S::RsaPkcs1v15Sha512) => "RS512",
        (_, S::RsaPssSha256) => "PS256",
        (_, S::RsaPssSha384) => "PS384",
        (_, S::RsaPssSha512) => "PS512",
        (KeySpec::EcP256, S::EcdsaSha256) => "ES256",
        (KeySpec::EcSecp256k1, S::EcdsaSha256) => "ES256K",
        (KeySpec::EcP384, S::EcdsaSha384) => "ES384",
        (KeySpec::EcP521, S::EcdsaSha512) => "ES512",
        (KeySpec::Ed25519, S::Ed25519) => "EdDSA",
        _ => return None,
    })
}

/// The signature algorithm a JWS `alg` names for a `spec` key, or `None` when the key cannot
/// make such signatures (this is the check against algorithm confusion: `alg` must fit the key).
pub fn from_jws_algorithm(spec: KeySpec, alg: &str) -> Option<SignatureAlgorithm> {
    use SignatureAlgorithm as S;
    let a = match alg {
        "RS256" => S::RsaPkcs1v15Sha256,
        "RS384" => S::RsaPkcs1v15Sha384,
        "RS512" => S::RsaPkcs1v15Sha512,
        "PS256" => S::RsaPssSha256,
        "PS384" => S::RsaPssSha384,
        "PS512" => S::RsaPssSha512,
        "ES256" | "ES256K" => S::EcdsaSha256,
        "ES384" => S::EcdsaSha384,
        "ES512" => S::EcdsaSha512,
        "EdDSA" => S::Ed25519,
        _ => return None,
    };
    (jws_algorithm(spec, a) == Some(alg)).then_some(a)
}

/// The `kid` for a key version: `name@version`.
pub fn kid(public_key: &PublicKey) -> String {
    format!("{}@{}", public_key.key, public_key.version)
}

fn signer_alg(signer: &KeySigner) -> Result<&'static str> {
    jws_algorithm(signer.spec(), signer.algorithm()).ok_or_else(|| {
        Error::unsupported(
            signer.provider().name(),
            format!("JWS with {} on {}", signer.algorithm(), signer.spec()),
            "JOSE names no algorithm for this pair",
        )
    })
}

/// Signs `payload` as a compact JWS (`header.payload.signature`, base64url). The protected
/// header is `{"alg", "kid"}` plus `extra_header` (which cannot override `alg` or `kid`).
///
/// # Errors
/// The provider's sign errors; `Unsupported` for an algorithm JOSE has no name for.
///
/// ```no_run
/// # async fn demo(signer: hsm_signers::KeySigner) -> hsm_core::Result<()> {
/// let token = hsm_signers::jose::sign_compact(&signer, serde_json::Map::new(), b"payload").await?;
/// assert_eq!(token.split('.').count(), 3);
/// # Ok(())
/// # }
/// ```
pub async fn sign_compact(
    signer: &KeySigner,
    extra_header: Map<String, Value>,
    payload: &[u8],
) -> Result<String> {
    let alg = signer_alg(signer)?;
    let mut header = extra_header;
    header.insert("alg".into(), Value::String(alg.into()));
    header.insert("kid".into(), Value::String(kid(signer.public_key())));
    let header = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| Error::invalid_input(signer.provider().name(), format!("JWS header: {e}")))?;
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = signer.sign_fixed(signing_input.as_bytes()).await?;
    Ok(format!("{signing_input}.{}", B64.encode(sig)))
}

/// Signs a JWT: `claims` (a JSON object) under the header `{"alg", "kid", "typ": "JWT"}`.
///
/// # Errors
/// `InvalidInput` when `claims` is not a JSON object; otherwise as [`sign_compact`].
pub async fn sign_jwt(signer: &KeySigner, claims: &Value) -> Result<String> {
    if !claims.is_object() {
        return Err(Error::invalid_input(signer.provider().name(), "JWT claims must be a JSON object"));
    }
    let payload = serde_json::to_vec(claims)
        .map_err(|e| Error::invalid_input(signer.provider().name(), format!("JWT claims: {e}")))?;
    let mut header = Map::new();
    header.insert("typ".into(), Value::String("JWT".into()));
    sign_compact(signer, header, &payload).await
}

/// A compact JWS whose signature verified.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verified {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The key version that verified it.
    pub key: KeyRef,
}

/// The outcome of [`verify_compact`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Verification {
    /// The signature is valid for the key.
    Valid(Verified),
    /// The token is not a valid JWS for the key; the reason says why (never key material).
    Invalid(String),
}

impl Verification {
    /// True for [`Verification::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Verification::Valid(_))
    }
}

/// Verifies a compact JWS against `key` in `provider`: the header's `alg` must be one the
/// key can make (no `none`, no HMAC with a public key), a `kid` must name this key (its
/// version picks the key version; without one, the current version is used), and the
/// provider must accept the signature.
///
/// # Errors
/// Only for requests that cannot be evaluated: `NotFound`, `KeyUnusable`, transport errors.
/// A malformed or forged token is `Ok(Verification::Invalid(reason))`.
pub async fn verify_compact(provider: &dyn Provider, key: &KeyRef, token: &str) -> Result<Verification> {
    let invalid = |why: &str| Ok(Verification::Invalid(why.to_owned()));
    let mut parts = token.trim().split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return invalid("not a compact JWS (three base64url parts separated by '.')");
    };
    let (Ok(header), Ok(payload), Ok(sig)) = (B64.decode(h64), B64.decode(p64), B64.decode(s64)) else {
        return invalid("a part is not base64url without padding");
    };
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&header) else {
        return invalid("the header is not a JSON object");
    };
    if header.contains_key("crit") {
        return invalid("the header has 'crit' extensions, which this verifier does not understand");
    }
    let mut key = key.clone();
    let mut from_kid = false;
    if let Some(kid) = header.get("kid") {
        let Some(kid) = kid.as_str() else { return invalid("'kid' is not a string") };
        let named: KeyRef = kid.parse().unwrap_or_else(|e: std::convert::Infallible| match e {});
        if named.name() != key.name() {
            return invalid(&format!("the token's kid names key '{}', not '{}'", named.name(), key.name()));
        }
        if let (Some(v), None) = (named.version(), key.version()) {
            key = key.with_version(v);
            from_kid = true;
        }
    }
    let info = match provider.get_key(&key).await {
        Ok(info) => info,
        // The version came from the token: a version that does not exist or cannot be used
        // makes the token invalid, not the request.
        Err(Error::NotFound { .. } | Error::KeyUnusable { .. }) if from_kid => {
            return invalid(&format!(
                "the token's kid names version {} of '{}', which cannot verify",
                key.version().unwrap_or_default(),
                key.name()
            ));
        }
        Err(e) => return Err(e),
    };
    let Some(alg_name) = header.get("alg").and_then(Value::as_str) else {
        return invalid("no 'alg' in the header");
    };
    let Some(alg) = from_jws_algorithm(info.spec, alg_name) else {
        return invalid(&format!(
            "alg '{alg_name}' cannot be made by key '{}', which is {}",
            key.name(),
            info.spec
        ));
    };
    let sig = match ec_field_len(info.spec) {
        Some(n) if sig.len() == 2 * n => der::ecdsa_der(&sig[..n], &sig[n..]),
        Some(n) => return invalid(&format!("an {alg_name} signature is {} bytes, not {}", 2 * n, sig.len())),
        None => sig,
    };
    let signing_input = &token.trim().as_bytes()[..h64.len() + 1 + p64.len()];
    match provider.verify(&key, alg, SignInput::Message(signing_input), &sig).await {
        Ok(true) => Ok(Verification::Valid(Verified { header, payload, key })),
        Ok(false) => invalid("the signature does not verify"),
        Err(Error::InvalidInput { message, .. }) => invalid(&message),
        Err(Error::KeyUnusable { reason, .. }) if from_kid => {
            invalid(&format!("the key version the kid names cannot verify: {reason}"))
        }
        Err(e) => Err(e),
    }
}

/// Verifies a JWT: the JWS signature ([`verify_compact`]), a JSON-object payload, and the
/// `exp` and `nbf` claims when present (`leeway` seconds of clock skew allowed).
///
/// # Errors
/// As [`verify_compact`].
pub async fn verify_jwt(
    provider: &dyn Provider,
    key: &KeyRef,
    token: &str,
    leeway: u64,
) -> Result<Verification> {
    let v = match verify_compact(provider, key, token).await? {
        Verification::Valid(v) => v,
        invalid => return Ok(invalid),
    };
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&v.payload) else {
        return Ok(Verification::Invalid("the payload is not a JSON object".into()));
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for (claim, expired) in [("exp", true), ("nbf", false)] {
        let Some(t) = claims.get(claim) else { continue };
        let Some(t) = t.as_u64().or_else(|| t.as_f64().map(|f| f as u64)) else {
            return Ok(Verification::Invalid(format!("'{claim}' is not a number of seconds")));
        };
        if expired && now > t.saturating_add(leeway) {
            return Ok(Verification::Invalid(format!("the token expired {} s ago", now - t)));
        }
        if !expired && now.saturating_add(leeway) < t {
            return Ok(Verification::Invalid(format!("the token is not valid for another {} s", t - now)));
        }
    }
    Ok(Verification::Valid(v))
}

/// The public key as a JWK (RFC 7517, 7518, 8037, 8812) with `kid` = `name@version`;
/// `"use": "sig"` and `alg` are added when `algorithm` (the key's signature algorithm) is
/// given — leave it out for an RSA encryption key.
///
/// # Errors
/// `InvalidInput` when the SPKI is malformed or of a kind JOSE cannot express.
pub fn jwk(public_key: &PublicKey, algorithm: Option<SignatureAlgorithm>) -> Result<Value> {
    let bad = || {
        Error::invalid_input(
            "hsm",
            format!("the public key of '{}' is not a well-formed {} SPKI", kid(public_key), public_key.spec),
        )
    };
    let spki = der::spki(&public_key.spki_der).ok_or_else(bad)?;
    let mut jwk = match public_key.spec.family() {
        KeyFamily::Rsa => {
            let (n, e) = der::rsa_public(spki.key).ok_or_else(bad)?;
            json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)})
        }
        KeyFamily::Ec => {
            let size = ec_field_len(public_key.spec).ok_or_else(bad)?;
            let point = spki.key;
            if point.len() != 1 + 2 * size || point[0] != 4 {
                return Err(bad());
            }
            let crv = match public_key.spec {
                KeySpec::EcP256 => "P-256",
                KeySpec::EcP384 => "P-384",
                KeySpec::EcP521 => "P-521",
                _ => "secp256k1",
            };
            json!({"kty": "EC", "crv": crv, "x": B64.encode(&point[1..=size]), "y": B64.encode(&point[1 + size..])})
        }
        KeyFamily::Ed25519 if spki.key.len() == 32 => {
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(spki.key)})
        }
        _ => {
            return Err(Error::invalid_input(
                "hsm",
                format!("key '{}' is {}, which has no JWK public key", public_key.key, public_key.spec),
            ));
        }
    };
    jwk["kid"] = Value::String(kid(public_key));
    if let Some(alg) = algorithm.and_then(|a| jws_algorithm(public_key.spec, a)) {
        jwk["use"] = Value::String("sig".into());
        jwk["alg"] = Value::String(alg.into());
    }
    Ok(jwk)
}

/// A JWK Set (`{"keys": [...]}`) of every usable version of `key`, so tokens signed before
/// a rotation keep verifying (versions the provider refuses, disabled or destroyed, are left out).
///
/// # Errors
/// `NotFound`, `InvalidInput` for a symmetric key, transport errors.
pub async fn jwks(
    provider: &dyn Provider,
    key: &str,
    algorithm: Option<SignatureAlgorithm>,
) -> Result<Value> {
    let info = provider.get_key(&KeyRef::new(key)).await?;
    let mut keys = Vec::with_capacity(info.versions.len());
    for v in &info.versions {
        match provider.public_key(&KeyRef::new(key).with_version(v.clone())).await {
            Ok(pk) => keys.push(jwk(&pk, algorithm)?),
            // A disabled or destroyed version signs nothing new and verifies nothing old.
            Err(Error::KeyUnusable { .. } | Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({ "keys": keys }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_must_fit_the_key_exactly() {
        use SignatureAlgorithm as S;
        assert_eq!(from_jws_algorithm(KeySpec::EcP256, "ES256"), Some(S::EcdsaSha256));
        assert_eq!(from_jws_algorithm(KeySpec::EcSecp256k1, "ES256K"), Some(S::EcdsaSha256));
        // The same ECDSA-SHA256 under the other curve's name is refused both ways.
        assert_eq!(from_jws_algorithm(KeySpec::EcSecp256k1, "ES256"), None);
        assert_eq!(from_jws_algorithm(KeySpec::EcP256, "ES256K"), None);
        assert_eq!(from_jws_algorithm(KeySpec::EcP256, "ES384"), None);
        assert_eq!(from_jws_algorithm(KeySpec::Rsa2048, "HS256"), None);
        assert_eq!(from_jws_algorithm(KeySpec::Rsa2048, "none"), None);
        assert_eq!(from_jws_algorithm(KeySpec::Rsa3072, "PS384"), Some(S::RsaPssSha384));
        assert_eq!(from_jws_algorithm(KeySpec::Ed25519, "EdDSA"), Some(S::Ed25519));
        for spec in KeySpec::ALL {
            for alg in SignatureAlgorithm::ALL {
                if let Some(name) = jws_algorithm(*spec, *alg).filter(|_| alg.fits(*spec)) {
                    assert_eq!(from_jws_algorithm(*spec, name), Some(*alg), "{spec} {alg}");
                }
            }
        }
    }

    #[test]
    fn a_malformed_public_key_is_an_error_not_a_panic() {
        let pk = PublicKey::new("k", "1", KeySpec::EcP256, vec![0x30, 0x03, 0x02, 0x01]);
        assert!(matches!(jwk(&pk, None), Err(Error::InvalidInput { .. })));
        let pk = PublicKey::new("k", "1", KeySpec::Aes256, vec![]);
        assert!(jwk(&pk, None).is_err());
    }
}
