//! The data-key cache: many small messages under one provider call.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::digest;
use hsm_core::Result;
use lru::LruCache;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::header::{Recipient, encode_recipients};
use crate::keyring::RecipientFailure;
use crate::schedule::DATA_KEY_LEN;

/// Caches data keys so that many small messages need one provider call, with the AWS
/// Encryption SDK's caching semantics:
///
/// - **Encrypt:** a data key and its protected stanzas are reused for at most
///   [`max_age`](DataKeyCache::max_age), [`max_messages`](DataKeyCache::max_messages) and
///   [`max_bytes`](DataKeyCache::max_bytes) of plaintext, partitioned by keyring and
///   encryption context (never shared across either); every message still gets its own
///   message id, hence its own payload key and commitment. A message larger than
///   `max_bytes`, and a stream of unknown length, is sealed without the cache. A data key
///   that some recipient failed to protect (`min_recipients`) is not cached, so the next
///   message tries that recipient again.
/// - **Single-flight:** concurrent encrypts that miss the same partition make one provider
///   call; the others wait for it and reuse its data key.
/// - **Decrypt:** unwrapped data keys are cached by the hash of the envelope's recipients
///   section, keyring and context, for `max_age`; the key commitment is checked as always.
/// - At most `capacity` entries on each side, least recently used evicted first; keys are
///   zeroized when evicted or expired. [`stats`](DataKeyCache::stats) counts the provider
///   calls saved.
///
/// Off by default; one line turns it on for a [`Sealer`](crate::Sealer) and an
/// [`Opener`](crate::Opener) (clones share the cache):
///
/// ```
/// # #[tokio::main] async fn main() -> hsm_core::Result<()> {
/// use std::sync::Arc;
/// use hsm_core::{CreateKey, KeySpec, Provider};
/// use hsm_envelope::{DataKeyCache, Keyring, Sealer};
/// let p: Arc<dyn Provider> = Arc::new(hsm_local::LocalProvider::in_memory());
/// p.create_key(CreateKey::new("rows", KeySpec::Aes256)).await?;
/// let ring = Keyring::new().recipient(p, "rows");
/// let sealer = Sealer::new().cache(DataKeyCache::new(100).max_messages(1000));
/// for row in 0..10 {
///     sealer.seal_to(&ring, format!("row {row}").as_bytes()).await?;
/// }
/// assert_eq!(sealer.cache_stats().unwrap().provider_calls_saved, 9);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DataKeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    max_age: Duration,
    max_messages: u64,
    max_bytes: u64,
    encrypt: Mutex<LruCache<[u8; 32], Slot>>,
    decrypt: Mutex<LruCache<[u8; 32], Decrypting>>,
    hits: AtomicU64,
    misses: AtomicU64,
    saved: AtomicU64,
}

/// One encrypt partition: the async lock makes concurrent misses wait for one provider call.
type Slot = Arc<tokio::sync::Mutex<Option<Encrypting>>>;

/// A cached encryption data key, zeroized when dropped.
struct Encrypting {
    data_key: Zeroizing<[u8; DATA_KEY_LEN]>,
    recipients: Vec<Recipient>,
    created: Instant,
    messages: u64,
    bytes: u64,
}

struct Decrypting {
    data_key: Zeroizing<Vec<u8>>,
    created: Instant,
}

/// Counters of a [`DataKeyCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Seals and opens that reused a cached data key.
    pub hits: u64,
    /// Seals and opens that had to ask the providers.
    pub misses: u64,
    /// Provider calls not made thanks to the cache (a seal hit saves one per recipient).
    pub provider_calls_saved: u64,
}

impl fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("max_age", &self.inner.max_age)
            .field("max_messages", &self.inner.max_messages)
            .field("max_bytes", &self.inner.max_bytes)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A freshly protected data key, as the keyring made it.
pub(crate) struct Made {
    pub(crate) data_key: Zeroizing<[u8; DATA_KEY_LEN]>,
    pub(crate) recipients: Vec<Recipient>,
    pub(crate) failed: Vec<RecipientFailure>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DataKeyCache {
    /// A cache of at most `capacity` data keys on each side (at least 1), with the AWS
    /// Encryption SDK's defaults otherwise: 5 minutes, 2³² messages, 2⁶³ − 1 bytes.
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        DataKeyCache {
            inner: Arc::new(Inner {
                max_age: Duration::from_secs(300),
                max_messages: 1 << 32,
                max_bytes: i64::MAX as u64,
                encrypt: Mutex::new(LruCache::new(capacity)),
                decrypt: Mutex::new(LruCache::new(capacity)),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                saved: AtomicU64::new(0),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            max_age: shared.max_age,
            max_messages: shared.max_messages,
            max_bytes: shared.max_bytes,
            encrypt: Mutex::new(LruCache::new(lock(&shared.encrypt).cap())),
            decrypt: Mutex::new(LruCache::new(lock(&shared.decrypt).cap())),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            saved: AtomicU64::new(0),
        });
        f(&mut inner);
        DataKeyCache { inner: Arc::new(inner) }
    }

    /// A data key is used for less than `age` after it was made (default 5 minutes).
    #[must_use]
    pub fn max_age(self, age: Duration) -> Self {
        self.with(|i| i.max_age = age)
    }

    /// A data key seals at most `n` messages (default 2³², at least 1).
    #[must_use]
    pub fn max_messages(self, n: u64) -> Self {
        self.with(|i| i.max_messages = n.max(1))
    }

    /// A data key seals at most `n` plaintext bytes in all (default 2⁶³ − 1).
    #[must_use]
    pub fn max_bytes(self, n: u64) -> Self {
        self.with(|i| i.max_bytes = n)
    }

    /// Hits, misses and the provider calls saved so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            provider_calls_saved: self.inner.saved.load(Ordering::Relaxed),
        }
    }

    /// The encrypt-side partition of a keyring and an encoded context.
    pub(crate) fn partition(keyring: u64, context: &[u8]) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"hsm data-key cache: encrypt\0");
        ctx.update(&keyring.to_be_bytes());
        ctx.update(context);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// A data key for a message of `len` plaintext bytes in `partition`: a cached one within
    /// its limits, or a new one from `make` (one call per partition at a time).
    pub(crate) async fn encrypting<F, Fut>(&self, partition: [u8; 32], len: u64, make: F) -> Result<Made>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Made>>,
    {
        let inner = &self.inner;
        if len > inner.max_bytes {
            inner.misses.fetch_add(1, Ordering::Relaxed);
            return make().await;
        }
        let slot =
            lock(&inner.encrypt).get_or_insert(partition, || Arc::new(tokio::sync::Mutex::new(None))).clone();
        // Waiters on a miss queue here while the first one asks the providers.
        let mut entry = slot.lock().await;
        if let Some(e) = entry.as_mut() {
            let fresh = e.created.elapsed() < inner.max_age;
            let fits = e.messages < inner.max_messages && e.bytes.saturating_add(len) <= inner.max_bytes;
            if fresh && fits {
                e.messages += 1;
                e.bytes += len;
                inner.hits.fetch_add(1, Ordering::Relaxed);
                inner.saved.fetch_add(e.recipients.len() as u64, Ordering::Relaxed);
                return Ok(Made {
                    data_key: e.data_key.clone(),
                    recipients: e.recipients.clone(),
                    failed: Vec::new(),
                });
            }
        }
        *entry = None; // the old key is zeroized here
        inner.misses.fetch_add(1, Ordering::Relaxed);
        let made = make().await?;
        if made.failed.is_empty() {
            *entry = Some(Encrypting {
                data_key: made.data_key.clone(),
                recipients: made.recipients.clone(),
                created: Instant::now(),
                messages: 1,
                bytes: len,
            });
        }
        Ok(made)
    }

    /// The decrypt-side key of an envelope: keyring, encoded context and recipients section.
    pub(crate) fn decrypt_key(&self, keyring: u64, context: &[u8], recipients: &[Recipient]) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"hsm data-key cache: decrypt\0");
        ctx.update(&keyring.to_be_bytes());
        ctx.update(&(context.len() as u64).to_be_bytes());
        ctx.update(context);
        ctx.update(&encode_recipients(recipients));
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    pub(crate) fn get_decrypted(&self, key: &[u8; 32]) -> Option<Zeroizing<Vec<u8>>> {
        let inner = &self.inner;
        let mut map = lock(&inner.decrypt);
        let fresh = map.get(key).map(|e| e.created.elapsed() < inner.max_age);
        match fresh {
            Some(true) => {
                inner.hits.fetch_add(1, Ordering::Relaxed);
                inner.saved.fetch_add(1, Ordering::Relaxed);
                map.get(key).map(|e| e.data_key.clone())
            }
            Some(false) => {
                map.pop(key); // zeroized on drop
                inner.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                inner.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub(crate) fn put_decrypted(&self, key: [u8; 32], data_key: &Zeroizing<Vec<u8>>) {
        lock(&self.inner.decrypt)
            .put(key, Decrypting { data_key: data_key.clone(), created: Instant::now() });
    }
}
