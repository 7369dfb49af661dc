//! The registry of providers: which URL schemes and TOML `provider` names [`Config`] knows,
//! and how each becomes a provider.
//!
//! Each provider crate parses its own URL and its own TOML table; this module only maps a
//! URL scheme or a `provider = "…"` to the provider that parses it ([`Scheme`]), and holds
//! what it parsed ([`ProviderSettings`]) until [`Config::open`] opens it. The built-in
//! providers are registered by cargo feature. An application adds its own with
//! [`register_scheme`]; from then on its provider is configured exactly like the built-in
//! ones: by URL ([`Config::from_url`], `HSM_PROVIDER`, `--provider`), by TOML file
//! ([`Config::from_toml`], `HSM_CONFIG`, `--config`), as an envelope recipient, and in the
//! CLI (`hsm_cli::main` after registering).
//!
//! ```
//! use std::sync::Arc;
//! use hsm::registry::{OpenOptions, ProviderSettings, Scheme};
//! use hsm::settings::Section;
//! use hsm::{Config, Provider, Result};
//!
//! /// `acme:` URLs and `provider = "acme"` with an `[acme]` table.
//! struct Acme;
//!
//! #[derive(Debug, Clone)]
//! struct AcmeSettings {
//!     region: String,
//! }
//!
//! #[hsm::async_trait]
//! impl ProviderSettings for AcmeSettings {
//!     fn provider_name(&self) -> &'static str {
//!         "acme"
//!     }
//!     async fn open(&self, _options: &OpenOptions) -> Result<Arc<dyn Provider>> {
//!         // A real provider connects to its service here; this one is the local one.
//!         Ok(Arc::new(hsm::local::LocalProvider::in_memory()))
//!     }
//! }
//!
//! impl Scheme for Acme {
//!     fn provider(&self) -> &'static str {
//!         "acme"
//!     }
//!     fn url_schemes(&self) -> &[&'static str] {
//!         &["acme"]
//!     }
//!     fn section(&self) -> Option<&'static str> {
//!         Some("acme")
//!     }
//!     fn url_form(&self) -> &'static str {
//!         "acme:REGION"
//!     }
//!     fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
//!         let region = url.split_once(':').map_or("", |(_, r)| r);
//!         if region.is_empty() {
//!             return Err(hsm::Error::config("acme", "acme: URLs name a region: acme:eu-1"));
//!         }
//!         Ok(Box::new(AcmeSettings { region: region.to_owned() }))
//!     }
//!     fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
//!         section.finish(&["region"])?;
//!         let region = section.take_string("region")?.ok_or_else(|| section.error("acme.region is missing"))?;
//!         Ok(Box::new(AcmeSettings { region }))
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! hsm::register_scheme(Acme)?;
//! let from_url = Config::from_url("acme:eu-1")?;
//! let from_toml = Config::from_toml("provider = \"acme\"\n[acme]\nregion = \"eu-1\"\n")?;
//! assert_eq!(from_url.provider_name(), "acme");
//! assert_eq!(from_toml.settings_as::<AcmeSettings>().unwrap().region, "eu-1");
//! # Ok(()) }
//! ```

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use hsm_core::settings::{Section, Value, Vars};
use hsm_core::{Error, Provider, Result};
use serde::Deserialize;

use crate::config::{Config, HSM, hsm_error};
use crate::keyring::{EnvelopeConfig, EnvelopeSection};
use crate::layers::LayerSettings;

/// What a [`Scheme`] parsed from a URL or a TOML table: everything needed to open the
/// provider. Held by [`Config`] (which clones it with [`Config`]) and reached with
/// [`Config::settings_as`].
///
/// `Debug` must not show secrets (PINs, tokens, passphrases): `Config`'s `Debug` shows it.
#[hsm_core::async_trait]
pub trait ProviderSettings: Any + fmt::Debug + Send + Sync + CloneSettings {
    /// The provider's name, as its [`Provider::name`] and the layers' defaults know it
    /// (`"aws-kms"`, `"local"`, …).
    fn provider_name(&self) -> &'static str;

    /// Reads what the provider takes from the environment when the configuration came from
    /// a URL in `HSM_PROVIDER` (the local keystore's `HSM_PASSPHRASE`); nothing by default.
    ///
    /// # Errors
    /// [`Error::Config`] naming a variable that is set but unusable.
    fn apply_env(&mut self, vars: Vars<'_>) -> Result<()> {
        let _ = vars;
        Ok(())
    }

    /// Opens the provider (without hsm's layers: [`Config::open`] adds them).
    ///
    /// # Errors
    /// Whatever connecting to the provider fails with.
    async fn open(&self, options: &OpenOptions) -> Result<Arc<dyn Provider>>;
}

/// Cloning a boxed [`ProviderSettings`]; implemented for every `Clone` settings type.
pub trait CloneSettings {
    /// A boxed copy.
    fn clone_settings(&self) -> Box<dyn ProviderSettings>;
}

impl<T: ProviderSettings + Clone> CloneSettings for T {
    fn clone_settings(&self) -> Box<dyn ProviderSettings> {
        Box::new(self.clone())
    }
}

/// What [`Config::open`] tells [`ProviderSettings::open`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// hsm's retry layer retries this provider's calls: turn the client's own retries off,
    /// so attempts never multiply (keep its per-attempt timeouts).
    pub layers_retry: bool,
}

/// Which of hsm's layer parameters (`retries`, `timeout`, `attempt_timeout`, `rate_limit`,
/// `cache_ttl`, `layers`; see [`crate::layers`]) a provider's URL and table carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerParams {
    /// hsm takes them off the URL and table before the provider sees them.
    Read,
    /// As `Read`, but `timeout` and `attempt_timeout` are passed on too: the provider bounds
    /// its own calls with them.
    ReadSharingTimeouts,
    /// None: the URL and table reach the provider untouched.
    Ignored,
}

/// A provider that can be configured: its names, and how it parses its URL and its TOML
/// table. Register one with [`register_scheme`] or [`Registry::register`].
pub trait Scheme: Send + Sync + 'static {
    /// The name in TOML (`provider = "aws-kms"`) and in messages.
    fn provider(&self) -> &'static str;

    /// The URL schemes it answers to, lower case, without the colon (`["local", "file"]`).
    fn url_schemes(&self) -> &[&'static str];

    /// The TOML table holding its settings (`"aws"` for `[aws]`), if it takes one.
    fn section(&self) -> Option<&'static str> {
        None
    }

    /// Its URL form for messages listing what hsm accepts (`"aws-kms://?region=…"`).
    fn url_form(&self) -> &'static str;

    /// Which layer parameters its URL and table carry; [`LayerParams::Read`] by default.
    fn layer_params(&self) -> LayerParams {
        LayerParams::Read
    }

    /// Parses a URL with one of [`url_schemes`](Self::url_schemes) (layer parameters
    /// already removed as [`layer_params`](Self::layer_params) says).
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong and how to fix it.
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>>;

    /// Parses its TOML table ([`section`](Self::section); absent when the file has none).
    /// By default a provider cannot be configured from a file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting, with [`Section::error_at`] and friends.
    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        Err(section.error(format!(
            "provider = \"{}\" cannot be configured in a file; use its URL ({})",
            self.provider(),
            self.url_form()
        )))
    }
}

/// The built-in providers: name, cargo feature, URL schemes, TOML table. Their names are
/// reserved even when their feature is off, so a configuration names the feature to enable.
const BUILTIN: &[(&str, &str, &[&str], Option<&str>)] = &[
    ("local", "local", &["local", "file"], Some("local")),
    ("memory", "local", &["memory", "mem"], None),
    ("aws-kms", "aws", &["aws-kms"], Some("aws")),
    ("azure-keyvault", "azure", &["azure-keyvault"], Some("azure")),
    ("gcp-kms", "gcp", &["gcp-kms"], Some("gcp")),
    ("pkcs11", "pkcs11", &["pkcs11"], Some("pkcs11")),
];

/// What to say about a built-in provider this build leaves out.
fn backend_missing(provider: &str, feature: &str) -> Error {
    Error::config(
        HSM,
        format!(
            "the {provider} provider needs feature `{feature}` of the hsm crate, which this build does \
             not enable; enable it with `hsm = {{ features = [\"{feature}\"] }}` (the CLI has every backend)"
        ),
    )
}

/// The top-level keys of a configuration file that are not providers' tables.
const COMMON_KEYS: &[&str] = &["provider", "envelope", "retry", "timeout", "rate_limit", "cache"];

/// The TOML file's provider-independent part, as written by users.
#[derive(Deserialize)]
struct Common {
    provider: Option<String>,
    /// `[envelope]` with `[[envelope.recipients]]`: more recipients for envelopes.
    envelope: Option<EnvelopeSection>,
    /// `[retry]`, `[timeout]`, `[rate_limit]`, `[cache]`: the resilience layers.
    retry: Option<toml::Table>,
    timeout: Option<toml::Table>,
    rate_limit: Option<toml::Table>,
    cache: Option<toml::Table>,
}

/// A set of [`Scheme`]s: the built-in providers of this build and any an application adds.
///
/// [`Config::from_url`], [`Config::from_toml`] and the rest use the process-wide registry
/// ([`registry`], extended with [`register_scheme`]); a `Registry` value parses with its own
/// schemes instead ([`Registry::config_from_url`], …). Envelope recipients' URLs are always
/// resolved with the process-wide registry.
#[derive(Clone)]
pub struct Registry {
    schemes: Vec<Arc<dyn Scheme>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.schemes.iter().map(|s| s.provider())).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

static GLOBAL: LazyLock<RwLock<Registry>> = LazyLock::new(|| RwLock::new(Registry::builtin()));

/// Adds `scheme` to the process-wide registry, which [`Config::from_url`],
/// [`Config::from_toml`], [`Config::from_env`], envelope recipients and the `hsm` CLI's
/// library entry point use. Register before parsing configurations (typically first thing
/// in `main`).
///
/// # Errors
/// As [`Registry::register`]: a name, URL scheme or table already taken.
pub fn register_scheme(scheme: impl Scheme) -> Result<()> {
    GLOBAL.write().unwrap_or_else(PoisonError::into_inner).register(scheme)
}

/// A copy of the process-wide registry (built-in providers and registered schemes).
pub fn registry() -> Registry {
    GLOBAL.read().unwrap_or_else(PoisonError::into_inner).clone()
}

impl Registry {
    /// The providers this build has, by cargo feature: `local` and `memory` (feature
    /// `local`), `aws-kms`, `azure-keyvault`, `gcp-kms`, `pkcs11`.
    pub fn builtin() -> Self {
        Registry { schemes: crate::builtin::schemes() }
    }

    /// A registry without any provider.
    pub fn empty() -> Self {
        Registry { schemes: Vec::new() }
    }

    /// Adds `scheme`.
    ///
    /// # Errors
    /// [`Error::Config`] when its provider name, one of its URL schemes or its table is
    /// already registered or is a built-in provider's (even one this build leaves out), or
    /// a URL scheme is not lower-case `letter (letter | digit | + - .)*`.
    pub fn register(&mut self, scheme: impl Scheme) -> Result<()> {
        let name = scheme.provider();
        for url_scheme in scheme.url_schemes() {
            if split_scheme(&format!("{url_scheme}:")).is_none_or(|(s, _)| s != *url_scheme) {
                return Err(Error::config(
                    HSM,
                    format!(
                        "provider {name}: '{url_scheme}' is not a URL scheme; use lower-case letters, digits, '+', '-' and '.', starting with a letter"
                    ),
                ));
            }
        }
        let taken = |what: &str, value: &str, owner: &str| {
            Error::config(
                HSM,
                format!("provider {name}: {what} '{value}' is already provider {owner}'s; choose another"),
            )
        };
        let registered = self.schemes.iter().map(|s| (s.provider(), s.url_schemes().to_vec(), s.section()));
        let builtin = BUILTIN.iter().map(|(p, _, u, s)| (*p, u.to_vec(), *s));
        for (owner, urls, section) in registered.chain(builtin) {
            if owner == name {
                return Err(taken("name", name, owner));
            }
            if let Some(u) = scheme.url_schemes().iter().find(|u| urls.contains(u)) {
                return Err(taken("URL scheme", u, owner));
            }
            if let Some(s) = scheme.section().filter(|s| Some(*s) == section || COMMON_KEYS.contains(s)) {
                return Err(taken("table", s, owner));
            }
        }
        self.schemes.push(Arc::new(scheme));
        Ok(())
    }

    /// The registered providers' names, in registration order.
    pub fn providers(&self) -> Vec<&'static str> {
        self.schemes.iter().map(|s| s.provider()).collect()
    }

    fn by_url_scheme(&self, scheme: &str) -> Option<&Arc<dyn Scheme>> {
        self.schemes.iter().find(|s| s.url_schemes().contains(&scheme))
    }

    fn by_name(&self, name: &str) -> Option<&Arc<dyn Scheme>> {
        self.schemes.iter().find(|s| s.provider() == name)
    }

    fn url_forms(&self) -> String {
        self.schemes.iter().map(|s| s.url_form()).collect::<Vec<_>>().join(", ")
    }

    /// Parses a provider URL with this registry's schemes (see [`Config::from_url`]).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty URL, a missing or unknown scheme, a built-in scheme
    /// whose feature is off, and whatever the provider's parser refuses.
    pub fn config_from_url(&self, url: &str) -> Result<Config> {
        self.url_unredacted(url).map_err(without_secrets)
    }

    fn url_unredacted(&self, url: &str) -> Result<Config> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::config(
                HSM,
                format!("the provider URL is empty; use one of: {}", self.url_forms()),
            ));
        }
        let Some((name, _)) = split_scheme(url) else {
            let hint = if (url.starts_with('/') || url.starts_with('.')) && self.by_name("local").is_some() {
                format!("; for a keystore file write local://{url}")
            } else {
                String::new()
            };
            return Err(Error::config(
                HSM,
                format!("provider URL '{url}' has no scheme{hint}; use one of: {}", self.url_forms()),
            ));
        };
        let Some(scheme) = self.by_url_scheme(&name) else {
            if let Some((p, feature, _, _)) = BUILTIN.iter().find(|(_, _, u, _)| u.contains(&name.as_str())) {
                return Err(backend_missing(p, feature));
            }
            return Err(Error::config(
                HSM,
                format!(
                    "provider URL '{url}' has unknown scheme '{name}:'; use one of: {}",
                    self.url_forms()
                ),
            ));
        };
        let (rest, layers) = match scheme.layer_params() {
            LayerParams::Ignored => (url.to_owned(), LayerSettings::default()),
            p => LayerSettings::take_from_url(url, p == LayerParams::ReadSharingTimeouts)?,
        };
        let settings = scheme.parse_url(&rest).map_err(hsm_error)?;
        Ok(Config::from_parts(settings, EnvelopeConfig::default(), layers))
    }

    /// Parses a TOML configuration with this registry's schemes (see [`Config::from_toml`]).
    ///
    /// # Errors
    /// As [`Config::from_toml`].
    pub fn config_from_toml(&self, text: &str) -> Result<Config> {
        self.parse_toml("configuration", text, None, &hsm_core::settings::process_env)
            .map_err(without_secrets)
    }

    /// Reads a TOML configuration file with this registry's schemes (see
    /// [`Config::from_file`]).
    ///
    /// # Errors
    /// As [`Config::from_file`].
    pub fn config_from_file(&self, path: impl AsRef<Path>) -> Result<Config> {
        self.file_with(path.as_ref(), &hsm_core::settings::process_env).map_err(without_secrets)
    }

    /// The configuration `HSM_PROVIDER` or `HSM_CONFIG` asks for, read through `var`, with
    /// this registry's schemes (see [`Config::from_vars`]).
    ///
    /// # Errors
    /// As [`Config::try_from_env`].
    pub fn config_from_vars(&self, var: impl Fn(&str) -> Option<String>) -> Result<Option<Config>> {
        self.config_from_lookup(&|name| Ok(var(name)))
    }

    /// The configuration the process environment asks for, with this registry's schemes
    /// (see [`Config::try_from_env`]).
    ///
    /// # Errors
    /// As [`Config::try_from_env`].
    pub fn config_from_env(&self) -> Result<Option<Config>> {
        self.config_from_lookup(&hsm_core::settings::process_env)
    }

    pub(crate) fn config_from_lookup(&self, lookup: Vars<'_>) -> Result<Option<Config>> {
        self.lookup_unredacted(lookup).map_err(without_secrets)
    }

    fn lookup_unredacted(&self, lookup: Vars<'_>) -> Result<Option<Config>> {
        use crate::config::{ENV_CONFIG, ENV_PROVIDER};
        let url = lookup(ENV_PROVIDER)?.filter(|v| !v.trim().is_empty());
        let file = lookup(ENV_CONFIG)?.filter(|v| !v.trim().is_empty());
        match (url, file) {
            (Some(_), Some(_)) => Err(Error::config(
                HSM,
                format!("both {ENV_PROVIDER} and {ENV_CONFIG} are set; unset one of them"),
            )),
            (Some(url), None) => {
                let mut cfg = self.config_from_url(&url).map_err(|e| match e {
                    Error::Config { message, .. } => Error::config(HSM, format!("{ENV_PROVIDER}: {message}")),
                    e => e,
                })?;
                cfg.settings_mut_dyn().apply_env(lookup).map_err(hsm_error)?;
                Ok(Some(cfg))
            }
            (None, Some(path)) => self.file_with(Path::new(&path), lookup).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn file_with(&self, path: &Path, lookup: Vars<'_>) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                HSM,
                format!("cannot read configuration file {}: {e}; check the path", path.display()),
            )
        })?;
        let origin = format!("configuration file {}", path.display());
        self.parse_toml(&origin, &text, path.parent(), lookup)
    }

    fn parse_toml(&self, origin: &str, text: &str, base: Option<&Path>, lookup: Vars<'_>) -> Result<Config> {
        let common: Common = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        let lines = Lines::new(text);
        let line_of = |top: &str| lines.top(top);
        // Every top-level key is hsm's own or a provider's table (any provider's: a file may
        // keep tables for providers it does not select).
        let sections: Vec<&str> = self
            .schemes
            .iter()
            .filter_map(|s| s.section())
            .chain(BUILTIN.iter().filter_map(|b| b.3))
            .collect();
        for (key, value) in &table {
            let at = |m: String| match line_of(key) {
                Some(l) => Error::config(HSM, format!("{origin} at line {l}: {m}")),
                None => Error::config(HSM, format!("{origin}: {m}")),
            };
            if sections.contains(&key.as_str()) {
                if !value.is_table() {
                    return Err(at(format!(
                        "`{key}` must be a table: write [{key}] and its settings below it"
                    )));
                }
            } else if !COMMON_KEYS.contains(&key.as_str()) {
                let expected = COMMON_KEYS
                    .iter()
                    .chain(&sections)
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(at(format!("unknown field `{key}`, expected one of {expected}")));
            }
        }
        let envelope = match common.envelope {
            Some(section) => EnvelopeConfig::from_section(origin, section)?,
            None => EnvelopeConfig::default(),
        };
        let mut layers = LayerSettings::from_tables(
            origin,
            common.retry,
            common.timeout,
            common.rate_limit,
            common.cache,
        )?;
        let names = || self.providers().join(", ");
        let Some(provider) = common.provider else {
            return Err(Error::config(
                HSM,
                format!("{origin} has no `provider`; add e.g. provider = \"local\" (one of: {})", names()),
            ));
        };
        let Some(scheme) = self.by_name(&provider) else {
            if let Some((p, feature, _, _)) = BUILTIN.iter().find(|b| b.0 == provider) {
                return Err(backend_missing(p, feature));
            }
            return Err(Error::config(
                HSM,
                format!("{origin}: unknown provider \"{provider}\"; use one of: {}", names()),
            ));
        };
        let name = scheme.section().unwrap_or(scheme.provider());
        let mut section = Section::new(origin, provider.as_str(), name).with_vars(lookup);
        if let Some(base) = base {
            section = section.with_base(base);
        }
        if let Some(toml::Value::Table(t)) = scheme.section().and_then(|s| table.get(s)) {
            section = section.present();
            for (key, value) in t {
                section.insert(key.as_str(), to_value(value), lines.key(name, key));
            }
        }
        let mut from_table = match scheme.layer_params() {
            LayerParams::Ignored => LayerSettings::default(),
            p => LayerSettings::take_from_section(&mut section, p == LayerParams::ReadSharingTimeouts)?,
        };
        let settings = scheme.parse_section(&mut section).map_err(hsm_error)?;
        // The [retry]/[timeout]/… tables override what the provider's table says.
        from_table.merge(std::mem::take(&mut layers));
        Ok(Config::from_parts(settings, envelope, from_table))
    }
}

fn to_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Integer(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Array(_) => Value::Other("array"),
        toml::Value::Table(_) => Value::Other("table"),
        toml::Value::Datetime(_) => Value::Other("datetime"),
    }
}

/// Line numbers of a file's top-level keys and of the keys of its tables.
struct Lines<'a> {
    text: &'a str,
    doc: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines { text, doc: toml::de::DeTable::parse(text).ok() }
    }

    fn line(&self, at: usize) -> usize {
        self.text.as_bytes()[..at.min(self.text.len())].iter().filter(|b| **b == b'\n').count() + 1
    }

    fn top(&self, key: &str) -> Option<usize> {
        let (k, _) = self.doc.as_ref()?.get_ref().iter().find(|(k, _)| k.get_ref() == key)?;
        Some(self.line(k.span().start))
    }

    fn key(&self, table: &str, key: &str) -> Option<usize> {
        let (_, t) = self.doc.as_ref()?.get_ref().iter().find(|(k, _)| k.get_ref() == table)?;
        let (k, _) = t.get_ref().as_table()?.iter().find(|(k, _)| k.get_ref() == key)?;
        Some(self.line(k.span().start))
    }
}

/// Splits `scheme:rest`, lower-casing the scheme. `None` when there is no valid scheme.
pub(crate) fn split_scheme(s: &str) -> Option<(String, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then(|| (scheme.to_ascii_lowercase(), rest))
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

    #[test]
    fn schemes_need_a_letter_first_and_are_case_insensitive() {
        assert_eq!(split_scheme("Local:x"), Some(("local".to_owned(), "x")));
        assert_eq!(split_scheme("1x:y"), None);
        assert_eq!(split_scheme("no-colon"), None);
        assert_eq!(split_scheme(":x"), None);
    }

    #[test]
    fn lines_of_keys() {
        let l = Lines::new("provider = \"x\"\n\n[aws]\nregion = \"r\"\n");
        assert_eq!(l.top("provider"), Some(1));
        assert_eq!(l.top("aws"), Some(3));
        assert_eq!(l.key("aws", "region"), Some(4));
        assert_eq!(l.key("aws", "nope"), None);
    }
}
