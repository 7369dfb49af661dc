//! [`Config`]: which provider to use, from a URL, a TOML file or the environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hsm_core::{Error, Provider, Result, Zeroizing};

use crate::keyring::{EnvelopeConfig, EnvelopeSection};
use crate::layers::{LayerConfig, LayerSettings};
use serde::Deserialize;

/// The provider name used in configuration errors.
const HSM: &str = "hsm";

/// Environment variable holding a provider URL.
pub const ENV_PROVIDER: &str = "HSM_PROVIDER";
/// Environment variable holding the path of a TOML configuration file.
pub const ENV_CONFIG: &str = "HSM_CONFIG";
/// Environment variable holding the local keystore passphrase.
pub const ENV_PASSPHRASE: &str = "HSM_PASSPHRASE";

const URL_FORMS: &str = "local:///abs/path/to/keystore, local:relative/path, memory:, \
                         aws-kms://, azure-keyvault://, gcp-kms://, pkcs11:";

/// Which provider to use and how to reach it.
///
/// Build one from a URL ([`Config::from_url`]), a TOML file ([`Config::from_file`]), the
/// environment ([`Config::from_env`]) or in code ([`Config::memory`], [`Config::local`]),
/// then [`open`](Config::open) it or hand it to [`Client::connect`](crate::Client::connect).
///
/// | URL                              | provider                                             |
/// |----------------------------------|------------------------------------------------------|
/// | `memory:`                        | in-memory local provider; keys vanish with it        |
/// | `local:///abs/path/to/keystore`  | encrypted local keystore file (absolute path)        |
/// | `local:relative/path`, `file:…`  | the same, relative to the working directory          |
/// | `aws-kms://?region=…&endpoint=…` | AWS KMS (feature `aws`; see `hsm_aws::AwsConfig`)    |
/// | `azure-keyvault://HOST[:PORT]?…` | Azure Key Vault / Managed HSM (feature `azure`; see `hsm_azure::AzureConfig::from_url`) |
/// | `gcp-kms://projects/P/locations/L/keyRings/R?endpoint=…` | Google Cloud KMS (feature `gcp`; see `hsm_gcp::GcpConfig`) |
/// | `pkcs11:token=…?module-path=…`   | PKCS#11 token (feature `pkcs11`; see `hsm_pkcs11`)   |
///
/// Paths in URLs are percent-decoded (`%20` for a space). The keystore passphrase never
/// appears in a URL: it comes from [`with_passphrase`](Config::with_passphrase), from the
/// `HSM_PASSPHRASE` environment variable, or from the variable a TOML file names. Without
/// one, the keystore is encrypted under a random master key kept in a `0600` file beside it.
/// The passphrase is zeroized on drop and never shown by `Debug`.
///
/// ```
/// # fn main() -> hsm::Result<()> {
/// let cfg = hsm::Config::from_url("local:///var/lib/app/keystore")?;
/// assert_eq!(cfg.keystore_path(), Some(std::path::Path::new("/var/lib/app/keystore")));
/// let cfg = cfg.with_passphrase("correct horse battery staple");
/// assert!(!format!("{cfg:?}").contains("horse"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Config {
    target: Target,
    passphrase: Option<Zeroizing<String>>,
    envelope: EnvelopeConfig,
    /// Resilience layers (`crate::layers`).
    layers: LayerSettings,
}

// One per configuration, made once per process: the size of the cloud variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Memory,
    Local(PathBuf),
    #[cfg(feature = "pkcs11")]
    Pkcs11(hsm_pkcs11::Pkcs11Config),
    #[cfg(feature = "aws")]
    Aws(hsm_aws::AwsConfig),
    #[cfg(feature = "azure")]
    Azure(hsm_azure::AzureConfig),
    #[cfg(feature = "gcp")]
    Gcp(hsm_gcp::GcpConfig),
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Config");
        match &self.target {
            Target::Memory => d.field("provider", &"memory"),
            Target::Local(p) => d.field("provider", &"local").field("path", p),
            #[cfg(feature = "pkcs11")]
            Target::Pkcs11(c) => d.field("provider", &"pkcs11").field("pkcs11", c),
            #[cfg(feature = "aws")]
            Target::Aws(c) => d.field("provider", &"aws-kms").field("aws", c),
            #[cfg(feature = "azure")]
            Target::Azure(c) => d.field("provider", &"azure-keyvault").field("azure", c),
            #[cfg(feature = "gcp")]
            Target::Gcp(c) => d.field("provider", &"gcp-kms").field("gcp", c),
        };
        d.field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>")).finish()
    }
}

/// How a variable lookup reports its result: `Ok(None)` when unset.
type Lookup<'a> = &'a dyn Fn(&str) -> Result<Option<String>>;

fn process_env(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(
            HSM,
            format!("environment variable {name} is not valid UTF-8; set it to UTF-8 text"),
        )),
    }
}

/// Reads a passphrase variable: unset means none, empty is a mistake.
fn passphrase_from(lookup: Lookup<'_>, var: &str, required: bool) -> Result<Option<Zeroizing<String>>> {
    match lookup(var)? {
        None if required => Err(Error::config(
            HSM,
            format!(
                "local.passphrase_env names {var}, but {var} is not set; set it to the keystore \
                 passphrase, or remove passphrase_env to use the master-key file"
            ),
        )),
        None => Ok(None),
        Some(v) if v.is_empty() => Err(Error::config(
            HSM,
            format!(
                "{var} is set but empty; set it to the keystore passphrase, or unset it to use \
                 the master-key file"
            ),
        )),
        Some(v) => Ok(Some(Zeroizing::new(v))),
    }
}

/// What to say about a provider whose backend this build leaves out.
#[cfg_attr(all(feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"), allow(dead_code))]
fn backend_missing(provider: &str) -> Error {
    let feature = match provider {
        "aws-kms" => "aws",
        "azure-keyvault" => "azure",
        "gcp-kms" => "gcp",
        _ => "pkcs11",
    };
    let message = format!(
        "the {provider} provider needs feature `{feature}` of the hsm crate, which this build does \
         not enable; enable it with `hsm = {{ features = [\"{feature}\"] }}` (the CLI has every backend)"
    );
    Error::config(HSM, message)
}

/// The `[azure]` table of a TOML file: `url` (`https://HOST` or `azure-keyvault://HOST?…`)
/// and, optionally, the `azure-keyvault://` URL's parameters as keys (`ca`, relative to the
/// file's directory, `kind`, `protection`, `credential`, `timeout`, `connect_timeout`,
/// `attempt_timeout`, `max_retries`, `retention_days`).
#[cfg(feature = "azure")]
fn azure_from_table(
    origin: &str,
    table: &toml::Table,
    base: Option<&Path>,
) -> Result<hsm_azure::AzureConfig> {
    let bad = |m: String| Error::config(HSM, format!("{origin}: {m}"));
    let Some(url) = table.get("url").and_then(toml::Value::as_str).map(str::trim).filter(|u| !u.is_empty())
    else {
        return Err(bad("azure.url is missing; set url = \"https://NAME.vault.azure.net\"".to_owned()));
    };
    let mut full = if url.get(..17).is_some_and(|s| s.eq_ignore_ascii_case("azure-keyvault://")) {
        url.to_owned()
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("azure-keyvault://{}", rest.trim_end_matches('/'))
    } else {
        return Err(bad(format!(
            "azure.url = \"{url}\" must be https://NAME.vault.azure.net (or an azure-keyvault:// URL)"
        )));
    };
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in table.iter().filter(|(k, _)| k.as_str() != "url") {
        let text = match value {
            toml::Value::String(s) if key == "ca" => match base {
                Some(b) if Path::new(s).is_relative() => b.join(s).display().to_string(),
                _ => s.clone(),
            },
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            _ => return Err(bad(format!("azure.{key} must be a string or a number"))),
        };
        query.append_pair(key, &text);
    }
    let query = query.finish();
    if !query.is_empty() {
        full.push(if full.contains('?') { '&' } else { '?' });
        full.push_str(&query);
    }
    hsm_azure::AzureConfig::from_url(&full).map_err(|e| match e {
        Error::Config { message, .. } => bad(format!("[azure]: {message}")),
        e => e,
    })
}

#[cfg(not(feature = "local"))]
fn local_feature_missing() -> Error {
    Error::config(
        HSM,
        "the local provider needs feature `local` of the hsm crate (on by default); enable it \
         with `hsm = { features = [\"local\"] }`",
    )
}

fn percent_decode(url: &str, s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => {
                    return Err(Error::config(
                        HSM,
                        format!("provider URL '{url}' has a bad %-escape; write '%' itself as %25"),
                    ));
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Error::config(HSM, format!("provider URL '{url}' decodes to a path that is not UTF-8")))
}

/// Splits `scheme:rest`, lower-casing the scheme. `None` when there is no valid scheme.
fn split_scheme(s: &str) -> Option<(String, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then(|| (scheme.to_ascii_lowercase(), rest))
}

/// The TOML file, as written by users.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    provider: Option<String>,
    local: Option<LocalSection>,
    /// `provider = "aws-kms"`: the parameters of an `aws-kms://` URL.
    aws: Option<toml::Table>,
    /// `provider = "azure-keyvault"`: `url` and the parameters of an `azure-keyvault://` URL.
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    azure: Option<toml::Table>,
    /// `provider = "gcp-kms"`: project, location, key ring and the `gcp-kms://` parameters.
    #[cfg_attr(not(feature = "gcp"), allow(dead_code))]
    gcp: Option<toml::Table>,
    /// Parsed as [`Pkcs11Section`] when `provider = "pkcs11"`.
    #[cfg_attr(not(feature = "pkcs11"), allow(dead_code))]
    pkcs11: Option<toml::Table>,
    /// `[envelope]` with `[[envelope.recipients]]`: more recipients for envelopes.
    envelope: Option<EnvelopeSection>,
    /// `[retry]`, `[timeout]`, `[rate_limit]`, `[cache]`: the resilience layers.
    retry: Option<toml::Table>,
    timeout: Option<toml::Table>,
    rate_limit: Option<toml::Table>,
    cache: Option<toml::Table>,
}

/// `[pkcs11]`: the module, one token selector and at most one PIN source.
#[cfg(feature = "pkcs11")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pkcs11Section {
    module: Option<PathBuf>,
    token: Option<String>,
    serial: Option<String>,
    slot: Option<u64>,
    pin_file: Option<PathBuf>,
    pin_env: Option<String>,
}

#[cfg(feature = "pkcs11")]
fn pkcs11_from_toml(origin: &str, table: Option<toml::Table>, base: Option<&Path>) -> Result<Config> {
    use hsm_pkcs11::{PIN_ENV, PinSource, Pkcs11Config, TokenSelector};
    let Some(table) = table else {
        return Err(Error::config(
            HSM,
            format!(
                "{origin} says provider = \"pkcs11\" but has no [pkcs11] table; add [pkcs11] with \
                 module = \"/usr/lib/softhsm/libsofthsm2.so\" and token = \"LABEL\""
            ),
        ));
    };
    let section: Pkcs11Section = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
        Error::config(HSM, format!("{origin}: [pkcs11]: {}", e.message().trim()))
    })?;
    let rel = |p: PathBuf| match base {
        Some(base) if p.is_relative() => base.join(p),
        _ => p,
    };
    let module = section.module.filter(|m| !m.as_os_str().is_empty()).ok_or_else(|| {
        Error::config(
            HSM,
            format!(
                "{origin}: pkcs11.module is missing; set module = \"/usr/lib/softhsm/libsofthsm2.so\" \
                 (or your HSM's PKCS#11 module)"
            ),
        )
    })?;
    let token = match (section.token, section.serial, section.slot) {
        (Some(l), None, None) => TokenSelector::Label(l),
        (None, Some(s), None) => TokenSelector::Serial(s),
        (None, None, Some(n)) => TokenSelector::Slot(n),
        _ => {
            return Err(Error::config(
                HSM,
                format!(
                    "{origin}: [pkcs11] needs exactly one of token = \"LABEL\", serial = \"…\" and slot = N"
                ),
            ));
        }
    };
    let pin = match (section.pin_file, section.pin_env) {
        (Some(f), None) => PinSource::File(rel(f)),
        (None, Some(v)) if !v.is_empty() => PinSource::Env(v),
        (None, None) => PinSource::Env(PIN_ENV.to_owned()),
        _ => {
            return Err(Error::config(
                HSM,
                format!(
                    "{origin}: [pkcs11] takes at most one of pin_file and pin_env (a non-empty \
                     variable name); with neither, the PIN comes from {PIN_ENV}"
                ),
            ));
        }
    };
    Ok(Config {
        target: Target::Pkcs11(Pkcs11Config::new(rel(module), token, pin)),
        passphrase: None,
        envelope: EnvelopeConfig::default(),
        layers: LayerSettings::default(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalSection {
    path: Option<PathBuf>,
    passphrase_env: Option<String>,
}

/// A TOML table of scalar settings as URL query parameters (`key=value&...`), for the
/// backends whose settings are those of their URL form.
fn section_query(origin: &str, section: &str, table: toml::Table) -> Result<String> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(Error::config(
                    HSM,
                    format!("{origin}: {section}.{key} must be a string, number or boolean"),
                ));
            }
        };
        query.append_pair(&key, &text);
    }
    Ok(query.finish())
}

/// The message of a configuration error, without its provider prefix.
fn config_message(e: Error) -> String {
    match e {
        Error::Config { message, .. } => message,
        e => e.to_string(),
    }
}

fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> Error {
    let at = e
        .span()
        .map(|s| {
            let before = &text.as_bytes()[..s.start.min(text.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            format!(" at line {line}")
        })
        .unwrap_or_default();
    let msg = e.message().trim().replace('\n', " ");
    Error::config(HSM, format!("{origin}{at}: {msg}"))
}

/// `provider = "gcp-kms"` with a `[gcp]` table: `project`, `location` and `key_ring`, plus
/// any parameter of `hsm_gcp::GcpConfig::from_url` (`endpoint`, `credentials`,
/// `create_key_ring`, `timeout`, ...) as a string, boolean or integer.
#[cfg(feature = "gcp")]
fn gcp_from_table(origin: &str, table: Option<toml::Table>) -> Result<Config> {
    let Some(mut table) = table else {
        return Err(Error::config(
            HSM,
            format!(
                "{origin} says provider = \"gcp-kms\" but has no [gcp] table; add [gcp] with project, \
                 location and key_ring"
            ),
        ));
    };
    let mut take = |field: &str| match table.remove(field) {
        Some(toml::Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(Error::config(HSM, format!("{origin}: gcp.{field} is missing or not a non-empty string"))),
    };
    let (project, location, ring) = (take("project")?, take("location")?, take("key_ring")?);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &table {
        let v = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Integer(i) => i.to_string(),
            _ => {
                return Err(Error::config(
                    HSM,
                    format!("{origin}: gcp.{k} must be a string, boolean or integer"),
                ));
            }
        };
        query.append_pair(k, &v);
    }
    let url = format!("gcp-kms://projects/{project}/locations/{location}/keyRings/{ring}?{}", query.finish());
    let gcp = hsm_gcp::GcpConfig::from_url(&url).map_err(|e| match e {
        Error::Config { message, .. } => Error::config(HSM, format!("{origin}: {message}")),
        e => e,
    })?;
    Ok(Config {
        target: Target::Gcp(gcp),
        passphrase: None,
        envelope: EnvelopeConfig::default(),
        layers: LayerSettings::default(),
    })
}

impl Config {
    /// The in-memory local provider: nothing is written anywhere and keys vanish with it.
    pub fn memory() -> Self {
        Config {
            target: Target::Memory,
            passphrase: None,
            envelope: EnvelopeConfig::default(),
            layers: LayerSettings::default(),
        }
    }

    /// A local keystore file at `path` (created on first open), encrypted under a random
    /// master key in `<path>.key` unless a passphrase is set.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Config {
            target: Target::Local(path.into()),
            passphrase: None,
            envelope: EnvelopeConfig::default(),
            layers: LayerSettings::default(),
        }
    }

    /// Encrypts the local keystore under a key derived (Argon2id) from `passphrase`.
    /// Ignored by the in-memory provider.
    #[must_use]
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(Zeroizing::new(passphrase.into()));
        self
    }

    /// Takes the passphrase from environment variable `var` when it is set (an unset
    /// variable leaves the configuration unchanged).
    ///
    /// # Errors
    /// [`Error::Config`] when `var` is set but empty or not UTF-8.
    pub fn with_passphrase_from_env(mut self, var: &str) -> Result<Self> {
        if let Some(p) = passphrase_from(&process_env, var, false)? {
            self.passphrase = Some(p);
        }
        Ok(self)
    }

    /// Parses a provider URL (see the table on [`Config`]).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty URL, a missing or unknown scheme, a `local:` URL
    /// without a path or with a host, and for the cloud schemes whose backends are not
    /// built yet (naming the feature or backend that is missing).
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_unredacted(url).map_err(without_secrets)
    }

    fn from_url_unredacted(url: &str) -> Result<Self> {
        // The layer parameters (`crate::layers`) are hsm's, not the backend's.
        let scheme = split_scheme(url.trim()).map(|(s, _)| s);
        if let Some(scheme @ ("aws-kms" | "azure-keyvault" | "gcp-kms" | "pkcs11")) = scheme.as_deref() {
            let (rest, layers) = LayerSettings::take_from_url(url.trim(), scheme != "pkcs11")?;
            let mut config = Self::from_url_plain(&rest)?;
            config.layers = layers;
            return Ok(config);
        }
        Self::from_url_plain(url)
    }

    fn from_url_plain(url: &str) -> Result<Self> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::config(HSM, format!("the provider URL is empty; use one of: {URL_FORMS}")));
        }
        let Some((scheme, rest)) = split_scheme(url) else {
            let hint = if url.starts_with('/') || url.starts_with('.') {
                format!("; for a keystore file write local://{url}")
            } else {
                String::new()
            };
            return Err(Error::config(
                HSM,
                format!("provider URL '{url}' has no scheme{hint}; use one of: {URL_FORMS}"),
            ));
        };
        match scheme.as_str() {
            "memory" | "mem" => {
                if !matches!(rest, "" | "//" | "///") {
                    return Err(Error::config(
                        HSM,
                        format!("provider URL '{url}': memory: takes no path; write just `memory:`"),
                    ));
                }
                Ok(Config::memory())
            }
            "local" | "file" => {
                let path = if let Some(after) = rest.strip_prefix("//") {
                    let (host, path) = match after.find('/') {
                        Some(i) => after.split_at(i),
                        None => (after, ""),
                    };
                    if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                        return Err(Error::config(
                            HSM,
                            format!(
                                "provider URL '{url}' names host '{host}', but {scheme}: URLs take a \
                                 path: write {scheme}:///abs/path (three slashes) or {scheme}:relative/path"
                            ),
                        ));
                    }
                    path
                } else {
                    rest
                };
                if path.contains(['?', '#']) {
                    return Err(Error::config(
                        HSM,
                        format!(
                            "provider URL '{url}' has a query or fragment, which local URLs do not \
                             take; write '?' as %3F and '#' as %23 in paths"
                        ),
                    ));
                }
                let path = percent_decode(url, path)?;
                if path.is_empty() {
                    return Err(Error::config(
                        HSM,
                        format!(
                            "provider URL '{url}' has no keystore path; write \
                             {scheme}:///abs/path/to/keystore or {scheme}:relative/path"
                        ),
                    ));
                }
                Ok(Config::local(path))
            }
            #[cfg(feature = "aws")]
            "aws-kms" => {
                let aws = hsm_aws::AwsConfig::from_url(url).map_err(|e| match e {
                    Error::Config { message, .. } => Error::config(HSM, message),
                    e => e,
                })?;
                Ok(Config {
                    target: Target::Aws(aws),
                    passphrase: None,
                    envelope: EnvelopeConfig::default(),
                    layers: LayerSettings::default(),
                })
            }
            #[cfg(not(feature = "aws"))]
            "aws-kms" => Err(backend_missing("aws-kms")),
            #[cfg(feature = "azure")]
            "azure-keyvault" => {
                let azure = hsm_azure::AzureConfig::from_url(url).map_err(|e| match e {
                    Error::Config { message, .. } => Error::config(HSM, message),
                    e => e,
                })?;
                Ok(Config {
                    target: Target::Azure(azure),
                    passphrase: None,
                    envelope: EnvelopeConfig::default(),
                    layers: LayerSettings::default(),
                })
            }
            #[cfg(not(feature = "azure"))]
            "azure-keyvault" => Err(backend_missing("azure-keyvault")),
            #[cfg(feature = "gcp")]
            "gcp-kms" => {
                let gcp = hsm_gcp::GcpConfig::from_url(url).map_err(|e| match e {
                    Error::Config { message, .. } => Error::config(HSM, message),
                    e => e,
                })?;
                Ok(Config {
                    target: Target::Gcp(gcp),
                    passphrase: None,
                    envelope: EnvelopeConfig::default(),
                    layers: LayerSettings::default(),
                })
            }
            #[cfg(not(feature = "gcp"))]
            "gcp-kms" => Err(backend_missing("gcp-kms")),
            #[cfg(feature = "pkcs11")]
            "pkcs11" => {
                let c = hsm_pkcs11::Pkcs11Config::from_uri(url).map_err(|e| match e {
                    Error::Config { message, .. } => Error::config(HSM, message),
                    e => e,
                })?;
                Ok(Config {
                    target: Target::Pkcs11(c),
                    passphrase: None,
                    envelope: EnvelopeConfig::default(),
                    layers: LayerSettings::default(),
                })
            }
            #[cfg(not(feature = "pkcs11"))]
            "pkcs11" => Err(backend_missing("pkcs11")),
            other => Err(Error::config(
                HSM,
                format!("provider URL '{url}' has unknown scheme '{other}:'; use one of: {URL_FORMS}"),
            )),
        }
    }

    /// Parses a TOML configuration. Relative `local.path`s are relative to the working
    /// directory; the passphrase variable is read from the process environment.
    ///
    /// ```toml
    /// provider = "local"            # or "memory"
    ///
    /// [local]
    /// path = "/var/lib/app/keystore"
    /// passphrase_env = "HSM_PASSPHRASE"   # the variable holding the passphrase (this is the default)
    /// ```
    ///
    /// If `passphrase_env` is given, the variable must be set. If it is left out,
    /// `HSM_PASSPHRASE` is used when set, and otherwise the keystore uses its master-key
    /// file.
    ///
    /// `provider = "aws-kms"` takes the parameters of an `aws-kms://` URL (feature `aws`;
    /// see `hsm::aws::AwsConfig::from_url`), every one optional:
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
    /// With feature `azure`, `provider = "azure-keyvault"` reads the `[azure]` table:
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
    /// With feature `gcp`, `provider = "gcp-kms"` reads a `[gcp]` table (`project`,
    /// `location`, `key_ring`, and any `gcp-kms://` URL parameter such as `endpoint`).
    ///
    /// A PKCS#11 token (feature `pkcs11`; relative paths are relative to the file's
    /// directory when read with [`from_file`](Config::from_file)):
    ///
    /// ```toml
    /// provider = "pkcs11"
    ///
    /// [pkcs11]
    /// module = "/usr/lib/softhsm/libsofthsm2.so"   # the token's PKCS#11 module
    /// token = "app"                   # its label; or serial = "…", or slot = 3
    /// pin_file = "/etc/app/hsm-pin"   # or pin_env = "VAR"; neither: HSM_PKCS11_PIN
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the field: TOML syntax, unknown fields, a missing or
    /// unknown `provider`, a missing `[local]` table or `local.path`, an unset
    /// `passphrase_env` variable, a `[pkcs11]` table without `module` or with not exactly
    /// one token selector or more than one PIN source, a backend that is not built.
    pub fn from_toml(text: &str) -> Result<Self> {
        Self::parse_toml("configuration", text, None, &process_env).map_err(without_secrets)
    }

    /// Reads a TOML configuration file (see [`from_toml`](Config::from_toml)). Relative
    /// `local.path`s are relative to the file's directory.
    ///
    /// # Errors
    /// [`Error::Config`] when the file cannot be read, and as [`from_toml`](Config::from_toml).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_with(path.as_ref(), &process_env)
    }

    fn from_file_with(path: &Path, lookup: Lookup<'_>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                HSM,
                format!("cannot read configuration file {}: {e}; check the path", path.display()),
            )
        })?;
        let origin = format!("configuration file {}", path.display());
        Self::parse_toml(&origin, &text, path.parent(), lookup).map_err(without_secrets)
    }

    fn parse_toml(origin: &str, text: &str, base: Option<&Path>, lookup: Lookup<'_>) -> Result<Self> {
        let mut file: FileConfig = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        let envelope = match file.envelope.take() {
            Some(section) => EnvelopeConfig::from_section(origin, section)?,
            None => EnvelopeConfig::default(),
        };
        let layers = LayerSettings::from_tables(
            origin,
            file.retry.take(),
            file.timeout.take(),
            file.rate_limit.take(),
            file.cache.take(),
        )?;
        let mut config = Self::parse_provider(origin, file, base, lookup)?;
        config.envelope = envelope;
        config.layers.merge(layers);
        Ok(config)
    }

    fn parse_provider(
        origin: &str,
        file: FileConfig,
        base: Option<&Path>,
        lookup: Lookup<'_>,
    ) -> Result<Self> {
        let Some(provider) = file.provider else {
            return Err(Error::config(
                HSM,
                format!(
                    "{origin} has no `provider`; add e.g. provider = \"local\" (one of: local, \
                     memory, aws-kms, azure-keyvault, gcp-kms, pkcs11)"
                ),
            ));
        };
        match provider.as_str() {
            "memory" => Ok(Config::memory()),
            "local" => {
                let Some(local) = file.local else {
                    return Err(Error::config(
                        HSM,
                        format!(
                            "{origin} says provider = \"local\" but has no [local] table; add \
                             [local] with path = \"/path/to/keystore\""
                        ),
                    ));
                };
                let Some(path) = local.path.filter(|p| !p.as_os_str().is_empty()) else {
                    return Err(Error::config(
                        HSM,
                        format!("{origin}: local.path is missing or empty; set path = \"/path/to/keystore\""),
                    ));
                };
                let path = match base {
                    Some(base) if path.is_relative() => base.join(path),
                    _ => path,
                };
                let passphrase = match local.passphrase_env.as_deref() {
                    Some("") => {
                        return Err(Error::config(
                            HSM,
                            format!(
                                "{origin}: local.passphrase_env is empty; name the variable that \
                                 holds the passphrase, e.g. passphrase_env = \"HSM_PASSPHRASE\""
                            ),
                        ));
                    }
                    Some(var) => passphrase_from(lookup, var, true)?,
                    None => passphrase_from(lookup, ENV_PASSPHRASE, false)?,
                };
                Ok(Config {
                    target: Target::Local(path),
                    passphrase,
                    envelope: EnvelopeConfig::default(),
                    layers: LayerSettings::default(),
                })
            }
            "aws-kms" => {
                let query = section_query(origin, "aws", file.aws.unwrap_or_default())?;
                Self::from_url(&format!("aws-kms://?{query}"))
                    .map_err(|e| Error::config(HSM, format!("{origin}, [aws]: {}", config_message(e))))
            }
            #[cfg(feature = "azure")]
            "azure-keyvault" => {
                let Some(table) = file.azure else {
                    return Err(Error::config(
                        HSM,
                        format!(
                            "{origin} says provider = \"azure-keyvault\" but has no [azure] table; add \
                             [azure] with url = \"https://NAME.vault.azure.net\""
                        ),
                    ));
                };
                let azure = azure_from_table(origin, &table, base)?;
                Ok(Config {
                    target: Target::Azure(azure),
                    passphrase: None,
                    envelope: EnvelopeConfig::default(),
                    layers: LayerSettings::default(),
                })
            }
            #[cfg(not(feature = "azure"))]
            "azure-keyvault" => Err(backend_missing(&provider)),
            #[cfg(feature = "gcp")]
            "gcp-kms" => gcp_from_table(origin, file.gcp),
            #[cfg(not(feature = "gcp"))]
            "gcp-kms" => Err(backend_missing(&provider)),
            #[cfg(feature = "pkcs11")]
            "pkcs11" => pkcs11_from_toml(origin, file.pkcs11, base),
            #[cfg(not(feature = "pkcs11"))]
            "pkcs11" => Err(backend_missing(&provider)),
            other => Err(Error::config(
                HSM,
                format!(
                    "{origin}: unknown provider \"{other}\"; use one of: local, memory, aws-kms, \
                     azure-keyvault, gcp-kms, pkcs11"
                ),
            )),
        }
    }

    /// The envelope settings of a TOML configuration (`[envelope]` and its
    /// `[[envelope.recipients]]`); empty for URL configurations.
    pub fn envelope(&self) -> &EnvelopeConfig {
        &self.envelope
    }

    /// Replaces the envelope settings (e.g. with recipients from the command line).
    #[must_use]
    pub fn with_envelope(mut self, envelope: EnvelopeConfig) -> Self {
        self.envelope = envelope;
        self
    }

    /// The configuration the environment asks for: `HSM_PROVIDER` (a URL, with the
    /// passphrase from `HSM_PASSPHRASE`) or `HSM_CONFIG` (a TOML file path).
    ///
    /// # Errors
    /// [`Error::Config`] when neither variable is set, when both are, and as
    /// [`from_url`](Config::from_url) and [`from_file`](Config::from_file).
    pub fn from_env() -> Result<Self> {
        Self::try_from_env()?.ok_or_else(Self::nothing_in_env)
    }

    /// Like [`from_env`](Config::from_env), but `Ok(None)` when neither `HSM_PROVIDER`
    /// nor `HSM_CONFIG` is set (empty counts as unset), so callers can fall back to a default.
    ///
    /// # Errors
    /// As [`from_env`](Config::from_env), except for the missing variables.
    pub fn try_from_env() -> Result<Option<Self>> {
        Self::from_lookup(&process_env)
    }

    /// Like [`try_from_env`](Config::try_from_env), but reads variables through `var`
    /// (`None` for unset) instead of the process environment: for tests, and for programs
    /// that keep their settings elsewhere. A TOML file named by `HSM_CONFIG` reads its
    /// `passphrase_env` through `var` too.
    ///
    /// # Errors
    /// As [`try_from_env`](Config::try_from_env).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        Self::from_lookup(&|name| Ok(var(name)))
    }

    fn nothing_in_env() -> Error {
        Error::config(
            HSM,
            format!(
                "no provider configured; set {ENV_PROVIDER} to a provider URL (e.g. \
                 local:///path/to/keystore or memory:) or {ENV_CONFIG} to a TOML configuration file"
            ),
        )
    }

    fn from_lookup(lookup: Lookup<'_>) -> Result<Option<Self>> {
        let url = lookup(ENV_PROVIDER)?.filter(|v| !v.trim().is_empty());
        let file = lookup(ENV_CONFIG)?.filter(|v| !v.trim().is_empty());
        match (url, file) {
            (Some(_), Some(_)) => Err(Error::config(
                HSM,
                format!("both {ENV_PROVIDER} and {ENV_CONFIG} are set; unset one of them"),
            )),
            (Some(url), None) => {
                let mut cfg = Self::from_url(&url).map_err(|e| match e {
                    Error::Config { message, .. } => Error::config(HSM, format!("{ENV_PROVIDER}: {message}")),
                    e => e,
                })?;
                if matches!(cfg.target, Target::Local(_)) {
                    cfg.passphrase = passphrase_from(lookup, ENV_PASSPHRASE, false)?;
                }
                Ok(Some(cfg))
            }
            (None, Some(path)) => Self::from_file_with(Path::new(&path), lookup).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The provider this configuration selects: `"local"` for both the keystore file and
    /// the in-memory store.
    pub fn provider_name(&self) -> &'static str {
        match &self.target {
            #[cfg(feature = "aws")]
            Target::Aws(_) => "aws-kms",
            #[cfg(feature = "azure")]
            Target::Azure(_) => "azure-keyvault",
            #[cfg(feature = "pkcs11")]
            Target::Pkcs11(_) => "pkcs11",
            #[cfg(feature = "gcp")]
            Target::Gcp(_) => "gcp-kms",
            _ => "local",
        }
    }

    /// The PKCS#11 settings, if this configuration selects a PKCS#11 token: for
    /// applications (like the `hsm` CLI) that supply the PIN themselves, e.g. by prompting
    /// when it is left to `HSM_PKCS11_PIN` (`hsm_pkcs11::PIN_ENV`) and that is unset.
    #[cfg(feature = "pkcs11")]
    pub fn pkcs11_mut(&mut self) -> Option<&mut hsm_pkcs11::Pkcs11Config> {
        match &mut self.target {
            Target::Pkcs11(c) => Some(c),
            _ => None,
        }
    }

    /// True for the in-memory provider.
    pub fn is_memory(&self) -> bool {
        self.target == Target::Memory
    }

    /// The local keystore path, if this configuration selects one.
    pub fn keystore_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Local(p) => Some(p),
            _ => None,
        }
    }

    /// True when a passphrase is configured (it is never shown).
    pub fn has_passphrase(&self) -> bool {
        self.passphrase.is_some()
    }

    /// Opens the provider.
    ///
    /// Opening a passphrase-protected keystore derives its key with Argon2id, which takes
    /// a moment; inside a Tokio runtime that work runs on the blocking pool.
    ///
    /// # Errors
    /// [`Error::Config`] when the `local` feature is off, or the keystore is corrupt or
    /// cannot be created; [`Error::Unauthenticated`] for a wrong passphrase.
    pub async fn open(&self) -> Result<Arc<dyn Provider>> {
        let provider = self.open_unlayered().await?;
        Ok(hsm_layers::layered(provider, &self.layer_config()))
    }

    /// The resilience layers [`open`](Self::open) applies: the provider's defaults
    /// ([`LayerConfig::for_provider`]) with this configuration's `[retry]`, `[timeout]`,
    /// `[rate_limit]`, `[cache]` or URL parameters applied (see `hsm::layers`).
    pub fn layer_config(&self) -> LayerConfig {
        self.layers.layer_config(self.provider_name())
    }

    /// The layer settings of this configuration.
    pub fn layers(&self) -> &LayerSettings {
        &self.layers
    }

    /// Replaces the layer settings (e.g. with `--timeout` and `--retries` applied).
    #[must_use]
    pub fn with_layers(mut self, layers: LayerSettings) -> Self {
        self.layers = layers;
        self
    }

    /// Opens the provider without the resilience layers. When the layers retry, the
    /// vendor SDK's own retries are turned off here (its per-attempt timeouts stay).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_unlayered(&self) -> Result<Arc<dyn Provider>> {
        #[cfg_attr(not(any(feature = "aws", feature = "azure", feature = "gcp")), allow(unused_variables))]
        let layers_retry = self.layer_config().retries();
        #[cfg(feature = "pkcs11")]
        if let Target::Pkcs11(c) = &self.target {
            let c = c.clone();
            let connect = move || hsm_pkcs11::Pkcs11Provider::connect(&c);
            let provider = match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle.spawn_blocking(connect).await.map_err(|e| Error::Provider {
                    provider: "pkcs11",
                    code: "task".into(),
                    message: "connecting to the token did not finish".into(),
                    source: Some(Box::new(e)),
                })??,
                Err(_) => connect()?,
            };
            return Ok(Arc::new(provider));
        }
        #[cfg(feature = "aws")]
        if let Target::Aws(c) = &self.target {
            let c = if layers_retry { c.clone().max_attempts(1) } else { c.clone() };
            return Ok(Arc::new(hsm_aws::AwsKmsProvider::connect(&c).await?));
        }
        #[cfg(feature = "azure")]
        if let Target::Azure(c) = &self.target {
            let c = if layers_retry { c.clone().max_retries(0) } else { c.clone() };
            return Ok(Arc::new(hsm_azure::AzureKeyVaultProvider::connect(&c)?));
        }
        #[cfg(feature = "gcp")]
        if let Target::Gcp(c) = &self.target {
            let c = if layers_retry { c.clone().max_attempts(1) } else { c.clone() };
            return Ok(Arc::new(hsm_gcp::GcpKmsProvider::connect(&c).await?));
        }
        #[cfg(feature = "local")]
        {
            use hsm_local::LocalProvider;
            match &self.target {
                #[cfg(feature = "aws")]
                Target::Aws(_) => {
                    Err(Error::config(HSM, "internal: aws-kms configuration reached the local opener"))
                }
                #[cfg(feature = "pkcs11")]
                Target::Pkcs11(_) => {
                    Err(Error::config(HSM, "internal: pkcs11 configuration reached the local opener"))
                }
                #[cfg(feature = "azure")]
                Target::Azure(_) => {
                    Err(Error::config(HSM, "internal: azure-keyvault configuration reached the local opener"))
                }
                #[cfg(feature = "gcp")]
                Target::Gcp(_) => {
                    Err(Error::config(HSM, "internal: gcp-kms configuration reached the local opener"))
                }
                Target::Memory => Ok(Arc::new(LocalProvider::in_memory())),
                Target::Local(path) => {
                    let (path, passphrase) = (path.clone(), self.passphrase.clone());
                    let open = move || LocalProvider::open(path, passphrase);
                    let provider = match tokio::runtime::Handle::try_current() {
                        Ok(handle) => handle.spawn_blocking(open).await.map_err(|e| Error::Provider {
                            provider: "local",
                            code: "task".into(),
                            message: "opening the keystore did not finish".into(),
                            source: Some(Box::new(e)),
                        })??,
                        Err(_) => open()?,
                    };
                    Ok(Arc::new(provider))
                }
            }
        }
        #[cfg(not(feature = "local"))]
        {
            Err(local_feature_missing())
        }
    }
}

/// URL parameters whose values are secrets: the PKCS#11 PIN given inline (`pin-value=`).
const SECRET_PARAMS: &[&str] = &["pin-value="];

/// `e` with the value of every secret parameter in its message replaced by `<redacted>`.
/// Messages quote the URL (or TOML line) they refuse so a typo is easy to find; a mistyped
/// scheme must not put a PIN in a log on the way (found by fuzzing).
fn without_secrets(e: Error) -> Error {
    let Error::Config { provider, message } = e else { return e };
    let mut message = message;
    for param in SECRET_PARAMS {
        let mut from = 0;
        while let Some(i) = message[from..].find(param) {
            let start = from + i + param.len();
            let len = message[start..]
                .find(['&', ';', '?', '#', '\'', '"', ' ', '\n', '\t'])
                .unwrap_or(message.len() - start);
            message.replace_range(start..start + len, "<redacted>");
            from = start + "<redacted>".len();
        }
    }
    Error::Config { provider, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "local"))]
    #[tokio::test]
    async fn without_the_local_feature_open_names_the_feature() {
        let err = Config::memory().open().await.map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("feature `local`"), "{err}");
    }

    #[test]
    fn schemes_need_a_letter_first_and_are_case_insensitive() {
        assert_eq!(split_scheme("Local:x"), Some(("local".to_owned(), "x")));
        assert_eq!(split_scheme("1x:y"), None);
        assert_eq!(split_scheme("no-colon"), None);
        assert_eq!(split_scheme(":x"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("u", "/a%20b%2Fc").unwrap(), "/a b/c");
        assert!(percent_decode("u", "/a%2").is_err());
        assert!(percent_decode("u", "/a%g0").is_err());
    }
}
