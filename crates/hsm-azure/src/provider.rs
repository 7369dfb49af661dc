//! [`AzureKeyVaultProvider`]: the [`Provider`] implementation over the SDK's [`KeyClient`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use azure_core::http::{DeserializeWith, JsonFormat, Response};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, DeletedKey, JsonWebKey, Key, KeyAttributes, KeyClientEncryptOptions,
    KeyClientGetKeyOptions, KeyClientSignOptions, KeyClientUpdateKeyPropertiesOptions,
    KeyClientWrapKeyOptions, KeyOperationParameters, KeyProperties, SignParameters,
    UpdateKeyPropertiesParameters, VerifyParameters,
};
use azure_security_keyvault_keys::{KeyClient, ResourceExt as _};
use futures_util::TryStreamExt as _;
use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, DigestAlgorithm, EncryptionAlgorithm, Error, KeyFamily,
    KeyInfo, KeyPage, KeyRef, KeySpec, KeyState, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey, Result,
    SignInput, Signature, SignatureAlgorithm, UnusableReason, WrapAlgorithm, WrappedKey, Zeroizing, check,
    paging::NamePaging, validate_key_name,
};

use crate::PROVIDER;
use crate::config::{
    AzureConfig, DEFAULT_METADATA_TTL, DEFAULT_OPERATION_TIMEOUT, DEFAULT_RETENTION_DAYS, KeyProtection,
    VaultKind,
};
use crate::error::{from_azure, status_of};
use crate::mapping::{self, azure_capabilities};

/// Tag holding the hsm description of a key (Key Vault keys have no description field).
pub const TAG_DESCRIPTION: &str = "hsm:description";
/// Tag holding the hsm spec of an AES key (Key Vault does not report the size of `oct` keys).
pub const TAG_SPEC: &str = "hsm:spec";
/// The prefix of the tags hsm reserves; user tags may not use it.
pub const RESERVED_TAG_PREFIX: &str = "hsm:";
/// Key Vault allows at most 15 tags per key (hsm's reserved tags included).
pub const MAX_TAGS: usize = 15;
/// Key Vault tag values are at most 256 characters (so is the description).
pub const MAX_TAG_VALUE: usize = 256;
/// AES-GCM nonce length in the ciphertext layout `iv ‖ ciphertext ‖ tag`.
pub const GCM_IV_LEN: usize = 12;
/// AES-GCM tag length in the ciphertext layout `iv ‖ ciphertext ‖ tag`.
pub const GCM_TAG_LEN: usize = 16;

/// The Azure Key Vault / Managed HSM provider.
///
/// See the [crate docs](crate) for how names, versions, tags, deletion and ciphertexts map
/// onto Key Vault. Cloning is cheap (the SDK client is shared).
#[derive(Clone)]
pub struct AzureKeyVaultProvider {
    client: Arc<KeyClient>,
    kind: VaultKind,
    protection: KeyProtection,
    timeout: Duration,
    retention_days: u32,
    caps: Capabilities,
    metadata: Arc<MetadataCache>,
}

/// Resolved keys by name and pinned version (`None`: the current one), with when they were
/// read; see [`AzureConfig::metadata_ttl`].
struct MetadataCache {
    ttl: Duration,
    entries: std::sync::Mutex<HashMap<CacheKey, (Arc<Resolved>, std::time::Instant)>>,
}

/// A key name and the version pinned (`None`: the current one).
type CacheKey = (String, Option<String>);

impl MetadataCache {
    fn new(ttl: Duration) -> Self {
        MetadataCache { ttl, entries: std::sync::Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, (Arc<Resolved>, std::time::Instant)>> {
        // A panic while holding the lock leaves only a map of plain data behind.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key as resolved for `key`'s version; a pinned version that is the cached current
    /// one (a ciphertext just made) is served from the current entry.
    fn get(&self, key: &KeyRef) -> Option<Arc<Resolved>> {
        let entries = self.entries();
        let fresh =
            |k: &CacheKey| entries.get(k).filter(|(_, at)| at.elapsed() < self.ttl).map(|(r, _)| r.clone());
        let name = key.name().to_owned();
        fresh(&(name.clone(), key.version().map(str::to_owned))).or_else(|| {
            let v = key.version()?;
            fresh(&(name, None)).filter(|r| r.version == v)
        })
    }

    fn put(&self, key: &KeyRef, r: Arc<Resolved>) {
        if !self.ttl.is_zero() {
            let k = (key.name().to_owned(), key.version().map(str::to_owned));
            self.entries().insert(k, (r, std::time::Instant::now()));
        }
    }

    /// Forgets every version of a key.
    fn forget(&self, name: &str) {
        self.entries().retain(|(n, _), _| n != name);
    }
}

impl fmt::Debug for AzureKeyVaultProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultProvider")
            .field("vault", &self.client.endpoint().as_str())
            .field("kind", &self.kind)
            .field("protection", &self.protection)
            .finish()
    }
}

/// A key as resolved for one call: its metadata, the exact version, and the JWK.
#[derive(Clone)]
struct Resolved {
    info: KeyInfo,
    /// The version asked for (or the current one).
    version: String,
    jwk: JsonWebKey,
}

fn to_system(t: Option<azure_core::time::OffsetDateTime>) -> Option<SystemTime> {
    t.map(SystemTime::from)
}

/// Key Vault key names are 1–127 of `0-9 a-z A-Z -`, case-insensitive; hsm names are
/// portable names without `_`.
fn check_name(name: &str) -> Result<()> {
    validate_key_name(PROVIDER, name)?;
    if name.contains('_') {
        return Err(Error::invalid_input(
            PROVIDER,
            format!("key name '{name}' contains '_'; Key Vault key names allow only letters, digits and '-'"),
        ));
    }
    Ok(())
}

/// A version as Key Vault writes them (32 hex digits); anything else cannot exist.
fn plausible_version(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn user_tags(tags: &HashMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.to_ascii_lowercase().starts_with(RESERVED_TAG_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn check_tags(tags: &BTreeMap<String, String>, description: &str, reserved: usize) -> Result<()> {
    for k in tags.keys() {
        if k.to_ascii_lowercase().starts_with(RESERVED_TAG_PREFIX) {
            return Err(Error::invalid_input(
                PROVIDER,
                format!(
                    "tag key '{k}' uses the prefix '{RESERVED_TAG_PREFIX}', which hsm reserves; rename it"
                ),
            ));
        }
    }
    let total = tags.len() + reserved + usize::from(!description.is_empty());
    if total > MAX_TAGS {
        return Err(Error::invalid_input(
            PROVIDER,
            format!(
                "Key Vault allows {MAX_TAGS} tags per key; this key would need {total} (the description and \
                 the AES size are kept in tags too)"
            ),
        ));
    }
    if description.chars().count() > MAX_TAG_VALUE {
        return Err(Error::invalid_input(
            PROVIDER,
            format!(
                "description is {} characters; Key Vault keeps it in a tag, which holds at most {MAX_TAG_VALUE}",
                description.chars().count()
            ),
        ));
    }
    Ok(())
}

/// The digest Key Vault signs: the caller's, or the message hashed here.
fn digest_of(alg: SignatureAlgorithm, input: &SignInput<'_>) -> Result<Vec<u8>> {
    match input {
        SignInput::Digest(d) => Ok(d.to_vec()),
        SignInput::Message(m) => {
            let digest = match alg.digest() {
                Some(DigestAlgorithm::Sha384) => &aws_lc_rs::digest::SHA384,
                Some(DigestAlgorithm::Sha512) => &aws_lc_rs::digest::SHA512,
                Some(_) => &aws_lc_rs::digest::SHA256,
                None => {
                    return Err(Error::unsupported(
                        PROVIDER,
                        format!("signing with {alg}"),
                        "Key Vault signs digests only",
                    ));
                }
            };
            Ok(aws_lc_rs::digest::digest(digest, m).as_ref().to_vec())
        }
        other => {
            Err(Error::invalid_input(PROVIDER, format!("{other:?} is not a kind of input Key Vault signs")))
        }
    }
}

/// The coordinate length of the curve an ECDSA algorithm is bound to.
fn ecdsa_len(alg: SignatureAlgorithm) -> Option<usize> {
    match alg {
        SignatureAlgorithm::EcdsaSha256 => Some(32),
        SignatureAlgorithm::EcdsaSha384 => Some(48),
        SignatureAlgorithm::EcdsaSha512 => Some(66),
        _ => None,
    }
}

impl AzureKeyVaultProvider {
    /// A provider for `config`. No call is made: credentials and reachability are checked
    /// by the first operation.
    ///
    /// # Errors
    /// [`Error::Config`] when the CA file cannot be read or the SDK client cannot be built.
    pub fn connect(config: &AzureConfig) -> Result<Self> {
        let credential = config.token_credential()?;
        let options = config.client_options()?;
        let client = KeyClient::new(config.vault_url(), credential, Some(options)).map_err(|e| {
            Error::config(
                PROVIDER,
                format!("cannot build the Key Vault client for {}: {e}", config.vault_url()),
            )
        })?;
        let mut p = Self::from_client(client, config.kind());
        p.protection = config.protection();
        p.timeout = config.timeout();
        p.retention_days = config.retention();
        p.caps = azure_capabilities(p.kind, p.retention_days);
        p.metadata = Arc::new(MetadataCache::new(config.metadata_cache_ttl()));
        Ok(p)
    }

    /// A provider over a [`KeyClient`] you built yourself, for a service of `kind`, with
    /// software-protected keys, a 30 s operation timeout and 90-day retention.
    pub fn from_client(client: KeyClient, kind: VaultKind) -> Self {
        AzureKeyVaultProvider {
            client: Arc::new(client),
            kind,
            protection: KeyProtection::Software,
            timeout: DEFAULT_OPERATION_TIMEOUT,
            retention_days: DEFAULT_RETENTION_DAYS,
            caps: azure_capabilities(kind, DEFAULT_RETENTION_DAYS),
            metadata: Arc::new(MetadataCache::new(DEFAULT_METADATA_TTL)),
        }
    }

    /// The SDK client, for operations hsm does not model (backup, restore, release,
    /// rotation policies, random bytes).
    pub fn client(&self) -> &KeyClient {
        &self.client
    }

    /// The service kind.
    pub fn kind(&self) -> VaultKind {
        self.kind
    }

    /// Runs one SDK future under the operation timeout.
    async fn timed<T>(&self, op: &str, fut: impl Future<Output = T>) -> Result<T> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| Error::Timeout { provider: PROVIDER, operation: op.to_owned() })
    }

    /// Sends one request; the outer error is a timeout, the inner one the SDK's.
    async fn send<T: DeserializeWith<JsonFormat>>(
        &self,
        op: &str,
        fut: impl Future<Output = azure_core::Result<Response<T>>>,
    ) -> Result<azure_core::Result<T>> {
        Ok(self.timed(op, fut).await?.and_then(Response::into_model))
    }

    /// Sends one request and maps every SDK error.
    async fn call<T: DeserializeWith<JsonFormat>>(
        &self,
        op: &str,
        key: &str,
        fut: impl Future<Output = azure_core::Result<Response<T>>>,
    ) -> Result<T> {
        self.send(op, fut).await?.map_err(|e| self.failed(op, key, e))
    }

    /// Maps an SDK error of a call about key `name`, dropping its cached metadata when Key
    /// Vault says it no longer holds (the key is gone, or disabled: 403).
    fn failed(&self, op: &str, name: &str, e: azure_core::Error) -> Error {
        let e = from_azure(op, Some(name), e);
        if matches!(e, Error::NotFound { .. } | Error::KeyUnusable { .. } | Error::PermissionDenied { .. }) {
            self.metadata.forget(name);
        }
        e
    }

    /// [`resolve`](Self::resolve) for data-plane calls: reuses a key read within the metadata
    /// TTL, and remembers enabled keys.
    async fn resolve_cached(&self, key: &KeyRef) -> Result<Resolved> {
        if let Some(r) = self.metadata.get(key) {
            return Ok(Resolved::clone(&r));
        }
        let r = self.resolve(key, false).await?;
        // Only usable keys are kept: a refusal made from a remembered "disabled" would
        // outlive the key being enabled again elsewhere.
        if r.info.state == KeyState::Enabled {
            self.metadata.put(key, Arc::new(r.clone()));
        }
        Ok(r)
    }

    fn content<T>(op: &str, body: T) -> Result<azure_core::http::RequestContent<T>>
    where
        T: TryInto<azure_core::http::RequestContent<T>, Error = azure_core::Error>,
    {
        body.try_into().map_err(|e| from_azure(op, None, e))
    }

    /// `GET /keys/{name}/{version}`; `None` on 404.
    async fn fetch(&self, name: &str, version: Option<&str>) -> Result<Option<Key>> {
        let options =
            KeyClientGetKeyOptions { key_version: version.map(str::to_owned), ..Default::default() };
        match self.send("GetKey", self.client.get_key(name, Some(options))).await? {
            Ok(k) => Ok(Some(k)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(from_azure("GetKey", Some(name), e)),
        }
    }

    /// `GET /deletedkeys/{name}`; `None` on 404.
    async fn fetch_deleted(&self, name: &str) -> Result<Option<DeletedKey>> {
        match self.send("GetDeletedKey", self.client.get_deleted_key(name, None)).await? {
            Ok(k) => Ok(Some(k)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(from_azure("GetDeletedKey", Some(name), e)),
        }
    }

    /// Every version of a key (oldest first, by creation time).
    async fn versions(&self, name: &str) -> Result<Vec<KeyProperties>> {
        let pager = self
            .client
            .list_key_properties_versions(name, None)
            .map_err(|e| from_azure("ListKeyVersions", Some(name), e))?;
        let mut all: Vec<KeyProperties> = self
            .timed("ListKeyVersions", pager.try_collect())
            .await?
            .map_err(|e| from_azure("ListKeyVersions", Some(name), e))?;
        all.sort_by_key(|p| p.attributes.as_ref().and_then(|a| a.created));
        Ok(all)
    }

    fn info_from(
        name: &str,
        jwk: Option<&JsonWebKey>,
        attributes: Option<&KeyAttributes>,
        tags: Option<&HashMap<String, String>>,
        kid: Option<&str>,
    ) -> Result<(KeyInfo, JsonWebKey)> {
        let jwk = jwk.cloned().unwrap_or_default();
        let empty = HashMap::new();
        let tags = tags.unwrap_or(&empty);
        let aes_hint = tags.get(TAG_SPEC).and_then(|s| s.parse::<KeySpec>().ok());
        let spec = mapping::spec_of(&jwk, aes_hint).ok_or_else(|| {
            Error::unsupported(
                PROVIDER,
                format!("using key '{name}' (Key Vault key type {})", mapping::kty_name(jwk.kty.as_ref())),
                "hsm does not model this key type or size; use the SDK (hsm_azure::azure_security_keyvault_keys) for it",
            )
        })?;
        let usage = mapping::usage_from_ops(spec, jwk.key_ops.as_deref().unwrap_or_default());
        let rid = kid.and_then(|k| k.parse::<azure_security_keyvault_keys::ResourceId>().ok());
        let version = rid.as_ref().and_then(|r| r.version.clone()).unwrap_or_default();
        let name = rid.map(|r| r.name).unwrap_or_else(|| name.to_owned());
        let mut info = KeyInfo::new(name, version, spec, usage);
        info.state = match attributes.and_then(|a| a.enabled) {
            Some(false) => KeyState::Disabled,
            _ => KeyState::Enabled,
        };
        info.description = tags.get(TAG_DESCRIPTION).cloned().unwrap_or_default();
        info.tags = user_tags(tags);
        info.created = to_system(attributes.and_then(|a| a.created)).unwrap_or(SystemTime::UNIX_EPOCH);
        info.native_id = kid.unwrap_or_default().to_owned();
        Ok((info, jwk))
    }

    /// Looks a key up by name (and the version `key` pins, or the current one). A key in
    /// Key Vault's deleted collection resolves as `PendingDeletion`. With `all_versions`,
    /// [`KeyInfo::versions`] lists every version (one more request).
    async fn resolve(&self, key: &KeyRef, all_versions: bool) -> Result<Resolved> {
        let name = key.name();
        check_name(name)?;
        if let Some(v) = key.version()
            && !plausible_version(v)
        {
            return Err(Error::not_found(PROVIDER, key.to_string()));
        }
        if let Some(k) = self.fetch(name, key.version()).await? {
            let (mut info, jwk) = Self::info_from(
                name,
                k.key.as_ref(),
                k.attributes.as_ref(),
                k.tags.as_ref(),
                k.key.as_ref().and_then(|j| j.kid.as_deref()),
            )?;
            let version = info.version.clone();
            if all_versions {
                // The metadata describes the key: its current version (what `GET /keys/{name}`
                // answers) and every version, oldest first, the current one last.
                let current = match key.version() {
                    None => Some(version.clone()),
                    Some(_) => self
                        .fetch(name, None)
                        .await?
                        .and_then(|k| k.resource_id().ok())
                        .and_then(|r| r.version),
                };
                let mut versions: Vec<String> = self
                    .versions(name)
                    .await?
                    .iter()
                    .filter_map(|p| p.resource_id().ok().and_then(|r| r.version))
                    .collect();
                if let Some(current) = current {
                    versions.retain(|v| *v != current);
                    versions.push(current.clone());
                    info.version = current;
                }
                if !versions.contains(&version) {
                    versions.insert(0, version.clone());
                }
                info.versions = versions;
            }
            return Ok(Resolved { info, version, jwk });
        }
        if let Some(d) = self.fetch_deleted(name).await? {
            let kid = d.key.as_ref().and_then(|j| j.kid.as_deref());
            let (mut info, jwk) =
                Self::info_from(name, d.key.as_ref(), d.attributes.as_ref(), d.tags.as_ref(), kid)?;
            info.state = KeyState::PendingDeletion;
            info.deletion_date = to_system(d.scheduled_purge_date).or_else(|| {
                Some(SystemTime::now() + Duration::from_secs(u64::from(self.retention_days) * 86_400))
            });
            let version = key.version().map(str::to_owned).unwrap_or_else(|| info.version.clone());
            return Ok(Resolved { info, version, jwk });
        }
        Err(Error::not_found(PROVIDER, key.to_string()))
    }

    fn unusable(name: &str, reason: UnusableReason) -> Error {
        Error::KeyUnusable { provider: PROVIDER, key: name.to_owned(), reason }
    }

    /// Sets `enabled` on every version of a key.
    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        for p in self.versions(name).await? {
            if p.attributes.as_ref().and_then(|a| a.enabled) == Some(enabled) {
                continue;
            }
            let Some(version) = p.resource_id().ok().and_then(|r| r.version) else { continue };
            let body = UpdateKeyPropertiesParameters {
                key_attributes: Some(KeyAttributes { enabled: Some(enabled), ..Default::default() }),
                ..Default::default()
            };
            let options =
                KeyClientUpdateKeyPropertiesOptions { key_version: Some(version), ..Default::default() };
            self.call(
                "UpdateKey",
                name,
                self.client.update_key_properties(name, Self::content("UpdateKey", body)?, Some(options)),
            )
            .await?;
        }
        Ok(())
    }

    /// Recovers a soft-deleted key (`POST /deletedkeys/{name}/recover`) and waits until it
    /// is readable again. The key comes back as it was (enabled unless it was disabled).
    /// [`Provider::cancel_deletion`] does this and then disables the key, as hsm specifies.
    ///
    /// # Errors
    /// `NotFound` when no deleted key has this name; `Timeout` when the recovery does not
    /// finish within the operation timeout.
    pub async fn recover_deleted_key(&self, name: &str) -> Result<KeyInfo> {
        self.metadata.forget(name);
        check_name(name)?;
        self.call("RecoverDeletedKey", name, self.client.recover_deleted_key(name, None)).await?;
        // Recovery is asynchronous on the real service: poll until the key is back.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut delay = Duration::from_millis(50);
        loop {
            if self.fetch(name, None).await?.is_some() {
                return Ok(self.resolve(&KeyRef::new(name), true).await?.info);
            }
            if tokio::time::Instant::now() + delay > deadline {
                return Err(Error::Timeout {
                    provider: PROVIDER,
                    operation: format!("recovering key '{name}'"),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Purges a soft-deleted key for good (`DELETE /deletedkeys/{name}`): it cannot be
    /// recovered afterwards, and its name is free again. Fails on vaults with purge protection.
    ///
    /// # Errors
    /// `NotFound` when no deleted key has this name; `PermissionDenied` when purging is not
    /// allowed.
    pub async fn purge_deleted_key(&self, name: &str) -> Result<()> {
        self.metadata.forget(name);
        check_name(name)?;
        self.timed("PurgeDeletedKey", self.client.purge_deleted_key(name, None))
            .await?
            .map(|_| ())
            .map_err(|e| from_azure("PurgeDeletedKey", Some(name), e))
    }

    /// Wraps a native Key Vault ciphertext (the `value` of an `encrypt` call another Key
    /// Vault client made under `key`) so that [`Provider::decrypt`] opens it. Give the version
    /// it was made with in `key` (`name@version`), else the current version is assumed.
    ///
    /// For AES-GCM the bytes must be laid out as `iv (12) ‖ ciphertext ‖ tag (16)` (Key
    /// Vault returns the three separately). The other direction needs no conversion:
    /// [`Ciphertext::as_bytes`] of an hsm-azure ciphertext is the native value.
    ///
    /// # Errors
    /// `NotFound`; `InvalidInput` when `alg` does not fit the key or the bytes are empty.
    pub async fn native_ciphertext(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        bytes: Vec<u8>,
    ) -> Result<Ciphertext> {
        let r = self.resolve(key, false).await?;
        if !alg.fits(r.info.spec) {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("{alg} cannot be used with key '{}' ({})", r.info.name, r.info.spec),
            ));
        }
        if bytes.is_empty() {
            return Err(Error::invalid_input(PROVIDER, "the native ciphertext is empty"));
        }
        Ok(Ciphertext::new(r.info.name, r.version, alg, bytes))
    }

    /// The signature bytes as Key Vault itself produces and verifies them: for ECDSA the
    /// raw `r‖s` form (hsm returns DER, like every provider), for RSA the same bytes.
    ///
    /// # Errors
    /// `InvalidInput` for an ECDSA signature that is not well-formed DER.
    pub fn raw_signature(signature: &Signature) -> Result<Vec<u8>> {
        match ecdsa_len(signature.algorithm()) {
            Some(len) => mapping::ecdsa_der_to_raw(signature.as_bytes(), len).ok_or_else(|| {
                Error::invalid_input(PROVIDER, "the ECDSA signature is not a DER SEQUENCE of two integers")
            }),
            None => Ok(signature.as_bytes().to_vec()),
        }
    }

    async fn key_operation(
        &self,
        op: &'static str,
        r: &Resolved,
        body: KeyOperationParameters,
    ) -> Result<azure_core::Result<azure_security_keyvault_keys::models::KeyOperationResult>> {
        let name = r.info.name.as_str();
        let version = r.version.as_str();
        let content = Self::content(op, body)?;
        match op {
            "Encrypt" => {
                let options =
                    KeyClientEncryptOptions { key_version: Some(version.to_owned()), ..Default::default() };
                self.send(op, self.client.encrypt(name, content, Some(options))).await
            }
            "Decrypt" => self.send(op, self.client.decrypt(name, version, content, None)).await,
            "WrapKey" => {
                let options =
                    KeyClientWrapKeyOptions { key_version: Some(version.to_owned()), ..Default::default() };
                self.send(op, self.client.wrap_key(name, content, Some(options))).await
            }
            _ => self.send(op, self.client.unwrap_key(name, version, content, None)).await,
        }
    }

    /// Decrypt and unwrap: any 400 is the opaque `DecryptionFailed`.
    async fn open(
        &self,
        op: &'static str,
        r: &Resolved,
        body: KeyOperationParameters,
    ) -> Result<Zeroizing<Vec<u8>>> {
        match self.key_operation(op, r, body).await? {
            Ok(out) => Ok(Zeroizing::new(out.result.unwrap_or_default())),
            Err(e) if status_of(&e) == Some(400) => Err(Error::DecryptionFailed { provider: PROVIDER }),
            Err(e) => Err(self.failed(op, &r.info.name, e)),
        }
    }
}

#[async_trait]
impl Provider for AzureKeyVaultProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        self.metadata.forget(&req.name);
        if req.spec.family() == KeyFamily::Aes && self.kind == VaultKind::Vault {
            req.validate(PROVIDER)?;
            return Err(Error::unsupported(
                PROVIDER,
                format!("creating an {} key in a standard vault", req.spec),
                "AES (oct-HSM) keys exist only on Managed HSM (https://NAME.managedhsm.azure.net); use an \
                 RSA key in a vault, or a Managed HSM",
            ));
        }
        check::create_key(PROVIDER, &self.caps, &req)?;
        check_name(&req.name)?;
        let aes = req.spec.family() == KeyFamily::Aes;
        check_tags(&req.tags, &req.description, usize::from(aes))?;
        // Key Vault adds a version when a name exists; hsm's contract is AlreadyExists. A
        // key created by someone else between this check and the create below still becomes
        // a new version of theirs (Key Vault has no create-if-absent).
        if self.fetch(&req.name, None).await?.is_some() {
            return Err(Error::AlreadyExists { provider: PROVIDER, key: req.name });
        }
        let usage = req.effective_usage();
        let mut tags: HashMap<String, String> = req.tags.clone().into_iter().collect();
        if !req.description.is_empty() {
            tags.insert(TAG_DESCRIPTION.into(), req.description.clone());
        }
        if aes {
            tags.insert(TAG_SPEC.into(), req.spec.to_string());
        }
        let body = CreateKeyParameters {
            kty: Some(mapping::key_type(req.spec, self.kind, self.protection)),
            key_size: match req.spec.family() {
                KeyFamily::Rsa | KeyFamily::Aes => Some(req.spec.bits() as i32),
                _ => None,
            },
            curve: mapping::curve(req.spec),
            key_ops: Some(mapping::key_ops(usage)),
            key_attributes: Some(KeyAttributes { enabled: Some(true), ..Default::default() }),
            tags: Some(tags),
            ..Default::default()
        };
        let key = self
            .call(
                "CreateKey",
                &req.name,
                self.client.create_key(&req.name, Self::content("CreateKey", body)?, None),
            )
            .await?;
        let kid = key.key.as_ref().and_then(|j| j.kid.clone());
        let (info, _) = Self::info_from(
            &req.name,
            key.key.as_ref(),
            key.attributes.as_ref(),
            key.tags.as_ref(),
            kid.as_deref(),
        )?;
        Ok(info)
    }

    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        Ok(self.resolve(key, true).await?.info)
    }

    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        let paging = NamePaging::new(PROVIDER, &req, self.caps.max_page_size)?;
        let pager = self.client.list_key_properties(None).map_err(|e| from_azure("ListKeys", None, e))?;
        let all: Vec<KeyProperties> = self
            .timed("ListKeys", pager.try_collect())
            .await?
            .map_err(|e| from_azure("ListKeys", None, e))?;
        let mut candidates: Vec<String> = all
            .iter()
            .filter_map(|p| {
                let name = p.resource_id().ok()?.name;
                let tags = p.tags.as_ref().map(user_tags).unwrap_or_default();
                let keep = check_name(&name).is_ok()
                    && req.name_prefix.as_deref().is_none_or(|pre| name.starts_with(pre))
                    && paging.is_after(&name)
                    && req.tags.iter().all(|(k, v)| tags.get(k) == Some(v));
                keep.then_some(name)
            })
            .collect();
        candidates.sort();
        candidates.dedup();
        let mut keys = Vec::new();
        for (i, name) in candidates.iter().enumerate() {
            let info = match self.resolve(&KeyRef::new(name), true).await {
                Ok(r) => r.info,
                Err(Error::NotFound { .. } | Error::Unsupported { .. }) => continue,
                Err(e) => return Err(e),
            };
            if req.matches(&info) {
                keys.push(info);
                if keys.len() == paging.size() {
                    let next = (i + 1 < candidates.len()).then(|| paging.token_after(name));
                    return Ok(KeyPage::new(keys, next));
                }
            }
        }
        Ok(KeyPage::new(keys, None))
    }

    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        // Changes go to Key Vault as it is now, and the next call reads the key again.
        self.metadata.forget(key.name());
        let r = self.resolve(&KeyRef::new(key.name()), false).await?;
        let name = r.info.name.clone();
        match r.info.state {
            KeyState::PendingDeletion => return Err(Self::unusable(&name, UnusableReason::PendingDeletion)),
            KeyState::Disabled => return Err(Self::unusable(&name, UnusableReason::Disabled)),
            _ => {}
        }
        let old =
            self.fetch(&name, Some(&r.version)).await?.ok_or_else(|| Error::not_found(PROVIDER, &name))?;
        let new = self.call("RotateKey", &name, self.client.rotate_key(&name, None)).await?;
        // Carry the old version's tags (description, AES size, user tags) and operations
        // over when the service did not.
        let new_version = new.resource_id().ok().and_then(|id| id.version);
        let new_ops = new.key.as_ref().and_then(|j| j.key_ops.clone()).unwrap_or_default();
        let old_ops = old.key.as_ref().and_then(|j| j.key_ops.clone()).unwrap_or_default();
        let same_tags = new.tags.clone().unwrap_or_default() == old.tags.clone().unwrap_or_default();
        if let Some(version) = new_version
            && (!same_tags || new_ops != old_ops)
        {
            let body = UpdateKeyPropertiesParameters {
                tags: Some(old.tags.clone().unwrap_or_default()),
                key_ops: Some(mapping::key_ops(r.info.usage)),
                ..Default::default()
            };
            let options =
                KeyClientUpdateKeyPropertiesOptions { key_version: Some(version), ..Default::default() };
            self.call(
                "UpdateKey",
                &name,
                self.client.update_key_properties(&name, Self::content("UpdateKey", body)?, Some(options)),
            )
            .await?;
        }
        Ok(self.resolve(&KeyRef::new(name), true).await?.info)
    }

    async fn set_key_state(&self, key: &KeyRef, state: KeyState) -> Result<KeyInfo> {
        // Changes go to Key Vault as it is now, and the next call reads the key again.
        self.metadata.forget(key.name());
        if state == KeyState::PendingDeletion {
            return Err(Error::invalid_input(
                PROVIDER,
                "set_key_state takes enabled or disabled; use schedule_deletion to delete a key",
            ));
        }
        let r = self.resolve(&KeyRef::new(key.name()), false).await?;
        if r.info.state == KeyState::PendingDeletion {
            return Err(Self::unusable(&r.info.name, UnusableReason::PendingDeletion));
        }
        self.set_enabled(&r.info.name, state == KeyState::Enabled).await?;
        Ok(self.resolve(&KeyRef::new(&r.info.name), true).await?.info)
    }

    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        // Changes go to Key Vault as it is now, and the next call reads the key again.
        self.metadata.forget(key.name());
        check::deletion_window(PROVIDER, &self.caps.deletion, after)?;
        let r = self.resolve(&KeyRef::new(key.name()), false).await?;
        if r.info.state == KeyState::PendingDeletion
            && let Some(date) = r.info.deletion_date
        {
            return Ok(Deletion::new(&r.info.name, date, false));
        }
        let deleted =
            self.call("DeleteKey", &r.info.name, self.client.delete_key(&r.info.name, None)).await?;
        let date = to_system(deleted.scheduled_purge_date).unwrap_or_else(|| {
            SystemTime::now() + Duration::from_secs(u64::from(self.retention_days) * 86_400)
        });
        Ok(Deletion::new(&r.info.name, date, false))
    }

    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        // Changes go to Key Vault as it is now, and the next call reads the key again.
        self.metadata.forget(key.name());
        let r = self.resolve(&KeyRef::new(key.name()), false).await?;
        if r.info.state != KeyState::PendingDeletion {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("key '{}' has no deletion scheduled (it is {})", r.info.name, r.info.state),
            ));
        }
        self.recover_deleted_key(&r.info.name).await?;
        self.set_enabled(&r.info.name, false).await?;
        Ok(self.resolve(&KeyRef::new(&r.info.name), true).await?.info)
    }

    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        let r = self.resolve_cached(key).await?;
        if r.info.spec.is_symmetric() {
            return Err(Error::invalid_input(
                PROVIDER,
                format!(
                    "key '{}' is an {} key; only asymmetric keys have a public key",
                    r.info.name, r.info.spec
                ),
            ));
        }
        let der = mapping::spki_der(&r.jwk, r.info.spec).ok_or_else(|| Error::Provider {
            provider: PROVIDER,
            code: "KeyBundle".into(),
            message: format!("Key Vault returned no public key parts for key '{}'", r.info.name),
            source: None,
        })?;
        Ok(PublicKey::new(r.info.name, r.version, r.info.spec, der))
    }

    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        let r = self.resolve_cached(key).await?;
        check::encrypt(PROVIDER, &self.caps, &r.info, alg, plaintext.len(), aad)?;
        let gcm = alg == EncryptionAlgorithm::AesGcm;
        let body = KeyOperationParameters {
            algorithm: Some(mapping::encryption(alg, r.info.spec)),
            value: Some(plaintext.to_vec()),
            additional_authenticated_data: aad.filter(|a| gcm && !a.is_empty()).map(<[u8]>::to_vec),
            ..Default::default()
        };
        let out = self
            .key_operation("Encrypt", &r, body)
            .await?
            .map_err(|e| self.failed("Encrypt", &r.info.name, e))?;
        let value = out.result.unwrap_or_default();
        let bytes = if gcm {
            let (iv, tag) = (out.iv.unwrap_or_default(), out.authentication_tag.unwrap_or_default());
            if iv.len() != GCM_IV_LEN || tag.len() != GCM_TAG_LEN {
                return Err(Error::Provider {
                    provider: PROVIDER,
                    code: "EncryptResult".into(),
                    message: format!(
                        "AES-GCM encryption returned a {}-byte iv and a {}-byte tag; hsm expects 12 and 16",
                        iv.len(),
                        tag.len()
                    ),
                    source: None,
                });
            }
            [iv, value, tag].concat()
        } else {
            value
        };
        Ok(Ciphertext::new(r.info.name, r.version, alg, bytes))
    }

    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, ciphertext.key(), "ciphertext")?;
        let r = self.resolve_cached(&KeyRef::new(key.name()).with_version(ciphertext.version())).await?;
        let alg = ciphertext.algorithm();
        check::decrypt(PROVIDER, &self.caps, &r.info, alg, aad)?;
        let bytes = ciphertext.as_bytes();
        let mut body = KeyOperationParameters {
            algorithm: Some(mapping::encryption(alg, r.info.spec)),
            ..Default::default()
        };
        if alg == EncryptionAlgorithm::AesGcm {
            if bytes.len() < GCM_IV_LEN + GCM_TAG_LEN {
                return Err(Error::DecryptionFailed { provider: PROVIDER });
            }
            let (iv, rest) = bytes.split_at(GCM_IV_LEN);
            let (ct, tag) = rest.split_at(rest.len() - GCM_TAG_LEN);
            body.iv = Some(iv.to_vec());
            body.value = Some(ct.to_vec());
            body.authentication_tag = Some(tag.to_vec());
            body.additional_authenticated_data = aad.filter(|a| !a.is_empty()).map(<[u8]>::to_vec);
        } else {
            if bytes.is_empty() {
                return Err(Error::DecryptionFailed { provider: PROVIDER });
            }
            body.value = Some(bytes.to_vec());
        }
        self.open("Decrypt", &r, body).await
    }

    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        let r = self.resolve_cached(key).await?;
        check::sign(PROVIDER, &self.caps, &r.info, alg, &input)?;
        let body = SignParameters {
            algorithm: Some(mapping::signature(alg, r.info.spec)),
            value: Some(digest_of(alg, &input)?),
        };
        let options = KeyClientSignOptions { key_version: Some(r.version.clone()), ..Default::default() };
        let out = self
            .call(
                "Sign",
                &r.info.name,
                self.client.sign(&r.info.name, Self::content("Sign", body)?, Some(options)),
            )
            .await?;
        let raw = out.result.unwrap_or_default();
        let sig = match ecdsa_len(alg) {
            Some(len) if raw.len() == 2 * len => mapping::ecdsa_raw_to_der(&raw).unwrap_or_default(),
            Some(len) => {
                return Err(Error::Provider {
                    provider: PROVIDER,
                    code: "SignResult".into(),
                    message: format!(
                        "Key Vault returned a {}-byte {alg} signature; expected {}",
                        raw.len(),
                        2 * len
                    ),
                    source: None,
                });
            }
            None => raw,
        };
        Ok(Signature::new(r.info.name, r.version, alg, sig))
    }

    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let r = self.resolve_cached(key).await?;
        check::sign(PROVIDER, &self.caps, &r.info, alg, &input)?;
        check::signature_len(PROVIDER, &r.info, alg, signature.len())?;
        let sig = match ecdsa_len(alg) {
            Some(len) => match mapping::ecdsa_der_to_raw(signature, len) {
                Some(raw) => raw,
                None => return Ok(false),
            },
            None => signature.to_vec(),
        };
        let body = VerifyParameters {
            algorithm: Some(mapping::signature(alg, r.info.spec)),
            digest: Some(digest_of(alg, &input)?),
            signature: Some(sig),
        };
        let sent = self
            .send(
                "Verify",
                self.client.verify(&r.info.name, &r.version, Self::content("Verify", body)?, None),
            )
            .await?;
        match sent {
            Ok(out) => Ok(out.value.unwrap_or(false)),
            // The request was checked above; what the service still refuses is the signature.
            Err(e) if status_of(&e) == Some(400) => Ok(false),
            Err(e) => Err(self.failed("Verify", &r.info.name, e)),
        }
    }

    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey> {
        let r = self.resolve_cached(key).await?;
        check::wrap(PROVIDER, &self.caps, &r.info, alg, Some(key_material.len()))?;
        let body = KeyOperationParameters {
            algorithm: Some(mapping::wrap(alg, r.info.spec)),
            value: Some(key_material.to_vec()),
            ..Default::default()
        };
        let out = self
            .key_operation("WrapKey", &r, body)
            .await?
            .map_err(|e| self.failed("WrapKey", &r.info.name, e))?;
        Ok(WrappedKey::new(r.info.name, r.version, alg, out.result.unwrap_or_default()))
    }

    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, wrapped.key(), "wrapped key")?;
        let r = self.resolve_cached(&KeyRef::new(key.name()).with_version(wrapped.version())).await?;
        check::wrap(PROVIDER, &self.caps, &r.info, wrapped.algorithm(), None)?;
        if wrapped.as_bytes().is_empty() {
            return Err(Error::DecryptionFailed { provider: PROVIDER });
        }
        let body = KeyOperationParameters {
            algorithm: Some(mapping::wrap(wrapped.algorithm(), r.info.spec)),
            value: Some(wrapped.as_bytes().to_vec()),
            ..Default::default()
        };
        self.open("UnwrapKey", &r, body).await
    }

    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, _message: &[u8]) -> Result<MacTag> {
        let r = self.resolve_cached(key).await?;
        check::mac(PROVIDER, &self.caps, &r.info, alg)?;
        Err(Error::unsupported(PROVIDER, format!("{alg}"), "Key Vault has no HMAC keys"))
    }

    async fn verify_mac(
        &self,
        key: &KeyRef,
        alg: MacAlgorithm,
        _message: &[u8],
        _tag: &[u8],
    ) -> Result<bool> {
        let r = self.resolve_cached(key).await?;
        check::mac(PROVIDER, &self.caps, &r.info, alg)?;
        Err(Error::unsupported(PROVIDER, format!("{alg}"), "Key Vault has no HMAC keys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_underscores_are_refused_with_the_reason() {
        let e = check_name("a_b").unwrap_err().to_string();
        assert!(e.contains("only letters, digits and '-'"), "{e}");
        assert!(check_name("a-B-9").is_ok());
    }

    #[test]
    fn reserved_and_excess_tags_are_refused() {
        let mut tags = BTreeMap::new();
        tags.insert("hsm:x".to_owned(), "1".to_owned());
        assert!(check_tags(&tags, "", 0).unwrap_err().to_string().contains("reserves"));
        let many: BTreeMap<_, _> = (0..15).map(|i| (format!("t{i}"), "v".to_owned())).collect();
        assert!(check_tags(&many, "", 0).is_ok());
        assert!(check_tags(&many, "d", 0).unwrap_err().to_string().contains("15 tags"));
        assert!(check_tags(&BTreeMap::new(), &"x".repeat(257), 0).is_err());
    }

    #[test]
    fn messages_are_hashed_with_the_algorithms_digest() {
        let d = digest_of(SignatureAlgorithm::EcdsaSha384, &SignInput::Message(b"m")).unwrap();
        assert_eq!(d.len(), 48);
        let d = digest_of(SignatureAlgorithm::RsaPssSha256, &SignInput::Digest(&[7; 32])).unwrap();
        assert_eq!(d, vec![7; 32]);
    }
}
