//! The resilience layers (`hsm_layers`) as configured: `[retry]`, `[timeout]`,
//! `[rate_limit]` and `[cache]` in TOML, and the URL parameters `retries`, `timeout`,
//! `attempt_timeout`, `rate_limit`, `cache_ttl` and `layers`.
//!
//! Cloud providers and PKCS#11 get the layers by default ([`LayerConfig::for_provider`]):
//! retries with backoff and a retry budget, per-attempt and per-operation timeouts, the
//! vendor's rate limits, a metadata and public-key cache. The SDKs' own retries are then
//! turned off, so hsm is the one owner of retries. `local` and `memory` get only the
//! observability layer (they never fail transiently). `layers=off` (URL) or
//! `[retry] enabled = false` etc. turn layers off.
//!
//! | URL parameter | TOML | meaning |
//! |---|---|---|
//! | `retries=5` | `[retry] retries = 5` (or `max_attempts = 6`) | retries after the first attempt; 0 = none |
//! | — | `[retry] budget = 500` | retry-budget tokens (a retry costs 5) |
//! | `timeout=10s` | `[timeout] operation = "10s"` | bound on one operation, retries included |
//! | `attempt_timeout=2s` | `[timeout] attempt = "2s"` | bound on one attempt |
//! | `rate_limit=off\|auto\|N` | `[rate_limit] enabled`, `adaptive`, `symmetric`, `rsa`, `ecc`, `metadata`, `control`, `all` | requests per second (`auto` = 80 % of the vendor's quotas) |
//! | `cache_ttl=60s` (0 = off) | `[cache] ttl = "60s"`, `enabled`, `verify = "local"` | metadata and public-key cache |
//! | `layers=off` | — | no layer at all |

use std::time::Duration;

use hsm_core::settings::{Section, parse_duration};
use hsm_core::{Error, Result};
pub use hsm_layers::{
    CacheConfig, LayerConfig, QuotaClass, RateLimitConfig, RetryConfig, TimeoutConfig, metrics_names,
};

const HSM: &str = "hsm";
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A rate-limit choice.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RateSetting {
    /// No client-side rate limit.
    Off,
    /// The vendor defaults ([`RateLimitConfig::for_provider`]).
    Auto,
    /// The same rate for every quota class, requests per second.
    PerSecond(f64),
}

/// Layer settings from a URL, TOML or the command line; unset fields keep the provider's
/// defaults ([`LayerConfig::for_provider`]).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LayerSettings {
    /// `Some(false)` turns every layer off.
    pub enabled: Option<bool>,
    /// Retries after the first attempt (0 = no retry layer).
    pub retries: Option<u32>,
    /// Retry-budget tokens.
    pub retry_budget: Option<u32>,
    /// Bound on one operation, retries included.
    pub timeout: Option<Duration>,
    /// Bound on one attempt.
    pub attempt_timeout: Option<Duration>,
    /// Rate limit for every class.
    pub rate_limit: Option<RateSetting>,
    /// Per-class rates (override `rate_limit`), indexed symmetric, RSA, ECC, metadata, control.
    pub rates: [Option<f64>; 5],
    /// Adaptive rate control.
    pub adaptive: Option<bool>,
    /// Cache TTL (zero = no cache).
    pub cache_ttl: Option<Duration>,
    /// Verify signatures locally with the cached public key.
    pub verify_local: Option<bool>,
}

impl LayerSettings {
    /// Settings with only `retries` set (the CLI's `--retries`).
    pub fn with_retries(mut self, retries: Option<u32>) -> Self {
        if retries.is_some() {
            self.retries = retries;
        }
        self
    }

    /// Sets the operation timeout when given (the CLI's `--timeout`).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        if timeout.is_some() {
            self.timeout = timeout;
        }
        self
    }

    /// Overrides these settings with every field `other` sets.
    pub fn merge(&mut self, other: LayerSettings) {
        macro_rules! take {
            ($($f:ident),*) => {$(if other.$f.is_some() { self.$f = other.$f; })*};
        }
        take!(
            enabled,
            retries,
            retry_budget,
            timeout,
            attempt_timeout,
            rate_limit,
            adaptive,
            cache_ttl,
            verify_local
        );
        for (mine, theirs) in self.rates.iter_mut().zip(other.rates) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
    }

    /// The layers for a provider named `provider`: its defaults with these settings applied.
    pub fn layer_config(&self, provider: &str) -> LayerConfig {
        if self.enabled == Some(false) {
            return LayerConfig::none();
        }
        let mut c = match provider {
            "local" | "memory" => {
                let mut c = LayerConfig::none();
                c.observe = true;
                c
            }
            other => LayerConfig::for_provider(other),
        };
        if let Some(n) = self.retries {
            c.retry =
                (n > 0).then(|| c.retry.clone().unwrap_or_default().with_max_attempts(n.saturating_add(1)));
        }
        if let (Some(tokens), Some(r)) = (self.retry_budget, c.retry.as_mut()) {
            *r = r.clone().with_budget(hsm_layers::BudgetConfig::with_capacity(tokens));
        }
        if let Some(t) = self.timeout {
            c.timeout.operation = Some(t);
            if let Some(r) = c.retry.as_mut() {
                *r = r.clone().with_deadline(Some(t));
            }
            // An attempt never outlasts its operation.
            c.timeout.attempt = c.timeout.attempt.map(|a| a.min(t));
        }
        if let Some(t) = self.attempt_timeout {
            c.timeout.attempt = Some(t);
        }
        let mut rate = match self.rate_limit {
            Some(RateSetting::Off) => None,
            Some(RateSetting::Auto) => Some(RateLimitConfig::for_provider(provider)),
            Some(RateSetting::PerSecond(r)) => Some(RateLimitConfig::unlimited().with_all(Some(r))),
            None => c.rate_limit.clone(),
        };
        if self.rates.iter().any(Option::is_some) {
            let mut r = rate.unwrap_or_else(RateLimitConfig::unlimited);
            for class in [
                QuotaClass::Symmetric,
                QuotaClass::Rsa,
                QuotaClass::Ecc,
                QuotaClass::Metadata,
                QuotaClass::Control,
            ] {
                let i = class_index(class);
                if self.rates[i].is_some() {
                    r = r.with_rate(class, self.rates[i]);
                }
            }
            rate = Some(r);
        }
        if let (Some(a), Some(r)) = (self.adaptive, rate.as_mut()) {
            *r = r.clone().with_adaptive(a);
        }
        c.rate_limit = rate.filter(|r| !r.is_unlimited());
        if let Some(ttl) = self.cache_ttl {
            c.cache = (!ttl.is_zero()).then(|| c.cache.clone().unwrap_or_default().with_ttl(ttl));
        }
        if let Some(v) = self.verify_local {
            if v && c.cache.is_none() {
                c.cache = Some(CacheConfig::default());
            }
            c.cache = c.cache.map(|cc| cc.with_verify_local(v));
        }
        c
    }

    /// Removes the layer parameters from a provider URL's query (the backends reject
    /// parameters they do not know) and parses them. `timeout` and `attempt_timeout` stay in
    /// the URL for the backends that take them, and are read here too.
    pub(crate) fn take_from_url(url: &str, keep_timeouts: bool) -> Result<(String, LayerSettings)> {
        let mut s = LayerSettings::default();
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), s));
        };
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !s.apply(k, v)? || (keep_timeouts && matches!(k, "timeout" | "attempt_timeout")) {
                kept.push(pair);
            }
        }
        let mut out = base.to_owned();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        Ok((out, s))
    }

    /// Applies one layer parameter `key=value`; `false` for a key that is not one.
    fn apply(&mut self, k: &str, v: &str) -> Result<bool> {
        match k {
            "retries" => self.retries = Some(parse_count(k, v)?),
            "layers" => self.enabled = Some(parse_switch(k, v)?),
            "rate_limit" => self.rate_limit = Some(parse_rate(v)?),
            "cache_ttl" if matches!(v, "0" | "off") => self.cache_ttl = Some(Duration::ZERO),
            "cache_ttl" => self.cache_ttl = Some(parse_duration(HSM, k, v, MAX_DURATION)?),
            "timeout" => self.timeout = Some(parse_duration(HSM, k, v, MAX_DURATION)?),
            "attempt_timeout" => self.attempt_timeout = Some(parse_duration(HSM, k, v, MAX_DURATION)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Takes the layer parameters out of a provider's TOML table (`[aws] retries = 3`), as
    /// [`take_from_url`](Self::take_from_url) does from its URL.
    pub(crate) fn take_from_section(section: &mut Section<'_>, keep_timeouts: bool) -> Result<Self> {
        let mut s = LayerSettings::default();
        for key in ["retries", "layers", "rate_limit", "cache_ttl", "timeout", "attempt_timeout"] {
            let shared = keep_timeouts && matches!(key, "timeout" | "attempt_timeout");
            let Some(text) = section.peek_text(key) else { continue };
            s.apply(key, &text).map_err(|e| section.context(e))?;
            if !shared {
                section.take(key);
            }
        }
        Ok(s)
    }

    /// Reads the `[retry]`, `[timeout]`, `[rate_limit]` and `[cache]` tables.
    pub(crate) fn from_tables(
        origin: &str,
        retry: Option<toml::Table>,
        timeout: Option<toml::Table>,
        rate_limit: Option<toml::Table>,
        cache: Option<toml::Table>,
    ) -> Result<Self> {
        let mut s = LayerSettings::default();
        let bad = |section: &str, key: &str, what: &str| {
            Error::config(HSM, format!("{origin}: [{section}] {key}: {what}"))
        };
        for (k, v) in retry.unwrap_or_default() {
            match (k.as_str(), &v) {
                ("enabled", toml::Value::Boolean(false)) => s.retries = Some(0),
                ("enabled", toml::Value::Boolean(true)) => {}
                ("retries", toml::Value::Integer(n)) if (0..=20).contains(n) => s.retries = Some(*n as u32),
                ("max_attempts", toml::Value::Integer(n)) if (1..=21).contains(n) => {
                    s.retries = Some(*n as u32 - 1);
                }
                ("budget", toml::Value::Integer(n)) if (0..=1_000_000).contains(n) => {
                    s.retry_budget = Some(*n as u32);
                }
                ("enabled" | "retries" | "max_attempts" | "budget", _) => {
                    return Err(bad(
                        "retry",
                        &k,
                        "out of range (retries 0 to 20, max_attempts 1 to 21, budget 0 to 1000000, enabled true/false)",
                    ));
                }
                _ => return Err(bad("retry", &k, "unknown key (enabled, retries, max_attempts, budget)")),
            }
        }
        for (k, v) in timeout.unwrap_or_default() {
            let d = toml_duration(origin, "timeout", &k, &v)?;
            match k.as_str() {
                "operation" => s.timeout = Some(d),
                "attempt" => s.attempt_timeout = Some(d),
                _ => return Err(bad("timeout", &k, "unknown key (operation, attempt)")),
            }
        }
        for (k, v) in rate_limit.unwrap_or_default() {
            let class = match k.as_str() {
                "symmetric" => Some(QuotaClass::Symmetric),
                "rsa" => Some(QuotaClass::Rsa),
                "ecc" => Some(QuotaClass::Ecc),
                "metadata" => Some(QuotaClass::Metadata),
                "control" => Some(QuotaClass::Control),
                _ => None,
            };
            match (k.as_str(), &v, class) {
                ("enabled", toml::Value::Boolean(on), _) => {
                    s.rate_limit = Some(if *on { RateSetting::Auto } else { RateSetting::Off });
                }
                ("adaptive", toml::Value::Boolean(on), _) => s.adaptive = Some(*on),
                ("all", v, _) => s.rate_limit = Some(RateSetting::PerSecond(toml_rate(origin, &k, v)?)),
                (_, v, Some(class)) => s.rates[class_index(class)] = Some(toml_rate(origin, &k, v)?),
                _ => {
                    return Err(bad(
                        "rate_limit",
                        &k,
                        "unknown key or wrong type (enabled, adaptive, all, symmetric, rsa, ecc, metadata, control)",
                    ));
                }
            }
        }
        for (k, v) in cache.unwrap_or_default() {
            match (k.as_str(), &v) {
                ("enabled", toml::Value::Boolean(false)) => s.cache_ttl = Some(Duration::ZERO),
                ("enabled", toml::Value::Boolean(true)) => {}
                ("ttl", v) => s.cache_ttl = Some(toml_duration(origin, "cache", &k, v)?),
                ("verify", toml::Value::String(m)) if m == "local" || m == "service" => {
                    s.verify_local = Some(m == "local");
                }
                _ => {
                    return Err(bad(
                        "cache",
                        &k,
                        "unknown key or wrong value (enabled, ttl, verify = \"local\"|\"service\")",
                    ));
                }
            }
        }
        Ok(s)
    }
}

const fn class_index(class: QuotaClass) -> usize {
    match class {
        QuotaClass::Symmetric => 0,
        QuotaClass::Rsa => 1,
        QuotaClass::Ecc => 2,
        QuotaClass::Metadata => 3,
        _ => 4,
    }
}

fn parse_count(key: &str, v: &str) -> Result<u32> {
    match v.parse::<u32>() {
        Ok(n) if n <= 20 => Ok(n),
        _ => Err(Error::config(HSM, format!("{key}={v} is not a number from 0 to 20"))),
    }
}

fn parse_switch(key: &str, v: &str) -> Result<bool> {
    match v {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(Error::config(HSM, format!("{key}={v}: use on or off"))),
    }
}

fn parse_rate(v: &str) -> Result<RateSetting> {
    match v {
        "off" | "none" => Ok(RateSetting::Off),
        "auto" | "on" => Ok(RateSetting::Auto),
        n => match n.strip_suffix("/s").unwrap_or(n).parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(RateSetting::PerSecond(r)),
            _ => Err(Error::config(
                HSM,
                format!("rate_limit={v}: use off, auto, or requests per second (e.g. 400 or 400/s)"),
            )),
        },
    }
}

fn toml_duration(origin: &str, section: &str, key: &str, v: &toml::Value) -> Result<Duration> {
    match v {
        toml::Value::Integer(n) if (0..=3600).contains(n) => Ok(Duration::from_secs(*n as u64)),
        toml::Value::Float(f) if (0.0..=3600.0).contains(f) => Ok(Duration::from_secs_f64(*f)),
        toml::Value::String(s) => parse_duration(HSM, key, s, MAX_DURATION)
            .map_err(|e| Error::config(HSM, format!("{origin}: [{section}] {e}"))),
        _ => Err(Error::config(
            HSM,
            format!(
                "{origin}: [{section}] {key}: use seconds (e.g. 10) or a duration string (e.g. \"500ms\")"
            ),
        )),
    }
}

fn toml_rate(origin: &str, key: &str, v: &toml::Value) -> Result<f64> {
    let r = match v {
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(f) => *f,
        _ => f64::NAN,
    };
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(Error::config(HSM, format!("{origin}: [rate_limit] {key}: use requests per second, e.g. 400")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_out_and_parsed() {
        let (url, s) = LayerSettings::take_from_url(
            "aws-kms://?region=eu-west-1&retries=5&timeout=10s&rate_limit=400&cache_ttl=0&layers=on",
            true,
        )
        .unwrap();
        assert_eq!(url, "aws-kms://?region=eu-west-1&timeout=10s");
        assert_eq!(s.retries, Some(5));
        assert_eq!(s.timeout, Some(Duration::from_secs(10)));
        assert_eq!(s.rate_limit, Some(RateSetting::PerSecond(400.0)));
        let c = s.layer_config("aws-kms");
        assert_eq!(c.retry.unwrap().max_attempts, 6);
        assert_eq!(c.timeout.operation, Some(Duration::from_secs(10)));
        assert!(c.cache.is_none());
        assert_eq!(c.rate_limit.unwrap().rates, [Some(400.0); 5]);
        assert!(LayerSettings::take_from_url("aws-kms://?retries=99", true).is_err());
        assert!(LayerSettings::take_from_url("aws-kms://?rate_limit=fast", true).is_err());
        let (_, off) = LayerSettings::take_from_url("gcp-kms://p?layers=off", true).unwrap();
        assert_eq!(off.layer_config("gcp-kms"), LayerConfig::none());
    }

    #[test]
    fn toml_tables_are_checked() {
        let t = |s: &str| -> toml::Table { toml::from_str(s).unwrap() };
        let s = LayerSettings::from_tables(
            "f",
            Some(t("max_attempts = 3\nbudget = 100")),
            Some(t("operation = \"5s\"\nattempt = 1")),
            Some(t("rsa = 100\nadaptive = false")),
            Some(t("ttl = 30\nverify = \"local\"")),
        )
        .unwrap();
        let c = s.layer_config("aws-kms");
        assert_eq!(c.retry.as_ref().unwrap().max_attempts, 3);
        assert_eq!(c.timeout, TimeoutConfig::new(Some(Duration::from_secs(1)), Some(Duration::from_secs(5))));
        let rl = c.rate_limit.unwrap();
        assert_eq!(rl.rates[1], Some(100.0));
        assert!(!rl.adaptive);
        assert!(c.cache.unwrap().verify_local);
        assert!(LayerSettings::from_tables("f", Some(t("tries = 3")), None, None, None).is_err());
        assert!(LayerSettings::from_tables("f", None, None, Some(t("rsa = \"x\"")), None).is_err());
        assert!(LayerSettings::from_tables("f", None, None, None, Some(t("verify = \"maybe\""))).is_err());
    }

    #[test]
    fn local_gets_only_observability_by_default() {
        let c = LayerSettings::default().layer_config("local");
        assert!(c.retry.is_none() && c.cache.is_none() && c.rate_limit.is_none() && c.observe);
        assert!(LayerSettings::default().layer_config("azure-keyvault").retries());
    }
}
