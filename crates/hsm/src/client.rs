//! [`Client`]: the Rust face of the original `CloudHSMClient`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, EncryptionAlgorithm, Error, KeyInfo, KeyRef, KeySpec,
    KeyState, ListKeys, MacTag, Provider, ProviderExt, PublicKey, Result, SignInput, Signature,
    SignatureAlgorithm, WrapAlgorithm, WrappedKey, Zeroizing,
};

use crate::Config;

const SECONDS_PER_DAY: u64 = 86_400;
const MAC_HINT: &str = "is not an HMAC key (MACs need an hmac-* key)";

/// A key-management client over any [`Provider`]: the operations of the original
/// `CloudHSMClient`, named as there, with typed results and errors instead of `None`.
///
/// Keys are named by anything that converts into a [`KeyRef`]: a `&str` name, a
/// `String`, a [`&KeyInfo`](KeyInfo), or a `KeyRef` pinned to a version
/// (`KeyRef::new("k").with_version("1")`). Cloning is cheap; share one client across tasks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hsm::Result<()> {
/// use hsm::{Client, Config, CreateKey, KeySpec};
/// let hsm = Client::connect(Config::memory()).await?;
/// let key = hsm.create_key(CreateKey::new("my-encryption-key", KeySpec::Aes256)).await?;
/// let ct = hsm.encrypt(&key, b"Sensitive data", None).await?;
/// assert_eq!(&hsm.decrypt(&ct).await?[..], b"Sensitive data");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    provider: Arc<dyn Provider>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("provider", &self.provider.name()).finish()
    }
}

impl Client {
    /// Opens the provider `config` selects.
    ///
    /// # Errors
    /// As [`Config::open`]: [`Error::Config`] for a configuration that cannot be opened,
    /// [`Error::Unauthenticated`] for a wrong keystore passphrase.
    pub async fn connect(config: Config) -> Result<Self> {
        Ok(Client { provider: config.open().await? })
    }

    /// A client over a provider you built yourself.
    pub fn from_provider(provider: Arc<dyn Provider>) -> Self {
        Client { provider }
    }

    /// The provider, for operations the client does not wrap (digest signing, paging).
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// What the provider supports.
    pub fn capabilities(&self) -> &Capabilities {
        self.provider.capabilities()
    }

    /// Creates a key (the original `create_key(key_type=..., key_size=..., key_id=...,
    /// description=..., tags=...)`; see [`KeySpec::from_type_and_size`](crate::KeySpec::from_type_and_size)
    /// for the type/size pairs).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] for a taken name, [`Error::InvalidInput`] for a bad name,
    /// usage, description or tag, [`Error::Unsupported`] for a spec the provider lacks.
    pub async fn create_key(&self, request: CreateKey) -> Result<KeyInfo> {
        self.provider.create_key(request).await
    }

    /// Metadata of a key.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn get_key(&self, key: impl Into<KeyRef>) -> Result<KeyInfo> {
        self.provider.get_key(&key.into()).await
    }

    /// Every key, following pages to the end.
    ///
    /// # Errors
    /// Transport errors of the provider.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        self.provider.list_all(ListKeys::new()).await
    }

    /// Every key for which `filter` returns true: the original
    /// `list_keys(filter_func=lambda k: ...)`.
    ///
    /// ```
    /// # async fn demo(hsm: &hsm::Client) -> hsm::Result<()> {
    /// let production = hsm
    ///     .list_keys_where(|k| k.tags.get("environment").is_some_and(|v| v == "production"))
    ///     .await?;
    /// # let _ = production; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Transport errors of the provider.
    pub async fn list_keys_where<F>(&self, filter: F) -> Result<Vec<KeyInfo>>
    where
        F: Fn(&KeyInfo) -> bool + Send,
    {
        self.provider.list_keys_where(ListKeys::new(), filter).await
    }

    /// Every key matching `request`'s filters (name prefix, tags, spec), which the
    /// provider applies itself.
    ///
    /// # Errors
    /// Transport errors of the provider.
    pub async fn list_keys_matching(&self, request: ListKeys) -> Result<Vec<KeyInfo>> {
        self.provider.list_all(request).await
    }

    /// Makes a new current version of a key and returns its metadata (the new version is
    /// [`KeyInfo::version`]). Data encrypted or signed under older versions stays usable.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`] for a key pending deletion,
    /// [`Error::Unsupported`] where the spec does not rotate.
    pub async fn rotate_key(&self, key: impl Into<KeyRef>) -> Result<KeyInfo> {
        self.provider.rotate_key(&key.into()).await
    }

    /// Enables a disabled key.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`] for a key pending deletion (cancel the
    /// deletion first).
    pub async fn enable_key(&self, key: impl Into<KeyRef>) -> Result<KeyInfo> {
        self.provider.set_key_state(&key.into(), KeyState::Enabled).await
    }

    /// Disables a key: it refuses every cryptographic operation until enabled again.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`] for a key pending deletion.
    pub async fn disable_key(&self, key: impl Into<KeyRef>) -> Result<KeyInfo> {
        self.provider.set_key_state(&key.into(), KeyState::Disabled).await
    }

    /// Schedules a key's deletion after `days` days (`None`: the provider's default
    /// window; `Some(0)`: now, where the provider allows it).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidInput`] for a window outside the provider's
    /// [`DeletionPolicy`](crate::DeletionPolicy).
    pub async fn schedule_key_deletion(&self, key: impl Into<KeyRef>, days: Option<u32>) -> Result<Deletion> {
        let after = days.map(|d| Duration::from_secs(u64::from(d) * SECONDS_PER_DAY));
        self.provider.schedule_deletion(&key.into(), after).await
    }

    /// Cancels a scheduled deletion; the key comes back disabled.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidInput`] when no deletion is scheduled.
    pub async fn cancel_key_deletion(&self, key: impl Into<KeyRef>) -> Result<KeyInfo> {
        self.provider.cancel_deletion(&key.into()).await
    }

    /// The public key of an asymmetric key; [`PublicKey::to_pem`] gives PEM.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidInput`] for a symmetric key.
    pub async fn public_key(&self, key: impl Into<KeyRef>) -> Result<PublicKey> {
        self.provider.public_key(&key.into()).await
    }

    /// Encrypts `plaintext` with `algorithm`, or with the key's natural algorithm
    /// (AES-GCM for AES, RSA-OAEP-SHA-256 for RSA) when `None`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`] (disabled, pending deletion, not an
    /// encryption key), [`Error::InvalidInput`] (algorithm does not fit the key, plaintext
    /// too long for RSA), [`Error::Unsupported`].
    pub async fn encrypt(
        &self,
        key: impl Into<KeyRef>,
        plaintext: &[u8],
        algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<Ciphertext> {
        self.encrypt_inner(key.into(), plaintext, algorithm, None).await
    }

    /// [`encrypt`](Client::encrypt) with additional authenticated data, which
    /// [`decrypt_with_aad`](Client::decrypt_with_aad) must be given again.
    ///
    /// # Errors
    /// As [`encrypt`](Client::encrypt); [`Error::InvalidInput`] for an algorithm without
    /// AAD (RSA).
    pub async fn encrypt_with_aad(
        &self,
        key: impl Into<KeyRef>,
        plaintext: &[u8],
        algorithm: Option<EncryptionAlgorithm>,
        aad: &[u8],
    ) -> Result<Ciphertext> {
        self.encrypt_inner(key.into(), plaintext, algorithm, Some(aad)).await
    }

    async fn encrypt_inner(
        &self,
        key: KeyRef,
        plaintext: &[u8],
        algorithm: Option<EncryptionAlgorithm>,
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        match algorithm {
            Some(alg) => self.provider.encrypt(&key, alg, plaintext, aad).await,
            None => self.provider.encrypt_default(&key, plaintext, aad).await,
        }
    }

    /// Decrypts with the key and key version recorded in `ciphertext` (so data encrypted
    /// before a rotation still decrypts).
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] (opaque) for a tampered ciphertext or one that had AAD,
    /// [`Error::NotFound`], [`Error::KeyUnusable`].
    pub async fn decrypt(&self, ciphertext: &Ciphertext) -> Result<Zeroizing<Vec<u8>>> {
        self.provider.decrypt_blob(ciphertext, None).await
    }

    /// Decrypts a ciphertext made by [`encrypt_with_aad`](Client::encrypt_with_aad).
    ///
    /// # Errors
    /// As [`decrypt`](Client::decrypt); a wrong `aad` is [`Error::DecryptionFailed`].
    pub async fn decrypt_with_aad(&self, ciphertext: &Ciphertext, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.provider.decrypt_blob(ciphertext, Some(aad)).await
    }

    /// Encrypts data of any size with [envelope encryption](crate::envelope): a fresh
    /// data key, wrapped (or encrypted) by `key`, encrypts `plaintext` locally in
    /// authenticated 64 KiB segments, bound to `context` (non-secret pairs stored in the
    /// header, e.g. `tenant=acme`; [`Context::new`](crate::envelope::Context::new) for
    /// none). One provider call, whatever the size. For streams and files use
    /// [`envelope::Sealer`](crate::envelope::Sealer) with [`Client::provider`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a key whose usage is neither wrap nor encrypt or a context
    /// that is too large; the provider's errors for the data-key operation.
    pub async fn encrypt_envelope(
        &self,
        key: impl Into<KeyRef>,
        plaintext: &[u8],
        context: &crate::envelope::Context,
    ) -> Result<Vec<u8>> {
        crate::envelope::seal(&*self.provider, &key.into(), plaintext, context).await
    }

    /// Decrypts an envelope made by [`encrypt_envelope`](Client::encrypt_envelope),
    /// requiring every pair of `expected` in its context (it may have more).
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] (opaque) for a tampered or truncated envelope;
    /// [`Error::InvalidInput`] for bytes that are not an envelope or a context without an
    /// expected pair.
    pub async fn decrypt_envelope(
        &self,
        sealed: &[u8],
        expected: &crate::envelope::Context,
    ) -> Result<Zeroizing<Vec<u8>>> {
        crate::envelope::open(&*self.provider, sealed, expected).await
    }

    /// Signs `data` with `algorithm`, or the key's natural one when `None` (RSA-PSS-SHA-256
    /// for RSA, ECDSA with the curve's hash, Ed25519). [`Signature::as_bytes`] is the raw
    /// signature other tools verify.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`], [`Error::InvalidInput`] (algorithm does
    /// not fit the key), [`Error::Unsupported`].
    pub async fn sign(
        &self,
        key: impl Into<KeyRef>,
        data: &[u8],
        algorithm: Option<SignatureAlgorithm>,
    ) -> Result<Signature> {
        let key = key.into();
        match algorithm {
            Some(alg) => self.provider.sign(&key, alg, SignInput::Message(data)).await,
            None => self.provider.sign_message(&key, data).await,
        }
    }

    /// Verifies a raw `signature` over `data` (the original's argument order). `None`
    /// means the key's natural algorithm. Pin a [`KeyRef`] version to verify a signature
    /// made before a rotation, or use [`verify_signature`](Client::verify_signature).
    ///
    /// Returns `Ok(false)` for a signature that does not verify.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`], [`Error::InvalidInput`] (algorithm does
    /// not fit, signature of impossible length).
    pub async fn verify(
        &self,
        key: impl Into<KeyRef>,
        data: &[u8],
        signature: &[u8],
        algorithm: Option<SignatureAlgorithm>,
    ) -> Result<bool> {
        let key = key.into();
        let alg = match algorithm {
            Some(alg) => alg,
            None => self.natural(&key, KeySpec::default_signature_algorithm, "does not sign").await?,
        };
        self.provider.verify(&key, alg, SignInput::Message(data), signature).await
    }

    /// Verifies a [`Signature`] over `data` with the key version and algorithm it records.
    ///
    /// # Errors
    /// As [`verify`](Client::verify).
    pub async fn verify_signature(&self, signature: &Signature, data: &[u8]) -> Result<bool> {
        self.provider.verify_signature(signature, data).await
    }

    /// Wraps (encrypts) key material under a wrapping key with `algorithm`, or the key's
    /// natural one when `None` (AES Key Wrap with Padding for AES, RSA-OAEP-SHA-256 for RSA).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`] (e.g. a key without usage `wrap`),
    /// [`Error::InvalidInput`] (material of a length the algorithm cannot wrap),
    /// [`Error::Unsupported`].
    pub async fn wrap_key(
        &self,
        key: impl Into<KeyRef>,
        key_to_wrap: &[u8],
        algorithm: Option<WrapAlgorithm>,
    ) -> Result<WrappedKey> {
        let key = key.into();
        let alg = match algorithm {
            Some(alg) => alg,
            None => self.natural(&key, KeySpec::default_wrap_algorithm, "does not wrap keys").await?,
        };
        self.provider.wrap_key(&key, alg, key_to_wrap).await
    }

    /// Unwraps with the key, version and algorithm recorded in `wrapped`.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] (opaque), [`Error::NotFound`], [`Error::KeyUnusable`].
    pub async fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        self.provider.unwrap_blob(wrapped).await
    }

    /// Computes the MAC of `data` with an HMAC key (the algorithm follows from its spec).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KeyUnusable`], [`Error::InvalidInput`] for a key that
    /// is not an HMAC key.
    pub async fn mac(&self, key: impl Into<KeyRef>, data: &[u8]) -> Result<MacTag> {
        let key = key.into();
        let alg = self.natural(&key, KeySpec::default_mac_algorithm, MAC_HINT).await?;
        self.provider.mac(&key, alg, data).await
    }

    /// Checks a raw MAC `tag` over `data` in constant time; `Ok(false)` when it does not match.
    ///
    /// # Errors
    /// As [`mac`](Client::mac).
    pub async fn verify_mac(&self, key: impl Into<KeyRef>, data: &[u8], tag: &[u8]) -> Result<bool> {
        let key = key.into();
        let alg = self.natural(&key, KeySpec::default_mac_algorithm, MAC_HINT).await?;
        self.provider.verify_mac(&key, alg, data, tag).await
    }

    /// Checks a [`MacTag`] over `data` with the key version and algorithm it records.
    ///
    /// # Errors
    /// As [`verify_mac`](Client::verify_mac).
    pub async fn verify_mac_tag(&self, tag: &MacTag, data: &[u8]) -> Result<bool> {
        self.provider.verify_mac_tag(tag, data).await
    }

    /// The key's natural algorithm of one kind (`pick` is a `KeySpec::default_*`).
    async fn natural<T>(&self, key: &KeyRef, pick: fn(KeySpec) -> Option<T>, lacks: &str) -> Result<T> {
        let info = self.provider.get_key(key).await?;
        pick(info.spec).ok_or_else(|| {
            Error::invalid_input(
                self.provider.name(),
                format!("key '{}' is a {} key, which {lacks}", info.name, info.spec),
            )
        })
    }
}
