//! AWS KMS provider for hsm, on the official `aws-sdk-kms`.
//!
//! [`AwsKmsProvider`] implements [`hsm_core::Provider`] (name `"aws-kms"`). Every request is
//! checked with [`hsm_core::check`] before any network call, so bad input gets the same typed
//! errors as on the local provider.
//!
//! # Configuration
//!
//! ```no_run
//! # async fn demo() -> hsm_core::Result<()> {
//! use hsm_aws::{AwsConfig, AwsKmsProvider};
//! // The standard chain: AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
//! // ~/.aws/config and credentials, SSO, credential_process, container and instance metadata.
//! let kms = AwsKmsProvider::from_env().await?;
//! // With overrides (here: a local emulator).
//! let kms = AwsKmsProvider::connect(
//!     &AwsConfig::new().with_region("us-east-1").with_endpoint("http://127.0.0.1:4566")
//!         .static_credentials("testing", "testing"),
//! ).await?;
//! // From an SDK client you built yourself (the SDK crates are re-exported).
//! let sdk = hsm_aws::aws_config::load_defaults(hsm_aws::aws_config::BehaviorVersion::latest()).await;
//! let kms = AwsKmsProvider::from_client(hsm_aws::aws_sdk_kms::Client::new(&sdk));
//! # let _ = kms; Ok(()) }
//! ```
//!
//! As a URL (for `hsm::Config`, the CLI's `--provider` and `HSM_PROVIDER`):
//! `aws-kms://?region=us-east-1&endpoint=http://127.0.0.1:4566&profile=NAME&timeout=30s&connect_timeout=3s&max_attempts=3`.
//! Every parameter is optional; credentials never go in the URL. See [`AwsConfig::from_url`].
//!
//! Defaults: connect timeout 3 s, 10 s per attempt, 30 s per call, 3 attempts (the SDK's
//! standard retry with 100 ms–2 s backoff). An unreachable endpoint is `Unavailable` well
//! within the call timeout; missing credentials are `Unauthenticated`, saying where the
//! chain looked.
//!
//! # How hsm maps onto KMS
//!
//! - **Names**: a key called `NAME` is the KMS key the alias `alias/NAME` points to.
//!   `create_key` creates the KMS key and then the alias; if the alias already exists it
//!   answers `AlreadyExists` and schedules deletion (7 days) of the key it just created, so no
//!   unnamed key is left behind.
//! - **Tags**: user tags are KMS tags; hsm adds `hsm:name`, `hsm:version` and `hsm:usage`
//!   (KMS cannot tell an encryption key from a wrapping key) and hides them again. User tag
//!   keys starting with `hsm:` or `aws:` are refused.
//! - **Versions** are numbers `1`, `2`, … kept in the `hsm:version` tag. AES keys rotate with
//!   `RotateKeyOnDemand` (KMS keeps the old material; its ciphertexts carry the material id).
//!   Asymmetric and HMAC keys, which AWS cannot rotate, rotate by creating a new KMS key,
//!   pointing `alias/NAME/vN` at the old one (still tagged with its name and version) and
//!   moving `alias/NAME` to the new one. Every blob records its version, so decrypt, verify
//!   and unwrap use the KMS key of that version. Disable, enable, deletion and cancellation
//!   apply to every version's KMS key.
//! - **AAD**: AES-GCM AAD becomes the encryption context `{"hsm:aad": base64(aad)}` (standard
//!   alphabet, padded); no AAD and empty AAD both mean no encryption context, as they mean
//!   the same to AES-GCM. To decrypt an hsm ciphertext with another AWS tool, pass that
//!   context. See [`encryption_context`].
//! - **Native ciphertexts**: the payload of an hsm-aws [`Ciphertext`](hsm_core::Ciphertext)
//!   ([`as_bytes`](hsm_core::Ciphertext::as_bytes)) is the KMS `CiphertextBlob`, which other AWS
//!   tools decrypt with the context above; [`AwsKmsProvider::native_ciphertext`] wraps a blob
//!   other tools made so that `decrypt` opens it. Empty plaintexts, which KMS refuses, are
//!   encrypted as one zero byte with the extra context `hsm:empty=1`.
//! - **Signing**: messages of up to 4096 bytes are sent as `RAW`; longer ones are hashed
//!   locally (aws-lc-rs) and sent as `DIGEST`; digests are sent as `DIGEST`. Verification is
//!   done by the service (`KMSInvalidSignatureException` is `Ok(false)`).
//! - **Wrapping**: `aes-gcm` wraps with `Encrypt` under an AES key, `rsa-oaep-sha256` with
//!   `Encrypt` (`RSAES_OAEP_SHA_256`) under an RSA key created with usage `wrap`.
//! - **Deletion**: 7 to 30 days (whole days, rounded up), default 30; cancelling leaves the
//!   key disabled, as AWS does.
//! - **Errors**: one function maps the service's error codes, [`error::from_code`].
//!
//! # Capabilities
//!
//! | spec | usages | algorithms | rotation |
//! |---|---|---|---|
//! | aes-256 (`SYMMETRIC_DEFAULT`) | encrypt, wrap | aes-gcm (≤ 4096 bytes) | on demand |
//! | rsa-2048/3072/4096 | encrypt, sign, wrap | rsa-oaep-sha1/sha256; rsa-pkcs1-sha256/384/512, rsa-pss-sha256/384/512; wrap rsa-oaep-sha256 | new key + alias |
//! | ec-p256, ec-secp256k1 / ec-p384 / ec-p521 | sign | ecdsa-sha256 / sha384 / sha512 (messages and digests) | new key + alias |
//! | hmac-sha256/384/512 | mac | hmac-sha256/384/512 (≤ 4096 bytes) | new key + alias |
//!
//! Not offered because AWS KMS does not: AES-128/192, AES key wrap, RSA PKCS#1 v1.5
//! encryption. Ed25519 (`ECC_NIST_EDWARDS25519`) is modelled by the SDK but not yet declared
//! (moto cannot create such keys, so it is untested). AWS limits, checked before any call:
//! AES plaintexts up to 4096 bytes, RSA-OAEP plaintexts of 1 byte up to the key's bound, MAC
//! messages of 1 to 4096 bytes.
//!
//! # IAM permissions
//!
//! | hsm operation | KMS actions |
//! |---|---|
//! | every operation on a named key | `kms:DescribeKey`, `kms:ListResourceTags` |
//! | `create_key` | `kms:CreateKey`, `kms:TagResource`, `kms:CreateAlias` (on the key and the alias), `kms:ScheduleKeyDeletion` (orphan cleanup) |
//! | `list_keys` | `kms:ListAliases` |
//! | `rotate_key` | AES: `kms:RotateKeyOnDemand`, `kms:TagResource`; others: `kms:CreateKey`, `kms:TagResource`, `kms:CreateAlias`, `kms:UpdateAlias` |
//! | `set_key_state` | `kms:EnableKey`, `kms:DisableKey` |
//! | `schedule_deletion`, `cancel_deletion` | `kms:ScheduleKeyDeletion`, `kms:CancelKeyDeletion` |
//! | `public_key` | `kms:GetPublicKey` |
//! | `encrypt`, `wrap_key` / `decrypt`, `unwrap_key` | `kms:Encrypt` / `kms:Decrypt` |
//! | `sign` / `verify` | `kms:Sign` / `kms:Verify` |
//! | `mac` / `verify_mac` | `kms:GenerateMac` / `kms:VerifyMac` |
//!
//! # Testing against moto
//!
//! moto is a faithful-enough emulator for most of this, with known gaps (the conformance
//! run ignores the affected cases, naming the gap): RSA encryption is not real RSA-OAEP;
//! `DIGEST` signing hashes again; RSASSA-PSS uses the maximum salt length; disabled and
//! pending-deletion keys keep working (hsm checks the state itself, so this is masked);
//! `ListAliases` never paginates. See [`moto`].

mod config;
pub mod error;
pub mod moto;
mod provider;

pub use aws_config;
pub use aws_sdk_kms;
pub use config::{
    AwsConfig, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_OPERATION_TIMEOUT,
};
pub use provider::{
    AAD_CONTEXT_KEY, AwsKmsProvider, DEFAULT_METADATA_TTL, EMPTY_CONTEXT_KEY, MAX_RAW, TAG_NAME, TAG_USAGE,
    TAG_VERSION, Verification, aws_capabilities, encryption_context,
};

/// The provider name, `"aws-kms"`.
pub const PROVIDER: &str = "aws-kms";
