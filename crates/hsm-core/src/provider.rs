//! The [`Provider`] trait: one async interface over every key-management backend.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::blob::{Ciphertext, MacTag, Signature, WrappedKey};
use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::key::{CreateKey, Deletion, KeyInfo, KeyPage, KeyRef, ListKeys, PublicKey};
use crate::vocab::{EncryptionAlgorithm, KeyState, MacAlgorithm, SignatureAlgorithm, WrapAlgorithm};

/// What [`Provider::sign`] and [`Provider::verify`] work on.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignInput<'a> {
    /// The message itself; the provider hashes it as the algorithm requires.
    Message(&'a [u8]),
    /// A digest the caller computed with the algorithm's hash
    /// ([`SignatureAlgorithm::digest`]). Not valid for Ed25519.
    Digest(&'a [u8]),
}

impl<'a> SignInput<'a> {
    /// The bytes, whichever kind they are.
    pub fn bytes(&self) -> &'a [u8] {
        match self {
            SignInput::Message(b) | SignInput::Digest(b) => b,
        }
    }

    /// True for [`SignInput::Digest`].
    pub fn is_digest(&self) -> bool {
        matches!(self, SignInput::Digest(_))
    }
}

impl fmt::Debug for SignInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignInput::Message(m) => write!(f, "Message({} bytes)", m.len()),
            SignInput::Digest(d) => write!(f, "Digest({} bytes)", d.len()),
        }
    }
}

/// A key-management backend.
///
/// Every method is required: a provider that cannot do something returns
/// [`Error::Unsupported`](crate::Error::Unsupported) and does not declare it in
/// [`capabilities`](Provider::capabilities). Conveniences live on
/// [`ProviderExt`](crate::ProviderExt), which every provider gets for free.
///
/// Hold providers as `Arc<dyn Provider>`; the trait is object safe and its futures are `Send`.
///
/// # Errors
/// Every method returns [`Error`](crate::Error); the variants each method may return are
/// listed on the method. All methods may also return the transport variants
/// (`Unauthenticated`, `PermissionDenied`, `Throttled`, `Timeout`, `Unavailable`, `Provider`).
#[async_trait]
pub trait Provider: fmt::Debug + Send + Sync + 'static {
    /// A short stable name: `"local"`, `"aws-kms"`, `"azure-keyvault"`, `"gcp-kms"`, `"pkcs11"`.
    fn name(&self) -> &'static str;

    /// What this provider supports. Pure data, no I/O.
    fn capabilities(&self) -> &Capabilities;

    /// Creates a key.
    ///
    /// # Errors
    /// `AlreadyExists` for a taken name, `InvalidInput` for a bad request,
    /// `Unsupported` for an undeclared spec or usage.
    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo>;

    /// Metadata of a key. A pinned version in `key` must exist.
    ///
    /// # Errors
    /// `NotFound`.
    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo>;

    /// One page of keys matching `req`'s filters, in name order.
    ///
    /// # Errors
    /// `InvalidInput` for a page token this provider did not issue.
    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage>;

    /// Makes a new current version; older versions keep working for decrypt, verify and unwrap.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable` for a key pending deletion, `Unsupported` where the spec
    /// does not rotate.
    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo>;

    /// Enables or disables a key. `state` must be `Enabled` or `Disabled`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` for `PendingDeletion` (use
    /// [`schedule_deletion`](Provider::schedule_deletion)), `KeyUnusable` for a key pending deletion.
    async fn set_key_state(&self, key: &KeyRef, state: KeyState) -> Result<KeyInfo>;

    /// Schedules deletion after `after` (or the provider's default window).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` for a window outside the provider's
    /// [`DeletionPolicy`](crate::DeletionPolicy).
    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion>;

    /// Cancels a scheduled deletion; the key comes back disabled, as on AWS KMS.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` when no deletion is scheduled.
    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo>;

    /// The public key of an asymmetric key (the pinned or current version).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` for a symmetric key.
    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey>;

    /// Encrypts `plaintext`, authenticating `aad` where the algorithm supports it.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable`, `InvalidInput` (algorithm does not fit the key, plaintext
    /// too long, AAD with an algorithm that has none), `Unsupported`.
    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext>;

    /// Decrypts with the key version recorded in `ciphertext`.
    ///
    /// # Errors
    /// `DecryptionFailed` (opaque) for a tampered ciphertext or wrong AAD; `InvalidInput`
    /// when `ciphertext` names another key; `NotFound`, `KeyUnusable`.
    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>>;

    /// Signs a message or a digest.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable`, `InvalidInput` (algorithm does not fit, digest of the
    /// wrong length), `Unsupported`.
    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature>;

    /// Verifies `signature` over a message or digest. Returns `Ok(false)` for a signature
    /// that does not verify; errors are for requests that cannot be evaluated.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable`, `InvalidInput` (e.g. a signature of impossible length).
    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool>;

    /// Wraps (encrypts) key material under a wrapping key.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable`, `InvalidInput` (material of a length the algorithm cannot
    /// wrap), `Unsupported`.
    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey>;

    /// Unwraps with the key version recorded in `wrapped`.
    ///
    /// # Errors
    /// `DecryptionFailed` (opaque), `InvalidInput` when `wrapped` names another key,
    /// `NotFound`, `KeyUnusable`.
    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>>;

    /// Computes a MAC over `message`.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable`, `InvalidInput`, `Unsupported`.
    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag>;

    /// Checks a MAC in constant time. `Ok(false)` when it does not match.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable`, `InvalidInput`, `Unsupported`.
    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool>;
}
