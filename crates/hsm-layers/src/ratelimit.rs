//! [`RateLimit`]: client-side GCRA rate limiting per quota class, adaptive (multiplicative
//! decrease to the accepted rate, cubic growth).

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
    /// Adapt the rate to what the service accepts (default on): on `Throttled`, cut it to
    /// [`decrease`](Self::decrease) times the rate requests were succeeding at (or the
    /// current rate, when fewer than 10 succeeded in the last second), at most once per
    /// 500 ms; without throttling, grow back along a cubic curve (as TCP CUBIC and the AWS
    /// SDKs' adaptive mode do): quickly at first, slowly near the rate of the last throttle,
    /// then probing above it, never past the configured rate. Several processes sharing one
    /// quota converge on shares of it.
    pub adaptive: bool,
    /// Factor applied on throttling (default 0.7).
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
    /// The rate cut from at the last throttle, and when (the cubic curve's origin).
    w_max: f64,
    cut_at: Option<Instant>,
    /// Successes counted in the current and the previous half-second.
    window_start: Instant,
    ok_now: u32,
    ok_before: u32,
}

/// CUBIC's scaling constant (requests/s per s³), as in the AWS SDKs' adaptive retry mode.
const CUBIC_C: f64 = 0.4;
/// Throttles closer together than this cut the rate once.
const CUT_COOLDOWN: Duration = Duration::from_millis(500);
/// The rate grows at most this often (each change rebuilds the limiter).
const GROW_EVERY: Duration = Duration::from_millis(250);

impl ClassState {
    fn count_success(&mut self) {
        let half = Duration::from_millis(500);
        let since = self.window_start.elapsed();
        if since >= 2 * half {
            (self.ok_before, self.ok_now, self.window_start) = (0, 0, Instant::now());
        } else if since >= half {
            (self.ok_before, self.ok_now, self.window_start) = (self.ok_now, 0, self.window_start + half);
        }
        self.ok_now = self.ok_now.saturating_add(1);
    }

    /// Successes per second over the last 0.5–1 s, when there were enough to tell.
    fn measured(&self) -> Option<f64> {
        let span = 0.5 + self.window_start.elapsed().as_secs_f64().min(0.5);
        let n = self.ok_now + self.ok_before;
        (self.window_start.elapsed() < Duration::from_secs(1) && n >= 10).then(|| f64::from(n) / span)
    }
}

struct Class {
    configured: f64,
    state: Mutex<ClassState>,
    /// Waiting callers take turns in arrival order (tokio's mutex is fair), so every caller
    /// waits about as long as the queue ahead of it takes: no caller starves while others
    /// that came later win the race for a freed slot.
    turn: tokio::sync::Mutex<()>,
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
                turn: tokio::sync::Mutex::new(()),
                state: Mutex::new(ClassState {
                    rate,
                    limiter: limiter(rate, config.burst, &clock),
                    last_change: Instant::now(),
                    w_max: rate,
                    cut_at: None,
                    window_start: Instant::now(),
                    ok_now: 0,
                    ok_before: 0,
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
        let _turn = c.turn.lock().await;
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
        let floor = c.configured * self.config.floor;
        let new_rate = match result {
            Err(Error::Throttled { .. }) if s.cut_at.is_none_or(|t| t.elapsed() >= CUT_COOLDOWN) => {
                // What the service was accepting is the best estimate of its limit.
                let base = s.measured().map_or(s.rate, |m| m.min(s.rate));
                s.w_max = base;
                s.cut_at = Some(Instant::now());
                (base * self.config.decrease).max(floor)
            }
            Ok(_) => {
                s.count_success();
                let Some(cut_at) = s.cut_at else { return };
                if s.rate >= c.configured || s.last_change.elapsed() < GROW_EVERY {
                    return;
                }
                // W(t) = C (t − K)³ + W_max, K = ∛(W_max (1 − β) / C): back at W_max after K s.
                let t = cut_at.elapsed().as_secs_f64();
                let k = (s.w_max * (1.0 - self.config.decrease) / CUBIC_C).cbrt();
                (CUBIC_C * (t - k).powi(3) + s.w_max).clamp(floor, c.configured)
            }
            _ => return,
        };
        let reaches_cap = new_rate >= c.configured && s.rate < c.configured;
        if (new_rate - s.rate).abs() > s.rate * 1e-3 || reaches_cap {
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
