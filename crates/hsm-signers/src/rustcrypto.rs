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

/// The public half of a [`KeySigner`], as `Keypair::VerifyingKey`: the provider's SPKI DER
/// (convert it with `from_public_key_der` into a p256, rsa, ed25519-dalek… verifying key).
/// With the `x509-cert` feature it implements spki's `EncodePublicKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey(PublicKey);

impl VerifyingKey {
    /// The provider's public key (name, version, spec, SPKI DER).
    pub fn public_key(&self) -> &PublicKey {
        &self.0
    }

    /// The DER-encoded `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.0.spki_der
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(v: VerifyingKey) -> PublicKey {
        v.0
    }
}

impl Keypair for KeySigner {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.public_key().clone())
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
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.inner.public_key().clone())
    }
}

#[cfg(feature = "x509-cert")]
mod x509_cert_traits {
    //! What x509-cert 0.3's `Builder::build_async` asks of a signer: the signature algorithm
    //! identifier (`DynSignatureAlgorithmIdentifier`), the public key as SPKI
    //! (`EncodePublicKey`), and the signature as a BIT STRING.

    use hsm_core::SignatureAlgorithm as S;
    use spki8::der::asn1::BitString;
    use spki8::der::{Any, Decode as _};
    use spki8::{
        AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey, ObjectIdentifier,
        SignatureBitStringEncoding,
    };

    use super::{BlockingSigner, DerSignature, VerifyingKey};
    use crate::KeySigner;
    use crate::der::{SEQUENCE, tlv};

    // Evaluated at compile time: a typo fails the build, never a run.
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
    const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
    const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
    const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

    /// `AlgorithmIdentifier { hash, NULL }` for SHA-256/384/512 (the last OID byte).
    fn hash_alg(last: u8) -> Vec<u8> {
        let mut body = vec![0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last];
        body.extend_from_slice(&[0x05, 0x00]);
        tlv(SEQUENCE, &body)
    }

    /// RSASSA-PSS-params (RFC 4055): the hash, MGF1 with the same hash, salt = hash length.
    fn pss_params(last: u8, salt: u8) -> Vec<u8> {
        let hash = hash_alg(last);
        let mut mgf = vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
        mgf.extend_from_slice(&hash);
        let mgf = tlv(SEQUENCE, &mgf);
        let mut body = tlv(0xa0, &hash);
        body.extend_from_slice(&tlv(0xa1, &mgf));
        body.extend_from_slice(&tlv(0xa2, &[0x02, 0x01, salt]));
        tlv(SEQUENCE, &body)
    }

    fn identifier(alg: S) -> spki8::Result<AlgorithmIdentifierOwned> {
        let (oid, params) = match alg {
            S::EcdsaSha256 => (ECDSA_SHA256, None),
            S::EcdsaSha384 => (ECDSA_SHA384, None),
            S::EcdsaSha512 => (ECDSA_SHA512, None),
            S::Ed25519 => (ED25519, None),
            S::RsaPkcs1v15Sha256 => (RSA_SHA256, Some(Any::null())),
            S::RsaPkcs1v15Sha384 => (RSA_SHA384, Some(Any::null())),
            S::RsaPkcs1v15Sha512 => (RSA_SHA512, Some(Any::null())),
            S::RsaPssSha256 => (RSA_PSS, Some(Any::from_der(&pss_params(1, 32))?)),
            S::RsaPssSha384 => (RSA_PSS, Some(Any::from_der(&pss_params(2, 48))?)),
            S::RsaPssSha512 => (RSA_PSS, Some(Any::from_der(&pss_params(3, 64))?)),
            _ => return Err(spki8::Error::AlgorithmParametersMissing),
        };
        Ok(AlgorithmIdentifierOwned { oid, parameters: params })
    }

    impl DynSignatureAlgorithmIdentifier for KeySigner {
        fn signature_algorithm_identifier(&self) -> spki8::Result<AlgorithmIdentifierOwned> {
            identifier(self.algorithm())
        }
    }

    impl DynSignatureAlgorithmIdentifier for BlockingSigner {
        fn signature_algorithm_identifier(&self) -> spki8::Result<AlgorithmIdentifierOwned> {
            identifier(self.inner().algorithm())
        }
    }

    impl EncodePublicKey for VerifyingKey {
        fn to_public_key_der(&self) -> spki8::Result<spki8::Document> {
            Ok(spki8::Document::try_from(self.spki_der())?)
        }
    }

    impl SignatureBitStringEncoding for DerSignature {
        fn to_bitstring(&self) -> spki8::der::Result<BitString> {
            BitString::from_bytes(self.as_bytes())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn pss_parameters_are_rfc4055_der() {
            // openssl's encoding of RSASSA-PSS-params for SHA-256, MGF1-SHA-256, salt 32.
            let want = "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120";
            let got: String = pss_params(1, 32).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, want);
        }
    }
}
