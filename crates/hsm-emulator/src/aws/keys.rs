//! Key specs, algorithms and key material of the AWS emulator, with the cryptography from
//! [`hsm_crypto`] and aws-lc-rs.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use hsm_core::{EncryptionAlgorithm, KeySpec as HsmSpec, SignInput, SignatureAlgorithm};
use hsm_crypto::{self as primitives, AesGcmKey};
use zeroize::Zeroizing;

use super::KmsError;
use super::sigv4::hex;

/// The KMS key specs the emulator creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spec {
    SymmetricDefault,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccNistP256,
    EccNistP384,
    EccNistP521,
    EccSecgP256k1,
    EccNistEdwards25519,
    Hmac224,
    Hmac256,
    Hmac384,
    Hmac512,
}

/// Every key spec of the KMS API, for validation messages.
pub(crate) const ALL_KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
];

impl Spec {
    pub(crate) fn parse(s: &str) -> Option<Spec> {
        Some(match s {
            "SYMMETRIC_DEFAULT" => Spec::SymmetricDefault,
            "RSA_2048" => Spec::Rsa2048,
            "RSA_3072" => Spec::Rsa3072,
            "RSA_4096" => Spec::Rsa4096,
            "ECC_NIST_P256" => Spec::EccNistP256,
            "ECC_NIST_P384" => Spec::EccNistP384,
            "ECC_NIST_P521" => Spec::EccNistP521,
            "ECC_SECG_P256K1" => Spec::EccSecgP256k1,
            "ECC_NIST_EDWARDS25519" => Spec::EccNistEdwards25519,
            "HMAC_224" => Spec::Hmac224,
            "HMAC_256" => Spec::Hmac256,
            "HMAC_384" => Spec::Hmac384,
            "HMAC_512" => Spec::Hmac512,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Spec::SymmetricDefault => "SYMMETRIC_DEFAULT",
            Spec::Rsa2048 => "RSA_2048",
            Spec::Rsa3072 => "RSA_3072",
            Spec::Rsa4096 => "RSA_4096",
            Spec::EccNistP256 => "ECC_NIST_P256",
            Spec::EccNistP384 => "ECC_NIST_P384",
            Spec::EccNistP521 => "ECC_NIST_P521",
            Spec::EccSecgP256k1 => "ECC_SECG_P256K1",
            Spec::EccNistEdwards25519 => "ECC_NIST_EDWARDS25519",
            Spec::Hmac224 => "HMAC_224",
            Spec::Hmac256 => "HMAC_256",
            Spec::Hmac384 => "HMAC_384",
            Spec::Hmac512 => "HMAC_512",
        }
    }

    pub(crate) fn is_rsa(self) -> bool {
        matches!(self, Spec::Rsa2048 | Spec::Rsa3072 | Spec::Rsa4096)
    }

    pub(crate) fn is_hmac(self) -> bool {
        matches!(self, Spec::Hmac224 | Spec::Hmac256 | Spec::Hmac384 | Spec::Hmac512)
    }

    pub(crate) fn is_asymmetric(self) -> bool {
        !matches!(self, Spec::SymmetricDefault) && !self.is_hmac()
    }

    /// The key usages KMS allows for this spec (the first is the default when it is the only one).
    pub(crate) fn usages(self) -> &'static [&'static str] {
        match self {
            Spec::SymmetricDefault => &["ENCRYPT_DECRYPT"],
            Spec::Rsa2048 | Spec::Rsa3072 | Spec::Rsa4096 => &["ENCRYPT_DECRYPT", "SIGN_VERIFY"],
            Spec::EccNistP256 | Spec::EccNistP384 | Spec::EccNistP521 => &["SIGN_VERIFY", "KEY_AGREEMENT"],
            Spec::EccSecgP256k1 | Spec::EccNistEdwards25519 => &["SIGN_VERIFY"],
            Spec::Hmac224 | Spec::Hmac256 | Spec::Hmac384 | Spec::Hmac512 => &["GENERATE_VERIFY_MAC"],
        }
    }

    /// The encryption algorithms of an `ENCRYPT_DECRYPT` key of this spec.
    pub(crate) fn encryption_algorithms(self) -> &'static [&'static str] {
        match self {
            Spec::SymmetricDefault => &["SYMMETRIC_DEFAULT"],
            s if s.is_rsa() => &["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"],
            _ => &[],
        }
    }

    /// The signing algorithms of a `SIGN_VERIFY` key of this spec.
    pub(crate) fn signing_algorithms(self) -> &'static [&'static str] {
        match self {
            s if s.is_rsa() => &[
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512",
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
            ],
            Spec::EccNistP256 | Spec::EccSecgP256k1 => &["ECDSA_SHA_256"],
            Spec::EccNistP384 => &["ECDSA_SHA_384"],
            Spec::EccNistP521 => &["ECDSA_SHA_512"],
            Spec::EccNistEdwards25519 => &["ED25519_SHA_512", "ED25519_PH_SHA_512"],
            _ => &[],
        }
    }

    /// The one MAC algorithm of an HMAC key.
    pub(crate) fn mac_algorithm(self) -> Option<&'static str> {
        Some(match self {
            Spec::Hmac224 => "HMAC_SHA_224",
            Spec::Hmac256 => "HMAC_SHA_256",
            Spec::Hmac384 => "HMAC_SHA_384",
            Spec::Hmac512 => "HMAC_SHA_512",
            _ => return None,
        })
    }

    fn hsm(self) -> Option<HsmSpec> {
        Some(match self {
            Spec::SymmetricDefault => HsmSpec::Aes256,
            Spec::Rsa2048 => HsmSpec::Rsa2048,
            Spec::Rsa3072 => HsmSpec::Rsa3072,
            Spec::Rsa4096 => HsmSpec::Rsa4096,
            Spec::EccNistP256 => HsmSpec::EcP256,
            Spec::EccNistP384 => HsmSpec::EcP384,
            Spec::EccNistP521 => HsmSpec::EcP521,
            Spec::EccSecgP256k1 => HsmSpec::EcSecp256k1,
            Spec::EccNistEdwards25519 => HsmSpec::Ed25519,
            _ => return None,
        })
    }

    /// The largest RSAES-OAEP plaintext for `alg` under this (RSA) spec.
    pub(crate) fn max_oaep_plaintext(self, alg: &str) -> usize {
        let k = match self {
            Spec::Rsa2048 => 256,
            Spec::Rsa3072 => 384,
            _ => 512,
        };
        let h = if alg == "RSAES_OAEP_SHA_1" { 20 } else { 32 };
        k - 2 * h - 2
    }
}

/// The hsm-core signature algorithm of a KMS signing algorithm, and its digest length.
pub(crate) fn signature_algorithm(alg: &str) -> Option<(SignatureAlgorithm, usize)> {
    use SignatureAlgorithm as S;
    Some(match alg {
        "RSASSA_PSS_SHA_256" => (S::RsaPssSha256, 32),
        "RSASSA_PSS_SHA_384" => (S::RsaPssSha384, 48),
        "RSASSA_PSS_SHA_512" => (S::RsaPssSha512, 64),
        "RSASSA_PKCS1_V1_5_SHA_256" => (S::RsaPkcs1v15Sha256, 32),
        "RSASSA_PKCS1_V1_5_SHA_384" => (S::RsaPkcs1v15Sha384, 48),
        "RSASSA_PKCS1_V1_5_SHA_512" => (S::RsaPkcs1v15Sha512, 64),
        "ECDSA_SHA_256" => (S::EcdsaSha256, 32),
        "ECDSA_SHA_384" => (S::EcdsaSha384, 48),
        "ECDSA_SHA_512" => (S::EcdsaSha512, 64),
        "ED25519_SHA_512" => (S::Ed25519, 64),
        _ => return None,
    })
}

fn oaep(alg: &str) -> EncryptionAlgorithm {
    if alg == "RSAES_OAEP_SHA_1" {
        EncryptionAlgorithm::RsaOaepSha1
    } else {
        EncryptionAlgorithm::RsaOaepSha256
    }
}

/// One version of a symmetric key's material.
pub(crate) struct SymVersion {
    /// The 64-hex-digit key material id.
    pub(crate) id: String,
    pub(crate) key: AesGcmKey,
    /// The raw AES key, kept for `--state`.
    raw: Zeroizing<Vec<u8>>,
}

/// The private half of a key.
pub(crate) enum Material {
    /// Symmetric material, oldest first; the last is current. Ciphertexts name their index.
    Symmetric(Vec<Arc<SymVersion>>),
    RsaSign {
        pair: RsaKeyPair,
        spki: Vec<u8>,
    },
    RsaDecrypt {
        key: PrivateDecryptingKey,
        public: PublicEncryptingKey,
        spki: Vec<u8>,
    },
    Ecdsa {
        pair: EcdsaKeyPair,
        spki: Vec<u8>,
    },
    Ed25519 {
        pair: Ed25519KeyPair,
        spki: Vec<u8>,
    },
    Hmac {
        key: Box<hmac::Key>,
        /// The raw HMAC key, kept for `--state`.
        raw: Zeroizing<Vec<u8>>,
    },
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Material([redacted])")
    }
}

fn internal(what: &str) -> KmsError {
    KmsError::internal(format!("{what} failed"))
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let mut b = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut b).map_err(|_| internal("the random generator"))?;
    Ok(b)
}

/// `len` random bytes.
pub(crate) fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    random(len)
}

/// A new symmetric material version.
pub(crate) fn new_sym_version() -> Result<Arc<SymVersion>, KmsError> {
    let raw = random(32)?;
    let key = AesGcmKey::new(&raw).map_err(|_| internal("AES key setup"))?;
    let id = hex(&random(32)?);
    Ok(Arc::new(SymVersion { id, key, raw }))
}

fn hmac_alg(spec: Spec) -> (hmac::Algorithm, usize) {
    match spec {
        Spec::Hmac224 => (hmac::HMAC_SHA224, 28),
        Spec::Hmac256 => (hmac::HMAC_SHA256, 32),
        Spec::Hmac384 => (hmac::HMAC_SHA384, 48),
        _ => (hmac::HMAC_SHA512, 64),
    }
}

fn spki_of(
    der: Result<aws_lc_rs::encoding::PublicKeyX509Der<'static>, aws_lc_rs::error::Unspecified>,
) -> Result<Vec<u8>, KmsError> {
    Ok(der.map_err(|_| internal("public key encoding"))?.as_ref().to_vec())
}

impl Material {
    /// Fresh material for `spec` and `usage` (RSA generation can take a second or two).
    pub(crate) fn generate(spec: Spec, usage: &str) -> Result<Material, KmsError> {
        let size = match spec {
            Spec::Rsa2048 => Some(KeySize::Rsa2048),
            Spec::Rsa3072 => Some(KeySize::Rsa3072),
            Spec::Rsa4096 => Some(KeySize::Rsa4096),
            _ => None,
        };
        Ok(match spec {
            Spec::SymmetricDefault => Material::Symmetric(vec![new_sym_version()?]),
            _ if usage == "SIGN_VERIFY" && spec.is_rsa() => {
                let pair = RsaKeyPair::generate(size.ok_or_else(|| internal("RSA size"))?)
                    .map_err(|_| internal("RSA key generation"))?;
                let spki = spki_of(pair.public_key().as_der())?;
                Material::RsaSign { pair, spki }
            }
            _ if spec.is_rsa() => {
                let key = PrivateDecryptingKey::generate(size.ok_or_else(|| internal("RSA size"))?)
                    .map_err(|_| internal("RSA key generation"))?;
                let public = key.public_key();
                let spki = spki_of(public.as_der())?;
                Material::RsaDecrypt { key, public, spki }
            }
            Spec::EccNistP256 | Spec::EccNistP384 | Spec::EccNistP521 | Spec::EccSecgP256k1 => {
                let alg =
                    spec.hsm().and_then(primitives::ecdsa_signing_alg).ok_or_else(|| internal("curve"))?;
                let pair = EcdsaKeyPair::generate(alg).map_err(|_| internal("EC key generation"))?;
                let spki = spki_of(pair.public_key().as_der())?;
                Material::Ecdsa { pair, spki }
            }
            Spec::EccNistEdwards25519 => {
                let pair = Ed25519KeyPair::generate().map_err(|_| internal("Ed25519 key generation"))?;
                let spki = spki_of(pair.public_key().as_der())?;
                Material::Ed25519 { pair, spki }
            }
            _ => {
                let (alg, len) = hmac_alg(spec);
                let raw = random(len)?;
                Material::Hmac { key: Box::new(hmac::Key::new(alg, &raw)), raw }
            }
        })
    }

    /// The secret for `--state`: the raw AES versions (`[material id, key]` pairs) or HMAC key,
    /// or the PKCS#8 private key.
    pub(crate) fn export(&self) -> Result<serde_json::Value, KmsError> {
        use crate::state::secret::to_json;
        let pkcs8 =
            |d: Result<Vec<u8>, aws_lc_rs::error::Unspecified>| -> Result<serde_json::Value, KmsError> {
                let d = Zeroizing::new(d.map_err(|_| internal("key export"))?);
                Ok(to_json(&d))
            };
        match self {
            Material::Symmetric(versions) => Ok(serde_json::Value::Array(
                versions.iter().map(|v| serde_json::json!([v.id, to_json(&v.raw)])).collect(),
            )),
            Material::Hmac { raw, .. } => Ok(to_json(raw)),
            Material::RsaSign { pair, .. } => pkcs8(pair.as_der().map(|d| d.as_ref().to_vec())),
            Material::RsaDecrypt { key, .. } => pkcs8(key.as_der().map(|d| d.as_ref().to_vec())),
            Material::Ecdsa { pair, .. } => pkcs8(pair.to_pkcs8v1().map(|d| d.as_ref().to_vec())),
            Material::Ed25519 { pair, .. } => pkcs8(pair.to_pkcs8v1().map(|d| d.as_ref().to_vec())),
        }
    }

    /// Material saved by [`Material::export`] for a key of `spec` and `usage`.
    pub(crate) fn restore(spec: Spec, usage: &str, v: &serde_json::Value) -> Option<Material> {
        use crate::state::secret::from_json;
        Some(match spec {
            Spec::SymmetricDefault => {
                let mut versions = Vec::new();
                for pair in v.as_array()? {
                    let id = pair.get(0)?.as_str()?.to_owned();
                    let raw = from_json(pair.get(1)?)?;
                    let key = AesGcmKey::new(&raw).ok()?;
                    versions.push(Arc::new(SymVersion { id, key, raw }));
                }
                if versions.is_empty() {
                    return None;
                }
                Material::Symmetric(versions)
            }
            _ if spec.is_hmac() => {
                let raw = from_json(v)?;
                Material::Hmac { key: Box::new(hmac::Key::new(hmac_alg(spec).0, &raw)), raw }
            }
            _ if usage == "SIGN_VERIFY" && spec.is_rsa() => {
                let pair = RsaKeyPair::from_pkcs8(&from_json(v)?).ok()?;
                let spki = spki_of(pair.public_key().as_der()).ok()?;
                Material::RsaSign { pair, spki }
            }
            _ if spec.is_rsa() => {
                let key = PrivateDecryptingKey::from_pkcs8(&from_json(v)?).ok()?;
                let public = key.public_key();
                let spki = spki_of(public.as_der()).ok()?;
                Material::RsaDecrypt { key, public, spki }
            }
            Spec::EccNistEdwards25519 => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&from_json(v)?).ok()?;
                let spki = spki_of(pair.public_key().as_der()).ok()?;
                Material::Ed25519 { pair, spki }
            }
            _ => {
                let alg = spec.hsm().and_then(primitives::ecdsa_signing_alg)?;
                let pair = EcdsaKeyPair::from_pkcs8(alg, &from_json(v)?).ok()?;
                let spki = spki_of(pair.public_key().as_der()).ok()?;
                Material::Ecdsa { pair, spki }
            }
        })
    }

    /// The DER SubjectPublicKeyInfo of an asymmetric key.
    pub(crate) fn spki(&self) -> Option<&[u8]> {
        match self {
            Material::RsaSign { spki, .. }
            | Material::RsaDecrypt { spki, .. }
            | Material::Ecdsa { spki, .. }
            | Material::Ed25519 { spki, .. } => Some(spki),
            _ => None,
        }
    }

    /// RSAES-OAEP encryption (`alg` is `RSAES_OAEP_SHA_1` or `_256`).
    pub(crate) fn rsa_encrypt(&self, alg: &str, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let Material::RsaDecrypt { public, .. } = self else { return Err(internal("RSA encryption")) };
        primitives::rsa_encrypt(public, oaep(alg), plaintext).map_err(|_| internal("RSA encryption"))
    }

    /// RSAES-OAEP decryption; `None` when the ciphertext does not decrypt.
    pub(crate) fn rsa_decrypt(&self, alg: &str, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let Material::RsaDecrypt { key, .. } = self else { return None };
        primitives::rsa_decrypt(key, oaep(alg), ciphertext, None).ok()
    }

    /// A signature with `alg` over a message or (`digest`) a digest.
    pub(crate) fn sign(&self, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Vec<u8>, KmsError> {
        let out = match self {
            Material::RsaSign { pair, .. } => primitives::rsa_sign(pair, alg, input),
            Material::Ecdsa { pair, .. } => primitives::ecdsa_sign(pair, alg, input),
            Material::Ed25519 { pair, .. } => primitives::ed25519_sign(pair, input),
            _ => return Err(internal("signing")),
        };
        out.map_err(|_| internal("signing"))
    }

    /// Whether `sig` is a valid `alg` signature over the input.
    pub(crate) fn verify(
        &self,
        spec: Spec,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        sig: &[u8],
    ) -> bool {
        match (self.spki(), spec.hsm()) {
            (Some(spki), Some(hs)) => primitives::verify(hs, alg, spki, input, sig),
            _ => false,
        }
    }

    /// HMAC of `message`.
    pub(crate) fn mac(&self, message: &[u8]) -> Option<Vec<u8>> {
        let Material::Hmac { key: k, .. } = self else { return None };
        Some(hmac::sign(k, message).as_ref().to_vec())
    }

    /// Constant-time check of an HMAC tag.
    pub(crate) fn verify_mac(&self, message: &[u8], tag: &[u8]) -> bool {
        let Material::Hmac { key: k, .. } = self else { return false };
        hmac::verify(k, message, tag).is_ok()
    }
}

/// Symmetric ciphertext blob: `0x01 ‖ key id (36 ASCII) ‖ material index (u32 BE) ‖ nonce ‖
/// ciphertext ‖ tag`. The header and the canonical encryption context are the GCM AAD.
pub(crate) const BLOB_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 36;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + 4;

/// The encryption context in canonical form: pairs sorted by key, each length-prefixed.
pub(crate) fn canonical_context(ctx: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in ctx {
        for part in [k, v] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

/// The key id and material index a symmetric blob names, if it has the emulator's format.
pub(crate) fn blob_header(blob: &[u8]) -> Option<(&str, u32)> {
    if blob.len() < HEADER_LEN + primitives::GCM_NONCE_LEN + primitives::GCM_TAG_LEN
        || blob[0] != BLOB_VERSION
    {
        return None;
    }
    let id = std::str::from_utf8(&blob[1..1 + KEY_ID_LEN]).ok()?;
    let index = u32::from_be_bytes(blob[1 + KEY_ID_LEN..HEADER_LEN].try_into().ok()?);
    Some((id, index))
}

/// Seals `plaintext` under a symmetric key's material `index` (its current one).
pub(crate) fn seal(
    key_id: &str,
    index: u32,
    version: &SymVersion,
    plaintext: &[u8],
    ctx: &[u8],
) -> Result<Vec<u8>, KmsError> {
    if key_id.len() != KEY_ID_LEN {
        return Err(internal("ciphertext header"));
    }
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.push(BLOB_VERSION);
    header.extend_from_slice(key_id.as_bytes());
    header.extend_from_slice(&index.to_be_bytes());
    let mut aad = header.clone();
    aad.extend_from_slice(ctx);
    let sealed = version.key.seal(plaintext, &aad).map_err(|_| internal("AES-GCM encryption"))?;
    header.extend_from_slice(&sealed);
    Ok(header)
}

/// Opens a blob whose header [`blob_header`] read; `None` when it does not authenticate.
pub(crate) fn open(blob: &[u8], version: &SymVersion, ctx: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut aad = blob.get(..HEADER_LEN)?.to_vec();
    aad.extend_from_slice(ctx);
    version.key.open(&blob[HEADER_LEN..], &aad).ok()
}
