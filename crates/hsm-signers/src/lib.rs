//! Provider keys in the Rust ecosystem.
//!
//! [`KeySigner`] turns any signing key of any [`Provider`](hsm_core::Provider) (local, PKCS#11,
//! AWS KMS, Azure Key Vault, Cloud KMS, or a third party's) into a signer: it looks the key
//! up and fetches its public key once, refuses keys that cannot sign with a typed error,
//! and signs with the algorithm the key's spec implies. On top of it, one cargo feature per
//! integration:
//!
//! | feature | what you get |
//! |---|---|
//! | `rustcrypto` (default) | `signature` 3.x: [`KeySigner`] is an `AsyncSigner<DerSignature>` / `AsyncSigner<FixedSignature>` and a `Keypair`; [`BlockingSigner`] is a `Signer` |
//! | `x509-cert` | `DynSignatureAlgorithmIdentifier` (RSA-PSS included) and spki `EncodePublicKey`, so x509-cert 0.3's `build_async` makes certificates and CSRs with [`KeySigner`] |
//! | `jose` (default) | [`jose`]: compact JWS and JWT sign/verify, JWK and JWK Sets |
//! | `rustls` | [`tls`]: rustls `sign::SigningKey` offering only the schemes the key can make |
//! | `ssh` | [`ssh`]: OpenSSH public keys, an SSH agent serving provider keys (`ssh-keygen -Y sign`, git commit signing) |
//! | `x509` | [`x509`]: rcgen `SigningKey` for provider keys; self-signed and CA certificates, CSRs, certificates issued from CSRs |
//!
//! Synchronous integrations wait for the provider with [`blocking::block_on`], which never
//! blocks a tokio runtime's reactor (see its module docs).
//!
//! ```no_run
//! # async fn demo() -> hsm_core::Result<()> {
//! use std::sync::Arc;
//! use hsm_core::{CreateKey, KeySpec, Provider};
//!
//! let provider: Arc<dyn Provider> = Arc::new(hsm_local::LocalProvider::in_memory());
//! provider.create_key(CreateKey::new("tokens", KeySpec::EcP256)).await?;
//! let signer = hsm_signers::KeySigner::new(provider, "tokens").await?;
//! let jwt = hsm_signers::jose::sign_jwt(&signer, &serde_json::json!({"sub": "alice"})).await?;
//! let jwk = hsm_signers::jose::jwk(signer.public_key(), Some(signer.algorithm()))?;
//! # let _ = (jwt, jwk);
//! # Ok(())
//! # }
//! ```

pub mod blocking;
// SPKI parsing is only used by the jose (and ssh) features.
#[cfg_attr(not(all(feature = "jose", feature = "x509", feature = "ssh")), allow(dead_code))]
mod der;
#[cfg(feature = "jose")]
pub mod jose;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;
mod signer;
#[cfg(feature = "ssh")]
pub mod ssh;
#[cfg(feature = "rustls")]
pub mod tls;
#[cfg(feature = "x509")]
pub mod x509;

#[cfg(feature = "rustcrypto")]
pub use rustcrypto::{BlockingSigner, DerSignature, FixedSignature, VerifyingKey};
#[cfg(feature = "rustcrypto")]
pub use signature;
pub use signer::KeySigner;
#[cfg(feature = "x509-cert")]
pub use x509_cert;

/// Compile-time checks: the futures of the public async functions are `Send`, so they can be
/// spawned on a multi-thread runtime (tokio's `async_send_sync` habit).
#[cfg(test)]
#[allow(dead_code, clippy::let_underscore_future)]
mod send_checks {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    fn futures_are_send(p: std::sync::Arc<dyn hsm_core::Provider>, s: KeySigner) {
        is_send(&KeySigner::new(p.clone(), "k"));
        is_send(&s.sign(b"m"));
        is_send(&s.sign_fixed(b"m"));
        #[cfg(feature = "rustcrypto")]
        is_send(&signature::AsyncSigner::<DerSignature>::sign_async(&s, b"m"));
        #[cfg(feature = "jose")]
        {
            is_send(&jose::sign_jwt(&s, &serde_json::Value::Null));
            is_send(&jose::verify_jwt(p.as_ref(), s.key_ref(), "t", 0));
            is_send(&jose::jwks(p.as_ref(), "k", None));
        }
        #[cfg(feature = "x509")]
        {
            let o = x509::CertOptions::new("CN=x");
            is_send(&x509::self_signed(&s, &o));
            is_send(&x509::csr(&s, &o));
            is_send(&x509::issue(&s, "", "", &o));
        }
        #[cfg(feature = "ssh")]
        {
            is_send(&ssh::SshAgent::all(p.clone()));
            is_send(&ssh::sign(&s, b"m", 0));
        }
    }
}
