//! The built-in providers as [`Scheme`]s, each behind its cargo feature. Each provider
//! crate parses its own URL and table; this file only names them and opens them.

use std::sync::Arc;

#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
use hsm_core::settings::Section;
#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
use hsm_core::{Provider, Result};

#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp"))]
use crate::registry::LayerParams;
use crate::registry::Scheme;
#[cfg(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp", feature = "pkcs11"))]
use crate::registry::{OpenOptions, ProviderSettings};

/// The schemes of the providers this build has.
pub(crate) fn schemes() -> Vec<Arc<dyn Scheme>> {
    #[allow(unused_mut)]
    let mut s: Vec<Arc<dyn Scheme>> = Vec::new();
    #[cfg(feature = "local")]
    {
        s.push(Arc::new(Local));
        s.push(Arc::new(Memory));
    }
    #[cfg(feature = "aws")]
    s.push(Arc::new(Aws));
    #[cfg(feature = "azure")]
    s.push(Arc::new(Azure));
    #[cfg(feature = "gcp")]
    s.push(Arc::new(Gcp));
    #[cfg(feature = "pkcs11")]
    s.push(Arc::new(Pkcs11));
    s
}

/// `local:` and `file:` URLs, `provider = "local"` with `[local]`.
#[cfg(feature = "local")]
struct Local;

#[cfg(feature = "local")]
impl Scheme for Local {
    fn provider(&self) -> &'static str {
        "local"
    }
    fn url_schemes(&self) -> &[&'static str] {
        &["local", "file"]
    }
    fn section(&self) -> Option<&'static str> {
        Some("local")
    }
    fn url_form(&self) -> &'static str {
        "local:///abs/path/to/keystore, local:relative/path"
    }
    fn layer_params(&self) -> LayerParams {
        LayerParams::Ignored
    }
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_local::LocalConfig::from_url(url)?))
    }
    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_local::LocalConfig::from_section(section)?))
    }
}

/// `memory:` URLs and `provider = "memory"`.
#[cfg(feature = "local")]
struct Memory;

#[cfg(feature = "local")]
impl Scheme for Memory {
    fn provider(&self) -> &'static str {
        "memory"
    }
    fn url_schemes(&self) -> &[&'static str] {
        &["memory", "mem"]
    }
    fn url_form(&self) -> &'static str {
        "memory:"
    }
    fn layer_params(&self) -> LayerParams {
        LayerParams::Ignored
    }
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_local::LocalConfig::from_url(url)?))
    }
    fn parse_section(&self, _: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_local::LocalConfig::memory()))
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

/// `aws-kms://` URLs, `provider = "aws-kms"` with `[aws]`.
#[cfg(feature = "aws")]
struct Aws;

#[cfg(feature = "aws")]
impl Scheme for Aws {
    fn provider(&self) -> &'static str {
        "aws-kms"
    }
    fn url_schemes(&self) -> &[&'static str] {
        &["aws-kms"]
    }
    fn section(&self) -> Option<&'static str> {
        Some("aws")
    }
    fn url_form(&self) -> &'static str {
        "aws-kms://"
    }
    fn layer_params(&self) -> LayerParams {
        LayerParams::ReadSharingTimeouts
    }
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_aws::AwsConfig::from_url(url)?))
    }
    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_aws::AwsConfig::from_section(section)?))
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

/// `azure-keyvault://` URLs, `provider = "azure-keyvault"` with `[azure]`.
#[cfg(feature = "azure")]
struct Azure;

#[cfg(feature = "azure")]
impl Scheme for Azure {
    fn provider(&self) -> &'static str {
        "azure-keyvault"
    }
    fn url_schemes(&self) -> &[&'static str] {
        &["azure-keyvault"]
    }
    fn section(&self) -> Option<&'static str> {
        Some("azure")
    }
    fn url_form(&self) -> &'static str {
        "azure-keyvault://"
    }
    fn layer_params(&self) -> LayerParams {
        LayerParams::ReadSharingTimeouts
    }
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_azure::AzureConfig::from_url(url)?))
    }
    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_azure::AzureConfig::from_section(section)?))
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

/// `gcp-kms://` URLs, `provider = "gcp-kms"` with `[gcp]`.
#[cfg(feature = "gcp")]
struct Gcp;

#[cfg(feature = "gcp")]
impl Scheme for Gcp {
    fn provider(&self) -> &'static str {
        "gcp-kms"
    }
    fn url_schemes(&self) -> &[&'static str] {
        &["gcp-kms"]
    }
    fn section(&self) -> Option<&'static str> {
        Some("gcp")
    }
    fn url_form(&self) -> &'static str {
        "gcp-kms://"
    }
    fn layer_params(&self) -> LayerParams {
        LayerParams::ReadSharingTimeouts
    }
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_gcp::GcpConfig::from_url(url)?))
    }
    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_gcp::GcpConfig::from_section(section)?))
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

/// `pkcs11:` URIs, `provider = "pkcs11"` with `[pkcs11]`.
#[cfg(feature = "pkcs11")]
struct Pkcs11;

#[cfg(feature = "pkcs11")]
impl Scheme for Pkcs11 {
    fn provider(&self) -> &'static str {
        "pkcs11"
    }
    fn url_schemes(&self) -> &[&'static str] {
        &["pkcs11"]
    }
    fn section(&self) -> Option<&'static str> {
        Some("pkcs11")
    }
    fn url_form(&self) -> &'static str {
        "pkcs11:"
    }
    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_pkcs11::Pkcs11Config::from_uri(url)?))
    }
    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(hsm_pkcs11::Pkcs11Config::from_section(section)?))
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
