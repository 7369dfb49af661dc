//! Key material of the Key Vault emulator and the operations Key Vault performs with it, on
//! aws-lc-rs (through `hsm_crypto` where it has the exact primitive).
//!
//! Wire formats are Key Vault's, not hsm's: ECDSA signatures are raw `r ‖ s`, AES-GCM returns
//! the ciphertext, IV and tag separately, AES key wrap is RFC 3394 / RFC 5649.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext,
    PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair};
use hsm_core::{EncryptionAlgorithm, KeySpec, SignInput, SignatureAlgorithm};
use hsm_crypto as primitives;
use zeroize::Zeroizing;

/// A failure of a cryptographic operation, already phrased for the client (never carrying key
/// material or plaintext). `bad_input` failures are the client's (400 BadParameter); the others
/// are opaque decryption/unwrap failures (also 400 BadParameter in Key Vault, with a fixed message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CryptoFailure {
    /// The request does not fit the key or algorithm; the message says what and how to fix it.
    BadInput(String),
    /// Decryption or unwrapping failed (wrong key, tampered data): deliberately no detail.
    Opaque,
}

type CResult<T> = Result<T, CryptoFailure>;

fn bad<T>(msg: impl Into<String>) -> CResult<T> {
    Err(CryptoFailure::BadInput(msg.into()))
}

/// Elliptic curves Key Vault offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
    P256K,
}

impl Curve {
    pub(crate) fn parse(s: &str) -> Option<Curve> {
        Some(match s {
            "P-256" => Curve::P256,
            "P-384" => Curve::P384,
            "P-521" => Curve::P521,
            "P-256K" | "SECP256K1" => Curve::P256K,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::P256K => "P-256K",
        }
    }

    fn signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
        }
    }

    fn verifying(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED,
        }
    }

    /// The one JWS algorithm Key Vault allows on this curve.
    fn jws_alg(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P384 => "ES384",
            Curve::P521 => "ES512",
            Curve::P256K => "ES256K",
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Curve::P256 | Curve::P256K => &digest::SHA256,
            Curve::P384 => &digest::SHA384,
            Curve::P521 => &digest::SHA512,
        }
    }
}

/// The public half of a key as JWK members (raw big-endian bytes, base64url-encoded later).
#[derive(Debug, Clone)]
pub(crate) enum PublicJwk {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { crv: Curve, x: Vec<u8>, y: Vec<u8> },
    Oct,
}

/// The material of one key version.
pub(crate) enum Material {
    Rsa {
        sign: RsaKeyPair,
        decrypt: PrivateDecryptingKey,
        public: PublicEncryptingKey,
        spki: Vec<u8>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        curve: Curve,
        pair: EcdsaKeyPair,
        point: Vec<u8>,
    },
    Oct {
        key: Zeroizing<Vec<u8>>,
    },
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Material::Rsa { n, .. } => write!(f, "Material::Rsa({} bits, [redacted])", n.len() * 8),
            Material::Ec { curve, .. } => write!(f, "Material::Ec({}, [redacted])", curve.name()),
            Material::Oct { key } => write!(f, "Material::Oct({} bits, [redacted])", key.len() * 8),
        }
    }
}

/// Reads one DER INTEGER (positive) from `der`, returning its value without leading zeros and
/// the rest of the input.
fn der_uint(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, rest) = der.split_first()?;
    if *tag != 0x02 {
        return None;
    }
    let (len, rest) = der_len(rest)?;
    if rest.len() < len {
        return None;
    }
    let (mut v, rest) = rest.split_at(len);
    while v.len() > 1 && v[0] == 0 {
        v = &v[1..];
    }
    Some((v, rest))
}

fn der_len(b: &[u8]) -> Option<(usize, &[u8])> {
    let (first, rest) = b.split_first()?;
    if *first < 0x80 {
        return Some((*first as usize, rest));
    }
    let n = (*first & 0x7f) as usize;
    if n == 0 || n > 4 || rest.len() < n {
        return None;
    }
    let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
    Some((len, &rest[n..]))
}

/// `n` and `e` from a PKCS#1 `RSAPublicKey` DER.
fn rsa_public_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (tag, rest) = der.split_first()?;
    if *tag != 0x30 {
        return None;
    }
    let (_, body) = der_len(rest)?;
    let (n, rest) = der_uint(body)?;
    let (e, _) = der_uint(rest)?;
    Some((n.to_vec(), e.to_vec()))
}

fn internal<E>(_: E) -> CryptoFailure {
    CryptoFailure::BadInput("the emulator could not generate or load the key material".into())
}

impl Material {
    /// Generates an RSA key of `bits` (2048, 3072 or 4096). Slow for 4096: call off the executor.
    pub(crate) fn generate_rsa(bits: u32) -> CResult<Material> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => {
                return bad(format!("key_size {bits} is not supported for RSA keys; use 2048, 3072 or 4096"));
            }
        };
        let der: Pkcs8V1Der<'static> =
            RsaKeyPair::generate(size).and_then(|k| k.as_der()).map_err(internal)?;
        Material::rsa_from_pkcs8(der.as_ref())
    }

    fn rsa_from_pkcs8(pkcs8: &[u8]) -> CResult<Material> {
        let sign = RsaKeyPair::from_pkcs8(pkcs8).map_err(internal)?;
        let decrypt = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(internal)?;
        let public = decrypt.public_key();
        let spki = public.as_der().map_err(internal)?.as_ref().to_vec();
        let (n, e) = rsa_public_components(sign.public_key().as_ref()).ok_or_else(|| internal(()))?;
        Ok(Material::Rsa { sign, decrypt, public, spki, n, e })
    }

    /// Generates an EC key on `curve`.
    pub(crate) fn generate_ec(curve: Curve) -> CResult<Material> {
        let pair = EcdsaKeyPair::generate(curve.signing()).map_err(internal)?;
        let point = pair.public_key().as_ref().to_vec();
        Ok(Material::Ec { curve, pair, point })
    }

    /// Generates an AES key of `bits` (128, 192 or 256).
    pub(crate) fn generate_oct(bits: u32) -> CResult<Material> {
        if !matches!(bits, 128 | 192 | 256) {
            return bad(format!("key_size {bits} is not supported for oct-HSM keys; use 128, 192 or 256"));
        }
        let mut key = Zeroizing::new(vec![0u8; bits as usize / 8]);
        aws_lc_rs::rand::fill(&mut key).map_err(internal)?;
        Ok(Material::Oct { key })
    }

    /// Imports an RSA private key from its JWK components (big-endian bytes).
    pub(crate) fn import_rsa(c: &RsaComponents<'_>) -> CResult<Material> {
        let der = rsa_private_key_der(c);
        let pair = RsaKeyPair::from_der(&der)
            .map_err(|_| CryptoFailure::BadInput("the RSA key in `key` is not a valid private key".into()))?;
        if pair.public_modulus_len() * 8 < 2048 {
            return bad("RSA keys must have at least 2048 bits");
        }
        let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(internal)?;
        Material::rsa_from_pkcs8(pkcs8.as_ref())
    }

    /// Imports an EC private key from `d`, `x` and `y`.
    pub(crate) fn import_ec(curve: Curve, d: &[u8], x: &[u8], y: &[u8]) -> CResult<Material> {
        let mut point = Vec::with_capacity(1 + x.len() + y.len());
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let pair =
            EcdsaKeyPair::from_private_key_and_public_key(curve.signing(), d, &point).map_err(|_| {
                CryptoFailure::BadInput(format!("the {} key in `key` is not a valid key pair", curve.name()))
            })?;
        let point = pair.public_key().as_ref().to_vec();
        Ok(Material::Ec { curve, pair, point })
    }

    /// The private key for `--state`: `{"rsa": PKCS#8}`, `{"ec": curve, "pkcs8": PKCS#8}` or
    /// `{"oct": raw}` (base64; the state file is encrypted). `null` if the export fails.
    pub(crate) fn export(&self) -> serde_json::Value {
        use crate::state::secret::to_json;
        match self {
            Material::Rsa { sign, .. } => match sign.as_der() {
                Ok(d) => serde_json::json!({"rsa": to_json(d.as_ref())}),
                Err(_) => serde_json::Value::Null,
            },
            Material::Ec { curve, pair, .. } => match pair.to_pkcs8v1() {
                Ok(d) => serde_json::json!({"ec": curve.name(), "pkcs8": to_json(d.as_ref())}),
                Err(_) => serde_json::Value::Null,
            },
            Material::Oct { key } => serde_json::json!({"oct": to_json(key)}),
        }
    }

    /// Material saved by [`Material::export`].
    pub(crate) fn restore(v: &serde_json::Value) -> Option<Material> {
        use crate::state::secret::from_json;
        if let Some(der) = v.get("rsa") {
            return Material::rsa_from_pkcs8(&from_json(der)?).ok();
        }
        if let Some(k) = v.get("oct") {
            return Some(Material::Oct { key: from_json(k)? });
        }
        let curve = Curve::parse(v.get("ec")?.as_str()?)?;
        let pair = EcdsaKeyPair::from_pkcs8(curve.signing(), &from_json(v.get("pkcs8")?)?).ok()?;
        let point = pair.public_key().as_ref().to_vec();
        Some(Material::Ec { curve, pair, point })
    }

    /// Imports an AES key from its raw bytes.
    pub(crate) fn import_oct(k: &[u8]) -> CResult<Material> {
        if !matches!(k.len(), 16 | 24 | 32) {
            return bad("oct keys must be 128, 192 or 256 bits long");
        }
        Ok(Material::Oct { key: Zeroizing::new(k.to_vec()) })
    }

    /// The public JWK members.
    pub(crate) fn public(&self) -> PublicJwk {
        match self {
            Material::Rsa { n, e, .. } => PublicJwk::Rsa { n: n.clone(), e: e.clone() },
            Material::Ec { curve, point, .. } => {
                let half = (point.len() - 1) / 2;
                PublicJwk::Ec { crv: *curve, x: point[1..1 + half].to_vec(), y: point[1 + half..].to_vec() }
            }
            Material::Oct { .. } => PublicJwk::Oct,
        }
    }

    fn family(&self) -> &'static str {
        match self {
            Material::Rsa { .. } => "RSA",
            Material::Ec { .. } => "EC",
            Material::Oct { .. } => "oct",
        }
    }

    /// Encrypts (or wraps: Key Vault uses the same algorithms for both) `plaintext` with `alg`.
    pub(crate) fn encrypt(&self, alg: &str, plaintext: &[u8], p: &SymParams<'_>) -> CResult<Sealed> {
        match self {
            Material::Rsa { public, .. } => {
                let a = rsa_alg(alg, self.family())?;
                if p.iv.is_some() || p.aad.is_some() || p.tag.is_some() {
                    return bad(format!("{alg} takes no iv, aad or tag"));
                }
                let max = public.key_size_bytes()
                    - match a {
                        EncryptionAlgorithm::RsaOaepSha1 => 42,
                        EncryptionAlgorithm::RsaOaepSha256 => 66,
                        _ => 11,
                    };
                if plaintext.len() > max {
                    return bad(format!(
                        "the value is {} bytes long; {alg} with this key takes at most {max}",
                        plaintext.len()
                    ));
                }
                let ct = primitives::rsa_encrypt(public, a, plaintext).map_err(internal)?;
                Ok(Sealed { value: ct, iv: None, tag: None, aad: None })
            }
            Material::Oct { key } => oct_encrypt(key, alg, plaintext, p),
            Material::Ec { .. } => bad(format!("{alg} is not an encryption algorithm for EC keys")),
        }
    }

    /// Decrypts (or unwraps) `ciphertext` with `alg`.
    pub(crate) fn decrypt(
        &self,
        alg: &str,
        ciphertext: &[u8],
        p: &SymParams<'_>,
    ) -> CResult<Zeroizing<Vec<u8>>> {
        match self {
            Material::Rsa { decrypt, .. } => {
                let a = rsa_alg(alg, self.family())?;
                if p.iv.is_some() || p.aad.is_some() || p.tag.is_some() {
                    return bad(format!("{alg} takes no iv, aad or tag"));
                }
                primitives::rsa_decrypt(decrypt, a, ciphertext, None).map_err(|_| CryptoFailure::Opaque)
            }
            Material::Oct { key } => oct_decrypt(key, alg, ciphertext, p),
            Material::Ec { .. } => bad(format!("{alg} is not an encryption algorithm for EC keys")),
        }
    }

    /// Signs a digest; ECDSA signatures are raw `r ‖ s`.
    pub(crate) fn sign(&self, alg: &str, digest: &[u8]) -> CResult<Vec<u8>> {
        match self {
            Material::Rsa { sign, .. } => {
                let a = rsa_sig_alg(alg)?;
                check_digest_len(alg, a, digest)?;
                primitives::rsa_sign(sign, a, SignInput::Digest(digest)).map_err(internal)
            }
            Material::Ec { curve, pair, .. } => {
                check_ec_alg(*curve, alg)?;
                let d = import_digest(curve.digest(), alg, digest)?;
                Ok(pair.sign_digest(&d).map_err(internal)?.as_ref().to_vec())
            }
            Material::Oct { .. } => bad(format!("{alg} is not a signature algorithm for oct keys")),
        }
    }

    /// Verifies a signature over a digest. A signature that does not verify is `Ok(false)`.
    pub(crate) fn verify(&self, alg: &str, digest: &[u8], sig: &[u8]) -> CResult<bool> {
        match self {
            Material::Rsa { spki, .. } => {
                let a = rsa_sig_alg(alg)?;
                check_digest_len(alg, a, digest)?;
                Ok(primitives::verify(KeySpec::Rsa2048, a, spki, SignInput::Digest(digest), sig))
            }
            Material::Ec { curve, point, .. } => {
                check_ec_alg(*curve, alg)?;
                let d = import_digest(curve.digest(), alg, digest)?;
                let key = ParsedPublicKey::new(curve.verifying(), point).map_err(internal)?;
                Ok(key.verify_digest_sig(&d, sig).is_ok())
            }
            Material::Oct { .. } => bad(format!("{alg} is not a signature algorithm for oct keys")),
        }
    }
}

/// RSA private key components for import (all big-endian, unsigned).
#[derive(Debug)]
pub(crate) struct RsaComponents<'a> {
    pub(crate) n: &'a [u8],
    pub(crate) e: &'a [u8],
    pub(crate) d: &'a [u8],
    pub(crate) p: &'a [u8],
    pub(crate) q: &'a [u8],
    pub(crate) dp: &'a [u8],
    pub(crate) dq: &'a [u8],
    pub(crate) qi: &'a [u8],
}

fn der_push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_push_uint(out: &mut Vec<u8>, v: &[u8]) {
    let v = &v[v.iter().take_while(|b| **b == 0).count().min(v.len().saturating_sub(1))..];
    let pad = v.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    der_push_len(out, v.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// PKCS#1 `RSAPrivateKey` DER from JWK components.
fn rsa_private_key_der(c: &RsaComponents<'_>) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::new());
    der_push_uint(&mut body, &[0]);
    for v in [c.n, c.e, c.d, c.p, c.q, c.dp, c.dq, c.qi] {
        der_push_uint(&mut body, v);
    }
    let mut out = Zeroizing::new(vec![0x30]);
    der_push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// The output of an encryption: the ciphertext and, for AES-GCM, the IV and tag (and the AAD
/// echoed back, as Managed HSM does).
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) value: Vec<u8>,
    pub(crate) iv: Option<Vec<u8>>,
    pub(crate) tag: Option<Vec<u8>>,
    pub(crate) aad: Option<Vec<u8>>,
}

/// The optional symmetric parameters of an encrypt/decrypt request.
#[derive(Debug, Default)]
pub(crate) struct SymParams<'a> {
    pub(crate) iv: Option<&'a [u8]>,
    pub(crate) aad: Option<&'a [u8]>,
    pub(crate) tag: Option<&'a [u8]>,
}

fn rsa_alg(alg: &str, family: &str) -> CResult<EncryptionAlgorithm> {
    Ok(match alg {
        "RSA-OAEP" => EncryptionAlgorithm::RsaOaepSha1,
        "RSA-OAEP-256" => EncryptionAlgorithm::RsaOaepSha256,
        "RSA1_5" => EncryptionAlgorithm::RsaPkcs1v15,
        _ => {
            return bad(format!(
                "{alg} is not an encryption algorithm for {family} keys; use RSA-OAEP-256, RSA-OAEP or RSA1_5"
            ));
        }
    })
}

fn rsa_sig_alg(alg: &str) -> CResult<SignatureAlgorithm> {
    Ok(match alg {
        "RS256" => SignatureAlgorithm::RsaPkcs1v15Sha256,
        "RS384" => SignatureAlgorithm::RsaPkcs1v15Sha384,
        "RS512" => SignatureAlgorithm::RsaPkcs1v15Sha512,
        "PS256" => SignatureAlgorithm::RsaPssSha256,
        "PS384" => SignatureAlgorithm::RsaPssSha384,
        "PS512" => SignatureAlgorithm::RsaPssSha512,
        _ => {
            return bad(format!(
                "{alg} is not a signature algorithm for RSA keys; use RS256, RS384, RS512, PS256, PS384 or PS512"
            ));
        }
    })
}

fn check_digest_len(alg: &str, a: SignatureAlgorithm, digest: &[u8]) -> CResult<()> {
    let want = a.digest().map_or(0, |d| d.output_len());
    if digest.len() != want {
        return bad(format!("{alg} signs a {want}-byte digest; the value is {} bytes long", digest.len()));
    }
    Ok(())
}

fn check_ec_alg(curve: Curve, alg: &str) -> CResult<()> {
    if alg != curve.jws_alg() {
        return bad(format!("{alg} does not fit a {} key; use {}", curve.name(), curve.jws_alg()));
    }
    Ok(())
}

fn import_digest(d: &'static digest::Algorithm, alg: &str, bytes: &[u8]) -> CResult<Digest> {
    if bytes.len() != d.output_len() {
        return bad(format!(
            "{alg} signs a {}-byte digest; the value is {} bytes long",
            d.output_len(),
            bytes.len()
        ));
    }
    Digest::import_less_safe(bytes, d).map_err(internal)
}

/// The AES algorithms of Managed HSM, by name: (mode, key bits if the name fixes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AesMode {
    Gcm,
    Kw,
    KwPad,
    Cbc,
    CbcPad,
}

fn aes_alg(alg: &str) -> Option<(AesMode, Option<usize>)> {
    Some(match alg {
        "A128GCM" => (AesMode::Gcm, Some(16)),
        "A192GCM" => (AesMode::Gcm, Some(24)),
        "A256GCM" => (AesMode::Gcm, Some(32)),
        "A128KW" => (AesMode::Kw, Some(16)),
        "A192KW" => (AesMode::Kw, Some(24)),
        "A256KW" => (AesMode::Kw, Some(32)),
        "A128CBC" => (AesMode::Cbc, Some(16)),
        "A192CBC" => (AesMode::Cbc, Some(24)),
        "A256CBC" => (AesMode::Cbc, Some(32)),
        "A128CBCPAD" => (AesMode::CbcPad, Some(16)),
        "A192CBCPAD" => (AesMode::CbcPad, Some(24)),
        "A256CBCPAD" => (AesMode::CbcPad, Some(32)),
        "CKM_AES_KEY_WRAP" => (AesMode::Kw, None),
        "CKM_AES_KEY_WRAP_PAD" => (AesMode::KwPad, None),
        _ => return None,
    })
}

fn aes_mode(key: &[u8], alg: &str) -> CResult<AesMode> {
    let Some((mode, len)) = aes_alg(alg) else {
        return bad(format!(
            "{alg} is not an algorithm for oct keys; use A{0}GCM, A{0}KW, A{0}CBC, A{0}CBCPAD, \
             CKM_AES_KEY_WRAP or CKM_AES_KEY_WRAP_PAD",
            key.len() * 8
        ));
    };
    if len.is_some_and(|l| l != key.len()) {
        return bad(format!(
            "{alg} needs a {}-bit key; this key has {} bits",
            len.unwrap_or(0) * 8,
            key.len() * 8
        ));
    }
    Ok(mode)
}

fn gcm_key(key: &[u8]) -> CResult<LessSafeKey> {
    let alg = match key.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    };
    Ok(LessSafeKey::new(UnboundKey::new(alg, key).map_err(internal)?))
}

fn cbc_key(key: &[u8]) -> CResult<UnboundCipherKey> {
    let alg = match key.len() {
        16 => &AES_128,
        24 => &AES_192,
        _ => &AES_256,
    };
    UnboundCipherKey::new(alg, key).map_err(internal)
}

fn cbc_iv(alg: &str, iv: Option<&[u8]>) -> CResult<[u8; 16]> {
    iv.and_then(|iv| <[u8; 16]>::try_from(iv).ok())
        .map_or_else(|| bad(format!("{alg} needs a 16-byte iv")), Ok)
}

fn oct_encrypt(key: &[u8], alg: &str, plaintext: &[u8], p: &SymParams<'_>) -> CResult<Sealed> {
    let mode = aes_mode(key, alg)?;
    if p.tag.is_some() {
        return bad(format!("{alg} encryption takes no tag"));
    }
    if p.aad.is_some() && mode != AesMode::Gcm {
        return bad(format!("{alg} takes no aad"));
    }
    match mode {
        AesMode::Gcm => {
            if p.iv.is_some() {
                return bad(format!("{alg} encryption takes no iv: the service generates it"));
            }
            let mut iv = [0u8; primitives::GCM_NONCE_LEN];
            aws_lc_rs::rand::fill(&mut iv).map_err(internal)?;
            let mut buf = plaintext.to_vec();
            let aad = p.aad.unwrap_or_default();
            let tag = gcm_key(key)?
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf)
                .map_err(internal)?;
            Ok(Sealed {
                value: buf,
                iv: Some(iv.to_vec()),
                tag: Some(tag.as_ref().to_vec()),
                aad: p.aad.map(<[u8]>::to_vec),
            })
        }
        AesMode::Kw | AesMode::KwPad => {
            if p.iv.is_some() {
                return bad(format!("{alg} takes no iv"));
            }
            let out = if mode == AesMode::Kw {
                if plaintext.len() < 16 || !plaintext.len().is_multiple_of(8) {
                    return bad(format!(
                        "{alg} wraps a multiple of 8 bytes, at least 16; the value is {} bytes long \
                         (CKM_AES_KEY_WRAP_PAD wraps any length)",
                        plaintext.len()
                    ));
                }
                primitives::aes_kw_wrap(key, plaintext)
            } else {
                if plaintext.is_empty() {
                    return bad(format!("{alg} needs a non-empty value"));
                }
                primitives::aes_kwp_wrap(key, plaintext)
            };
            Ok(Sealed { value: out.map_err(internal)?, iv: None, tag: None, aad: None })
        }
        AesMode::Cbc | AesMode::CbcPad => {
            let iv = cbc_iv(alg, p.iv)?;
            let ctx = EncryptionContext::Iv128(iv.into());
            let mut buf = plaintext.to_vec();
            if mode == AesMode::Cbc {
                if !buf.len().is_multiple_of(16) {
                    return bad(format!(
                        "{alg} encrypts a multiple of 16 bytes; the value is {} bytes long (use {alg}PAD)",
                        buf.len()
                    ));
                }
                EncryptingKey::cbc(cbc_key(key)?).and_then(|k| k.less_safe_encrypt(&mut buf, ctx))
            } else {
                PaddedBlockEncryptingKey::cbc_pkcs7(cbc_key(key)?)
                    .and_then(|k| k.less_safe_encrypt(&mut buf, ctx))
            }
            .map_err(internal)?;
            Ok(Sealed { value: buf, iv: Some(iv.to_vec()), tag: None, aad: None })
        }
    }
}

fn oct_decrypt(key: &[u8], alg: &str, ciphertext: &[u8], p: &SymParams<'_>) -> CResult<Zeroizing<Vec<u8>>> {
    let mode = aes_mode(key, alg)?;
    match mode {
        AesMode::Gcm => {
            let iv = p.iv.and_then(|iv| <[u8; primitives::GCM_NONCE_LEN]>::try_from(iv).ok()).map_or_else(
                || bad(format!("{alg} decryption needs the 12-byte iv encryption returned")),
                Ok,
            )?;
            let Some(tag) = p.tag.filter(|t| t.len() == primitives::GCM_TAG_LEN) else {
                return bad(format!("{alg} decryption needs the 16-byte tag encryption returned"));
            };
            let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len() + tag.len()));
            buf.extend_from_slice(ciphertext);
            buf.extend_from_slice(tag);
            let n = gcm_key(key)?
                .open_in_place(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(p.aad.unwrap_or_default()),
                    &mut buf,
                )
                .map_err(|_| CryptoFailure::Opaque)?
                .len();
            buf.truncate(n);
            Ok(buf)
        }
        AesMode::Kw => primitives::aes_kw_unwrap(key, ciphertext).map_err(|_| CryptoFailure::Opaque),
        AesMode::KwPad => primitives::aes_kwp_unwrap(key, ciphertext).map_err(|_| CryptoFailure::Opaque),
        AesMode::Cbc | AesMode::CbcPad => {
            let iv = cbc_iv(alg, p.iv)?;
            let ctx = DecryptionContext::Iv128(iv.into());
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            let n = if mode == AesMode::Cbc {
                if !buf.len().is_multiple_of(16) {
                    return Err(CryptoFailure::Opaque);
                }
                DecryptingKey::cbc(cbc_key(key)?).and_then(|k| k.decrypt(&mut buf, ctx).map(|o| o.len()))
            } else {
                PaddedBlockDecryptingKey::cbc_pkcs7(cbc_key(key)?)
                    .and_then(|k| k.decrypt(&mut buf, ctx).map(|o| o.len()))
            }
            .map_err(|_| CryptoFailure::Opaque)?;
            buf.truncate(n);
            Ok(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_public_components_and_round_trips() {
        let m = Material::generate_rsa(2048).unwrap();
        let PublicJwk::Rsa { n, e } = m.public() else { panic!() };
        assert_eq!(n.len(), 256);
        assert_eq!(e, vec![1, 0, 1]);
        for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
            let s = m.encrypt(alg, b"hello", &SymParams::default()).unwrap();
            assert_eq!(&*m.decrypt(alg, &s.value, &SymParams::default()).unwrap(), b"hello");
        }
        let d = digest::digest(&digest::SHA384, b"m");
        let sig = m.sign("PS384", d.as_ref()).unwrap();
        assert!(m.verify("PS384", d.as_ref(), &sig).unwrap());
        assert!(!m.verify("RS384", d.as_ref(), &sig).unwrap());
        assert!(matches!(m.sign("PS256", d.as_ref()), Err(CryptoFailure::BadInput(_))));
    }

    #[test]
    fn ecdsa_signatures_are_raw_and_points_padded() {
        for (curve, len, h) in [
            (Curve::P256, 32, &digest::SHA256),
            (Curve::P384, 48, &digest::SHA384),
            (Curve::P521, 66, &digest::SHA512),
            (Curve::P256K, 32, &digest::SHA256),
        ] {
            let m = Material::generate_ec(curve).unwrap();
            let PublicJwk::Ec { x, y, .. } = m.public() else { panic!() };
            assert_eq!((x.len(), y.len()), (len, len));
            let d = digest::digest(h, b"m");
            let sig = m.sign(curve.jws_alg(), d.as_ref()).unwrap();
            assert_eq!(sig.len(), 2 * len);
            assert!(m.verify(curve.jws_alg(), d.as_ref(), &sig).unwrap());
            let mut bad_sig = sig.clone();
            bad_sig[3] ^= 1;
            assert!(!m.verify(curve.jws_alg(), d.as_ref(), &bad_sig).unwrap());
        }
    }

    #[test]
    fn aes_modes_round_trip_and_fail_opaquely() {
        let m = Material::generate_oct(192).unwrap();
        let aad = b"context";
        let s =
            m.encrypt("A192GCM", b"secret", &SymParams { aad: Some(aad), ..SymParams::default() }).unwrap();
        assert_eq!(s.value.len(), 6);
        let p = SymParams { iv: s.iv.as_deref(), tag: s.tag.as_deref(), aad: Some(aad) };
        assert_eq!(&*m.decrypt("A192GCM", &s.value, &p).unwrap(), b"secret");
        let wrong = SymParams { aad: Some(b"other"), ..p };
        assert_eq!(m.decrypt("A192GCM", &s.value, &wrong), Err(CryptoFailure::Opaque));
        assert!(matches!(m.encrypt("A256GCM", b"x", &SymParams::default()), Err(CryptoFailure::BadInput(_))));
        for alg in ["A192KW", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"] {
            let s = m.encrypt(alg, &[7; 24], &SymParams::default()).unwrap();
            assert_eq!(s.value.len(), 32);
            assert_eq!(&*m.decrypt(alg, &s.value, &SymParams::default()).unwrap(), &[7; 24]);
        }
        let iv = [9u8; 16];
        let p = SymParams { iv: Some(&iv), ..SymParams::default() };
        let s = m.encrypt("A192CBCPAD", b"abc", &p).unwrap();
        assert_eq!(s.value.len(), 16);
        assert_eq!(&*m.decrypt("A192CBCPAD", &s.value, &p).unwrap(), b"abc");
    }

    #[test]
    fn rsa_import_from_components_matches_generated_key() {
        // Components of a generated key, recovered from its PKCS#1 DER, import to the same key.
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = {
            use aws_lc_rs::encoding::Pkcs8V1Der;
            let p8: Pkcs8V1Der<'static> = pair.as_der().unwrap();
            p8.as_ref().to_vec()
        };
        // PKCS#8: SEQUENCE { INTEGER 0, SEQUENCE algorithm, OCTET STRING { RSAPrivateKey } }.
        fn element(b: &[u8]) -> (u8, &[u8], &[u8]) {
            let (len, rest) = der_len(&b[1..]).unwrap();
            (b[0], &rest[..len], &rest[len..])
        }
        let (_, outer, _) = element(&der);
        let (_, _, rest) = element(outer);
        let (_, _, rest) = element(rest);
        let (tag, inner, _) = element(rest);
        assert_eq!(tag, 0x04);
        let (_, body, _) = element(inner);
        let mut rest = body;
        let mut ints = Vec::new();
        for _ in 0..9 {
            let (v, r) = der_uint(rest).unwrap();
            ints.push(v.to_vec());
            rest = r;
        }
        let c = RsaComponents {
            n: &ints[1],
            e: &ints[2],
            d: &ints[3],
            p: &ints[4],
            q: &ints[5],
            dp: &ints[6],
            dq: &ints[7],
            qi: &ints[8],
        };
        let m = Material::import_rsa(&c).unwrap();
        let PublicJwk::Rsa { n, .. } = m.public() else { panic!() };
        assert_eq!(n, ints[1]);
    }
}
