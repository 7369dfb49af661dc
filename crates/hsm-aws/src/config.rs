//! [`AwsConfig`]: how to reach AWS KMS (region, endpoint, credentials, timeouts), from code
//! or from an `aws-kms://` URL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{Credentials, Region};
use hsm_core::settings::Section;
use hsm_core::{Error, Result, Zeroizing};

use crate::PROVIDER;

/// Default time allowed to open a TCP/TLS connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time allowed for one attempt of one call.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for one call, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of attempts per call (the first one included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// How to reach AWS KMS.
///
/// Everything not set here comes from the standard AWS chain (`AWS_REGION`,
/// `AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
/// `AWS_PROFILE`, `~/.aws/config` and `~/.aws/credentials`, SSO, `credential_process`, the
/// container and instance metadata services).
///
/// ```
/// use std::time::Duration;
/// use hsm_aws::AwsConfig;
/// let cfg = AwsConfig::from_url("aws-kms://?region=eu-west-1&endpoint=http://127.0.0.1:4566")?
///     .static_credentials("testing", "testing")
///     .operation_timeout(Duration::from_secs(5));
/// assert_eq!(cfg.region(), Some("eu-west-1"));
/// assert_eq!(cfg.endpoint(), Some("http://127.0.0.1:4566"));
/// assert!(!format!("{cfg:?}").contains("testing\""));
/// # Ok::<(), hsm_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AwsConfig {
    region: Option<String>,
    endpoint: Option<String>,
    profile: Option<String>,
    profile_file: Option<PathBuf>,
    credentials: Option<(String, Zeroizing<String>, Option<Zeroizing<String>>)>,
    connect_timeout: Duration,
    attempt_timeout: Duration,
    operation_timeout: Duration,
    max_attempts: u32,
    metadata_ttl: Duration,
    verification: crate::Verification,
}

impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("profile_file", &self.profile_file)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, _, _)| format!("{id} <secret redacted>")),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("metadata_ttl", &self.metadata_ttl)
            .field("verification", &self.verification)
            .finish()
    }
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: None,
            endpoint: None,
            profile: None,
            profile_file: None,
            credentials: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            metadata_ttl: crate::provider::DEFAULT_METADATA_TTL,
            verification: crate::Verification::Service,
        }
    }
}

/// Credentials from exactly one named profile (not the rest of the chain), optionally from
/// one given credentials file.
// The SDK deprecated these names in favour of aws-runtime's, which aws-config does not re-export.
#[allow(deprecated)]
fn profile_provider(profile: &str, file: Option<&std::path::Path>) -> ProfileFileCredentialsProvider {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let mut b = ProfileFileCredentialsProvider::builder().profile_name(profile);
    if let Some(file) = file {
        b = b.profile_files(ProfileFiles::builder().with_file(ProfileFileKind::Credentials, file).build());
    }
    b.build()
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(PROVIDER, message)
}

/// Checks the shape of a region name (`us-east-1`, `eu-central-2`, `us-gov-west-1`, ...).
/// New regions keep this shape, so no list is kept.
pub(crate) fn validate_region(region: &str) -> Result<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u16>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(config_err(format!(
            "'{}' is not an AWS region name; use a region such as us-east-1 or eu-west-2",
            region.escape_debug()
        )))
    }
}

fn validate_endpoint(endpoint: &str) -> Result<()> {
    let parsed = url::Url::parse(endpoint).map_err(|e| {
        config_err(format!("endpoint '{endpoint}' is not a URL ({e}); write e.g. http://127.0.0.1:4566"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(config_err(format!(
            "endpoint '{endpoint}' must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:4566"
        )));
    }
    Ok(())
}

fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    hsm_core::settings::parse_duration(PROVIDER, key, value, Duration::from_secs(3600))
}

impl AwsConfig {
    /// Everything from the standard AWS chain, with the default timeouts and retries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the `[aws]` table of a configuration file, whose settings are the parameters of
    /// an `aws-kms://` URL ([`from_url`](Self::from_url)), every one optional:
    ///
    /// ```toml
    /// provider = "aws-kms"
    ///
    /// [aws]
    /// region = "eu-west-1"
    /// endpoint = "http://127.0.0.1:4566"   # only for emulators
    /// profile = "prod"
    /// timeout = 5                           # seconds, or "500ms"
    /// metadata_ttl = 30                     # seconds key metadata is reused; 0 = off
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] as [`from_url`](Self::from_url), naming the file and table, and for
    /// a setting that is not a string, number or boolean.
    pub fn from_section(section: &mut Section<'_>) -> Result<Self> {
        let query = section.take_query(&[])?;
        Self::from_url(&format!("aws-kms://?{query}")).map_err(|e| section.context(e))
    }

    /// Parses `aws-kms://?region=…&endpoint=…&profile=…&timeout=…&connect_timeout=…&max_attempts=…&metadata_ttl=…&verify=service|local`.
    ///
    /// Every parameter is optional; unset ones come from the standard AWS chain.
    /// `timeout` bounds one whole call (retries included), `connect_timeout` opening a
    /// connection, `metadata_ttl` how long key metadata is reused (`0` turns the cache off;
    /// see [`AwsKmsProvider::with_metadata_ttl`](crate::AwsKmsProvider::with_metadata_ttl)),
    /// all in seconds (`5`, `5s`) or milliseconds (`500ms`). `verify=local` checks signatures
    /// with the cached public key instead of KMS `Verify` (see [`crate::Verification`]). Credentials are
    /// never taken from a URL: use the environment, a profile, or
    /// [`static_credentials`](Self::static_credentials).
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, a host or path, an unknown parameter, a
    /// malformed region, endpoint, duration or attempt count, or credentials in the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        let Some(rest) = url
            .strip_prefix("aws-kms:")
            .or_else(|| url.get(..8).filter(|s| s.eq_ignore_ascii_case("aws-kms:")).map(|_| &url[8..]))
        else {
            return Err(config_err(format!(
                "'{url}' is not an aws-kms URL; write aws-kms://?region=us-east-1[&endpoint=http://host:port]"
            )));
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        if !matches!(authority, "" | "/") {
            return Err(config_err(format!(
                "aws-kms URL '{url}' has a host or path ('{authority}'); put everything in the query: \
                 aws-kms://?region=us-east-1&endpoint=http://127.0.0.1:4566"
            )));
        }
        let mut cfg = AwsConfig::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                return Err(config_err(format!("aws-kms URL '{url}': parameter '{key}' is empty")));
            }
            match key.as_ref() {
                "region" => {
                    validate_region(value)?;
                    cfg.region = Some(value.to_owned());
                }
                "endpoint" | "endpoint_url" => {
                    validate_endpoint(value)?;
                    cfg.endpoint = Some(value.to_owned());
                }
                "profile" => cfg.profile = Some(value.to_owned()),
                "timeout" => cfg.operation_timeout = parse_duration(&key, value)?,
                "connect_timeout" => cfg.connect_timeout = parse_duration(&key, value)?,
                "verify" => {
                    cfg.verification = match value {
                        "service" => crate::Verification::Service,
                        "local" => crate::Verification::Local,
                        _ => {
                            return Err(config_err(format!(
                                "verify={value}: write verify=service or verify=local"
                            )));
                        }
                    }
                }
                "metadata_ttl" if matches!(value, "0" | "0s" | "0ms") => cfg.metadata_ttl = Duration::ZERO,
                "metadata_ttl" => cfg.metadata_ttl = parse_duration(&key, value)?,
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
                "access_key_id"
                | "secret_access_key"
                | "session_token"
                | "aws_access_key_id"
                | "aws_secret_access_key" => {
                    return Err(config_err(format!(
                        "aws-kms URL has '{key}': credentials never go in a URL; set AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY, or use profile=NAME"
                    )));
                }
                other => {
                    return Err(config_err(format!(
                        "aws-kms URL '{url}' has unknown parameter '{other}'; known: region, endpoint, \
                         profile, timeout, connect_timeout, max_attempts, metadata_ttl, verify"
                    )));
                }
            }
        }
        Ok(cfg)
    }

    /// Uses this region instead of the chain's.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sends requests to this endpoint (an emulator such as moto or LocalStack).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Reads credentials (and region) from this named profile.
    #[must_use]
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Reads profiles from this credentials file instead of `~/.aws/credentials`
    /// (only together with [`with_profile`](Self::with_profile)).
    #[must_use]
    pub fn with_profile_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.profile_file = Some(path.into());
        self
    }

    /// Uses these static credentials instead of the chain's.
    #[must_use]
    pub fn static_credentials(mut self, access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some((access_key_id.into(), Zeroizing::new(secret.into()), None));
        self
    }

    /// Uses these temporary credentials (with a session token).
    #[must_use]
    pub fn session_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret: impl Into<String>,
        session_token: impl Into<String>,
    ) -> Self {
        self.credentials = Some((
            access_key_id.into(),
            Zeroizing::new(secret.into()),
            Some(Zeroizing::new(session_token.into())),
        ));
        self
    }

    /// Bounds one whole call, retries included (default 30 s).
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Bounds opening a connection (default 3 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the provider reuses key metadata in data-plane calls (default 30 s;
    /// `Duration::ZERO` turns the cache off). See
    /// [`AwsKmsProvider::with_metadata_ttl`](crate::AwsKmsProvider::with_metadata_ttl).
    #[must_use]
    pub fn metadata_ttl(mut self, ttl: Duration) -> Self {
        self.metadata_ttl = ttl;
        self
    }

    /// Where signatures are checked (default [`Verification::Service`](crate::Verification::Service)).
    #[must_use]
    pub fn verification(mut self, verification: crate::Verification) -> Self {
        self.verification = verification;
        self
    }

    /// Where signatures are checked; see [`verification`](Self::verification).
    pub fn verification_mode(&self) -> crate::Verification {
        self.verification
    }

    /// How long key metadata is reused; see [`metadata_ttl`](Self::metadata_ttl).
    pub fn metadata_cache_ttl(&self) -> Duration {
        self.metadata_ttl
    }

    /// Attempts per call, the first included (default 3; 1 disables retries).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The region override, if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The endpoint override, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The profile override, if any.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// Loads the SDK configuration: the standard chain with this configuration's overrides.
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed region or endpoint, or when no region is found.
    pub async fn sdk_config(&self) -> Result<aws_sdk_kms::Config> {
        if let Some(r) = &self.region {
            validate_region(r)?;
        }
        if let Some(e) = &self.endpoint {
            validate_endpoint(e)?;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.attempt_timeout.min(self.operation_timeout))
                    .operation_timeout(self.operation_timeout)
                    .build(),
            )
            .retry_config(if self.max_attempts <= 1 {
                // hsm-layers owns retries: the SDK's retries and its retry token bucket are off
                // (the per-attempt timeout above stays).
                RetryConfig::disabled()
            } else {
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(2))
            });
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &self.endpoint {
            loader = loader.endpoint_url(e.clone());
        }
        if let Some(p) = &self.profile {
            loader = loader
                .profile_name(p.clone())
                .credentials_provider(profile_provider(p, self.profile_file.as_deref()));
        }
        if let Some((id, secret, token)) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.as_str().to_owned(),
                token.as_ref().map(|t| t.as_str().to_owned()),
                None,
                "hsm-aws-static",
            ));
        }
        let shared = loader.load().await;
        let region = shared.region().map(|r| r.as_ref().to_owned());
        match region {
            None => {
                return Err(config_err(
                    "no AWS region configured: set AWS_REGION, a region in the profile, or region=… in \
                     the aws-kms:// URL",
                ));
            }
            Some(r) => validate_region(&r)?,
        }
        Ok(aws_sdk_kms::config::Builder::from(&shared).build())
    }
}
