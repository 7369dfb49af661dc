//! # hsm-pkcs11 — hardware security modules through PKCS#11
//!
//! [`Pkcs11Provider`] implements [`hsm_core::Provider`] over any PKCS#11 token (SoftHSM2,
//! AWS CloudHSM, Thales Luna, YubiHSM 2, …) through the token's module, with
//! [`cryptoki`]. Keys are generated on the token, created sensitive and non-extractable
//! (extractable only through [`Pkcs11Provider::create_extractable_key`]), and never leave
//! it in the clear; only public keys are read.
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
//! pkcs11:token=NAME?module-path=…                          (PIN from HSM_PKCS11_PIN)
//! ```
//!
//! With no PIN attribute the PIN comes from [`PIN_ENV`] (`HSM_PKCS11_PIN`); when that is
//! unset, `connect` fails with a `Config` error naming every way to give it, and the `hsm`
//! CLI prompts for it (without echo) when its standard input is a terminal. `hsm::Config`
//! also reads a `[pkcs11]` TOML table (`module`, `token`/`serial`/`slot`,
//! `pin_file`/`pin_env`).
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
//! (readers that briefly see two take the higher `seq`). `"extractable":true` is added for
//! keys made with [`Pkcs11Provider::create_extractable_key`]. Other tools see an ordinary
//! private data object with application `hsm` (`pkcs11-tool --list-objects` lists it as
//! `Data object` with `application: 'hsm'`, without its value); data objects without
//! valid metadata are ignored.
//!
//! hsm's keys work in other PKCS#11 applications: select them by `CKA_ID`, e.g.
//! `pkcs11-tool --sign --id $(printf 'name#1' | xxd -p) -m ECDSA` (ECDSA signatures are
//! over a digest, and `--signature-format openssl` gives the DER that hsm verifies), or
//! `pkcs11-tool --decrypt --id … -m RSA-PKCS-OAEP --hash-algorithm SHA-1 --mgf MGF1-SHA1`
//! on an hsm RSA-OAEP ciphertext (`Ciphertext::as_bytes` is the token's output).
//!
//! ## Keys made by other tools
//!
//! Private and secret key objects without hsm metadata (made by `pkcs11-tool
//! --keypairgen`/`--keygen`, a vendor tool, an import) are listed by `list_keys` and
//! usable, with these defaults:
//!
//! | property | value |
//! |---|---|
//! | name | `CKA_LABEL` when it is a valid key name, else `id-<hex CKA_ID>`; objects with neither are not listed |
//! | versions | each distinct `CKA_ID` under that name, as lower-case hex (`0b0c`); `0` for an empty `CKA_ID`; the current version is the last in hex order |
//! | spec | from `CKA_KEY_TYPE` and the size: AES 16/24/32 bytes, generic secrets (and `CKK_SHA*_HMAC`) of 32/48/64 bytes as `hmac-sha256/384/512`, RSA 2048/3072/4096 bits, EC on P-256/384/521/secp256k1, Ed25519; other keys are not listed |
//! | usage | the spec's default if the object permits it (`CKA_SIGN`, `CKA_ENCRYPT`/`DECRYPT`, `CKA_WRAP`/`UNWRAP`), else the first it permits; operations of **any** usage the object permits are allowed (SoftHSM defaults them all to true, whatever `pkcs11-tool --usage-*` says) |
//! | state, description, tags | enabled, empty, none |
//! | created | the Unix epoch (PKCS#11 records no creation time) |
//! | `native_id` | `pkcs11:token=…;object=<label>;id=<%-encoded CKA_ID>` |
//!
//! A key hsm created takes precedence over another tool's key with the same label, and
//! `create_key` refuses a name another tool's key already has. hsm does not manage these
//! keys: rotation, state changes and scheduled deletion are `InvalidInput`; deletion with
//! a window of zero destroys their private, public and secret key objects. Objects whose
//! `CKA_ID` is `<label>#<digits>` are hsm's own and never listed as foreign.
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
//! | `rsa-2048/3072/4096` | encrypt | RSA-OAEP SHA-1 (empty label), PKCS#1 v1.5; RSA-OAEP SHA-256 when the probe finds it | `CKM_RSA_PKCS_OAEP`, `CKM_RSA_PKCS` | yes; OAEP SHA-256 refused by SoftHSM 2.6 (`CKR_ARGUMENTS_BAD`), so not declared |
//! | `rsa-2048/3072/4096` | sign | PKCS#1 v1.5 and PSS (salt = hash length) with SHA-256/384/512, messages and digests (hashed on the client) | `CKM_RSA_PKCS`, `CKM_RSA_PKCS_PSS` | yes |
//! | `ec-p256/p384/p521` | sign | ECDSA with the curve's hash, hashed on the client; DER signatures | `CKM_ECDSA` | yes |
//! | `ec-secp256k1` | sign | ECDSA SHA-256, as above, when the probe finds the curve | `CKM_ECDSA` | yes (OpenSSL backend) |
//! | `ed25519` | sign | Ed25519 (messages) | `CKM_EDDSA` | yes |
//! | `hmac-sha256/384/512` | mac | HMAC; verification inside the token | `CKM_SHA*_HMAC` | yes |
//!
//! The mechanism list does not tell which OAEP hashes or which curves a token takes, so
//! `connect` probes two things with session objects destroyed at once (nothing is written
//! to the token): one `C_Encrypt` with OAEP SHA-256 under a public key object made from a
//! fixed modulus (microseconds), and a secp256k1 session key pair (about a millisecond).
//!
//! AES Key Wrap outputs are RFC 3394's byte for byte (tested against the RFC's vectors and
//! OpenSSL). With padding, SoftHSM 2.6's output is RFC 5649 of the material zero-padded to
//! a multiple of 8, which equals RFC 5649 exactly for material whose length is a multiple
//! of 8; to unwrap another implementation's RFC 5649 blob, prefix it with a 0 byte. A token
//! that implements RFC 5649 exactly unwraps to the true length, which is kept.
//!
//! Not offered: RSA wrapping (RSA-OAEP-SHA-256 is the only RSA wrap algorithm in hsm's
//! vocabulary), AES-GCM wrapping. Public keys are exported as SubjectPublicKeyInfo built
//! from `CKA_MODULUS`/`CKA_PUBLIC_EXPONENT` or `CKA_EC_POINT`.
//!
//! ## Concurrency
//!
//! `Session` is not `Sync`: the provider keeps a pool of logged-in read-write sessions and
//! runs every call on Tokio's blocking pool (`spawn_blocking`), so RSA key generation
//! (seconds) never stalls the executor. A session whose call failed is closed rather than
//! reused (an unfinished operation poisons it). When the token logs us out (another
//! application's `C_Logout`, a token reset), private objects become invisible rather
//! than errors, so each call first checks its session's state (`C_GetSessionInfo`) and
//! logs in again; a call failing with `CKR_USER_NOT_LOGGED_IN` is retried once after a
//! re-login. If the token refuses the PIN at a re-login (it was changed meanwhile), the
//! PIN is never tried again: every later call fails with `Unauthenticated` until the
//! application reconnects, so a real HSM's PIN cannot be locked by retries. Key handles are
//! looked up by `CKA_ID` on every call, so handles that change after a re-login, and keys
//! deleted by another process (`NotFound`), are handled. The module is initialized once
//! per process and finalized (`C_Finalize`) when the last provider using it is dropped.
//! `C_Finalize` ends every session any code in the process has on that module: if the
//! application also uses the module directly (its own cryptoki context), keep one
//! provider alive for as long as that code runs.
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

pub use config::{PIN_ENV, PinSource, Pkcs11Config, TokenSelector};
pub use provider::Pkcs11Provider;

/// The provider name, as [`hsm_core::Provider::name`] returns it.
pub const PROVIDER: &str = "pkcs11";
