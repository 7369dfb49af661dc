//! Conveniences over any [`Provider`], implemented once for all of them.

use std::future::Future;

use zeroize::Zeroizing;

use crate::blob::{Ciphertext, MacTag, Signature, WrappedKey};
use crate::error::{Error, Result};
use crate::key::{KeyInfo, KeyRef, ListKeys};
use crate::provider::{Provider, SignInput};

/// Conveniences every [`Provider`] gets through a blanket implementation. Implementors
/// never write these; the futures are `Send`.
///
/// ```
/// # async fn demo(p: &dyn hsm_core::Provider) -> hsm_core::Result<()> {
/// use hsm_core::{ListKeys, ProviderExt};
/// let production = p.list_keys_where(ListKeys::new(), |k| k.tags.get("environment").map(String::as_str) == Some("production")).await?;
/// # let _ = production; Ok(()) }
/// ```
pub trait ProviderExt: Provider {
    /// Every key matching `req`, following pages until the end.
    ///
    /// # Errors
    /// Whatever [`Provider::list_keys`] returns.
    fn list_all(&self, req: ListKeys) -> impl Future<Output = Result<Vec<KeyInfo>>> + Send {
        async move {
            let mut req = req;
            let mut out = Vec::new();
            loop {
                let page = self.list_keys(req.clone()).await?;
                out.extend(page.keys);
                match page.next_page_token {
                    Some(t) if req.page_token.as_deref() != Some(t.as_str()) => req.page_token = Some(t),
                    _ => return Ok(out),
                }
            }
        }
    }

    /// Every key matching `req` for which `filter` returns true (the original client's
    /// `list_keys(filter_func=...)`).
    ///
    /// # Errors
    /// Whatever [`Provider::list_keys`] returns.
    fn list_keys_where<F>(
        &self,
        req: ListKeys,
        filter: F,
    ) -> impl Future<Output = Result<Vec<KeyInfo>>> + Send
    where
        F: Fn(&KeyInfo) -> bool + Send,
    {
        async move {
            let all = self.list_all(req).await?;
            Ok(all.into_iter().filter(|k| filter(k)).collect())
        }
    }

    /// Whether a key called `name` exists.
    ///
    /// # Errors
    /// Errors other than `NotFound`.
    fn key_exists(&self, name: &str) -> impl Future<Output = Result<bool>> + Send {
        let key = KeyRef::new(name);
        async move {
            match self.get_key(&key).await {
                Ok(_) => Ok(true),
                Err(Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        }
    }

    /// Encrypts with the key's natural algorithm (AES-GCM for AES, RSA-OAEP-SHA-256 for RSA).
    ///
    /// # Errors
    /// As [`Provider::encrypt`]; `InvalidInput` for a key that does not encrypt.
    fn encrypt_default<'a>(
        &'a self,
        key: &'a KeyRef,
        plaintext: &'a [u8],
        aad: Option<&'a [u8]>,
    ) -> impl Future<Output = Result<Ciphertext>> + Send + 'a {
        async move {
            let info = self.get_key(key).await?;
            let alg = info.spec.default_encryption_algorithm().ok_or_else(|| {
                Error::invalid_input(
                    self.name(),
                    format!("key '{}' is an {} key, which does not encrypt", info.name, info.spec),
                )
            })?;
            self.encrypt(key, alg, plaintext, aad).await
        }
    }

    /// Decrypts with the key named in the ciphertext.
    ///
    /// # Errors
    /// As [`Provider::decrypt`].
    fn decrypt_blob<'a>(
        &'a self,
        ciphertext: &'a Ciphertext,
        aad: Option<&'a [u8]>,
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>>> + Send + 'a {
        async move { self.decrypt(&ciphertext.key_ref(), ciphertext, aad).await }
    }

    /// Signs a message with the key's natural algorithm.
    ///
    /// # Errors
    /// As [`Provider::sign`]; `InvalidInput` for a key that does not sign.
    fn sign_message<'a>(
        &'a self,
        key: &'a KeyRef,
        message: &'a [u8],
    ) -> impl Future<Output = Result<Signature>> + Send + 'a {
        async move {
            let info = self.get_key(key).await?;
            let alg = info.spec.default_signature_algorithm().ok_or_else(|| {
                Error::invalid_input(
                    self.name(),
                    format!("key '{}' is an {} key, which does not sign", info.name, info.spec),
                )
            })?;
            self.sign(key, alg, SignInput::Message(message)).await
        }
    }

    /// Verifies a [`Signature`] over `message` with the key version and algorithm it records.
    ///
    /// # Errors
    /// As [`Provider::verify`].
    fn verify_signature<'a>(
        &'a self,
        signature: &'a Signature,
        message: &'a [u8],
    ) -> impl Future<Output = Result<bool>> + Send + 'a {
        async move {
            self.verify(
                &signature.key_ref(),
                signature.algorithm(),
                SignInput::Message(message),
                signature.as_bytes(),
            )
            .await
        }
    }

    /// Unwraps with the key version recorded in `wrapped`.
    ///
    /// # Errors
    /// As [`Provider::unwrap_key`].
    fn unwrap_blob<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>>> + Send + 'a {
        async move { self.unwrap_key(&wrapped.key_ref(), wrapped).await }
    }

    /// Verifies a [`MacTag`] over `message` with the key version and algorithm it records.
    ///
    /// # Errors
    /// As [`Provider::verify_mac`].
    fn verify_mac_tag<'a>(
        &'a self,
        tag: &'a MacTag,
        message: &'a [u8],
    ) -> impl Future<Output = Result<bool>> + Send + 'a {
        async move { self.verify_mac(&tag.key_ref(), tag.algorithm(), message, tag.as_bytes()).await }
    }
}

impl<P: Provider + ?Sized> ProviderExt for P {}
