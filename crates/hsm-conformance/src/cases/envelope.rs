//! `envelope::*`: envelope encryption (hsm-envelope) over the provider's keys: round trips
//! of every size class, tampering and stanza substitution caught, the encryption context
//! enforced (and handed to the provider as AAD where the algorithm takes it), and envelopes
//! sealed before `rotate_key` still opening; keyrings of two of the provider's keys (each
//! opens alone, a 2-of-2 split needs both, a rewrap moves the envelope from one to the
//! other without touching the body) and a rewrap to the current version after a rotation.

use std::sync::Arc;

use hsm_core::{
    Capabilities, EncryptionAlgorithm, KeyRef, KeySpec, KeyUsage, Provider, ProviderExt as _, WrapAlgorithm,
};
use hsm_envelope::{Context, Keyring, Opener, Protection, Rewrap, Sealer};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::support::{CaseResult, During as _, Kind, data, ensure, expect_err, fail};

/// The algorithm hsm-envelope will use for `spec` and `usage` on a provider with `caps`,
/// as the requirement a case needs declared.
fn requirement(caps: &Capabilities, spec: KeySpec, usage: KeyUsage) -> Requirement {
    let declared = caps.spec(spec);
    match usage {
        KeyUsage::WrapUnwrap => {
            let default = spec.default_wrap_algorithm().unwrap_or(WrapAlgorithm::AesGcm);
            let list = declared.map(|d| d.wrap.clone()).unwrap_or_default();
            let alg =
                if list.contains(&default) { Some(default) } else { list.into_iter().find(|a| a.fits(spec)) };
            Requirement::Wrap { spec, alg: alg.unwrap_or(default) }
        }
        _ => {
            let default = spec.default_encryption_algorithm().unwrap_or(EncryptionAlgorithm::AesGcm);
            let list = declared.map(|d| d.encryption.clone()).unwrap_or_default();
            let alg = if list.contains(&default) {
                Some(default)
            } else {
                list.into_iter().find(|a| a.fits(spec) && *a != EncryptionAlgorithm::RsaPkcs1v15)
            };
            Requirement::Encryption { spec, alg: alg.unwrap_or(default) }
        }
    }
}

pub(crate) fn add(out: &mut Vec<Case>, caps: &Capabilities) {
    for (spec, usage) in super::key_pairs() {
        if !matches!(usage, KeyUsage::WrapUnwrap | KeyUsage::EncryptDecrypt) {
            continue;
        }
        let req = requirement(caps, spec, usage);
        out.push(Case::new(format!("envelope::roundtrip::{usage}::{spec}"), req.clone(), move |p, c| {
            roundtrip(p, c, spec, usage)
        }));
        out.push(Case::new(
            format!("envelope::rotation::{usage}::{spec}"),
            Requirement::Rotation { spec, usage },
            move |p, c| rotation(p, c, spec, usage),
        ));
        if matches!(spec, KeySpec::Aes256 | KeySpec::Rsa2048) {
            out.push(Case::new(format!("envelope::tamper::{usage}::{spec}"), req.clone(), move |p, c| {
                tamper(p, c, spec, usage)
            }));
            out.push(Case::new(format!("envelope::context::{usage}::{spec}"), req.clone(), move |p, c| {
                context(p, c, spec, usage)
            }));
            out.push(Case::new(format!("envelope::keyring::{usage}::{spec}"), req, move |p, c| {
                keyring(p, c, spec, usage)
            }));
            out.push(Case::new(
                format!("envelope::rewrap_rotation::{usage}::{spec}"),
                Requirement::Rotation { spec, usage },
                move |p, c| rewrap_rotation(p, c, spec, usage),
            ));
        }
    }
}

fn ctx_of(tag: &str) -> Context {
    Context::new().with("hsm-conformance", tag).with("purpose", "envelope")
}

async fn roundtrip(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let context = ctx_of("roundtrip");
    // Empty, one byte, and three 1 KiB segments plus a partial one.
    for len in [0usize, 1, 3 * 1024 + 7] {
        let pt = data("envelope", len);
        let sealed = Sealer::new()
            .context(context.clone())
            .segment_size(1024)
            .seal(&*p, &r, &pt)
            .await
            .during(format!("seal {len} bytes"))?;
        let header = hsm_envelope::inspect_bytes(&sealed).during("inspect")?;
        let recipient = header.recipients.first().ok_or("the header lists no recipient")?;
        ensure!(
            recipient.provider.as_deref() == Some(p.name()),
            "the stanza names provider {:?}",
            recipient.provider
        );
        ensure!(
            recipient.key() == Some(KeyRef::new(&key.name).with_version(&key.version)),
            "the stanza names key {:?}, expected {}@{}",
            recipient.key(),
            key.name,
            key.version
        );
        ensure!(header.context == context, "the header holds context {:?}", header.context);
        let opened = Opener::new()
            .expect_context(context.clone())
            .open(&*p, &sealed)
            .await
            .during(format!("open {len} bytes"))?;
        ensure!(*opened == pt, "an envelope of {len} bytes opened to different bytes");
    }
    Ok(())
}

async fn tamper(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let pt = data("tamper", 2 * 1024 + 5);
    let sealer = Sealer::new().segment_size(1024).context(ctx_of("tamper"));
    let sealed = sealer.seal(&*p, &r, &pt).await.during("seal")?;
    let body = hsm_envelope::inspect_bytes(&sealed).during("inspect")?.len;
    let opaque = [Kind::DecryptionFailed];
    let mut flipped = sealed.clone();
    flipped[body + 1030] ^= 0x01;
    expect_err("open with a flipped body byte", Opener::new().open(&*p, &flipped).await, &opaque)?;
    expect_err(
        "open truncated by its last segment",
        Opener::new().open(&*p, &sealed[..sealed.len() - 21]).await,
        &opaque,
    )?;
    let mut swapped = sealed.clone();
    swapped[body..body + 1040].copy_from_slice(&sealed[body + 1040..body + 2080]);
    swapped[body + 1040..body + 2080].copy_from_slice(&sealed[body..body + 1040]);
    expect_err("open with two segments swapped", Opener::new().open(&*p, &swapped).await, &opaque)?;
    // The recipients section of another message under the same key: its data key fails the
    // commitment of this one.
    let other = sealer.seal(&*p, &r, &pt).await.during("seal another message")?;
    let other_body = hsm_envelope::inspect_bytes(&other).during("inspect")?.len;
    let own_start = body - recipients_len(&sealed)?;
    let other_start = other_body - recipients_len(&other)?;
    let moved = [&sealed[..own_start], &other[other_start..other_body], &sealed[body..]].concat();
    expect_err(
        "open with another message's recipient stanza",
        Opener::new().open(&*p, &moved).await,
        &opaque,
    )?;
    Ok(())
}

/// The length of the recipients section, which ends the header.
fn recipients_len(sealed: &[u8]) -> Result<usize, crate::case::Failure> {
    let header = hsm_envelope::inspect_bytes(sealed).during("inspect")?;
    let mut len = 2;
    for r in &header.recipients {
        let blob = match &r.protection {
            Protection::Wrapped(w) => w.to_bytes().len(),
            Protection::Encrypted(c) => c.to_bytes().len(),
            _ => fail!("an unknown stanza kind"),
        };
        len += 4 + 1 + 1 + r.provider.as_deref().unwrap_or_default().len() + 4 + blob;
    }
    Ok(len)
}

async fn context(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let context = Context::new().with("tenant", "acme");
    let sealed = Sealer::new().context(context.clone()).seal(&*p, &r, b"row").await.during("seal")?;
    let wrong = Opener::new().expect_context(Context::new().with("tenant", "globex"));
    expect_err("open expecting another context", wrong.open(&*p, &sealed).await, &[Kind::InvalidInput])?;
    // The same bytes with the stored context changed (same length): refused.
    let at = sealed.windows(4).position(|w| w == b"acme").ok_or("the context is not in the header")?;
    let mut altered = sealed.clone();
    altered[at..at + 4].copy_from_slice(b"acmf");
    expect_err(
        "open with the stored context altered",
        Opener::new().open(&*p, &altered).await,
        &[Kind::DecryptionFailed],
    )?;
    // Where the data key is encrypted with AES-GCM, the provider itself got the context as
    // AAD: the stanza does not decrypt without it.
    let header = hsm_envelope::inspect_bytes(&sealed).during("inspect")?;
    if let Some(Protection::Encrypted(c)) = header.recipients.first().map(|r| &r.protection)
        && c.algorithm() == EncryptionAlgorithm::AesGcm
    {
        expect_err(
            "decrypting the data key without the context",
            p.decrypt_blob(c, None).await,
            &[Kind::DecryptionFailed],
        )?;
    }
    Ok(())
}

async fn rotation(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let k1 = ctx
        .create_key(hsm_core::CreateKey::new(ctx.unique_name("env-rot"), spec).usage(usage))
        .await
        .during("create_key")?;
    let r = KeyRef::new(&k1.name);
    let pt = data("rotation", 1500);
    let old = Sealer::new().segment_size(1024).seal(&*p, &r, &pt).await.during("seal before rotation")?;
    let k2 = p.rotate_key(&r).await.during("rotate_key")?;
    let opened = Opener::new().open(&*p, &old).await.during("open an envelope sealed before rotate_key")?;
    ensure!(*opened == pt, "an envelope sealed before rotation opened to different bytes");
    let new = Sealer::new().seal(&*p, &r, &pt).await.during("seal after rotation")?;
    let header = hsm_envelope::inspect_bytes(&new).during("inspect")?;
    let version =
        header.recipients.first().and_then(|r| r.key()).and_then(|k| k.version().map(str::to_owned));
    ensure!(
        version.as_deref() == Some(k2.version.as_str()),
        "a new envelope records version {version:?}, not the current '{}'",
        k2.version
    );
    Ok(())
}

async fn keyring(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let k1 = ctx.fixture(spec, usage, Slot::Primary).await?;
    let k2 = ctx.fixture(spec, usage, Slot::Secondary).await?;
    let one = |k: &str| Keyring::new().recipient(p.clone(), k);
    let both = one(&k1.name).recipient(p.clone(), k2.name.as_str());
    let pt = data("keyring", 2 * 1024 + 3);
    let context = ctx_of("keyring");
    let sealer = Sealer::new().segment_size(1024).context(context.clone());
    let opener = Opener::new().expect_context(context.clone());

    let (sealed, report) = sealer.seal_to(&both, &pt).await.during("seal to a keyring of two keys")?;
    ensure!(report.recipients.len() == 2 && report.failed.is_empty(), "two stanzas, no failure: {report:?}");
    for k in [&k1.name, &k2.name] {
        let opened = opener.open(&one(k), &sealed).await.during(format!("open with '{k}' alone"))?;
        ensure!(*opened == pt, "the keyring envelope opened with '{k}' to different bytes");
    }

    // 2-of-2: both keys needed; one alone is refused.
    let split = both.clone().threshold(2);
    let (sealed2, _) = sealer.seal_to(&split, &pt).await.during("seal 2-of-2")?;
    let opened = opener.open(&split, &sealed2).await.during("open 2-of-2 with both keys")?;
    ensure!(*opened == pt, "a 2-of-2 envelope opened to different bytes");
    match opener.open(&one(&k1.name), &sealed2).await {
        Err(hsm_core::Error::Provider { code, .. }) if code == "threshold" => {}
        other => fail!("a 2-of-2 envelope with one key: expected a threshold refusal, got {other:?}"),
    }

    // Rewrap from the first key to the second: the body is untouched, only k2 opens it.
    let header = hsm_envelope::inspect_bytes(&sealed).during("inspect")?;
    let change = Rewrap::new().remove(Some(p.name()), &k1.name);
    let (head, _) = change.header(&opener, &one(&k1.name), &header).await.during("rewrap")?;
    let moved = [&head[..], &sealed[header.len..]].concat();
    let opened = opener.open(&one(&k2.name), &moved).await.during("open the rewrapped envelope")?;
    ensure!(*opened == pt, "the rewrapped envelope opened to different bytes");
    ensure!(opener.open(&one(&k1.name), &moved).await.is_err(), "the removed key still opens the envelope");
    Ok(())
}

async fn rewrap_rotation(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let k = ctx
        .create_key(hsm_core::CreateKey::new(ctx.unique_name("env-rewrap"), spec).usage(usage))
        .await
        .during("create_key")?;
    let ring = Keyring::new().recipient(p.clone(), k.name.as_str());
    let (sealed, _) = Sealer::new().seal_to(&ring, b"rotate").await.during("seal")?;
    let k2 = p.rotate_key(&KeyRef::new(&k.name)).await.during("rotate_key")?;
    let header = hsm_envelope::inspect_bytes(&sealed).during("inspect")?;
    let change = Rewrap::new().to_current_versions(true);
    let (head, report) =
        change.header(&Opener::new(), &ring, &header).await.during("rewrap to current versions")?;
    ensure!(report.rewrapped.len() == 1, "one stanza re-protected, not {}", report.rewrapped.len());
    let new = [&head[..], &sealed[header.len..]].concat();
    let version = hsm_envelope::inspect_bytes(&new)
        .during("inspect")?
        .recipients
        .first()
        .and_then(|r| r.key())
        .and_then(|k| k.version().map(str::to_owned));
    ensure!(
        version.as_deref() == Some(k2.version.as_str()),
        "the rewrapped stanza records version {version:?}, not the current '{}'",
        k2.version
    );
    let opened = Opener::new().open(&*p, &new).await.during("open the rewrapped envelope")?;
    ensure!(*opened == b"rotate", "the rewrapped envelope opened to different bytes");
    Ok(())
}
