//! `keys::*`: metadata, tags, listing with filters and pagination, public keys.

use std::collections::BTreeSet;
use std::sync::Arc;

use hsm_core::{Capabilities, CreateKey, KeyRef, KeySpec, ListKeys, Provider, ProviderExt as _};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::independent;
use crate::support::{self, CaseResult, During as _, Kind, ensure, expect_err, fail};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    let any = Requirement::AnyKey(None);
    out.push(Case::new("keys::tags", any.clone(), tags));
    out.push(Case::new("keys::list::prefix", any.clone(), list_prefix));
    out.push(Case::new("keys::list::pagination", any.clone(), pagination));
    out.push(Case::new("keys::list::name-order", any.clone(), name_order));
    out.push(Case::new("keys::list::spec-filter", any.clone(), spec_filter));
    out.push(Case::new("keys::list::bad-token", Requirement::Nothing, bad_token));
    for spec in KeySpec::ALL.iter().copied() {
        out.push(Case::new(format!("keys::public-key::{spec}"), Requirement::Spec(spec), move |p, c| {
            public_key(p, c, spec)
        }));
    }
}

fn names(keys: &[hsm_core::KeyInfo]) -> Vec<String> {
    keys.iter().map(|k| k.name.clone()).collect()
}

/// Tags and descriptions given at creation read back, and tag filters select exactly the
/// keys carrying every tag asked for.
async fn tags(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let (spec, usage) = support::cheapest_any(ctx.capabilities()).ok_or("no declared key")?;
    let base = format!("{}-tg-", ctx.run_prefix());
    let tagsets =
        [[("env", "prod"), ("team", "a")], [("env", "prod"), ("team", "b")], [("env", "dev"), ("team", "a")]];
    for (i, tags) in tagsets.iter().enumerate() {
        let req = CreateKey::new(format!("{base}{i}"), spec)
            .usage(usage)
            .description(format!("tagged key number {i}"))
            .tags(tags.iter().copied());
        let info = ctx.create_key(req).await.during(format!("create_key {base}{i}"))?;
        let got = p.get_key(&KeyRef::new(&info.name)).await.during("get_key")?;
        for (k, v) in tags {
            ensure!(
                got.tags.get(*k).map(String::as_str) == Some(*v),
                "key {i}: tag {k}={v} given at creation reads back as {:?}",
                got.tags.get(*k)
            );
        }
        ensure!(
            got.description == format!("tagged key number {i}"),
            "key {i}: description reads back as {:?}",
            got.description
        );
    }
    let list = |req: ListKeys| {
        let p = p.clone();
        async move { p.list_all(req).await.map(|keys| names(&keys)) }
    };
    let expect = |ids: &[usize]| ids.iter().map(|i| format!("{base}{i}")).collect::<Vec<_>>();
    let got =
        list(ListKeys::new().name_prefix(&base).tag("env", "prod")).await.during("list_keys env=prod")?;
    ensure!(got == expect(&[0, 1]), "listing with tag env=prod gave {got:?}, expected {:?}", expect(&[0, 1]));
    let got = list(ListKeys::new().name_prefix(&base).tag("env", "prod").tag("team", "a"))
        .await
        .during("list_keys env=prod team=a")?;
    ensure!(
        got == expect(&[0]),
        "listing with tags env=prod and team=a gave {got:?}, expected {:?}",
        expect(&[0])
    );
    let got = list(ListKeys::new().name_prefix(&base).tag("team", "a")).await.during("list_keys team=a")?;
    ensure!(got == expect(&[0, 2]), "listing with tag team=a gave {got:?}, expected {:?}", expect(&[0, 2]));
    let got = list(ListKeys::new().name_prefix(&base).tag("env", "staging"))
        .await
        .during("list_keys env=staging")?;
    ensure!(got.is_empty(), "listing with tag env=staging (on no key) gave {got:?}");
    Ok(())
}

/// Listing with a name prefix returns exactly the keys with that prefix.
async fn list_prefix(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let set = ctx.list_set().await?;
    let prefix = format!("{}-ls-", ctx.run_prefix());
    let got =
        p.list_all(ListKeys::new().name_prefix(&prefix)).await.during("list_keys with a name prefix")?;
    let mut want = names(&set);
    want.sort();
    let mut got_names = names(&got);
    got_names.sort();
    ensure!(got_names == want, "listing prefix '{prefix}' gave {got_names:?}, expected {want:?}");
    for k in &got {
        let made = set.iter().find(|s| s.name == k.name).ok_or("unreachable")?;
        ensure!(
            k.spec == made.spec && k.usage == made.usage,
            "listed key {} has spec/usage {}/{} but was created as {}/{}",
            k.name,
            k.spec,
            k.usage,
            made.spec,
            made.usage
        );
    }
    // A prefix matching nothing lists nothing.
    let none = p
        .list_all(ListKeys::new().name_prefix(format!("{}-nothing-", ctx.run_prefix())))
        .await
        .during("list_keys")?;
    ensure!(none.is_empty(), "a prefix no key has listed {:?}", names(&none));
    Ok(())
}

/// Walks every page of a listing, checking page sizes and token handling.
async fn walk(p: &dyn Provider, prefix: &str, page_size: u32) -> Result<Vec<String>, crate::Failure> {
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for pages in 1..=64 {
        let mut req = ListKeys::new().name_prefix(prefix).page_size(page_size);
        if let Some(t) = &token {
            req = req.page_token(t.clone());
        }
        let page =
            p.list_keys(req).await.during(format!("list_keys page {pages} (page size {page_size})"))?;
        ensure!(
            page.keys.len() <= page_size as usize,
            "page {pages} has {} keys but the page size asked for was {page_size}",
            page.keys.len()
        );
        seen.extend(names(&page.keys));
        match page.next_page_token {
            None => return Ok(seen),
            Some(t) => {
                ensure!(
                    token.as_ref() != Some(&t),
                    "page {pages} returned the token it was given: pagination would never end"
                );
                token = Some(t);
            }
        }
    }
    fail!("pagination with page size {page_size} did not end after 64 pages")
}

/// Page size 2 (and 4) across six keys: no duplicates, no misses, small pages.
async fn pagination(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let set = ctx.list_set().await?;
    let prefix = format!("{}-ls-", ctx.run_prefix());
    let want: BTreeSet<String> = names(&set).into_iter().collect();
    let max = ctx.capabilities().max_page_size.max(1);
    for size in [2.min(max), 4.min(max)] {
        let seen = walk(&*p, &prefix, size).await?;
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        ensure!(unique.len() == seen.len(), "pages of {size} returned a key twice: {seen:?}");
        let missing: Vec<&String> = want.difference(&unique).collect();
        ensure!(missing.is_empty(), "pages of {size} never returned {missing:?} (got {seen:?})");
        let extra: Vec<&String> = unique.difference(&want).collect();
        ensure!(extra.is_empty(), "pages of {size} returned keys outside the prefix: {extra:?}");
    }
    Ok(())
}

/// Keys come in name order, across pages too.
async fn name_order(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    ctx.list_set().await?;
    let prefix = format!("{}-ls-", ctx.run_prefix());
    let max = ctx.capabilities().max_page_size.max(1);
    for size in [max, 2.min(max)] {
        let seen = walk(&*p, &prefix, size).await?;
        let mut sorted = seen.clone();
        sorted.sort();
        ensure!(seen == sorted, "with page size {size} keys were not listed in name order: {seen:?}");
    }
    Ok(())
}

/// A spec filter returns only keys of that spec.
async fn spec_filter(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let set = ctx.list_set().await?;
    let prefix = format!("{}-ls-", ctx.run_prefix());
    let mut specs: Vec<KeySpec> = set.iter().map(|k| k.spec).collect();
    specs.dedup();
    if let Some(other) = KeySpec::ALL.iter().copied().find(|s| !specs.contains(s)) {
        specs.push(other);
    }
    for spec in specs {
        let mut want: Vec<String> = set.iter().filter(|k| k.spec == spec).map(|k| k.name.clone()).collect();
        want.sort();
        let got = p
            .list_all(ListKeys::new().name_prefix(&prefix).spec(spec))
            .await
            .during(format!("list_keys spec={spec}"))?;
        let mut got = names(&got);
        got.sort();
        ensure!(got == want, "listing spec {spec} gave {got:?}, expected {want:?}");
    }
    Ok(())
}

/// A page token the provider never issued is InvalidInput.
async fn bad_token(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let req = ListKeys::new().name_prefix(ctx.run_prefix()).page_token("hsm-conformance-bogus-token");
    expect_err(
        "list_keys with a page token the provider never issued",
        p.list_keys(req).await,
        &[Kind::InvalidInput],
    )?;
    Ok(())
}

/// Asymmetric keys export an SPKI an independent parser accepts as the right algorithm,
/// curve and size; symmetric keys refuse with InvalidInput.
async fn public_key(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec) -> CaseResult {
    let caps = ctx.capabilities();
    let usage = caps.spec(spec).and_then(|c| c.usages.first().copied()).ok_or("spec has no usage")?;
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    if !support::asymmetric(spec) {
        expect_err(format!("public_key of a {spec} key"), p.public_key(&r).await, &[Kind::InvalidInput])?;
        return Ok(());
    }
    let pk = p.public_key(&r).await.during("public_key")?;
    ensure!(pk.key == key.name, "the public key names key '{}'", pk.key);
    ensure!(
        pk.version == key.version,
        "the public key is of version '{}', the current one is '{}'",
        pk.version,
        key.version
    );
    ensure!(pk.spec == spec, "the public key says spec {} for a {spec} key", pk.spec);
    independent::check_spki(spec, &pk.spki_der)?;
    let pem = pk.to_pem();
    ensure!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "to_pem() does not start with the PEM header");
    let pinned =
        p.public_key(&r.clone().with_version(&key.version)).await.during("public_key (pinned version)")?;
    ensure!(pinned.spki_der == pk.spki_der, "the pinned current version has a different public key");
    Ok(())
}
