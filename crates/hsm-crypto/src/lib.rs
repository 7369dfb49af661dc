//! hsm's software cryptography: the primitives behind `hsm-local`'s provider, the local
//! verification and encryption of the cloud providers (`hsm-aws`, `hsm-gcp`) and the
//! emulators (`hsm-emulator`), as plain functions over aws-lc-rs key objects.
//!
//! A crate of its own so that using these primitives does not pull in the embedded provider's
//! keystore (Argon2, file locking). `hsm-local` re-exports it as `hsm_local::primitives`, so
//! the Wycheproof vectors in that crate's tests exercise the exact code paths the provider
//! uses. Not a stable API for applications: use the [`Provider`](hsm_core::Provider) trait.
//!
//! Every failure is the opaque [`CryptoError`]; the provider turns it into
//! `Error::DecryptionFailed` (decrypt, unwrap), `Ok(false)` (verify) or an internal error.

mod aes_kw;
mod fork;

use std::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey, RsaKeyPair};
use hsm_core::{DigestAlgorithm, EncryptionAlgorithm, KeySpec, SignInput, SignatureAlgorithm};
use zeroize::Zeroizing;

pub use crate::aes_kw::wrap_pad as aes_kwp_wrap;
pub use crate::aes_kw::{unwrap as aes_kw_unwrap, unwrap_pad as aes_kwp_unwrap, wrap as aes_kw_wrap};

/// A primitive failed. Deliberately carries no detail (no padding or tag oracle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoError;

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cryptographic operation failed")
    }
}

impl std::error::Error for CryptoError {}

impl From<aws_lc_rs::error::Unspecified> for CryptoError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        CryptoError
    }
}

impl From<aws_lc_rs::error::KeyRejected> for CryptoError {
    fn from(_: aws_lc_rs::error::KeyRejected) -> Self {
        CryptoError
    }
}

/// Nonce length of AES-GCM payloads.
pub const GCM_NONCE_LEN: usize = 12;
/// Tag length of AES-GCM payloads.
pub const GCM_TAG_LEN: usize = 16;

/// How many GCM nonces one call to the random generator draws.
const NONCE_BATCH: usize = 64;

/// Random GCM nonces drawn from AWS-LC's DRBG [`NONCE_BATCH`] at a time, handed out once each.
struct NonceBatch {
    /// The [`fork::generation`](crate::fork::generation) that drew them: a forked child must
    /// not hand out its parent's nonces.
    generation: u64,
    /// The next unused nonce; `NONCE_BATCH` when none is left.
    next: usize,
    bytes: [u8; NONCE_BATCH * GCM_NONCE_LEN],
}

thread_local! {
    static NONCES: std::cell::RefCell<NonceBatch> = const {
        std::cell::RefCell::new(NonceBatch { generation: 0, next: NONCE_BATCH, bytes: [0; NONCE_BATCH * GCM_NONCE_LEN] })
    };
}

/// A uniformly random 96-bit nonce from AWS-LC's DRBG (`RAND_bytes`), never handed out twice.
///
/// A `RAND_bytes` call has a fixed cost (on x86-64 it also reads RDRAND for prediction
/// resistance, which is slow on some CPUs) far above that of 12 more bytes, so nonces are
/// drawn 64 at a time per thread: the same DRBG output a call per nonce would return, without
/// the per-call cost. Each batch is tied to the process that drew it (checked with one atomic
/// load, see `fork.rs`); after a `fork` the child draws its own, so parent and child never
/// share a nonce.
///
/// # Errors
/// [`CryptoError`] if the random generator fails.
pub fn random_nonce() -> Result<[u8; GCM_NONCE_LEN], CryptoError> {
    let generation = crate::fork::generation();
    NONCES.with_borrow_mut(|b| {
        if b.next >= NONCE_BATCH || b.generation != generation {
            aws_lc_rs::rand::fill(&mut b.bytes)?;
            (b.generation, b.next) = (generation, 0);
        }
        let mut nonce = [0u8; GCM_NONCE_LEN];
        let at = b.next * GCM_NONCE_LEN;
        nonce.copy_from_slice(&b.bytes[at..at + GCM_NONCE_LEN]);
        b.next += 1;
        Ok(nonce)
    })
}

/// An AES-GCM key (128, 192 or 256 bits) producing `nonce (12) ‖ ciphertext ‖ tag (16)`.
pub struct AesGcmKey(LessSafeKey);

impl fmt::Debug for AesGcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesGcmKey([redacted])")
    }
}

impl AesGcmKey {
    /// A key from 16, 24 or 32 raw bytes.
    ///
    /// # Errors
    /// [`CryptoError`] for any other length.
    pub fn new(raw: &[u8]) -> Result<Self, CryptoError> {
        let alg = match raw.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            32 => &aead::AES_256_GCM,
            _ => return Err(CryptoError),
        };
        Ok(AesGcmKey(LessSafeKey::new(UnboundKey::new(alg, raw)?)))
    }

    /// Encrypts under a fresh random 96-bit nonce from AWS-LC's DRBG ([`random_nonce`]).
    ///
    /// # Errors
    /// [`CryptoError`] if the random generator or the cipher fails.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_with_nonce(&random_nonce()?, plaintext, aad)
    }

    /// Encrypts under a caller-chosen nonce (tests only: reusing a nonce breaks GCM).
    ///
    /// # Errors
    /// [`CryptoError`] if the cipher fails.
    pub fn seal_with_nonce(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        // Out of place: the cipher reads the plaintext and writes the output once, with no
        // copy of the plaintext into the output buffer first (a copy cost more than the
        // AES-GCM itself at 64 KiB on the benchmark machine).
        let mut out = vec![0u8; GCM_NONCE_LEN + plaintext.len() + GCM_TAG_LEN];
        let (head, rest) = out.split_at_mut(GCM_NONCE_LEN);
        head.copy_from_slice(nonce);
        let (body, tag) = rest.split_at_mut(plaintext.len());
        self.0.seal_out_of_place_scatter(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            plaintext,
            body,
            &[],
            tag,
        )?;
        Ok(out)
    }

    /// Decrypts `nonce ‖ ciphertext ‖ tag`.
    ///
    /// # Errors
    /// [`CryptoError`] for a payload that is too short, a wrong tag or wrong AAD.
    pub fn open(&self, payload: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if payload.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
            return Err(CryptoError);
        }
        let (nonce, rest) = payload.split_at(GCM_NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)?;
        let mut buf = Zeroizing::new(rest.to_vec());
        let n = self.0.open_in_place(nonce, Aad::from(aad), &mut buf)?.len();
        buf.truncate(n);
        Ok(buf)
    }
}

fn oaep(alg: EncryptionAlgorithm) -> Option<&'static OaepAlgorithm> {
    match alg {
        EncryptionAlgorithm::RsaOaepSha1 => Some(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RsaOaepSha256 => Some(&OAEP_SHA256_MGF1SHA256),
        _ => None,
    }
}

/// RSA encryption with OAEP (SHA-1 or SHA-256, empty label) or PKCS#1 v1.5.
///
/// # Errors
/// [`CryptoError`] for a non-RSA algorithm or a plaintext that is too long.
pub fn rsa_encrypt(
    key: &PublicEncryptingKey,
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0u8; key.key_size_bytes()];
    let n = match (alg, oaep(alg)) {
        (_, Some(o)) => {
            OaepPublicEncryptingKey::new(key.clone())?.encrypt(o, plaintext, &mut out, None)?.len()
        }
        (EncryptionAlgorithm::RsaPkcs1v15, _) => {
            Pkcs1PublicEncryptingKey::new(key.clone())?.encrypt(plaintext, &mut out)?.len()
        }
        _ => return Err(CryptoError),
    };
    out.truncate(n);
    Ok(out)
}

/// RSA decryption with OAEP (SHA-1 or SHA-256; `label` for test vectors, the provider always
/// uses none) or PKCS#1 v1.5.
///
/// # Errors
/// [`CryptoError`] for anything that does not decrypt, without saying why.
pub fn rsa_decrypt(
    key: &PrivateDecryptingKey,
    alg: EncryptionAlgorithm,
    ciphertext: &[u8],
    label: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if ciphertext.len() != key.key_size_bytes() {
        return Err(CryptoError);
    }
    let mut out = Zeroizing::new(vec![0u8; key.key_size_bytes()]);
    let n = match (alg, oaep(alg)) {
        (_, Some(o)) => {
            OaepPrivateDecryptingKey::new(key.clone())?.decrypt(o, ciphertext, &mut out, label)?.len()
        }
        (EncryptionAlgorithm::RsaPkcs1v15, _) if label.is_none() => {
            Pkcs1PrivateDecryptingKey::new(key.clone())?.decrypt(ciphertext, &mut out)?.len()
        }
        _ => return Err(CryptoError),
    };
    out.truncate(n);
    Ok(out)
}

fn digest_alg(d: DigestAlgorithm) -> Option<&'static digest::Algorithm> {
    match d {
        DigestAlgorithm::Sha256 => Some(&digest::SHA256),
        DigestAlgorithm::Sha384 => Some(&digest::SHA384),
        DigestAlgorithm::Sha512 => Some(&digest::SHA512),
        _ => None,
    }
}

fn imported_digest(alg: SignatureAlgorithm, bytes: &[u8]) -> Result<Digest, CryptoError> {
    let d = alg.digest().and_then(digest_alg).ok_or(CryptoError)?;
    Ok(Digest::import_less_safe(bytes, d)?)
}

fn rsa_encoding(alg: SignatureAlgorithm) -> Option<&'static signature::RsaSignatureEncoding> {
    Some(match alg {
        SignatureAlgorithm::RsaPkcs1v15Sha256 => &signature::RSA_PKCS1_SHA256,
        SignatureAlgorithm::RsaPkcs1v15Sha384 => &signature::RSA_PKCS1_SHA384,
        SignatureAlgorithm::RsaPkcs1v15Sha512 => &signature::RSA_PKCS1_SHA512,
        SignatureAlgorithm::RsaPssSha256 => &signature::RSA_PSS_SHA256,
        SignatureAlgorithm::RsaPssSha384 => &signature::RSA_PSS_SHA384,
        SignatureAlgorithm::RsaPssSha512 => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

/// RSA PKCS#1 v1.5 or PSS (salt = digest length) signature over a message or a digest.
///
/// # Errors
/// [`CryptoError`] for a non-RSA algorithm or a digest of the wrong length.
pub fn rsa_sign(
    key: &RsaKeyPair,
    alg: SignatureAlgorithm,
    input: SignInput<'_>,
) -> Result<Vec<u8>, CryptoError> {
    let enc = rsa_encoding(alg).ok_or(CryptoError)?;
    let mut sig = vec![0u8; key.public_modulus_len()];
    match input {
        SignInput::Digest(d) => key.sign_digest(enc, &imported_digest(alg, d)?, &mut sig)?,
        _ => key.sign(enc, &aws_lc_rs::rand::SystemRandom::new(), input.bytes(), &mut sig)?,
    }
    Ok(sig)
}

/// ECDSA signature (DER) over a message or a digest.
///
/// # Errors
/// [`CryptoError`] for a digest of the wrong length.
pub fn ecdsa_sign(
    key: &EcdsaKeyPair,
    alg: SignatureAlgorithm,
    input: SignInput<'_>,
) -> Result<Vec<u8>, CryptoError> {
    let sig = match input {
        SignInput::Digest(d) => key.sign_digest(&imported_digest(alg, d)?)?,
        _ => key.sign(&aws_lc_rs::rand::SystemRandom::new(), input.bytes())?,
    };
    Ok(sig.as_ref().to_vec())
}

/// Ed25519 signature (64 bytes) over a message.
///
/// # Errors
/// [`CryptoError`] for a digest input (pure Ed25519 signs messages).
pub fn ed25519_sign(key: &Ed25519KeyPair, input: SignInput<'_>) -> Result<Vec<u8>, CryptoError> {
    match input {
        SignInput::Message(m) => Ok(key.try_sign(m)?.as_ref().to_vec()),
        _ => Err(CryptoError),
    }
}

/// The signing key pair used for ECDSA keys of `spec` (DER signatures, hash bound to the curve).
pub fn ecdsa_signing_alg(spec: KeySpec) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    Some(match spec {
        KeySpec::EcP256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        KeySpec::EcP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        KeySpec::EcP521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        KeySpec::EcSecp256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        _ => return None,
    })
}

fn verification_alg(
    spec: KeySpec,
    alg: SignatureAlgorithm,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    Some(match (alg, spec) {
        (SignatureAlgorithm::RsaPkcs1v15Sha256, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (SignatureAlgorithm::RsaPkcs1v15Sha384, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (SignatureAlgorithm::RsaPkcs1v15Sha512, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (SignatureAlgorithm::RsaPssSha256, _) => &signature::RSA_PSS_2048_8192_SHA256,
        (SignatureAlgorithm::RsaPssSha384, _) => &signature::RSA_PSS_2048_8192_SHA384,
        (SignatureAlgorithm::RsaPssSha512, _) => &signature::RSA_PSS_2048_8192_SHA512,
        (SignatureAlgorithm::EcdsaSha256, KeySpec::EcP256) => &signature::ECDSA_P256_SHA256_ASN1,
        (SignatureAlgorithm::EcdsaSha256, KeySpec::EcSecp256k1) => &signature::ECDSA_P256K1_SHA256_ASN1,
        (SignatureAlgorithm::EcdsaSha384, KeySpec::EcP384) => &signature::ECDSA_P384_SHA384_ASN1,
        (SignatureAlgorithm::EcdsaSha512, KeySpec::EcP521) => &signature::ECDSA_P521_SHA512_ASN1,
        (SignatureAlgorithm::Ed25519, KeySpec::Ed25519) => &signature::ED25519,
        _ => return None,
    })
}

/// Parses a public key (SPKI DER; for Ed25519 also the raw 32-byte key) for verifying `alg`
/// signatures; `spec` selects the curve for ECDSA.
///
/// # Errors
/// [`CryptoError`] when the algorithm does not fit `spec` or the key does not parse.
pub fn verifier(
    spec: KeySpec,
    alg: SignatureAlgorithm,
    public_key: &[u8],
) -> Result<ParsedPublicKey, CryptoError> {
    let v = verification_alg(spec, alg).ok_or(CryptoError)?;
    Ok(ParsedPublicKey::new(v, public_key)?)
}

/// Verifies `sig` over a message or digest with a key from [`verifier`] made for `alg`.
/// Every failure, including a signature that does not decode, is `false`.
pub fn verify_with(key: &ParsedPublicKey, alg: SignatureAlgorithm, input: SignInput<'_>, sig: &[u8]) -> bool {
    match input {
        SignInput::Digest(d) => match imported_digest(alg, d) {
            Ok(d) => key.verify_digest_sig(&d, sig).is_ok(),
            Err(_) => false,
        },
        _ => key.verify_sig(input.bytes(), sig).is_ok(),
    }
}

/// [`verifier`] then [`verify_with`]; a key that does not parse verifies nothing.
pub fn verify(
    spec: KeySpec,
    alg: SignatureAlgorithm,
    public_key: &[u8],
    input: SignInput<'_>,
    sig: &[u8],
) -> bool {
    verifier(spec, alg, public_key).is_ok_and(|k| verify_with(&k, alg, input, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcm_round_trip_and_tamper_detection() {
        let k = AesGcmKey::new(&[3; 24]).unwrap();
        let ct = k.seal(b"hello", b"aad").unwrap();
        assert_eq!(ct.len(), 12 + 5 + 16);
        assert_eq!(&*k.open(&ct, b"aad").unwrap(), b"hello");
        assert!(k.open(&ct, b"other").is_err());
        for i in 0..ct.len() {
            let mut t = ct.clone();
            t[i] ^= 1;
            assert!(k.open(&t, b"aad").is_err(), "byte {i}");
        }
        assert!(k.open(&ct[..27], b"aad").is_err());
        assert!(AesGcmKey::new(&[0; 20]).is_err());
    }

    #[test]
    fn nonces_are_never_handed_out_twice_across_batches_and_threads() {
        let draw = || (0..10 * NONCE_BATCH + 3).map(|_| random_nonce().unwrap()).collect::<Vec<_>>();
        let other = std::thread::spawn(draw);
        let mut all = draw();
        all.extend(other.join().unwrap());
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "every nonce is distinct");
        assert!(all.iter().all(|x| x != &[0; GCM_NONCE_LEN]));
    }

    #[test]
    fn two_encryptions_use_different_nonces() {
        let k = AesGcmKey::new(&[1; 32]).unwrap();
        assert_ne!(k.seal(b"x", b"").unwrap()[..12], k.seal(b"x", b"").unwrap()[..12]);
    }
}
