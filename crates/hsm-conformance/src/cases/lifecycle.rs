//! `lifecycle::*`: enable/disable, scheduled deletion and its cancellation, deletion windows.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hsm_core::{
    Capabilities, CreateKey, KeyInfo, KeyRef, KeySpec, KeyState, KeyUsage, ListKeys, Provider,
    ProviderExt as _, UnusableReason,
};

use crate::case::{Case, Requirement};
use crate::ctx::Ctx;
use crate::support::{
    self, Alg, Artifact, CaseResult, During as _, Kind, ensure, expect_err, expect_unusable,
};

const DAY: Duration = Duration::from_secs(86_400);
const SLACK: Duration = Duration::from_secs(300);

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    for usage in KeyUsage::ALL.iter().copied() {
        out.push(Case::new(
            format!("lifecycle::disable::{usage}"),
            Requirement::AnyKey(Some(usage)),
            move |p, c| disable(p, c, usage),
        ));
    }
    out.push(Case::new(
        "lifecycle::deletion::schedule-cancel",
        Requirement::CancellableDeletion,
        schedule_cancel,
    ));
    out.push(Case::new("lifecycle::deletion::default-window", Requirement::AnyKey(None), default_window));
    out.push(Case::new("lifecycle::deletion::window-bounds", Requirement::AnyKey(None), window_bounds));
    out.push(Case::new("lifecycle::deletion::immediate", Requirement::ImmediateDeletion, immediate));
}

/// A fresh key of the cheapest spec for `usage` (any usage when `None`), and its algorithm.
async fn fresh_key(ctx: &Ctx, usage: Option<KeyUsage>, tag: &str) -> Result<(KeyInfo, Alg), crate::Failure> {
    let caps = ctx.capabilities();
    let (spec, usage): (KeySpec, KeyUsage) = match usage {
        Some(u) => (support::cheapest(caps, u).ok_or("no declared spec with this usage")?, u),
        None => support::cheapest_any(caps).ok_or("no declared key spec")?,
    };
    let alg = support::alg_for(caps, spec, usage)?;
    let info =
        ctx.create_key(CreateKey::new(ctx.unique_name(tag), spec).usage(usage)).await.during("create_key")?;
    Ok((info, alg))
}

async fn expect_state(
    p: &dyn Provider,
    r: &KeyRef,
    want: KeyState,
    when: &str,
) -> Result<KeyInfo, crate::Failure> {
    let got = p.get_key(r).await.during(format!("get_key {when}"))?;
    ensure!(got.state == want, "{when}, get_key says the key is {} instead of {want}", got.state);
    Ok(got)
}

/// A disabled key refuses use (old artifacts too) with KeyUnusable(Disabled); enabled
/// again, everything works.
async fn disable(p: Arc<dyn Provider>, ctx: Ctx, usage: KeyUsage) -> CaseResult {
    let (key, alg) = fresh_key(&ctx, Some(usage), "dis").await?;
    let r = KeyRef::new(&key.name);
    let before = Artifact::make(&*p, &r, alg, "before disable").await.during(format!("{alg}"))?;
    let info = p.set_key_state(&r, KeyState::Disabled).await.during("set_key_state(disabled)")?;
    ensure!(info.state == KeyState::Disabled, "set_key_state(disabled) returned state {}", info.state);
    expect_state(&*p, &r, KeyState::Disabled, "after disabling").await?;
    let reason = Some(&UnusableReason::Disabled);
    expect_unusable(
        format!("{alg} with a disabled key"),
        Artifact::make(&*p, &r, alg, "disabled").await,
        reason,
    )?;
    expect_unusable(
        format!("opening a {} with a disabled key", before.what()),
        before.open(&*p, &r).await,
        reason,
    )?;
    let info = p.set_key_state(&r, KeyState::Enabled).await.during("set_key_state(enabled)")?;
    ensure!(info.state == KeyState::Enabled, "set_key_state(enabled) returned state {}", info.state);
    expect_state(&*p, &r, KeyState::Enabled, "after enabling again").await?;
    let after =
        Artifact::make(&*p, &r, alg, "enabled again").await.during(format!("{alg} after enabling again"))?;
    before.expect_opens(&*p, &r, "after enabling again").await?;
    after.expect_opens(&*p, &r, "after enabling again").await?;
    Ok(())
}

fn near(got: SystemTime, want: SystemTime, tolerance: Duration) -> bool {
    let diff = got.duration_since(want).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
    diff <= tolerance
}

/// Scheduling deletion makes the key PendingDeletion (refusing use and state changes)
/// with the right date; cancelling brings it back disabled; enabled, it works again.
async fn schedule_cancel(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let policy = ctx.capabilities().deletion;
    let window = if policy.min_window.is_zero() { DAY.min(policy.max_window) } else { policy.min_window };
    let (key, alg) = fresh_key(&ctx, None, "del").await?;
    let r = KeyRef::new(&key.name);
    let before = Artifact::make(&*p, &r, alg, "before deletion").await.during(format!("{alg}"))?;
    let now = SystemTime::now();
    let d = p
        .schedule_deletion(&r, Some(window))
        .await
        .during(format!("schedule_deletion in {} s", window.as_secs()))?;
    ensure!(d.key == key.name, "the deletion names key '{}'", d.key);
    ensure!(!d.immediate, "a deletion scheduled {} s ahead says it was immediate", window.as_secs());
    ensure!(
        near(d.deletion_date, now + window, DAY + SLACK),
        "the deletion date is not about {} s from now",
        window.as_secs()
    );
    let info = expect_state(&*p, &r, KeyState::PendingDeletion, "after scheduling deletion").await?;
    ensure!(info.deletion_date.is_some(), "a key pending deletion has no deletion_date");
    let reason = Some(&UnusableReason::PendingDeletion);
    expect_unusable(
        format!("{alg} with a key pending deletion"),
        Artifact::make(&*p, &r, alg, "pending").await,
        reason,
    )?;
    expect_unusable(
        format!("opening a {} with a key pending deletion", before.what()),
        before.open(&*p, &r).await,
        None,
    )?;
    expect_unusable(
        "set_key_state(enabled) of a key pending deletion",
        p.set_key_state(&r, KeyState::Enabled).await,
        None,
    )?;
    let rotates = ctx.capabilities().spec(key.spec).is_some_and(|c| c.rotation);
    if rotates {
        expect_unusable("rotate_key of a key pending deletion", p.rotate_key(&r).await, None)?;
    }
    let back = p.cancel_deletion(&r).await.during("cancel_deletion")?;
    ensure!(
        back.state == KeyState::Disabled,
        "after cancel_deletion the key should be disabled, but it is {}",
        back.state
    );
    ensure!(back.deletion_date.is_none(), "after cancel_deletion the key still has a deletion date");
    expect_state(&*p, &r, KeyState::Disabled, "after cancelling the deletion").await?;
    expect_err("cancel_deletion when none is scheduled", p.cancel_deletion(&r).await, &[Kind::InvalidInput])?;
    p.set_key_state(&r, KeyState::Enabled).await.during("set_key_state(enabled) after cancelling")?;
    before.expect_opens(&*p, &r, "after the deletion was cancelled").await?;
    Artifact::make(&*p, &r, alg, "restored")
        .await
        .during(format!("{alg} after the deletion was cancelled"))?;
    Ok(())
}

/// Without a window, the policy's default window applies.
async fn default_window(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let policy = ctx.capabilities().deletion;
    let (key, _) = fresh_key(&ctx, None, "dfl").await?;
    let r = KeyRef::new(&key.name);
    let now = SystemTime::now();
    let d = p.schedule_deletion(&r, None).await.during("schedule_deletion with the default window")?;
    if policy.default_window.is_zero() {
        ensure!(d.immediate, "the default window is zero but the deletion was not immediate");
        return Ok(());
    }
    ensure!(
        !d.immediate,
        "the default window is {} s but the deletion was immediate",
        policy.default_window.as_secs()
    );
    ensure!(
        near(d.deletion_date, now + policy.default_window, DAY + SLACK),
        "the deletion date is not about the default window ({} s) from now",
        policy.default_window.as_secs()
    );
    expect_state(&*p, &r, KeyState::PendingDeletion, "after scheduling deletion").await?;
    if policy.cancellable {
        // So that cleanup can delete it with the shortest window.
        p.cancel_deletion(&r).await.during("cancel_deletion")?;
    }
    Ok(())
}

/// Windows outside the policy are InvalidInput and schedule nothing.
async fn window_bounds(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let policy = ctx.capabilities().deletion;
    let (key, _) = fresh_key(&ctx, None, "win").await?;
    let r = KeyRef::new(&key.name);
    let too_long = policy.max_window + DAY;
    expect_err(
        format!(
            "schedule_deletion in {} s (over the maximum {} s)",
            too_long.as_secs(),
            policy.max_window.as_secs()
        ),
        p.schedule_deletion(&r, Some(too_long)).await,
        &[Kind::InvalidInput],
    )?;
    if !policy.min_window.is_zero() {
        let too_short = if policy.min_window > DAY { policy.min_window - DAY } else { policy.min_window / 2 };
        expect_err(
            format!(
                "schedule_deletion in {} s (under the minimum {} s)",
                too_short.as_secs(),
                policy.min_window.as_secs()
            ),
            p.schedule_deletion(&r, Some(too_short)).await,
            &[Kind::InvalidInput],
        )?;
    }
    expect_state(&*p, &r, KeyState::Enabled, "after refused deletion requests").await?;
    Ok(())
}

/// A zero window deletes at once: the key is gone from get_key, list and use.
async fn immediate(p: Arc<dyn Provider>, ctx: Ctx) -> CaseResult {
    let (key, alg) = fresh_key(&ctx, None, "imm").await?;
    let r = KeyRef::new(&key.name);
    let d =
        p.schedule_deletion(&r, Some(Duration::ZERO)).await.during("schedule_deletion with a zero window")?;
    ensure!(d.immediate, "a zero-window deletion did not report immediate = true");
    expect_err("get_key of a deleted key", p.get_key(&r).await, &[Kind::NotFound])?;
    let listed = p.list_all(ListKeys::new().name_prefix(&key.name)).await.during("list_keys")?;
    ensure!(listed.iter().all(|k| k.name != key.name), "a deleted key is still listed");
    expect_err(
        format!("{alg} with a deleted key"),
        Artifact::make(&*p, &r, alg, "deleted").await,
        &[Kind::NotFound],
    )?;
    Ok(())
}
