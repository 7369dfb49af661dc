//! # hsm-pkcs11 — hardware security modules through PKCS#11
//!
//! [`Pkcs11Provider`] implements [`hsm_core::Provider`] over any PKCS#11 token (SoftHSM2,
//! AWS CloudHSM, Thales Luna, YubiHSM 2, …) through the token's module, with
//! [`cryptoki`]. Keys are generated on the token, created sensitive and non-extractable,
//! and never leave it; only public keys are read.
//!
//! ## Configuration
//!
//! A [`Pkcs11Config`] names the module (`.so`), the token (by label, serial or slot id)
//! and where the user PIN comes from ([`PinSource`]: a value, an environment variable or
//! a file). The PIN is held in a zeroized buffer and never printed by `Debug`. The same
//! settings as an RFC 7512 URI, accepted by [`Pkcs11Config::from_uri`], by `hsm::Config`,
//! the `hsm` CLI and `HSM_PROVIDER`:
//!
//! ```text
//! pkcs11:token=NAME?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/path/to/pin
//! pkcs11:serial=9a1b…?module-path=…&pin-env=HSM_PIN
//! pkcs11:slot-id=3?module-path=…&pin-value=1234          (tests only: the PIN is in the URI)
//! ```
//!
//! ```no_run
//! # fn main() -> hsm_core::Result<()> {
//! use hsm_pkcs11::{Pkcs11Config, Pkcs11Provider};
//! let cfg = Pkcs11Config::from_uri(
//!     "pkcs11:token=app?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-env=HSM_PIN",
//! )?;
//! let hsm = Pkcs11Provider::connect(&cfg)?; // blocking: loads the module, logs in
//! # let _ = hsm; Ok(()) }
//! ```
//!
//! `connect` logs in once; a wrong PIN is `Unauthenticated` and is never retried (a real
//! HSM locks the PIN after a few failures). A module path that does not exist or is not a
//! PKCS#11 library, or a token selector matching no token or several, is `Config`.
//!
//! ## Objects on the token
//!
//! | object | class | `CKA_LABEL` | `CKA_ID` | other attributes |
//! |---|---|---|---|---|
//! | AES key, version *v* | `CKO_SECRET_KEY`, `CKK_AES` | name | `<name>#<v>` | sensitive, not extractable; encrypt+decrypt **or** wrap+unwrap |
//! | HMAC key | `CKO_SECRET_KEY`, `CKK_GENERIC_SECRET` | name | `<name>#<v>` | sensitive, not extractable; sign+verify |
//! | RSA/EC/Ed25519 key pair | `CKO_PRIVATE_KEY` + `CKO_PUBLIC_KEY` | name | `<name>#<v>` | private half sensitive, not extractable |
//! | metadata | `CKO_DATA`, `CKA_APPLICATION` = `hsm` | name | — | `CKA_VALUE` = JSON below |
//!
//! The metadata object is private (visible only after login) and holds, as JSON:
//! `{"format":1,"seq":3,"spec":"aes-256","usage":"encrypt","state":"enabled",
//! "description":"…","tags":{…},"created":<unix s>,"deletion":<unix s>|null,
//! "versions":[1,2],"current":2}`. PKCS#11 makes `CKA_VALUE` read-only after creation, so
//! every change writes a new object with a higher `seq` and then destroys the old one
//! (readers that briefly see two take the higher `seq`). Other tools see an ordinary data
//! object with application `hsm`; objects without valid metadata are ignored by
//! `list_keys`.
//!
//! - **Names** are unique per token: PKCS#11 does not enforce it, so `create_key` checks
//!   the metadata (and serializes creations within the process). Two processes creating
//!   the same name at the same instant are not detected.
//! - **Rotation** generates a new key object with the next version in `CKA_ID` and keeps
//!   the old ones: decrypt, verify and unwrap use the version recorded in the blob.
//! - **State**: PKCS#11 has no disabled keys; the state lives in the metadata and every
//!   operation checks it before touching the key.
//! - **Deletion** is immediate (`Some(Duration::ZERO)`) or scheduled up to 365 days ahead
//!   (30 by default) and cancellable; the date is in the metadata and the key objects are
//!   destroyed on the first access after it.
//!
//! ## Algorithms
//!
//! Capabilities are the token's `C_GetMechanismList` (read once at connect) intersected
//! with this table. What SoftHSM 2.6 supports is marked.
//!
//! | spec | usage | algorithms | mechanism | SoftHSM 2.6 |
//! |---|---|---|---|---|
//! | `aes-128/192/256` | encrypt | AES-GCM: 12-byte IV from `C_GenerateRandom`, 128-bit tag; payload `iv ‖ ct ‖ tag` | `CKM_AES_GCM` | yes |
//! | `aes-128/192/256` | wrap | AES Key Wrap (RFC 3394): payload = token output | `CKM_AES_KEY_WRAP` | yes |
//! | `aes-128/192/256` | wrap | AES Key Wrap with Padding: payload = 1 byte of padding count ‖ token output (SoftHSM zero-pads the material to a multiple of 8 before RFC 5649 wrapping, so the true length is recorded) | `CKM_AES_KEY_WRAP_PAD` | yes |
//! | `rsa-2048/3072/4096` | encrypt | RSA-OAEP SHA-1 (empty label), PKCS#1 v1.5 | `CKM_RSA_PKCS_OAEP`, `CKM_RSA_PKCS` | yes; OAEP SHA-256 refused by SoftHSM, so not declared |
//! | `rsa-2048/3072/4096` | sign | PKCS#1 v1.5 and PSS (salt = hash length) with SHA-256/384/512, messages and digests (hashed on the client) | `CKM_RSA_PKCS`, `CKM_RSA_PKCS_PSS` | yes |
//! | `ec-p256/p384/p521` | sign | ECDSA with the curve's hash, hashed on the client; DER signatures | `CKM_ECDSA` | yes |
//! | `ed25519` | sign | Ed25519 (messages) | `CKM_EDDSA` | yes |
//! | `hmac-sha256/384/512` | mac | HMAC; verification inside the token | `CKM_SHA*_HMAC` | yes |
//!
//! Not offered: RSA wrapping (RSA-OAEP-SHA-256 is the only RSA wrap algorithm in hsm's
//! vocabulary), AES-GCM wrapping, `ec-secp256k1`. Public keys are exported as
//! SubjectPublicKeyInfo built from `CKA_MODULUS`/`CKA_PUBLIC_EXPONENT` or `CKA_EC_POINT`.
//!
//! ## Concurrency
//!
//! `Session` is not `Sync`: the provider keeps a pool of logged-in read-write sessions and
//! runs every call on Tokio's blocking pool (`spawn_blocking`), so RSA key generation
//! (seconds) never stalls the executor. A session whose call failed is closed rather than
//! reused (an unfinished operation poisons it). When the token logs us out
//! (`CKR_USER_NOT_LOGGED_IN`) the provider logs in again once and retries. Key handles are
//! looked up by `CKA_ID` on every call, so handles that change after a re-login, and keys
//! deleted by another process (`NotFound`), are handled. The module is initialized once
//! per process and finalized (`C_Finalize`) when the last provider using it is dropped.
//!
//! ## Errors
//!
//! `CKR_*` codes are mapped in one function (see the table on `error::ck` in the source):
//! PIN problems → `Unauthenticated`; invalid handles → `NotFound`; unknown mechanisms →
//! `Unsupported`; bad arguments → `InvalidInput`; forbidden key functions →
//! `PermissionDenied`; device and session failures → `Unavailable` (retryable); anything
//! else → `Provider` with the `CKR_` name and the call. Decryption and unwrapping failures
//! are the opaque `DecryptionFailed`. Bad requests are rejected by `hsm_core::check` with the
//! same errors as every other provider, before the token is touched.
//!
//! ## Security notes
//!
//! - Give the PIN through a file (mode 0600) or the environment, not the URI, outside tests.
//! - Key material never leaves the token; `wrap_key` places the caller's bytes in a
//!   short-lived session object (not on the token) to wrap them, and destroys it after.
//! - Plaintexts, digests and messages are copied into zeroized buffers for the blocking
//!   call; errors and `Debug` output never contain them.

mod capabilities;
mod config;
mod der;
mod error;
mod foreign;
mod meta;
mod provider;
mod session;
pub mod softhsm;

pub use config::{PinSource, Pkcs11Config, TokenSelector};
pub use provider::Pkcs11Provider;

/// The provider name, as [`hsm_core::Provider::name`] returns it.
pub const PROVIDER: &str = "pkcs11";
