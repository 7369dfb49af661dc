//! Azure Key Vault and Managed HSM provider for hsm, on the official
//! `azure_security_keyvault_keys` 1.0 and `azure_identity` 1.
//!
//! [`AzureKeyVaultProvider`] implements [`hsm_core::Provider`] (name `"azure-keyvault"`).
//! Every request is checked with [`hsm_core::check`] before any network call, so bad input
//! gets the same typed errors as on every other provider.
//!
//! # Configuration
//!
//! ```no_run
//! # async fn demo() -> hsm_core::Result<()> {
//! use std::time::Duration;
//! use hsm_azure::{AzureConfig, AzureKeyVaultProvider, KeyProtection, VaultKind};
//! // A vault, with the standard credential chain (environment client secret, workload
//! // identity, managed identity, then `az login` / `azd auth login`).
//! let kv = AzureKeyVaultProvider::connect(&AzureConfig::new("https://contoso.vault.azure.net")?)?;
//! // A Managed HSM (detected from the host), with a short timeout and no retries.
//! let mhsm = AzureKeyVaultProvider::connect(
//!     &AzureConfig::new("https://contoso.managedhsm.azure.net")?
//!         .operation_timeout(Duration::from_secs(5))
//!         .max_retries(0),
//! )?;
//! // A premium vault with HSM-protected RSA and EC keys, and a credential you built.
//! let cred = hsm_azure::azure_identity::ManagedIdentityCredential::new(None)
//!     .map_err(|e| hsm_core::Error::config("azure-keyvault", e.to_string()))?;
//! let premium = AzureKeyVaultProvider::connect(
//!     &AzureConfig::new("https://contoso-premium.vault.azure.net")?
//!         .with_protection(KeyProtection::Hsm)
//!         .with_token_credential(cred),
//! )?;
//! // An emulator (`hsm-emulator azure --ca-out ca.pem`): any host, its CA, a fixed token.
//! let emu = AzureKeyVaultProvider::connect(
//!     &AzureConfig::custom("https://127.0.0.1:8443", VaultKind::ManagedHsm)?
//!         .with_ca_file("ca.pem")
//!         .with_token("anything"),
//! )?;
//! # let _ = (kv, mhsm, premium, emu); Ok(()) }
//! ```
//!
//! As a URL (for `hsm::Config`, the CLI's `--provider` and `HSM_PROVIDER`):
//! `azure-keyvault://HOST[:PORT][?ca=/path/ca.pem&kind=managed-hsm&protection=hsm&credential=token&timeout=30s&connect_timeout=3s&attempt_timeout=10s&max_retries=2&retention_days=90]`
//! means `https://HOST[:PORT]`; see [`AzureConfig::from_url`]. Credentials never go in the
//! URL (`credential=token` reads `HSM_AZURE_ACCESS_TOKEN`). A host that is not a Key Vault or
//! Managed HSM host is refused unless `ca=` or `kind=` says it is deliberate; `http://` is
//! always refused (Key Vault clients never send bearer tokens in the clear).
//!
//! Defaults: connect timeout 3 s, 10 s per attempt, 30 s per operation, 2 retries (200 ms
//! doubling to 2 s) for connection failures, 408, 429 (honouring `Retry-After`) and 5xx.
//! An unreachable endpoint or an untrusted certificate is `Unavailable` within the
//! operation timeout, saying which; a rejected token is `Unauthenticated`.
//!
//! # How hsm maps onto Key Vault
//!
//! - **Names** are Key Vault key names, **versions** are Key Vault versions (32 hex
//!   digits); every [`Ciphertext`](hsm_core::Ciphertext), [`Signature`](hsm_core::Signature)
//!   and [`WrappedKey`](hsm_core::WrappedKey) records the version that made it, and decrypt,
//!   verify and unwrap use that version, so a rotated key still opens old data. Key Vault
//!   names allow only letters, digits and `-` (an hsm name with `_` is `InvalidInput`) and
//!   are case-insensitive.
//! - **Creating a taken name** is `AlreadyExists`: Key Vault would silently add a version,
//!   so `create_key` first looks the name up. Key Vault has no create-if-absent, so two
//!   clients creating the same name at the same instant can still both succeed, the second
//!   adding a version to the first's key. A name held by a soft-deleted key is
//!   `AlreadyExists` too (Key Vault answers 409 `ObjectIsDeletedButRecoverable`).
//! - **Usage** is native: the key's `key_ops` (`encrypt`/`decrypt`, `sign`/`verify`,
//!   `wrapKey`/`unwrapKey`). Keys made elsewhere with several operations are read as
//!   encrypt (RSA), sign (EC) or encrypt (AES) keys.
//! - **Tags** are native Key Vault tags (at most 15 per key, values up to 256 characters).
//!   hsm reserves the prefix `hsm:`: the **description** is kept in the tag
//!   [`TAG_DESCRIPTION`] (`hsm:description`, so at most 256 characters), and the size of an
//!   AES key in [`TAG_SPEC`] (`hsm:spec`), because Key Vault does not report the size of
//!   `oct` keys (an AES key without it is taken as AES-256). Both are hidden from
//!   [`KeyInfo::tags`](hsm_core::KeyInfo). Tags, `key_ops` and `enabled` are per version in
//!   Key Vault: rotation copies the tags and operations to the new version, and
//!   enable/disable applies to every version.
//! - **Rotation** is Key Vault's `rotate` (a new version); **enable/disable** set the
//!   `enabled` attribute of every version.
//! - **Deletion** is soft delete: `schedule_deletion` deletes the key, which moves to Key
//!   Vault's deleted-keys collection until the vault's retention ends (7 to 90 days, set per
//!   vault; declare yours with `retention_days`, default 90: it is the one deletion window
//!   this provider accepts). `get_key` still finds such a key, as `PendingDeletion` with its
//!   purge date; `list_keys` lists live keys only. `cancel_deletion` recovers the key and
//!   disables it (hsm's contract); [`AzureKeyVaultProvider::recover_deleted_key`] recovers it
//!   as it was, and [`AzureKeyVaultProvider::purge_deleted_key`] purges it for good.
//! - **Signing** hashes the message locally (aws-lc-rs) and sends the digest; digests are
//!   sent as given. ECDSA signatures come back from Key Vault as raw `r‖s` (64, 96 or 132
//!   bytes) and are returned **DER-encoded**, like every other provider's;
//!   [`AzureKeyVaultProvider::raw_signature`] and [`ecdsa_der_to_raw`]/[`ecdsa_raw_to_der`]
//!   give and take the raw form other Key Vault clients use. Verification is done by the
//!   service with the version the signature names.
//! - **Encryption, wrapping** are done by the service (RSA too: no local public-key
//!   shortcuts, so the service's own checks and audit logs see every operation).
//! - **Native ciphertexts**: [`Ciphertext::as_bytes`](hsm_core::Ciphertext::as_bytes) is
//!   Key Vault's `value` for RSA (what any other Key Vault client decrypts with the same
//!   version and algorithm). For AES-GCM, whose result Key Vault returns in three fields,
//!   it is `iv (12) ‖ value ‖ tag (16)` (the same layout as every hsm AES-GCM payload); AAD
//!   is sent as Key Vault's `aad`. [`AzureKeyVaultProvider::native_ciphertext`] (or
//!   `Ciphertext::new(name, version, alg, bytes)`) wraps bytes another client made so that
//!   `decrypt` opens them.
//! - **Errors** are mapped in one function from the HTTP status and the Key Vault error
//!   code, [`error::from_status`]; decryption and unwrapping failures are the opaque
//!   `DecryptionFailed`.
//!
//! # Capabilities
//!
//! See [`azure_capabilities`]: RSA 2048/3072/4096 (RSA-OAEP, RSA-OAEP-256, RSA1_5;
//! RS/PS 256/384/512; wrap RSA-OAEP-256) and EC P-256, P-256K, P-384, P-521 (ES256, ES256K,
//! ES384, ES512) everywhere; Managed HSM adds AES-128/192/256 (`oct-HSM`) with AES-GCM and
//! key wrap (`A*KW`, `CKM_AES_KEY_WRAP_PAD`). Asking a standard vault for an AES key is
//! `Unsupported`. Not offered because Key Vault does not: Ed25519, HMAC.
//!
//! # Key Vault permissions (RBAC data actions)
//!
//! | hsm operation | data actions (`Microsoft.KeyVault/vaults/keys/…`) |
//! |---|---|
//! | `get_key`, `list_keys`, `public_key` | `read` (and `deletedKeys/read` for keys pending deletion) |
//! | `create_key` | `read`, `create/action` |
//! | `rotate_key` | `rotate/action`, `update/action` |
//! | `set_key_state` | `update/action` |
//! | `schedule_deletion` / `cancel_deletion` | `delete` / `deletedKeys/recover/action`, `update/action` |
//! | `encrypt`, `decrypt`, `wrap_key`, `unwrap_key`, `sign`, `verify` | `encrypt/action`, `decrypt/action`, `wrap/action`, `unwrap/action`, `sign/action`, `verify/action` |
//!
//! ("Key Vault Crypto Officer" covers all of them; Managed HSM uses its local RBAC with the
//! same operations.)

mod config;
mod credential;
pub mod error;
mod mapping;
mod provider;

pub use azure_core;
pub use azure_identity;
pub use azure_security_keyvault_keys;
pub use config::{
    AzureConfig, AzureCredential, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES,
    DEFAULT_METADATA_TTL, DEFAULT_OPERATION_TIMEOUT, DEFAULT_RETENTION_DAYS, KeyProtection, TOKEN_ENV,
    VaultKind, kind_of_host,
};
pub use credential::{ChainCredential, StaticTokenCredential};
pub use mapping::{azure_capabilities, ecdsa_der_to_raw, ecdsa_raw_to_der};
pub use provider::{
    AzureKeyVaultProvider, GCM_IV_LEN, GCM_TAG_LEN, MAX_TAG_VALUE, MAX_TAGS, RESERVED_TAG_PREFIX,
    TAG_DESCRIPTION, TAG_SPEC,
};

/// The JWK readers the provider applies to Key Vault's answers, for the fuzz targets in
/// `fuzz/` (not a supported API).
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::mapping::{spec_of, spki_der};
}

/// The provider name, `"azure-keyvault"`.
pub const PROVIDER: &str = "azure-keyvault";
