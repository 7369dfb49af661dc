//! [`Retry`]: exponential backoff with full jitter, `Retry-After`, an overall deadline and a
//! retry budget, under the idempotency rule of the crate docs.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_core::{CreateKey, Error, KeyInfo, KeyRef, Provider, Result};
use tokio::time::Instant;

use crate::call::{Around, BoxFut, Call, Op, QuotaClass, plain_reads, provider_via_around};

/// Retry settings (`[retry]` in hsm's configuration).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts per operation, the first included (1 = never retry). Default 4.
    pub max_attempts: u32,
    /// Backoff before the first retry's jitter (doubles per retry). Default 50 ms.
    pub initial_backoff: Duration,
    /// Largest backoff before jitter. Default 5 s.
    pub max_backoff: Duration,
    /// No retry starts after this much time since the operation began; `None` = no bound
    /// other than the attempts. Default 30 s.
    pub deadline: Option<Duration>,
    /// The retry budget shared by every operation through this layer.
    pub budget: BudgetConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            deadline: Some(Duration::from_secs(30)),
            budget: BudgetConfig::default(),
        }
    }
}

impl RetryConfig {
    /// Never retry.
    pub fn disabled() -> Self {
        RetryConfig { max_attempts: 1, ..RetryConfig::default() }
    }

    /// Sets [`max_attempts`](Self::max_attempts) (at least 1).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff) and [`max_backoff`](Self::max_backoff).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets [`deadline`](Self::deadline).
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets [`budget`](Self::budget).
    pub fn with_budget(mut self, budget: BudgetConfig) -> Self {
        self.budget = budget;
        self
    }
}

/// The retry token bucket, modelled on the AWS SDKs' standard retry mode: a retry costs
/// [`retry_cost`](Self::retry_cost) tokens ([`timeout_cost`](Self::timeout_cost) after a
/// timeout), a first-attempt success returns one token, a successful retry returns what it
/// cost. An empty bucket means no more retries (first attempts always go out), so a dead
/// backend sees about `capacity / retry_cost` retries in total, not `max_attempts` per call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetConfig {
    /// Tokens when full (default 500).
    pub capacity: u32,
    /// Tokens a retry costs (default 5).
    pub retry_cost: u32,
    /// Tokens a retry after a timeout costs (default 10).
    pub timeout_cost: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig { capacity: 500, retry_cost: 5, timeout_cost: 10 }
    }
}

impl BudgetConfig {
    /// A budget of `capacity` tokens where a retry costs `retry_cost` (`timeout_cost` after a
    /// timeout).
    pub fn new(capacity: u32, retry_cost: u32, timeout_cost: u32) -> Self {
        BudgetConfig { capacity, retry_cost, timeout_cost }
    }

    /// A budget of `capacity` tokens with the default costs.
    pub fn with_capacity(capacity: u32) -> Self {
        BudgetConfig { capacity, ..BudgetConfig::default() }
    }
}

/// The token bucket of [`BudgetConfig`]; cheap to share between layers of one provider.
#[derive(Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    tokens: Mutex<u32>,
}

impl RetryBudget {
    /// A full bucket.
    pub fn new(config: BudgetConfig) -> Self {
        RetryBudget { tokens: Mutex::new(config.capacity), config }
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cost(&self, e: &Error) -> u32 {
        if matches!(e, Error::Timeout { .. }) { self.config.timeout_cost } else { self.config.retry_cost }
    }

    fn try_take(&self, n: u32) -> bool {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if *t >= n {
            *t -= n;
            true
        } else {
            false
        }
    }

    fn give(&self, n: u32) {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *t = (*t).saturating_add(n).min(self.config.capacity);
    }
}

/// True when `e` proves the request was refused before the service acted on it, so a
/// key-changing operation may be sent again: only [`Error::Throttled`] (the service's own
/// "slow down", answered before any processing). `Unavailable` and `Timeout` are ambiguous
/// (a 5xx, a reset or a lost answer can come after the change was made).
pub fn never_reached_service(e: &Error) -> bool {
    matches!(e, Error::Throttled { .. })
}

/// What a retry loop may do with a given operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Retry every retryable error.
    Idempotent,
    /// Retry only errors that prove the request never reached the service.
    Unprocessed,
    /// `create_key`: retry every retryable error, remembering an ambiguous one.
    Create,
}

/// The retry layer; see the crate docs for the rules.
pub struct Retry {
    inner: Arc<dyn Provider>,
    config: RetryConfig,
    budget: Arc<RetryBudget>,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry").field("inner", &self.inner.name()).field("config", &self.config).finish()
    }
}

impl Retry {
    /// Wraps `inner` with its own budget.
    pub fn new(inner: Arc<dyn Provider>, config: RetryConfig) -> Self {
        let budget = Arc::new(RetryBudget::new(config.budget.clone()));
        Retry { inner, config, budget }
    }

    /// Wraps `inner`, sharing `budget` (e.g. one budget per provider endpoint).
    pub fn with_budget(inner: Arc<dyn Provider>, config: RetryConfig, budget: Arc<RetryBudget>) -> Self {
        Retry { inner, config, budget }
    }

    /// The layer's retry budget.
    pub fn budget(&self) -> &Arc<RetryBudget> {
        &self.budget
    }

    fn backoff(&self, retry: u32, e: &Error) -> Duration {
        let exp = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.config.max_backoff);
        // Full jitter: uniform in [0, exp].
        let jittered = exp.mul_f64(fastrand::f64());
        match e.retry_after() {
            Some(ra) => ra.max(jittered),
            None => jittered,
        }
    }

    /// The retry loop. Returns the result and whether an ambiguous failure happened.
    async fn run<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        policy: Policy,
        f: &mut (impl FnMut() -> BoxFut<'a, T> + Send + 'a),
    ) -> (Result<T>, bool) {
        let provider = self.inner.name();
        let started = Instant::now();
        let mut ambiguous = false;
        let mut attempt: u32 = 1;
        loop {
            let t0 = Instant::now();
            let result = f().await;
            let latency = t0.elapsed();
            let err = match result {
                Ok(v) => {
                    tracing::debug!(
                        provider,
                        operation = call.op.as_str(),
                        attempt,
                        outcome = "ok",
                        latency_ms = latency.as_millis() as u64,
                        "attempt"
                    );
                    metrics::counter!(crate::metrics_names::ATTEMPTS, "provider" => provider, "operation" => call.op.as_str(), "outcome" => "ok").increment(1);
                    if attempt == 1 {
                        self.budget.give(1);
                    } else {
                        self.budget.give(self.budget.config.retry_cost);
                    }
                    return (Ok(v), ambiguous);
                }
                Err(e) => e,
            };
            metrics::counter!(crate::metrics_names::ATTEMPTS, "provider" => provider, "operation" => call.op.as_str(), "outcome" => err.kind()).increment(1);
            if matches!(err, Error::Throttled { .. }) {
                metrics::counter!(crate::metrics_names::THROTTLES, "provider" => provider, "operation" => call.op.as_str()).increment(1);
            }
            let retry_after_ms = err.retry_after().map(|d| d.as_millis() as u64);
            let give_up = |why: &'static str, err: Error| {
                tracing::debug!(
                    provider,
                    operation = call.op.as_str(),
                    attempt,
                    outcome = err.kind(),
                    retry_after_ms,
                    latency_ms = latency.as_millis() as u64,
                    give_up = why,
                    "attempt"
                );
                err
            };
            if !err.is_retryable() {
                return (Err(give_up("not retryable", err)), ambiguous);
            }
            let reached = !never_reached_service(&err);
            match policy {
                Policy::Idempotent => {}
                Policy::Unprocessed if reached => {
                    return (Err(give_up("not idempotent and may have reached the service", err)), ambiguous);
                }
                Policy::Unprocessed => {}
                Policy::Create => ambiguous |= reached,
            }
            if attempt >= self.config.max_attempts {
                return (Err(give_up("attempts exhausted", err)), ambiguous);
            }
            let delay = self.backoff(attempt, &err);
            if let Some(deadline) = self.config.deadline
                && started.elapsed() + delay >= deadline
            {
                return (Err(give_up("deadline", err)), ambiguous);
            }
            if !self.budget.try_take(self.budget.cost(&err)) {
                metrics::counter!(crate::metrics_names::BUDGET_EXHAUSTED, "provider" => provider, "operation" => call.op.as_str()).increment(1);
                return (Err(give_up("retry budget exhausted", err)), ambiguous);
            }
            tracing::debug!(
                provider,
                operation = call.op.as_str(),
                attempt,
                outcome = err.kind(),
                retry_after_ms,
                latency_ms = latency.as_millis() as u64,
                backoff_ms = delay.as_millis() as u64,
                "attempt; retrying"
            );
            metrics::counter!(crate::metrics_names::RETRIES, "provider" => provider, "operation" => call.op.as_str(), "reason" => err.kind()).increment(1);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    plain_reads!();

    async fn create(&self, req: CreateKey) -> Result<KeyInfo> {
        let name = req.name.clone();
        let (spec, usage) = (req.spec, req.usage);
        let call = Call::new(Op::CreateKey, QuotaClass::Control, &name);
        let (result, ambiguous) =
            self.run(call, Policy::Create, &mut || self.inner.create_key(req.clone())).await;
        match result {
            Err(Error::AlreadyExists { provider, key }) if ambiguous => {
                // An earlier attempt may have created the key before its answer was lost.
                let info = self.inner.get_key(&KeyRef::new(name.as_str())).await?;
                let fresh = info.state != hsm_core::KeyState::PendingDeletion;
                if fresh && info.spec == spec && usage.is_none_or(|u| u == info.usage) {
                    tracing::debug!(
                        provider,
                        operation = "create_key",
                        "an interrupted attempt created the key; returning it"
                    );
                    Ok(info)
                } else {
                    Err(Error::AlreadyExists { provider, key })
                }
            }
            other => other,
        }
    }
}

impl Around for Retry {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut f: impl FnMut() -> BoxFut<'a, T> + Send + 'a,
    ) -> BoxFut<'a, T> {
        let policy = if call.op.is_idempotent() { Policy::Idempotent } else { Policy::Unprocessed };
        Box::pin(async move { self.run(call, policy, &mut f).await.0 })
    }
}

provider_via_around!(Retry);
