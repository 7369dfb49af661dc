//! [`AwsKmsProvider`]: the [`Provider`] implementation over `aws_sdk_kms::Client`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    EncryptionAlgorithmSpec, KeyMetadata, KeySpec as KmsSpec, KeyState as KmsState, KeyUsageType,
    MacAlgorithmSpec, MessageType, SigningAlgorithmSpec, Tag,
};
use base64::Engine as _;
use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, DeletionPolicy, EncryptionAlgorithm, Error, KeyFamily,
    KeyInfo, KeyPage, KeyRef, KeySpec, KeyState, KeyUsage, ListKeys, MacAlgorithm, MacTag, Provider,
    PublicKey, Result, SignInput, Signature, SignatureAlgorithm, SpecCapabilities, UnusableReason,
    WrapAlgorithm, WrappedKey, Zeroizing, check, paging::NamePaging, validate_key_name,
};

use crate::PROVIDER;
use crate::config::AwsConfig;
use crate::error::{code_of, from_sdk};

/// Tag holding the hsm key name on every KMS key hsm creates.
pub const TAG_NAME: &str = "hsm:name";
/// Tag holding the hsm version number of a KMS key.
pub const TAG_VERSION: &str = "hsm:version";
/// Tag holding the hsm usage (`encrypt`, `wrap`, `sign`, `mac`), which KMS cannot tell apart
/// for `ENCRYPT_DECRYPT` keys.
pub const TAG_USAGE: &str = "hsm:usage";
/// The encryption-context key that carries the AAD (base64, standard alphabet, padded).
pub const AAD_CONTEXT_KEY: &str = "hsm:aad";
/// The encryption-context key marking an encrypted empty plaintext (see the crate docs).
pub const EMPTY_CONTEXT_KEY: &str = "hsm:empty";
/// The largest message AWS KMS signs as `RAW` (and the largest symmetric plaintext).
pub const MAX_RAW: usize = 4096;

const DAY: u64 = 86_400;

/// The AWS KMS provider.
///
/// Keys are named by aliases (`alias/NAME`); see the [crate docs](crate) for the mapping of
/// names, versions, AAD and tags onto KMS. Cloning is cheap (the SDK client is shared).
#[derive(Clone)]
pub struct AwsKmsProvider {
    client: Client,
    caps: Capabilities,
    cache: Arc<MetadataCache>,
    verify: Verification,
}

/// Where [`Provider::verify`] checks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Verification {
    /// KMS `Verify` (needs `kms:Verify`; every check is in CloudTrail).
    #[default]
    Service,
    /// Locally with the key's public key, fetched once per key version with `GetPublicKey`
    /// and kept with the key's cached metadata: no request per verification. The answers
    /// are the same as the service's (the conformance kit runs both).
    Local,
}

/// How long key metadata is reused by default (see [`AwsKmsProvider::with_metadata_ttl`]).
pub const DEFAULT_METADATA_TTL: Duration = Duration::from_secs(30);

/// Key metadata by name, so that data-plane calls cost one KMS request instead of three
/// (DescribeKey, ListResourceTags, then the operation).
struct MetadataCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Arc<Cached>>>,
}

/// What a name resolved to: its metadata, the KMS key of its current version, and the KMS
/// keys of older versions looked up so far, and public keys fetched so far (by version).
#[derive(Clone)]
struct Cached {
    info: Arc<KeyInfo>,
    current_id: String,
    version_ids: BTreeMap<String, String>,
    public_keys: BTreeMap<String, bytes::Bytes>,
    at: Instant,
}

impl MetadataCache {
    fn new(ttl: Duration) -> Self {
        MetadataCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Cached>>> {
        // A panic while holding the lock leaves only a map of plain data behind.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, name: &str) -> Option<Arc<Cached>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries();
        entries.get(name).filter(|c| c.at.elapsed() < self.ttl).cloned()
    }

    fn put(&self, name: &str, entry: Arc<Cached>) {
        if !self.ttl.is_zero() {
            self.entries().insert(name.to_owned(), entry);
        }
    }

    fn remember_version(&self, name: &str, version: &str, key_id: &str) {
        if let Some(c) = self.entries().get_mut(name) {
            Arc::make_mut(c).version_ids.insert(version.to_owned(), key_id.to_owned());
        }
    }

    fn remember_public_key(&self, name: &str, version: &str, der: &bytes::Bytes) {
        if let Some(c) = self.entries().get_mut(name) {
            Arc::make_mut(c).public_keys.insert(version.to_owned(), der.clone());
        }
    }

    fn public_key(&self, name: &str, version: &str) -> Option<bytes::Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        self.entries().get(name).filter(|c| c.at.elapsed() < self.ttl)?.public_keys.get(version).cloned()
    }

    fn forget(&self, name: &str) {
        self.entries().remove(name);
    }
}

impl fmt::Debug for AwsKmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conf = self.client.config();
        f.debug_struct("AwsKmsProvider")
            .field("region", &conf.region().map(|r| r.as_ref().to_owned()))
            .field("metadata_ttl", &self.cache.ttl)
            .field("verify", &self.verify)
            .finish()
    }
}

/// What AWS KMS supports, as hsm vocabulary.
pub fn aws_capabilities() -> Capabilities {
    use EncryptionAlgorithm as E;
    use SignatureAlgorithm as S;
    let rsa = SpecCapabilities::new()
        .with_usages([KeyUsage::EncryptDecrypt, KeyUsage::SignVerify, KeyUsage::WrapUnwrap])
        .with_encryption([E::RsaOaepSha1, E::RsaOaepSha256])
        .with_signature([
            S::RsaPkcs1v15Sha256,
            S::RsaPkcs1v15Sha384,
            S::RsaPkcs1v15Sha512,
            S::RsaPssSha256,
            S::RsaPssSha384,
            S::RsaPssSha512,
        ])
        .with_wrap([WrapAlgorithm::RsaOaepSha256])
        .with_rotation(true)
        .with_sign_digest(true);
    let ec = |alg| {
        SpecCapabilities::new()
            .with_usages([KeyUsage::SignVerify])
            .with_signature([alg])
            .with_rotation(true)
            .with_sign_digest(true)
    };
    let hmac = |alg| SpecCapabilities::new().with_usages([KeyUsage::Mac]).with_mac([alg]).with_rotation(true);
    Capabilities::new()
        .with_spec(
            KeySpec::Aes256,
            SpecCapabilities::new()
                .with_usages([KeyUsage::EncryptDecrypt, KeyUsage::WrapUnwrap])
                .with_encryption([E::AesGcm])
                .with_wrap([WrapAlgorithm::AesGcm])
                .with_rotation(true)
                .with_max_plaintext_len(MAX_RAW),
        )
        .with_spec(KeySpec::Rsa2048, rsa.clone())
        .with_spec(KeySpec::Rsa3072, rsa.clone())
        .with_spec(KeySpec::Rsa4096, rsa)
        .with_spec(KeySpec::EcP256, ec(S::EcdsaSha256))
        .with_spec(KeySpec::EcSecp256k1, ec(S::EcdsaSha256))
        .with_spec(KeySpec::EcP384, ec(S::EcdsaSha384))
        .with_spec(KeySpec::EcP521, ec(S::EcdsaSha512))
        // Pure Ed25519 (ED25519_SHA_512) signs the message itself, so only RAW messages of
        // 1 to 4096 bytes; there is no local pre-hash to fall back on.
        .with_spec(
            KeySpec::Ed25519,
            SpecCapabilities::new()
                .with_usages([KeyUsage::SignVerify])
                .with_signature([S::Ed25519])
                .with_rotation(true),
        )
        .with_spec(KeySpec::HmacSha256, hmac(MacAlgorithm::HmacSha256))
        .with_spec(KeySpec::HmacSha384, hmac(MacAlgorithm::HmacSha384))
        .with_spec(KeySpec::HmacSha512, hmac(MacAlgorithm::HmacSha512))
        .with_deletion(DeletionPolicy::new(
            Duration::from_secs(7 * DAY),
            Duration::from_secs(30 * DAY),
            Duration::from_secs(30 * DAY),
            true,
        ))
        .with_max_page_size(100)
}

fn alias(name: &str) -> String {
    format!("alias/{name}")
}

/// The alias that keeps version `v` of a key rotated by alias move.
fn version_alias(name: &str, v: u32) -> String {
    format!("alias/{name}/v{v}")
}

fn kms_spec(spec: KeySpec) -> KmsSpec {
    match spec {
        KeySpec::Rsa2048 => KmsSpec::Rsa2048,
        KeySpec::Rsa3072 => KmsSpec::Rsa3072,
        KeySpec::Rsa4096 => KmsSpec::Rsa4096,
        KeySpec::EcP256 => KmsSpec::EccNistP256,
        KeySpec::EcP384 => KmsSpec::EccNistP384,
        KeySpec::EcP521 => KmsSpec::EccNistP521,
        KeySpec::EcSecp256k1 => KmsSpec::EccSecgP256K1,
        KeySpec::Ed25519 => KmsSpec::EccNistEdwards25519,
        KeySpec::HmacSha256 => KmsSpec::Hmac256,
        KeySpec::HmacSha384 => KmsSpec::Hmac384,
        KeySpec::HmacSha512 => KmsSpec::Hmac512,
        _ => KmsSpec::SymmetricDefault,
    }
}

fn hsm_spec(name: &str, spec: Option<&KmsSpec>) -> Result<KeySpec> {
    Ok(match spec {
        Some(KmsSpec::SymmetricDefault) | None => KeySpec::Aes256,
        Some(KmsSpec::Rsa2048) => KeySpec::Rsa2048,
        Some(KmsSpec::Rsa3072) => KeySpec::Rsa3072,
        Some(KmsSpec::Rsa4096) => KeySpec::Rsa4096,
        Some(KmsSpec::EccNistP256) => KeySpec::EcP256,
        Some(KmsSpec::EccNistP384) => KeySpec::EcP384,
        Some(KmsSpec::EccNistP521) => KeySpec::EcP521,
        Some(KmsSpec::EccSecgP256K1) => KeySpec::EcSecp256k1,
        Some(KmsSpec::EccNistEdwards25519) => KeySpec::Ed25519,
        Some(KmsSpec::Hmac256) => KeySpec::HmacSha256,
        Some(KmsSpec::Hmac384) => KeySpec::HmacSha384,
        Some(KmsSpec::Hmac512) => KeySpec::HmacSha512,
        Some(other) => {
            return Err(Error::unsupported(
                PROVIDER,
                format!("using key '{name}' (KMS key spec {})", other.as_str()),
                "hsm does not model this AWS key spec; use the AWS SDK directly for it",
            ));
        }
    })
}

fn kms_usage(usage: KeyUsage) -> KeyUsageType {
    match usage {
        KeyUsage::SignVerify => KeyUsageType::SignVerify,
        KeyUsage::Mac => KeyUsageType::GenerateVerifyMac,
        _ => KeyUsageType::EncryptDecrypt,
    }
}

fn encryption_spec(alg: EncryptionAlgorithm) -> EncryptionAlgorithmSpec {
    match alg {
        EncryptionAlgorithm::RsaOaepSha1 => EncryptionAlgorithmSpec::RsaesOaepSha1,
        EncryptionAlgorithm::RsaOaepSha256 => EncryptionAlgorithmSpec::RsaesOaepSha256,
        _ => EncryptionAlgorithmSpec::SymmetricDefault,
    }
}

fn wrap_spec(alg: WrapAlgorithm) -> EncryptionAlgorithmSpec {
    match alg {
        WrapAlgorithm::RsaOaepSha256 => EncryptionAlgorithmSpec::RsaesOaepSha256,
        _ => EncryptionAlgorithmSpec::SymmetricDefault,
    }
}

fn signing_spec(alg: SignatureAlgorithm) -> SigningAlgorithmSpec {
    use SignatureAlgorithm as S;
    match alg {
        S::RsaPkcs1v15Sha256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        S::RsaPkcs1v15Sha384 => SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
        S::RsaPkcs1v15Sha512 => SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
        S::RsaPssSha256 => SigningAlgorithmSpec::RsassaPssSha256,
        S::RsaPssSha384 => SigningAlgorithmSpec::RsassaPssSha384,
        S::RsaPssSha512 => SigningAlgorithmSpec::RsassaPssSha512,
        S::EcdsaSha256 => SigningAlgorithmSpec::EcdsaSha256,
        S::EcdsaSha384 => SigningAlgorithmSpec::EcdsaSha384,
        S::EcdsaSha512 => SigningAlgorithmSpec::EcdsaSha512,
        _ => SigningAlgorithmSpec::Ed25519Sha512,
    }
}

fn mac_spec(alg: MacAlgorithm) -> MacAlgorithmSpec {
    match alg {
        MacAlgorithm::HmacSha384 => MacAlgorithmSpec::HmacSha384,
        MacAlgorithm::HmacSha512 => MacAlgorithmSpec::HmacSha512,
        _ => MacAlgorithmSpec::HmacSha256,
    }
}

fn mac_len(alg: MacAlgorithm) -> usize {
    match alg {
        MacAlgorithm::HmacSha384 => 48,
        MacAlgorithm::HmacSha512 => 64,
        _ => 32,
    }
}

/// The encryption context an AAD maps to: none for `None` or empty AAD (as AES-GCM treats
/// them alike), else `{"hsm:aad": base64(aad)}`.
pub fn encryption_context(aad: Option<&[u8]>) -> Option<(String, String)> {
    aad.filter(|a| !a.is_empty())
        .map(|a| (AAD_CONTEXT_KEY.to_owned(), base64::engine::general_purpose::STANDARD.encode(a)))
}

fn time(t: Option<&aws_sdk_kms::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// Rotation by a new KMS key and an alias move (everything but AES keys).
fn rotates_by_alias(spec: KeySpec) -> bool {
    spec.family() != KeyFamily::Aes
}

/// A key as resolved for one call.
struct Resolved {
    /// The key's metadata (current version, state of the current KMS key), shared with the
    /// cache: resolving a cached key copies no metadata.
    info: Arc<KeyInfo>,
    /// The version asked for (or the current one).
    version: String,
    /// The KMS key id holding that version.
    key_id: String,
    /// The KMS key id of the current version.
    current_id: String,
}

impl AwsKmsProvider {
    /// A provider over an existing SDK client.
    pub fn from_client(client: Client) -> Self {
        AwsKmsProvider {
            client,
            caps: aws_capabilities(),
            cache: Arc::new(MetadataCache::new(DEFAULT_METADATA_TTL)),
            verify: Verification::Service,
        }
    }

    /// Reuses a key's metadata (spec, state, versions, KMS key ids) for `ttl` in encrypt,
    /// decrypt, sign, verify, wrap, unwrap, MAC and public-key calls, which then cost one KMS
    /// request instead of three. `get_key`, `list_keys` and every change (rotate, enable,
    /// disable, deletion) always read KMS afresh, and every change made through this provider
    /// (or its clones) is seen at once. Changes made by another process: a key disabled or
    /// scheduled for deletion elsewhere is refused by KMS at once and its entry dropped; only
    /// enabled keys are cached, so a key enabled elsewhere works at once; a rotation or alias
    /// move made elsewhere is seen within `ttl`. `Duration::ZERO` turns the cache off. The
    /// default is [`DEFAULT_METADATA_TTL`].
    #[must_use]
    pub fn with_metadata_ttl(mut self, ttl: Duration) -> Self {
        self.cache = Arc::new(MetadataCache::new(ttl));
        self
    }

    /// Checks signatures with KMS `Verify` (the default) or locally with the cached public
    /// key; see [`Verification`].
    #[must_use]
    pub fn with_verification(mut self, verify: Verification) -> Self {
        self.verify = verify;
        self
    }

    /// A provider for `config` (the standard AWS chain with its overrides). No call is made.
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed region or endpoint, or when no region is found.
    pub async fn connect(config: &AwsConfig) -> Result<Self> {
        Ok(Self::from_client(Client::from_conf(config.sdk_config().await?))
            .with_metadata_ttl(config.metadata_cache_ttl())
            .with_verification(config.verification_mode()))
    }

    /// A provider configured from the standard AWS chain only.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn from_env() -> Result<Self> {
        Self::connect(&AwsConfig::new()).await
    }

    /// Wraps a native AWS ciphertext (the `CiphertextBlob` of an `Encrypt` call made by another
    /// AWS tool under the KMS key `key` names) so that [`Provider::decrypt`] opens it. It is
    /// recorded under the key's current version; AAD given to `decrypt` becomes the
    /// encryption context as usual, so a blob encrypted with context `{"hsm:aad": base64(aad)}`
    /// opens with `aad`, and one encrypted without context opens with no AAD.
    ///
    /// The other direction needs no conversion: [`Ciphertext::as_bytes`] of an hsm-aws
    /// ciphertext is the native `CiphertextBlob` (see the crate docs for its context).
    ///
    /// # Errors
    /// `NotFound`; `InvalidInput` when `alg` does not fit the key or the blob is empty.
    pub async fn native_ciphertext(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        blob: Vec<u8>,
    ) -> Result<Ciphertext> {
        let r = self.resolve(&KeyRef::new(key.name())).await?;
        if !alg.fits(r.info.spec) {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("{alg} cannot be used with key '{}' ({})", r.info.name, r.info.spec),
            ));
        }
        if blob.is_empty() {
            return Err(Error::invalid_input(PROVIDER, "the native ciphertext is empty"));
        }
        Ok(Ciphertext::new(r.info.name.clone(), r.version, alg, blob))
    }

    /// The SDK client, for operations hsm does not model.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn describe(&self, id: &str, name: &str) -> Result<KeyMetadata> {
        let out = self
            .client
            .describe_key()
            .key_id(id)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeKey", Some(name), e))?;
        out.key_metadata.ok_or_else(|| Error::Provider {
            provider: PROVIDER,
            code: "DescribeKey".into(),
            message: format!("DescribeKey of {id} returned no metadata"),
            source: None,
        })
    }

    async fn tags(&self, key_id: &str, name: &str) -> Result<BTreeMap<String, String>> {
        let mut tags = BTreeMap::new();
        let mut marker = None;
        loop {
            let out = self
                .client
                .list_resource_tags()
                .key_id(key_id)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| from_sdk("ListResourceTags", Some(name), e))?;
            for t in out.tags() {
                tags.insert(t.tag_key().to_owned(), t.tag_value().to_owned());
            }
            match (out.truncated, out.next_marker) {
                (true, Some(m)) => marker = Some(m),
                _ => break,
            }
        }
        Ok(tags)
    }

    fn info_from(name: &str, meta: &KeyMetadata, tags: &BTreeMap<String, String>) -> Result<KeyInfo> {
        let spec = hsm_spec(name, meta.key_spec())?;
        let usage = match tags.get(TAG_USAGE).and_then(|u| u.parse::<KeyUsage>().ok()) {
            Some(u) => u,
            None => match meta.key_usage() {
                Some(KeyUsageType::SignVerify) => KeyUsage::SignVerify,
                Some(KeyUsageType::GenerateVerifyMac) => KeyUsage::Mac,
                _ => KeyUsage::EncryptDecrypt,
            },
        };
        let version =
            tags.get(TAG_VERSION).and_then(|v| v.parse::<u32>().ok()).filter(|v| *v >= 1).unwrap_or(1);
        let mut info = KeyInfo::new(name, version.to_string(), spec, usage);
        info.versions = (1..=version).map(|v| v.to_string()).collect();
        info.state = match meta.key_state() {
            Some(KmsState::Enabled) | None => KeyState::Enabled,
            Some(KmsState::PendingDeletion | KmsState::PendingReplicaDeletion) => KeyState::PendingDeletion,
            Some(_) => KeyState::Disabled,
        };
        info.description = meta.description().unwrap_or_default().to_owned();
        info.tags = tags
            .iter()
            .filter(|(k, _)| !k.starts_with("hsm:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        info.created = time(meta.creation_date()).unwrap_or(SystemTime::UNIX_EPOCH);
        info.deletion_date = match info.state {
            KeyState::PendingDeletion => time(meta.deletion_date()),
            _ => None,
        };
        info.native_id = meta.arn().unwrap_or(meta.key_id()).to_owned();
        Ok(info)
    }

    /// Looks a key up by name, and the KMS key of the version `key` pins (or the current),
    /// reusing cached metadata (see [`with_metadata_ttl`](Self::with_metadata_ttl)).
    async fn resolve(&self, key: &KeyRef) -> Result<Resolved> {
        let name = key.name();
        validate_key_name(PROVIDER, name)?;
        let cached = match self.cache.get(name) {
            Some(c) => c,
            None => self.describe_fresh(name).await?,
        };
        self.pick_version(key, cached).await
    }

    /// As [`resolve`](Self::resolve), always reading KMS (and refreshing the cache).
    async fn resolve_fresh(&self, key: &KeyRef) -> Result<Resolved> {
        validate_key_name(PROVIDER, key.name())?;
        let cached = self.describe_fresh(key.name()).await?;
        self.pick_version(key, cached).await
    }

    /// DescribeKey + ListResourceTags of a name's alias, remembered in the cache.
    async fn describe_fresh(&self, name: &str) -> Result<Arc<Cached>> {
        self.cache.forget(name);
        let meta = self.describe(&alias(name), name).await?;
        let tags = self.tags(meta.key_id(), name).await?;
        let info = Self::info_from(name, &meta, &tags)?;
        let entry = Arc::new(Cached {
            info: Arc::new(info),
            current_id: meta.key_id().to_owned(),
            version_ids: BTreeMap::new(),
            public_keys: BTreeMap::new(),
            at: Instant::now(),
        });
        // Only usable keys are kept: a refusal made from a cached "disabled" would outlive
        // the key being enabled again elsewhere, while a call to an enabled key that has since
        // been disabled is refused by KMS itself (and then forgotten).
        if entry.info.state == KeyState::Enabled {
            self.cache.put(name, entry.clone());
        }
        Ok(entry)
    }

    async fn pick_version(&self, key: &KeyRef, c: Arc<Cached>) -> Result<Resolved> {
        let name = key.name();
        let (info, current_id) = (c.info.clone(), c.current_id.clone());
        let current = info.version.clone();
        let Some(v) = key.version() else {
            return Ok(Resolved { info, version: current, key_id: current_id.clone(), current_id });
        };
        let n = match v.parse::<u32>() {
            Ok(n) if n >= 1 && info.versions.iter().any(|x| x == v) => n,
            _ => return Err(Error::not_found(PROVIDER, key.to_string())),
        };
        if v == current || !rotates_by_alias(info.spec) {
            return Ok(Resolved { info, version: v.to_owned(), key_id: current_id.clone(), current_id });
        }
        if let Some(id) = c.version_ids.get(v) {
            return Ok(Resolved { info, version: v.to_owned(), key_id: id.clone(), current_id });
        }
        let old = match self.describe(&version_alias(name, n), name).await {
            Err(Error::NotFound { .. }) => return Err(Error::not_found(PROVIDER, key.to_string())),
            other => other?,
        };
        self.cache.remember_version(name, v, old.key_id());
        Ok(Resolved { info, version: v.to_owned(), key_id: old.key_id().to_owned(), current_id })
    }

    /// Maps an SDK error, dropping the name's cached metadata when KMS says it no longer
    /// holds: the key is gone, disabled, pending deletion or not of the recorded kind.
    /// The SPKI DER of the resolved version's public key: cached, or fetched with
    /// GetPublicKey and cached.
    async fn public_key_der(&self, r: &Resolved) -> Result<bytes::Bytes> {
        if let Some(der) = self.cache.public_key(&r.info.name, &r.version) {
            return Ok(der);
        }
        let out = self
            .client
            .get_public_key()
            .key_id(&r.key_id)
            .send()
            .await
            .map_err(|e| self.failed("GetPublicKey", &r.info.name, e))?;
        let der = bytes::Bytes::from(out.public_key.map(Blob::into_inner).unwrap_or_default());
        self.cache.remember_public_key(&r.info.name, &r.version, &der);
        Ok(der)
    }

    fn failed<E, R>(&self, op: &str, name: &str, err: aws_sdk_kms::error::SdkError<E, R>) -> Error
    where
        E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let err = from_sdk(op, Some(name), err);
        if matches!(err, Error::NotFound { .. } | Error::KeyUnusable { .. } | Error::InvalidInput { .. }) {
            self.cache.forget(name);
        }
        err
    }

    /// The KMS keys of every version of a key (the current one first).
    async fn all_versions(&self, r: &Resolved) -> Result<Vec<String>> {
        let mut ids = vec![r.current_id.clone()];
        if rotates_by_alias(r.info.spec) {
            for v in r.info.versions.iter().filter(|v| **v != r.info.version) {
                let Ok(n) = v.parse::<u32>() else { continue };
                match self.describe(&version_alias(&r.info.name, n), &r.info.name).await {
                    Ok(m) => ids.push(m.key_id().to_owned()),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(ids)
    }

    /// Creates a KMS key tagged with the hsm name, version and usage.
    async fn new_kms_key(
        &self,
        name: &str,
        spec: KeySpec,
        usage: KeyUsage,
        description: &str,
        user_tags: &BTreeMap<String, String>,
        version: u32,
    ) -> Result<(KeyMetadata, BTreeMap<String, String>)> {
        let mut tags = user_tags.clone();
        tags.insert(TAG_NAME.into(), name.into());
        tags.insert(TAG_VERSION.into(), version.to_string());
        tags.insert(TAG_USAGE.into(), usage.to_string());
        let mut req = self.client.create_key().key_spec(kms_spec(spec)).key_usage(kms_usage(usage));
        if !description.is_empty() {
            req = req.description(description);
        }
        for (k, v) in &tags {
            let tag = Tag::builder().tag_key(k).tag_value(v).build().map_err(|e| {
                Error::invalid_input(PROVIDER, format!("tag '{k}' cannot be sent to AWS KMS: {e}"))
            })?;
            req = req.tags(tag);
        }
        let out = req.send().await.map_err(|e| from_sdk("CreateKey", Some(name), e))?;
        let meta = out.key_metadata.ok_or_else(|| Error::Provider {
            provider: PROVIDER,
            code: "CreateKey".into(),
            message: "CreateKey returned no metadata".into(),
            source: None,
        })?;
        Ok((meta, tags))
    }

    /// Best effort: schedules deletion of a KMS key hsm created but could not name.
    async fn drop_orphan(&self, key_id: &str) {
        if let Err(e) =
            self.client.schedule_key_deletion().key_id(key_id).pending_window_in_days(7).send().await
        {
            tracing::warn!(key_id, error = %aws_sdk_kms::error::DisplayErrorContext(&e), "could not schedule deletion of an orphaned KMS key");
        }
    }

    fn unusable(name: &str, reason: UnusableReason) -> Error {
        Error::KeyUnusable { provider: PROVIDER, key: name.to_owned(), reason }
    }

    /// Symmetric keys only encrypt with their current material.
    fn current_only(r: &Resolved) -> Result<()> {
        if r.version != r.info.version && !rotates_by_alias(r.info.spec) {
            return Err(Self::unusable(
                &r.info.name,
                UnusableReason::Version(format!(
                    "{} (AWS KMS encrypts only with the current version of a symmetric key)",
                    r.version
                )),
            ));
        }
        Ok(())
    }

    /// Encrypts with KMS. KMS refuses empty plaintext, so under an AES key an empty plaintext
    /// is sent as one zero byte with the extra context `hsm:empty=1`, which no non-empty
    /// plaintext ever gets; RSA keys cannot encrypt empty plaintext on AWS.
    async fn kms_encrypt(
        &self,
        r: &Resolved,
        alg: EncryptionAlgorithmSpec,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let symmetric = alg == EncryptionAlgorithmSpec::SymmetricDefault;
        if plaintext.is_empty() && !symmetric {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("AWS KMS cannot RSA-encrypt an empty plaintext (key '{}')", r.info.name),
            ));
        }
        let empty = plaintext.is_empty();
        let mut req = self
            .client
            .encrypt()
            .key_id(&r.key_id)
            .plaintext(Blob::new(if empty { &[0u8][..] } else { plaintext }))
            .encryption_algorithm(alg);
        if let Some((k, v)) = encryption_context(aad) {
            req = req.encryption_context(k, v);
        }
        if empty {
            req = req.encryption_context(EMPTY_CONTEXT_KEY, "1");
        }
        let out = req.send().await.map_err(|e| self.failed("Encrypt", &r.info.name, e))?;
        Ok(out.ciphertext_blob.map(Blob::into_inner).unwrap_or_default())
    }

    async fn kms_decrypt_once(
        &self,
        r: &Resolved,
        alg: EncryptionAlgorithmSpec,
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        empty: bool,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut req = self
            .client
            .decrypt()
            .key_id(&r.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_algorithm(alg);
        if let Some((k, v)) = encryption_context(aad) {
            req = req.encryption_context(k, v);
        }
        if empty {
            req = req.encryption_context(EMPTY_CONTEXT_KEY, "1");
        }
        match req.send().await {
            Ok(out) => Ok(Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default())),
            // A malformed blob is a decryption failure too; it says nothing more.
            Err(e) if matches!(code_of(&e), Some("ValidationException" | "InvalidCiphertextException")) => {
                Err(Error::DecryptionFailed { provider: PROVIDER })
            }
            Err(e) => Err(self.failed("Decrypt", &r.info.name, e)),
        }
    }

    async fn kms_decrypt(
        &self,
        r: &Resolved,
        alg: EncryptionAlgorithmSpec,
        ciphertext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if ciphertext.is_empty() {
            return Err(Error::DecryptionFailed { provider: PROVIDER });
        }
        match self.kms_decrypt_once(r, alg.clone(), ciphertext, aad, false).await {
            Err(Error::DecryptionFailed { .. }) if alg == EncryptionAlgorithmSpec::SymmetricDefault => {
                let pt = self.kms_decrypt_once(r, alg, ciphertext, aad, true).await?;
                if pt.as_slice() == [0] {
                    Ok(Zeroizing::new(Vec::new()))
                } else {
                    Err(Error::DecryptionFailed { provider: PROVIDER })
                }
            }
            other => other,
        }
    }

    /// What goes to Sign/Verify: RAW up to 4096 bytes, else a local digest.
    fn sign_payload(alg: SignatureAlgorithm, input: &SignInput<'_>) -> Result<(MessageType, Vec<u8>)> {
        match input {
            SignInput::Digest(d) => Ok((MessageType::Digest, d.to_vec())),
            // KMS signs 1 to 4096 bytes as RAW; anything else is hashed here.
            SignInput::Message(m) if !m.is_empty() && m.len() <= MAX_RAW => {
                Ok((MessageType::Raw, m.to_vec()))
            }
            SignInput::Message(m) => {
                let digest = match alg.digest() {
                    Some(hsm_core::DigestAlgorithm::Sha384) => &aws_lc_rs::digest::SHA384,
                    Some(hsm_core::DigestAlgorithm::Sha512) => &aws_lc_rs::digest::SHA512,
                    Some(_) => &aws_lc_rs::digest::SHA256,
                    None => {
                        return Err(Error::invalid_input(
                            PROVIDER,
                            format!(
                                "{alg} signs messages of 1 to {MAX_RAW} bytes on AWS KMS (it cannot be \
                                 pre-hashed); this message is {} bytes",
                                m.len()
                            ),
                        ));
                    }
                };
                Ok((MessageType::Digest, aws_lc_rs::digest::digest(digest, m).as_ref().to_vec()))
            }
            other => {
                Err(Error::invalid_input(PROVIDER, format!("{other:?} is not a kind of input aws-kms signs")))
            }
        }
    }
}

/// AWS KMS MACs 1 to 4096 bytes (HMAC cannot be computed over a local digest).
fn mac_message_len(len: usize) -> Result<()> {
    if len == 0 || len > MAX_RAW {
        return Err(Error::invalid_input(
            PROVIDER,
            format!("message is {len} bytes; AWS KMS computes MACs over 1 to {MAX_RAW} bytes"),
        ));
    }
    Ok(())
}

fn check_reserved_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for k in tags.keys() {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("hsm:") || lower.starts_with("aws:") {
            return Err(Error::invalid_input(
                PROVIDER,
                format!(
                    "tag key '{k}' uses a reserved prefix (hsm: and aws: belong to hsm and AWS); rename it"
                ),
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl Provider for AwsKmsProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        check::create_key(PROVIDER, &self.caps, &req)?;
        let usage = req.effective_usage();
        check_reserved_tags(&req.tags)?;
        let (meta, tags) =
            self.new_kms_key(&req.name, req.spec, usage, &req.description, &req.tags, 1).await?;
        let key_id = meta.key_id().to_owned();
        if let Err(e) =
            self.client.create_alias().alias_name(alias(&req.name)).target_key_id(&key_id).send().await
        {
            let err = from_sdk("CreateAlias", Some(&req.name), e);
            if matches!(err, Error::Unavailable { .. } | Error::Timeout { .. }) {
                // Ambiguous: KMS may have created the alias before the answer was lost, and
                // deleting the key would then delete the named key. A retry (hsm-layers) finds
                // the name taken and returns the key; if the alias was not made, one unnamed
                // key is left, named in this warning.
                tracing::warn!(key_id, error = %err, "CreateAlias failed ambiguously; keeping the new key");
            } else {
                // Never leave an unnamed key behind.
                self.drop_orphan(&key_id).await;
            }
            return Err(err);
        }
        self.cache.forget(&req.name);
        Self::info_from(&req.name, &meta, &tags)
    }

    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        Ok(self.resolve_fresh(key).await?.info.as_ref().clone())
    }

    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        let paging = NamePaging::new(PROVIDER, &req, self.caps.max_page_size)?;
        let mut candidates: Vec<(String, String)> = Vec::new();
        let mut marker = None;
        loop {
            let out = self
                .client
                .list_aliases()
                .limit(100)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| from_sdk("ListAliases", None, e))?;
            for a in out.aliases() {
                let (Some(alias_name), Some(target)) = (a.alias_name(), a.target_key_id()) else { continue };
                let Some(name) = alias_name.strip_prefix("alias/") else { continue };
                if validate_key_name(PROVIDER, name).is_err()
                    || req.name_prefix.as_deref().is_some_and(|p| !name.starts_with(p))
                    || !paging.is_after(name)
                {
                    continue;
                }
                candidates.push((name.to_owned(), target.to_owned()));
            }
            match (out.truncated, out.next_marker) {
                (true, Some(m)) => marker = Some(m),
                _ => break,
            }
        }
        candidates.sort();
        candidates.dedup_by(|a, b| a.0 == b.0);
        let mut keys = Vec::new();
        for (i, (name, target)) in candidates.iter().enumerate() {
            let meta = match self.describe(target, name).await {
                Ok(m) => m,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let tags = match self.tags(meta.key_id(), name).await {
                Ok(t) => t,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let Ok(info) = Self::info_from(name, &meta, &tags) else { continue };
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
        let r = self.resolve_fresh(&KeyRef::new(key.name())).await?;
        let name = r.info.name.clone();
        match r.info.state {
            KeyState::PendingDeletion => return Err(Self::unusable(&name, UnusableReason::PendingDeletion)),
            KeyState::Disabled => return Err(Self::unusable(&name, UnusableReason::Disabled)),
            _ => {}
        }
        if !self.caps.spec(r.info.spec).is_some_and(|c| c.rotation) {
            return Err(Error::unsupported(
                PROVIDER,
                format!("rotating an {} key", r.info.spec),
                "AWS KMS cannot",
            ));
        }
        let current: u32 = r.info.version.parse().unwrap_or(1);
        let next = current + 1;
        if rotates_by_alias(r.info.spec) {
            let (meta, _) = self
                .new_kms_key(&name, r.info.spec, r.info.usage, &r.info.description, &r.info.tags, next)
                .await?;
            let new_id = meta.key_id().to_owned();
            let moved = async {
                let keep = version_alias(&name, current);
                match self.client.create_alias().alias_name(&keep).target_key_id(&r.current_id).send().await {
                    Ok(_) => {}
                    Err(e) if code_of(&e) == Some("AlreadyExistsException") => {
                        self.client
                            .update_alias()
                            .alias_name(&keep)
                            .target_key_id(&r.current_id)
                            .send()
                            .await
                            .map_err(|e| from_sdk("UpdateAlias", Some(&name), e))?;
                    }
                    Err(e) => return Err(from_sdk("CreateAlias", Some(&name), e)),
                }
                self.client
                    .update_alias()
                    .alias_name(alias(&name))
                    .target_key_id(&new_id)
                    .send()
                    .await
                    .map_err(|e| from_sdk("UpdateAlias", Some(&name), e))?;
                Ok::<(), Error>(())
            }
            .await;
            if let Err(e) = moved {
                self.drop_orphan(&new_id).await;
                return Err(e);
            }
        } else {
            self.client
                .rotate_key_on_demand()
                .key_id(&r.key_id)
                .send()
                .await
                .map_err(|e| from_sdk("RotateKeyOnDemand", Some(&name), e))?;
            let tag =
                Tag::builder().tag_key(TAG_VERSION).tag_value(next.to_string()).build().map_err(|e| {
                    Error::Provider {
                        provider: PROVIDER,
                        code: "Tag".into(),
                        message: e.to_string(),
                        source: None,
                    }
                })?;
            self.client
                .tag_resource()
                .key_id(&r.key_id)
                .tags(tag)
                .send()
                .await
                .map_err(|e| from_sdk("TagResource", Some(&name), e))?;
        }
        Ok(self.resolve_fresh(&KeyRef::new(name)).await?.info.as_ref().clone())
    }

    async fn set_key_state(&self, key: &KeyRef, state: KeyState) -> Result<KeyInfo> {
        if state == KeyState::PendingDeletion {
            return Err(Error::invalid_input(
                PROVIDER,
                "set_key_state takes enabled or disabled; use schedule_deletion to delete a key",
            ));
        }
        let r = self.resolve_fresh(&KeyRef::new(key.name())).await?;
        if r.info.state == KeyState::PendingDeletion {
            return Err(Self::unusable(&r.info.name, UnusableReason::PendingDeletion));
        }
        for id in self.all_versions(&r).await? {
            let sent = match state {
                KeyState::Enabled => self
                    .client
                    .enable_key()
                    .key_id(&id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| from_sdk("EnableKey", Some(&r.info.name), e)),
                _ => self
                    .client
                    .disable_key()
                    .key_id(&id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| from_sdk("DisableKey", Some(&r.info.name), e)),
            };
            sent?;
        }
        self.cache.forget(&r.info.name);
        let mut info = Arc::unwrap_or_clone(r.info);
        info.state = state;
        Ok(info)
    }

    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        let window = check::deletion_window(PROVIDER, &self.caps.deletion, after)?;
        let days = window.as_secs().div_ceil(DAY).clamp(7, 30) as i32;
        let r = self.resolve_fresh(&KeyRef::new(key.name())).await?;
        if r.info.state == KeyState::PendingDeletion
            && let Some(date) = r.info.deletion_date
        {
            return Ok(Deletion::new(&r.info.name, date, false));
        }
        let mut date = None;
        for id in self.all_versions(&r).await? {
            let out = self
                .client
                .schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(days)
                .send()
                .await
                .map_err(|e| from_sdk("ScheduleKeyDeletion", Some(&r.info.name), e))?;
            if date.is_none() {
                date = time(out.deletion_date());
            }
        }
        self.cache.forget(&r.info.name);
        let date =
            date.unwrap_or_else(|| SystemTime::now() + Duration::from_secs(u64::from(days as u32) * DAY));
        Ok(Deletion::new(&r.info.name, date, false))
    }

    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        let r = self.resolve_fresh(&KeyRef::new(key.name())).await?;
        if r.info.state != KeyState::PendingDeletion {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("key '{}' has no deletion scheduled (it is {})", r.info.name, r.info.state),
            ));
        }
        for id in self.all_versions(&r).await? {
            self.client
                .cancel_key_deletion()
                .key_id(&id)
                .send()
                .await
                .map_err(|e| from_sdk("CancelKeyDeletion", Some(&r.info.name), e))?;
        }
        Ok(self.resolve_fresh(&KeyRef::new(key.name())).await?.info.as_ref().clone())
    }

    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        let r = self.resolve(key).await?;
        if r.info.spec.is_symmetric() {
            return Err(Error::invalid_input(
                PROVIDER,
                format!(
                    "key '{}' is an {} key; only asymmetric keys have a public key",
                    r.info.name, r.info.spec
                ),
            ));
        }
        let der = self.public_key_der(&r).await?;
        Ok(PublicKey::new(r.info.name.clone(), r.version, r.info.spec, der.to_vec()))
    }

    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        let r = self.resolve(key).await?;
        check::encrypt(PROVIDER, &self.caps, &r.info, alg, plaintext.len(), aad)?;
        Self::current_only(&r)?;
        let ct = self.kms_encrypt(&r, encryption_spec(alg), plaintext, aad).await?;
        Ok(Ciphertext::new(r.info.name.clone(), r.version, alg, ct))
    }

    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, ciphertext.key(), "ciphertext")?;
        let r = self.resolve(&KeyRef::new(key.name()).with_version(ciphertext.version())).await?;
        check::decrypt(PROVIDER, &self.caps, &r.info, ciphertext.algorithm(), aad)?;
        self.kms_decrypt(&r, encryption_spec(ciphertext.algorithm()), ciphertext.as_bytes(), aad).await
    }

    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        let r = self.resolve(key).await?;
        check::sign(PROVIDER, &self.caps, &r.info, alg, &input)?;
        let (message_type, message) = Self::sign_payload(alg, &input)?;
        let out = self
            .client
            .sign()
            .key_id(&r.key_id)
            .message(Blob::new(message))
            .message_type(message_type)
            .signing_algorithm(signing_spec(alg))
            .send()
            .await
            .map_err(|e| self.failed("Sign", &r.info.name, e))?;
        let sig = out.signature.map(Blob::into_inner).unwrap_or_default();
        Ok(Signature::new(r.info.name.clone(), r.version, alg, sig))
    }

    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let r = self.resolve(key).await?;
        check::sign(PROVIDER, &self.caps, &r.info, alg, &input)?;
        check::signature_len(PROVIDER, &r.info, alg, signature.len())?;
        if self.verify == Verification::Local {
            let der = self.public_key_der(&r).await?;
            return Ok(hsm_crypto::verify(r.info.spec, alg, &der, input, signature));
        }
        let (message_type, message) = Self::sign_payload(alg, &input)?;
        let sent = self
            .client
            .verify()
            .key_id(&r.key_id)
            .message(Blob::new(message))
            .message_type(message_type)
            .signing_algorithm(signing_spec(alg))
            .signature(Blob::new(signature))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.signature_valid),
            Err(e) if code_of(&e) == Some("KMSInvalidSignatureException") => Ok(false),
            Err(e) => Err(self.failed("Verify", &r.info.name, e)),
        }
    }

    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey> {
        let r = self.resolve(key).await?;
        check::wrap(PROVIDER, &self.caps, &r.info, alg, Some(key_material.len()))?;
        if key_material.len() > MAX_RAW {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("key material is {} bytes; AWS KMS wraps at most {MAX_RAW}", key_material.len()),
            ));
        }
        Self::current_only(&r)?;
        let ct = self.kms_encrypt(&r, wrap_spec(alg), key_material, None).await?;
        Ok(WrappedKey::new(r.info.name.clone(), r.version, alg, ct))
    }

    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, wrapped.key(), "wrapped key")?;
        let r = self.resolve(&KeyRef::new(key.name()).with_version(wrapped.version())).await?;
        check::wrap(PROVIDER, &self.caps, &r.info, wrapped.algorithm(), None)?;
        self.kms_decrypt(&r, wrap_spec(wrapped.algorithm()), wrapped.as_bytes(), None).await
    }

    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag> {
        let r = self.resolve(key).await?;
        check::mac(PROVIDER, &self.caps, &r.info, alg)?;
        mac_message_len(message.len())?;
        let out = self
            .client
            .generate_mac()
            .key_id(&r.key_id)
            .message(Blob::new(message))
            .mac_algorithm(mac_spec(alg))
            .send()
            .await
            .map_err(|e| self.failed("GenerateMac", &r.info.name, e))?;
        let tag = out.mac.map(Blob::into_inner).unwrap_or_default();
        Ok(MacTag::new(r.info.name.clone(), r.version, alg, tag))
    }

    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool> {
        let r = self.resolve(key).await?;
        check::mac(PROVIDER, &self.caps, &r.info, alg)?;
        if tag.len() != mac_len(alg) {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("tag is {} bytes; {alg} tags are {} bytes", tag.len(), mac_len(alg)),
            ));
        }
        mac_message_len(message.len())?;
        let sent = self
            .client
            .verify_mac()
            .key_id(&r.key_id)
            .message(Blob::new(message))
            .mac_algorithm(mac_spec(alg))
            .mac(Blob::new(tag))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.mac_valid),
            Err(e) if code_of(&e) == Some("KMSInvalidMacException") => Ok(false),
            Err(e) => Err(self.failed("VerifyMac", &r.info.name, e)),
        }
    }
}
