//! JWS/JWT and JWK: tokens made with provider keys, verified by the jsonwebtoken crate over
//! the exported JWK, by RustCrypto where jsonwebtoken has no algorithm (ES512, ES256K), and
//! by hsm-signers' own verifier.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hsm_core::{KeySpec, SignatureAlgorithm};
use hsm_signers::jose::{self, Verification};
use jsonwebtoken::Algorithm as A;
use libtest_mimic::Completion;
use serde_json::{Value, json};

use crate::signer::{signer_for, verify};
use crate::{Backend, Case, Outcome, check, rt};

pub(crate) const CASES: &[(&str, Case)] = &[
    ("jwt_es256", |b, k| jwt(b, k, KeySpec::EcP256, None, "ES256", Some(A::ES256))),
    ("jwt_es384", |b, k| jwt(b, k, KeySpec::EcP384, None, "ES384", Some(A::ES384))),
    ("jwt_es512", |b, k| jwt(b, k, KeySpec::EcP521, None, "ES512", None)),
    ("jwt_es256k", |b, k| jwt(b, k, KeySpec::EcSecp256k1, None, "ES256K", None)),
    ("jwt_eddsa", |b, k| jwt(b, k, KeySpec::Ed25519, None, "EdDSA", Some(A::EdDSA))),
    ("jwt_ps256", |b, k| {
        jwt(b, k, KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPssSha256), "PS256", Some(A::PS256))
    }),
    ("jwt_rs256", |b, k| {
        jwt(b, k, KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPkcs1v15Sha256), "RS256", Some(A::RS256))
    }),
    ("jwt_forgeries", forgeries),
    ("jwks_rotation", jwks_after_rotation),
    ("jwk_of_encryption_key", jwk_of_encryption_key),
];

/// An RSA encryption key's JWK has no signature use or algorithm.
fn jwk_of_encryption_key(b: &Backend, key: &str) -> Outcome {
    if let Some(why) = crate::create(b, key, KeySpec::Rsa2048, hsm_core::KeyUsage::EncryptDecrypt)? {
        return Ok(Completion::ignored_with(why));
    }
    let pk = rt().block_on(b.provider.public_key(&key.into())).map_err(|e| e.to_string())?;
    let jwk = jose::jwk(&pk, None).map_err(|e| e.to_string())?;
    check(jwk["kty"] == "RSA" && jwk.get("use").is_none() && jwk.get("alg").is_none(), format!("{jwk}"))?;
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk)?;
    check(
        matches!(parsed.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)),
        "jsonwebtoken reads it",
    )?;
    Ok(Completion::Completed)
}

fn claims() -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({"sub": "alice", "iat": now, "exp": now + 600})
}

fn jwt(
    b: &Backend,
    key: &str,
    spec: KeySpec,
    alg: Option<SignatureAlgorithm>,
    jws: &str,
    lib: Option<A>,
) -> Outcome {
    let signer = match signer_for(b, key, spec, alg)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let claims = claims();
    let token = rt().block_on(jose::sign_jwt(&signer, &claims)).map_err(|e| e.to_string())?;
    let jwk = jose::jwk(signer.public_key(), Some(signer.algorithm())).map_err(|e| e.to_string())?;
    check(jwk["alg"] == jws, format!("JWK alg {} != {jws}", jwk["alg"]))?;
    check(
        jwk["kid"] == format!("{key}@{}", signer.key_ref().version().unwrap_or_default()),
        "kid is name@version",
    )?;
    let header: Value = serde_json::from_slice(&B64.decode(token.split('.').next().unwrap_or_default())?)?;
    check(
        header["alg"] == jws && header["typ"] == "JWT" && header["kid"] == jwk["kid"],
        format!("header {header}"),
    )?;
    match lib {
        Some(lib_alg) => {
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())?;
            let dk = jsonwebtoken::DecodingKey::from_jwk(&parsed)?;
            let data = jsonwebtoken::decode::<Value>(&token, &dk, &jsonwebtoken::Validation::new(lib_alg))
                .map_err(|e| format!("jsonwebtoken rejects the {jws} token: {e}"))?;
            check(data.claims == claims, "claims round-trip")?;
        }
        None => {
            // RustCrypto over the JWK's coordinates rebuilt as SPKI: r‖s → DER.
            let parts: Vec<&str> = token.split('.').collect();
            let sig = B64.decode(parts[2])?;
            let n = sig.len() / 2;
            let der = match spec {
                KeySpec::EcP521 => p521::ecdsa::Signature::from_slice(&sig)?.to_der().as_bytes().to_vec(),
                _ => {
                    let s = k256::ecdsa::Signature::from_slice(&sig)?;
                    check(n == 32, "ES256K signature is 64 bytes")?;
                    s.to_der().as_bytes().to_vec()
                }
            };
            let input = format!("{}.{}", parts[0], parts[1]);
            verify(spec, signer.algorithm(), &signer.public_key().spki_der, input.as_bytes(), &der)?;
        }
    }
    let ours = rt()
        .block_on(jose::verify_jwt(b.provider.as_ref(), &key.into(), &token, 0))
        .map_err(|e| e.to_string())?;
    check(ours.is_valid(), format!("hsm-signers' verifier: {ours:?}"))?;
    Ok(Completion::Completed)
}

fn forgeries(b: &Backend, key: &str) -> Outcome {
    let signer = match signer_for(b, key, KeySpec::EcP256, None)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let token = rt().block_on(jose::sign_jwt(&signer, &claims())).map_err(|e| e.to_string())?;
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = B64.encode(serde_json::to_vec(&json!({"sub": "mallory", "exp": 4_000_000_000u64}))?);
    let hs256 = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let none = B64.encode(br#"{"alg":"none"}"#);
    let other_kid = B64.encode(br#"{"alg":"ES256","kid":"someone-else@1"}"#);
    let missing_version = B64.encode(format!(r#"{{"alg":"ES256","kid":"{key}@no-such-version"}}"#));
    let expired = rt()
        .block_on(jose::sign_jwt(&signer, &json!({"sub": "alice", "exp": 1_000_000})))
        .map_err(|e| e.to_string())?;
    let cases = [
        ("changed payload", format!("{}.{forged_claims}.{}", parts[0], parts[2])),
        ("HS256 with the public key", format!("{hs256}.{}.{}", parts[1], parts[2])),
        ("alg none", format!("{none}.{}.", parts[1])),
        ("another key's kid", format!("{other_kid}.{}.{}", parts[1], parts[2])),
        ("a kid version that does not exist", format!("{missing_version}.{}.{}", parts[1], parts[2])),
        ("truncated signature", format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20])),
        ("not a JWS", "garbage".to_owned()),
        ("expired", expired),
    ];
    for (what, t) in cases {
        let v = rt()
            .block_on(jose::verify_jwt(b.provider.as_ref(), &key.into(), &t, 0))
            .map_err(|e| format!("{what}: {e}"))?;
        check(matches!(v, Verification::Invalid(_)), format!("{what} accepted: {v:?}"))?;
    }
    let v = rt()
        .block_on(jose::verify_jwt(b.provider.as_ref(), &key.into(), &token, 0))
        .map_err(|e| e.to_string())?;
    check(v.is_valid(), "the genuine token still verifies")?;
    Ok(Completion::Completed)
}

fn jwks_after_rotation(b: &Backend, key: &str) -> Outcome {
    let signer = match signer_for(b, key, KeySpec::EcP256, None)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    if !b.provider.capabilities().spec(KeySpec::EcP256).is_some_and(|c| c.rotation) {
        return Ok(Completion::ignored_with(format!("{} does not rotate EC keys", b.label)));
    }
    let old = rt().block_on(jose::sign_jwt(&signer, &claims())).map_err(|e| e.to_string())?;
    rt().block_on(b.provider.rotate_key(&key.into())).map_err(|e| e.to_string())?;
    let jwks = rt()
        .block_on(jose::jwks(b.provider.as_ref(), key, Some(SignatureAlgorithm::EcdsaSha256)))
        .map_err(|e| e.to_string())?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks)?;
    check(set.keys.len() == 2, format!("{} keys after one rotation", set.keys.len()))?;
    // The old token's kid finds the old key in the set, and it verifies there.
    let kid = jsonwebtoken::decode_header(&old)?.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or(format!("kid {kid} not in the set"))?;
    let dk = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    jsonwebtoken::decode::<Value>(&old, &dk, &jsonwebtoken::Validation::new(A::ES256))?;
    // And our verifier uses the kid's version, not the current one.
    let v = rt()
        .block_on(jose::verify_jwt(b.provider.as_ref(), &key.into(), &old, 0))
        .map_err(|e| e.to_string())?;
    check(v.is_valid(), format!("old token after rotation: {v:?}"))?;
    Ok(Completion::Completed)
}
