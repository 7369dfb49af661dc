//! Starting the emulator in-process and a provider pointed at it.

use std::time::Duration;

use hsm_azure::{AzureConfig, AzureKeyVaultProvider, VaultKind};

use hsm_emulator::azure::{self, Args};
use hsm_emulator::server::Running;

/// A running emulator, the file holding its CA, and a provider for it.
pub(crate) struct Emu {
    pub(crate) running: Running,
    pub(crate) ca: tempfile::NamedTempFile,
    pub(crate) provider: AzureKeyVaultProvider,
}

pub(crate) fn config_for(url: &str, ca: &std::path::Path, kind: VaultKind) -> AzureConfig {
    AzureConfig::custom(url, kind)
        .expect("the emulator URL is https://127.0.0.1:PORT")
        .with_ca_file(ca)
        .with_token("test-token")
        .max_retries(0)
        .operation_timeout(Duration::from_secs(20))
}

/// Starts an emulator (Managed HSM mode when `mhsm`) and a provider for it.
pub(crate) async fn start(mhsm: bool) -> Emu {
    let (running, pem) = azure::start_with_ca(Args { managed_hsm: mhsm, ..Args::default() })
        .await
        .expect("the emulator starts");
    let ca = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(ca.path(), pem).expect("the CA is written");
    let kind = if mhsm { VaultKind::ManagedHsm } else { VaultKind::Vault };
    let provider = AzureKeyVaultProvider::connect(&config_for(&running.url(), ca.path(), kind))
        .expect("the provider builds");
    Emu { running, ca, provider }
}
