//! [`GcpConfig`]: where the keys live (project, location, key ring), how to reach Cloud KMS
//! (endpoint, credentials, timeouts, retries) and which algorithm a new key gets, from code
//! or from a `gcp-kms://` URL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hsm_core::settings::Section;
use hsm_core::{EncryptionAlgorithm, Error, Result, SignatureAlgorithm};

use crate::PROVIDER;

/// Default time allowed for one attempt of one call.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for one call, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of attempts per call (the first one included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default time versions spend scheduled for destruction (Cloud KMS's own default).
pub const DEFAULT_DELETION_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// Shortest destruction window Cloud KMS accepts.
pub const MIN_DELETION_WINDOW: Duration = Duration::from_secs(86_400);
/// Longest destruction window Cloud KMS accepts.
pub const MAX_DELETION_WINDOW: Duration = Duration::from_secs(120 * 86_400);
/// How long key metadata is reused by default (see [`GcpConfig::metadata_ttl`]).
pub const DEFAULT_METADATA_TTL: Duration = Duration::from_secs(30);

/// Where credentials come from.
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud
    /// application-default file, then the metadata server.
    #[default]
    ApplicationDefault,
    /// No credentials at all (no `Authorization` header): for emulators only.
    Anonymous,
    /// A service-account key file (JSON).
    ServiceAccountFile(PathBuf),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApplicationDefault => f.write_str("ApplicationDefault"),
            Credentials::Anonymous => f.write_str("Anonymous"),
            // The path is not secret; the file's content is never read into this type.
            Credentials::ServiceAccountFile(p) => write!(f, "ServiceAccountFile({})", p.display()),
        }
    }
}

/// Cloud KMS's protection level for new keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protection {
    /// Software keys (`SOFTWARE`): plaintext and AAD up to 64 KiB each.
    #[default]
    Software,
    /// Cloud HSM keys (`HSM`): plaintext plus AAD up to 8 KiB.
    Hsm,
}

/// How to reach Cloud KMS and where keys live.
///
/// ```
/// use hsm_gcp::GcpConfig;
/// let cfg = GcpConfig::from_url(
///     "gcp-kms://projects/my-proj/locations/global/keyRings/app?endpoint=http://127.0.0.1:8085",
/// )?;
/// assert_eq!(cfg.key_ring_name(), "projects/my-proj/locations/global/keyRings/app");
/// assert_eq!(cfg.endpoint(), Some("http://127.0.0.1:8085"));
/// # Ok::<(), hsm_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpConfig {
    pub(crate) project: String,
    pub(crate) location: String,
    pub(crate) key_ring: String,
    pub(crate) create_key_ring: bool,
    pub(crate) endpoint: Option<String>,
    pub(crate) credentials: Credentials,
    pub(crate) attempt_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) protection: Protection,
    pub(crate) rsa_signature: SignatureAlgorithm,
    pub(crate) rsa_encryption: EncryptionAlgorithm,
    pub(crate) raw_aes256: bool,
    pub(crate) deletion_window: Duration,
    pub(crate) metadata_ttl: Duration,
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(PROVIDER, message)
}

/// Checks a Cloud KMS resource id (key ring, crypto key): `[a-zA-Z0-9_-]{1,63}`.
pub(crate) fn validate_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 63
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(config_err(format!(
            "{what} '{}' is not a Cloud KMS id: use 1 to 63 letters, digits, '-' and '_'",
            id.escape_debug()
        )));
    }
    Ok(())
}

fn validate_project(project: &str) -> Result<()> {
    // Project ids are 6-30 lowercase letters, digits and hyphens; older projects may carry
    // a domain prefix (`example.com:proj`). Only characters that would break a resource
    // path are refused here; Cloud KMS answers the rest.
    if project.is_empty()
        || project.len() > 100
        || !project.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(config_err(format!(
            "project '{}' is not a Google Cloud project id (e.g. my-project-123)",
            project.escape_debug()
        )));
    }
    Ok(())
}

fn validate_location(location: &str) -> Result<()> {
    if location.is_empty()
        || location.len() > 63
        || !location.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(config_err(format!(
            "location '{}' is not a Cloud KMS location (e.g. global, us-east1, europe)",
            location.escape_debug()
        )));
    }
    Ok(())
}

fn validate_endpoint(endpoint: &str) -> Result<()> {
    let parsed = url::Url::parse(endpoint).map_err(|e| {
        config_err(format!("endpoint '{endpoint}' is not a URL ({e}); write e.g. http://127.0.0.1:8085"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(config_err(format!(
            "endpoint '{endpoint}' must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8085"
        )));
    }
    Ok(())
}

fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    hsm_core::settings::parse_duration(PROVIDER, key, value, Duration::from_secs(200 * 86_400))
}

impl GcpConfig {
    /// Keys in `projects/{project}/locations/{location}/keyRings/{key_ring}`, with
    /// Application Default Credentials, the default endpoint, timeouts and algorithms.
    pub fn new(project: impl Into<String>, location: impl Into<String>, key_ring: impl Into<String>) -> Self {
        GcpConfig {
            project: project.into(),
            location: location.into(),
            key_ring: key_ring.into(),
            create_key_ring: false,
            endpoint: None,
            credentials: Credentials::ApplicationDefault,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            protection: Protection::Software,
            rsa_signature: SignatureAlgorithm::RsaPssSha256,
            rsa_encryption: EncryptionAlgorithm::RsaOaepSha256,
            raw_aes256: false,
            deletion_window: DEFAULT_DELETION_WINDOW,
            metadata_ttl: DEFAULT_METADATA_TTL,
        }
    }

    /// Reads the `[gcp]` table of a configuration file: `project`, `location` and
    /// `key_ring`, plus any parameter of [`from_url`](Self::from_url) (`endpoint`,
    /// `credentials`, `create_key_ring`, `timeout`, …) as a string, boolean or number.
    ///
    /// ```toml
    /// provider = "gcp-kms"
    ///
    /// [gcp]
    /// project = "my-project"
    /// location = "europe-west1"
    /// key_ring = "app"
    /// create_key_ring = true
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for a missing table or one of the three names, and as
    /// [`from_url`](Self::from_url), naming the file and table.
    pub fn from_section(section: &mut Section<'_>) -> Result<Self> {
        if !section.is_present() {
            return Err(section.missing("project, location and key_ring"));
        }
        let mut name = |field: &str| match section.take(field) {
            Some((hsm_core::settings::Value::String(s), _)) if !s.is_empty() => Ok(s),
            _ => Err(section.error(format!("gcp.{field} is missing or not a non-empty string"))),
        };
        let (project, location, ring) = (name("project")?, name("location")?, name("key_ring")?);
        let query = section.take_query(&[])?;
        let url = format!("gcp-kms://projects/{project}/locations/{location}/keyRings/{ring}?{query}");
        Self::from_url(&url).map_err(|e| section.context(e))
    }

    /// Parses `gcp-kms://projects/P/locations/L/keyRings/R?endpoint=…&…`.
    ///
    /// Query parameters (all optional):
    /// - `endpoint=http://127.0.0.1:8085`: send requests there (an emulator);
    /// - `credentials=adc|anonymous|/path/to/service-account.json` (default `adc`; an
    ///   `endpoint` on `127.0.0.1`/`localhost` without `credentials` means `anonymous`);
    /// - `create_key_ring=true`: create the key ring on first use if it is missing;
    /// - `timeout=30s`, `attempt_timeout=10s`, `max_attempts=3`;
    /// - `protection=software|hsm`;
    /// - `rsa_signature=rsa-pss-sha256|rsa-pkcs1-sha256`, `rsa_encryption=rsa-oaep-sha256|rsa-oaep-sha1`:
    ///   the algorithm new RSA keys are created with (Cloud KMS fixes one per key);
    /// - `raw_aes256=true`: AES-256 keys become `RAW_ENCRYPT_DECRYPT` `AES_256_GCM` keys;
    /// - `deletion_window=30d`: how long versions stay scheduled for destruction (1 to 120 days),
    ///   set on each key at creation;
    /// - `metadata_ttl=30s`: how long a key's metadata is reused between calls (`0` reads it
    ///   before every call; see [`metadata_ttl`](Self::metadata_ttl)).
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, a malformed path, an unknown parameter or a bad value.
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        let usage =
            "write gcp-kms://projects/PROJECT/locations/LOCATION/keyRings/RING[?endpoint=http://host:port]";
        let rest = url
            .get(..8)
            .filter(|s| s.eq_ignore_ascii_case("gcp-kms:"))
            .map(|_| &url[8..])
            .ok_or_else(|| config_err(format!("'{url}' is not a gcp-kms URL; {usage}")))?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let [p, project, l, location, r, ring] = parts.as_slice() else {
            return Err(config_err(format!("gcp-kms URL '{url}' does not name a key ring; {usage}")));
        };
        if (*p, *l, *r) != ("projects", "locations", "keyRings") {
            return Err(config_err(format!("gcp-kms URL '{url}' does not name a key ring; {usage}")));
        }
        let mut cfg = GcpConfig::new(*project, *location, *ring);
        let mut credentials_given = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                return Err(config_err(format!("gcp-kms URL '{url}': parameter '{key}' is empty")));
            }
            let flag = |v: &str| match v {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(config_err(format!("{key}={v} is not true or false"))),
            };
            match key.as_ref() {
                "endpoint" => {
                    validate_endpoint(value)?;
                    cfg.endpoint = Some(value.to_owned());
                }
                "credentials" => {
                    credentials_given = true;
                    cfg.credentials = match value {
                        "adc" | "default" => Credentials::ApplicationDefault,
                        "anonymous" | "none" => Credentials::Anonymous,
                        path => Credentials::ServiceAccountFile(PathBuf::from(path)),
                    };
                }
                "create_key_ring" | "create-key-ring" => cfg.create_key_ring = flag(value)?,
                "timeout" => cfg.operation_timeout = parse_duration(&key, value)?,
                "attempt_timeout" => cfg.attempt_timeout = parse_duration(&key, value)?,
                "max_attempts" => {
                    cfg.max_attempts = match value.parse::<u32>() {
                        Ok(n @ 1..=10) => n,
                        _ => {
                            return Err(config_err(format!(
                                "max_attempts={value} is not a number from 1 to 10"
                            )));
                        }
                    }
                }
                "protection" => {
                    cfg.protection = match value.to_ascii_lowercase().as_str() {
                        "software" => Protection::Software,
                        "hsm" => Protection::Hsm,
                        _ => return Err(config_err(format!("protection={value}: use software or hsm"))),
                    }
                }
                "rsa_signature" => {
                    let alg = value.parse::<SignatureAlgorithm>().map_err(|e| config_err(e.to_string()))?;
                    cfg = cfg.with_rsa_signature(alg)?;
                }
                "rsa_encryption" => {
                    let alg = value.parse::<EncryptionAlgorithm>().map_err(|e| config_err(e.to_string()))?;
                    cfg = cfg.with_rsa_encryption(alg)?;
                }
                "raw_aes256" => cfg.raw_aes256 = flag(value)?,
                "deletion_window" => cfg = cfg.with_deletion_window(parse_duration(&key, value)?)?,
                "metadata_ttl" if matches!(value, "0" | "0s" | "0ms") => cfg.metadata_ttl = Duration::ZERO,
                "metadata_ttl" => cfg.metadata_ttl = parse_duration(&key, value)?,
                other => {
                    return Err(config_err(format!(
                        "gcp-kms URL '{url}' has unknown parameter '{other}'; known: endpoint, credentials, \
                         create_key_ring, timeout, attempt_timeout, max_attempts, protection, rsa_signature, \
                         rsa_encryption, raw_aes256, deletion_window, metadata_ttl"
                    )));
                }
            }
        }
        if !credentials_given && cfg.endpoint.as_deref().is_some_and(is_loopback) {
            cfg.credentials = Credentials::Anonymous;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the project, location, key ring and endpoint.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is malformed.
    pub fn validate(&self) -> Result<()> {
        validate_project(&self.project)?;
        validate_location(&self.location)?;
        validate_id("key ring", &self.key_ring)?;
        if let Some(e) = &self.endpoint {
            validate_endpoint(e)?;
        }
        Ok(())
    }

    /// Sends requests to this endpoint (an emulator) instead of `https://cloudkms.googleapis.com`.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Uses these credentials instead of Application Default Credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Creates the key ring on first use when it does not exist (needs
    /// `cloudkms.keyRings.create`). Off by default.
    #[must_use]
    pub fn create_key_ring(mut self, yes: bool) -> Self {
        self.create_key_ring = yes;
        self
    }

    /// Time allowed for one call, retries included.
    #[must_use]
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// Time allowed for one attempt.
    #[must_use]
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// How long a key's metadata (its crypto key and versions) is reused between calls, so
    /// that a data-plane call costs one request instead of three (default
    /// [`DEFAULT_METADATA_TTL`]; `Duration::ZERO` reads it before every call).
    ///
    /// Only enabled keys are remembered; a key changed through this provider is read again
    /// at once, and so is a key Cloud KMS answers `NOT_FOUND` or `FAILED_PRECONDITION` for.
    /// A rotation, disable or new version made elsewhere is seen within `ttl`.
    #[must_use]
    pub fn metadata_ttl(mut self, ttl: Duration) -> Self {
        self.metadata_ttl = ttl;
        self
    }

    /// Attempts per call, the first included (1 = never retry). Connection failures are
    /// retried within this budget, so an endpoint nobody listens on fails within a second
    /// or so instead of the SDK default's minute.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Protection level of new keys.
    #[must_use]
    pub fn with_protection(mut self, p: Protection) -> Self {
        self.protection = p;
        self
    }

    /// The algorithm new RSA signing keys get: `rsa-pss-sha256` (default) or `rsa-pkcs1-sha256`.
    ///
    /// # Errors
    /// [`Error::Config`] for any other algorithm.
    pub fn with_rsa_signature(mut self, alg: SignatureAlgorithm) -> Result<Self> {
        if !matches!(alg, SignatureAlgorithm::RsaPssSha256 | SignatureAlgorithm::RsaPkcs1v15Sha256) {
            return Err(config_err(format!(
                "rsa_signature={alg}: new RSA signing keys can be rsa-pss-sha256 or rsa-pkcs1-sha256 \
                 (for RSA_SIGN_*_4096_SHA512 use GcpKmsProvider::create_key_with_algorithm)"
            )));
        }
        self.rsa_signature = alg;
        Ok(self)
    }

    /// The algorithm new RSA encryption keys get: `rsa-oaep-sha256` (default) or `rsa-oaep-sha1`.
    /// RSA wrapping keys are always `rsa-oaep-sha256`.
    ///
    /// # Errors
    /// [`Error::Config`] for any other algorithm.
    pub fn with_rsa_encryption(mut self, alg: EncryptionAlgorithm) -> Result<Self> {
        if !matches!(alg, EncryptionAlgorithm::RsaOaepSha256 | EncryptionAlgorithm::RsaOaepSha1) {
            return Err(config_err(format!(
                "rsa_encryption={alg}: Cloud KMS RSA decryption keys are rsa-oaep-sha256 or rsa-oaep-sha1"
            )));
        }
        self.rsa_encryption = alg;
        Ok(self)
    }

    /// Makes new AES-256 keys `RAW_ENCRYPT_DECRYPT` `AES_256_GCM` keys (the caller sees the
    /// IV and tag) instead of `GOOGLE_SYMMETRIC_ENCRYPTION` keys. AES-128 keys are always raw.
    #[must_use]
    pub fn raw_aes256(mut self, yes: bool) -> Self {
        self.raw_aes256 = yes;
        self
    }

    /// How long versions stay `DESTROY_SCHEDULED` (set on each new key; Cloud KMS cannot
    /// change it later). 1 to 120 days; default 30 days.
    ///
    /// # Errors
    /// [`Error::Config`] outside that range.
    pub fn with_deletion_window(mut self, d: Duration) -> Result<Self> {
        if d < MIN_DELETION_WINDOW || d > MAX_DELETION_WINDOW {
            return Err(config_err(format!(
                "deletion_window of {} s is outside Cloud KMS's range of 1 to 120 days",
                d.as_secs()
            )));
        }
        self.deletion_window = d;
        Ok(self)
    }

    /// The project id.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The location (`global`, `us-east1`, ...).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The key ring id.
    pub fn key_ring(&self) -> &str {
        &self.key_ring
    }

    /// `projects/P/locations/L/keyRings/R`.
    pub fn key_ring_name(&self) -> String {
        format!("projects/{}/locations/{}/keyRings/{}", self.project, self.location, self.key_ring)
    }

    /// The endpoint override, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The credentials source.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The deletion window new keys get.
    pub fn deletion_window(&self) -> Duration {
        self.deletion_window
    }
}

fn is_loopback(endpoint: &str) -> bool {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| matches!(h.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_key_ring_and_options() {
        let cfg = GcpConfig::from_url(
            "gcp-kms://projects/p-1/locations/global/keyRings/ring_1?endpoint=http://127.0.0.1:9&create_key_ring=true\
             &rsa_signature=rsa-pkcs1-sha256&deletion_window=1d&max_attempts=1",
        )
        .unwrap();
        assert_eq!(cfg.key_ring_name(), "projects/p-1/locations/global/keyRings/ring_1");
        assert_eq!(cfg.credentials, Credentials::Anonymous);
        assert!(cfg.create_key_ring);
        assert_eq!(cfg.rsa_signature, SignatureAlgorithm::RsaPkcs1v15Sha256);
        assert_eq!(cfg.deletion_window, Duration::from_secs(86_400));
        assert_eq!(cfg.max_attempts, 1);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let msg = |u: &str| GcpConfig::from_url(u).unwrap_err().to_string();
        assert!(msg("aws-kms://x").contains("not a gcp-kms URL"));
        assert!(msg("gcp-kms://projects/p/locations/global").contains("does not name a key ring"));
        assert!(msg("gcp-kms://projects/p/locations/global/keyRings/a b").contains("not a Cloud KMS id"));
        assert!(
            msg("gcp-kms://projects/p/locations/global/keyRings/r?colour=red").contains("unknown parameter")
        );
        assert!(msg("gcp-kms://projects/p/locations/global/keyRings/r?endpoint=ftp://x").contains("http://"));
        assert!(
            msg("gcp-kms://projects/p/locations/global/keyRings/r?rsa_signature=ecdsa-sha256")
                .contains("rsa-pss")
        );
        assert!(
            msg("gcp-kms://projects/p/locations/global/keyRings/r?deletion_window=2h")
                .contains("1 to 120 days")
        );
    }
}
