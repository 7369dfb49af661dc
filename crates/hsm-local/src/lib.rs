//! # hsm-local — the embedded reference provider
//!
//! [`LocalProvider`] implements [`hsm_core::Provider`] entirely in software, with
//! [AWS-LC](https://github.com/aws/aws-lc) (through `aws-lc-rs`) for every cryptographic
//! operation. It needs no cloud account and no hardware, so it is the default provider of the
//! `hsm` CLI, the provider examples and tests run against, and the reference every other
//! backend is compared with: it supports every key spec and algorithm in hsm's vocabulary and
//! passes the whole `hsm-conformance` suite.
//!
//! | key spec | usages | algorithms |
//! |---|---|---|
//! | `aes-128`, `aes-192`, `aes-256` | encrypt, wrap | AES-GCM (random 96-bit nonce, AAD); AES Key Wrap (RFC 3394), with padding (RFC 5649), AES-GCM wrap |
//! | `rsa-2048`, `rsa-3072`, `rsa-4096` | encrypt, sign, wrap | RSA-OAEP SHA-1 and SHA-256, PKCS#1 v1.5 encryption; PKCS#1 v1.5 and PSS (salt = digest length) signatures with SHA-256/384/512; RSA-OAEP-SHA-256 wrap |
//! | `ec-p256`, `ec-p384`, `ec-p521`, `ec-secp256k1` | sign | ECDSA with the curve's hash (SHA-256, SHA-384, SHA-512, SHA-256), DER signatures |
//! | `ed25519` | sign | Ed25519 (messages only) |
//! | `hmac-sha256`, `hmac-sha384`, `hmac-sha512` | mac | HMAC, constant-time verification |
//!
//! Every spec rotates: versions are `"1"`, `"2"`, …, and every old version keeps decrypting,
//! verifying and unwrapping the blobs that record it. RSA and ECDSA also sign caller-computed
//! digests. Deletion can be immediate (`Some(Duration::ZERO)`) or scheduled up to 365 days
//! ahead (30 by default), and cancelled until then; a key whose date has passed is gone.
//!
//! ## Two stores
//!
//! - **In memory** — [`LocalProvider::in_memory`]: nothing touches the disk; keys vanish with
//!   the provider. For tests and short-lived processes.
//! - **Keystore file** — [`LocalProvider::open`]: one file, encrypted at rest, rewritten
//!   atomically on every change before the call returns. With a passphrase, the file key is
//!   derived with Argon2id; without one, a random 256-bit master key is kept beside it in
//!   `<path>.key` (mode 0600). Several processes may share one keystore: each change happens
//!   under an exclusive advisory lock on `<path>.lock`, after re-reading the file, so no
//!   process overwrites another's keys; reads notice a file replaced by another process.
//!
//! ## Keystore file format (version 1)
//!
//! Integers are big-endian. The 68-byte header is plaintext and is authenticated as the
//! AES-GCM additional data, so it cannot be altered without detection.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0  | 8  | magic `48 53 4d 4c 4b 53 00 01` (`"HSMLKS\0\x01"`) |
//! | 8  | 2  | format version, `00 01` |
//! | 10 | 1  | key source: `01` passphrase, `02` master key file `<path>.key` |
//! | 11 | 1  | KDF: `01` Argon2id v1.3 (passphrase), `00` none (key file) |
//! | 12 | 4  | Argon2id memory in KiB (19456 for new keystores; 0 without KDF) |
//! | 16 | 4  | Argon2id passes (2) |
//! | 20 | 4  | Argon2id lanes (1) |
//! | 24 | 16 | Argon2id salt, random per keystore (zero without KDF) |
//! | 40 | 16 | key check value: HMAC-SHA-256(file key, `"hsm-local keystore key check v1"`), first 16 bytes |
//! | 56 | 12 | AES-GCM nonce, fresh and random on every write |
//! | 68 | n  | AES-256-GCM ciphertext of the key store (JSON: every key, version, metadata and its material) |
//! | 68 + n | 16 | AES-GCM tag |
//!
//! The key check value tells a wrong passphrase (or the wrong key file) apart from a damaged
//! file without weakening anything: the GCM tag already lets a guess be checked offline. A
//! wrong passphrase gives `Error::Unauthenticated` naming the keystore; a truncated, corrupt
//! or foreign file gives `Error::Config`, and is never written to.
//!
//! ## Security properties
//!
//! - Private keys are stored as PKCS#8 DER, secret keys as raw bytes, in zeroizing buffers;
//!   the serialized store is built in a buffer allocated once at its exact size and zeroized
//!   after encryption; the decrypted file is zeroized after parsing; the derived file key is
//!   held zeroized for the provider's lifetime (it is derived once, at open).
//! - No key material appears in any `Debug` output or error message; serialization errors
//!   report only a category and position.
//! - The keystore, its key file and its lock file are created with mode 0600 (directories
//!   that `open` creates with 0700); the temporary file of an atomic write is 0600 from birth.
//! - Writes are atomic: temporary file in the same directory, `fsync`, `rename` over the
//!   keystore, `fsync` of the directory. A crash leaves either the old or the new keystore.
//! - Decryption and unwrapping failures are the opaque `Error::DecryptionFailed` (no padding
//!   or tag oracle); a signature that does not verify is `Ok(false)`.
//! - Nonces for AES-GCM (data and keystore) come from AWS-LC's DRBG. Argon2id parameters in a
//!   header are bounded before use, so a crafted file cannot make `open` exhaust memory.
//! - This is a software keystore: key material lives in process memory while in use. Use a
//!   cloud KMS or an HSM when keys must never leave hardware.
//!
//! RSA key generation and all file I/O run on Tokio's blocking pool (`spawn_blocking`) when a
//! Tokio runtime is present; [`LocalProvider::open`] itself is synchronous.
//!
//! ## Example
//!
//! ```
//! use hsm_core::{CreateKey, EncryptionAlgorithm, KeySpec, Provider};
//! use hsm_local::LocalProvider;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> hsm_core::Result<()> {
//! let local = LocalProvider::in_memory();
//! let key = local.create_key(CreateKey::new("invoices", KeySpec::Aes256)).await?;
//!
//! let ct = local.encrypt(&(&key).into(), EncryptionAlgorithm::AesGcm, b"total: 42 EUR", Some(b"invoice-7")).await?;
//! let pt = local.decrypt(&ct.key_ref(), &ct, Some(b"invoice-7")).await?;
//! assert_eq!(&pt[..], b"total: 42 EUR");
//!
//! // The wrong AAD is an opaque failure.
//! assert!(local.decrypt(&ct.key_ref(), &ct, Some(b"invoice-8")).await.is_err());
//! # Ok(()) }
//! ```
//!
//! A keystore file works the same way:
//!
//! ```no_run
//! use hsm_core::Zeroizing;
//! # fn main() -> hsm_core::Result<()> {
//! let store = hsm_local::LocalProvider::open(
//!     "/var/lib/myapp/keys.hsm",
//!     Some(Zeroizing::new(std::env::var("KEYSTORE_PASSPHRASE").unwrap_or_default())),
//! )?;
//! # let _ = store; Ok(()) }
//! ```

mod capabilities;
mod config;
mod keystore;
mod material;
/// The primitives, from [`hsm_crypto`] (kept under this path for the Wycheproof tests and
/// existing users).
#[doc(hidden)]
pub use hsm_crypto as primitives;
mod provider;
mod state;

pub use config::{LocalConfig, PASSPHRASE_ENV};
pub use provider::LocalProvider;

/// The provider name in errors and [`hsm_core::Provider::name`].
pub(crate) const PROVIDER: &str = "local";
