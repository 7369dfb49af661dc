//! Token credentials: a fixed bearer token, and the standard chain built from
//! `azure_identity`'s credentials.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::time::{Duration, OffsetDateTime};
use azure_identity::{
    ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential, WorkloadIdentityCredential,
};

/// A credential that always returns the same bearer token, valid for the next hour each
/// time it is asked (it is never refreshed). For emulators, tests and short scripts.
///
/// ```
/// let cred = hsm_azure::StaticTokenCredential::new("token-value");
/// assert!(!format!("{cred:?}").contains("token-value"));
/// ```
pub struct StaticTokenCredential {
    token: Secret,
}

impl StaticTokenCredential {
    /// A credential handing out `token`.
    pub fn new(token: impl Into<String>) -> Self {
        StaticTokenCredential { token: Secret::new(token.into()) }
    }
}

impl fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticTokenCredential(<redacted>)")
    }
}

#[async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(self.token.clone(), OffsetDateTime::now_utc() + Duration::hours(1)))
    }
}

/// The standard credential chain, tried in order until one hands out a token (that one is
/// then used first from then on):
///
/// 1. a client secret from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`;
/// 2. workload identity from `AZURE_FEDERATED_TOKEN_FILE` (with `AZURE_TENANT_ID`,
///    `AZURE_CLIENT_ID`), as on AKS;
/// 3. managed identity (App Service, or the instance metadata service on Azure VMs);
/// 4. the developer tools: Azure CLI (`az login`), then Azure Developer CLI (`azd auth login`).
///
/// Client-certificate credentials are not in the chain (`azure_identity` needs OpenSSL for
/// them); build one yourself and pass it as [`AzureCredential::Custom`](crate::AzureCredential).
pub struct ChainCredential {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    skipped: Vec<String>,
    last_good: AtomicUsize,
}

impl fmt::Debug for ChainCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainCredential")
            .field("sources", &self.sources.iter().map(|(n, _)| *n).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ChainCredential {
    /// The chain, with the sources the environment makes possible.
    pub fn from_env() -> Self {
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        let mut skipped = Vec::new();
        match (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET")) {
            (Some(tenant), Some(client), Some(secret)) => {
                match ClientSecretCredential::new(&tenant, client, Secret::new(secret), None) {
                    Ok(c) => sources.push(("environment client secret", c)),
                    Err(e) => skipped.push(format!("environment client secret: {e}")),
                }
            }
            _ => skipped.push(
                "environment client secret: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET not all set"
                    .to_owned(),
            ),
        }
        if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            match WorkloadIdentityCredential::new(None) {
                Ok(c) => sources.push(("workload identity", c)),
                Err(e) => skipped.push(format!("workload identity: {e}")),
            }
        } else {
            skipped.push("workload identity: AZURE_FEDERATED_TOKEN_FILE not set".to_owned());
        }
        match ManagedIdentityCredential::new(None) {
            Ok(c) => sources.push(("managed identity", c)),
            Err(e) => skipped.push(format!("managed identity: {e}")),
        }
        match DeveloperToolsCredential::new(None) {
            Ok(c) => sources.push(("Azure CLI / Azure Developer CLI", c)),
            Err(e) => skipped.push(format!("developer tools: {e}")),
        }
        ChainCredential { sources, skipped, last_good: AtomicUsize::new(usize::MAX) }
    }
}

#[async_trait]
impl TokenCredential for ChainCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let good = self.last_good.load(Ordering::Relaxed);
        if let Some((_, c)) = self.sources.get(good)
            && let Ok(t) = c.get_token(scopes, options.clone()).await
        {
            return Ok(t);
        }
        let mut failures = self.skipped.clone();
        for (i, (name, c)) in self.sources.iter().enumerate() {
            match c.get_token(scopes, options.clone()).await {
                Ok(t) => {
                    self.last_good.store(i, Ordering::Relaxed);
                    return Ok(t);
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!("no credential in the chain produced a token; tried: {}", failures.join("; ")),
        ))
    }
}
