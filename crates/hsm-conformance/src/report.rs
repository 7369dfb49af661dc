//! The programmatic front end: run every case and get a [`Report`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use hsm_core::Provider;

use crate::case::Case;
use crate::cases::cases;
use crate::ctx::Ctx;
use crate::options::Options;

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The provider's [`name`](Provider::name).
    pub provider: String,
    /// The run's key-name prefix (every key the run created starts with it).
    pub key_prefix: String,
    /// Names of the cases that passed.
    pub passed: Vec<String>,
    /// Cases that failed, with why.
    pub failed: Vec<(String, String)>,
    /// Cases that did not run, with why (undeclared capability or a known gap).
    pub ignored: Vec<(String, String)>,
    /// Problems met while deleting the run's keys at the end (not case failures).
    pub cleanup_problems: Vec<String>,
}

impl Report {
    /// True when no case failed.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
    }

    /// The names of the failed cases.
    pub fn failed_names(&self) -> Vec<&str> {
        self.failed.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Why `case` was ignored, if it was.
    pub fn ignored_reason(&self, case: &str) -> Option<&str> {
        self.ignored.iter().find(|(n, _)| n == case).map(|(_, r)| r.as_str())
    }

    /// Every case reported, whatever its outcome.
    pub fn total(&self) -> usize {
        self.passed.len() + self.failed.len() + self.ignored.len()
    }

    /// Panics with the full report when a case failed.
    ///
    /// # Panics
    /// When [`is_success`](Self::is_success) is false.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(self.is_success(), "{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hsm-conformance on provider '{}' (keys {}-*): {} passed, {} failed, {} ignored",
            self.provider,
            self.key_prefix,
            self.passed.len(),
            self.failed.len(),
            self.ignored.len()
        )?;
        for (name, why) in &self.failed {
            writeln!(f, "FAILED {name}: {why}")?;
        }
        for (name, why) in &self.ignored {
            writeln!(f, "ignored {name}: {why}")?;
        }
        for p in &self.cleanup_problems {
            writeln!(f, "cleanup: {p}")?;
        }
        Ok(())
    }
}

/// What a factory may return: an `Arc<dyn Provider>`, an `Arc` of a concrete provider,
/// or a `Result` of either (an `Err` fails the run's setup with its message).
pub trait IntoProvider {
    /// The provider, or why it could not be made.
    ///
    /// # Errors
    /// The factory's error, as text.
    fn into_provider(self) -> Result<Arc<dyn Provider>, String>;
}

impl IntoProvider for Arc<dyn Provider> {
    fn into_provider(self) -> Result<Arc<dyn Provider>, String> {
        Ok(self)
    }
}

impl<P: Provider> IntoProvider for Arc<P> {
    fn into_provider(self) -> Result<Arc<dyn Provider>, String> {
        Ok(self)
    }
}

impl<T: IntoProvider, E: fmt::Display> IntoProvider for Result<T, E> {
    fn into_provider(self) -> Result<Arc<dyn Provider>, String> {
        self.map_err(|e| format!("the provider factory failed: {e}"))?.into_provider()
    }
}

/// The selected cases with the reason each one is skipped (if it is).
pub(crate) fn plan(caps: &hsm_core::Capabilities, options: &Options) -> Vec<(Case, Option<String>)> {
    cases(caps)
        .into_iter()
        .filter(|c| options.selects(&c.name))
        .map(|c| {
            let reason = c.skip_reason(caps).or_else(|| options.ignored_reason(&c.name).map(str::to_owned));
            (c, reason)
        })
        .collect()
}

/// Runs one case with the options' timeout.
pub(crate) async fn run_one(
    case: &Case,
    provider: Arc<dyn Provider>,
    ctx: Ctx,
    options: &Options,
) -> Result<(), String> {
    match tokio::time::timeout(options.timeout(), case.run(provider, ctx)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(f)) => Err(f.to_string()),
        Err(_) => Err(format!("timed out after {} s", options.timeout().as_secs())),
    }
}

/// Runs every selected case against `provider` ([`Options::concurrency`] at a time),
/// then deletes the keys the run created (unless [`Options::cleanup`] is off).
///
/// Needs a tokio runtime (cases spawn tasks); a multi-thread one exercises concurrency best.
/// A case that panics is reported as failed.
pub async fn run_cases(provider: Arc<dyn Provider>, options: &Options) -> Report {
    let mut report = Report { provider: provider.name().to_owned(), ..Report::default() };
    let ctx = match Ctx::new(provider.clone(), options) {
        Ok(ctx) => ctx,
        Err(f) => {
            report.failed.push(("setup".to_owned(), f.to_string()));
            return report;
        }
    };
    report.key_prefix = ctx.run_prefix().to_owned();
    let plan = plan(provider.capabilities(), options);
    let limit = Arc::new(tokio::sync::Semaphore::new(options.concurrency_limit()));
    let mut set = tokio::task::JoinSet::new();
    let mut outcomes: Vec<(String, Outcome)> = Vec::new();
    for (case, reason) in plan {
        if let Some(reason) = reason {
            outcomes.push((case.name.clone(), Outcome::Ignored(reason)));
            continue;
        }
        let (provider, ctx, limit, options) = (provider.clone(), ctx.clone(), limit.clone(), options.clone());
        let name = case.name.clone();
        let handle = set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            run_one(&case, provider, ctx, &options).await
        });
        outcomes.push((name, Outcome::Running(handle.id())));
    }
    let mut results = std::collections::HashMap::new();
    while let Some(joined) = set.join_next_with_id().await {
        match joined {
            Ok((id, r)) => results.insert(id, r),
            Err(e) => results.insert(e.id(), Err(panic_message(e))),
        };
    }
    for (name, outcome) in outcomes {
        match outcome {
            Outcome::Ignored(reason) => report.ignored.push((name, reason)),
            Outcome::Running(id) => match results.remove(&id) {
                Some(Ok(())) => report.passed.push(name),
                Some(Err(why)) => report.failed.push((name, why)),
                None => report.failed.push((name, "the case never finished".to_owned())),
            },
        }
    }
    if options.cleans_up() {
        report.cleanup_problems = ctx.cleanup().await;
    }
    report
}

enum Outcome {
    Ignored(String),
    Running(tokio::task::Id),
}

fn panic_message(e: tokio::task::JoinError) -> String {
    if e.is_cancelled() {
        return "the case was cancelled".to_owned();
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    format!("the case panicked: {text}")
}

/// Makes a provider with `factory` and runs the cases of one [group](crate::GROUPS).
/// What the [`conformance_tests!`](crate::conformance_tests) tests call.
pub async fn run_group<F, Fut, P>(factory: F, options: Options, group: &str) -> Report
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = P>,
    P: IntoProvider,
{
    let provider = match factory().await.into_provider() {
        Ok(p) => p,
        Err(e) => {
            return Report { failed: vec![(format!("{group}::setup"), e)], ..Report::default() };
        }
    };
    run_cases(provider, &options.within_group(group)).await
}
