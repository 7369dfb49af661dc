//! The built-in providers as [`Scheme`]s, each behind its cargo feature. Each provider
//! crate parses its own URL and table; this file only names them and opens them.

use std::sync::Arc;

#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
use hsm_core::settings::Section;
#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
use hsm_core::{Provider, Result};

#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
use crate::registry::LayerParams;
use crate::registry::Scheme;
#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
use crate::registry::{OpenOptions, ProviderSettings};

/// The schemes of the providers this build has.
// Each push is behind its feature, so the list cannot be one `vec![…]`.
#[allow(clippy::vec_init_then_push)]
pub(crate) fn schemes() -> Vec<Arc<dyn Scheme>> {
    #[allow(unused_mut)]
    let mut s: Vec<Arc<dyn Scheme>> = Vec::new();
    #[cfg(feature = "local")]
    {
        s.push(Arc::new(Builtin {
            provider: "local",
            url_schemes: &["local", "file"],
            section: Some("local"),
            url_form: "local:///abs/path/to/keystore, local:relative/path",
            layer_params: LayerParams::Ignored,
            parse_url: |url| Ok(Box::new(hsm_local::LocalConfig::from_url(url)?)),
            parse_section: |section| Ok(Box::new(hsm_local::LocalConfig::from_section(section)?)),
        }));
        s.push(Arc::new(Builtin {
            provider: "memory",
            url_schemes: &["memory", "mem"],
            section: None,
            url_form: "memory:",
            layer_params: LayerParams::Ignored,
            parse_url: |url| Ok(Box::new(hsm_local::LocalConfig::from_url(url)?)),
            parse_section: |_| Ok(Box::new(hsm_local::LocalConfig::memory())),
        }));
    }
    #[cfg(feature = "aws")]
    s.push(Arc::new(Builtin {
        provider: "aws-kms",
        url_schemes: &["aws-kms"],
        section: Some("aws"),
        url_form: "aws-kms://",
        layer_params: LayerParams::ReadSharingTimeouts,
        parse_url: |url| Ok(Box::new(hsm_aws::AwsConfig::from_url(url)?)),
        parse_section: |section| Ok(Box::new(hsm_aws::AwsConfig::from_section(section)?)),
    }));
    #[cfg(feature = "azure")]
    s.push(Arc::new(Builtin {
        provider: "azure-keyvault",
        url_schemes: &["azure-keyvault"],
        section: Some("azure"),
        url_form: "azure-keyvault://",
        layer_params: LayerParams::ReadSharingTimeouts,
        parse_url: |url| Ok(Box::new(hsm_azure::AzureConfig::from_url(url)?)),
        parse_section: |section| Ok(Box::new(hsm_azure::AzureConfig::from_section(section)?)),
    }));
    #[cfg(feature = "gcp")]
    s.push(Arc::new(Builtin {
        provider: "gcp-kms",
        url_schemes: &["gcp-kms"],
        section: Some("gcp"),
        url_form: "gcp-kms://",
        layer_params: LayerParams::ReadSharingTimeouts,
        parse_url: |url| Ok(Box::new(hsm_gcp::GcpConfig::from_url(url)?)),
        parse_section: |section| Ok(Box::new(hsm_gcp::GcpConfig::from_section(section)?)),
    }));
    #[cfg(feature = "pkcs11")]
    s.push(Arc::new(Builtin {
        provider: "pkcs11",
        url_schemes: &["pkcs11"],
        section: Some("pkcs11"),
        url_form: "pkcs11:",
        layer_params: LayerParams::Read,
        parse_url: |url| Ok(Box::new(hsm_pkcs11::Pkcs11Config::from_uri(url)?)),
        parse_section: |section| Ok(Box::new(hsm_pkcs11::Pkcs11Config::from_section(section)?)),
    }));
    s
}

/// A built-in scheme: its names and its provider crate's two parsers.
#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
struct Builtin {
    provider: &'static str,
    url_schemes: &'static [&'static str],
    section: Option<&'static str>,
    url_form: &'static str,
    layer_params: LayerParams,
    parse_url: fn(&str) -> Result<Box<dyn ProviderSettings>>,
    parse_section: fn(&mut Section<'_>) -> Result<Box<dyn ProviderSettings>>,
}

#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
impl Scheme for Builtin {
    fn provider(&self) -> &'static str {
        self.provider
    }
    fn url_schemes(&self) -> &[&'static str] {
        self.url_schemes
    }
    fn section(&self) -> Option<&'static str> {
        self.section
    }
    fn url_form(&self) -> &'static str {
        self.url_form
    }
    fn layer_params(&self) -> LayerParams {
        self.layer_params
    }
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        (self.parse_url)(url)
    }
    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        (self.parse_section)(section)
    }
}

#[cfg(feature = "local")]
#[hsm_core::async_trait]
impl ProviderSettings for hsm_local::LocalConfig {
    fn provider_name(&self) -> &'static str {
        "local"
    }
    /// A keystore file named by `HSM_PROVIDER` takes its passphrase from `HSM_PASSPHRASE`.
    fn apply_env(&mut self, vars: hsm_core::settings::Vars<'_>) -> Result<()> {
        if !self.is_memory() {
            *self = self.clone().passphrase_from(vars, hsm_local::PASSPHRASE_ENV, false)?;
        }
        Ok(())
    }
    async fn open(&self, _: &OpenOptions) -> Result<Arc<dyn Provider>> {
        Ok(Arc::new(hsm_local::LocalConfig::open(self).await?))
    }
}

#[cfg(feature = "aws")]
#[hsm_core::async_trait]
impl ProviderSettings for hsm_aws::AwsConfig {
    fn provider_name(&self) -> &'static str {
        "aws-kms"
    }
    async fn open(&self, options: &OpenOptions) -> Result<Arc<dyn Provider>> {
        let c = if options.layers_retry { self.clone().max_attempts(1) } else { self.clone() };
        Ok(Arc::new(hsm_aws::AwsKmsProvider::connect(&c).await?))
    }
}

#[cfg(feature = "azure")]
#[hsm_core::async_trait]
impl ProviderSettings for hsm_azure::AzureConfig {
    fn provider_name(&self) -> &'static str {
        "azure-keyvault"
    }
    async fn open(&self, options: &OpenOptions) -> Result<Arc<dyn Provider>> {
        let c = if options.layers_retry { self.clone().max_retries(0) } else { self.clone() };
        Ok(Arc::new(hsm_azure::AzureKeyVaultProvider::connect(&c)?))
    }
}

#[cfg(feature = "gcp")]
#[hsm_core::async_trait]
impl ProviderSettings for hsm_gcp::GcpConfig {
    fn provider_name(&self) -> &'static str {
        "gcp-kms"
    }
    async fn open(&self, options: &OpenOptions) -> Result<Arc<dyn Provider>> {
        let c = if options.layers_retry { self.clone().max_attempts(1) } else { self.clone() };
        Ok(Arc::new(hsm_gcp::GcpKmsProvider::connect(&c).await?))
    }
}

#[cfg(feature = "pkcs11")]
#[hsm_core::async_trait]
impl ProviderSettings for hsm_pkcs11::Pkcs11Config {
    fn provider_name(&self) -> &'static str {
        "pkcs11"
    }
    /// The session pool logs in on blocking threads: inside a runtime this runs on its
    /// blocking pool.
    async fn open(&self, _: &OpenOptions) -> Result<Arc<dyn Provider>> {
        let c = self.clone();
        let connect = move || hsm_pkcs11::Pkcs11Provider::connect(&c);
        let provider = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.spawn_blocking(connect).await.map_err(|e| hsm_core::Error::Provider {
                provider: "pkcs11",
                code: "task".into(),
                message: "connecting to the token did not finish".into(),
                source: Some(Box::new(e)),
            })??,
            Err(_) => connect()?,
        };
        Ok(Arc::new(provider))
    }
}
