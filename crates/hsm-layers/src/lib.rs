//! Resilience and observability layers over any hsm [`Provider`]: each is a wrapper that
//! implements `Provider` over an `Arc<dyn Provider>`, so they work over every backend and
//! over a third party's provider.
//!
//! | layer | what it does |
//! |---|---|
//! | [`Observe`] | a `tracing` span per operation; `hsm_requests_total`, `hsm_request_duration_seconds` |
//! | [`Cache`] | key metadata and public keys with a TTL, single-flight misses; optional local verification |
//! | [`Timeout`] | a deadline per call of what it wraps → [`Error::Timeout`] |
//! | [`Retry`] | exponential backoff with full jitter, `Retry-After`, deadline, retry budget |
//! | [`RateLimit`] | GCRA per quota class at ~80 % of the vendor's quota, adaptive (cut to 70 % of the accepted rate on a throttle, cubic regrowth) |
//! | [`Concurrency`] | at most N calls in flight (bounds blocking PKCS#11 calls) |
//!
//! [`layered`] stacks them, outermost first: `Observe → Cache → Timeout(operation) → Retry →
//! RateLimit → Timeout(attempt) → Concurrency → provider`. The cache answers before anything
//! is sent; the operation deadline bounds retries and backoffs; every attempt passes the rate
//! limiter (so retries spend quota like first attempts, and the limiter sees each `Throttled`)
//! and gets its own attempt deadline.
//!
//! # One owner of retries
//!
//! The vendor SDKs retry on their own (AWS 3 attempts, Azure up to 9, Google 10 for GET/PUT/
//! DELETE only); stacked under [`Retry`] their attempts multiply. hsm's configuration turns
//! the SDKs' retries off when it applies these layers and keeps their per-attempt timeouts.
//!
//! # The retry rule
//!
//! * Only errors with [`Error::is_retryable`] are retried: `Throttled`, `Unavailable`,
//!   `Timeout`. Everything else costs exactly one request.
//! * **Data-plane and read operations** (`encrypt`, `decrypt`, `sign`, `verify`, `wrap_key`,
//!   `unwrap_key`, `mac`, `verify_mac`, `get_key`, `list_keys`, `public_key`) change nothing
//!   at the service and are always retried.
//! * **Key-changing operations** (`rotate_key`, `set_key_state`, `schedule_deletion`,
//!   `cancel_deletion`) are retried only after an error that proves the request never reached
//!   the service: [`Error::Throttled`] (the service refused before processing; see
//!   [`never_reached_service`]). `Unavailable` (a 5xx, a reset, a refused or failed
//!   connection — the providers do not tell these apart) and `Timeout` are ambiguous: the
//!   change may have been made, so they are returned to the caller.
//! * **`create_key`** is retried after every retryable error. If a retry then answers
//!   `AlreadyExists` after an ambiguous failure, the layer reads the key: when it has the
//!   requested spec (and usage, if one was asked), the interrupted attempt created it and it
//!   is returned; otherwise the `AlreadyExists` stands.
//! * Backoff before retry *n* is uniform in `[0, min(max_backoff, initial × 2ⁿ⁻¹)]` (full
//!   jitter), or the service's `Retry-After` when that is longer.
//! * No retry starts past the deadline, past `max_attempts`, or when the retry budget (a
//!   token bucket per layer, like the AWS SDKs') is empty.
//!
//! # Metrics
//!
//! Through the [`metrics`] facade (free when no recorder is installed). Labels are only
//! `provider`, `operation`, `outcome` (`ok` or [`Error::kind`]), `reason`, `class`, `kind`:
//! never key names, key material or data.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `hsm_requests_total` | counter | provider, operation, outcome | operations as the caller saw them |
//! | `hsm_request_duration_seconds` | histogram | provider, operation, outcome | operation latency, retries included |
//! | `hsm_attempts_total` | counter | provider, operation, outcome | requests sent to the provider |
//! | `hsm_retries_total` | counter | provider, operation, reason | retries, by the error that caused them |
//! | `hsm_throttles_total` | counter | provider, operation | `Throttled` answers |
//! | `hsm_retry_budget_exhausted_total` | counter | provider, operation | retries refused by the budget |
//! | `hsm_cache_hits_total` / `hsm_cache_misses_total` | counter | provider, kind (`metadata`, `public_key`) | cache lookups |
//! | `hsm_rate_limit_wait_seconds` | histogram | provider, class | time spent waiting for the rate limiter |
//! | `hsm_rate_limit_rate` | gauge | provider, class | the adapted rate after a change |
//!
//! # Tracing
//!
//! [`Observe`] opens a `DEBUG` span `hsm.operation` (provider, operation, key name);
//! [`Retry`] emits one `DEBUG` event per attempt (`attempt`, `outcome`, `latency_ms`,
//! `retry_after_ms`, `backoff_ms` or `give_up`).
//!
//! ```
//! use std::sync::Arc;
//! use hsm_core::Provider;
//! use hsm_layers::{LayerConfig, layered};
//! fn resilient(p: Arc<dyn Provider>) -> Arc<dyn Provider> {
//!     let config = LayerConfig::for_provider(p.name());
//!     layered(p, &config)
//! }
//! # let _ = resilient;
//! ```

mod cache;
mod call;
mod observe;
mod ratelimit;
mod retry;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use hsm_core::Error;
use hsm_core::Provider;

pub use cache::{Cache, CacheConfig};
pub use call::{Op, QuotaClass};
pub use observe::Observe;
pub use ratelimit::{RateLimit, RateLimitConfig};
pub use retry::{BudgetConfig, Retry, RetryBudget, RetryConfig, never_reached_service};
pub use timeout::{Concurrency, Timeout};

/// The metric names (see the crate docs for labels).
pub mod metrics_names {
    /// Operations as the caller saw them.
    pub const REQUESTS: &str = "hsm_requests_total";
    /// Operation latency in seconds, retries included.
    pub const REQUEST_DURATION: &str = "hsm_request_duration_seconds";
    /// Requests sent to the provider (one per attempt).
    pub const ATTEMPTS: &str = "hsm_attempts_total";
    /// Retries.
    pub const RETRIES: &str = "hsm_retries_total";
    /// `Throttled` answers.
    pub const THROTTLES: &str = "hsm_throttles_total";
    /// Retries refused because the retry budget was empty.
    pub const BUDGET_EXHAUSTED: &str = "hsm_retry_budget_exhausted_total";
    /// Cache hits.
    pub const CACHE_HITS: &str = "hsm_cache_hits_total";
    /// Cache misses.
    pub const CACHE_MISSES: &str = "hsm_cache_misses_total";
    /// Seconds spent waiting for the rate limiter.
    pub const RATE_LIMIT_WAIT: &str = "hsm_rate_limit_wait_seconds";
    /// The adapted rate of a quota class.
    pub const RATE_LIMIT_RATE: &str = "hsm_rate_limit_rate";
}

/// Timeouts (`[timeout]` in hsm's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// Bound on one attempt (default 10 s).
    pub attempt: Option<Duration>,
    /// Bound on one operation, retries and backoffs included (default 30 s).
    pub operation: Option<Duration>,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig { attempt: Some(Duration::from_secs(10)), operation: Some(Duration::from_secs(30)) }
    }
}

impl TimeoutConfig {
    /// Sets both bounds.
    pub fn new(attempt: Option<Duration>, operation: Option<Duration>) -> Self {
        TimeoutConfig { attempt, operation }
    }
}

/// Which layers [`layered`] applies, and how.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LayerConfig {
    /// Retries (`None` = no retry layer).
    pub retry: Option<RetryConfig>,
    /// Timeouts.
    pub timeout: TimeoutConfig,
    /// Rate limits (`None` = no rate-limit layer).
    pub rate_limit: Option<RateLimitConfig>,
    /// Cache (`None` = no cache layer).
    pub cache: Option<CacheConfig>,
    /// Bound on calls in flight (`None` = no bound).
    pub concurrency: Option<usize>,
    /// Span and per-operation metrics (default on).
    pub observe: bool,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            retry: Some(RetryConfig::default()),
            timeout: TimeoutConfig::default(),
            rate_limit: None,
            cache: Some(CacheConfig::default()),
            concurrency: None,
            observe: true,
        }
    }
}

impl LayerConfig {
    /// The defaults for a provider, by its [`name`](Provider::name): retries, timeouts,
    /// cache, and the vendor's rate limits ([`RateLimitConfig::for_provider`]); PKCS#11 gets
    /// a bound of 16 calls in flight.
    pub fn for_provider(name: &str) -> Self {
        let rate = RateLimitConfig::for_provider(name);
        LayerConfig {
            rate_limit: (!rate.is_unlimited()).then_some(rate),
            concurrency: (name == "pkcs11").then_some(16),
            ..LayerConfig::default()
        }
    }

    /// No layer at all: [`layered`] returns the provider unchanged.
    pub fn none() -> Self {
        LayerConfig {
            retry: None,
            timeout: TimeoutConfig::new(None, None),
            rate_limit: None,
            cache: None,
            concurrency: None,
            observe: false,
        }
    }

    /// True when a retry layer is applied (so the SDK's own retries should be off).
    pub fn retries(&self) -> bool {
        self.retry.as_ref().is_some_and(|r| r.max_attempts > 1)
    }
}

/// Stacks the layers `config` asks for over `provider`, outermost first: `Observe → Cache →
/// Timeout(operation) → Retry → RateLimit → Timeout(attempt) → Concurrency → provider`.
pub fn layered(provider: Arc<dyn Provider>, config: &LayerConfig) -> Arc<dyn Provider> {
    let mut p = provider;
    if let Some(n) = config.concurrency {
        p = Arc::new(Concurrency::new(p, n));
    }
    if let Some(d) = config.timeout.attempt {
        p = Arc::new(Timeout::new(p, d));
    }
    if let Some(r) = config.rate_limit.as_ref().filter(|r| !r.is_unlimited()) {
        p = Arc::new(RateLimit::new(p, r.clone()));
    }
    if let Some(r) = config.retry.as_ref().filter(|r| r.max_attempts > 1) {
        p = Arc::new(Retry::new(p, r.clone()));
    }
    if let Some(d) = config.timeout.operation {
        p = Arc::new(Timeout::new(p, d));
    }
    if let Some(c) = &config.cache {
        p = Arc::new(Cache::new(p, c.clone()));
    }
    if config.observe {
        p = Arc::new(Observe::new(p));
    }
    p
}
