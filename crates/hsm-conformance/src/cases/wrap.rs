//! `wrap::*`: wrap/unwrap round trips, and RSA-OAEP wraps made by an independent implementation.

use std::sync::Arc;

use hsm_core::{
    Capabilities, EncryptionAlgorithm, KeyFamily, KeyRef, KeySpec, KeyUsage, Provider, WrapAlgorithm,
    WrappedKey,
};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::independent;
use crate::support::{CaseResult, During as _, check_record, contains, data, ensure};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    for (spec, alg) in super::wrap_pairs() {
        let req = Requirement::Wrap { spec, alg };
        out.push(Case::new(format!("wrap::roundtrip::{spec}::{alg}"), req.clone(), move |p, c| {
            roundtrip(p, c, spec, alg)
        }));
        if spec.family() == KeyFamily::Rsa && alg == WrapAlgorithm::RsaOaepSha256 {
            out.push(Case::new(format!("wrap::independent::{spec}::{alg}"), req, move |p, c| {
                independent(p, c, spec)
            }));
        }
    }
}

/// Key-material lengths each algorithm must wrap.
pub(crate) fn material_lengths(alg: WrapAlgorithm) -> &'static [usize] {
    match alg {
        WrapAlgorithm::AesKeyWrap => &[16, 24, 32, 64],
        WrapAlgorithm::AesKeyWrapPad => &[1, 7, 20, 32, 65],
        _ => &[16, 20, 32],
    }
}

async fn roundtrip(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: WrapAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::WrapUnwrap, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    for len in material_lengths(alg) {
        let material = data("key material", *len);
        let w = p.wrap_key(&r, alg, &material).await.during(format!("wrap_key of {len} bytes"))?;
        check_record("wrapped key", w.key(), w.version(), &w.algorithm(), &key, &key.version, &alg)?;
        ensure!(!contains(w.as_bytes(), &material) || *len < 8, "the wrapped key contains the key material");
        let back = p.unwrap_key(&r, &w).await.during(format!("unwrap_key of {len} bytes"))?;
        ensure!(*back == material, "unwrap of {len} bytes gave different key material");
        let parsed = WrappedKey::from_bytes(&w.to_bytes()).during("WrappedKey::from_bytes(to_bytes())")?;
        ensure!(parsed == w, "the wrapped key changed through to_bytes/from_bytes");
        let back =
            p.unwrap_key(&parsed.key_ref(), &parsed).await.during("unwrap through the pinned version")?;
        ensure!(*back == material, "unwrap through the pinned version gave different key material");
    }
    Ok(())
}

/// Key material wrapped by the independent `rsa` crate (OAEP-SHA-256) unwraps.
async fn independent(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::WrapUnwrap, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let pk = p.public_key(&r).await.during("public_key")?;
    for len in [16, 32] {
        let material = data("independent wrap", len);
        let bytes =
            independent::rsa_encrypt(spec, EncryptionAlgorithm::RsaOaepSha256, &pk.spki_der, &material)?;
        let w = WrappedKey::new(&key.name, &key.version, WrapAlgorithm::RsaOaepSha256, bytes);
        let back =
            p.unwrap_key(&r, &w).await.during(format!("unwrap of {len} bytes wrapped independently"))?;
        ensure!(*back == material, "key material wrapped independently unwrapped to different bytes");
    }
    Ok(())
}
