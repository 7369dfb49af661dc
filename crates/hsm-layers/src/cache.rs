//! [`Cache`]: public keys and key metadata with a TTL and single-flight misses, and optional
//! local signature verification with the cached public key.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hsm_core::{Error, KeyInfo, KeyRef, Provider, PublicKey, Result, SignInput, SignatureAlgorithm, check};
use tokio::time::Instant;

use crate::call::{Around, BoxFut, Call, QuotaClass, plain_create, provider_via_around};

/// Cache settings (`[cache]` in hsm's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// How long an entry is served (default 60 s). Changes made through the layer, and
    /// `NotFound` / `KeyUnusable` answers, drop a key's entries at once; changes made by
    /// other clients are seen after at most this long.
    pub ttl: Duration,
    /// Entries per cache (metadata and public keys each; default 1,024).
    pub capacity: usize,
    /// Verify signatures locally with the cached public key (`verify=local`) instead of
    /// asking the provider (default off). State, usage and algorithm are still checked
    /// against the cached metadata.
    pub verify_local: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { ttl: Duration::from_secs(60), capacity: 1024, verify_local: false }
    }
}

impl CacheConfig {
    /// Sets [`ttl`](Self::ttl).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`verify_local`](Self::verify_local).
    pub fn with_verify_local(mut self, on: bool) -> Self {
        self.verify_local = on;
        self
    }
}

type Key = (String, Option<String>);

#[derive(Clone)]
struct Entry<T> {
    at: Instant,
    value: T,
}

type Store<T> = quick_cache::sync::Cache<Key, Entry<T>>;

/// The cache layer; see [`CacheConfig`].
pub struct Cache {
    inner: Arc<dyn Provider>,
    config: CacheConfig,
    info: Store<KeyInfo>,
    public: Store<PublicKey>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner.name())
            .field("config", &self.config)
            .field("metadata_entries", &self.info.len())
            .field("public_key_entries", &self.public.len())
            .finish()
    }
}

fn key_of(k: &KeyRef) -> Key {
    (k.name().to_owned(), k.version().map(str::to_owned))
}

impl Cache {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>, config: CacheConfig) -> Self {
        let cap = config.capacity.max(1);
        Cache { inner, info: Store::new(cap), public: Store::new(cap), config }
    }

    /// Drops every cached entry of key `name`.
    pub fn invalidate(&self, name: &str) {
        self.info.retain(|k, _| k.0 != name);
        self.public.retain(|k, _| k.0 != name);
    }

    async fn cached<T, F>(&self, store: &Store<T>, kind: &'static str, key: Key, fetch: F) -> Result<T>
    where
        T: Clone + Send + Sync,
        F: Future<Output = Result<T>> + Send,
    {
        let provider = self.inner.name();
        loop {
            match store.get_value_or_guard_async(&key).await {
                Ok(e) if e.at.elapsed() < self.config.ttl => {
                    metrics::counter!(crate::metrics_names::CACHE_HITS, "provider" => provider, "kind" => kind)
                        .increment(1);
                    return Ok(e.value);
                }
                Ok(_) => {
                    store.remove(&key);
                }
                Err(guard) => {
                    metrics::counter!(crate::metrics_names::CACHE_MISSES, "provider" => provider, "kind" => kind)
                        .increment(1);
                    // Waiters for the same key block on the guard: one request per miss.
                    let value = fetch.await?;
                    let _ = guard.insert(Entry { at: Instant::now(), value: value.clone() });
                    return Ok(value);
                }
            }
        }
    }

    /// Drops a key's entries after a change, or after an answer that says the cache is stale.
    fn after<T>(&self, call: &Call<'_>, r: &Result<T>) {
        let stale = matches!(r, Err(Error::NotFound { .. } | Error::KeyUnusable { .. }));
        if stale || (call.class == QuotaClass::Control && !call.key.is_empty()) {
            self.invalidate(call.key);
        }
    }

    plain_create!();

    async fn get(&self, key: &KeyRef) -> Result<KeyInfo> {
        let r = self.cached(&self.info, "metadata", key_of(key), self.inner.get_key(key)).await;
        if matches!(r, Err(Error::NotFound { .. } | Error::KeyUnusable { .. })) {
            self.invalidate(key.name());
        }
        r
    }

    async fn public(&self, key: &KeyRef) -> Result<PublicKey> {
        let r = self.cached(&self.public, "public_key", key_of(key), self.inner.public_key(key)).await;
        if matches!(r, Err(Error::NotFound { .. } | Error::KeyUnusable { .. })) {
            self.invalidate(key.name());
        }
        r
    }

    async fn check_signature(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        if self.config.verify_local {
            let provider = self.inner.name();
            let info = self.get(key).await?;
            check::sign(provider, self.inner.capabilities(), &info, alg, &input)?;
            check::signature_len(provider, &info, alg, signature.len())?;
            // Pin the version the metadata names, so a rotation between the two reads cannot
            // pair one version's metadata with another's public key.
            let pinned = KeyRef::new(key.name()).with_version(info.version.clone());
            match self.public(&pinned).await {
                Ok(pk) => {
                    return Ok(hsm_crypto::verify(pk.spec, alg, &pk.spki_der, input, signature));
                }
                Err(Error::Unsupported { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let r = self.inner.verify(key, alg, input, signature).await;
        self.after(&Call::new(crate::Op::Verify, QuotaClass::of_signature(alg), key.name()), &r);
        r
    }
}

impl Around for Cache {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut f: impl FnMut() -> BoxFut<'a, T> + Send + 'a,
    ) -> BoxFut<'a, T> {
        Box::pin(async move {
            let r = f().await;
            self.after(&call, &r);
            r
        })
    }
}

provider_via_around!(Cache);
