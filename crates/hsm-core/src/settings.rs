//! Parsing the settings every provider's URL and TOML forms share.

use std::time::Duration;

use crate::{Error, Result};

/// Parses a duration setting `key=value`: seconds (`5`, `5s`, `0.5`), milliseconds
/// (`500ms`), hours (`24h`) or days (`30d`), greater than zero and at most `max`.
///
/// ```
/// use std::time::Duration;
/// use hsm_core::settings::parse_duration;
/// let hour = Duration::from_secs(3600);
/// assert_eq!(parse_duration("aws-kms", "timeout", "500ms", hour)?, Duration::from_millis(500));
/// assert_eq!(parse_duration("aws-kms", "timeout", "5", hour)?, Duration::from_secs(5));
/// assert!(parse_duration("aws-kms", "timeout", "2h", hour).is_err());
/// # Ok::<(), hsm_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::Config`] naming `key`, the value and the forms accepted.
pub fn parse_duration(provider: &'static str, key: &str, value: &str, max: Duration) -> Result<Duration> {
    let (num, scale) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(d) = value.strip_suffix('d') {
        (d, 86_400.0)
    } else if let Some(h) = value.strip_suffix('h') {
        (h, 3600.0)
    } else {
        (value.strip_suffix('s').unwrap_or(value), 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() && n * scale <= max.as_secs_f64() => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        _ => Err(Error::config(
            provider,
            format!(
                "{key}={value} is not a duration; write seconds ({key}=5 or {key}=5s), milliseconds \
                 ({key}=500ms), hours ({key}=2h) or days ({key}=2d), more than zero and at most {}",
                describe(max)
            ),
        )),
    }
}

fn describe(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}
