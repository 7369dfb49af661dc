//! [`Audited`]: one `tracing` event per operation, over any provider.
//!
//! Every call through an [`Audited`] provider emits one event with target `hsm::audit`:
//! the provider, the operation, the key name and version, the algorithm, the outcome (`ok`
//! or the error's [`kind`](crate::Error::kind)) and the latency in microseconds. Successes
//! are `INFO`, failures `WARN`. Events never carry data: no plaintext, ciphertext,
//! signature, key material, AAD or error message text — only names and sizes.
//!
//! ```
//! use std::sync::Arc;
//! use hsm_core::{Audited, Provider};
//! fn audited(p: Arc<dyn Provider>) -> Arc<dyn Provider> {
//!     Arc::new(Audited::new(p))
//! }
//! # let _ = audited;
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::blob::{Ciphertext, MacTag, Signature, WrappedKey};
use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::key::{CreateKey, Deletion, KeyInfo, KeyPage, KeyRef, ListKeys, PublicKey};
use crate::provider::{Provider, SignInput};
use crate::vocab::{EncryptionAlgorithm, KeyState, MacAlgorithm, SignatureAlgorithm, WrapAlgorithm};

/// A provider that reports every operation of the provider it wraps to `tracing`.
#[derive(Clone)]
pub struct Audited {
    inner: Arc<dyn Provider>,
}

impl Audited {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Audited { inner }
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }
}

impl fmt::Debug for Audited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audited").field("inner", &self.inner).finish()
    }
}

struct Event<'a> {
    provider: &'static str,
    operation: &'static str,
    key: &'a str,
    version: Option<&'a str>,
    algorithm: Option<&'static str>,
    started: Instant,
}

impl Event<'_> {
    fn emit<T>(self, result: &Result<T>) {
        let latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let version = self.version.unwrap_or("");
        let algorithm = self.algorithm.unwrap_or("");
        match result {
            Ok(_) => tracing::info!(
                target: "hsm::audit",
                provider = self.provider,
                operation = self.operation,
                key = self.key,
                version,
                algorithm,
                outcome = "ok",
                latency_us,
            ),
            Err(e) => tracing::warn!(
                target: "hsm::audit",
                provider = self.provider,
                operation = self.operation,
                key = self.key,
                version,
                algorithm,
                outcome = e.kind(),
                latency_us,
            ),
        }
    }
}

impl Audited {
    fn event<'a>(
        &self,
        operation: &'static str,
        key: &'a str,
        version: Option<&'a str>,
        algorithm: Option<&'static str>,
    ) -> Event<'a> {
        Event { provider: self.inner.name(), operation, key, version, algorithm, started: Instant::now() }
    }
}

#[async_trait]
impl Provider for Audited {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        let name = req.name.clone();
        let ev = self.event("create_key", &name, None, Some(req.spec.as_str()));
        let r = self.inner.create_key(req).await;
        ev.emit(&r);
        r
    }

    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        let ev = self.event("get_key", key.name(), key.version(), None);
        let r = self.inner.get_key(key).await;
        ev.emit(&r);
        r
    }

    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        let ev = self.event("list_keys", "", None, None);
        let r = self.inner.list_keys(req).await;
        ev.emit(&r);
        r
    }

    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        let ev = self.event("rotate_key", key.name(), key.version(), None);
        let r = self.inner.rotate_key(key).await;
        ev.emit(&r);
        r
    }

    async fn set_key_state(&self, key: &KeyRef, state: KeyState) -> Result<KeyInfo> {
        let op = if state == KeyState::Enabled { "enable_key" } else { "disable_key" };
        let ev = self.event(op, key.name(), key.version(), None);
        let r = self.inner.set_key_state(key, state).await;
        ev.emit(&r);
        r
    }

    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        let ev = self.event("schedule_deletion", key.name(), key.version(), None);
        let r = self.inner.schedule_deletion(key, after).await;
        ev.emit(&r);
        r
    }

    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        let ev = self.event("cancel_deletion", key.name(), key.version(), None);
        let r = self.inner.cancel_deletion(key).await;
        ev.emit(&r);
        r
    }

    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        let ev = self.event("public_key", key.name(), key.version(), None);
        let r = self.inner.public_key(key).await;
        ev.emit(&r);
        r
    }

    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        let ev = self.event("encrypt", key.name(), key.version(), Some(alg.as_str()));
        let r = self.inner.encrypt(key, alg, plaintext, aad).await;
        ev.emit(&r);
        r
    }

    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let alg = ciphertext.algorithm().as_str();
        let ev = self.event("decrypt", key.name(), Some(ciphertext.version()), Some(alg));
        let r = self.inner.decrypt(key, ciphertext, aad).await;
        ev.emit(&r);
        r
    }

    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        let ev = self.event("sign", key.name(), key.version(), Some(alg.as_str()));
        let r = self.inner.sign(key, alg, input).await;
        ev.emit(&r);
        r
    }

    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let ev = self.event("verify", key.name(), key.version(), Some(alg.as_str()));
        let r = self.inner.verify(key, alg, input, signature).await;
        ev.emit(&r);
        r
    }

    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey> {
        let ev = self.event("wrap_key", key.name(), key.version(), Some(alg.as_str()));
        let r = self.inner.wrap_key(key, alg, key_material).await;
        ev.emit(&r);
        r
    }

    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        let alg = wrapped.algorithm().as_str();
        let ev = self.event("unwrap_key", key.name(), Some(wrapped.version()), Some(alg));
        let r = self.inner.unwrap_key(key, wrapped).await;
        ev.emit(&r);
        r
    }

    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag> {
        let ev = self.event("mac", key.name(), key.version(), Some(alg.as_str()));
        let r = self.inner.mac(key, alg, message).await;
        ev.emit(&r);
        r
    }

    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool> {
        let ev = self.event("verify_mac", key.name(), key.version(), Some(alg.as_str()));
        let r = self.inner.verify_mac(key, alg, message, tag).await;
        ev.emit(&r);
        r
    }
}
