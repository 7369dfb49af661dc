//! KeySigner, its RustCrypto traits and the blocking wrapper, checked with RustCrypto's
//! verifying keys (independent of every provider).

use std::sync::Arc;

use hsm_core::{Error, KeySpec, KeyUsage, SignatureAlgorithm, UnusableReason};
use hsm_signers::signature::{AsyncSigner, Keypair, Signer};
use hsm_signers::{BlockingSigner, DerSignature, FixedSignature, KeySigner};
use libtest_mimic::{Completion, Failed, Trial};

use crate::{Backend, Case, Outcome, check, create, rt};

pub(crate) const CASES: &[(&str, Case)] = &[
    ("p256", |b, k| signs(b, k, KeySpec::EcP256, None)),
    ("p384", |b, k| signs(b, k, KeySpec::EcP384, None)),
    ("p521", |b, k| signs(b, k, KeySpec::EcP521, None)),
    ("secp256k1", |b, k| signs(b, k, KeySpec::EcSecp256k1, None)),
    ("ed25519", |b, k| signs(b, k, KeySpec::Ed25519, None)),
    ("rsa_default", |b, k| signs(b, k, KeySpec::Rsa2048, None)),
    ("rsa_pkcs1", |b, k| signs(b, k, KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPkcs1v15Sha256))),
    ("rsa_pss384", |b, k| signs(b, k, KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPssSha384))),
    ("refuses_encryption_key", refuses_encryption_key),
    ("refuses_mismatched_alg", refuses_mismatched_algorithm),
    ("blocking_signer", blocking_signer),
    ("pinned_after_rotation", pinned_after_rotation),
];

/// Tests that need one provider only.
pub(crate) fn standalone() -> Vec<Trial> {
    vec![
        Trial::test("local::blocking_on_current_thread_runtime_is_an_error", current_thread_is_refused),
        Trial::test("local::x509_on_current_thread_runtime", crate::x509::on_current_thread_runtime),
        Trial::test("local::ssh_agent_survives_bad_requests", crate::ssh::agent_survives_bad_requests),
    ]
}

/// Verifies `sig` over `msg` with RustCrypto (public-key operations only).
pub(crate) fn verify(
    spec: KeySpec,
    alg: SignatureAlgorithm,
    spki: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), Failed> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    use p256::ecdsa::signature::Verifier as _;
    let bad = |e: &dyn std::fmt::Display| Failed::from(format!("{spec}/{alg}: {e}"));
    match (spec, alg) {
        (KeySpec::EcP256, _) => {
            let k = p256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            k.verify(msg, &p256::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?).map_err(|e| bad(&e))
        }
        (KeySpec::EcP384, _) => {
            let k = p384::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            k.verify(msg, &p384::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?).map_err(|e| bad(&e))
        }
        (KeySpec::EcP521, _) => {
            let public = p521::PublicKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let k = p521::ecdsa::VerifyingKey::from_affine(*public.as_affine()).map_err(|e| bad(&e))?;
            k.verify(msg, &p521::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?).map_err(|e| bad(&e))
        }
        (KeySpec::EcSecp256k1, _) => {
            let k = k256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let s = k256::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
            // k256 rejects high-S signatures: this is the low-S check.
            check(s.normalize_s().is_none(), "secp256k1 signature is not low-S")?;
            k.verify(msg, &s).map_err(|e| bad(&e))
        }
        (KeySpec::Ed25519, _) => {
            let k = ed25519_dalek::VerifyingKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|e| bad(&e))?;
            k.verify(msg, &s).map_err(|e| bad(&e))
        }
        (_, alg) => {
            let k = rsa::RsaPublicKey::from_public_key_der(spki).map_err(|e| bad(&e))?;
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| bad(&e))?;
            let ps = rsa::pss::Signature::try_from(sig).map_err(|e| bad(&e))?;
            match alg {
                SignatureAlgorithm::RsaPkcs1v15Sha256 => {
                    rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k).verify(msg, &s).map_err(|e| bad(&e))
                }
                SignatureAlgorithm::RsaPkcs1v15Sha384 => {
                    rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k).verify(msg, &s).map_err(|e| bad(&e))
                }
                SignatureAlgorithm::RsaPkcs1v15Sha512 => {
                    rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(k).verify(msg, &s).map_err(|e| bad(&e))
                }
                SignatureAlgorithm::RsaPssSha256 => {
                    rsa::pss::VerifyingKey::<sha2::Sha256>::new(k).verify(msg, &ps).map_err(|e| bad(&e))
                }
                SignatureAlgorithm::RsaPssSha384 => {
                    rsa::pss::VerifyingKey::<sha2::Sha384>::new(k).verify(msg, &ps).map_err(|e| bad(&e))
                }
                SignatureAlgorithm::RsaPssSha512 => {
                    rsa::pss::VerifyingKey::<sha2::Sha512>::new(k).verify(msg, &ps).map_err(|e| bad(&e))
                }
                other => Err(format!("no RustCrypto check for {other}").into()),
            }
        }
    }
}

/// A signer for a new key, or why the provider cannot have or sign with it.
pub(crate) fn signer_for(
    b: &Backend,
    key: &str,
    spec: KeySpec,
    alg: Option<SignatureAlgorithm>,
) -> Result<Result<KeySigner, Completion>, Failed> {
    if let Some(why) = create(b, key, spec, KeyUsage::SignVerify)? {
        return Ok(Err(Completion::ignored_with(why)));
    }
    if let Some(a) = alg.filter(|a| !b.provider.capabilities().supports_signature(spec, *a)) {
        // Cloud KMS fixes one algorithm per key: the signer must refuse the others.
        let e = rt().block_on(KeySigner::with_algorithm(b.provider.clone(), key, a)).unwrap_err();
        check(matches!(e, Error::Unsupported { .. }), format!("undeclared {a} on {spec}: {e}"))?;
        return Ok(Err(Completion::ignored_with(format!(
            "{} does not declare {a} for {spec} (refusal checked)",
            b.label
        ))));
    }
    let s = match alg {
        Some(a) => rt().block_on(KeySigner::with_algorithm(b.provider.clone(), key, a)),
        None => rt().block_on(KeySigner::new(b.provider.clone(), key)),
    };
    Ok(Ok(s.map_err(|e| format!("signer for {key}: {e}"))?))
}

fn signs(b: &Backend, key: &str, spec: KeySpec, alg: Option<SignatureAlgorithm>) -> Outcome {
    let signer = match signer_for(b, key, spec, alg)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    if let Some(a) = alg {
        check(signer.algorithm() == a, format!("{} instead of {a}", signer.algorithm()))?;
    }
    check(signer.algorithm().fits(spec), "algorithm fits the spec")?;
    let spki = signer.verifying_key().spki_der().to_vec();
    // Several messages: secp256k1's low-S normalisation is hit about half the time.
    for i in 0..8u8 {
        let msg = [b"message ".as_slice(), &[i]].concat();
        let der = rt()
            .block_on(AsyncSigner::<DerSignature>::sign_async(&signer, &msg))
            .map_err(|e| format!("sign: {e}"))?;
        verify(spec, signer.algorithm(), &spki, &msg, der.as_bytes())?;
        let fixed = rt()
            .block_on(AsyncSigner::<FixedSignature>::sign_async(&signer, &msg))
            .map_err(|e| format!("sign: {e}"))?;
        match spec {
            KeySpec::EcP256 => {
                let s = p256::ecdsa::Signature::from_slice(fixed.as_bytes()).map_err(|e| e.to_string())?;
                verify(spec, signer.algorithm(), &spki, &msg, s.to_der().as_bytes())?;
            }
            KeySpec::EcSecp256k1 => {
                check(fixed.as_bytes().len() == 64, "secp256k1 fixed signature is 64 bytes")?;
                let s = k256::ecdsa::Signature::from_slice(fixed.as_bytes()).map_err(|e| e.to_string())?;
                verify(spec, signer.algorithm(), &spki, &msg, s.to_der().as_bytes())?;
            }
            KeySpec::EcP384 => check(fixed.as_bytes().len() == 96, "P-384 fixed signature is 96 bytes")?,
            KeySpec::EcP521 => check(fixed.as_bytes().len() == 132, "P-521 fixed signature is 132 bytes")?,
            _ => verify(spec, signer.algorithm(), &spki, &msg, fixed.as_bytes())?,
        }
    }
    // A signature over another message does not verify.
    let der =
        rt().block_on(AsyncSigner::<DerSignature>::sign_async(&signer, b"one")).map_err(|e| e.to_string())?;
    check(
        verify(spec, signer.algorithm(), &spki, b"two", der.as_bytes()).is_err(),
        "verifies over another message",
    )?;
    Ok(Completion::Completed)
}

fn refuses_encryption_key(b: &Backend, key: &str) -> Outcome {
    let spec = [KeySpec::Rsa2048, KeySpec::Aes256]
        .into_iter()
        .find(|s| b.provider.capabilities().supports_key(*s, KeyUsage::EncryptDecrypt));
    let Some(spec) = spec else { return Ok(Completion::ignored_with("no encryption keys on this provider")) };
    create(b, key, spec, KeyUsage::EncryptDecrypt)?;
    let e = rt().block_on(KeySigner::new(b.provider.clone(), key)).unwrap_err();
    check(
        matches!(
            &e,
            Error::KeyUnusable {
                reason: UnusableReason::WrongUsage {
                    has: KeyUsage::EncryptDecrypt,
                    needs: KeyUsage::SignVerify
                },
                ..
            }
        ),
        format!("{e:?}"),
    )?;
    check(e.to_string().contains("usage is 'encrypt'"), e.to_string())?;
    Ok(Completion::Completed)
}

fn refuses_mismatched_algorithm(b: &Backend, key: &str) -> Outcome {
    if let Some(why) = create(b, key, KeySpec::EcP256, KeyUsage::SignVerify)? {
        return Ok(Completion::ignored_with(why));
    }
    let e = rt()
        .block_on(KeySigner::with_algorithm(b.provider.clone(), key, SignatureAlgorithm::EcdsaSha384))
        .unwrap_err();
    check(matches!(e, Error::InvalidInput { .. }) && e.to_string().contains("ecdsa-sha256"), e.to_string())?;
    let e = rt().block_on(KeySigner::new(b.provider.clone(), "no-such-key-anywhere")).unwrap_err();
    check(matches!(e, Error::NotFound { .. }), e.to_string())?;
    Ok(Completion::Completed)
}

fn blocking_signer(b: &Backend, key: &str) -> Outcome {
    let signer = match signer_for(b, key, KeySpec::EcP256, None)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let spki = signer.public_key().spki_der.clone();
    let blocking = BlockingSigner::new(signer, rt().handle().clone());
    // From a plain thread (this one: libtest-mimic's, outside the runtime).
    let sig: DerSignature = blocking.try_sign(b"plain thread").map_err(|e| e.to_string())?;
    verify(KeySpec::EcP256, SignatureAlgorithm::EcdsaSha256, &spki, b"plain thread", sig.as_bytes())?;
    // From a task on the multi-thread runtime: block_in_place, and other tasks keep running.
    let b2 = blocking.clone();
    let (sig, ticks) = rt().block_on(async move {
        let ticker = tokio::spawn(async {
            let mut n = 0u32;
            for _ in 0..5 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                n += 1;
            }
            n
        });
        let sig: Result<DerSignature, _> =
            tokio::spawn(async move { b2.try_sign(b"in a task") }).await.expect("task");
        (sig, ticker.await.expect("ticker"))
    });
    let sig = sig.map_err(|e| e.to_string())?;
    check(ticks == 5, "the runtime kept running other tasks")?;
    verify(KeySpec::EcP256, SignatureAlgorithm::EcdsaSha256, &spki, b"in a task", sig.as_bytes())?;
    check(blocking.verifying_key().public_key() == blocking.inner().public_key(), "Keypair of the wrapper")?;
    Ok(Completion::Completed)
}

fn pinned_after_rotation(b: &Backend, key: &str) -> Outcome {
    let signer = match signer_for(b, key, KeySpec::EcP256, None)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let caps = b.provider.capabilities().spec(KeySpec::EcP256).map(|c| c.rotation).unwrap_or(false);
    if !caps {
        return Ok(Completion::ignored_with(format!("{} does not rotate EC keys", b.label)));
    }
    rt().block_on(b.provider.rotate_key(&key.into())).map_err(|e| e.to_string())?;
    let spki = signer.public_key().spki_der.clone();
    let sig = rt()
        .block_on(AsyncSigner::<DerSignature>::sign_async(&signer, b"after rotation"))
        .map_err(|e| e.to_string())?;
    verify(KeySpec::EcP256, SignatureAlgorithm::EcdsaSha256, &spki, b"after rotation", sig.as_bytes())?;
    let fresh = rt().block_on(KeySigner::new(b.provider.clone(), key)).map_err(|e| e.to_string())?;
    check(fresh.key_ref().version() != signer.key_ref().version(), "a new signer uses the new version")?;
    check(fresh.public_key().spki_der != spki, "the new version has a new public key")?;
    Ok(Completion::Completed)
}

fn current_thread_is_refused() -> Result<(), Failed> {
    let provider: Arc<dyn hsm_core::Provider> = Arc::new(hsm_local::LocalProvider::in_memory());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let signer = rt.block_on(async {
        provider.create_key(hsm_core::CreateKey::new("ct", KeySpec::Ed25519)).await?;
        KeySigner::new(provider.clone(), "ct").await
    })?;
    let blocking = BlockingSigner::new(signer, rt.handle().clone());
    let out: Result<DerSignature, _> = rt.block_on(async { blocking.try_sign(b"x") });
    let e = out.expect_err("a current-thread runtime must be refused, not deadlock");
    let src = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
    check(src.contains("current-thread"), format!("error names the cause: {e} / {src}"))
}
