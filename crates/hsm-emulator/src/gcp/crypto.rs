//! Key material of one crypto key version and the operations Cloud KMS performs with it, on
//! aws-lc-rs (through hsm-crypto's primitives where they fit).

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA512_MGF1SHA512, OaepAlgorithm,
    OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use hsm_crypto::{AesGcmKey, CryptoError, GCM_NONCE_LEN, GCM_TAG_LEN};
use zeroize::Zeroizing;

use super::model::{Curve, Hash, Kind};

/// A version's key material. Never printed.
pub(crate) struct Material {
    inner: Inner,
    /// Raw AES/HMAC bytes or PKCS#8, kept for `--state`.
    secret: Zeroizing<Vec<u8>>,
}

fn ec_alg(curve: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        Curve::Secp256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
    }
}

enum Inner {
    /// AES-GCM (GOOGLE_SYMMETRIC_ENCRYPTION and raw AES-GCM).
    Aes(AesGcmKey),
    RsaSign {
        pair: RsaKeyPair,
        encoding: &'static signature::RsaSignatureEncoding,
        spki: Vec<u8>,
    },
    RsaDecrypt {
        key: OaepPrivateDecryptingKey,
        oaep: &'static OaepAlgorithm,
        spki: Vec<u8>,
    },
    Ec {
        pair: EcdsaKeyPair,
        spki: Vec<u8>,
    },
    Ed25519 {
        pair: Ed25519KeyPair,
        spki: Vec<u8>,
    },
    Hmac(Box<hmac::Key>),
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Material([redacted])")
    }
}

fn digest_alg(h: Hash) -> &'static digest::Algorithm {
    match h {
        Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        Hash::Sha224 => &digest::SHA224,
        Hash::Sha256 => &digest::SHA256,
        Hash::Sha384 => &digest::SHA384,
        Hash::Sha512 => &digest::SHA512,
    }
}

fn rsa_size(bits: u32) -> Result<KeySize, CryptoError> {
    Ok(match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => return Err(CryptoError),
    })
}

fn der(
    d: Result<aws_lc_rs::encoding::PublicKeyX509Der<'static>, aws_lc_rs::error::Unspecified>,
) -> Result<Vec<u8>, CryptoError> {
    Ok(d?.as_ref().to_vec())
}

impl Material {
    /// Fresh material for an algorithm of `kind` (RSA takes a while: call off the executor).
    pub(crate) fn generate(kind: Kind) -> Result<Material, CryptoError> {
        let pkcs8 = |d: Result<Vec<u8>, aws_lc_rs::error::Unspecified>| d.map(Zeroizing::new);
        let secret = match kind {
            Kind::GoogleSymmetric => random(32)?,
            Kind::AesGcm(len) | Kind::Hmac { key_len: len, .. } => random(len)?,
            Kind::RsaSign { bits, .. } => pkcs8(
                RsaKeyPair::generate(rsa_size(bits)?).and_then(|k| k.as_der()).map(|d| d.as_ref().to_vec()),
            )?,
            Kind::RsaDecrypt { bits, .. } => pkcs8(
                PrivateDecryptingKey::generate(rsa_size(bits)?)
                    .and_then(|k| k.as_der())
                    .map(|d| d.as_ref().to_vec()),
            )?,
            Kind::Ec { curve, .. } => pkcs8(
                EcdsaKeyPair::generate(ec_alg(curve))
                    .and_then(|k| k.to_pkcs8v1())
                    .map(|d| d.as_ref().to_vec()),
            )?,
            Kind::Ed25519 => {
                pkcs8(Ed25519KeyPair::generate().and_then(|k| k.to_pkcs8v1()).map(|d| d.as_ref().to_vec()))?
            }
            Kind::NotEmulated => return Err(CryptoError),
        };
        Material::from_secret(kind, secret)
    }

    /// The secret `--state` saves: raw AES/HMAC bytes or a PKCS#8 private key.
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Material of `kind` from its [`Material::secret`].
    pub(crate) fn from_secret(kind: Kind, secret: Zeroizing<Vec<u8>>) -> Result<Material, CryptoError> {
        let inner = match kind {
            Kind::GoogleSymmetric | Kind::AesGcm(_) => Inner::Aes(AesGcmKey::new(&secret)?),
            Kind::RsaSign { pss, hash, .. } => {
                let pair = RsaKeyPair::from_pkcs8(&secret).map_err(|_| CryptoError)?;
                let encoding: &'static signature::RsaSignatureEncoding = match (pss, hash) {
                    (true, Hash::Sha256) => &signature::RSA_PSS_SHA256,
                    (true, Hash::Sha512) => &signature::RSA_PSS_SHA512,
                    (false, Hash::Sha256) => &signature::RSA_PKCS1_SHA256,
                    (false, Hash::Sha512) => &signature::RSA_PKCS1_SHA512,
                    _ => return Err(CryptoError),
                };
                let spki = der(pair.public_key().as_der())?;
                Inner::RsaSign { pair, encoding, spki }
            }
            Kind::RsaDecrypt { hash, .. } => {
                let key = PrivateDecryptingKey::from_pkcs8(&secret).map_err(|_| CryptoError)?;
                let spki = der(key.public_key().as_der())?;
                let oaep: &'static OaepAlgorithm = match hash {
                    Hash::Sha1 => &OAEP_SHA1_MGF1SHA1,
                    Hash::Sha256 => &OAEP_SHA256_MGF1SHA256,
                    Hash::Sha512 => &OAEP_SHA512_MGF1SHA512,
                    _ => return Err(CryptoError),
                };
                Inner::RsaDecrypt { key: OaepPrivateDecryptingKey::new(key)?, oaep, spki }
            }
            Kind::Ec { curve, .. } => {
                let pair = EcdsaKeyPair::from_pkcs8(ec_alg(curve), &secret).map_err(|_| CryptoError)?;
                let spki = der(pair.public_key().as_der())?;
                Inner::Ec { pair, spki }
            }
            Kind::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&secret).map_err(|_| CryptoError)?;
                let spki = der(pair.public_key().as_der())?;
                Inner::Ed25519 { pair, spki }
            }
            Kind::Hmac { hash, .. } => {
                let alg = match hash {
                    Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    Hash::Sha224 => hmac::HMAC_SHA224,
                    Hash::Sha256 => hmac::HMAC_SHA256,
                    Hash::Sha384 => hmac::HMAC_SHA384,
                    Hash::Sha512 => hmac::HMAC_SHA512,
                };
                Inner::Hmac(Box::new(hmac::Key::new(alg, &secret)))
            }
            Kind::NotEmulated => return Err(CryptoError),
        };
        Ok(Material { inner, secret })
    }

    /// The SubjectPublicKeyInfo DER of an asymmetric key.
    pub(crate) fn spki(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::RsaSign { spki, .. }
            | Inner::RsaDecrypt { spki, .. }
            | Inner::Ec { spki, .. }
            | Inner::Ed25519 { spki, .. } => Some(spki),
            Inner::Aes(_) | Inner::Hmac(_) => None,
        }
    }

    fn aes(&self) -> Result<&AesGcmKey, CryptoError> {
        match &self.inner {
            Inner::Aes(k) => Ok(k),
            _ => Err(CryptoError),
        }
    }

    /// AES-GCM under a fresh random nonce: `nonce ‖ ciphertext ‖ tag`.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.aes()?.seal(plaintext, aad)
    }

    /// Opens `nonce ‖ ciphertext ‖ tag`.
    pub(crate) fn open(&self, payload: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.aes()?.open(payload, aad)
    }

    /// Raw AES-GCM encryption under `iv` (12 bytes): `ciphertext ‖ tag (16)`.
    pub(crate) fn raw_seal(
        &self,
        iv: &[u8; GCM_NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = self.aes()?.seal_with_nonce(iv, plaintext, aad)?;
        out.drain(..GCM_NONCE_LEN);
        Ok(out)
    }

    /// Raw AES-GCM decryption of `ciphertext ‖ tag` with a tag of `tag_len` (12..=16) bytes.
    ///
    /// A full tag is checked by the cipher. A truncated one is checked by recomputing the full
    /// tag: the GCM keystream (the encryption of zeros under the same IV) recovers the
    /// candidate plaintext, which is sealed again and its tag prefix compared in constant time
    /// before anything is released.
    pub(crate) fn raw_open(
        &self,
        iv: &[u8; GCM_NONCE_LEN],
        data: &[u8],
        aad: &[u8],
        tag_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.aes()?;
        if data.len() < tag_len || !(12..=GCM_TAG_LEN).contains(&tag_len) {
            return Err(CryptoError);
        }
        if tag_len == GCM_TAG_LEN {
            let mut payload = Zeroizing::new(Vec::with_capacity(GCM_NONCE_LEN + data.len()));
            payload.extend_from_slice(iv);
            payload.extend_from_slice(data);
            return key.open(&payload, aad);
        }
        let (ct, tag) = data.split_at(data.len() - tag_len);
        let keystream = Zeroizing::new(key.seal_with_nonce(iv, &vec![0u8; ct.len()], &[])?);
        let plain: Zeroizing<Vec<u8>> =
            Zeroizing::new(ct.iter().zip(&keystream[GCM_NONCE_LEN..]).map(|(c, k)| c ^ k).collect());
        let resealed = key.seal_with_nonce(iv, &plain, aad)?;
        let full_tag = &resealed[GCM_NONCE_LEN + ct.len()..];
        aws_lc_rs::constant_time::verify_slices_are_equal(&full_tag[..tag_len], tag)?;
        Ok(plain)
    }

    /// RSA-OAEP decryption (empty label).
    pub(crate) fn rsa_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let Inner::RsaDecrypt { key, oaep, .. } = &self.inner else { return Err(CryptoError) };
        if ciphertext.len() != key.key_size_bytes() {
            return Err(CryptoError);
        }
        let mut out = Zeroizing::new(vec![0u8; key.key_size_bytes()]);
        let n = key.decrypt(oaep, ciphertext, &mut out, None)?.len();
        out.truncate(n);
        Ok(out)
    }

    /// Signs a digest made with `hash` (RSA, ECDSA: DER).
    pub(crate) fn sign_digest(&self, hash: Hash, d: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let digest = digest::Digest::import_less_safe(d, digest_alg(hash))?;
        match &self.inner {
            Inner::RsaSign { pair, encoding, .. } => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign_digest(*encoding, &digest, &mut sig)?;
                Ok(sig)
            }
            Inner::Ec { pair, .. } => Ok(pair.sign_digest(&digest)?.as_ref().to_vec()),
            _ => Err(CryptoError),
        }
    }

    /// Pure Ed25519 over `data`.
    pub(crate) fn sign_data(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Ed25519 { pair, .. } => Ok(pair.try_sign(data)?.as_ref().to_vec()),
            _ => Err(CryptoError),
        }
    }

    /// HMAC tag of `data`.
    pub(crate) fn mac(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Hmac(k) => Ok(hmac::sign(k, data).as_ref().to_vec()),
            _ => Err(CryptoError),
        }
    }

    /// Constant-time HMAC check.
    pub(crate) fn mac_verify(&self, data: &[u8], tag: &[u8]) -> bool {
        match &self.inner {
            Inner::Hmac(k) => hmac::verify(k, data, tag).is_ok(),
            _ => false,
        }
    }
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut b = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut b)?;
    Ok(b)
}

/// A fresh random GCM IV.
pub(crate) fn random_iv() -> Result<[u8; GCM_NONCE_LEN], CryptoError> {
    let mut iv = [0u8; GCM_NONCE_LEN];
    aws_lc_rs::rand::fill(&mut iv)?;
    Ok(iv)
}

/// PEM of a SubjectPublicKeyInfo, 64 columns, trailing newline.
pub(crate) fn pem(spki: &[u8]) -> String {
    let b64 = super::wire::b64(spki);
    let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END PUBLIC KEY-----\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_gcm_tags_are_checked() {
        let m = Material::generate(Kind::AesGcm(16)).unwrap();
        let iv = random_iv().unwrap();
        let ct = m.raw_seal(&iv, b"attack at dawn", b"aad").unwrap();
        for tag_len in 12..=16 {
            let cut = &ct[..ct.len() - (16 - tag_len)];
            assert_eq!(&*m.raw_open(&iv, cut, b"aad", tag_len).unwrap(), b"attack at dawn", "{tag_len}");
            let mut bad = cut.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(m.raw_open(&iv, &bad, b"aad", tag_len).is_err());
            assert!(m.raw_open(&iv, cut, b"other", tag_len).is_err());
            let mut bad = cut.to_vec();
            bad[0] ^= 1;
            assert!(m.raw_open(&iv, &bad, b"aad", tag_len).is_err());
        }
        assert!(m.raw_open(&iv, &ct, b"aad", 11).is_err());
    }

    #[test]
    fn pem_is_wrapped_at_64() {
        let m = Material::generate(Kind::Ed25519).unwrap();
        let p = pem(m.spki().unwrap());
        assert!(p.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2Vw"), "{p}");
        assert!(p.lines().all(|l| l.len() <= 64));
        assert!(!format!("{m:?}").contains("Ed"));
    }
}
