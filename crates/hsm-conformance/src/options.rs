//! How a run is configured: known gaps, case selection, the key-name prefix, limits.

use std::time::Duration;

/// Settings for one run of the kit against one provider.
///
/// ```
/// use std::time::Duration;
/// use hsm_conformance::Options;
/// let options = Options::new()
///     .ignore("rotate::*", "moto lacks RotateKeyOnDemand")
///     .ignore("errors::not-found::version", "the emulator ignores versions")
///     .key_prefix("ci")
///     .case_timeout(Duration::from_secs(60));
/// assert_eq!(options.ignored_reason("rotate::encrypt::aes-256"), Some("moto lacks RotateKeyOnDemand"));
/// assert_eq!(options.ignored_reason("encrypt::roundtrip::aes-256::aes-gcm"), None);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    ignores: Vec<(String, String)>,
    only: Vec<String>,
    group: Option<String>,
    prefix: String,
    concurrency: usize,
    case_timeout: Duration,
    cleanup: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ignores: Vec::new(),
            only: Vec::new(),
            group: None,
            prefix: "hc".to_owned(),
            concurrency: 4,
            case_timeout: Duration::from_secs(300),
            cleanup: true,
        }
    }
}

impl Options {
    /// Defaults: every case, key names `hc-<8 random hex digits>-…`, 4 cases at a time in
    /// [`run_cases`](crate::run_cases), 300 s per case, the run's keys deleted at the end.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the cases matching `pattern` as a known gap: they are reported as ignored with
    /// `reason` instead of running.
    ///
    /// `pattern` is a glob where `*` matches any run of characters (including `::`) and `?`
    /// one character (`rotate::*`, `*::rsa-oaep-sha1`), or, without wildcards, a case name
    /// or a `::`-boundary prefix of one (`rotate` matches `rotate::encrypt::aes-256`).
    #[must_use]
    pub fn ignore(mut self, pattern: impl Into<String>, reason: impl Into<String>) -> Self {
        self.ignores.push((pattern.into(), reason.into()));
        self
    }

    /// Runs only the cases matching `pattern` (same syntax as [`ignore`](Self::ignore));
    /// may be given several times. Cases not selected are not reported at all.
    #[must_use]
    pub fn only(mut self, pattern: impl Into<String>) -> Self {
        self.only.push(pattern.into());
        self
    }

    /// The start of every key name this run creates (default `hc`). A random 8-hex-digit
    /// run id is always appended, so names are `<prefix>-<run id>-…` and unique per run.
    /// Use 1 to 16 characters from `A-Z a-z 0-9 - _`, starting with a letter or digit.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many cases [`run_cases`](crate::run_cases) runs at the same time (at least 1).
    /// The libtest-mimic front end uses `--test-threads` instead.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The longest one case may take before it fails as timed out.
    #[must_use]
    pub fn case_timeout(mut self, timeout: Duration) -> Self {
        self.case_timeout = timeout;
        self
    }

    /// Whether to schedule deletion of the run's keys at the end (default `true`). Turn it
    /// off to inspect the keys after a failure; they all start with the run's prefix.
    #[must_use]
    pub fn cleanup(mut self, yes: bool) -> Self {
        self.cleanup = yes;
        self
    }

    /// The reason given with [`ignore`](Self::ignore) for the first pattern matching `case`.
    pub fn ignored_reason(&self, case: &str) -> Option<&str> {
        self.ignores.iter().find(|(p, _)| pattern_matches(p, case)).map(|(_, r)| r.as_str())
    }

    /// Whether `case` is selected by the [`only`](Self::only) patterns (all are, with none).
    pub fn selects(&self, case: &str) -> bool {
        self.group.as_deref().is_none_or(|g| case.split("::").next() == Some(g))
            && (self.only.is_empty() || self.only.iter().any(|p| pattern_matches(p, case)))
    }

    /// These options restricted to one group (on top of any [`only`](Self::only) patterns).
    pub(crate) fn within_group(&self, group: &str) -> Options {
        Options { group: Some(group.to_owned()), ..self.clone() }
    }

    /// The key-name prefix (without the run id).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn concurrency_limit(&self) -> usize {
        self.concurrency
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.case_timeout
    }

    pub(crate) fn cleans_up(&self) -> bool {
        self.cleanup
    }
}

/// Whether `pattern` (see [`Options::ignore`]) matches the case name `name`.
///
/// ```
/// use hsm_conformance::pattern_matches;
/// assert!(pattern_matches("rotate::*", "rotate::sign::ec-p256"));
/// assert!(pattern_matches("rotate", "rotate::sign::ec-p256"));
/// assert!(pattern_matches("*::rsa-oaep-sha1", "encrypt::roundtrip::rsa-2048::rsa-oaep-sha1"));
/// assert!(!pattern_matches("rot", "rotate::sign::ec-p256"));
/// ```
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?']) {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        glob(&p, &n)
    } else {
        name == pattern
            || (name.starts_with(pattern)
                && (pattern.ends_with("::") || name[pattern.len()..].starts_with("::")))
    }
}

fn glob(p: &[char], n: &[char]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_prefixes_match_on_segment_boundaries() {
        assert!(pattern_matches("*", "anything::at::all"));
        assert!(pattern_matches("encrypt::*::aes-128::*", "encrypt::roundtrip::aes-128::aes-gcm"));
        assert!(!pattern_matches("encrypt::*::aes-128::*", "encrypt::roundtrip::aes-256::aes-gcm"));
        assert!(pattern_matches("sign::digest::ec-p25?::*", "sign::digest::ec-p256::ecdsa-sha256"));
        assert!(pattern_matches("errors::", "errors::wrong-aad::aes-128::aes-gcm"));
        assert!(pattern_matches("keys::list::pagination", "keys::list::pagination"));
        assert!(!pattern_matches("keys::list::page", "keys::list::pagination"));
        assert!(!pattern_matches("*::aes-gcm", "wrap::roundtrip::aes-256::aes-key-wrap"));
    }

    #[test]
    fn first_matching_ignore_gives_the_reason_and_only_selects() {
        let o =
            Options::new().ignore("rotate", "no rotation here").ignore("*", "everything else").only("rotate");
        assert_eq!(o.ignored_reason("rotate::mac::hmac-sha256"), Some("no rotation here"));
        assert_eq!(o.ignored_reason("keys::tags"), Some("everything else"));
        assert!(o.selects("rotate::mac::hmac-sha256"));
        assert!(!o.selects("keys::tags"));
        assert!(Options::new().selects("keys::tags"));
    }
}
