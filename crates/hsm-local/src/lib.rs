//! # hsm-local
//!
//! The embedded reference provider of hsm (work in progress: this skeleton fixes the public
//! API so dependent crates compile; every operation currently returns `Unsupported`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, EncryptionAlgorithm, Error, KeyInfo, KeyPage, KeyRef,
    KeyState, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey, Result, SignInput, Signature,
    SignatureAlgorithm, WrapAlgorithm, WrappedKey, Zeroizing, async_trait,
};

const PROVIDER: &str = "local";

/// The embedded provider: keys in memory or in an encrypted keystore file.
#[derive(Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

struct Inner {
    caps: Capabilities,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider").field("path", &self.inner.path).finish()
    }
}

impl LocalProvider {
    /// In-memory store; keys vanish with the value.
    pub fn in_memory() -> Self {
        LocalProvider { inner: Arc::new(Inner { caps: Capabilities::new(), path: None }) }
    }

    /// Opens (creating if missing) an encrypted keystore file.
    ///
    /// # Errors
    /// `Unauthenticated` for a wrong passphrase, `Config` for a corrupt file.
    pub fn open(path: impl AsRef<Path>, passphrase: Option<Zeroizing<String>>) -> Result<Self> {
        let _ = passphrase;
        Ok(LocalProvider {
            inner: Arc::new(Inner { caps: Capabilities::new(), path: Some(path.as_ref().to_path_buf()) }),
        })
    }

    /// Path of the keystore file, `None` for in-memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }
}

fn nyi<T>() -> Result<T> {
    Err(Error::unsupported(PROVIDER, "this operation", "hsm-local is being written"))
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }
    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }
    async fn create_key(&self, _req: CreateKey) -> Result<KeyInfo> {
        nyi()
    }
    async fn get_key(&self, _key: &KeyRef) -> Result<KeyInfo> {
        nyi()
    }
    async fn list_keys(&self, _req: ListKeys) -> Result<KeyPage> {
        nyi()
    }
    async fn rotate_key(&self, _key: &KeyRef) -> Result<KeyInfo> {
        nyi()
    }
    async fn set_key_state(&self, _key: &KeyRef, _state: KeyState) -> Result<KeyInfo> {
        nyi()
    }
    async fn schedule_deletion(&self, _key: &KeyRef, _after: Option<Duration>) -> Result<Deletion> {
        nyi()
    }
    async fn cancel_deletion(&self, _key: &KeyRef) -> Result<KeyInfo> {
        nyi()
    }
    async fn public_key(&self, _key: &KeyRef) -> Result<PublicKey> {
        nyi()
    }
    async fn encrypt(
        &self,
        _key: &KeyRef,
        _alg: EncryptionAlgorithm,
        _plaintext: &[u8],
        _aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        nyi()
    }
    async fn decrypt(
        &self,
        _key: &KeyRef,
        _ct: &Ciphertext,
        _aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        nyi()
    }
    async fn sign(
        &self,
        _key: &KeyRef,
        _alg: SignatureAlgorithm,
        _input: SignInput<'_>,
    ) -> Result<Signature> {
        nyi()
    }
    async fn verify(
        &self,
        _key: &KeyRef,
        _alg: SignatureAlgorithm,
        _input: SignInput<'_>,
        _signature: &[u8],
    ) -> Result<bool> {
        nyi()
    }
    async fn wrap_key(&self, _key: &KeyRef, _alg: WrapAlgorithm, _m: &[u8]) -> Result<WrappedKey> {
        nyi()
    }
    async fn unwrap_key(&self, _key: &KeyRef, _w: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        nyi()
    }
    async fn mac(&self, _key: &KeyRef, _alg: MacAlgorithm, _m: &[u8]) -> Result<MacTag> {
        nyi()
    }
    async fn verify_mac(&self, _key: &KeyRef, _alg: MacAlgorithm, _m: &[u8], _t: &[u8]) -> Result<bool> {
        nyi()
    }
}
