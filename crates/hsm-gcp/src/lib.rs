//! Google Cloud KMS provider for hsm, on the official `google-cloud-kms-v1` (REST).
//!
//! [`GcpKmsProvider`] implements [`hsm_core::Provider`] (name `"gcp-kms"`). Every request is
//! checked with [`hsm_core::check`] (and Google's label rules) before any network call.
//!
//! # Configuration
//!
//! ```no_run
//! # async fn demo() -> hsm_core::Result<()> {
//! use hsm_gcp::{Credentials, GcpConfig, GcpKmsProvider};
//! // Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server).
//! let kms = GcpKmsProvider::connect(&GcpConfig::new("my-project", "global", "my-ring")).await?;
//! // An emulator: plain http, no credentials, the key ring created on first use, fail fast.
//! let kms = GcpKmsProvider::connect(
//!     &GcpConfig::new("p", "global", "ring")
//!         .with_endpoint("http://127.0.0.1:8085")
//!         .with_credentials(Credentials::Anonymous)
//!         .create_key_ring(true)
//!         .max_attempts(1),
//! )
//! .await?;
//! // From an SDK client you built yourself (the SDK crates are re-exported).
//! let client = hsm_gcp::google_cloud_kms_v1::client::KeyManagementService::builder()
//!     .build()
//!     .await
//!     .map_err(|e| hsm_core::Error::config("gcp-kms", e.to_string()))?;
//! let kms = GcpKmsProvider::from_client(client, GcpConfig::new("p", "global", "ring"));
//! # let _ = kms; Ok(()) }
//! ```
//!
//! As a URL (for `hsm::Config`, the CLI's `--provider` and `HSM_PROVIDER`):
//! `gcp-kms://projects/P/locations/L/keyRings/R?endpoint=http://127.0.0.1:PORT&create_key_ring=true`;
//! see [`GcpConfig::from_url`] for every parameter. An `endpoint` on the loopback address
//! implies anonymous credentials.
//!
//! Defaults: 3 attempts per call (the SDK's AIP-194 retry rules, 100 ms–2 s backoff), 10 s
//! per attempt, 30 s per call. The SDK's own default retries a refused connection for about
//! a minute; here an endpoint nobody listens on is `Unavailable` within a second or so.
//!
//! # How hsm maps onto Cloud KMS
//!
//! - **Names**: a key called `NAME` is the crypto key
//!   `projects/P/locations/L/keyRings/R/cryptoKeys/NAME`; `native_id` is that resource name.
//!   Cloud KMS keeps crypto keys forever, so a name cannot be reused after deletion.
//! - **Versions** are the crypto key version ids (`1`, `2`, …), recorded in every
//!   [`Ciphertext`](hsm_core::Ciphertext), [`Signature`](hsm_core::Signature),
//!   [`WrappedKey`](hsm_core::WrappedKey) and [`MacTag`](hsm_core::MacTag). The current
//!   version of an `ENCRYPT_DECRYPT` key is its primary; keys of every other purpose have no
//!   primary, and their current version is **the newest enabled version**.
//! - **Algorithms**: Cloud KMS fixes one algorithm per key. `create_key` picks it from the
//!   spec and usage (table below; RSA choices set by [`GcpConfig::with_rsa_signature`] and
//!   [`GcpConfig::with_rsa_encryption`]); [`GcpKmsProvider::create_key_with_algorithm`] takes
//!   any algorithm hsm models. A request for another algorithm than the key's is
//!   `Unsupported`, naming the key's algorithm; [`GcpKmsProvider::key_algorithm`] says what a
//!   key can do ([`KeyInfo`](hsm_core::KeyInfo) has no algorithm field).
//! - **Tags** are labels, checked against Google's label rules before any call (lowercase
//!   letters, digits, `_`, `-`; keys start with a letter; at most 63 characters; 64 labels).
//!   Label keys starting with `hsm_` are hsm's: `hsm_usage=wrap` marks wrapping keys (Cloud
//!   KMS cannot tell them from encryption keys).
//! - **Description**: Cloud KMS has no description field and labels cannot hold free text,
//!   so the description is stored as lowercase base32 (RFC 4648, no padding) in labels
//!   `hsm_desc_00`, `hsm_desc_01`, … (63 characters, about 39 bytes, each). It counts against
//!   the 64 labels; other clients see those labels.
//! - **Encryption**: AES keys encrypt on the service (`Encrypt`/`Decrypt` for
//!   `GOOGLE_SYMMETRIC_ENCRYPTION`, `RawEncrypt`/`RawDecrypt` for `AES_128_GCM`/`AES_256_GCM`)
//!   with the AAD as Cloud KMS's additional authenticated data. RSA keys
//!   (`ASYMMETRIC_DECRYPT`) are encrypted to locally with the version's public key
//!   (aws-lc-rs), since Cloud KMS has no asymmetric Encrypt, and decrypted by the service.
//! - **Native ciphertexts**: [`Ciphertext::as_bytes`](hsm_core::Ciphertext::as_bytes) is the
//!   Cloud KMS ciphertext (`Encrypt` output; `IV ‖ ciphertext ‖ tag` for raw keys; the RSA-OAEP
//!   output), and `Ciphertext::new(key, version, alg, bytes)` around such bytes decrypts
//!   ([`GcpKmsProvider::native_ciphertext`]). Cloud KMS refuses empty plaintexts, so an empty
//!   plaintext is sent as one zero byte with the AAD prefixed by [`EMPTY_MARKER`]; such a
//!   ciphertext is hsm's own.
//! - **Signing**: RSA and ECDSA sign a digest (hashed locally for messages); Ed25519 signs
//!   the message (at most 64 KiB). Verification is local with the version's public key
//!   (cached per version), as Cloud KMS has no Verify.
//! - **Integrity**: every request field that has a CRC32C companion gets one, and every
//!   response CRC32C, `verified_*` flag and resource name is checked, as Google's data
//!   integrity guidance says. A mismatch is a retryable `Unavailable` error and the data is
//!   discarded.
//! - **Lifecycle**: `rotate_key` creates a version (and makes it primary for symmetric keys);
//!   older versions keep decrypting and verifying. Disable/enable change the state of every
//!   enabled/disabled version. `schedule_deletion` schedules destruction of every version and
//!   reports the date; the window is the key's `destroy_scheduled_duration`, which Cloud KMS
//!   fixes at creation, so the deletion policy accepts exactly the configured window
//!   ([`GcpConfig::with_deletion_window`], default 30 days). `cancel_deletion` restores the
//!   versions, which come back disabled. A key with every version destroyed is gone for hsm.
//! - **Listing** reads the key ring, filters by name prefix, spec and labels, and pages with
//!   [`hsm_core::paging::NamePaging`] tokens.
//! - **Errors**: one function maps `google.rpc` status codes, [`error::from_status`].
//!
//! # Capabilities
//!
//! | spec | usages | Cloud KMS algorithm | hsm algorithm |
//! |---|---|---|---|
//! | aes-256 | encrypt, wrap | `GOOGLE_SYMMETRIC_ENCRYPTION` (or `AES_256_GCM` with `raw_aes256`) | aes-gcm (≤ 64 KiB, AAD ≤ 64 KiB) |
//! | aes-128 | encrypt, wrap | `AES_128_GCM` (`RAW_ENCRYPT_DECRYPT`) | aes-gcm |
//! | rsa-2048/3072/4096 | encrypt | `RSA_DECRYPT_OAEP_*_SHA256` (or `_SHA1`) | rsa-oaep-sha256 (or rsa-oaep-sha1) |
//! | rsa-2048/3072/4096 | wrap | `RSA_DECRYPT_OAEP_*_SHA256` | rsa-oaep-sha256 |
//! | rsa-2048/3072/4096 | sign | `RSA_SIGN_PSS_*_SHA256` (or `RSA_SIGN_PKCS1_*_SHA256`) | rsa-pss-sha256 (or rsa-pkcs1-sha256) |
//! | ec-p256 / ec-p384 | sign | `EC_SIGN_P256_SHA256` / `EC_SIGN_P384_SHA384` | ecdsa-sha256 / ecdsa-sha384 |
//! | ec-secp256k1 | sign | `EC_SIGN_SECP256K1_SHA256` (always `HSM` protection, as Cloud KMS requires) | ecdsa-sha256 |
//! | ed25519 | sign | `EC_SIGN_ED25519` | ed25519 (messages only) |
//! | hmac-sha256/384/512 | mac | `HMAC_SHA256/384/512` | hmac-sha256/384/512 |
//!
//! Every spec rotates. Not offered because Cloud KMS does not: AES-192, EC P-521, AES key
//! wrap (RFC 3394/5649), RSA PKCS#1 v1.5 encryption. Through `create_key_with_algorithm`
//! also `RSA_SIGN_PSS_4096_SHA512` and `RSA_SIGN_PKCS1_4096_SHA512`. With `protection=hsm`,
//! plaintext plus AAD is limited to 8 KiB.
//!
//! # IAM permissions
//!
//! `cloudkms.cryptoKeys.{create,get,list,update}`, `cloudkms.cryptoKeyVersions.{create,get,list,
//! update,destroy,restore,useToEncrypt,useToDecrypt,useToSign,viewPublicKey}` and, with
//! `create_key_ring`, `cloudkms.keyRings.{get,create}` (roles `roles/cloudkms.admin` plus
//! `roles/cloudkms.cryptoOperator`).

pub mod config;
pub mod error;
mod local;
pub mod mapping;
mod provider;

pub use config::{Credentials, DEFAULT_METADATA_TTL, GcpConfig, Protection};
pub use mapping::KeyAlgorithm;
pub use provider::{EMPTY_MARKER, GcpKmsProvider, MAX_HSM_INPUT, MAX_SOFTWARE_INPUT, gcp_capabilities};

pub use google_cloud_auth;
pub use google_cloud_gax;
pub use google_cloud_kms_v1;
pub use google_cloud_wkt;

/// The provider name, `"gcp-kms"`.
pub const PROVIDER: &str = "gcp-kms";
