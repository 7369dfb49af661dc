//! Bad configuration and bad endpoints give clear, typed errors, fast.

use std::time::{Duration, Instant};

use hsm_azure::{AzureConfig, AzureKeyVaultProvider, VaultKind};
use hsm_core::{CreateKey, Error, KeyRef, KeySpec, Provider};

use crate::emulator::{config_for, start};

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_quickly() {
    let ca = tempfile::NamedTempFile::new().unwrap();
    // Any PEM certificate will do: the connection is refused before TLS.
    let emu = start(false).await;
    std::fs::copy(emu.ca.path(), ca.path()).unwrap();
    let url = format!("https://127.0.0.1:{}", dead_port());
    let cfg = config_for(&url, ca.path(), VaultKind::Vault).max_retries(2);
    let p = AzureKeyVaultProvider::connect(&cfg).unwrap();
    let started = Instant::now();
    let err = p.get_key(&KeyRef::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("cannot reach Key Vault"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_error_within_the_timeout() {
    let emu = start(false).await;
    let other = start(false).await;
    // Trust the other emulator's CA: this one's certificate is then untrusted.
    let cfg = config_for(&emu.running.url(), other.ca.path(), VaultKind::Vault)
        .max_retries(3)
        .operation_timeout(Duration::from_secs(8));
    let p = AzureKeyVaultProvider::connect(&cfg).unwrap();
    let started = Instant::now();
    let err = p.get_key(&KeyRef::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. } | Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_missing_or_bogus_ca_file_is_a_config_error() {
    let cfg = AzureConfig::custom("https://127.0.0.1:1", VaultKind::Vault)
        .unwrap()
        .with_ca_file("/nonexistent/ca.pem")
        .with_token("t");
    let err = AzureKeyVaultProvider::connect(&cfg).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), "not a certificate").unwrap();
    let err = AzureKeyVaultProvider::connect(&cfg.with_ca_file(junk.path())).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}

#[test]
fn wrong_url_forms_are_config_errors_naming_the_fix() {
    for (url, says) in [
        ("http://contoso.vault.azure.net", "https://"),
        ("https://contoso.example.com", "not a Key Vault or Managed HSM host"),
        ("https://contoso.vault.azure.net/keys/k", "path"),
        ("contoso.vault.azure.net", "not a URL"),
    ] {
        let err = AzureConfig::new(url).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
    for (url, says) in [
        ("azure-keyvault://127.0.0.1:8443", "?ca=/path/ca.pem"),
        ("azure-keyvault://h/keys/x?ca=/c", "no path"),
        ("azure-keyvault://h?ca=/c&kind=premium", "kind=premium"),
        ("azure-keyvault://h?ca=/c&timeout=soon", "not a duration"),
        ("azure-keyvault://user:pw@h?ca=/c", "credentials"),
    ] {
        let err = AzureConfig::from_url(url).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
}

#[tokio::test]
async fn bad_requests_fail_before_any_network_call() {
    // Nothing listens here: an error other than Unavailable proves no call was made.
    let emu = start(false).await;
    let url = format!("https://127.0.0.1:{}", dead_port());
    let p = AzureKeyVaultProvider::connect(&config_for(&url, emu.ca.path(), VaultKind::Vault)).unwrap();
    for (req, says) in [
        (CreateKey::new("under_score", KeySpec::EcP256), "only letters, digits and '-'"),
        (CreateKey::new("", KeySpec::EcP256), "empty"),
        (CreateKey::new("ok", KeySpec::EcP256).description("d".repeat(300)), "256"),
    ] {
        let err = p.create_key(req).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    let err = p.create_key(CreateKey::new("ed", KeySpec::Ed25519)).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let err = p.get_key(&KeyRef::new("k").with_version("not/a/version")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}
