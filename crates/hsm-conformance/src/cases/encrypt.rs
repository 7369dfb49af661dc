//! `encrypt::*`: round trips for every declared (spec, algorithm), with and without AAD,
//! empty and maximum-length plaintexts, and RSA ciphertexts made by an independent
//! implementation.

use std::sync::Arc;

use hsm_core::{
    Capabilities, Ciphertext, EncryptionAlgorithm, KeyFamily, KeyRef, KeySpec, KeyUsage, Provider,
};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::independent;
use crate::support::{CaseResult, During as _, check_record, contains, data, ensure};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    for (spec, alg) in super::encryption_pairs() {
        let req = Requirement::Encryption { spec, alg };
        out.push(Case::new(format!("encrypt::roundtrip::{spec}::{alg}"), req.clone(), move |p, c| {
            roundtrip(p, c, spec, alg, "roundtrip", 100)
        }));
        out.push(Case::new(format!("encrypt::empty::{spec}::{alg}"), req.clone(), move |p, c| {
            roundtrip(p, c, spec, alg, "empty", 0)
        }));
        out.push(Case::new(format!("encrypt::max-length::{spec}::{alg}"), req.clone(), move |p, c| {
            max_length(p, c, spec, alg)
        }));
        if alg == EncryptionAlgorithm::AesGcm {
            out.push(Case::new(format!("encrypt::aad::{spec}::{alg}"), req.clone(), move |p, c| {
                aad(p, c, spec)
            }));
        }
        if spec.family() == KeyFamily::Rsa {
            out.push(Case::new(format!("encrypt::independent::{spec}::{alg}"), req, move |p, c| {
                independent(p, c, spec, alg)
            }));
        }
    }
}

/// The largest plaintext the kit encrypts: the declared or algorithmic limit, else 64 KiB.
pub(crate) fn max_len(caps: &Capabilities, spec: KeySpec, alg: EncryptionAlgorithm) -> usize {
    caps.max_plaintext_len(spec, alg).unwrap_or(64 * 1024)
}

async fn roundtrip(
    p: Arc<dyn Provider>,
    ctx: Ctx,
    spec: KeySpec,
    alg: EncryptionAlgorithm,
    tag: &'static str,
    len: usize,
) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let pt = data(tag, len.min(max_len(ctx.capabilities(), spec, alg)));
    let ct = p.encrypt(&r, alg, &pt, None).await.during(format!("encrypt of {} bytes", pt.len()))?;
    check_record("ciphertext", ct.key(), ct.version(), &ct.algorithm(), &key, &key.version, &alg)?;
    // (Skipped for multi-megabyte inputs, where a search would dominate the run time.)
    ensure!(pt.len() > 1 << 20 || !contains(ct.as_bytes(), &pt), "the ciphertext contains the plaintext");
    let back = p.decrypt(&r, &ct, None).await.during("decrypt")?;
    ensure!(*back == pt, "decrypt gave {} bytes that differ from the {} encrypted", back.len(), pt.len());
    // The stable encoding round-trips and decrypts through the version it records.
    let parsed = Ciphertext::from_bytes(&ct.to_bytes()).during("Ciphertext::from_bytes(to_bytes())")?;
    ensure!(parsed == ct, "the ciphertext changed through to_bytes/from_bytes");
    let back =
        p.decrypt(&parsed.key_ref(), &parsed, None).await.during("decrypt through the pinned version")?;
    ensure!(*back == pt, "decrypt through the pinned version gave different bytes");
    // Encryption is randomised: the same plaintext twice never gives the same ciphertext.
    let again = p.encrypt(&r, alg, &pt, None).await.during("second encrypt")?;
    ensure!(
        again.as_bytes() != ct.as_bytes(),
        "encrypting the same plaintext twice gave identical ciphertexts (nonce or padding reuse)"
    );
    Ok(())
}

async fn max_length(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: EncryptionAlgorithm) -> CaseResult {
    let n = max_len(ctx.capabilities(), spec, alg);
    roundtrip(p, ctx, spec, alg, "max-length", n).await
}

/// AES-GCM with AAD round-trips (the AAD-mismatch contracts are `errors::wrong-aad::*`).
async fn aad(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec) -> CaseResult {
    let alg = EncryptionAlgorithm::AesGcm;
    let key = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    for (pt, aad) in [(data("aad", 64), data("context", 24)), (Vec::new(), data("context only", 9))] {
        let ct = p.encrypt(&r, alg, &pt, Some(&aad)).await.during("encrypt with AAD")?;
        check_record("ciphertext", ct.key(), ct.version(), &ct.algorithm(), &key, &key.version, &alg)?;
        let back = p.decrypt(&r, &ct, Some(&aad)).await.during("decrypt with the same AAD")?;
        ensure!(*back == pt, "decrypt with the same AAD gave different bytes");
    }
    Ok(())
}

/// Ciphertexts made by the independent `rsa` crate over `public_key()` decrypt.
async fn independent(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: EncryptionAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let pk = p.public_key(&r).await.during("public_key")?;
    for len in [1, 32, max_len(ctx.capabilities(), spec, alg)] {
        let pt = data("independent", len);
        let bytes = independent::rsa_encrypt(spec, alg, &pk.spki_der, &pt)?;
        let ct = Ciphertext::new(&key.name, &key.version, alg, bytes);
        let back = p
            .decrypt(&r, &ct, None)
            .await
            .during(format!("decrypt of an independent {alg} ciphertext of {len} bytes"))?;
        ensure!(*back == pt, "an independent {alg} ciphertext of {len} bytes decrypted to different bytes");
    }
    Ok(())
}
