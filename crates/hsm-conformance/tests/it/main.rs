//! The kit tested against providers whose behaviour we control: a correct provider with a
//! restricted capability set (everything passes, undeclared cases are ignored with their
//! reason, the gaps are checked to be `Unsupported`), and deliberately broken ones that
//! the kit must fail — on exactly the cases that catch each fault.

mod broken;
mod front_ends;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, EncryptionAlgorithm, Error, KeyInfo, KeyPage, KeyRef,
    KeySpec, KeyState, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey, Result, SignInput, Signature,
    SignatureAlgorithm, SpecCapabilities, WrapAlgorithm, WrappedKey, Zeroizing, async_trait, check,
};
use hsm_local::LocalProvider;

/// What a [`Wrapper`] gets wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Nothing: a correct provider with a smaller capability set.
    None,
    /// Drops the AAD on encrypt and decrypt.
    IgnoresAad,
    /// Flips the last byte of every signature it makes, and flips it back before its own
    /// verification, so it verifies its own signatures but nobody else can.
    CorruptsSignatures,
    /// Declares rsa-oaep-sha1 on rsa-2048 but answers Unsupported to it.
    DeclaresUnsupported,
    /// Declares aes-gcm encryption on rsa-2048, which does not fit the spec.
    DeclaresMisfit,
    /// Keeps the start of every plaintext and key material it saw and shows it in `Debug`.
    LeaksPlaintext,
    /// Drops the last key of every page that has a next page.
    DropsPages,
    /// Decrypts and unwraps with the current key version, ignoring the one the blob records.
    ForgetsVersions,
}

/// A provider over [`LocalProvider`] that declares (and enforces, through
/// `hsm_core::check`) a smaller capability set, plus one deliberate [`Fault`].
pub(crate) struct Wrapper {
    inner: LocalProvider,
    caps: Capabilities,
    fault: Fault,
    seen: Mutex<Vec<Vec<u8>>>,
}

const NAME: &str = "restricted";

impl fmt::Debug for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Wrapper");
        d.field("fault", &self.fault);
        if self.fault == Fault::LeaksPlaintext {
            d.field("seen", &*self.seen.lock().unwrap_or_else(PoisonError::into_inner));
        }
        d.finish()
    }
}

/// The restricted capabilities: five cheap specs, with deliberate gaps (rsa-oaep-sha1,
/// aes-key-wrap and most RSA signatures undeclared, no digest signing on P-256, no
/// rotation for Ed25519) so the kit's `errors::undeclared*` cases have work to do.
pub(crate) fn restricted_caps(local: &Capabilities, fault: Fault) -> Capabilities {
    use EncryptionAlgorithm as E;
    use SignatureAlgorithm as S;
    let mut caps = Capabilities::new().with_deletion(local.deletion).with_max_page_size(local.max_page_size);
    let base = |spec| local.spec(spec).cloned().unwrap_or_default();
    let mut aes = base(KeySpec::Aes256);
    aes.wrap.retain(|a| *a != WrapAlgorithm::AesKeyWrap);
    let mut rsa = base(KeySpec::Rsa2048);
    rsa.encryption = vec![E::RsaOaepSha256, E::RsaPkcs1v15];
    rsa.signature = vec![S::RsaPssSha256, S::RsaPkcs1v15Sha256];
    match fault {
        Fault::DeclaresUnsupported => rsa.encryption.push(E::RsaOaepSha1),
        Fault::DeclaresMisfit => rsa.encryption.push(E::AesGcm),
        _ => {}
    }
    let mut p256 = base(KeySpec::EcP256);
    p256.sign_digest = false;
    let ed = base(KeySpec::Ed25519).with_rotation(false);
    let hmac: SpecCapabilities = base(KeySpec::HmacSha256);
    for (spec, c) in [
        (KeySpec::Aes256, aes),
        (KeySpec::Rsa2048, rsa),
        (KeySpec::EcP256, p256),
        (KeySpec::Ed25519, ed),
        (KeySpec::HmacSha256, hmac),
    ] {
        caps = caps.with_spec(spec, c);
    }
    caps
}

impl Wrapper {
    pub(crate) fn new(fault: Fault) -> Self {
        Self::over(LocalProvider::in_memory(), fault)
    }

    pub(crate) fn over(inner: LocalProvider, fault: Fault) -> Self {
        let caps = restricted_caps(inner.capabilities(), fault);
        Wrapper { inner, caps, fault, seen: Mutex::new(Vec::new()) }
    }

    async fn info(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.inner.get_key(&KeyRef::new(key.name())).await
    }

    fn remember(&self, secret: &[u8]) {
        if self.fault == Fault::LeaksPlaintext {
            let head = secret[..secret.len().min(32)].to_vec();
            self.seen.lock().unwrap_or_else(PoisonError::into_inner).push(head);
        }
    }

    fn refuses(&self, alg: EncryptionAlgorithm) -> Result<()> {
        if self.fault == Fault::DeclaresUnsupported && alg == EncryptionAlgorithm::RsaOaepSha1 {
            return Err(Error::unsupported(NAME, format!("encryption with {alg}"), "the backend lacks it"));
        }
        Ok(())
    }
}

fn flip_last(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(b) = out.last_mut() {
        *b ^= 0x01;
    }
    out
}

#[async_trait]
impl Provider for Wrapper {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        check::create_key(NAME, &self.caps, &req)?;
        self.inner.create_key(req).await
    }

    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.inner.get_key(key).await
    }

    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        let mut page = self.inner.list_keys(req).await?;
        if self.fault == Fault::DropsPages && page.next_page_token.is_some() && page.keys.len() > 1 {
            page.keys.pop();
        }
        Ok(page)
    }

    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        let info = self.info(key).await?;
        if !self.caps.spec(info.spec).is_some_and(|c| c.rotation) {
            return Err(Error::unsupported(NAME, format!("rotating {} keys", info.spec), "not declared"));
        }
        self.inner.rotate_key(key).await
    }

    async fn set_key_state(&self, key: &KeyRef, state: KeyState) -> Result<KeyInfo> {
        self.inner.set_key_state(key, state).await
    }

    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        self.inner.schedule_deletion(key, after).await
    }

    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.inner.cancel_deletion(key).await
    }

    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        self.inner.public_key(key).await
    }

    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        let aad = if self.fault == Fault::IgnoresAad { None } else { aad };
        let info = self.info(key).await?;
        check::encrypt(NAME, &self.caps, &info, alg, plaintext.len(), aad)?;
        self.refuses(alg)?;
        self.remember(plaintext);
        self.inner.encrypt(key, alg, plaintext, aad).await
    }

    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let aad = if self.fault == Fault::IgnoresAad { None } else { aad };
        let info = self.info(key).await?;
        check::decrypt(NAME, &self.caps, &info, ciphertext.algorithm(), aad)?;
        self.refuses(ciphertext.algorithm())?;
        if self.fault == Fault::ForgetsVersions {
            let current = Ciphertext::new(
                ciphertext.key(),
                &info.version,
                ciphertext.algorithm(),
                ciphertext.bytes().clone(),
            );
            return self.inner.decrypt(key, &current, aad).await;
        }
        self.inner.decrypt(key, ciphertext, aad).await
    }

    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        let info = self.info(key).await?;
        check::sign(NAME, &self.caps, &info, alg, &input)?;
        let sig = self.inner.sign(key, alg, input).await?;
        Ok(match self.fault {
            Fault::CorruptsSignatures => {
                Signature::new(sig.key(), sig.version(), sig.algorithm(), flip_last(sig.as_bytes()))
            }
            _ => sig,
        })
    }

    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let info = self.info(key).await?;
        check::sign(NAME, &self.caps, &info, alg, &input)?;
        match self.fault {
            Fault::CorruptsSignatures => self.inner.verify(key, alg, input, &flip_last(signature)).await,
            _ => self.inner.verify(key, alg, input, signature).await,
        }
    }

    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey> {
        let info = self.info(key).await?;
        check::wrap(NAME, &self.caps, &info, alg, Some(key_material.len()))?;
        self.remember(key_material);
        self.inner.wrap_key(key, alg, key_material).await
    }

    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        let info = self.info(key).await?;
        check::wrap(NAME, &self.caps, &info, wrapped.algorithm(), None)?;
        if self.fault == Fault::ForgetsVersions {
            let current =
                WrappedKey::new(wrapped.key(), &info.version, wrapped.algorithm(), wrapped.bytes().clone());
            return self.inner.unwrap_key(key, &current).await;
        }
        self.inner.unwrap_key(key, wrapped).await
    }

    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag> {
        let info = self.info(key).await?;
        check::mac(NAME, &self.caps, &info, alg)?;
        self.inner.mac(key, alg, message).await
    }

    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool> {
        let info = self.info(key).await?;
        check::mac(NAME, &self.caps, &info, alg)?;
        self.inner.verify_mac(key, alg, message, tag).await
    }
}

/// The names of the cases `report` failed, as a set.
pub(crate) fn failed(report: &hsm_conformance::Report) -> BTreeSet<String> {
    report.failed.iter().map(|(n, _)| n.clone()).collect()
}

/// Every case name for these capabilities that passes `filter` and is not skipped.
pub(crate) fn runnable(caps: &Capabilities, filter: impl Fn(&str) -> bool) -> BTreeSet<String> {
    hsm_conformance::cases(caps)
        .into_iter()
        .filter(|c| c.skip_reason(caps).is_none() && filter(&c.name))
        .map(|c| c.name)
        .collect()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

pub(crate) fn run(fault: Fault) -> hsm_conformance::Report {
    runtime()
        .block_on(hsm_conformance::run_cases(Arc::new(Wrapper::new(fault)), &hsm_conformance::Options::new()))
}
