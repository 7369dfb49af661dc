//! `concurrency::*`: many operations at once on one shared `Arc<dyn Provider>`.

use std::sync::Arc;

use hsm_core::{Capabilities, KeyRef, KeyUsage, Provider};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::support::{self, Alg, Artifact, CaseResult, During as _, fail};

const TASKS: usize = 64;

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    out.push(Case::new("concurrency::operations-64", Requirement::AnyKey(None), operations));
}

/// 64 tasks spawned at once, each making and opening its own artifact (encrypt+decrypt
/// where the provider encrypts; else sign+verify, mac+verify, wrap+unwrap).
async fn operations(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let caps = ctx.capabilities();
    let (spec, usage) = [KeyUsage::EncryptDecrypt, KeyUsage::SignVerify, KeyUsage::Mac, KeyUsage::WrapUnwrap]
        .into_iter()
        .find_map(|u| support::cheapest(caps, u).map(|s| (s, u)))
        .ok_or("no declared key")?;
    let alg: Alg = support::alg_for(caps, spec, usage)?;
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let p = p.clone();
        let r = KeyRef::new(&key.name);
        set.spawn(async move {
            let a = Artifact::make(&*p, &r, alg, &format!("task {i}"))
                .await
                .during(format!("task {i}: {alg}"))?;
            a.expect_opens(&*p, &r, &format!("in task {i}")).await
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(f)) => failures.push(f.to_string()),
            Err(e) => failures.push(format!("a task panicked or was cancelled: {e}")),
        }
    }
    if !failures.is_empty() {
        failures.sort();
        fail!(
            "{} of {TASKS} concurrent {alg} operations failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}
