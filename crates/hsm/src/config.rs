//! [`Config`]: which provider to use, from a URL, a TOML file or the environment.
//!
//! The parsing is the providers' own (each crate's `from_url` and `from_section`); the
//! [`registry`](crate::registry) maps a URL scheme or `provider = "…"` to it.

use std::any::Any;
use std::fmt;
use std::path::Path;
#[cfg(feature = "local")]
use std::path::PathBuf;
use std::sync::Arc;

use hsm_core::{Error, Provider, Result};

use crate::keyring::EnvelopeConfig;
use crate::layers::{LayerConfig, LayerSettings};
use crate::registry::{OpenOptions, ProviderSettings, registry};

/// The provider name used in configuration errors.
pub(crate) const HSM: &str = "hsm";

/// Environment variable holding a provider URL.
pub const ENV_PROVIDER: &str = "HSM_PROVIDER";
/// Environment variable holding the path of a TOML configuration file.
pub const ENV_CONFIG: &str = "HSM_CONFIG";
/// Environment variable holding the local keystore passphrase.
pub const ENV_PASSPHRASE: &str = "HSM_PASSPHRASE";

/// A provider's configuration error as hsm's: configuration errors name `"hsm"`.
pub(crate) fn hsm_error(e: Error) -> Error {
    match e {
        Error::Config { message, .. } => Error::config(HSM, message),
        e => e,
    }
}

/// Which provider to use and how to reach it.
///
/// Build one from a URL ([`Config::from_url`]), a TOML file ([`Config::from_file`]), the
/// environment ([`Config::from_env`]) or in code ([`Config::memory`], [`Config::local`],
/// [`Config::new`]), then [`open`](Config::open) it or hand it to
/// [`Client::connect`](crate::Client::connect).
///
/// | URL                              | provider                                             |
/// |----------------------------------|------------------------------------------------------|
/// | `memory:`                        | in-memory local provider; keys vanish with it        |
/// | `local:///abs/path/to/keystore`  | encrypted local keystore file (absolute path)        |
/// | `local:relative/path`, `file:…`  | the same, relative to the working directory (`hsm_local::LocalConfig`) |
/// | `aws-kms://?region=…&endpoint=…` | AWS KMS (feature `aws`; see `hsm_aws::AwsConfig`)    |
/// | `azure-keyvault://HOST[:PORT]?…` | Azure Key Vault / Managed HSM (feature `azure`; see `hsm_azure::AzureConfig::from_url`) |
/// | `gcp-kms://projects/P/locations/L/keyRings/R?endpoint=…` | Google Cloud KMS (feature `gcp`; see `hsm_gcp::GcpConfig`) |
/// | `pkcs11:token=…?module-path=…`   | PKCS#11 token (feature `pkcs11`; see `hsm_pkcs11`)   |
/// | any scheme an application registered | its provider ([`register_scheme`](crate::register_scheme)) |
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
pub struct Config {
    settings: Box<dyn ProviderSettings>,
    envelope: EnvelopeConfig,
    /// Resilience layers (`crate::layers`).
    layers: LayerSettings,
}

impl Clone for Config {
    fn clone(&self) -> Self {
        Config {
            settings: self.settings.clone_settings(),
            envelope: self.envelope.clone(),
            layers: self.layers.clone(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("provider", &self.settings.provider_name())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration of the provider `settings` describe (a registered provider's, or a
    /// built-in one's such as `hsm_aws::AwsConfig`), with no envelope recipients and the
    /// provider's default layers.
    pub fn new(settings: impl ProviderSettings) -> Self {
        Self::from_parts(Box::new(settings), EnvelopeConfig::default(), LayerSettings::default())
    }

    pub(crate) fn from_parts(
        settings: Box<dyn ProviderSettings>,
        envelope: EnvelopeConfig,
        layers: LayerSettings,
    ) -> Self {
        Config { settings, envelope, layers }
    }

    /// The in-memory local provider: nothing is written anywhere and keys vanish with it.
    #[cfg(feature = "local")]
    pub fn memory() -> Self {
        Self::new(hsm_local::LocalConfig::memory())
    }

    /// A local keystore file at `path` (created on first open), encrypted under a random
    /// master key in `<path>.key` unless a passphrase is set.
    #[cfg(feature = "local")]
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self::new(hsm_local::LocalConfig::file(path))
    }

    /// The provider's settings.
    pub fn settings(&self) -> &dyn ProviderSettings {
        &*self.settings
    }

    /// The provider's settings as `T` (e.g. `hsm_aws::AwsConfig`), if they are a `T`.
    pub fn settings_as<T: ProviderSettings>(&self) -> Option<&T> {
        (&*self.settings as &dyn Any).downcast_ref()
    }

    /// The provider's settings as `T`, to change them, if they are a `T`.
    pub fn settings_as_mut<T: ProviderSettings>(&mut self) -> Option<&mut T> {
        (&mut *self.settings as &mut dyn Any).downcast_mut()
    }

    pub(crate) fn settings_mut_dyn(&mut self) -> &mut dyn ProviderSettings {
        &mut *self.settings
    }

    /// Encrypts the local keystore under a key derived (Argon2id) from `passphrase`.
    /// Ignored by other providers.
    #[must_use]
    #[cfg_attr(not(feature = "local"), allow(unused_mut))]
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        #[cfg(feature = "local")]
        if let Some(local) = self.settings_as_mut::<hsm_local::LocalConfig>() {
            *local = local.clone().with_passphrase(passphrase);
        }
        #[cfg(not(feature = "local"))]
        let _: String = passphrase.into();
        self
    }

    /// Takes the local keystore's passphrase from environment variable `var` when it is set
    /// (an unset variable leaves the configuration unchanged). Ignored by other providers.
    ///
    /// # Errors
    /// [`Error::Config`] when `var` is set but empty or not UTF-8.
    #[cfg_attr(not(feature = "local"), allow(unused_mut))]
    pub fn with_passphrase_from_env(mut self, var: &str) -> Result<Self> {
        #[cfg(feature = "local")]
        if let Some(local) = self.settings_as_mut::<hsm_local::LocalConfig>() {
            *local = local
                .clone()
                .passphrase_from(&hsm_core::settings::process_env, var, false)
                .map_err(hsm_error)?;
        }
        #[cfg(not(feature = "local"))]
        let _ = var;
        Ok(self)
    }

    /// Parses a provider URL (see the table on [`Config`]) with the process-wide
    /// [`registry`](crate::registry()).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty URL, a missing or unknown scheme, a scheme whose
    /// backend feature is off (naming the feature), and whatever the provider's own parser
    /// refuses (naming the parameter and how to fix it).
    pub fn from_url(url: &str) -> Result<Self> {
        registry().config_from_url(url)
    }

    /// Parses a TOML configuration with the process-wide [`registry`](crate::registry()).
    /// Relative paths are relative to the working directory; variables are read from the
    /// process environment.
    ///
    /// `provider` names the provider; its settings are in its own table, which its crate
    /// parses and documents: `[local]` (`hsm_local::LocalConfig::from_section`), `[aws]`
    /// (`hsm_aws::AwsConfig::from_section`), `[azure]` (`hsm_azure::AzureConfig::from_section`),
    /// `[gcp]` (`hsm_gcp::GcpConfig::from_section`), `[pkcs11]`
    /// (`hsm_pkcs11::Pkcs11Config::from_section`), or a registered provider's table.
    /// `provider = "memory"` takes none. `[retry]`, `[timeout]`, `[rate_limit]` and
    /// `[cache]` configure the layers ([`crate::layers`]), `[envelope]` the envelope
    /// recipients ([`EnvelopeConfig`]). A provider's table may also carry the layer
    /// parameters of its URL (`retries`, `timeout`, …); the layer tables override them.
    ///
    /// ```toml
    /// provider = "local"            # or "memory", "aws-kms", "azure-keyvault", "gcp-kms", "pkcs11"
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
    /// # Errors
    /// [`Error::Config`] naming the field and its line: TOML syntax, unknown fields, a
    /// missing or unknown `provider`, a backend that is not built, and whatever the
    /// provider refuses in its table (a missing `[local]` table or `local.path`, an unset
    /// `passphrase_env` variable, a `[pkcs11]` table without `module`, …).
    pub fn from_toml(text: &str) -> Result<Self> {
        registry().config_from_toml(text)
    }

    /// Reads a TOML configuration file (see [`from_toml`](Config::from_toml)). Relative
    /// paths are relative to the file's directory.
    ///
    /// # Errors
    /// [`Error::Config`] when the file cannot be read, and as [`from_toml`](Config::from_toml).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        registry().config_from_file(path)
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

    /// The configuration the environment asks for: `HSM_PROVIDER` (a URL; a local
    /// keystore's passphrase from `HSM_PASSPHRASE`, and whatever else the provider reads,
    /// see [`ProviderSettings::apply_env`]) or `HSM_CONFIG` (a TOML file path).
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
        registry().config_from_env()
    }

    /// Like [`try_from_env`](Config::try_from_env), but reads variables through `var`
    /// (`None` for unset) instead of the process environment: for tests, and for programs
    /// that keep their settings elsewhere. A TOML file named by `HSM_CONFIG` reads its
    /// `passphrase_env` through `var` too.
    ///
    /// # Errors
    /// As [`try_from_env`](Config::try_from_env).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        registry().config_from_vars(var)
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

    /// The provider this configuration selects: `"local"` for both the keystore file and
    /// the in-memory store.
    pub fn provider_name(&self) -> &'static str {
        self.settings.provider_name()
    }

    /// The PKCS#11 settings, if this configuration selects a PKCS#11 token: for
    /// applications (like the `hsm` CLI) that supply the PIN themselves, e.g. by prompting
    /// when it is left to `HSM_PKCS11_PIN` (`hsm_pkcs11::PIN_ENV`) and that is unset.
    #[cfg(feature = "pkcs11")]
    pub fn pkcs11_mut(&mut self) -> Option<&mut hsm_pkcs11::Pkcs11Config> {
        self.settings_as_mut()
    }

    #[cfg(feature = "local")]
    fn local_config(&self) -> Option<&hsm_local::LocalConfig> {
        self.settings_as()
    }

    /// True for the in-memory provider.
    pub fn is_memory(&self) -> bool {
        #[cfg(feature = "local")]
        return self.local_config().is_some_and(hsm_local::LocalConfig::is_memory);
        #[cfg(not(feature = "local"))]
        false
    }

    /// The local keystore path, if this configuration selects one.
    pub fn keystore_path(&self) -> Option<&Path> {
        #[cfg(feature = "local")]
        return self.local_config().and_then(hsm_local::LocalConfig::path);
        #[cfg(not(feature = "local"))]
        None
    }

    /// True when a local keystore passphrase is configured (it is never shown).
    pub fn has_passphrase(&self) -> bool {
        #[cfg(feature = "local")]
        return self.local_config().is_some_and(hsm_local::LocalConfig::has_passphrase);
        #[cfg(not(feature = "local"))]
        false
    }

    /// Opens the provider, with the resilience layers of [`layer_config`](Self::layer_config).
    ///
    /// Opening a passphrase-protected keystore derives its key with Argon2id, which takes
    /// a moment; inside a Tokio runtime that work runs on the blocking pool.
    ///
    /// # Errors
    /// What the provider fails to open with: [`Error::Config`] for a corrupt keystore or
    /// one that cannot be created, [`Error::Unauthenticated`] for a wrong passphrase, …
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
        let options = OpenOptions { layers_retry: self.layer_config().retries() };
        self.settings.open(&options).await
    }
}
