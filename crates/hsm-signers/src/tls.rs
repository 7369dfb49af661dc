//! rustls 0.23: provider keys as `sign::SigningKey`, for TLS servers (and mTLS clients)
//! whose private key never leaves the KMS or HSM.
//!
//! Only schemes the key can make are offered: the provider's declared algorithms for the
//! key's spec that TLS has a scheme for (a Cloud KMS key has one fixed algorithm, so it offers
//! one scheme). secp256k1 has no TLS scheme and is refused. TLS 1.3 signs with RSA only
//! through PSS: an RSA key whose provider declares no PSS cannot serve TLS 1.3
//! ([`TlsSigningKey::check_tls13`] says so up front; the handshake would fail).
//!
//! rustls calls `Signer::sign` synchronously, inside the handshake. The bridge is
//! [`crate::blocking::block_on`]: on a multi-thread tokio runtime (tokio-rustls) the worker
//! hands its other tasks and the I/O driver to another thread (`block_in_place`) and waits
//! for the provider, so the reactor keeps running; on a plain thread it simply waits. A
//! current-thread runtime cannot wait on itself: the signature fails with `Config` (logged
//! by rustls as a handshake error) instead of deadlocking.

use std::sync::Arc;

use hsm_core::{Error, KeyFamily, KeySpec, Result, SignatureAlgorithm};
use rustls::SignatureScheme;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use tokio::runtime::Handle;

use crate::KeySigner;
use crate::blocking::block_on;

/// The TLS scheme for `algorithm` on a `spec` key, if TLS has one.
pub fn tls_scheme(spec: KeySpec, algorithm: SignatureAlgorithm) -> Option<SignatureScheme> {
    use SignatureAlgorithm as S;
    Some(match (spec, algorithm) {
        (KeySpec::EcP256, S::EcdsaSha256) => SignatureScheme::ECDSA_NISTP256_SHA256,
        (KeySpec::EcP384, S::EcdsaSha384) => SignatureScheme::ECDSA_NISTP384_SHA384,
        (KeySpec::EcP521, S::EcdsaSha512) => SignatureScheme::ECDSA_NISTP521_SHA512,
        (KeySpec::Ed25519, S::Ed25519) => SignatureScheme::ED25519,
        (s, S::RsaPkcs1v15Sha256) if s.family() == KeyFamily::Rsa => SignatureScheme::RSA_PKCS1_SHA256,
        (s, S::RsaPkcs1v15Sha384) if s.family() == KeyFamily::Rsa => SignatureScheme::RSA_PKCS1_SHA384,
        (s, S::RsaPkcs1v15Sha512) if s.family() == KeyFamily::Rsa => SignatureScheme::RSA_PKCS1_SHA512,
        (s, S::RsaPssSha256) if s.family() == KeyFamily::Rsa => SignatureScheme::RSA_PSS_SHA256,
        (s, S::RsaPssSha384) if s.family() == KeyFamily::Rsa => SignatureScheme::RSA_PSS_SHA384,
        (s, S::RsaPssSha512) if s.family() == KeyFamily::Rsa => SignatureScheme::RSA_PSS_SHA512,
        _ => return None,
    })
}

/// A provider key as a rustls `SigningKey`.
///
/// ```no_run
/// # async fn demo(signer: hsm_signers::KeySigner, chain: Vec<rustls::pki_types::CertificateDer<'static>>) -> hsm_core::Result<()> {
/// use std::sync::Arc;
/// use hsm_signers::tls::TlsSigningKey;
/// let key = TlsSigningKey::new(signer, tokio::runtime::Handle::current())?;
/// let certified = rustls::sign::CertifiedKey::new(chain, Arc::new(key));
/// let config = rustls::ServerConfig::builder()
///     .with_no_client_auth()
///     .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TlsSigningKey {
    signer: KeySigner,
    handle: Handle,
    /// Offered schemes, in preference order, with the algorithm behind each.
    schemes: Vec<(SignatureScheme, SignatureAlgorithm)>,
}

impl TlsSigningKey {
    /// Every scheme the provider can make with the key (for RSA: PSS first, then PKCS#1).
    ///
    /// # Errors
    /// `Unsupported` when TLS has no scheme for the key (secp256k1).
    pub fn new(signer: KeySigner, handle: Handle) -> Result<Self> {
        let spec = signer.spec();
        let declared =
            signer.provider().capabilities().spec(spec).map(|c| c.signature.clone()).unwrap_or_default();
        let mut algs: Vec<SignatureAlgorithm> = declared.into_iter().filter(|a| a.fits(spec)).collect();
        if !algs.contains(&signer.algorithm()) {
            algs.push(signer.algorithm());
        }
        Self::build(signer, handle, algs)
    }

    /// Only the signer's own algorithm, for a key that must sign one way.
    ///
    /// # Errors
    /// `Unsupported` when TLS has no scheme for it (secp256k1).
    pub fn only(signer: KeySigner, handle: Handle) -> Result<Self> {
        let alg = signer.algorithm();
        Self::build(signer, handle, vec![alg])
    }

    fn build(signer: KeySigner, handle: Handle, mut algs: Vec<SignatureAlgorithm>) -> Result<Self> {
        // PSS before PKCS#1, stronger hashes after the common one: the order rustls tries.
        algs.sort_by_key(|a| (!a.as_str().contains("pss"), a.digest().map(|d| d.output_len())));
        algs.dedup();
        let spec = signer.spec();
        let schemes: Vec<_> = algs.into_iter().filter_map(|a| tls_scheme(spec, a).map(|s| (s, a))).collect();
        if schemes.is_empty() {
            let why = if spec == KeySpec::EcSecp256k1 {
                "TLS has no secp256k1 signature scheme; use a P-256 or P-384 key".to_owned()
            } else {
                format!("TLS has no signature scheme for {}", signer.algorithm())
            };
            return Err(Error::unsupported(
                signer.provider().name(),
                format!("TLS with {spec} key '{}'", signer.key_ref()),
                why,
            ));
        }
        Ok(TlsSigningKey { signer, handle, schemes })
    }

    /// The schemes offered, in preference order.
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.iter().map(|(s, _)| *s).collect()
    }

    /// Whether the key can serve TLS 1.3, which signs with RSA only through PSS.
    ///
    /// # Errors
    /// `Unsupported` for an RSA key offered without PSS, naming why.
    pub fn check_tls13(&self) -> Result<()> {
        let ok = self.schemes.iter().any(|(s, _)| {
            !matches!(
                s,
                SignatureScheme::RSA_PKCS1_SHA256
                    | SignatureScheme::RSA_PKCS1_SHA384
                    | SignatureScheme::RSA_PKCS1_SHA512
            )
        });
        if ok {
            Ok(())
        } else {
            Err(Error::unsupported(
                self.signer.provider().name(),
                format!("TLS 1.3 with key '{}'", self.signer.key_ref()),
                "TLS 1.3 signs with RSA only through RSA-PSS and this key signs only with PKCS#1 v1.5; \
                 allow TLS 1.2 only, or use a key whose algorithm is RSA-PSS",
            ))
        }
    }
}

impl rustls::sign::SigningKey for TlsSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let (scheme, alg) = self.schemes.iter().find(|(s, _)| offered.contains(s))?;
        let signer = self.signer.to_algorithm(*alg).ok()?;
        Some(Box::new(TlsSigner { signer, handle: self.handle.clone(), scheme: *scheme }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.signer.public_key().spki_der.as_ref()))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        match self.signer.spec().family() {
            KeyFamily::Rsa => rustls::SignatureAlgorithm::RSA,
            KeyFamily::Ed25519 => rustls::SignatureAlgorithm::ED25519,
            _ => rustls::SignatureAlgorithm::ECDSA,
        }
    }
}

/// One handshake's signer: the key with the negotiated scheme's algorithm.
#[derive(Debug)]
struct TlsSigner {
    signer: KeySigner,
    handle: Handle,
    scheme: SignatureScheme,
}

impl rustls::sign::Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        block_on(&self.handle, self.signer.provider().name(), self.signer.sign(message))
            .map_err(|e| rustls::Error::General(format!("signing with key '{}': {e}", self.signer.key_ref())))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// The key as an `Arc<dyn SigningKey>` with its certificate chain, ready for
/// `SingleCertAndKey` or a custom resolver.
///
/// # Errors
/// As [`TlsSigningKey::new`].
pub fn certified_key(
    signer: KeySigner,
    handle: Handle,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<Arc<rustls::sign::CertifiedKey>> {
    let key = TlsSigningKey::new(signer, handle)?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, Arc::new(key))))
}
