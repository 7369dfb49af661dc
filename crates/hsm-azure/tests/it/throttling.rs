//! 429 answers: `Throttled` with the service's `Retry-After`, or retried away when retries
//! are allowed (the emulator throttles every Nth request on demand).

use std::time::Duration;

use hsm_azure::{AzureKeyVaultProvider, VaultKind};
use hsm_core::{CreateKey, Error, KeyRef, KeySpec, Provider};
use hsm_emulator::azure::{self, Args};

use crate::emulator::config_for;

async fn throttling_emulator(every: u64) -> (hsm_emulator::server::Running, tempfile::NamedTempFile) {
    let (running, pem) =
        azure::start_with_ca(Args { throttle_every: Some(every), ..Args::default() }).await.unwrap();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), pem).unwrap();
    (running, ca)
}

#[tokio::test]
async fn without_retries_a_429_is_throttled_with_retry_after() {
    let (running, ca) = throttling_emulator(1).await;
    let p = AzureKeyVaultProvider::connect(&config_for(&running.url(), ca.path(), VaultKind::Vault)).unwrap();
    let err = p.get_key(&KeyRef::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn with_retries_the_sdk_waits_and_the_call_succeeds() {
    let (running, ca) = throttling_emulator(3).await;
    let cfg = config_for(&running.url(), ca.path(), VaultKind::Vault).max_retries(2);
    let p = AzureKeyVaultProvider::connect(&cfg).unwrap();
    for i in 0..3 {
        p.create_key(CreateKey::new(format!("t-{i}"), KeySpec::EcP256)).await.unwrap();
    }
}
