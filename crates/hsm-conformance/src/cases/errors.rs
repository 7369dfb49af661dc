//! `errors::*`: every error contract of the trait, with the error variant it must give.

use std::sync::Arc;

use hsm_core::{
    Capabilities, Ciphertext, CreateKey, EncryptionAlgorithm, KeyInfo, KeyRef, KeySpec, KeyState, KeyUsage,
    MacAlgorithm, MacTag, Provider, SignInput, SignatureAlgorithm, WrapAlgorithm, WrappedKey,
};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::support::{
    self, Alg, CaseResult, During as _, Kind, data, ensure, expect_err, expect_rejected, flipped,
};

pub(crate) fn add(out: &mut Vec<Case>, caps: &Capabilities) {
    use Requirement as R;
    out.push(Case::new("errors::not-found::key", R::Nothing, not_found_key));
    out.push(Case::new("errors::not-found::version", R::AnyKey(None), not_found_version));
    out.push(Case::new("errors::already-exists", R::AnyKey(None), already_exists));
    out.push(Case::new("errors::empty-name", R::AnyKey(None), empty_name));
    out.push(Case::new("errors::set-state-pending-deletion", R::AnyKey(None), set_state_pending));

    for (spec, usage) in super::key_pairs() {
        let req = R::Key { spec, usage };
        out.push(Case::new(format!("errors::wrong-usage::{spec}::{usage}"), req.clone(), move |p, c| {
            wrong_usage(p, c, spec, usage)
        }));
        out.push(Case::new(format!("errors::misfit::{spec}::{usage}"), req, move |p, c| {
            misfit(p, c, spec, usage)
        }));
        // Gaps the provider leaves must be Unsupported.
        if !caps.supports_key(spec, usage) {
            out.push(Case::new(
                format!("errors::undeclared-key::{spec}::{usage}"),
                R::Nothing,
                move |p, c| undeclared_key(p, c, spec, usage),
            ));
        }
    }
    for (spec, c) in &caps.specs {
        let spec = *spec;
        if !c.rotation
            && let Some(usage) = c.usages.first().copied()
        {
            out.push(Case::new(format!("errors::undeclared-rotation::{spec}"), R::Nothing, move |p, c| {
                undeclared_rotation(p, c, spec, usage)
            }));
        }
    }

    for (spec, alg) in super::encryption_pairs() {
        let req = R::Encryption { spec, alg };
        out.push(Case::new(format!("errors::tampered::{spec}::{alg}"), req.clone(), move |p, c| {
            tampered(p, c, spec, alg)
        }));
        out.push(Case::new(
            format!("errors::foreign-ciphertext::{spec}::{alg}"),
            req.clone(),
            move |p, c| foreign_ciphertext(p, c, spec, alg),
        ));
        if alg == EncryptionAlgorithm::AesGcm {
            out.push(Case::new(format!("errors::wrong-aad::{spec}::{alg}"), req.clone(), move |p, c| {
                wrong_aad(p, c, spec)
            }));
        } else {
            out.push(Case::new(format!("errors::aad-rejected::{spec}::{alg}"), req.clone(), move |p, c| {
                aad_rejected(p, c, spec, alg)
            }));
        }
        if caps.max_plaintext_len(spec, alg).is_some() {
            out.push(Case::new(format!("errors::oversized::{spec}::{alg}"), req, move |p, c| {
                oversized(p, c, spec, alg)
            }));
        }
        if caps.supports_key(spec, KeyUsage::EncryptDecrypt) && !caps.supports_encryption(spec, alg) {
            out.push(Case::new(format!("errors::undeclared::{spec}::{alg}"), R::Nothing, move |p, c| {
                undeclared(p, c, spec, KeyUsage::EncryptDecrypt, Alg::Enc(alg))
            }));
        }
    }
    for (spec, alg) in super::signature_pairs() {
        let req = R::Signature { spec, alg };
        out.push(Case::new(format!("errors::signature-length::{spec}::{alg}"), req.clone(), move |p, c| {
            signature_length(p, c, spec, alg)
        }));
        out.push(Case::new(format!("errors::verify-modified::{spec}::{alg}"), req.clone(), move |p, c| {
            verify_modified(p, c, spec, alg)
        }));
        let digest_req = if alg.digest().is_some() { R::DigestSigning { spec, alg } } else { req };
        out.push(Case::new(format!("errors::digest-input::{spec}::{alg}"), digest_req, move |p, c| {
            digest_input(p, c, spec, alg)
        }));
        if caps.supports_key(spec, KeyUsage::SignVerify) && !caps.supports_signature(spec, alg) {
            out.push(Case::new(format!("errors::undeclared::{spec}::{alg}"), R::Nothing, move |p, c| {
                undeclared(p, c, spec, KeyUsage::SignVerify, Alg::Sig(alg))
            }));
        }
        if alg.digest().is_some()
            && caps.supports_signature(spec, alg)
            && caps.supports_key(spec, KeyUsage::SignVerify)
            && !caps.spec(spec).is_some_and(|c| c.sign_digest)
        {
            out.push(Case::new(
                format!("errors::undeclared-digest::{spec}::{alg}"),
                R::Nothing,
                move |p, c| undeclared_digest(p, c, spec, alg),
            ));
        }
    }
    for (spec, alg) in super::wrap_pairs() {
        let req = R::Wrap { spec, alg };
        out.push(Case::new(format!("errors::tampered-wrap::{spec}::{alg}"), req.clone(), move |p, c| {
            tampered_wrap(p, c, spec, alg)
        }));
        out.push(Case::new(format!("errors::wrap-material::{spec}::{alg}"), req, move |p, c| {
            wrap_material(p, c, spec, alg)
        }));
        if caps.supports_key(spec, KeyUsage::WrapUnwrap) && !caps.supports_wrap(spec, alg) {
            out.push(Case::new(format!("errors::undeclared::{spec}::{alg}"), R::Nothing, move |p, c| {
                undeclared(p, c, spec, KeyUsage::WrapUnwrap, Alg::Wrap(alg))
            }));
        }
    }
    for (spec, alg) in super::mac_pairs() {
        out.push(Case::new(
            format!("errors::mac-length::{spec}::{alg}"),
            R::Mac { spec, alg },
            move |p, c| mac_length(p, c, spec, alg),
        ));
        if caps.supports_key(spec, KeyUsage::Mac) && !caps.supports_mac(spec, alg) {
            out.push(Case::new(format!("errors::undeclared::{spec}::{alg}"), R::Nothing, move |p, c| {
                undeclared(p, c, spec, KeyUsage::Mac, Alg::Mac(alg))
            }));
        }
    }
}

/// Every operation on a key that does not exist is NotFound.
async fn not_found_key(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let caps = ctx.capabilities();
    let name = ctx.unique_name("missing");
    let r = KeyRef::new(&name);
    let nf = &[Kind::NotFound];
    expect_err("get_key", p.get_key(&r).await, nf)?;
    expect_err("public_key", p.public_key(&r).await, nf)?;
    expect_err("rotate_key", p.rotate_key(&r).await, nf)?;
    expect_err("set_key_state(disabled)", p.set_key_state(&r, KeyState::Disabled).await, nf)?;
    expect_err("cancel_deletion", p.cancel_deletion(&r).await, nf)?;
    // The name is under this run's random prefix and get_key just said it does not
    // exist, so this can only touch a key the kit itself would have made.
    expect_err("schedule_deletion", p.schedule_deletion(&r, Some(caps.deletion.max_window)).await, nf)?;
    let declared = |usage| caps.specs.keys().find_map(|s| support::first_alg(caps, *s, usage));
    if let Some(Alg::Enc(a)) = declared(KeyUsage::EncryptDecrypt) {
        expect_err("encrypt", p.encrypt(&r, a, b"x", None).await, nf)?;
        let ct = Ciphertext::new(&name, "1", a, vec![0u8; 64]);
        expect_err("decrypt", p.decrypt(&r, &ct, None).await, nf)?;
    }
    if let Some(Alg::Sig(a)) = declared(KeyUsage::SignVerify) {
        expect_err("sign", p.sign(&r, a, SignInput::Message(b"x")).await, nf)?;
        expect_err("verify", p.verify(&r, a, SignInput::Message(b"x"), &[1u8; 64]).await, nf)?;
    }
    if let Some(Alg::Wrap(a)) = declared(KeyUsage::WrapUnwrap) {
        expect_err("wrap_key", p.wrap_key(&r, a, &[7u8; 32]).await, nf)?;
        let w = WrappedKey::new(&name, "1", a, vec![0u8; 40]);
        expect_err("unwrap_key", p.unwrap_key(&r, &w).await, nf)?;
    }
    if let Some(Alg::Mac(a)) = declared(KeyUsage::Mac) {
        expect_err("mac", p.mac(&r, a, b"x").await, nf)?;
        expect_err("verify_mac", p.verify_mac(&r, a, b"x", &vec![0u8; a.tag_len()]).await, nf)?;
    }
    Ok(())
}

/// A pinned version that does not exist is NotFound.
async fn not_found_version(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let (spec, usage) = support::cheapest_any(ctx.capabilities()).ok_or("no declared key")?;
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let r = KeyRef::new(&key.name).with_version("999999");
    expect_err("get_key of version 999999", p.get_key(&r).await, &[Kind::NotFound])?;
    if support::asymmetric(spec) {
        expect_err("public_key of version 999999", p.public_key(&r).await, &[Kind::NotFound])?;
    }
    Ok(())
}

/// Creating a taken name is AlreadyExists, whatever the spec, and leaves the key alone.
async fn already_exists(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let caps = ctx.capabilities();
    let (spec, usage) = support::cheapest_any(caps).ok_or("no declared key")?;
    let name = ctx.unique_name("dup");
    let first = ctx.create_key(CreateKey::new(&name, spec).usage(usage)).await.during("create_key")?;
    expect_err(
        "creating the same name again",
        ctx.create_key(CreateKey::new(&name, spec).usage(usage)).await,
        &[Kind::AlreadyExists],
    )?;
    if let Some((other, ou)) = support::second_spec(caps, spec) {
        expect_err(
            format!("creating the same name again as {other}"),
            ctx.create_key(CreateKey::new(&name, other).usage(ou)).await,
            &[Kind::AlreadyExists],
        )?;
    }
    let got = p.get_key(&KeyRef::new(&name)).await.during("get_key")?;
    ensure!(
        got.spec == first.spec && got.version == first.version,
        "a refused duplicate create changed the key (now {} version {})",
        got.spec,
        got.version
    );
    Ok(())
}

/// An empty key name is InvalidInput.
async fn empty_name(_p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let (spec, usage) = support::cheapest_any(ctx.capabilities()).ok_or("no declared key")?;
    // Straight to the provider: an empty name cannot be created, so nothing to track.
    let r = ctx.provider().create_key(CreateKey::new("", spec).usage(usage)).await;
    expect_err("create_key with an empty name", r, &[Kind::InvalidInput])?;
    Ok(())
}

/// set_key_state(PendingDeletion) is InvalidInput (deletion has its own call).
async fn set_state_pending(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let caps = ctx.capabilities();
    let (spec, usage) = support::cheapest_any(caps).ok_or("no declared key")?;
    let key = ctx
        .create_key(CreateKey::new(ctx.unique_name("pds"), spec).usage(usage))
        .await
        .during("create_key")?;
    let r = KeyRef::new(&key.name);
    expect_err(
        "set_key_state(pending-deletion)",
        p.set_key_state(&r, KeyState::PendingDeletion).await,
        &[Kind::InvalidInput],
    )?;
    let got = p.get_key(&r).await.during("get_key")?;
    ensure!(got.state == KeyState::Enabled, "a refused set_key_state left the key {}", got.state);
    Ok(())
}

/// For every operation kind other than the key's usage: an algorithm that fits the spec
/// if there is one (the refusal must then be KeyUnusable), else the family's natural one.
fn other_usage_algs(spec: KeySpec, usage: KeyUsage) -> Vec<(KeyUsage, Alg, bool)> {
    let enc = EncryptionAlgorithm::ALL.iter().copied().find(|a| a.fits(spec));
    let sig = SignatureAlgorithm::ALL.iter().copied().find(|a| a.fits(spec));
    let wrap = WrapAlgorithm::ALL.iter().copied().find(|a| a.fits(spec));
    let mac = MacAlgorithm::ALL.iter().copied().find(|a| a.fits(spec));
    let all = [
        (
            KeyUsage::EncryptDecrypt,
            enc.map(Alg::Enc).unwrap_or(Alg::Enc(EncryptionAlgorithm::AesGcm)),
            enc.is_some(),
        ),
        (
            KeyUsage::SignVerify,
            sig.map(Alg::Sig).unwrap_or(Alg::Sig(SignatureAlgorithm::EcdsaSha256)),
            sig.is_some(),
        ),
        (
            KeyUsage::WrapUnwrap,
            wrap.map(Alg::Wrap).unwrap_or(Alg::Wrap(WrapAlgorithm::AesKeyWrapPad)),
            wrap.is_some(),
        ),
        (KeyUsage::Mac, mac.map(Alg::Mac).unwrap_or(Alg::Mac(MacAlgorithm::HmacSha256)), mac.is_some()),
    ];
    all.into_iter().filter(|(u, _, _)| *u != usage).collect()
}

/// Runs the forward and the reverse operation of `alg` on `r`, returning both results'
/// errors (or a note that they succeeded) for the caller to judge.
async fn both_directions(
    p: &dyn Provider,
    key: &KeyInfo,
    alg: Alg,
) -> [(String, Result<(), hsm_core::Error>); 2] {
    let r = KeyRef::new(&key.name);
    let (name, version) = (key.name.as_str(), key.version.as_str());
    match alg {
        Alg::Enc(a) => [
            (format!("encrypt with {a}"), p.encrypt(&r, a, b"data", None).await.map(drop)),
            (
                format!("decrypt with {a}"),
                p.decrypt(&r, &Ciphertext::new(name, version, a, vec![0u8; 64]), None).await.map(drop),
            ),
        ],
        Alg::Sig(a) => [
            (format!("sign with {a}"), p.sign(&r, a, SignInput::Message(b"data")).await.map(drop)),
            (
                format!("verify with {a}"),
                p.verify(&r, a, SignInput::Message(b"data"), &[1u8; 64]).await.map(drop),
            ),
        ],
        Alg::Wrap(a) => [
            (format!("wrap_key with {a}"), p.wrap_key(&r, a, &[7u8; 32]).await.map(drop)),
            (
                format!("unwrap_key with {a}"),
                p.unwrap_key(&r, &WrappedKey::new(name, version, a, vec![0u8; 40])).await.map(drop),
            ),
        ],
        Alg::Mac(a) => [
            (format!("mac with {a}"), p.mac(&r, a, b"data").await.map(drop)),
            (
                format!("verify_mac with {a}"),
                p.verify_mac(&r, a, b"data", &vec![0u8; a.tag_len()]).await.map(drop),
            ),
        ],
    }
}

/// Using a key for an operation its usage does not allow is KeyUnusable.
async fn wrong_usage(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    for (other, alg, fits) in other_usage_algs(spec, usage) {
        let allowed: &[Kind] =
            if fits { &[Kind::KeyUnusable] } else { &[Kind::KeyUnusable, Kind::InvalidInput] };
        for (what, r) in both_directions(&*p, &key, alg).await {
            let e = expect_err(
                format!("{what} on a {spec} key with usage '{usage}' (an operation for '{other}')"),
                r,
                allowed,
            )?;
            if let hsm_core::Error::KeyUnusable { reason, .. } = &e {
                ensure!(
                    matches!(reason, hsm_core::UnusableReason::WrongUsage { .. }),
                    "{what} on a key with usage '{usage}' gave KeyUnusable for another reason: {reason}"
                );
            }
        }
    }
    Ok(())
}

/// Algorithms of the key's own usage that do not fit its spec are InvalidInput.
async fn misfit(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let algs: Vec<Alg> = match usage {
        KeyUsage::EncryptDecrypt => {
            EncryptionAlgorithm::ALL.iter().filter(|a| !a.fits(spec)).map(|a| Alg::Enc(*a)).collect()
        }
        KeyUsage::SignVerify => {
            SignatureAlgorithm::ALL.iter().filter(|a| !a.fits(spec)).map(|a| Alg::Sig(*a)).collect()
        }
        KeyUsage::WrapUnwrap => {
            WrapAlgorithm::ALL.iter().filter(|a| !a.fits(spec)).map(|a| Alg::Wrap(*a)).collect()
        }
        KeyUsage::Mac => MacAlgorithm::ALL.iter().filter(|a| !a.fits(spec)).map(|a| Alg::Mac(*a)).collect(),
        _ => Vec::new(),
    };
    for alg in algs {
        for (what, r) in both_directions(&*p, &key, alg).await {
            expect_err(
                format!("{what} on a {spec} key ({alg} does not fit {spec})"),
                r,
                &[Kind::InvalidInput],
            )?;
        }
    }
    Ok(())
}

/// Creating a (spec, usage) the capabilities do not declare is Unsupported.
async fn undeclared_key(_p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let r = ctx.create_key(CreateKey::new(ctx.unique_name("und"), spec).usage(usage)).await;
    expect_err(
        format!("create_key of an undeclared {spec} key with usage '{usage}'"),
        r,
        &[Kind::Unsupported],
    )?;
    Ok(())
}

/// rotate_key on a spec declared without rotation is Unsupported.
async fn undeclared_rotation(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let key = ctx
        .create_key(CreateKey::new(ctx.unique_name("nrot"), spec).usage(usage))
        .await
        .during("create_key")?;
    expect_err(
        format!("rotate_key of a {spec} key (declared without rotation)"),
        p.rotate_key(&KeyRef::new(&key.name)).await,
        &[Kind::Unsupported],
    )?;
    Ok(())
}

/// An algorithm that fits the spec but is not declared is Unsupported, both ways.
async fn undeclared(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage, alg: Alg) -> CaseResult {
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    for (what, r) in both_directions(&*p, &key, alg).await {
        expect_err(format!("{what} (not declared for {spec})"), r, &[Kind::Unsupported])?;
    }
    Ok(())
}

/// Digest signing where the capabilities do not declare it is Unsupported.
async fn undeclared_digest(
    p: Arc<dyn Provider>,
    ctx: Ctx,
    spec: KeySpec,
    alg: SignatureAlgorithm,
) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::SignVerify, Slot::Primary).await?;
    let len = alg.digest().map(|d| d.output_len()).unwrap_or(32);
    let r = p.sign(&KeyRef::new(&key.name), alg, SignInput::Digest(&vec![3u8; len])).await;
    expect_err(
        format!("sign of a digest with {alg} on {spec} (sign_digest not declared)"),
        r,
        &[Kind::Unsupported],
    )?;
    Ok(())
}

/// A modified ciphertext fails with the opaque DecryptionFailed.
async fn tampered(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: EncryptionAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let pt = data("tamper", 48);
    let ct = p.encrypt(&r, alg, &pt, None).await.during("encrypt")?;
    let payload = ct.as_bytes();
    let variant = |bytes: Vec<u8>| Ciphertext::new(ct.key(), ct.version(), ct.algorithm(), bytes);
    for (what, at) in [("first", 0), ("middle", payload.len() / 2), ("last", payload.len().saturating_sub(1))]
    {
        let res = p.decrypt(&r, &variant(flipped(payload, at)), None).await;
        match res {
            // PKCS#1 v1.5 decryption with implicit rejection returns a pseudo-random message
            // instead of an error (the Marvin-attack defence); it just must not be ours.
            Ok(back) if alg == EncryptionAlgorithm::RsaPkcs1v15 && *back != pt => {}
            other => {
                expect_err(
                    format!("decrypt with the {what} byte changed"),
                    other,
                    &[Kind::DecryptionFailed],
                )?;
            }
        }
    }
    let allowed = &[Kind::DecryptionFailed, Kind::InvalidInput];
    expect_err(
        "decrypt of a truncated ciphertext",
        p.decrypt(&r, &variant(payload[..payload.len() / 2].to_vec()), None).await,
        allowed,
    )?;
    expect_err("decrypt of an empty ciphertext", p.decrypt(&r, &variant(Vec::new()), None).await, allowed)?;
    let mut longer = payload.to_vec();
    longer.extend_from_slice(&[0u8; 16]);
    expect_err(
        "decrypt of a ciphertext with bytes appended",
        p.decrypt(&r, &variant(longer), None).await,
        allowed,
    )?;
    Ok(())
}

/// AES-GCM: the AAD must match exactly, and its absence is a mismatch too.
async fn wrong_aad(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec) -> CaseResult {
    let alg = EncryptionAlgorithm::AesGcm;
    let key = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let df = &[Kind::DecryptionFailed];
    let pt = data("aad", 40);
    let ct = p.encrypt(&r, alg, &pt, Some(b"tenant=alice")).await.during("encrypt with AAD")?;
    expect_err("decrypt with different AAD", p.decrypt(&r, &ct, Some(b"tenant=mallory")).await, df)?;
    expect_err("decrypt with no AAD", p.decrypt(&r, &ct, None).await, df)?;
    expect_err("decrypt with truncated AAD", p.decrypt(&r, &ct, Some(b"tenant=alic")).await, df)?;
    let plain = p.encrypt(&r, alg, &pt, None).await.during("encrypt without AAD")?;
    expect_err(
        "decrypt with AAD of a ciphertext made without",
        p.decrypt(&r, &plain, Some(b"tenant=alice")).await,
        df,
    )?;
    Ok(())
}

/// Algorithms without AAD refuse it with InvalidInput rather than ignoring it.
async fn aad_rejected(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: EncryptionAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    expect_err(
        format!("encrypt with {alg} and AAD"),
        p.encrypt(&r, alg, b"data", Some(b"context")).await,
        &[Kind::InvalidInput],
    )?;
    let ct = p.encrypt(&r, alg, b"data", None).await.during("encrypt")?;
    expect_err(
        format!("decrypt with {alg} and AAD"),
        p.decrypt(&r, &ct, Some(b"context")).await,
        &[Kind::InvalidInput],
    )?;
    Ok(())
}

/// A ciphertext of another key does not decrypt, whether it names that key or is
/// relabelled to name this one.
async fn foreign_ciphertext(
    p: Arc<dyn Provider>,
    ctx: Ctx,
    spec: KeySpec,
    alg: EncryptionAlgorithm,
) -> CaseResult {
    let a = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let b = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Secondary).await?;
    let ra = KeyRef::new(&a.name);
    let pt = data("foreign", 32);
    let theirs =
        p.encrypt(&KeyRef::new(&b.name), alg, &pt, None).await.during("encrypt with the other key")?;
    let allowed = &[Kind::InvalidInput, Kind::DecryptionFailed];
    expect_err(
        "decrypt through key A of a ciphertext naming key B",
        p.decrypt(&ra, &theirs, None).await,
        allowed,
    )?;
    let relabelled = Ciphertext::new(&a.name, &a.version, alg, theirs.bytes().clone());
    match p.decrypt(&ra, &relabelled, None).await {
        Ok(back) if alg == EncryptionAlgorithm::RsaPkcs1v15 && *back != pt => {}
        other => {
            expect_err("decrypt through key A of key B's ciphertext relabelled as A's", other, allowed)?;
        }
    }
    Ok(())
}

/// One byte over the plaintext limit is InvalidInput.
async fn oversized(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: EncryptionAlgorithm) -> CaseResult {
    let max = ctx.capabilities().max_plaintext_len(spec, alg).ok_or("no limit")?;
    let key = ctx.fixture(spec, KeyUsage::EncryptDecrypt, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    expect_err(
        format!("encrypt of {} bytes (limit {max})", max + 1),
        p.encrypt(&r, alg, &data("oversized", max + 1), None).await,
        &[Kind::InvalidInput],
    )?;
    Ok(())
}

/// Signatures of impossible length are InvalidInput or simply do not verify.
async fn signature_length(
    p: Arc<dyn Provider>,
    ctx: Ctx,
    spec: KeySpec,
    alg: SignatureAlgorithm,
) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::SignVerify, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let msg = data("length", 50);
    let sig = p.sign(&r, alg, SignInput::Message(&msg)).await.during("sign")?;
    let s = sig.as_bytes();
    let mut longer = s.to_vec();
    longer.push(0);
    for (what, bad) in [
        ("an empty", Vec::new()),
        ("a one-byte-short", s[..s.len() - 1].to_vec()),
        ("a one-byte-long", longer),
    ] {
        expect_rejected(
            format!("verify of {what} signature"),
            p.verify(&r, alg, SignInput::Message(&msg), &bad).await,
            &[Kind::InvalidInput],
        )?;
    }
    Ok(())
}

/// A modified message does not verify (Ok(false), not an error); nor does a modified
/// signature, or a signature checked as another algorithm.
async fn verify_modified(
    p: Arc<dyn Provider>,
    ctx: Ctx,
    spec: KeySpec,
    alg: SignatureAlgorithm,
) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::SignVerify, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let msg = data("modified", 80);
    let sig = p.sign(&r, alg, SignInput::Message(&msg)).await.during("sign")?;
    let mut other = msg.clone();
    other[10] ^= 0x20;
    expect_rejected(
        "verify of a modified message",
        p.verify(&r, alg, SignInput::Message(&other), sig.as_bytes()).await,
        &[],
    )?;
    expect_rejected(
        "verify of a signature with a byte changed",
        p.verify(&r, alg, SignInput::Message(&msg), &flipped(sig.as_bytes(), sig.as_bytes().len() / 2)).await,
        &[Kind::InvalidInput],
    )?;
    let caps = ctx.capabilities();
    if let Some(another) =
        SignatureAlgorithm::ALL.iter().copied().find(|a| *a != alg && caps.supports_signature(spec, *a))
    {
        expect_rejected(
            format!("verify of a {alg} signature as {another}"),
            p.verify(&r, another, SignInput::Message(&msg), sig.as_bytes()).await,
            &[],
        )?;
    }
    Ok(())
}

/// Digests of the wrong length are InvalidInput; Ed25519 signs messages only.
async fn digest_input(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: SignatureAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::SignVerify, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let ii = &[Kind::InvalidInput];
    match alg.digest() {
        Some(d) => {
            for len in [d.output_len() - 1, d.output_len() + 1, 0] {
                let bad = vec![5u8; len];
                expect_err(
                    format!("sign of a {len}-byte digest with {alg}"),
                    p.sign(&r, alg, SignInput::Digest(&bad)).await,
                    ii,
                )?;
                expect_err(
                    format!("verify of a {len}-byte digest with {alg}"),
                    p.verify(&r, alg, SignInput::Digest(&bad), &[1u8; 64]).await,
                    ii,
                )?;
            }
        }
        None => {
            expect_err(
                format!("sign of a digest with {alg}"),
                p.sign(&r, alg, SignInput::Digest(&[5u8; 64])).await,
                ii,
            )?;
        }
    }
    Ok(())
}

/// A modified wrapped key fails with DecryptionFailed.
async fn tampered_wrap(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: WrapAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::WrapUnwrap, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let w = p.wrap_key(&r, alg, &data("tamper wrap", 32)).await.during("wrap_key")?;
    let payload = w.as_bytes();
    let variant = |bytes: Vec<u8>| WrappedKey::new(w.key(), w.version(), w.algorithm(), bytes);
    for (what, at) in [("first", 0), ("middle", payload.len() / 2), ("last", payload.len().saturating_sub(1))]
    {
        expect_err(
            format!("unwrap with the {what} byte changed"),
            p.unwrap_key(&r, &variant(flipped(payload, at))).await,
            &[Kind::DecryptionFailed],
        )?;
    }
    let allowed = &[Kind::DecryptionFailed, Kind::InvalidInput];
    expect_err(
        "unwrap of a truncated wrapped key",
        p.unwrap_key(&r, &variant(payload[..payload.len() - 8].to_vec())).await,
        allowed,
    )?;
    expect_err("unwrap of an empty wrapped key", p.unwrap_key(&r, &variant(Vec::new())).await, allowed)?;
    Ok(())
}

/// Key material of a length the algorithm cannot wrap is InvalidInput.
async fn wrap_material(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: WrapAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::WrapUnwrap, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let mut bad: Vec<usize> = vec![0];
    match alg {
        WrapAlgorithm::AesKeyWrap => bad.extend([8, 15, 20]),
        WrapAlgorithm::RsaOaepSha256 => {
            if let Some(max) = EncryptionAlgorithm::RsaOaepSha256.max_plaintext_len(spec) {
                bad.push(max + 1);
            }
        }
        _ => {}
    }
    for len in bad {
        expect_err(
            format!("wrap_key of {len} bytes with {alg}"),
            p.wrap_key(&r, alg, &data("material", len)).await,
            &[Kind::InvalidInput],
        )?;
    }
    Ok(())
}

/// MAC tags of the wrong length are InvalidInput or simply do not verify.
async fn mac_length(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: MacAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::Mac, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let msg = data("mac length", 20);
    let tag: MacTag = p.mac(&r, alg, &msg).await.during("mac")?;
    let t = tag.as_bytes();
    let mut longer = t.to_vec();
    longer.push(0);
    for (what, bad) in [
        ("an empty", Vec::new()),
        ("a one-byte-short", t[..t.len() - 1].to_vec()),
        ("a one-byte-long", longer),
    ] {
        expect_rejected(
            format!("verify_mac of {what} tag"),
            p.verify_mac(&r, alg, &msg, &bad).await,
            &[Kind::InvalidInput],
        )?;
    }
    Ok(())
}
