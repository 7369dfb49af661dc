//! [`LocalProvider`]: the [`Provider`] implementation over either store.

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, EncryptionAlgorithm, Error, KeyFamily, KeyInfo, KeyPage,
    KeyRef, KeySpec, KeyState, KeyUsage, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey, Result,
    SignInput, Signature, SignatureAlgorithm, UnusableReason, WrapAlgorithm, WrappedKey, Zeroizing,
    async_trait, check, paging::NamePaging, validate_key_name,
};

use crate::PROVIDER;
use crate::capabilities::{self, MAX_PAGE_SIZE};
use crate::keystore::{Keystore, Stamp};
use crate::material::{self, Parsed};
use crate::primitives::{self as prim, CryptoError};
use crate::state::{KeyRecord, Secret, State, VersionRecord};

/// The embedded reference provider: every key spec and algorithm of hsm, in software
/// (AWS-LC through aws-lc-rs), over an in-memory store or an encrypted keystore file.
///
/// Cloning is cheap and clones share the store. See the [crate docs](crate) for the
/// keystore format and security properties.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> hsm_core::Result<()> {
/// use hsm_core::{CreateKey, KeySpec, Provider, ProviderExt};
/// let local = hsm_local::LocalProvider::in_memory();
/// local.create_key(CreateKey::new("signing", KeySpec::EcP256)).await?;
/// let sig = local.sign_message(&"signing".into(), b"release v1.0").await?;
/// assert!(local.verify_signature(&sig, b"release v1.0").await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

struct Inner {
    caps: Capabilities,
    /// The keystore path as given, `None` in memory.
    path: Option<PathBuf>,
    /// `"local:"` in memory, `"<absolute keystore path>#"` for a file.
    native_prefix: String,
    keystore: Option<Keystore>,
    snapshot: RwLock<Snapshot>,
    /// Serializes this process's mutations (the file lock serializes processes).
    writer: Mutex<()>,
}

#[derive(Clone)]
struct Snapshot {
    state: Arc<State>,
    stamp: Option<Stamp>,
}

impl fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.inner.snapshot().state.keys.len();
        let mut d = f.debug_struct("LocalProvider");
        match &self.inner.path {
            Some(p) => d.field("store", &"file").field("path", p),
            None => d.field("store", &"memory"),
        };
        d.field("keys", &keys).finish()
    }
}

impl Default for LocalProvider {
    fn default() -> Self {
        Self::in_memory()
    }
}

fn internal(message: impl Into<String>) -> Error {
    Error::Provider { provider: PROVIDER, code: "internal".into(), message: message.into(), source: None }
}

fn crypto_failed(what: &str) -> impl FnOnce(CryptoError) -> Error + '_ {
    move |_| internal(format!("{what} failed"))
}

fn decryption_failed(_: CryptoError) -> Error {
    Error::DecryptionFailed { provider: PROVIDER }
}

fn not_found(name: &str, version: Option<&str>) -> Error {
    match version {
        Some(v) => Error::not_found(PROVIDER, format!("{name}@{v}")),
        None => Error::not_found(PROVIDER, name),
    }
}

/// Runs blocking work (RSA key generation, file I/O) off the async executor when there is a
/// Tokio runtime, inline otherwise.
async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.spawn_blocking(f).await.map_err(|e| internal(format!("background task failed: {e}")))?,
        Err(_) => f(),
    }
}

/// A key version located for an operation, with the snapshot it lives in. Holds no copy of
/// the name: the per-call path allocates only the result.
struct Resolved {
    state: Arc<State>,
    version: u32,
    /// Whether `version` is the key's current one (whose name `info.version` already holds).
    current: bool,
    info: Arc<KeyInfo>,
}

impl Resolved {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn record(&self) -> Result<&KeyRecord> {
        self.state.keys.get(self.name()).ok_or_else(|| internal("key vanished from its snapshot"))
    }

    fn version_record(&self) -> Result<&VersionRecord> {
        self.record()?.version(self.version).ok_or_else(|| internal("key version vanished from its snapshot"))
    }

    fn parsed(&self) -> Result<Arc<Parsed>> {
        material::parsed(self.info.spec, self.info.usage, self.version_record()?)
    }

    fn version_string(&self) -> String {
        if self.current { self.info.version.clone() } else { self.version.to_string() }
    }
}

impl Inner {
    fn snapshot(&self) -> Snapshot {
        self.snapshot.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn install(&self, state: Arc<State>, stamp: Option<Stamp>) {
        *self.snapshot.write().unwrap_or_else(PoisonError::into_inner) = Snapshot { state, stamp };
    }

    /// Re-reads the keystore file (blocking). Holds the writer so a concurrent mutation in this
    /// process cannot be overwritten by an older read.
    fn reload(&self) -> Result<Arc<State>> {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ks) = &self.keystore else { return Ok(self.snapshot().state) };
        let snap = self.snapshot();
        if Some(ks.stamp()?) == snap.stamp {
            return Ok(snap.state);
        }
        let (state, stamp) = ks.load()?;
        let state = Arc::new(state);
        self.install(state.clone(), Some(stamp));
        Ok(state)
    }

    /// Applies `f` to a copy of the current state (re-read under the file lock), persists the
    /// result before returning and only then makes it visible. Blocking for a file store.
    fn mutate_blocking<T>(&self, f: impl FnOnce(&mut State, SystemTime) -> Result<T>) -> Result<T> {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let now = SystemTime::now();
        let Some(ks) = &self.keystore else {
            let mut state = (*self.snapshot().state).clone();
            state.purge_expired(now);
            let out = f(&mut state, now)?;
            self.install(Arc::new(state), None);
            return Ok(out);
        };
        let _lock = ks.lock()?;
        let snap = self.snapshot();
        let base = if Some(ks.stamp()?) == snap.stamp {
            snap.state
        } else {
            // Another process changed the file: start from its version, not ours.
            let (state, stamp) = ks.load()?;
            let state = Arc::new(state);
            self.install(state.clone(), Some(stamp));
            state
        };
        let mut state = (*base).clone();
        let purged = state.purge_expired(now);
        if purged > 0 {
            tracing::debug!(purged, "purged keys whose deletion date has passed");
        }
        let out = f(&mut state, now)?;
        let stamp = ks.store(&state)?;
        self.install(Arc::new(state), Some(stamp));
        Ok(out)
    }

    fn native_id(&self, name: &str) -> String {
        format!("{}{name}", self.native_prefix)
    }
}

impl LocalProvider {
    fn build(
        path: Option<PathBuf>,
        native_prefix: String,
        keystore: Option<Keystore>,
        state: State,
        stamp: Option<Stamp>,
    ) -> Self {
        LocalProvider {
            inner: Arc::new(Inner {
                caps: capabilities::capabilities(),
                path,
                native_prefix,
                keystore,
                snapshot: RwLock::new(Snapshot { state: Arc::new(state), stamp }),
                writer: Mutex::new(()),
            }),
        }
    }

    /// An in-memory store; keys vanish with the last clone of the value.
    pub fn in_memory() -> Self {
        Self::build(None, "local:".to_owned(), None, State::default(), None)
    }

    /// Opens (creating if missing) an encrypted keystore file.
    ///
    /// With `Some(passphrase)` the file is encrypted under a key derived with Argon2id
    /// (19 MiB, 2 passes, 1 lane for new keystores); with `None`, under a random 256-bit master
    /// key kept in the 0600 file `<path>.key` beside it (created on first use). Missing parent
    /// directories are created (mode 0700). The key is derived once, here; this call blocks for
    /// the derivation (tens of milliseconds) and the file I/O, so call it before entering, or
    /// with `spawn_blocking` from, an async context.
    ///
    /// # Errors
    /// - `Unauthenticated` for a wrong passphrase, a missing passphrase, or a key file that
    ///   does not match;
    /// - `Config` for a corrupt, truncated or foreign file (left untouched), a passphrase given
    ///   for a keystore created without one, a missing key file, or an I/O failure.
    pub fn open(path: impl AsRef<Path>, passphrase: Option<Zeroizing<String>>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let (keystore, state, stamp) = Keystore::open(&path, passphrase.as_deref().map(String::as_str))?;
        let absolute = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let prefix = format!("{}#", absolute.display());
        Ok(Self::build(Some(path), prefix, Some(keystore), state, Some(stamp)))
    }

    /// Path of the keystore file, `None` for in-memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The current state, re-read first if another process replaced the keystore file. The
    /// staleness check is one `stat` of the file; a re-read happens off the executor.
    async fn state(&self) -> Result<Arc<State>> {
        let Some(ks) = &self.inner.keystore else { return Ok(self.inner.snapshot().state) };
        let snap = self.inner.snapshot();
        if Some(ks.stamp()?) == snap.stamp {
            return Ok(snap.state);
        }
        let inner = self.inner.clone();
        blocking(move || inner.reload()).await
    }

    async fn mutate<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut State, SystemTime) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if self.inner.keystore.is_none() {
            return self.inner.mutate_blocking(f);
        }
        let inner = self.inner.clone();
        blocking(move || inner.mutate_blocking(f)).await
    }

    /// Finds the live key `name` at `version` (or its current version).
    async fn resolve(&self, name: &str, version: Option<&str>) -> Result<Resolved> {
        validate_key_name(PROVIDER, name)?;
        let state = self.state().await?;
        // Only a key pending deletion can have expired: read the clock for those alone.
        let rec = state
            .keys
            .get(name)
            .filter(|k| k.state != KeyState::PendingDeletion || !k.expired(SystemTime::now()))
            .ok_or_else(|| not_found(name, None))?;
        let version = match version {
            Some(v) => rec.version_named(v).ok_or_else(|| not_found(name, Some(v)))?.version,
            None => rec.current,
        };
        let info = rec.cached_info(name, || self.inner.native_id(name));
        Ok(Resolved { current: version == rec.current, state: state.clone(), version, info })
    }

    async fn resolve_ref(&self, key: &KeyRef) -> Result<Resolved> {
        self.resolve(key.name(), key.version()).await
    }

    async fn new_material(spec: KeySpec, usage: KeyUsage) -> Result<Secret> {
        if spec.family() == KeyFamily::Rsa {
            blocking(move || material::generate(spec, usage)).await
        } else {
            material::generate(spec, usage)
        }
    }
}

/// The live record `name` for a mutation, checking a pinned version exists.
fn live_mut<'a>(
    state: &'a mut State,
    name: &str,
    version: Option<&str>,
    now: SystemTime,
) -> Result<&'a mut KeyRecord> {
    let rec =
        state.keys.get_mut(name).filter(|k| !k.expired(now)).ok_or_else(|| not_found(name, None))?.touch();
    if let Some(v) = version
        && rec.version_named(v).is_none()
    {
        return Err(not_found(name, Some(v)));
    }
    Ok(rec)
}

fn pending(name: &str) -> Error {
    Error::KeyUnusable { provider: PROVIDER, key: name.to_owned(), reason: UnusableReason::PendingDeletion }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        check::create_key(PROVIDER, &self.inner.caps, &req)?;
        let (spec, usage) = (req.spec, req.effective_usage());
        // Fail fast before a slow RSA generation; checked again under the lock.
        if self.state().await?.live(&req.name, SystemTime::now()).is_some() {
            return Err(Error::AlreadyExists { provider: PROVIDER, key: req.name });
        }
        let material = Self::new_material(spec, usage).await?;
        let prefix = self.inner.native_prefix.clone();
        self.mutate(move |state, now| {
            if state.keys.contains_key(&req.name) {
                return Err(Error::AlreadyExists { provider: PROVIDER, key: req.name });
            }
            let rec = KeyRecord {
                spec,
                usage,
                state: KeyState::Enabled,
                description: req.description,
                tags: req.tags,
                created: now,
                deletion_date: None,
                current: 1,
                versions: vec![VersionRecord::new(1, now, material)],
                info_cache: Default::default(),
            };
            let info = rec.info(&req.name, format!("{prefix}{}", req.name));
            state.keys.insert(req.name, rec);
            Ok(info)
        })
        .await
    }

    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        Ok(Arc::unwrap_or_clone(self.resolve_ref(key).await?.info))
    }

    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        let paging = NamePaging::new(PROVIDER, &req, MAX_PAGE_SIZE)?;
        let state = self.state().await?;
        let now = SystemTime::now();
        let lower = match paging.after() {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let keys = state
            .keys
            .range::<str, _>((lower, Bound::Unbounded))
            .filter(|(_, rec)| !rec.expired(now))
            .map(|(name, rec)| rec.info(name, self.inner.native_id(name)));
        Ok(paging.page(&req, keys))
    }

    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        let r = self.resolve_ref(key).await?;
        if r.info.state == KeyState::PendingDeletion {
            return Err(pending(r.name()));
        }
        let (spec, usage) = (r.info.spec, r.info.usage);
        let material = Self::new_material(spec, usage).await?;
        let (name, version) = (key.name().to_owned(), key.version().map(str::to_owned));
        let native = self.inner.native_id(&name);
        self.mutate(move |state, now| {
            let rec = live_mut(state, &name, version.as_deref(), now)?;
            if rec.state == KeyState::PendingDeletion {
                return Err(pending(&name));
            }
            if (rec.spec, rec.usage) != (spec, usage) {
                return Err(Error::Unavailable {
                    provider: PROVIDER,
                    message: format!("key '{name}' was replaced while rotating; retry"),
                    retry_after: None,
                });
            }
            let next = rec.versions.iter().map(|v| v.version).max().unwrap_or(0).saturating_add(1);
            rec.versions.push(VersionRecord::new(next, now, material));
            rec.current = next;
            Ok(rec.info(&name, native))
        })
        .await
    }

    async fn set_key_state(&self, key: &KeyRef, new_state: KeyState) -> Result<KeyInfo> {
        match new_state {
            KeyState::Enabled | KeyState::Disabled => {}
            KeyState::PendingDeletion => {
                return Err(Error::invalid_input(
                    PROVIDER,
                    "a key cannot be set to pending-deletion directly; use schedule_deletion",
                ));
            }
            other => {
                return Err(Error::invalid_input(PROVIDER, format!("key state '{other}' cannot be set")));
            }
        }
        validate_key_name(PROVIDER, key.name())?;
        let (name, version) = (key.name().to_owned(), key.version().map(str::to_owned));
        let native = self.inner.native_id(&name);
        self.mutate(move |state, now| {
            let rec = live_mut(state, &name, version.as_deref(), now)?;
            if rec.state == KeyState::PendingDeletion {
                return Err(pending(&name));
            }
            rec.state = new_state;
            Ok(rec.info(&name, native))
        })
        .await
    }

    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        let window = check::deletion_window(PROVIDER, &self.inner.caps.deletion, after)?;
        validate_key_name(PROVIDER, key.name())?;
        let (name, version) = (key.name().to_owned(), key.version().map(str::to_owned));
        self.mutate(move |state, now| {
            let rec = live_mut(state, &name, version.as_deref(), now)?;
            if window.is_zero() {
                state.keys.remove(&name);
                return Ok(Deletion::new(name, now, true));
            }
            let date = now
                .checked_add(window)
                .ok_or_else(|| Error::invalid_input(PROVIDER, "the deletion date is out of range"))?;
            rec.state = KeyState::PendingDeletion;
            rec.deletion_date = Some(date);
            Ok(Deletion::new(name, date, false))
        })
        .await
    }

    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        validate_key_name(PROVIDER, key.name())?;
        let (name, version) = (key.name().to_owned(), key.version().map(str::to_owned));
        let native = self.inner.native_id(&name);
        self.mutate(move |state, now| {
            let rec = live_mut(state, &name, version.as_deref(), now)?;
            if rec.state != KeyState::PendingDeletion {
                return Err(Error::invalid_input(
                    PROVIDER,
                    format!("key '{name}' is not scheduled for deletion; there is nothing to cancel"),
                ));
            }
            rec.state = KeyState::Disabled;
            rec.deletion_date = None;
            Ok(rec.info(&name, native))
        })
        .await
    }

    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        let r = self.resolve_ref(key).await?;
        if r.info.spec.is_symmetric() {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("key '{}' is a {} key, which has no public key", r.name(), r.info.spec),
            ));
        }
        let p = r.parsed()?;
        let spki = p.spki().ok_or_else(|| internal("asymmetric key without a public key"))?;
        Ok(PublicKey::new(r.name().to_owned(), r.version_string(), r.info.spec, spki.to_vec()))
    }

    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        let r = self.resolve_ref(key).await?;
        check::encrypt(PROVIDER, &self.inner.caps, &r.info, alg, plaintext.len(), aad)?;
        let p = r.parsed()?;
        let payload = match (&*p, alg) {
            (Parsed::Aes(k), EncryptionAlgorithm::AesGcm) => k.seal(plaintext, aad.unwrap_or_default()),
            (Parsed::RsaDecrypt { public, .. }, _) => prim::rsa_encrypt(public, alg, plaintext),
            _ => Err(CryptoError),
        }
        .map_err(crypto_failed("encryption"))?;
        Ok(Ciphertext::new(r.name().to_owned(), r.version_string(), alg, payload))
    }

    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, ciphertext.key(), "ciphertext")?;
        let r = self.resolve(key.name(), Some(ciphertext.version())).await?;
        let alg = ciphertext.algorithm();
        check::decrypt(PROVIDER, &self.inner.caps, &r.info, alg, aad)?;
        let p = r.parsed()?;
        match (&*p, alg) {
            (Parsed::Aes(k), EncryptionAlgorithm::AesGcm) => {
                k.open(ciphertext.as_bytes(), aad.unwrap_or_default())
            }
            (Parsed::RsaDecrypt { key, .. }, _) => prim::rsa_decrypt(key, alg, ciphertext.as_bytes(), None),
            _ => Err(CryptoError),
        }
        .map_err(decryption_failed)
    }

    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        let r = self.resolve_ref(key).await?;
        check::sign(PROVIDER, &self.inner.caps, &r.info, alg, &input)?;
        let p = r.parsed()?;
        let sig = match &*p {
            Parsed::RsaSign { pair, .. } => prim::rsa_sign(pair, alg, input),
            Parsed::Ecdsa { pair, .. } => prim::ecdsa_sign(pair, alg, input),
            Parsed::Ed25519 { pair, .. } => prim::ed25519_sign(pair, input),
            _ => Err(CryptoError),
        }
        .map_err(crypto_failed("signing"))?;
        Ok(Signature::new(r.name().to_owned(), r.version_string(), alg, sig))
    }

    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let r = self.resolve_ref(key).await?;
        check::sign(PROVIDER, &self.inner.caps, &r.info, alg, &input)?;
        check::signature_len(PROVIDER, &r.info, alg, signature.len())?;
        let p = r.parsed()?;
        Ok(match &*p {
            Parsed::Ecdsa { verifier, .. } | Parsed::Ed25519 { verifier, .. } => {
                prim::verify_with(verifier, alg, input, signature)
            }
            Parsed::RsaSign { spki, .. } => prim::verify(r.info.spec, alg, spki, input, signature),
            _ => false,
        })
    }

    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey> {
        let r = self.resolve_ref(key).await?;
        check::wrap(PROVIDER, &self.inner.caps, &r.info, alg, Some(key_material.len()))?;
        let p = r.parsed()?;
        let kek = r.version_record()?.material.expose();
        let payload = match (&*p, alg) {
            (Parsed::Aes(_), WrapAlgorithm::AesKeyWrap) => prim::aes_kw_wrap(kek, key_material),
            (Parsed::Aes(_), WrapAlgorithm::AesKeyWrapPad) => prim::aes_kwp_wrap(kek, key_material),
            (Parsed::Aes(k), WrapAlgorithm::AesGcm) => k.seal(key_material, &[]),
            (Parsed::RsaDecrypt { public, .. }, WrapAlgorithm::RsaOaepSha256) => {
                prim::rsa_encrypt(public, EncryptionAlgorithm::RsaOaepSha256, key_material)
            }
            _ => Err(CryptoError),
        }
        .map_err(crypto_failed("key wrapping"))?;
        Ok(WrappedKey::new(r.name().to_owned(), r.version_string(), alg, payload))
    }

    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, wrapped.key(), "wrapped key")?;
        let r = self.resolve(key.name(), Some(wrapped.version())).await?;
        let alg = wrapped.algorithm();
        check::wrap(PROVIDER, &self.inner.caps, &r.info, alg, None)?;
        let p = r.parsed()?;
        let kek = r.version_record()?.material.expose();
        let bytes = wrapped.as_bytes();
        match (&*p, alg) {
            (Parsed::Aes(_), WrapAlgorithm::AesKeyWrap) => prim::aes_kw_unwrap(kek, bytes),
            (Parsed::Aes(_), WrapAlgorithm::AesKeyWrapPad) => prim::aes_kwp_unwrap(kek, bytes),
            (Parsed::Aes(k), WrapAlgorithm::AesGcm) => k.open(bytes, &[]),
            (Parsed::RsaDecrypt { key, .. }, WrapAlgorithm::RsaOaepSha256) => {
                prim::rsa_decrypt(key, EncryptionAlgorithm::RsaOaepSha256, bytes, None)
            }
            _ => Err(CryptoError),
        }
        .map_err(decryption_failed)
    }

    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag> {
        let r = self.resolve_ref(key).await?;
        check::mac(PROVIDER, &self.inner.caps, &r.info, alg)?;
        let p = r.parsed()?;
        let Parsed::Hmac(k) = &*p else { return Err(internal("HMAC key without an HMAC key object")) };
        let tag = aws_lc_rs::hmac::sign(k, message);
        Ok(MacTag::new(r.name().to_owned(), r.version_string(), alg, tag.as_ref().to_vec()))
    }

    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool> {
        let r = self.resolve_ref(key).await?;
        check::mac(PROVIDER, &self.inner.caps, &r.info, alg)?;
        if tag.len() != alg.tag_len() {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("MAC tag is {} bytes; {alg} tags are {} bytes", tag.len(), alg.tag_len()),
            ));
        }
        let p = r.parsed()?;
        let Parsed::Hmac(k) = &*p else { return Err(internal("HMAC key without an HMAC key object")) };
        // Constant time.
        Ok(aws_lc_rs::hmac::verify(k, message, tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn own_writes_do_not_look_like_foreign_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = LocalProvider::open(dir.path().join("ks"), None).unwrap();
        p.create_key(CreateKey::new("k", KeySpec::Aes128)).await.unwrap();
        let ks = p.inner.keystore.as_ref().unwrap();
        assert_eq!(Some(ks.stamp().unwrap()), p.inner.snapshot().stamp, "no re-read after our own write");
        let other = LocalProvider::open(dir.path().join("ks"), None).unwrap();
        other.rotate_key(&"k".into()).await.unwrap();
        assert_ne!(Some(ks.stamp().unwrap()), p.inner.snapshot().stamp, "another writer is noticed");
        assert_eq!(p.get_key(&"k".into()).await.unwrap().version, "2");
    }

    #[tokio::test]
    async fn key_material_is_in_neither_the_keystore_file_nor_any_debug_output() {
        use hsm_core::{ProviderExt as _, SignInput};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.hsm");
        let p = LocalProvider::open(&path, None).unwrap();
        for (name, spec) in [
            ("aes", KeySpec::Aes256),
            ("hmac", KeySpec::HmacSha512),
            ("ec", KeySpec::EcP384),
            ("ed", KeySpec::Ed25519),
            ("rsa", KeySpec::Rsa2048),
        ] {
            p.create_key(CreateKey::new(name, spec)).await.unwrap();
            p.rotate_key(&name.into()).await.unwrap();
        }
        // Use every key so parsed key objects are cached too.
        p.encrypt_default(&"aes".into(), b"x", None).await.unwrap();
        p.encrypt_default(&"rsa".into(), b"x", None).await.unwrap();
        p.sign_message(&"ec".into(), b"x").await.unwrap();
        p.sign(&"ed".into(), SignatureAlgorithm::Ed25519, SignInput::Message(b"x")).await.unwrap();
        p.mac(&"hmac".into(), MacAlgorithm::HmacSha512, b"x").await.unwrap();

        let file = std::fs::read(&path).unwrap();
        let master = std::fs::read(dir.path().join("ks.hsm.key")).unwrap();
        assert_eq!(master.len(), 32);
        assert!(!contains(&file, &master), "the master key is not in the keystore");
        let state = p.inner.snapshot().state;
        let mut checked = 0;
        for (name, rec) in &state.keys {
            for v in &rec.versions {
                let m = v.material.expose();
                let b64 = base64::engine::general_purpose::STANDARD.encode(m);
                for chunk in m.chunks(16).filter(|c| c.len() == 16) {
                    assert!(!contains(&file, chunk), "{name}: raw material in the file");
                }
                assert!(!contains(&file, &b64.as_bytes()[..24]), "{name}: base64 material in the file");
                let debug = format!("{p:?} {state:?} {rec:?} {v:?} {:?} {:?}", v.parsed.get(), v.material);
                let hex: String = m[..8].iter().map(|b| format!("{b:02x}")).collect();
                let list = format!("{:?}", &m[..4]).trim_end_matches(']').to_owned();
                for needle in [hex.as_str(), list.as_str(), &b64[..12]] {
                    assert!(!debug.contains(needle), "{name}: {needle} in {debug}");
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 10);
    }
}
