//! [`AzureConfig`]: how to reach a Key Vault or Managed HSM (URL, kind, credential, CA,
//! timeouts, retries, key protection), from code or from an `azure-keyvault://` URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::KeyClientOptions;
use hsm_core::settings::Section;
use hsm_core::{Error, Result, Zeroizing};

use crate::PROVIDER;
use crate::credential::{ChainCredential, StaticTokenCredential};

/// Default time allowed to open a TCP/TLS connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time allowed for one HTTP attempt (reading the whole response).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for one operation, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long key metadata is reused by default (see [`AzureConfig::metadata_ttl`]).
pub const DEFAULT_METADATA_TTL: Duration = Duration::from_secs(30);
/// Default number of retries after the first attempt (connection failures, 408, 429, 5xx).
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Default soft-delete retention of a vault, in days (Key Vault's own default).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// The environment variable `credential=token` reads the bearer token from.
pub const TOKEN_ENV: &str = "HSM_AZURE_ACCESS_TOKEN";

/// Which service the URL points at. Standard vaults hold RSA and EC keys; Managed HSM also
/// holds AES (`oct-HSM`) keys and offers the AES algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VaultKind {
    /// A standard or premium Key Vault (`https://NAME.vault.azure.net`).
    Vault,
    /// A Managed HSM pool (`https://NAME.managedhsm.azure.net`).
    ManagedHsm,
}

impl fmt::Display for VaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VaultKind::Vault => "vault",
            VaultKind::ManagedHsm => "managed-hsm",
        })
    }
}

/// How the private key material of new RSA and EC keys is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyProtection {
    /// Software-protected keys (`RSA`, `EC`): every vault tier. Not available on Managed HSM,
    /// where this setting is ignored.
    #[default]
    Software,
    /// HSM-protected keys (`RSA-HSM`, `EC-HSM`): premium vaults, and always on Managed HSM.
    Hsm,
}

/// Where the bearer token comes from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum AzureCredential {
    /// The standard chain, first that works: environment client secret (`AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity
    /// (`AZURE_FEDERATED_TOKEN_FILE`), managed identity, then the developer tools (Azure CLI
    /// `az`, Azure Developer CLI `azd`).
    #[default]
    Chain,
    /// A fixed bearer token (for emulators and short-lived scripts; it is not refreshed).
    Token(Zeroizing<String>),
    /// Any credential you built yourself (e.g. one from `azure_identity` with its options).
    Custom(Arc<dyn TokenCredential>),
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCredential::Chain => f.write_str("Chain"),
            AzureCredential::Token(_) => f.write_str("Token(<redacted>)"),
            AzureCredential::Custom(c) => write!(f, "Custom({c:?})"),
        }
    }
}

impl Eq for AzureCredential {}

impl PartialEq for AzureCredential {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AzureCredential::Chain, AzureCredential::Chain) => true,
            (AzureCredential::Token(a), AzureCredential::Token(b)) => a == b,
            (AzureCredential::Custom(a), AzureCredential::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// How to reach Azure Key Vault or Managed HSM.
///
/// ```
/// use std::time::Duration;
/// use hsm_azure::{AzureConfig, VaultKind};
/// let cfg = AzureConfig::new("https://contoso.vault.azure.net")?;
/// assert_eq!(cfg.kind(), VaultKind::Vault);
/// let mhsm = AzureConfig::new("https://contoso.managedhsm.azure.net/")?
///     .operation_timeout(Duration::from_secs(5));
/// assert_eq!(mhsm.kind(), VaultKind::ManagedHsm);
/// // An emulator: any host, as long as its CA is given.
/// let emu = AzureConfig::from_url("azure-keyvault://127.0.0.1:8443?ca=/tmp/ca.pem&kind=managed-hsm")?;
/// assert_eq!(emu.vault_url(), "https://127.0.0.1:8443");
/// assert!(AzureConfig::new("http://contoso.vault.azure.net").is_err());
/// assert!(AzureConfig::new("https://example.com").is_err());
/// # Ok::<(), hsm_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AzureConfig {
    url: String,
    kind: VaultKind,
    kind_explicit: bool,
    credential: AzureCredential,
    ca_file: Option<PathBuf>,
    protection: KeyProtection,
    connect_timeout: Duration,
    attempt_timeout: Duration,
    operation_timeout: Duration,
    max_retries: u32,
    retention_days: u32,
    metadata_ttl: Duration,
}

impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConfig")
            .field("url", &self.url)
            .field("kind", &self.kind)
            .field("credential", &self.credential)
            .field("ca_file", &self.ca_file)
            .field("protection", &self.protection)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_retries", &self.max_retries)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(PROVIDER, message)
}

/// Host suffixes of Key Vault (public cloud, China, US Government).
const VAULT_SUFFIXES: &[&str] = &[".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net"];
/// Host suffixes of Managed HSM.
const MHSM_SUFFIXES: &[&str] =
    &[".managedhsm.azure.net", ".managedhsm.azure.cn", ".managedhsm.usgovcloudapi.net"];

/// The kind of service a host name belongs to, if it is a Key Vault or Managed HSM host.
pub fn kind_of_host(host: &str) -> Option<VaultKind> {
    let host = host.to_ascii_lowercase();
    let has = |suffixes: &[&str]| {
        suffixes.iter().any(|s| host.strip_suffix(s).is_some_and(|n| !n.is_empty() && !n.contains('.')))
    };
    if has(MHSM_SUFFIXES) {
        Some(VaultKind::ManagedHsm)
    } else if has(VAULT_SUFFIXES) {
        Some(VaultKind::Vault)
    } else {
        None
    }
}

fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    hsm_core::settings::parse_duration(PROVIDER, key, value, Duration::from_secs(3600))
}

/// Parses and normalises a vault URL: `https://HOST[:PORT]`, no path, query or credentials.
fn normalise_url(url: &str) -> Result<(String, String)> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| {
        config_err(format!(
            "'{url}' is not a URL ({e}); write the vault URL, e.g. https://NAME.vault.azure.net"
        ))
    })?;
    if parsed.scheme() != "https" {
        return Err(config_err(format!(
            "vault URL '{url}' must use https:// (Key Vault clients never send bearer tokens over {}://); \
             write https://NAME.vault.azure.net or https://NAME.managedhsm.azure.net",
            parsed.scheme()
        )));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
        config_err(format!("vault URL '{url}' has no host; write e.g. https://NAME.vault.azure.net"))
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(config_err(format!(
            "vault URL '{url}' contains credentials; they never go in a URL (see AzureCredential)"
        )));
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(config_err(format!(
            "vault URL '{url}' has a path, query or fragment; give only https://HOST[:PORT] (keys are named per call)"
        )));
    }
    let host = host.to_owned();
    let normal = match parsed.port() {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    };
    Ok((normal, host))
}

impl AzureConfig {
    /// A configuration for the vault or Managed HSM at `url`
    /// (`https://NAME.vault.azure.net` or `https://NAME.managedhsm.azure.net`), with the
    /// credential chain, software-protected keys and the default timeouts.
    ///
    /// The kind is detected from the host. Any other host (an emulator, a private endpoint
    /// with a custom DNS name) is accepted once a CA file is set with
    /// [`with_ca_file`](Self::with_ca_file) or the kind is given with
    /// [`with_kind`](Self::with_kind); this constructor refuses it so that a typo does not send
    /// tokens to a stranger.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `https://HOST[:PORT]`, or a host that is not a
    /// Key Vault or Managed HSM host.
    pub fn new(url: &str) -> Result<Self> {
        let (url, host) = normalise_url(url)?;
        let Some(kind) = kind_of_host(&host) else {
            return Err(config_err(format!(
                "'{host}' is not a Key Vault or Managed HSM host (NAME.vault.azure.net, \
                 NAME.managedhsm.azure.net, or their sovereign-cloud forms); for an emulator or a \
                 private endpoint use AzureConfig::custom(url, kind) or azure-keyvault://HOST?ca=/path/ca.pem"
            )));
        };
        Ok(Self::with_defaults(url, kind, false))
    }

    /// A configuration for any `https://HOST[:PORT]` (an emulator, a private endpoint) of the
    /// given kind. Pair it with [`with_ca_file`](Self::with_ca_file) when the server's
    /// certificate is not from a public CA.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `https://HOST[:PORT]`.
    pub fn custom(url: &str, kind: VaultKind) -> Result<Self> {
        let (url, _) = normalise_url(url)?;
        Ok(Self::with_defaults(url, kind, true))
    }

    fn with_defaults(url: String, kind: VaultKind, kind_explicit: bool) -> Self {
        AzureConfig {
            url,
            kind,
            kind_explicit,
            credential: AzureCredential::Chain,
            ca_file: None,
            protection: KeyProtection::Software,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retention_days: DEFAULT_RETENTION_DAYS,
            metadata_ttl: DEFAULT_METADATA_TTL,
        }
    }

    /// Reads the `[azure]` table of a configuration file: `url` (`https://HOST` or an
    /// `azure-keyvault://` URL) and, optionally, the parameters of
    /// [`from_url`](Self::from_url) as settings (`ca` is relative to the file's directory).
    ///
    /// ```toml
    /// provider = "azure-keyvault"
    ///
    /// [azure]
    /// url = "https://contoso.vault.azure.net"   # or azure-keyvault://HOST[:PORT]?…
    /// # optional, as in the azure-keyvault:// URL: ca (relative to this file), kind,
    /// # protection, credential, timeout, connect_timeout, attempt_timeout, max_retries,
    /// # retention_days
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for a missing table or `url`, a `url` that is not `https://`, and
    /// as [`from_url`](Self::from_url), naming the file and table.
    pub fn from_section(section: &mut Section<'_>) -> Result<Self> {
        if !section.is_present() {
            return Err(section.missing("url = \"https://NAME.vault.azure.net\""));
        }
        let url = section.take_string("url")?.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
        let Some(url) = url else {
            return Err(section.error("azure.url is missing; set url = \"https://NAME.vault.azure.net\""));
        };
        let mut full = if url.get(..17).is_some_and(|s| s.eq_ignore_ascii_case("azure-keyvault://")) {
            url
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("azure-keyvault://{}", rest.trim_end_matches('/'))
        } else {
            return Err(section.error(format!(
                "azure.url = \"{url}\" must be https://NAME.vault.azure.net (or an azure-keyvault:// URL)"
            )));
        };
        let query = section.take_query(&["ca", "ca_file"])?;
        if !query.is_empty() {
            full.push(if full.contains('?') { '&' } else { '?' });
            full.push_str(&query);
        }
        Self::from_url(&full).map_err(|e| section.context(e))
    }

    /// Parses `azure-keyvault://HOST[:PORT][?param=value&…]`, which means `https://HOST[:PORT]`.
    ///
    /// | parameter | meaning |
    /// |---|---|
    /// | `ca=/path/ca.pem` | trust only this CA (PEM) for the server certificate: an emulator such as `hsm-emulator azure`; allows any host |
    /// | `kind=vault\|managed-hsm` | the service kind (detected from Key Vault hosts; default `vault` for other hosts) |
    /// | `protection=software\|hsm` | protection of new RSA and EC keys (default `software`) |
    /// | `credential=chain\|token` | `chain` (default): the standard credential chain; `token`: a fixed bearer token read from the environment variable `HSM_AZURE_ACCESS_TOKEN` |
    /// | `timeout=30s`, `connect_timeout=3s`, `attempt_timeout=10s` | timeouts (seconds or `ms`) |
    /// | `max_retries=2` | retries after the first attempt (0 to 10) |
    /// | `retention_days=90` | the vault's soft-delete retention (7 to 90), i.e. the deletion window |
    /// | `metadata_ttl=30s` | how long a key's metadata is reused between calls (`0`: read before every call; see [`metadata_ttl`](Self::metadata_ttl)) |
    ///
    /// Credentials never go in the URL.
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, a path, an unknown or malformed parameter, a
    /// non-Key Vault host without `ca=` or `kind=`, or `credential=token` without the variable.
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        let rest = url
            .get(..17)
            .filter(|s| s.eq_ignore_ascii_case("azure-keyvault://"))
            .map(|_| &url[17..])
            .ok_or_else(|| {
                config_err(format!(
                    "'{url}' is not an azure-keyvault URL; write azure-keyvault://NAME.vault.azure.net \
                     or azure-keyvault://127.0.0.1:8443?ca=/path/ca.pem"
                ))
            })?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(config_err(format!(
                "azure-keyvault URL '{url}' must be azure-keyvault://HOST[:PORT][?params] with no path \
                 or credentials, e.g. azure-keyvault://contoso.vault.azure.net"
            )));
        }
        let (https, host) = normalise_url(&format!("https://{authority}"))?;
        let mut kind = None;
        let mut ca = None;
        let mut cfg = Self::with_defaults(https, VaultKind::Vault, false);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                return Err(config_err(format!("azure-keyvault URL '{url}': parameter '{key}' is empty")));
            }
            match key.as_ref() {
                "ca" | "ca_file" => ca = Some(PathBuf::from(value)),
                "kind" => {
                    kind = Some(match value {
                        "vault" => VaultKind::Vault,
                        "managed-hsm" | "managedhsm" | "mhsm" => VaultKind::ManagedHsm,
                        other => {
                            return Err(config_err(format!(
                                "kind={other} is not a Key Vault kind; use kind=vault or kind=managed-hsm"
                            )));
                        }
                    })
                }
                "protection" => {
                    cfg.protection = match value {
                        "software" => KeyProtection::Software,
                        "hsm" => KeyProtection::Hsm,
                        other => {
                            return Err(config_err(format!(
                                "protection={other} is unknown; use protection=software or protection=hsm"
                            )));
                        }
                    }
                }
                "credential" => {
                    cfg.credential = match value {
                        "chain" | "default" => AzureCredential::Chain,
                        "token" => match std::env::var(TOKEN_ENV) {
                            Ok(t) if !t.trim().is_empty() => {
                                AzureCredential::Token(Zeroizing::new(t.trim().to_owned()))
                            }
                            _ => {
                                return Err(config_err(format!(
                                    "credential=token reads the bearer token from {TOKEN_ENV}, which is \
                                     not set; export it (tokens never go in the URL)"
                                )));
                            }
                        },
                        other => {
                            return Err(config_err(format!(
                                "credential={other} is unknown; use credential=chain or credential=token \
                                 (token from {TOKEN_ENV})"
                            )));
                        }
                    }
                }
                "timeout" => cfg.operation_timeout = parse_duration(&key, value)?,
                "metadata_ttl" if matches!(value, "0" | "0s" | "0ms") => cfg.metadata_ttl = Duration::ZERO,
                "metadata_ttl" => cfg.metadata_ttl = parse_duration(&key, value)?,
                "connect_timeout" => cfg.connect_timeout = parse_duration(&key, value)?,
                "attempt_timeout" => cfg.attempt_timeout = parse_duration(&key, value)?,
                "max_retries" => {
                    cfg.max_retries = match value.parse::<u32>() {
                        Ok(n @ 0..=10) => n,
                        _ => {
                            return Err(config_err(format!(
                                "max_retries={value} is not a number from 0 to 10"
                            )));
                        }
                    }
                }
                "retention_days" => {
                    cfg.retention_days = match value.parse::<u32>() {
                        Ok(n @ 7..=90) => n,
                        _ => {
                            return Err(config_err(format!(
                                "retention_days={value} is not a number from 7 to 90 (Key Vault's soft-delete range)"
                            )));
                        }
                    }
                }
                "token" | "access_token" | "client_secret" | "secret" | "password" => {
                    return Err(config_err(format!(
                        "azure-keyvault URL has '{key}': credentials never go in a URL; use credential=token \
                         with {TOKEN_ENV}, or the standard chain (AZURE_CLIENT_SECRET, az login, ...)"
                    )));
                }
                other => {
                    return Err(config_err(format!(
                        "azure-keyvault URL '{url}' has unknown parameter '{other}'; known: ca, kind, \
                         protection, credential, timeout, connect_timeout, attempt_timeout, max_retries, \
                         retention_days, metadata_ttl"
                    )));
                }
            }
        }
        match (kind_of_host(&host), kind, &ca) {
            (Some(detected), Some(given), _) if detected != given => {
                return Err(config_err(format!(
                    "host '{host}' is a {detected} host but the URL says kind={given}"
                )));
            }
            (Some(detected), _, _) => cfg.kind = detected,
            (None, Some(given), _) => {
                cfg.kind = given;
                cfg.kind_explicit = true;
            }
            (None, None, Some(_)) => cfg.kind_explicit = true,
            (None, None, None) => {
                return Err(config_err(format!(
                    "'{host}' is not a Key Vault or Managed HSM host; for an emulator add ?ca=/path/ca.pem \
                     (and kind=managed-hsm for Managed HSM mode), for a private endpoint add kind=vault"
                )));
            }
        }
        cfg.ca_file = ca;
        Ok(cfg)
    }

    /// Trusts only the CA certificates in this PEM file for the server certificate (an
    /// emulator such as `hsm-emulator azure --ca-out FILE`).
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Overrides the detected kind.
    #[must_use]
    pub fn with_kind(mut self, kind: VaultKind) -> Self {
        self.kind = kind;
        self.kind_explicit = true;
        self
    }

    /// Uses this credential instead of the chain.
    #[must_use]
    pub fn with_credential(mut self, credential: AzureCredential) -> Self {
        self.credential = credential;
        self
    }

    /// Uses a fixed bearer token (not refreshed).
    #[must_use]
    pub fn with_token(self, token: impl Into<String>) -> Self {
        self.with_credential(AzureCredential::Token(Zeroizing::new(token.into())))
    }

    /// Uses any [`TokenCredential`] (for instance one from `azure_identity`).
    #[must_use]
    pub fn with_token_credential(self, credential: Arc<dyn TokenCredential>) -> Self {
        self.with_credential(AzureCredential::Custom(credential))
    }

    /// Protection of new RSA and EC keys on a standard vault (default software).
    #[must_use]
    pub fn with_protection(mut self, protection: KeyProtection) -> Self {
        self.protection = protection;
        self
    }

    /// Bounds one whole operation, retries included (default 30 s).
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How long a key's metadata (its version and public parts) is reused between calls, so
    /// that a data-plane call costs one request instead of two (default
    /// [`DEFAULT_METADATA_TTL`]; `Duration::ZERO` reads it before every call).
    ///
    /// Only enabled keys are remembered; a key changed through this provider is read again
    /// at once, and so is a key Key Vault answers 403 or 404 for. A rotation or disable made
    /// elsewhere is seen within `ttl`.
    #[must_use]
    pub fn metadata_ttl(mut self, ttl: Duration) -> Self {
        self.metadata_ttl = ttl;
        self
    }

    /// How long key metadata is reused; see [`metadata_ttl`](Self::metadata_ttl).
    pub fn metadata_cache_ttl(&self) -> Duration {
        self.metadata_ttl
    }

    /// Bounds opening a connection (default 3 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds one HTTP attempt (default 10 s).
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Retries after the first attempt, for connection failures, 408, 429 (honouring
    /// `Retry-After`) and 5xx (default 2; 0 disables retries).
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The vault's soft-delete retention in days (7 to 90, default 90): Key Vault sets it per
    /// vault, so it is the one deletion window this provider declares.
    #[must_use]
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days.clamp(7, 90);
        self
    }

    /// The normalised vault URL (`https://HOST[:PORT]`).
    pub fn vault_url(&self) -> &str {
        &self.url
    }

    /// The service kind.
    pub fn kind(&self) -> VaultKind {
        self.kind
    }

    /// The key protection for new RSA and EC keys.
    pub fn protection(&self) -> KeyProtection {
        self.protection
    }

    /// The CA file, if one is set.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The operation timeout.
    pub fn timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// The soft-delete retention in days.
    pub fn retention(&self) -> u32 {
        self.retention_days
    }

    /// The credential to use.
    pub fn credential(&self) -> &AzureCredential {
        &self.credential
    }

    /// Builds the token credential this configuration names.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty fixed token.
    pub fn token_credential(&self) -> Result<Arc<dyn TokenCredential>> {
        Ok(match &self.credential {
            AzureCredential::Chain => Arc::new(ChainCredential::from_env()),
            AzureCredential::Token(t) => {
                if t.trim().is_empty() {
                    return Err(config_err("the fixed bearer token is empty"));
                }
                Arc::new(StaticTokenCredential::new(t.as_str()))
            }
            AzureCredential::Custom(c) => c.clone(),
        })
    }

    /// The HTTP client: rustls (aws-lc-rs), the configured timeouts, no redirects, and only
    /// the configured CA as trust root when one is set.
    ///
    /// # Errors
    /// [`Error::Config`] when the CA file cannot be read or holds no PEM certificate.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.attempt_timeout.min(self.operation_timeout))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                config_err(format!(
                    "cannot read the CA file {} ({e}); pass the PEM file the emulator wrote (--ca-out)",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                config_err(format!("the CA file {} is not PEM certificates ({e})", path.display()))
            })?;
            if certs.is_empty() {
                return Err(config_err(format!(
                    "the CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        builder.build().map_err(|e| config_err(format!("cannot build the HTTP client: {e}")))
    }

    /// The SDK client options: the HTTP client above, the retry policy, and challenge-resource
    /// verification (on for real Key Vault hosts, off for custom hosts such as emulators).
    ///
    /// # Errors
    /// As [`http_client`](Self::http_client).
    pub fn client_options(&self) -> Result<KeyClientOptions> {
        let http = self.http_client()?;
        let retry = if self.max_retries == 0 {
            RetryOptions::none()
        } else {
            RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: self.max_retries,
                max_total_elapsed: azure_core::time::Duration::try_from(self.operation_timeout)
                    .unwrap_or(azure_core::time::Duration::seconds(30)),
                max_delay: azure_core::time::Duration::seconds(2),
            })
        };
        let client_options =
            ClientOptions { retry, transport: Some(Transport::new(Arc::new(http))), ..Default::default() };
        Ok(KeyClientOptions {
            client_options,
            verify_challenge_resource: Some(!self.kind_explicit && self.ca_file.is_none()),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_classified_by_suffix() {
        assert_eq!(kind_of_host("contoso.vault.azure.net"), Some(VaultKind::Vault));
        assert_eq!(kind_of_host("Contoso.MANAGEDHSM.azure.net"), Some(VaultKind::ManagedHsm));
        assert_eq!(kind_of_host("x.vault.usgovcloudapi.net"), Some(VaultKind::Vault));
        assert_eq!(kind_of_host("vault.azure.net"), None);
        assert_eq!(kind_of_host("a.b.vault.azure.net"), None);
        assert_eq!(kind_of_host("evil.com"), None);
    }

    #[test]
    fn urls_name_what_is_wrong() {
        let e = AzureConfig::new("http://contoso.vault.azure.net").unwrap_err().to_string();
        assert!(e.contains("must use https://"), "{e}");
        let e = AzureConfig::new("https://contoso.vault.azure.net/keys/x").unwrap_err().to_string();
        assert!(e.contains("path"), "{e}");
        let e = AzureConfig::new("https://example.com").unwrap_err().to_string();
        assert!(e.contains("not a Key Vault or Managed HSM host"), "{e}");
        let e = AzureConfig::from_url("azure-keyvault://example.com").unwrap_err().to_string();
        assert!(e.contains("?ca=/path/ca.pem"), "{e}");
        let e = AzureConfig::from_url("azure-keyvault://h?ca=/x&bogus=1").unwrap_err().to_string();
        assert!(e.contains("unknown parameter 'bogus'"), "{e}");
        let e = AzureConfig::from_url("azure-keyvault://h?ca=/x&token=abc").unwrap_err().to_string();
        assert!(e.contains("never go in a URL"), "{e}");
        let e = AzureConfig::from_url("aws-kms://h").unwrap_err().to_string();
        assert!(e.contains("not an azure-keyvault URL"), "{e}");
        let e = AzureConfig::from_url("azure-keyvault://contoso.vault.azure.net?kind=managed-hsm")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a vault host"), "{e}");
    }

    #[test]
    fn url_parameters_apply() {
        let c = AzureConfig::from_url(
            "azure-keyvault://127.0.0.1:8443/?ca=/tmp/ca.pem&kind=managed-hsm&timeout=5s&max_retries=0&retention_days=7",
        )
        .unwrap();
        assert_eq!(c.vault_url(), "https://127.0.0.1:8443");
        assert_eq!(c.kind(), VaultKind::ManagedHsm);
        assert_eq!(c.ca_file(), Some(Path::new("/tmp/ca.pem")));
        assert_eq!(c.timeout(), Duration::from_secs(5));
        assert_eq!(c.retention(), 7);
        let c = AzureConfig::from_url("azure-keyvault://contoso.managedhsm.azure.net").unwrap();
        assert_eq!(c.kind(), VaultKind::ManagedHsm);
        assert_eq!(c.vault_url(), "https://contoso.managedhsm.azure.net");
    }

    #[test]
    fn tokens_are_redacted() {
        let c = AzureConfig::new("https://contoso.vault.azure.net").unwrap().with_token("s3cr3t-token");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
