//! Integration tests of hsm-envelope over the local provider.

mod cache;
mod format;
mod keyring;
mod stream;
mod switch;
mod tamper;
mod v1;

use hsm_core::{CreateKey, KeySpec, KeyUsage, Provider};
use hsm_local::LocalProvider;

/// A provider with one key of each kind an envelope can use, and one it cannot.
pub(crate) async fn provider() -> LocalProvider {
    let p = LocalProvider::in_memory();
    p.create_key(CreateKey::new("wrapper", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    p.create_key(CreateKey::new("encrypter", KeySpec::Aes256)).await.unwrap();
    p.create_key(CreateKey::new("rsa-wrapper", KeySpec::Rsa2048).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    p.create_key(CreateKey::new("rsa-encrypter", KeySpec::Rsa2048)).await.unwrap();
    p.create_key(CreateKey::new("signer", KeySpec::EcP256)).await.unwrap();
    p
}

/// Deterministic, non-repeating-looking test data.
pub(crate) fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8 ^ (i >> 12) as u8).collect()
}
