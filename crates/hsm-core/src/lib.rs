//! # hsm-core
//!
//! The shared vocabulary of hsm: the object-safe async [`Provider`] trait that every
//! backend implements (AWS KMS, Azure Key Vault, Google Cloud KMS, PKCS#11, the embedded
//! local provider, or your own), the [`Error`] type, key metadata, [`Capabilities`] as
//! data, and the self-describing [`Ciphertext`], [`Signature`], [`WrappedKey`] and
//! [`MacTag`] blobs.
//!
//! This crate depends on no vendor SDK and no async runtime. Applications normally use
//! the `hsm` umbrella crate, which re-exports everything here.
//!
//! ## Implementing a provider
//!
//! Implement [`Provider`] (with `#[async_trait]`), declare what you support in
//! [`Capabilities`], run the request checks in [`check`] before any work so bad input gets
//! the same typed error everywhere, and run the `hsm-conformance` kit in your tests.
//! [`ProviderExt`] conveniences come for free.
//!
//! ```
//! use std::sync::Arc;
//! use hsm_core::Provider;
//! fn assert_shareable(p: Arc<dyn Provider>) -> Arc<dyn Provider> { p }
//! # let _ = assert_shareable;
//! ```

mod audit;
pub mod blob;
mod capabilities;
pub mod check;
mod error;
mod ext;
mod key;
pub mod paging;
mod provider;
pub mod settings;
mod vocab;

pub use async_trait::async_trait;
pub use audit::Audited;
pub use blob::{Ciphertext, MacTag, Signature, WrappedKey};
pub use capabilities::{Capabilities, DeletionPolicy, SpecCapabilities};
pub use error::{BoxError, Error, Result, UnusableReason};
pub use ext::ProviderExt;
pub use key::{
    CreateKey, Deletion, KeyInfo, KeyPage, KeyRef, ListKeys, MAX_KEY_NAME_LEN, PublicKey, validate_key_name,
};
pub use provider::{Provider, SignInput};
pub use vocab::{
    DigestAlgorithm, EncryptionAlgorithm, KeyFamily, KeySpec, KeyState, KeyUsage, MacAlgorithm,
    ParseNameError, SignatureAlgorithm, WrapAlgorithm,
};
pub use zeroize::Zeroizing;

#[cfg(test)]
mod send_sync {
    //! Compile-time guarantees: providers are shareable and every extension future is `Send`.
    use super::*;
    use std::sync::Arc;

    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}

    #[allow(dead_code, clippy::let_underscore_future)]
    fn extension_futures_are_send(
        p: Arc<dyn Provider>,
        k: KeyRef,
        ct: Ciphertext,
        sig: Signature,
        w: WrappedKey,
    ) {
        is_send(&p.list_all(ListKeys::new()));
        is_send(&p.list_keys_where(ListKeys::new(), |_| true));
        is_send(&p.key_exists("k"));
        is_send(&p.encrypt_default(&k, b"x", None));
        is_send(&p.decrypt_blob(&ct, None));
        is_send(&p.sign_message(&k, b"x"));
        is_send(&p.verify_signature(&sig, b"x"));
        is_send(&p.unwrap_blob(&w));
        is_send(&p.get_key(&k));
    }

    #[test]
    fn arc_dyn_provider_is_send_and_sync() {
        is_send_sync::<Arc<dyn Provider>>();
        is_send_sync::<Error>();
        is_send_sync::<Capabilities>();
    }
}
