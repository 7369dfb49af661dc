//! `sign::*`: sign/verify round trips over messages and digests, with every signature also
//! checked by an independent verifier over the key's `public_key()`.

use std::sync::Arc;

use hsm_core::{Capabilities, KeyRef, KeySpec, KeyUsage, Provider, SignInput, Signature, SignatureAlgorithm};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::independent;
use crate::support::{CaseResult, During as _, check_record, data, digest, ensure, expect_true};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    for (spec, alg) in super::signature_pairs() {
        let req = Requirement::Signature { spec, alg };
        out.push(Case::new(format!("sign::roundtrip::{spec}::{alg}"), req.clone(), move |p, c| {
            roundtrip(p, c, spec, alg)
        }));
        out.push(Case::new(format!("sign::independent::{spec}::{alg}"), req, move |p, c| {
            independent(p, c, spec, alg)
        }));
        if alg.digest().is_some() {
            out.push(Case::new(
                format!("sign::digest::{spec}::{alg}"),
                Requirement::DigestSigning { spec, alg },
                move |p, c| digest_input(p, c, spec, alg),
            ));
        }
    }
}

async fn roundtrip(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: SignatureAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::SignVerify, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let msg = data("sign roundtrip", 200);
    let sig = p.sign(&r, alg, SignInput::Message(&msg)).await.during("sign")?;
    check_record("signature", sig.key(), sig.version(), &sig.algorithm(), &key, &key.version, &alg)?;
    if let Some(n) = alg.fixed_signature_len(spec) {
        ensure!(
            sig.as_bytes().len() == n,
            "a {alg} signature from a {spec} key should be {n} bytes, not {}",
            sig.as_bytes().len()
        );
    }
    expect_true(
        "verify of a fresh signature",
        p.verify(&r, alg, SignInput::Message(&msg), sig.as_bytes()).await,
    )?;
    let parsed = Signature::from_bytes(&sig.to_bytes()).during("Signature::from_bytes(to_bytes())")?;
    ensure!(parsed == sig, "the signature changed through to_bytes/from_bytes");
    expect_true(
        "verify through the pinned version the signature records",
        p.verify(&parsed.key_ref(), parsed.algorithm(), SignInput::Message(&msg), parsed.as_bytes()).await,
    )?;
    Ok(())
}

/// Signatures over empty, short and long messages verify with an independent verifier.
async fn independent(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: SignatureAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::SignVerify, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let pk = p.public_key(&r).await.during("public_key")?;
    for len in [0, 100, 10_000] {
        let msg = data("independent", len);
        let sig = p.sign(&r, alg, SignInput::Message(&msg)).await.during(format!("sign of {len} bytes"))?;
        independent::verify(spec, alg, &pk.spki_der, &msg, sig.as_bytes())
            .map_err(|e| format!("signature over {len} bytes: {e}"))?;
    }
    Ok(())
}

/// Signing a digest gives a signature over the message (checked by the provider either
/// way and independently), and message signatures verify against the digest.
async fn digest_input(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: SignatureAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::SignVerify, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let pk = p.public_key(&r).await.during("public_key")?;
    let hash = alg.digest().ok_or("algorithm has no digest")?;
    let msg = data("digest", 300);
    let d = digest(hash, &msg);
    let sig = p.sign(&r, alg, SignInput::Digest(&d)).await.during("sign of a digest")?;
    check_record("signature", sig.key(), sig.version(), &sig.algorithm(), &key, &key.version, &alg)?;
    expect_true(
        "verify (digest) of a digest signature",
        p.verify(&r, alg, SignInput::Digest(&d), sig.as_bytes()).await,
    )?;
    expect_true(
        "verify (message) of a digest signature",
        p.verify(&r, alg, SignInput::Message(&msg), sig.as_bytes()).await,
    )?;
    independent::verify(spec, alg, &pk.spki_der, &msg, sig.as_bytes())
        .map_err(|e| format!("a signature of the {hash} digest is not a signature of the message: {e}"))?;
    let msig = p.sign(&r, alg, SignInput::Message(&msg)).await.during("sign of the message")?;
    expect_true(
        "verify (digest) of a message signature",
        p.verify(&r, alg, SignInput::Digest(&d), msig.as_bytes()).await,
    )?;
    Ok(())
}
