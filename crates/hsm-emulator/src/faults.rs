//! Fault injection: a [`Handler`] wrapper that answers a seeded share of requests with the
//! vendor's real throttling and error answers, loses answers after the service acted, delays
//! or never answers, and counts every request.
//!
//! The spec is a comma-separated list (every entry optional):
//!
//! | entry | meaning |
//! |---|---|
//! | `throttle=20%` | answer the vendor's throttle before processing (AWS 400 `ThrottlingException`, Azure 429 `Throttled` with `Retry-After`, Google 429 `RESOURCE_EXHAUSTED`) |
//! | `error=5%` | answer the vendor's internal error before processing (AWS 500 `KMSInternalException`, Azure 503 `ServiceUnavailable`, Google 503 `UNAVAILABLE`) |
//! | `reset=5%` | process the request, then lose the answer: the connection closes mid-response |
//! | `latency=20ms..200ms` | delay every request uniformly in the range (`latency=50ms` for a fixed delay) |
//! | `blackhole=1%` | never answer (the client must time out) |
//! | `retry_after=1s` | the `Retry-After` Azure's 429 carries (default 1 s; whole seconds), and the `RetryInfo` delay in Google's |
//! | `seed=42` | the random seed (default 0), so a run is reproducible |
//!
//! ```
//! use hsm_emulator::faults::{FaultSpec, Vendor};
//! let spec: FaultSpec = "throttle=20%,error=5%,latency=20ms..200ms,seed=7".parse().unwrap();
//! assert_eq!(spec.throttle, 0.2);
//! # let _ = Vendor::Aws;
//! ```
//!
//! A [`QuotaSpec`] (`--quota 500/s`) adds a server-side rate limit that throttles like the
//! vendor: requests over the rate get the vendor's throttle answer before any processing,
//! with a burst allowance of one second's worth.
//!
//! On the command line every mode takes `--faults SPEC` and `--quota RATE` ([`FaultArgs`]),
//! and then answers `GET /_hsm_emulator/stats` with the counts as JSON (the request itself is
//! not counted):
//!
//! ```text
//! {"requests":1200,"throttled":180,"over_quota":120,"errors":60,"resets":0,"blackholed":0}
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::server::{Handler, HandlerFuture, Request, Response};

/// The path of the statistics endpoint every mode serves under `--faults` or `--quota`.
pub const STATS_PATH: &str = "/_hsm_emulator/stats";

/// A server-side request quota (`--quota`): `500/s`, `500` (per second) or `30000/min`.
///
/// ```
/// use hsm_emulator::faults::QuotaSpec;
/// let q: QuotaSpec = "30000/min".parse().unwrap();
/// assert_eq!(q.per_second(), 500.0);
/// assert!("fast".parse::<QuotaSpec>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaSpec {
    per_second: f64,
}

impl QuotaSpec {
    /// A quota of `n` requests per second.
    ///
    /// # Errors
    /// When `n` is not a positive finite number.
    pub fn per_second_of(n: f64) -> Result<Self, FaultSpecError> {
        if n.is_finite() && n > 0.0 && n <= 1e9 {
            Ok(QuotaSpec { per_second: n })
        } else {
            Err(FaultSpecError(format!("quota {n}: expected a positive number of requests")))
        }
    }

    /// Requests per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }
}

impl FromStr for QuotaSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (n, per) = match s.split_once('/') {
            Some((n, "s" | "sec" | "second")) => (n, 1.0),
            Some((n, "min" | "minute")) => (n, 60.0),
            Some((_, unit)) => {
                return Err(FaultSpecError(format!("quota {s}: unit {unit:?} is not s or min (e.g. 500/s)")));
            }
            None => (s, 1.0),
        };
        let n: f64 = n
            .trim()
            .parse()
            .map_err(|_| FaultSpecError(format!("quota {s}: expected requests per second, e.g. 500/s")))?;
        QuotaSpec::per_second_of(n / per)
    }
}

/// The command-line options every mode takes (`--faults`, `--quota`); see the module docs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultArgs {
    /// Inject faults: e.g. `throttle=20%,error=5%,reset=5%,latency=20ms..200ms,blackhole=0%,seed=1`
    /// (answers in the vendor's own throttle and error formats).
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<FaultSpec>,
    /// Server-side rate limit that throttles like the vendor: `500/s`, `500` or `30000/min`
    /// (burst: one second's worth).
    #[arg(long, value_name = "RATE")]
    pub quota: Option<QuotaSpec>,
}

impl FaultArgs {
    /// True when neither option is given.
    pub fn is_empty(&self) -> bool {
        self.faults.is_none() && self.quota.is_none()
    }

    /// `handler` as is when no option is given, else wrapped in [`Faults`] with the spec and
    /// quota (and the statistics endpoint).
    pub fn wrap(&self, vendor: Vendor, handler: Arc<dyn Handler>) -> Arc<dyn Handler> {
        if self.is_empty() {
            return handler;
        }
        let faults = Faults::new(handler, vendor, self.faults.clone().unwrap_or_default());
        if let Some(q) = self.quota {
            faults.set_quota(Some(q));
        }
        faults
    }
}

/// Whose wire format the injected answers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Vendor {
    /// AWS KMS (JSON 1.1 `__type` errors).
    Aws,
    /// Azure Key Vault / Managed HSM (`{"error":{"code":…}}`, `Retry-After`).
    Azure,
    /// Google Cloud KMS (`google.rpc.Status` JSON).
    Gcp,
}

/// What to inject, as parsed from the spec in the module docs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FaultSpec {
    /// Share of requests throttled (0 to 1).
    pub throttle: f64,
    /// Share of requests answered with an internal error (0 to 1).
    pub error: f64,
    /// Share of requests processed whose answer is then lost (0 to 1).
    pub reset: f64,
    /// Share of requests never answered (0 to 1).
    pub blackhole: f64,
    /// Delay range for every request.
    pub latency: Option<(Duration, Duration)>,
    /// `Retry-After` on Azure throttles.
    pub retry_after: Duration,
    /// Random seed.
    pub seed: u64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            throttle: 0.0,
            error: 0.0,
            reset: 0.0,
            blackhole: 0.0,
            latency: None,
            retry_after: Duration::from_secs(1),
            seed: 0,
        }
    }
}

/// A spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpecError(String);

impl fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fault spec: {}", self.0)
    }
}

impl std::error::Error for FaultSpecError {}

fn percent(key: &str, v: &str) -> Result<f64, FaultSpecError> {
    let n = v.strip_suffix('%').unwrap_or(v);
    match n.trim().parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(FaultSpecError(format!("{key}={v}: expected a percentage from 0% to 100%"))),
    }
}

fn duration(key: &str, v: &str) -> Result<Duration, FaultSpecError> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num.parse().map_err(|_| FaultSpecError(format!("{key}={v}: expected e.g. 20ms or 1s")))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        _ => Err(FaultSpecError(format!("{key}={v}: unit must be ms or s"))),
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) =
                part.split_once('=').ok_or_else(|| FaultSpecError(format!("{part}: expected key=value")))?;
            match key.trim() {
                "throttle" => spec.throttle = percent(key, value)?,
                "error" => spec.error = percent(key, value)?,
                "reset" => spec.reset = percent(key, value)?,
                "blackhole" => spec.blackhole = percent(key, value)?,
                "latency" => {
                    let (lo, hi) = match value.split_once("..") {
                        Some((lo, hi)) => (duration(key, lo)?, duration(key, hi)?),
                        None => (duration(key, value)?, duration(key, value)?),
                    };
                    if lo > hi {
                        return Err(FaultSpecError(format!("latency={value}: the range is empty")));
                    }
                    spec.latency = Some((lo, hi));
                }
                "retry_after" => spec.retry_after = duration(key, value)?,
                "seed" => {
                    spec.seed = value
                        .trim()
                        .parse()
                        .map_err(|_| FaultSpecError(format!("seed={value}: expected a number")))?;
                }
                other => {
                    return Err(FaultSpecError(format!(
                        "unknown entry {other:?} (throttle, error, reset, latency, blackhole, retry_after, seed)"
                    )));
                }
            }
        }
        if spec.throttle + spec.error + spec.reset + spec.blackhole > 1.0 + 1e-9 {
            return Err(FaultSpecError("the shares add up to more than 100%".into()));
        }
        Ok(spec)
    }
}

/// One injected fault (for [`Faults::push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer normally.
    None,
    /// The vendor's throttle answer, before processing.
    Throttle,
    /// The vendor's internal-error answer, before processing.
    Error,
    /// Process the request, then close the connection mid-answer.
    Reset,
    /// Never answer.
    Blackhole,
}

/// Counts of what [`Faults`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultCounts {
    /// Every request received.
    pub requests: u64,
    /// Requests throttled.
    pub throttled: u64,
    /// Requests answered with an internal error.
    pub errors: u64,
    /// Requests processed whose answer was lost.
    pub resets: u64,
    /// Requests never answered.
    pub blackholed: u64,
    /// Requests throttled by the quota (also counted in `throttled`).
    pub over_quota: u64,
}

impl FaultCounts {
    /// The counts as the statistics endpoint's JSON.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"requests":{},"throttled":{},"over_quota":{},"errors":{},"resets":{},"blackholed":{}}}"#,
            self.requests, self.throttled, self.over_quota, self.errors, self.resets, self.blackholed
        )
    }
}

/// The fault-injecting [`Handler`] wrapper.
pub struct Faults {
    inner: Arc<dyn Handler>,
    vendor: Vendor,
    spec: Mutex<FaultSpec>,
    rng: Mutex<u64>,
    script: Mutex<VecDeque<Fault>>,
    targeted: Mutex<Vec<(String, Fault)>>,
    quota: Mutex<Option<Arc<Limiter>>>,
    counts: [AtomicU64; 6],
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

fn limiter(q: QuotaSpec) -> Arc<Limiter> {
    let period = Duration::from_secs_f64(1.0 / q.per_second).max(Duration::from_nanos(1));
    let burst = std::num::NonZeroU32::new(q.per_second.ceil().clamp(1.0, 1e9) as u32)
        .unwrap_or(std::num::NonZeroU32::MIN);
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
    Arc::new(RateLimiter::direct_with_clock(quota, MonotonicClock))
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults").field("vendor", &self.vendor).field("counts", &self.counts()).finish()
    }
}

/// splitmix64: a tiny seeded generator, enough for fault dice.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

fn json(status: u16, content_type: &'static str, body: String) -> Response {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    resp
}

impl Faults {
    /// Wraps `inner`, answering injected faults in `vendor`'s format.
    pub fn new(inner: Arc<dyn Handler>, vendor: Vendor, spec: FaultSpec) -> Arc<Self> {
        Arc::new(Faults {
            inner,
            vendor,
            rng: Mutex::new(spec.seed),
            spec: Mutex::new(spec),
            script: Mutex::new(VecDeque::new()),
            targeted: Mutex::new(Vec::new()),
            quota: Mutex::new(None),
            counts: Default::default(),
        })
    }

    /// Sets (or with `None` removes) the server-side quota: requests over it get the
    /// vendor's throttle answer before any processing.
    pub fn set_quota(&self, quota: Option<QuotaSpec>) {
        *self.quota.lock().unwrap_or_else(|p| p.into_inner()) = quota.map(limiter);
    }

    fn over_quota(&self) -> bool {
        let q = self.quota.lock().unwrap_or_else(|p| p.into_inner()).clone();
        q.is_some_and(|q| q.check().is_err())
    }

    /// Replaces the spec (the random sequence continues).
    pub fn set_spec(&self, spec: FaultSpec) {
        *self.spec.lock().unwrap_or_else(|p| p.into_inner()) = spec;
    }

    /// Makes the next request get `fault` (before the random draw; queued in order).
    pub fn push(&self, fault: Fault) {
        self.script.lock().unwrap_or_else(|p| p.into_inner()).push_back(fault);
    }

    /// Makes the next request whose `METHOD path?query` or `X-Amz-Target` contains `needle`
    /// get `fault` (e.g. `("CreateAlias", Fault::Reset)`), before the queue of [`push`](Self::push).
    pub fn push_matching(&self, needle: &str, fault: Fault) {
        self.targeted.lock().unwrap_or_else(|p| p.into_inner()).push((needle.to_owned(), fault));
    }

    fn targeted(&self, req: &Request) -> Option<Fault> {
        let mut t = self.targeted.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_empty() {
            return None;
        }
        let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
        let what = format!("{} {} {target}", req.method(), req.uri());
        let i = t.iter().position(|(needle, _)| what.contains(needle.as_str()))?;
        Some(t.remove(i).1)
    }

    /// What happened so far.
    pub fn counts(&self) -> FaultCounts {
        let c = |i: usize| self.counts[i].load(Ordering::SeqCst);
        FaultCounts {
            requests: c(0),
            throttled: c(1),
            errors: c(2),
            resets: c(3),
            blackholed: c(4),
            over_quota: c(5),
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> u64 {
        self.counts[0].load(Ordering::SeqCst)
    }

    fn draw(&self) -> (Fault, Duration) {
        let spec = self.spec.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let delay = match spec.latency {
            Some((lo, hi)) => lo + (hi - lo).mul_f64(unit(&mut rng)),
            None => Duration::ZERO,
        };
        if let Some(f) = self.script.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
            return (f, delay);
        }
        let x = unit(&mut rng);
        let mut edge = spec.throttle;
        let fault = if x < edge {
            Fault::Throttle
        } else if x < {
            edge += spec.error;
            edge
        } {
            Fault::Error
        } else if x < {
            edge += spec.reset;
            edge
        } {
            Fault::Reset
        } else if x < edge + spec.blackhole {
            Fault::Blackhole
        } else {
            Fault::None
        };
        (fault, delay)
    }

    fn throttle(&self) -> Response {
        match self.vendor {
            Vendor::Aws => json(
                400,
                "application/x-amz-json-1.1",
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into(),
            ),
            Vendor::Azure => {
                let secs = self.spec.lock().unwrap_or_else(|p| p.into_inner()).retry_after.as_secs();
                let mut r = json(
                    429,
                    "application/json; charset=utf-8",
                    r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}"#.into(),
                );
                if let Ok(v) = hyper::header::HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
                }
                r
            }
            Vendor::Gcp => {
                // Cloud KMS's quota answer, with a google.rpc.RetryInfo detail carrying
                // `retry_after` (which clients honour like Retry-After).
                let delay = self.spec.lock().unwrap_or_else(|p| p.into_inner()).retry_after;
                json(
                    429,
                    "application/json; charset=UTF-8",
                    format!(
                        r#"{{"error":{{"code":429,"message":"Quota exceeded for quota metric 'Cryptographic requests' and limit 'Cryptographic requests per minute per region'.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{}.{:03}s"}}]}}}}"#,
                        delay.as_secs(),
                        delay.subsec_millis()
                    ),
                )
            }
        }
    }

    fn error(&self) -> Response {
        match self.vendor {
            Vendor::Aws => json(
                500,
                "application/x-amz-json-1.1",
                r#"{"__type":"KMSInternalException","message":"An internal error occurred."}"#.into(),
            ),
            Vendor::Azure => json(
                503,
                "application/json; charset=utf-8",
                r#"{"error":{"code":"ServiceUnavailable","message":"The service is temporarily unavailable."}}"#.into(),
            ),
            Vendor::Gcp => json(
                503,
                "application/json; charset=UTF-8",
                r#"{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}"#.into(),
            ),
        }
    }
}

impl Handler for Faults {
    fn handle(self: Arc<Self>, req: Request) -> HandlerFuture {
        Box::pin(async move {
            if req.method() == hyper::Method::GET && req.uri().path() == STATS_PATH {
                return json(200, "application/json", self.counts().to_json());
            }
            self.counts[0].fetch_add(1, Ordering::SeqCst);
            if self.over_quota() {
                self.counts[1].fetch_add(1, Ordering::SeqCst);
                self.counts[5].fetch_add(1, Ordering::SeqCst);
                return self.throttle();
            }
            let (mut fault, delay) = self.draw();
            if let Some(f) = self.targeted(&req) {
                fault = f;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match fault {
                Fault::None => self.inner.clone().handle(req).await,
                Fault::Throttle => {
                    self.counts[1].fetch_add(1, Ordering::SeqCst);
                    self.throttle()
                }
                Fault::Error => {
                    self.counts[2].fetch_add(1, Ordering::SeqCst);
                    self.error()
                }
                Fault::Reset => {
                    self.counts[3].fetch_add(1, Ordering::SeqCst);
                    let mut resp = self.inner.clone().handle(req).await;
                    // Promise more body than is sent: hyper aborts the message and closes the
                    // connection, so the client sees the connection drop mid-answer.
                    let promised = 1 << 20;
                    resp.headers_mut()
                        .insert(hyper::header::CONTENT_LENGTH, hyper::header::HeaderValue::from(promised));
                    resp
                }
                Fault::Blackhole => {
                    self.counts[4].fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Response>().await
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let s: FaultSpec =
            "throttle=20%,error=5%,reset=5%,latency=20ms..200ms,blackhole=0%,seed=9".parse().unwrap();
        assert_eq!((s.throttle, s.error, s.reset, s.blackhole, s.seed), (0.2, 0.05, 0.05, 0.0, 9));
        assert_eq!(s.latency, Some((Duration::from_millis(20), Duration::from_millis(200))));
        assert_eq!("".parse::<FaultSpec>().unwrap(), FaultSpec::default());
        for bad in
            ["throttle=120%", "throttle", "latency=2s..1s", "nope=1", "throttle=60%,error=60%", "latency=5h"]
        {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_draw_is_seeded_and_follows_the_shares() {
        struct Ok200;
        impl Handler for Ok200 {
            fn handle(self: Arc<Self>, _req: Request) -> HandlerFuture {
                Box::pin(async { Response::new(Full::new(Bytes::new())) })
            }
        }
        let spec: FaultSpec = "throttle=20%,error=5%,seed=3".parse().unwrap();
        let a = Faults::new(Arc::new(Ok200), Vendor::Gcp, spec.clone());
        let b = Faults::new(Arc::new(Ok200), Vendor::Gcp, spec);
        let draws_a: Vec<_> = (0..10_000).map(|_| a.draw().0).collect();
        let draws_b: Vec<_> = (0..10_000).map(|_| b.draw().0).collect();
        assert_eq!(draws_a, draws_b);
        let throttled = draws_a.iter().filter(|f| **f == Fault::Throttle).count();
        let errors = draws_a.iter().filter(|f| **f == Fault::Error).count();
        assert!((1800..2200).contains(&throttled), "{throttled}");
        assert!((400..600).contains(&errors), "{errors}");
    }
}
