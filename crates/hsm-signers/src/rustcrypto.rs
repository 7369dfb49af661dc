//! RustCrypto `signature` 3.x: [`KeySigner`] is an `AsyncSigner` and a `Keypair`;
//! [`BlockingSigner`] is a `Signer` for synchronous code.
//!
//! `signature` makes every `Signer` an `AsyncSigner` with a blanket impl, so one type cannot
//! be both: the async signer is [`KeySigner`] itself, the blocking one wraps it.

use hsm_core::{PublicKey, Result};
use signature::{AsyncSigner, Keypair, SignatureEncoding, Signer};
use tokio::runtime::Handle;

use crate::KeySigner;
use crate::blocking::block_on;

macro_rules! sig_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Vec<u8>);

        impl $name {
            /// The signature bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({} bytes)"), self.0.len())
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = signature::Error;

            fn try_from(bytes: &[u8]) -> std::result::Result<Self, Self::Error> {
                if bytes.is_empty() { Err(signature::Error::new()) } else { Ok($name(bytes.to_vec())) }
            }
        }

        impl From<$name> for Vec<u8> {
            fn from(s: $name) -> Vec<u8> {
                s.0
            }
        }

        impl SignatureEncoding for $name {
            type Repr = Vec<u8>;
        }
    };
}

sig_type!(
    /// A signature as X.509, CMS, TLS and OpenSSL carry it: DER `SEQUENCE { r, s }` for ECDSA
    /// (low-S for secp256k1), the raw bytes for RSA and Ed25519.
    DerSignature
);
sig_type!(
    /// A signature as JOSE and PKCS#11 carry it: fixed-size `r ‖ s` for ECDSA, the raw bytes
    /// for RSA and Ed25519.
    FixedSignature
);

fn to_sig_error(e: hsm_core::Error) -> signature::Error {
    signature::Error::from_source(e)
}

impl AsyncSigner<DerSignature> for KeySigner {
    async fn sign_async(&self, msg: &[u8]) -> std::result::Result<DerSignature, signature::Error> {
        self.sign(msg).await.map(DerSignature).map_err(to_sig_error)
    }
}

impl AsyncSigner<FixedSignature> for KeySigner {
    async fn sign_async(&self, msg: &[u8]) -> std::result::Result<FixedSignature, signature::Error> {
        self.sign_fixed(msg).await.map(FixedSignature).map_err(to_sig_error)
    }
}

impl Keypair for KeySigner {
    /// The SPKI DER public key (convert it with `from_public_key_der` into p256, rsa, …).
    type VerifyingKey = PublicKey;

    fn verifying_key(&self) -> PublicKey {
        self.public_key().clone()
    }
}

/// A [`KeySigner`] for synchronous code: RustCrypto's [`Signer`], for code that cannot await.
///
/// Each signature is a provider call that this thread waits for (see [`crate::blocking`]):
/// call it from a plain thread or from a **multi-thread** tokio runtime (where
/// `block_in_place` keeps the other tasks and the reactor running), never from a
/// current-thread runtime, where it returns an error instead of deadlocking. In async code,
/// use the [`KeySigner`]'s `AsyncSigner` instead.
///
/// ```no_run
/// # async fn demo(signer: hsm_signers::KeySigner) {
/// use hsm_signers::{BlockingSigner, DerSignature};
/// use signature::Signer as _;
/// let blocking = BlockingSigner::new(signer, tokio::runtime::Handle::current());
/// let sig: DerSignature = std::thread::spawn(move || blocking.try_sign(b"hello")).join().unwrap().unwrap();
/// # let _ = sig;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BlockingSigner {
    inner: KeySigner,
    handle: Handle,
}

impl BlockingSigner {
    /// Wraps `signer`; provider calls run on `handle`'s runtime (the one the provider was
    /// made on, for providers whose connections belong to a runtime).
    pub fn new(signer: KeySigner, handle: Handle) -> Self {
        BlockingSigner { inner: signer, handle }
    }

    /// The async signer inside.
    pub fn inner(&self) -> &KeySigner {
        &self.inner
    }

    /// Signs `msg`, waiting for the provider (DER for ECDSA).
    ///
    /// # Errors
    /// [`KeySigner::sign`]'s errors, and `Config` on a current-thread runtime's thread.
    pub fn sign_blocking(&self, msg: &[u8]) -> Result<Vec<u8>> {
        block_on(&self.handle, self.inner.provider().name(), self.inner.sign(msg))
    }
}

impl Signer<DerSignature> for BlockingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<DerSignature, signature::Error> {
        self.sign_blocking(msg).map(DerSignature).map_err(to_sig_error)
    }
}

impl Signer<FixedSignature> for BlockingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<FixedSignature, signature::Error> {
        block_on(&self.handle, self.inner.provider().name(), self.inner.sign_fixed(msg))
            .map(FixedSignature)
            .map_err(to_sig_error)
    }
}

impl Keypair for BlockingSigner {
    type VerifyingKey = PublicKey;

    fn verifying_key(&self) -> PublicKey {
        self.inner.public_key().clone()
    }
}
