//! [`RateLimit`]: client-side GCRA rate limiting per quota class, adaptive (AIMD).

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use hsm_core::{Error, Provider, Result};
use tokio::time::Instant;

use crate::call::{Around, BoxFut, Call, QuotaClass, plain_create, plain_reads, provider_via_around};

/// Rate-limit settings (`[rate_limit]` in hsm's configuration): requests per second per
/// [`QuotaClass`], `None` for no limit.
///
/// [`for_provider`](Self::for_provider) gives defaults at about 80 % of each vendor's
/// documented quotas:
///
/// | provider | symmetric | RSA | ECC | metadata | control |
/// |---|---|---|---|---|---|
/// | `aws-kms` (per account and region; smallest regions) | 4,400/s (5,500) | 400/s (500) | 240/s (300) | 1,600/s (2,000) | 40/s (CreateKey 50) |
/// | `azure-keyvault` (per vault, 10 s windows, RSA-2048 HSM / ECC HSM) | 160/s (2,000/10 s) | 160/s | 160/s | 160/s | 8/s |
/// | `gcp-kms` (per project and region) | 800/s (60,000/min) | 800/s | 800/s | 4,000/s (300,000/min) | 800/s |
///
/// Other providers (local, PKCS#11, third parties) are not limited by default.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Requests per second for each class, indexed as [`QuotaClass`]: symmetric, RSA, ECC,
    /// metadata, control.
    pub rates: [Option<f64>; 5],
    /// Burst allowance in seconds' worth of the rate (default 0.1 s, at least one request).
    pub burst: Duration,
    /// Cut the rate by [`decrease`](Self::decrease) on `Throttled` and recover by 5 % of the
    /// configured rate per second without throttling (default on).
    pub adaptive: bool,
    /// Factor applied to the rate on throttling (default 0.7), at most once per 500 ms.
    pub decrease: f64,
    /// The adaptive rate never drops below this fraction of the configured rate (default 0.05).
    pub floor: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rates: [None; 5],
            burst: Duration::from_millis(100),
            adaptive: true,
            decrease: 0.7,
            floor: 0.05,
        }
    }
}

impl RateLimitConfig {
    /// No limits.
    pub fn unlimited() -> Self {
        RateLimitConfig::default()
    }

    /// The defaults for a provider, by its [`name`](Provider::name) (table above).
    pub fn for_provider(name: &str) -> Self {
        let rates = match name {
            "aws-kms" => [Some(4400.0), Some(400.0), Some(240.0), Some(1600.0), Some(40.0)],
            "azure-keyvault" => [Some(160.0), Some(160.0), Some(160.0), Some(160.0), Some(8.0)],
            "gcp-kms" => [Some(800.0), Some(800.0), Some(800.0), Some(4000.0), Some(800.0)],
            _ => [None; 5],
        };
        RateLimitConfig { rates, ..RateLimitConfig::default() }
    }

    /// Sets the rate of one class (`None` = unlimited).
    pub fn with_rate(mut self, class: QuotaClass, per_second: Option<f64>) -> Self {
        self.rates[class.index()] = per_second.filter(|r| r.is_finite() && *r > 0.0);
        self
    }

    /// Sets every class to the same rate.
    pub fn with_all(mut self, per_second: Option<f64>) -> Self {
        for c in QuotaClass::ALL {
            self = self.with_rate(c, per_second);
        }
        self
    }

    /// Turns adaptive rate control on or off.
    pub fn with_adaptive(mut self, on: bool) -> Self {
        self.adaptive = on;
        self
    }

    /// True when no class is limited.
    pub fn is_unlimited(&self) -> bool {
        self.rates.iter().all(Option::is_none)
    }
}

/// A governor clock on tokio's time, so paused-time tests see the limiter wait.
#[derive(Debug, Clone)]
struct TokioClock {
    base: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.base.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

struct ClassState {
    rate: f64,
    limiter: Arc<Limiter>,
    last_change: Instant,
}

struct Class {
    configured: f64,
    state: Mutex<ClassState>,
}

/// The rate-limit layer; see [`RateLimitConfig`].
pub struct RateLimit {
    inner: Arc<dyn Provider>,
    config: RateLimitConfig,
    clock: TokioClock,
    classes: [Option<Class>; 5],
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit").field("inner", &self.inner.name()).field("config", &self.config).finish()
    }
}

fn limiter(rate: f64, burst: Duration, clock: &TokioClock) -> Arc<Limiter> {
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let burst = NonZeroU32::new((rate * burst.as_secs_f64()).floor().clamp(1.0, 1e6) as u32)
        .unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    Arc::new(RateLimiter::direct_with_clock(quota, clock.clone()))
}

impl RateLimit {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>, config: RateLimitConfig) -> Self {
        let clock = TokioClock { base: Instant::now() };
        let classes = QuotaClass::ALL.map(|c| {
            config.rates[c.index()].map(|rate| Class {
                configured: rate,
                state: Mutex::new(ClassState {
                    rate,
                    limiter: limiter(rate, config.burst, &clock),
                    last_change: Instant::now(),
                }),
            })
        });
        RateLimit { inner, config, clock, classes }
    }

    /// The current (adapted) rate of a class, `None` when unlimited.
    pub fn current_rate(&self, class: QuotaClass) -> Option<f64> {
        self.classes[class.index()].as_ref().map(|c| c.state.lock().unwrap_or_else(|p| p.into_inner()).rate)
    }

    async fn acquire(&self, class: QuotaClass) {
        let Some(c) = &self.classes[class.index()] else { return };
        let started = Instant::now();
        loop {
            let lim = c.state.lock().unwrap_or_else(|p| p.into_inner()).limiter.clone();
            match lim.check() {
                Ok(()) => break,
                Err(not_until) => tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await,
            }
        }
        let waited = started.elapsed();
        metrics::histogram!(crate::metrics_names::RATE_LIMIT_WAIT, "provider" => self.inner.name(), "class" => class.as_str())
            .record(waited.as_secs_f64());
    }

    fn observe<T>(&self, class: QuotaClass, result: &Result<T>) {
        if !self.config.adaptive {
            return;
        }
        let Some(c) = &self.classes[class.index()] else { return };
        let mut s = c.state.lock().unwrap_or_else(|p| p.into_inner());
        let since = s.last_change.elapsed();
        let new_rate = match result {
            Err(Error::Throttled { .. }) if since >= Duration::from_millis(500) => {
                (s.rate * self.config.decrease).max(c.configured * self.config.floor)
            }
            Ok(_) if s.rate < c.configured && since >= Duration::from_secs(1) => {
                (s.rate + c.configured * 0.05).min(c.configured)
            }
            _ => return,
        };
        if (new_rate - s.rate).abs() > f64::EPSILON {
            s.rate = new_rate;
            s.limiter = limiter(new_rate, self.config.burst, &self.clock);
            s.last_change = Instant::now();
            metrics::gauge!(crate::metrics_names::RATE_LIMIT_RATE, "provider" => self.inner.name(), "class" => class.as_str())
                .set(new_rate);
            tracing::debug!(
                provider = self.inner.name(),
                class = class.as_str(),
                rate = new_rate,
                "rate limit adapted"
            );
        }
    }

    plain_create!();
    plain_reads!();
}

impl Around for RateLimit {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut f: impl FnMut() -> BoxFut<'a, T> + Send + 'a,
    ) -> BoxFut<'a, T> {
        Box::pin(async move {
            self.acquire(call.class).await;
            let r = f().await;
            self.observe(call.class, &r);
            r
        })
    }
}

provider_via_around!(RateLimit);
