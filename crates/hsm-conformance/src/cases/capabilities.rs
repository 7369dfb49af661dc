//! `capabilities::*`: the declaration is coherent, and every declared (spec, usage) can be
//! created and reads back as created.

use std::sync::Arc;

use hsm_core::{Capabilities, KeyRef, KeySpec, KeyState, KeyUsage, Provider};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::support::{CaseResult, During as _, ensure, fail};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    out.push(Case::new("capabilities::well-formed", Requirement::Nothing, well_formed));
    for (spec, usage) in super::key_pairs() {
        out.push(Case::new(
            format!("capabilities::create::{spec}::{usage}"),
            Requirement::Key { spec, usage },
            move |p, c| create(p, c, spec, usage),
        ));
    }
}

/// Every declared usage and algorithm fits its spec, every declared usage has at least
/// one algorithm, algorithms are only declared for declared usages, and the deletion
/// policy and page size make sense.
async fn well_formed(p: Arc<dyn Provider>, _ctx: Ctx) -> CaseResult {
    let caps = p.capabilities();
    let mut problems = Vec::new();
    for (spec, c) in &caps.specs {
        for usage in &c.usages {
            if !spec.allows_usage(*usage) {
                problems.push(format!("{spec} declares usage '{usage}', which a {spec} key cannot have"));
            }
        }
        let mut algs = |usage: KeyUsage, names: Vec<(String, bool)>| {
            for (name, fits) in &names {
                if !fits {
                    problems.push(format!("{spec} declares {name}, which does not fit a {spec} key"));
                }
            }
            match (c.usages.contains(&usage), names.is_empty()) {
                (true, true) => {
                    problems.push(format!("{spec} declares usage '{usage}' but no algorithm for it"))
                }
                (false, false) => {
                    problems.push(format!("{spec} declares {usage} algorithms but not usage '{usage}'"))
                }
                _ => {}
            }
        };
        algs(KeyUsage::EncryptDecrypt, c.encryption.iter().map(|a| (a.to_string(), a.fits(*spec))).collect());
        algs(KeyUsage::SignVerify, c.signature.iter().map(|a| (a.to_string(), a.fits(*spec))).collect());
        algs(KeyUsage::WrapUnwrap, c.wrap.iter().map(|a| (a.to_string(), a.fits(*spec))).collect());
        algs(KeyUsage::Mac, c.mac.iter().map(|a| (a.to_string(), a.fits(*spec))).collect());
        if c.sign_digest && !c.signature.iter().any(|a| a.digest().is_some()) {
            problems.push(format!("{spec} declares digest signing but no algorithm that signs a digest"));
        }
        if c.max_plaintext_len == Some(0) {
            problems.push(format!("{spec} declares a plaintext limit of 0 bytes"));
        }
    }
    let d = caps.deletion;
    if !(d.min_window <= d.default_window && d.default_window <= d.max_window) {
        problems.push(format!(
            "the deletion policy needs min <= default <= max, but has {:?} / {:?} / {:?}",
            d.min_window, d.default_window, d.max_window
        ));
    }
    if caps.max_page_size == 0 {
        problems.push("max_page_size is 0".to_owned());
    }
    if !problems.is_empty() {
        fail!("the capabilities are inconsistent:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

async fn create(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, usage: KeyUsage) -> CaseResult {
    let created = ctx.fixture(spec, usage, Slot::Primary).await?;
    let got = p.get_key(&KeyRef::new(&created.name)).await.during("get_key")?;
    ensure!(got.name == created.name, "get_key returned key '{}' for '{}'", got.name, created.name);
    ensure!(got.spec == spec, "the key was created as {spec} but get_key says {}", got.spec);
    ensure!(got.usage == usage, "the key was created with usage '{usage}' but get_key says '{}'", got.usage);
    ensure!(got.state == KeyState::Enabled, "a new key should be enabled, but it is {}", got.state);
    ensure!(!got.version.is_empty(), "get_key returned an empty version");
    ensure!(
        got.versions.contains(&got.version),
        "the current version '{}' is missing from versions {:?}",
        got.version,
        got.versions
    );
    ensure!(
        got.version == created.version,
        "create_key said version '{}', get_key '{}'",
        created.version,
        got.version
    );
    ensure!(
        got.description == "hsm-conformance shared key",
        "the description was not kept: got {:?}",
        got.description
    );
    ensure!(got.tags.contains_key("hsm-conformance"), "the tag given at creation is missing: {:?}", got.tags);
    ensure!(!got.native_id.is_empty(), "get_key returned an empty native_id");
    ensure!(got.deletion_date.is_none(), "a new key has a deletion date");
    // The pinned current version resolves too.
    let pinned =
        p.get_key(&KeyRef::new(&created.name).with_version(&got.version)).await.during("get_key (pinned)")?;
    ensure!(pinned.name == created.name, "get_key of the pinned version returned '{}'", pinned.name);
    Ok(())
}
