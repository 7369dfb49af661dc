//! [`GcpKmsProvider`]: the [`Provider`] implementation over
//! `google_cloud_kms_v1::client::KeyManagementService`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{Aip194Strict, NeverRetry, RetryPolicyExt as _};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;
use google_cloud_kms_v1::model::crypto_key_version::{
    CryptoKeyVersionAlgorithm as Alg, CryptoKeyVersionState as VState,
};
use google_cloud_kms_v1::model::{CryptoKey, CryptoKeyVersion, CryptoKeyVersionTemplate, ProtectionLevel};
use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, DeletionPolicy, EncryptionAlgorithm, Error, KeyInfo,
    KeyPage, KeyRef, KeySpec, KeyState, KeyUsage, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey,
    Result, SignInput, Signature, SignatureAlgorithm, SpecCapabilities, UnusableReason, WrapAlgorithm,
    WrappedKey, Zeroizing, check, paging::NamePaging, validate_key_name,
};
use tokio::sync::OnceCell;

use crate::PROVIDER;
use crate::config::{Credentials, GcpConfig, Protection};
use crate::error::{from_gax, integrity};
use crate::local;
use crate::mapping::{self, KeyAlgorithm, crc};

/// Largest plaintext, AAD, message or MAC input of a SOFTWARE key (64 KiB).
pub const MAX_SOFTWARE_INPUT: usize = 64 * 1024;
/// Largest plaintext plus AAD of an HSM key (8 KiB).
pub const MAX_HSM_INPUT: usize = 8 * 1024;
/// AAD prefix marking an encrypted empty plaintext (see the crate docs).
pub const EMPTY_MARKER: &[u8] = b"hsm-gcp:empty-plaintext\0";

const GCM_IV_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// The Google Cloud KMS provider.
///
/// Keys are crypto keys in one key ring; see the [crate docs](crate) for the mapping.
/// Cloning is cheap (the SDK client and caches are shared).
#[derive(Clone)]
pub struct GcpKmsProvider {
    client: KeyManagementService,
    cfg: Arc<GcpConfig>,
    caps: Capabilities,
    ring_ready: Arc<OnceCell<()>>,
    public_keys: Arc<Mutex<HashMap<String, Bytes>>>,
    metadata: Arc<Mutex<HashMap<String, Arc<KeyMeta>>>>,
}

/// A crypto key and its live versions as last read, and when (see
/// [`GcpConfig::metadata_ttl`]).
struct KeyMeta {
    ck: CryptoKey,
    versions: Vec<CryptoKeyVersion>,
    at: std::time::Instant,
}

impl fmt::Debug for GcpKmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpKmsProvider")
            .field("key_ring", &self.cfg.key_ring_name())
            .field("endpoint", &self.cfg.endpoint)
            .finish()
    }
}

/// What Cloud KMS supports under `cfg`, as hsm vocabulary: for each spec exactly the one
/// algorithm `create_key` gives its keys.
pub fn gcp_capabilities(cfg: &GcpConfig) -> Capabilities {
    let limit = match cfg.protection {
        Protection::Hsm => MAX_HSM_INPUT,
        _ => MAX_SOFTWARE_INPUT,
    };
    let mut caps = Capabilities::new();
    for spec in KeySpec::ALL.iter().copied() {
        let mut sc = SpecCapabilities::new().with_rotation(true);
        for usage in KeyUsage::ALL.iter().copied() {
            let Some(alg) = mapping::default_algorithm(cfg, spec, usage).and_then(|a| mapping::describe(&a))
            else {
                continue;
            };
            sc.usages.push(usage);
            match usage {
                KeyUsage::EncryptDecrypt => sc.encryption.extend(alg.encryption),
                KeyUsage::WrapUnwrap => sc.wrap.extend(alg.wrap()),
                KeyUsage::SignVerify => {
                    sc.signature.extend(alg.signature);
                    sc.sign_digest = alg.signature != Some(SignatureAlgorithm::Ed25519);
                }
                KeyUsage::Mac => sc.mac.extend(alg.mac),
                _ => {}
            }
            if spec.is_symmetric() && usage == KeyUsage::EncryptDecrypt {
                sc.max_plaintext_len = Some(limit);
            }
        }
        if !sc.usages.is_empty() {
            caps = caps.with_spec(spec, sc);
        }
    }
    let w = cfg.deletion_window;
    caps.with_deletion(DeletionPolicy::new(w, w, w, true)).with_max_page_size(100)
}

fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn version_number(v: &CryptoKeyVersion) -> u64 {
    last_segment(&v.name).parse().unwrap_or(0)
}

fn time(t: Option<&google_cloud_wkt::Timestamp>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

fn check_crc(op: &str, field: &str, data: &[u8], got: Option<i64>) -> Result<()> {
    if got == Some(crc(data)) { Ok(()) } else { Err(integrity(op, field)) }
}

fn check_flag(op: &str, field: &str, verified: bool) -> Result<()> {
    if verified { Ok(()) } else { Err(integrity(op, field)) }
}

/// The AAD's `verified_*` flag, which must be set whenever AAD was sent (always with its CRC).
fn check_aad_flag(op: &str, aad_sent: bool, verified: bool) -> Result<()> {
    if aad_sent { check_flag(op, "verified_additional_authenticated_data_crc32c", verified) } else { Ok(()) }
}

fn check_name(op: &str, asked: &str, got: &str) -> Result<()> {
    if got.is_empty() || got == asked {
        Ok(())
    } else {
        Err(Error::Unavailable {
            provider: PROVIDER,
            message: format!("{op}: the response names {got}, not the requested {asked}; discarded, retry"),
            retry_after: None,
        })
    }
}

/// A key as resolved for one call.
struct Resolved {
    info: KeyInfo,
    /// `projects/…/cryptoKeys/NAME`.
    key_name: String,
    /// The key's algorithm (of the asked-for version).
    alg: KeyAlgorithm,
    /// The version asked for (or the current one).
    version: String,
    /// Its resource name.
    version_name: String,
    /// Every version that is not destroyed.
    versions: Vec<CryptoKeyVersion>,
}

impl Resolved {
    fn is_symmetric_purpose(&self) -> bool {
        self.alg.purpose() == CryptoKeyPurpose::EncryptDecrypt
    }
}

impl GcpKmsProvider {
    /// A provider over an SDK client you built yourself (the SDK crates are re-exported),
    /// for the key ring and algorithms in `cfg` (whose endpoint, credentials and timeouts are
    /// then unused).
    pub fn from_client(client: KeyManagementService, cfg: GcpConfig) -> Self {
        let caps = gcp_capabilities(&cfg);
        GcpKmsProvider {
            client,
            cfg: Arc::new(cfg),
            caps,
            ring_ready: Arc::new(OnceCell::new()),
            public_keys: Arc::new(Mutex::new(HashMap::new())),
            metadata: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A provider for `cfg`. No call is made.
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed configuration or an unreadable service-account file;
    /// [`Error::Unauthenticated`] when the credentials cannot be set up.
    pub async fn connect(cfg: &GcpConfig) -> Result<Self> {
        cfg.validate()?;
        let mut b = KeyManagementService::builder();
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e.clone());
        }
        match &cfg.credentials {
            Credentials::Anonymous => {
                b = b.with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build());
            }
            Credentials::ServiceAccountFile(path) => {
                let text = std::fs::read(path).map_err(|e| {
                    Error::config(
                        PROVIDER,
                        format!("cannot read service-account file {}: {e}", path.display()),
                    )
                })?;
                let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
                    Error::config(
                        PROVIDER,
                        format!("service-account file {} is not JSON: {e}", path.display()),
                    )
                })?;
                let creds = google_cloud_auth::credentials::service_account::Builder::new(json)
                    .build()
                    .map_err(|e| Error::Unauthenticated {
                        provider: PROVIDER,
                        message: format!("service-account file {} is not usable: {e}", path.display()),
                    })?;
                b = b.with_credentials(creds);
            }
            _ => {}
        }
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(Duration::from_millis(100))
            .with_maximum_delay(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::config(PROVIDER, format!("backoff policy: {e}")))?;
        let b = if cfg.max_attempts <= 1 {
            // hsm-layers owns retries: the SDK never retries (the attempt timeout stays).
            b.with_retry_policy(NeverRetry)
        } else {
            b.with_retry_policy(
                Aip194Strict.with_attempt_limit(cfg.max_attempts).with_time_limit(cfg.operation_timeout),
            )
        };
        let client =
            b.with_backoff_policy(backoff).with_attempt_timeout(cfg.attempt_timeout).build().await.map_err(
                |e| Error::Unauthenticated {
                    provider: PROVIDER,
                    message: format!(
                        "cannot set up the Cloud KMS client: {e}; set GOOGLE_APPLICATION_CREDENTIALS or run \
                     `gcloud auth application-default login` (credentials=anonymous for emulators)"
                    ),
                },
            )?;
        Ok(Self::from_client(client, cfg.clone()))
    }

    /// The SDK client, for operations hsm does not model.
    pub fn client(&self) -> &KeyManagementService {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &GcpConfig {
        &self.cfg
    }

    /// The Cloud KMS algorithm of a key (its pinned or current version) and what it can do
    /// in hsm terms: the one encryption, signature or MAC algorithm the key accepts.
    ///
    /// # Errors
    /// `NotFound`; `Unsupported` for an algorithm hsm does not model.
    pub async fn key_algorithm(&self, key: &KeyRef) -> Result<KeyAlgorithm> {
        Ok(self.resolve(key).await?.alg)
    }

    /// Creates a key with an explicit Cloud KMS algorithm instead of the configured default,
    /// e.g. `RSA_SIGN_PKCS1_2048_SHA256`, `RSA_SIGN_PSS_4096_SHA512`,
    /// `RSA_DECRYPT_OAEP_3072_SHA1` or `AES_256_GCM`. The algorithm must be one hsm models
    /// ([`mapping::describe`]), of `req`'s spec and fit its usage.
    ///
    /// # Errors
    /// As [`Provider::create_key`]; `InvalidInput` when the algorithm does not fit the request.
    pub async fn create_key_with_algorithm(&self, req: CreateKey, algorithm: Alg) -> Result<KeyInfo> {
        req.validate(PROVIDER)?;
        let usage = req.effective_usage();
        let Some(alg) = mapping::describe(&algorithm) else {
            return Err(Error::unsupported(
                PROVIDER,
                format!("creating a key with Cloud KMS algorithm {}", algorithm.name().unwrap_or("?")),
                "hsm does not model it; use the re-exported SDK directly",
            ));
        };
        if alg.spec != req.spec || !mapping::fits_usage(&alg, usage) {
            return Err(Error::invalid_input(
                PROVIDER,
                format!(
                    "Cloud KMS algorithm {} makes {} keys that cannot have usage '{usage}', not {} keys with it",
                    algorithm.name().unwrap_or("?"),
                    alg.spec,
                    req.spec
                ),
            ));
        }
        self.create(req, algorithm).await
    }

    /// Wraps a native Cloud KMS ciphertext (from another client's `Encrypt`, `RawEncrypt` as
    /// `IV ‖ ciphertext ‖ tag`, or an RSA-OAEP encryption with the key's public key) so that
    /// [`Provider::decrypt`] opens it. Symmetric ciphertexts name their version themselves;
    /// raw and RSA ones are recorded under the current version unless `key` pins one.
    ///
    /// # Errors
    /// `NotFound`; `InvalidInput` when the key does not encrypt or the bytes are empty.
    pub async fn native_ciphertext(&self, key: &KeyRef, bytes: Vec<u8>) -> Result<Ciphertext> {
        let r = self.resolve(key).await?;
        let Some(alg) = r.alg.encryption else {
            return Err(Error::invalid_input(PROVIDER, format!("key '{}' does not encrypt", r.info.name)));
        };
        if bytes.is_empty() {
            return Err(Error::invalid_input(PROVIDER, "the native ciphertext is empty"));
        }
        Ok(Ciphertext::new(r.info.name, r.version, alg, bytes))
    }

    fn key_path(&self, name: &str) -> String {
        format!("{}/cryptoKeys/{name}", self.cfg.key_ring_name())
    }

    /// Creates the key ring if allowed and missing (once per provider).
    async fn ensure_ring(&self) -> Result<()> {
        if !self.cfg.create_key_ring {
            return Ok(());
        }
        self.ring_ready
            .get_or_try_init(|| async {
                let ring = self.cfg.key_ring_name();
                match self.client.get_key_ring().set_name(&ring).send().await {
                    Ok(_) => return Ok(()),
                    Err(e) => match from_gax("GetKeyRing", None, e) {
                        Error::NotFound { .. } => {}
                        other => return Err(other),
                    },
                }
                let parent = format!("projects/{}/locations/{}", self.cfg.project, self.cfg.location);
                match self
                    .client
                    .create_key_ring()
                    .set_parent(parent)
                    .set_key_ring_id(&self.cfg.key_ring)
                    .set_key_ring(google_cloud_kms_v1::model::KeyRing::new())
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => match from_gax("CreateKeyRing", None, e) {
                        Error::AlreadyExists { .. } => Ok(()),
                        other => Err(other),
                    },
                }
            })
            .await
            .map(|_| ())
    }

    fn ring_missing(&self, e: Error) -> Error {
        match e {
            Error::NotFound { .. } => Error::config(
                PROVIDER,
                format!(
                    "key ring {} does not exist; create it (gcloud kms keyrings create) or set create_key_ring=true",
                    self.cfg.key_ring_name()
                ),
            ),
            other => other,
        }
    }

    async fn versions(&self, key_name: &str, name: &str) -> Result<Vec<CryptoKeyVersion>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .client
                .list_crypto_key_versions()
                .set_parent(key_name)
                .set_page_size(1000)
                .set_page_token(token)
                .send()
                .await
                .map_err(|e| from_gax("ListCryptoKeyVersions", Some(name), e))?;
            out.extend(page.crypto_key_versions.into_iter().filter(|v| v.state != VState::Destroyed));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        out.sort_by_key(version_number);
        Ok(out)
    }

    /// The key's algorithm and its hsm spec and usage, from the crypto key alone.
    fn key_kind(name: &str, ck: &CryptoKey) -> Result<(KeyAlgorithm, KeyUsage)> {
        let alg = ck
            .primary
            .as_ref()
            .map(|p| p.algorithm.clone())
            .or_else(|| ck.version_template.as_ref().map(|t| t.algorithm.clone()))
            .unwrap_or(Alg::Unspecified);
        let alg = mapping::describe(&alg).ok_or_else(|| {
            Error::unsupported(
                PROVIDER,
                format!("using key '{name}' (Cloud KMS algorithm {})", alg.name().unwrap_or("unknown")),
                "hsm does not model this algorithm; use the re-exported SDK (hsm_gcp::google_cloud_kms_v1)",
            )
        })?;
        let (_, wrap, _) = mapping::read_labels(&ck.labels);
        let usage = if alg.signature.is_some() {
            KeyUsage::SignVerify
        } else if alg.mac.is_some() {
            KeyUsage::Mac
        } else if wrap {
            KeyUsage::WrapUnwrap
        } else {
            KeyUsage::EncryptDecrypt
        };
        Ok((alg, usage))
    }

    /// Builds key metadata from the crypto key and its live versions; `None` when no version
    /// is left (every one destroyed: the key is gone for hsm).
    fn info_from(
        name: &str,
        ck: &CryptoKey,
        versions: &[CryptoKeyVersion],
    ) -> Result<Option<(KeyInfo, KeyAlgorithm)>> {
        let (alg, usage) = Self::key_kind(name, ck)?;
        if versions.is_empty() {
            return Ok(None);
        }
        let current = if alg.purpose() == CryptoKeyPurpose::EncryptDecrypt {
            ck.primary.as_ref().and_then(|p| versions.iter().find(|v| v.name == p.name))
        } else {
            None
        }
        .or_else(|| versions.iter().rev().find(|v| v.state == VState::Enabled))
        .or_else(|| versions.iter().rev().find(|v| v.state != VState::DestroyScheduled))
        .or_else(|| versions.last());
        let Some(current) = current else { return Ok(None) };
        let (tags, _, description) = mapping::read_labels(&ck.labels);
        let mut info = KeyInfo::new(name, last_segment(&current.name), alg.spec, usage);
        info.versions = versions.iter().map(|v| last_segment(&v.name).to_owned()).collect();
        let all_scheduled = versions.iter().all(|v| v.state == VState::DestroyScheduled);
        info.state = if all_scheduled {
            KeyState::PendingDeletion
        } else if matches!(current.state, VState::Enabled | VState::PendingGeneration) {
            KeyState::Enabled
        } else {
            KeyState::Disabled
        };
        info.deletion_date = if all_scheduled {
            versions.iter().filter_map(|v| time(v.destroy_time.as_ref())).min()
        } else {
            None
        };
        info.description = description;
        info.tags = tags;
        info.created = time(ck.create_time.as_ref()).unwrap_or(SystemTime::UNIX_EPOCH);
        info.native_id = ck.name.clone();
        Ok(Some((info, alg)))
    }

    /// Looks a key up by name, and the version `key` pins (or the current one), reusing
    /// metadata read within [`GcpConfig::metadata_ttl`].
    async fn resolve(&self, key: &KeyRef) -> Result<Resolved> {
        self.resolve_with(key, false).await
    }

    /// As [`resolve`](Self::resolve), always reading Cloud KMS (and refreshing the cache):
    /// for metadata callers see and for changes to the key.
    async fn resolve_fresh(&self, key: &KeyRef) -> Result<Resolved> {
        self.resolve_with(key, true).await
    }

    async fn resolve_with(&self, key: &KeyRef, fresh: bool) -> Result<Resolved> {
        let name = key.name();
        validate_key_name(PROVIDER, name)?;
        if let Some(v) = key.version()
            && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::not_found(PROVIDER, key.to_string()));
        }
        let key_name = self.key_path(name);
        // A pinned version the cached metadata does not know may have been made since: read
        // again rather than answer NotFound from memory.
        let cached = if fresh { None } else { self.cached(name) }
            .filter(|m| key.version().is_none_or(|v| m.versions.iter().any(|x| last_segment(&x.name) == v)));
        let meta = match cached {
            Some(m) => m,
            None => {
                self.forget(name);
                let ck = self
                    .client
                    .get_crypto_key()
                    .set_name(&key_name)
                    .send()
                    .await
                    .map_err(|e| from_gax("GetCryptoKey", Some(name), e))?;
                let versions = self.versions(&key_name, name).await?;
                Arc::new(KeyMeta { ck, versions, at: std::time::Instant::now() })
            }
        };
        let Some((info, alg)) = Self::info_from(name, &meta.ck, &meta.versions)? else {
            return Err(Error::not_found(PROVIDER, name));
        };
        let version = key.version().unwrap_or(&info.version).to_owned();
        let Some(v) = meta.versions.iter().find(|v| last_segment(&v.name) == version) else {
            return Err(Error::not_found(PROVIDER, key.to_string()));
        };
        let alg = mapping::describe(&v.algorithm).unwrap_or(alg);
        let version_name = v.name.clone();
        // Only usable keys are kept: a refusal made from a remembered "disabled" would outlive
        // the key being enabled again elsewhere, while a call to an enabled key that has since
        // been disabled is refused by Cloud KMS itself (and then forgotten, see `failed`).
        if info.state == KeyState::Enabled && !self.cfg.metadata_ttl.is_zero() {
            self.metadata
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_owned(), meta.clone());
        }
        Ok(Resolved { info, key_name, alg, version, version_name, versions: meta.versions.clone() })
    }

    /// The key's metadata if read within the TTL.
    fn cached(&self, name: &str) -> Option<Arc<KeyMeta>> {
        let ttl = self.cfg.metadata_ttl;
        let map = self.metadata.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(name).filter(|m| m.at.elapsed() < ttl).cloned()
    }

    /// Drops a key's cached metadata.
    fn forget(&self, name: &str) {
        self.metadata.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }

    /// Maps an SDK error of a call about key `name`, dropping its cached metadata when Cloud
    /// KMS says it no longer holds (the key or version is gone, disabled or not yet usable).
    fn failed(&self, op: &str, name: &str, e: google_cloud_gax::error::Error) -> Error {
        let e = from_gax(op, Some(name), e);
        if matches!(e, Error::NotFound { .. } | Error::KeyUnusable { .. }) {
            self.forget(name);
        }
        e
    }

    /// Capabilities narrowed to what this key's algorithm does, for the shared checks.
    fn key_caps(&self, r: &Resolved) -> Capabilities {
        let mut sc = self.caps.spec(r.info.spec).cloned().unwrap_or_default();
        if !sc.usages.contains(&r.info.usage) {
            sc.usages.push(r.info.usage);
        }
        sc.encryption = r.alg.encryption.into_iter().collect();
        sc.signature = r.alg.signature.into_iter().collect();
        sc.wrap = r.alg.wrap().into_iter().collect();
        sc.mac = r.alg.mac.into_iter().collect();
        sc.sign_digest = r.alg.signature.is_some_and(|s| s != SignatureAlgorithm::Ed25519);
        Capabilities::new().with_spec(r.info.spec, sc).with_deletion(self.caps.deletion)
    }

    /// Runs a shared check against the key's own algorithm, naming it when it refuses.
    fn checked(&self, r: &Resolved, result: Result<()>) -> Result<()> {
        match result {
            Err(Error::Unsupported { operation, .. }) => Err(Error::Unsupported {
                provider: PROVIDER,
                operation,
                detail: format!(
                    "key '{}' was created as Cloud KMS {}, and Cloud KMS fixes one algorithm per key; use {} \
                     or create a key with the algorithm you need",
                    r.info.name,
                    r.alg.gcp.name().unwrap_or("?"),
                    r.alg
                        .encryption
                        .map(|a| a.to_string())
                        .or(r.alg.signature.map(|a| a.to_string()))
                        .or(r.alg.mac.map(|a| a.to_string()))
                        .unwrap_or_default()
                ),
            }),
            other => other,
        }
    }

    fn input_limit(&self, r: &Resolved) -> usize {
        let hsm =
            r.versions.iter().any(|v| v.name == r.version_name && v.protection_level == ProtectionLevel::Hsm);
        if hsm { MAX_HSM_INPUT } else { MAX_SOFTWARE_INPUT }
    }

    fn check_sizes(&self, r: &Resolved, what: &str, len: usize, aad: Option<&[u8]>) -> Result<()> {
        let limit = self.input_limit(r);
        let aad_len = aad.map_or(0, <[u8]>::len);
        if aad_len > MAX_SOFTWARE_INPUT {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("AAD is {aad_len} bytes; Cloud KMS takes at most {MAX_SOFTWARE_INPUT}"),
            ));
        }
        let total = if limit == MAX_HSM_INPUT { len + aad_len } else { len };
        if total > limit {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("{what} is {total} bytes; Cloud KMS takes at most {limit} for key '{}'", r.info.name),
            ));
        }
        Ok(())
    }

    async fn wait_generated(&self, version_name: &str, name: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut delay = Duration::from_millis(50);
        loop {
            let v = self
                .client
                .get_crypto_key_version()
                .set_name(version_name)
                .send()
                .await
                .map_err(|e| from_gax("GetCryptoKeyVersion", Some(name), e))?;
            match v.state {
                VState::PendingGeneration => {}
                VState::GenerationFailed => {
                    return Err(Error::Provider {
                        provider: PROVIDER,
                        code: "GENERATION_FAILED".into(),
                        message: format!(
                            "Cloud KMS could not generate {version_name}: {}",
                            v.generation_failure_reason
                        ),
                        source: None,
                    });
                }
                _ => return Ok(()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    provider: PROVIDER,
                    operation: format!("generating {version_name}"),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    async fn create(&self, req: CreateKey, algorithm: Alg) -> Result<KeyInfo> {
        mapping::validate_tags(&req.tags)?;
        let usage = req.effective_usage();
        let labels = mapping::labels_for(&req.tags, usage, &req.description)?;
        self.ensure_ring().await?;
        let alg = mapping::describe(&algorithm)
            .ok_or_else(|| Error::invalid_input(PROVIDER, "unmodelled algorithm"))?;
        let protection = if mapping::needs_hsm(&algorithm) || self.cfg.protection == Protection::Hsm {
            ProtectionLevel::Hsm
        } else {
            ProtectionLevel::Software
        };
        let window = google_cloud_wkt::Duration::try_from(self.cfg.deletion_window)
            .map_err(|e| Error::config(PROVIDER, format!("deletion window: {e}")))?;
        let ck = CryptoKey::new()
            .set_purpose(alg.purpose())
            .set_version_template(
                CryptoKeyVersionTemplate::new().set_algorithm(algorithm).set_protection_level(protection),
            )
            .set_labels(labels)
            .set_destroy_scheduled_duration(window);
        let created = self
            .client
            .create_crypto_key()
            .set_parent(self.cfg.key_ring_name())
            .set_crypto_key_id(&req.name)
            .set_crypto_key(ck)
            .send()
            .await
            .map_err(|e| self.ring_missing_unless_key(from_gax("CreateCryptoKey", Some(&req.name), e)))?;
        if alg.purpose() != CryptoKeyPurpose::EncryptDecrypt {
            let first = format!("{}/cryptoKeyVersions/1", created.name);
            self.wait_generated(&first, &req.name).await?;
        }
        Ok(self.resolve_fresh(&KeyRef::new(&req.name)).await?.info)
    }

    fn ring_missing_unless_key(&self, e: Error) -> Error {
        // CreateCryptoKey's NOT_FOUND can only be about the key ring.
        self.ring_missing(e)
    }

    fn unusable(name: &str, reason: UnusableReason) -> Error {
        Error::KeyUnusable { provider: PROVIDER, key: name.to_owned(), reason }
    }

    async fn spki(&self, r: &Resolved) -> Result<Bytes> {
        if let Some(der) =
            self.public_keys.lock().unwrap_or_else(PoisonError::into_inner).get(&r.version_name)
        {
            return Ok(der.clone());
        }
        let out = self
            .client
            .get_public_key()
            .set_name(&r.version_name)
            .send()
            .await
            .map_err(|e| self.failed("GetPublicKey", &r.info.name, e))?;
        check_crc("GetPublicKey", "pem_crc32c", out.pem.as_bytes(), out.pem_crc32c)?;
        check_name("GetPublicKey", &r.version_name, &out.name)?;
        let der = Bytes::from(local::pem_to_der(&out.pem)?);
        self.public_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(r.version_name.clone(), der.clone());
        Ok(der)
    }

    /// Symmetric encryption (Encrypt or RawEncrypt) of one version; the native bytes.
    async fn sym_encrypt(&self, r: &Resolved, plaintext: &[u8], aad: Option<&[u8]>) -> Result<Vec<u8>> {
        let aad = aad.unwrap_or_default();
        let (plaintext, aad): (&[u8], Vec<u8>) = if plaintext.is_empty() {
            (&[0u8], [EMPTY_MARKER, aad].concat())
        } else {
            (plaintext, aad.to_vec())
        };
        let name = &r.info.name;
        if r.alg.is_raw() {
            let mut req = self
                .client
                .raw_encrypt()
                .set_name(&r.version_name)
                .set_plaintext(Bytes::copy_from_slice(plaintext))
                .set_plaintext_crc32c(crc(plaintext));
            if !aad.is_empty() {
                req = req
                    .set_additional_authenticated_data_crc32c(crc(&aad))
                    .set_additional_authenticated_data(aad.clone());
            }
            let out = req.send().await.map_err(|e| self.failed("RawEncrypt", name, e))?;
            let op = "RawEncrypt";
            check_flag(op, "verified_plaintext_crc32c", out.verified_plaintext_crc32c)?;
            check_aad_flag(op, !aad.is_empty(), out.verified_additional_authenticated_data_crc32c)?;
            check_crc(op, "ciphertext_crc32c", &out.ciphertext, out.ciphertext_crc32c)?;
            check_crc(
                op,
                "initialization_vector_crc32c",
                &out.initialization_vector,
                out.initialization_vector_crc32c,
            )?;
            check_name(op, &r.version_name, &out.name)?;
            if out.initialization_vector.len() != GCM_IV_LEN || out.tag_length as usize != GCM_TAG_LEN {
                return Err(Error::Provider {
                    provider: PROVIDER,
                    code: op.into(),
                    message: format!(
                        "RawEncrypt returned a {}-byte IV and a {}-byte tag; hsm expects AES-GCM's 12 and 16",
                        out.initialization_vector.len(),
                        out.tag_length
                    ),
                    source: None,
                });
            }
            Ok([&out.initialization_vector[..], &out.ciphertext[..]].concat())
        } else {
            let mut req = self
                .client
                .encrypt()
                .set_name(&r.version_name)
                .set_plaintext(Bytes::copy_from_slice(plaintext))
                .set_plaintext_crc32c(crc(plaintext));
            if !aad.is_empty() {
                req = req
                    .set_additional_authenticated_data_crc32c(crc(&aad))
                    .set_additional_authenticated_data(aad.clone());
            }
            let out = req.send().await.map_err(|e| self.failed("Encrypt", name, e))?;
            let op = "Encrypt";
            check_flag(op, "verified_plaintext_crc32c", out.verified_plaintext_crc32c)?;
            check_aad_flag(op, !aad.is_empty(), out.verified_additional_authenticated_data_crc32c)?;
            check_crc(op, "ciphertext_crc32c", &out.ciphertext, out.ciphertext_crc32c)?;
            check_name(op, &r.version_name, &out.name)?;
            Ok(out.ciphertext.to_vec())
        }
    }

    async fn sym_decrypt_once(
        &self,
        r: &Resolved,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let name = &r.info.name;
        let opaque = |op: &'static str| {
            move |e| match self.failed(op, name, e) {
                Error::InvalidInput { .. } => Error::DecryptionFailed { provider: PROVIDER },
                other => other,
            }
        };
        if r.alg.is_raw() {
            if ciphertext.len() < GCM_IV_LEN + GCM_TAG_LEN {
                return Err(Error::DecryptionFailed { provider: PROVIDER });
            }
            let (iv, body) = ciphertext.split_at(GCM_IV_LEN);
            let mut req = self
                .client
                .raw_decrypt()
                .set_name(&r.version_name)
                .set_ciphertext(Bytes::copy_from_slice(body))
                .set_ciphertext_crc32c(crc(body))
                .set_initialization_vector(Bytes::copy_from_slice(iv))
                .set_initialization_vector_crc32c(crc(iv))
                .set_tag_length(GCM_TAG_LEN as i32);
            if !aad.is_empty() {
                req = req
                    .set_additional_authenticated_data(Bytes::copy_from_slice(aad))
                    .set_additional_authenticated_data_crc32c(crc(aad));
            }
            let out = req.send().await.map_err(opaque("RawDecrypt"))?;
            let op = "RawDecrypt";
            let pt = Zeroizing::new(out.plaintext.to_vec());
            check_flag(op, "verified_ciphertext_crc32c", out.verified_ciphertext_crc32c)?;
            check_flag(
                op,
                "verified_initialization_vector_crc32c",
                out.verified_initialization_vector_crc32c,
            )?;
            check_aad_flag(op, !aad.is_empty(), out.verified_additional_authenticated_data_crc32c)?;
            check_crc(op, "plaintext_crc32c", &pt, out.plaintext_crc32c)?;
            Ok(pt)
        } else {
            let mut req = self
                .client
                .decrypt()
                .set_name(&r.key_name)
                .set_ciphertext(Bytes::copy_from_slice(ciphertext))
                .set_ciphertext_crc32c(crc(ciphertext));
            if !aad.is_empty() {
                req = req
                    .set_additional_authenticated_data(Bytes::copy_from_slice(aad))
                    .set_additional_authenticated_data_crc32c(crc(aad));
            }
            let out = req.send().await.map_err(opaque("Decrypt"))?;
            let pt = Zeroizing::new(out.plaintext.to_vec());
            check_crc("Decrypt", "plaintext_crc32c", &pt, out.plaintext_crc32c)?;
            Ok(pt)
        }
    }

    /// Symmetric decryption, including hsm's encoding of empty plaintexts.
    async fn sym_decrypt(
        &self,
        r: &Resolved,
        ciphertext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if ciphertext.is_empty() {
            return Err(Error::DecryptionFailed { provider: PROVIDER });
        }
        let aad = aad.unwrap_or_default();
        match self.sym_decrypt_once(r, ciphertext, aad).await {
            Err(Error::DecryptionFailed { .. }) => {
                let pt = self.sym_decrypt_once(r, ciphertext, &[EMPTY_MARKER, aad].concat()).await?;
                if pt.as_slice() == [0] {
                    Ok(Zeroizing::new(Vec::new()))
                } else {
                    Err(Error::DecryptionFailed { provider: PROVIDER })
                }
            }
            other => other,
        }
    }

    async fn rsa_decrypt(&self, r: &Resolved, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let expected = r.info.spec.rsa_modulus_bytes().unwrap_or(0);
        if ciphertext.len() != expected {
            return Err(Error::DecryptionFailed { provider: PROVIDER });
        }
        let name = &r.info.name;
        let out = self
            .client
            .asymmetric_decrypt()
            .set_name(&r.version_name)
            .set_ciphertext(Bytes::copy_from_slice(ciphertext))
            .set_ciphertext_crc32c(crc(ciphertext))
            .send()
            .await
            .map_err(|e| match self.failed("AsymmetricDecrypt", name, e) {
                Error::InvalidInput { .. } => Error::DecryptionFailed { provider: PROVIDER },
                other => other,
            })?;
        let pt = Zeroizing::new(out.plaintext.to_vec());
        check_flag("AsymmetricDecrypt", "verified_ciphertext_crc32c", out.verified_ciphertext_crc32c)?;
        check_crc("AsymmetricDecrypt", "plaintext_crc32c", &pt, out.plaintext_crc32c)?;
        Ok(pt)
    }

    /// Updates the state of every version in `from` to `to`.
    async fn set_versions(&self, r: &Resolved, from: VState, to: VState) -> Result<()> {
        for v in r.versions.iter().filter(|v| v.state == from) {
            let update = CryptoKeyVersion::new().set_name(&v.name).set_state(to.clone());
            self.client
                .update_crypto_key_version()
                .set_crypto_key_version(update)
                .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["state"]))
                .send()
                .await
                .map_err(|e| from_gax("UpdateCryptoKeyVersion", Some(&r.info.name), e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for GcpKmsProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        check::create_key(PROVIDER, &self.caps, &req)?;
        let Some(alg) = mapping::default_algorithm(&self.cfg, req.spec, req.effective_usage()) else {
            return Err(Error::unsupported(
                PROVIDER,
                format!("creating a {} key", req.spec),
                "Cloud KMS has none",
            ));
        };
        self.create(req, alg).await
    }

    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        Ok(self.resolve_fresh(key).await?.info)
    }

    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        let paging = NamePaging::new(PROVIDER, &req, self.caps.max_page_size)?;
        self.ensure_ring().await?;
        let mut candidates: Vec<(String, CryptoKey)> = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .client
                .list_crypto_keys()
                .set_parent(self.cfg.key_ring_name())
                .set_page_size(1000)
                .set_page_token(token)
                .send()
                .await
                .map_err(|e| self.ring_missing(from_gax("ListCryptoKeys", None, e)))?;
            for ck in page.crypto_keys {
                let name = last_segment(&ck.name).to_owned();
                if validate_key_name(PROVIDER, &name).is_err()
                    || req.name_prefix.as_deref().is_some_and(|p| !name.starts_with(p))
                    || !paging.is_after(&name)
                {
                    continue;
                }
                let Ok((alg, _)) = Self::key_kind(&name, &ck) else { continue };
                let (tags, _, _) = mapping::read_labels(&ck.labels);
                if req.spec.is_some_and(|s| s != alg.spec)
                    || !req.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
                {
                    continue;
                }
                candidates.push((name, ck));
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        let mut keys = Vec::new();
        for (name, ck) in &candidates {
            let versions = match self.versions(&ck.name, name).await {
                Ok(v) => v,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let Ok(Some((info, _))) = Self::info_from(name, ck, &versions) else { continue };
            if !req.matches(&info) {
                continue;
            }
            if keys.len() == paging.size() {
                // Another live key follows: the page is full and has a successor.
                let last: &KeyInfo =
                    keys.last().ok_or_else(|| Error::invalid_input(PROVIDER, "page size 0"))?;
                let token = paging.token_after(&last.name);
                return Ok(KeyPage::new(keys, Some(token)));
            }
            keys.push(info);
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
        let v = self
            .client
            .create_crypto_key_version()
            .set_parent(&r.key_name)
            .set_crypto_key_version(CryptoKeyVersion::new())
            .send()
            .await
            .map_err(|e| from_gax("CreateCryptoKeyVersion", Some(&name), e))?;
        if r.is_symmetric_purpose() {
            self.client
                .update_crypto_key_primary_version()
                .set_name(&r.key_name)
                .set_crypto_key_version_id(last_segment(&v.name))
                .send()
                .await
                .map_err(|e| from_gax("UpdateCryptoKeyPrimaryVersion", Some(&name), e))?;
        } else {
            self.wait_generated(&v.name, &name).await?;
        }
        Ok(self.resolve_fresh(&KeyRef::new(name)).await?.info)
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
        match state {
            KeyState::Enabled => self.set_versions(&r, VState::Disabled, VState::Enabled).await?,
            _ => self.set_versions(&r, VState::Enabled, VState::Disabled).await?,
        }
        Ok(self.resolve_fresh(&KeyRef::new(key.name())).await?.info)
    }

    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        let window = check::deletion_window(PROVIDER, &self.caps.deletion, after)?;
        let r = self.resolve_fresh(&KeyRef::new(key.name())).await?;
        if r.info.state == KeyState::PendingDeletion
            && let Some(date) = r.info.deletion_date
        {
            return Ok(Deletion::new(&r.info.name, date, false));
        }
        let mut date: Option<SystemTime> = None;
        for v in r.versions.iter().filter(|v| matches!(v.state, VState::Enabled | VState::Disabled)) {
            let out = self
                .client
                .destroy_crypto_key_version()
                .set_name(&v.name)
                .send()
                .await
                .map_err(|e| from_gax("DestroyCryptoKeyVersion", Some(&r.info.name), e))?;
            let t = time(out.destroy_time.as_ref());
            date = match (date, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.forget(&r.info.name);
        let date = date.or(r.info.deletion_date).unwrap_or_else(|| SystemTime::now() + window);
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
        for v in r.versions.iter().filter(|v| v.state == VState::DestroyScheduled) {
            self.client
                .restore_crypto_key_version()
                .set_name(&v.name)
                .send()
                .await
                .map_err(|e| from_gax("RestoreCryptoKeyVersion", Some(&r.info.name), e))?;
        }
        Ok(self.resolve_fresh(&KeyRef::new(key.name())).await?.info)
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
        let der = self.spki(&r).await?;
        Ok(PublicKey::new(r.info.name, r.version, r.info.spec, der))
    }

    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        let r = self.resolve(key).await?;
        self.checked(&r, check::encrypt(PROVIDER, &self.key_caps(&r), &r.info, alg, plaintext.len(), aad))?;
        let ct = if alg == EncryptionAlgorithm::AesGcm {
            self.check_sizes(&r, "plaintext", plaintext.len(), aad)?;
            self.sym_encrypt(&r, plaintext, aad).await?
        } else {
            let der = self.spki(&r).await?;
            local::rsa_oaep_encrypt(&der, alg, plaintext)?
        };
        Ok(Ciphertext::new(r.info.name, r.version, alg, ct))
    }

    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, ciphertext.key(), "ciphertext")?;
        let r = self.resolve(&KeyRef::new(key.name()).with_version(ciphertext.version())).await?;
        let alg = ciphertext.algorithm();
        self.checked(&r, check::decrypt(PROVIDER, &self.key_caps(&r), &r.info, alg, aad))?;
        if alg == EncryptionAlgorithm::AesGcm {
            self.check_sizes(&r, "AAD", 0, aad)?;
            self.sym_decrypt(&r, ciphertext.as_bytes(), aad).await
        } else {
            self.rsa_decrypt(&r, ciphertext.as_bytes()).await
        }
    }

    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        let r = self.resolve(key).await?;
        self.checked(&r, check::sign(PROVIDER, &self.key_caps(&r), &r.info, alg, &input))?;
        let name = &r.info.name;
        let op = "AsymmetricSign";
        let sig = if alg == SignatureAlgorithm::Ed25519 {
            let data = input.bytes();
            if data.len() > MAX_SOFTWARE_INPUT {
                return Err(Error::invalid_input(
                    PROVIDER,
                    format!(
                        "message is {} bytes; Cloud KMS signs at most {MAX_SOFTWARE_INPUT} with Ed25519",
                        data.len()
                    ),
                ));
            }
            let out = self
                .client
                .asymmetric_sign()
                .set_name(&r.version_name)
                .set_data(Bytes::copy_from_slice(data))
                .set_data_crc32c(crc(data))
                .send()
                .await
                .map_err(|e| self.failed(op, name, e))?;
            check_flag(op, "verified_data_crc32c", out.verified_data_crc32c)?;
            check_crc(op, "signature_crc32c", &out.signature, out.signature_crc32c)?;
            check_name(op, &r.version_name, &out.name)?;
            out.signature
        } else {
            let d = local::digest_of(alg, &input)
                .ok_or_else(|| Error::invalid_input(PROVIDER, format!("{alg} has no digest")))?;
            let digest = match alg.digest() {
                Some(hsm_core::DigestAlgorithm::Sha384) => {
                    google_cloud_kms_v1::model::Digest::new().set_sha384(d.clone())
                }
                Some(hsm_core::DigestAlgorithm::Sha512) => {
                    google_cloud_kms_v1::model::Digest::new().set_sha512(d.clone())
                }
                _ => google_cloud_kms_v1::model::Digest::new().set_sha256(d.clone()),
            };
            let out = self
                .client
                .asymmetric_sign()
                .set_name(&r.version_name)
                .set_digest(digest)
                .set_digest_crc32c(crc(&d))
                .send()
                .await
                .map_err(|e| self.failed(op, name, e))?;
            check_flag(op, "verified_digest_crc32c", out.verified_digest_crc32c)?;
            check_crc(op, "signature_crc32c", &out.signature, out.signature_crc32c)?;
            check_name(op, &r.version_name, &out.name)?;
            out.signature
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
        let r = self.resolve(key).await?;
        self.checked(&r, check::sign(PROVIDER, &self.key_caps(&r), &r.info, alg, &input))?;
        check::signature_len(PROVIDER, &r.info, alg, signature.len())?;
        let der = self.spki(&r).await?;
        local::verify(r.info.spec, alg, &der, input, signature)
    }

    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey> {
        let r = self.resolve(key).await?;
        self.checked(&r, check::wrap(PROVIDER, &self.key_caps(&r), &r.info, alg, Some(key_material.len())))?;
        let bytes = match alg {
            WrapAlgorithm::RsaOaepSha256 => {
                let der = self.spki(&r).await?;
                local::rsa_oaep_encrypt(&der, EncryptionAlgorithm::RsaOaepSha256, key_material)?
            }
            _ => {
                self.check_sizes(&r, "key material", key_material.len(), None)?;
                self.sym_encrypt(&r, key_material, None).await?
            }
        };
        Ok(WrappedKey::new(r.info.name, r.version, alg, bytes))
    }

    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, wrapped.key(), "wrapped key")?;
        let r = self.resolve(&KeyRef::new(key.name()).with_version(wrapped.version())).await?;
        self.checked(&r, check::wrap(PROVIDER, &self.key_caps(&r), &r.info, wrapped.algorithm(), None))?;
        match wrapped.algorithm() {
            WrapAlgorithm::RsaOaepSha256 => self.rsa_decrypt(&r, wrapped.as_bytes()).await,
            _ => self.sym_decrypt(&r, wrapped.as_bytes(), None).await,
        }
    }

    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag> {
        let r = self.resolve(key).await?;
        self.checked(&r, check::mac(PROVIDER, &self.key_caps(&r), &r.info, alg))?;
        self.check_sizes(&r, "message", message.len(), None)?;
        let op = "MacSign";
        let out = self
            .client
            .mac_sign()
            .set_name(&r.version_name)
            .set_data(Bytes::copy_from_slice(message))
            .set_data_crc32c(crc(message))
            .send()
            .await
            .map_err(|e| self.failed(op, &r.info.name, e))?;
        check_flag(op, "verified_data_crc32c", out.verified_data_crc32c)?;
        check_crc(op, "mac_crc32c", &out.mac, out.mac_crc32c)?;
        check_name(op, &r.version_name, &out.name)?;
        Ok(MacTag::new(r.info.name, r.version, alg, out.mac))
    }

    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool> {
        let r = self.resolve(key).await?;
        self.checked(&r, check::mac(PROVIDER, &self.key_caps(&r), &r.info, alg))?;
        let want = r.info.spec.bits() as usize / 8;
        if tag.len() != want {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("tag is {} bytes; {alg} tags are {want} bytes", tag.len()),
            ));
        }
        self.check_sizes(&r, "message", message.len(), None)?;
        let op = "MacVerify";
        let out = self
            .client
            .mac_verify()
            .set_name(&r.version_name)
            .set_data(Bytes::copy_from_slice(message))
            .set_data_crc32c(crc(message))
            .set_mac(Bytes::copy_from_slice(tag))
            .set_mac_crc32c(crc(tag))
            .send()
            .await
            .map_err(|e| self.failed(op, &r.info.name, e))?;
        check_flag(op, "verified_data_crc32c", out.verified_data_crc32c)?;
        check_flag(op, "verified_mac_crc32c", out.verified_mac_crc32c)?;
        check_flag(op, "verified_success_integrity", out.verified_success_integrity == out.success)?;
        check_name(op, &r.version_name, &out.name)?;
        Ok(out.success)
    }
}
