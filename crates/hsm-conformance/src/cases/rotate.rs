//! `rotate::<usage>::<spec>`: after `rotate_key`, what the old version made still opens,
//! what the new version makes records the new version, and the key material really changed.

use std::sync::Arc;

use hsm_core::{Capabilities, CreateKey, KeyRef, KeySpec, KeyUsage, Provider, SignInput};

use crate::case::{Case, Requirement};
use crate::ctx::Ctx;
use crate::independent;
use crate::support::{self, Artifact, CaseResult, During as _, ensure, expect_rejected};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    for (spec, usage) in super::key_pairs() {
        out.push(Case::new(
            format!("rotate::{usage}::{spec}"),
            Requirement::Rotation { spec, usage },
            move |p, c| rotation(p, c, spec, usage),
        ));
    }
}

async fn rotation(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let alg = support::alg_for(ctx.capabilities(), spec, usage)?;
    let k1 = ctx
        .create_key(CreateKey::new(ctx.unique_name("rot"), spec).usage(usage))
        .await
        .during("create_key")?;
    let r = KeyRef::new(&k1.name);
    let old =
        Artifact::make(&*p, &r, alg, "before rotation").await.during(format!("{alg} before rotation"))?;
    ensure!(
        old.version() == k1.version,
        "the {} records version '{}', the key's is '{}'",
        old.what(),
        old.version(),
        k1.version
    );
    let old_pk = match support::asymmetric(spec) {
        true => Some(p.public_key(&r).await.during("public_key before rotation")?),
        false => None,
    };

    let k2 = p.rotate_key(&r).await.during("rotate_key")?;
    ensure!(k2.name == k1.name, "rotate_key returned key '{}'", k2.name);
    ensure!(k2.version != k1.version, "rotate_key kept the version '{}'", k1.version);
    ensure!(
        k2.versions.contains(&k1.version) && k2.versions.contains(&k2.version),
        "after rotation versions {:?} should hold the old '{}' and the new '{}'",
        k2.versions,
        k1.version,
        k2.version
    );
    let got = p.get_key(&r).await.during("get_key after rotation")?;
    ensure!(
        got.version == k2.version,
        "get_key says current version '{}', rotate_key said '{}'",
        got.version,
        k2.version
    );
    p.get_key(&r.clone().with_version(&k1.version)).await.during("get_key of the old version")?;

    let new = Artifact::make(&*p, &r, alg, "after rotation").await.during(format!("{alg} after rotation"))?;
    ensure!(
        new.version() == k2.version,
        "a {} made after rotation records version '{}', but the current version is '{}'",
        new.what(),
        new.version(),
        k2.version
    );
    old.expect_opens(&*p, &r, "after rotation").await?;
    new.expect_opens(&*p, &r, "after rotation").await?;

    // The new version has new key material.
    if let Some(old_pk) = old_pk {
        let pinned = p
            .public_key(&r.clone().with_version(&k1.version))
            .await
            .during("public_key of the old version")?;
        ensure!(pinned.spki_der == old_pk.spki_der, "the old version's public key changed after rotation");
        let current = p.public_key(&r).await.during("public_key after rotation")?;
        ensure!(current.spki_der != old_pk.spki_der, "rotation kept the same key pair");
        ensure!(
            current.version == k2.version,
            "public_key reports version '{}' after rotation",
            current.version
        );
        if let Artifact::Signature(sig, msg) = &old {
            independent::verify(spec, sig.algorithm(), &old_pk.spki_der, msg, sig.as_bytes())?;
        }
    }
    let v2 = r.clone().with_version(&k2.version);
    match &old {
        Artifact::Signature(sig, msg) => expect_rejected(
            "verify of an old-version signature against the new version",
            p.verify(&v2, sig.algorithm(), SignInput::Message(msg), sig.as_bytes()).await,
            &[],
        )?,
        Artifact::Tag(tag, msg) => expect_rejected(
            "verify_mac of an old-version tag against the new version",
            p.verify_mac(&v2, tag.algorithm(), msg, tag.as_bytes()).await,
            &[],
        )?,
        _ => {}
    }

    // A second rotation: three versions, all usable.
    let k3 = p.rotate_key(&r).await.during("second rotate_key")?;
    ensure!(
        k3.version != k1.version && k3.version != k2.version,
        "the second rotation reused version '{}'",
        k3.version
    );
    old.expect_opens(&*p, &r, "after two rotations").await?;
    new.expect_opens(&*p, &r, "after two rotations").await?;
    Ok(())
}
