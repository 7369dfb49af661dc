//! A provider over hsm-local that fails on cue: a script of errors, "act then fail" for
//! key-changing calls, a blackhole, and a request counter.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, EncryptionAlgorithm, Error, KeyInfo, KeyPage, KeyRef,
    KeyState, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey, Result, SignInput, Signature,
    SignatureAlgorithm, WrapAlgorithm, WrappedKey, Zeroizing,
};

pub(crate) fn unavailable() -> Error {
    Error::Unavailable { provider: "flaky", message: "503".into(), retry_after: None }
}

pub(crate) fn throttled(after: Option<Duration>) -> Error {
    Error::Throttled { provider: "flaky", retry_after: after }
}

#[derive(Default)]
pub(crate) struct Script {
    /// Errors answered before calling the inner provider, in order.
    pub(crate) before: VecDeque<Error>,
    /// Errors answered after the inner provider acted (the answer is lost).
    pub(crate) after: VecDeque<Error>,
}

pub(crate) struct Flaky {
    inner: Arc<dyn Provider>,
    pub(crate) script: Mutex<Script>,
    /// Every request fails with this error (a dead endpoint), when set.
    pub(crate) always: Mutex<Option<fn() -> Error>>,
    pub(crate) blackhole: AtomicBool,
    pub(crate) requests: AtomicUsize,
}

impl Flaky {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Flaky {
            inner: Arc::new(hsm_local::LocalProvider::in_memory()),
            script: Mutex::new(Script::default()),
            always: Mutex::new(None),
            blackhole: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
        })
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub(crate) fn fail_next(&self, e: Error) {
        self.script.lock().unwrap().before.push_back(e);
    }

    pub(crate) fn fail_after_acting(&self, e: Error) {
        self.script.lock().unwrap().after.push_back(e);
    }

    async fn before(&self) -> Result<()> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.blackhole.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if let Some(f) = *self.always.lock().unwrap() {
            return Err(f());
        }
        match self.script.lock().unwrap().before.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn after<T>(&self, r: Result<T>) -> Result<T> {
        match self.script.lock().unwrap().after.pop_front() {
            Some(e) => Err(e),
            None => r,
        }
    }
}

impl std::fmt::Debug for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flaky").field("requests", &self.requests()).finish()
    }
}

#[async_trait]
impl Provider for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        self.before().await?;
        let r = self.inner.create_key(req).await;
        self.after(r)
    }
    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.before().await?;
        self.inner.get_key(key).await
    }
    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        self.before().await?;
        self.inner.list_keys(req).await
    }
    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.before().await?;
        let r = self.inner.rotate_key(key).await;
        self.after(r)
    }
    async fn set_key_state(&self, key: &KeyRef, state: KeyState) -> Result<KeyInfo> {
        self.before().await?;
        let r = self.inner.set_key_state(key, state).await;
        self.after(r)
    }
    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        self.before().await?;
        self.inner.schedule_deletion(key, after).await
    }
    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.before().await?;
        self.inner.cancel_deletion(key).await
    }
    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        self.before().await?;
        self.inner.public_key(key).await
    }
    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        self.before().await?;
        self.inner.encrypt(key, alg, plaintext, aad).await
    }
    async fn decrypt(&self, key: &KeyRef, ct: &Ciphertext, aad: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>> {
        self.before().await?;
        self.inner.decrypt(key, ct, aad).await
    }
    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        self.before().await?;
        self.inner.sign(key, alg, input).await
    }
    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        self.before().await?;
        self.inner.verify(key, alg, input, signature).await
    }
    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, m: &[u8]) -> Result<WrappedKey> {
        self.before().await?;
        self.inner.wrap_key(key, alg, m).await
    }
    async fn unwrap_key(&self, key: &KeyRef, w: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        self.before().await?;
        self.inner.unwrap_key(key, w).await
    }
    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, m: &[u8]) -> Result<MacTag> {
        self.before().await?;
        self.inner.mac(key, alg, m).await
    }
    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, m: &[u8], tag: &[u8]) -> Result<bool> {
        self.before().await?;
        self.inner.verify_mac(key, alg, m, tag).await
    }
}
