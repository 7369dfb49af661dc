//! A local provider that can be switched off, slowed down, and that counts the data-key calls
//! it answers: for the keyring and cache tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, EncryptionAlgorithm, Error, KeyInfo, KeyPage, KeyRef,
    KeySpec, KeyState, KeyUsage, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey, Result, SignInput,
    Signature, SignatureAlgorithm, WrapAlgorithm, WrappedKey, Zeroizing, async_trait,
};
use hsm_local::LocalProvider;

#[derive(Debug)]
pub(crate) struct Switch {
    inner: LocalProvider,
    down: AtomicBool,
    latency_ms: AtomicU64,
    /// wrap_key + encrypt calls answered.
    pub(crate) protects: AtomicU64,
    /// unwrap_key + decrypt calls answered.
    pub(crate) opens: AtomicU64,
}

impl Switch {
    /// A provider with an AES wrap key `key`.
    pub(crate) async fn with_key(key: &str) -> Arc<Switch> {
        let s = Arc::new(Switch {
            inner: LocalProvider::in_memory(),
            down: AtomicBool::new(false),
            latency_ms: AtomicU64::new(0),
            protects: AtomicU64::new(0),
            opens: AtomicU64::new(0),
        });
        s.inner.create_key(CreateKey::new(key, KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await.unwrap();
        s
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    pub(crate) fn protects(&self) -> u64 {
        self.protects.load(Ordering::SeqCst)
    }

    pub(crate) fn opens(&self) -> u64 {
        self.opens.load(Ordering::SeqCst)
    }

    async fn gate(&self) -> Result<()> {
        let ms = self.latency_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                provider: "local",
                message: "switched off by the test".to_owned(),
                retry_after: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Switch {
    fn name(&self) -> &'static str {
        "local"
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        self.gate().await?;
        self.inner.create_key(req).await
    }
    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.gate().await?;
        self.inner.get_key(key).await
    }
    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        self.gate().await?;
        self.inner.list_keys(req).await
    }
    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.gate().await?;
        self.inner.rotate_key(key).await
    }
    async fn set_key_state(&self, key: &KeyRef, state: KeyState) -> Result<KeyInfo> {
        self.gate().await?;
        self.inner.set_key_state(key, state).await
    }
    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        self.gate().await?;
        self.inner.schedule_deletion(key, after).await
    }
    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.gate().await?;
        self.inner.cancel_deletion(key).await
    }
    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        self.gate().await?;
        self.inner.public_key(key).await
    }
    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        self.gate().await?;
        self.protects.fetch_add(1, Ordering::SeqCst);
        self.inner.encrypt(key, alg, plaintext, aad).await
    }
    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.gate().await?;
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt(key, ciphertext, aad).await
    }
    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        self.gate().await?;
        self.inner.sign(key, alg, input).await
    }
    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        sig: &[u8],
    ) -> Result<bool> {
        self.gate().await?;
        self.inner.verify(key, alg, input, sig).await
    }
    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, material: &[u8]) -> Result<WrappedKey> {
        self.gate().await?;
        self.protects.fetch_add(1, Ordering::SeqCst);
        self.inner.wrap_key(key, alg, material).await
    }
    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        self.gate().await?;
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap_key(key, wrapped).await
    }
    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag> {
        self.gate().await?;
        self.inner.mac(key, alg, message).await
    }
    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool> {
        self.gate().await?;
        self.inner.verify_mac(key, alg, message, tag).await
    }
}
