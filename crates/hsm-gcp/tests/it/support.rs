//! An emulator per test, and a provider on a fresh key ring in it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hsm_emulator::server::Running;
use hsm_gcp::{Credentials, GcpConfig, GcpKmsProvider};

static RING: AtomicU32 = AtomicU32::new(0);

/// A running emulator; stops when dropped.
pub(crate) async fn emulator() -> Running {
    hsm_emulator::gcp::start(hsm_emulator::gcp::Args { port: 0 }).await.expect("start hsm-emulator gcp")
}

/// A configuration for a fresh key ring (created on first use) on `url`, failing fast.
pub(crate) fn config(url: &str) -> GcpConfig {
    let ring = format!("ring-{}-{}", std::process::id(), RING.fetch_add(1, Ordering::Relaxed));
    GcpConfig::new("test-project", "global", ring)
        .with_endpoint(url)
        .with_credentials(Credentials::Anonymous)
        .create_key_ring(true)
        .max_attempts(1)
        // The emulator generates RSA keys inside CreateCryptoKey: slow on a loaded machine.
        .attempt_timeout(Duration::from_secs(120))
        .operation_timeout(Duration::from_secs(120))
}

/// The emulator and a provider on a fresh key ring in it.
pub(crate) async fn provider() -> (Running, GcpKmsProvider) {
    let emu = emulator().await;
    let p = GcpKmsProvider::connect(&config(&emu.url())).await.expect("connect");
    (emu, p)
}

/// As [`provider`], with a changed configuration.
pub(crate) async fn provider_with(f: impl FnOnce(GcpConfig) -> GcpConfig) -> (Running, GcpKmsProvider) {
    let emu = emulator().await;
    let p = GcpKmsProvider::connect(&f(config(&emu.url()))).await.expect("connect");
    (emu, p)
}
