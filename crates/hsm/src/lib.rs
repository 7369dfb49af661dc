//! # hsm
//!
//! One async interface over cloud key-management services and hardware security modules,
//! with an embedded local provider that needs no account. This crate is what applications
//! use: it re-exports the whole vocabulary of [`hsm_core`] (the [`Provider`] trait,
//! [`Error`], [`KeySpec`], the algorithms, the [`Ciphertext`]/[`Signature`]/[`WrappedKey`]
//! blobs), and adds [`Config`] (which provider, from a URL, a TOML file or the environment)
//! and [`Client`] (the operations of the original Python `CloudHSMClient`, as methods).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hsm::{Client, Config, CreateKey, KeySpec, KeyUsage, SignatureAlgorithm};
//!
//! // `memory:` for a throw-away store; `local:///path/to/keystore` for an encrypted file;
//! // `Config::from_env()` reads HSM_PROVIDER / HSM_CONFIG / HSM_PASSPHRASE.
//! let hsm = Client::connect(Config::from_url("memory:")?).await?;
//!
//! let key = hsm
//!     .create_key(
//!         CreateKey::new("my-encryption-key", KeySpec::Aes256)
//!             .description("Key for encrypting sensitive data")
//!             .tag("environment", "production"),
//!     )
//!     .await?;
//! let ciphertext = hsm.encrypt(&key, b"Sensitive data to encrypt", None).await?;
//! let plaintext = hsm.decrypt(&ciphertext).await?;
//! assert_eq!(&plaintext[..], b"Sensitive data to encrypt");
//!
//! hsm.create_key(CreateKey::new("my-signing-key", KeySpec::Rsa2048).usage(KeyUsage::SignVerify)).await?;
//! let alg: SignatureAlgorithm = "RSASSA_PKCS1_V1_5_SHA_256".parse()?;
//! let signature = hsm.sign("my-signing-key", b"Data to sign", Some(alg)).await?;
//! assert!(hsm.verify("my-signing-key", b"Data to sign", signature.as_bytes(), Some(alg)).await?);
//! # Ok(()) }
//! ```
//!
//! Errors are typed: match on [`Error`] (`AlreadyExists`, `NotFound`, `KeyUnusable`,
//! `DecryptionFailed`, …) instead of catching `Exception`. See `examples/quickstart.rs`
//! (`cargo run -p hsm --example quickstart`) for the original client's whole usage story.
//!
//! ## Providers and features
//!
//! | feature  | default | provider                                             | status         |
//! |----------|---------|------------------------------------------------------|----------------|
//! | `local`  | yes     | [`local`]: in-memory or encrypted keystore file       | available      |
//! | `aws`    | no      | AWS KMS (`aws-kms://?region=…`), `aws` module        | available      |
//! | `azure`  | no      | Azure Key Vault and Managed HSM (`azure-keyvault://HOST?…`), `azure` module | available |
//! | `gcp`    | no      | Google Cloud KMS (`gcp-kms://projects/P/locations/L/keyRings/R`), `gcp` module | available |
//! | `pkcs11` | no      | PKCS#11 HSMs (`pkcs11:token=…?module-path=…`), `pkcs11` module | available |
//! | `full`   | no      | all of the above                                     |                |
//!
//! Features are additive. A URL or TOML file naming a backend this build leaves out is a
//! [`Error::Config`] naming the feature to enable.
//!
//! ## Data of any size
//!
//! [`envelope`] (the `hsm-envelope` crate) encrypts data of any size locally under a fresh
//! data key that a provider key protects: format 2 is key-committing, binds an encryption
//! context, streams in constant memory on every core, and opens byte ranges
//! ([`Client::encrypt_envelope`], [`envelope::Sealer`], [`envelope::Opener`]).
//!
//! ## Configuration
//!
//! [`Config`] selects a provider from a URL, a TOML file or the environment. Each provider
//! crate parses its own URL and TOML table; [`registry`] maps a URL scheme or
//! `provider = "…"` to it.
//!
//! ## Your own provider
//!
//! Implement [`Provider`] and hand it to [`Client::from_provider`]; run the
//! `hsm-conformance` kit against it. To configure it like the built-in providers (a URL, a
//! TOML table, `HSM_PROVIDER`, envelope recipients, your own build of the `hsm` CLI with
//! `hsm_cli::main`), implement [`registry::Scheme`] and [`registry::ProviderSettings`] and
//! call [`register_scheme`] at start-up: see [`registry`].

pub use hsm_core::*;

/// The AWS KMS provider (feature `aws`).
#[cfg(feature = "aws")]
pub use hsm_aws as aws;
/// The Azure Key Vault and Managed HSM provider (feature `azure`).
#[cfg(feature = "azure")]
pub use hsm_azure as azure;
/// The Google Cloud KMS provider (feature `gcp`).
#[cfg(feature = "gcp")]
pub use hsm_gcp as gcp;
/// The embedded local provider ([`local::LocalProvider`]): in-memory, or an encrypted
/// keystore file.
#[cfg(feature = "local")]
pub use hsm_local as local;
/// The PKCS#11 provider (feature `pkcs11`).
#[cfg(feature = "pkcs11")]
pub use hsm_pkcs11 as pkcs11;

/// Envelope encryption: data of any size under a fresh data key that a provider key
/// protects (the `hsm-envelope` crate).
pub use hsm_envelope as envelope;
/// Provider keys behind the ecosystem's traits: RustCrypto signers, JOSE/JWT (feature `signers`).
#[cfg(feature = "signers")]
pub use hsm_signers as signers;

mod builtin;
mod client;
mod config;
mod keyring;
pub mod layers;
pub mod registry;

pub use client::Client;
pub use config::{Config, ENV_CONFIG, ENV_PASSPHRASE, ENV_PROVIDER};
pub use keyring::{EnvelopeConfig, RecipientConfig};
pub use registry::{Registry, register_scheme};

/// The README's Rust examples, compiled as doc tests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
