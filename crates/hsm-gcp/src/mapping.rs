//! hsm vocabulary ↔ Cloud KMS: purposes and algorithms, labels (tags, usage, description).

use std::collections::{BTreeMap, HashMap};

use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm as Alg;
use hsm_core::{
    EncryptionAlgorithm, Error, KeySpec, KeyUsage, MacAlgorithm, Result, SignatureAlgorithm, WrapAlgorithm,
};

use crate::PROVIDER;
use crate::config::GcpConfig;

/// Prefix of the label keys hsm reserves for itself; user tags may not use it.
pub const RESERVED_LABEL_PREFIX: &str = "hsm_";
/// Label marking a key created with usage `wrap` (Cloud KMS cannot tell it from `encrypt`).
pub const USAGE_LABEL: &str = "hsm_usage";
/// Prefix of the labels holding the description: `hsm_desc_00`, `hsm_desc_01`, ...
pub const DESCRIPTION_LABEL_PREFIX: &str = "hsm_desc_";
/// The most labels Cloud KMS keeps on a key.
pub const MAX_LABELS: usize = 64;
/// The longest label key or value, in characters.
pub const MAX_LABEL_LEN: usize = 63;

/// What one Cloud KMS algorithm means in hsm terms: the spec, the purpose, and the one hsm
/// algorithm a key of it can use (Cloud KMS fixes the algorithm per key version).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyAlgorithm {
    /// The Cloud KMS algorithm.
    pub gcp: Alg,
    /// The hsm key spec.
    pub spec: KeySpec,
    /// The encryption algorithm (symmetric, raw AES and RSA decryption keys).
    pub encryption: Option<EncryptionAlgorithm>,
    /// The signature algorithm (signing keys).
    pub signature: Option<SignatureAlgorithm>,
    /// The MAC algorithm (MAC keys).
    pub mac: Option<MacAlgorithm>,
}

impl KeyAlgorithm {
    /// The wrapping algorithm a wrapping key of this algorithm uses.
    pub fn wrap(&self) -> Option<WrapAlgorithm> {
        match self.encryption {
            Some(EncryptionAlgorithm::AesGcm) => Some(WrapAlgorithm::AesGcm),
            Some(EncryptionAlgorithm::RsaOaepSha256) => Some(WrapAlgorithm::RsaOaepSha256),
            _ => None,
        }
    }

    /// The Cloud KMS purpose of keys with this algorithm.
    pub fn purpose(&self) -> CryptoKeyPurpose {
        purpose_of(&self.gcp)
    }

    /// True for `RAW_ENCRYPT_DECRYPT` algorithms (AES-GCM with the IV visible).
    pub fn is_raw(&self) -> bool {
        matches!(self.gcp, Alg::Aes128Gcm | Alg::Aes256Gcm)
    }
}

fn purpose_of(alg: &Alg) -> CryptoKeyPurpose {
    match alg {
        Alg::GoogleSymmetricEncryption => CryptoKeyPurpose::EncryptDecrypt,
        Alg::Aes128Gcm | Alg::Aes256Gcm => CryptoKeyPurpose::RawEncryptDecrypt,
        Alg::HmacSha256 | Alg::HmacSha384 | Alg::HmacSha512 => CryptoKeyPurpose::Mac,
        Alg::RsaDecryptOaep2048Sha256
        | Alg::RsaDecryptOaep3072Sha256
        | Alg::RsaDecryptOaep4096Sha256
        | Alg::RsaDecryptOaep2048Sha1
        | Alg::RsaDecryptOaep3072Sha1
        | Alg::RsaDecryptOaep4096Sha1 => CryptoKeyPurpose::AsymmetricDecrypt,
        _ => CryptoKeyPurpose::AsymmetricSign,
    }
}

/// The hsm meaning of a Cloud KMS algorithm; `None` for algorithms hsm does not model
/// (AES-CBC/CTR, raw PKCS#1 signing, OAEP-SHA512, HMAC-SHA1/224, post-quantum, external).
pub fn describe(alg: &Alg) -> Option<KeyAlgorithm> {
    use EncryptionAlgorithm as E;
    use KeySpec as K;
    use SignatureAlgorithm as S;
    let (spec, e, s, m) = match alg {
        Alg::GoogleSymmetricEncryption | Alg::Aes256Gcm => (K::Aes256, Some(E::AesGcm), None, None),
        Alg::Aes128Gcm => (K::Aes128, Some(E::AesGcm), None, None),
        Alg::RsaDecryptOaep2048Sha256 => (K::Rsa2048, Some(E::RsaOaepSha256), None, None),
        Alg::RsaDecryptOaep3072Sha256 => (K::Rsa3072, Some(E::RsaOaepSha256), None, None),
        Alg::RsaDecryptOaep4096Sha256 => (K::Rsa4096, Some(E::RsaOaepSha256), None, None),
        Alg::RsaDecryptOaep2048Sha1 => (K::Rsa2048, Some(E::RsaOaepSha1), None, None),
        Alg::RsaDecryptOaep3072Sha1 => (K::Rsa3072, Some(E::RsaOaepSha1), None, None),
        Alg::RsaDecryptOaep4096Sha1 => (K::Rsa4096, Some(E::RsaOaepSha1), None, None),
        Alg::RsaSignPss2048Sha256 => (K::Rsa2048, None, Some(S::RsaPssSha256), None),
        Alg::RsaSignPss3072Sha256 => (K::Rsa3072, None, Some(S::RsaPssSha256), None),
        Alg::RsaSignPss4096Sha256 => (K::Rsa4096, None, Some(S::RsaPssSha256), None),
        Alg::RsaSignPss4096Sha512 => (K::Rsa4096, None, Some(S::RsaPssSha512), None),
        Alg::RsaSignPkcs12048Sha256 => (K::Rsa2048, None, Some(S::RsaPkcs1v15Sha256), None),
        Alg::RsaSignPkcs13072Sha256 => (K::Rsa3072, None, Some(S::RsaPkcs1v15Sha256), None),
        Alg::RsaSignPkcs14096Sha256 => (K::Rsa4096, None, Some(S::RsaPkcs1v15Sha256), None),
        Alg::RsaSignPkcs14096Sha512 => (K::Rsa4096, None, Some(S::RsaPkcs1v15Sha512), None),
        Alg::EcSignP256Sha256 => (K::EcP256, None, Some(S::EcdsaSha256), None),
        Alg::EcSignP384Sha384 => (K::EcP384, None, Some(S::EcdsaSha384), None),
        Alg::EcSignSecp256K1Sha256 => (K::EcSecp256k1, None, Some(S::EcdsaSha256), None),
        Alg::EcSignEd25519 => (K::Ed25519, None, Some(S::Ed25519), None),
        Alg::HmacSha256 => (K::HmacSha256, None, None, Some(MacAlgorithm::HmacSha256)),
        Alg::HmacSha384 => (K::HmacSha384, None, None, Some(MacAlgorithm::HmacSha384)),
        Alg::HmacSha512 => (K::HmacSha512, None, None, Some(MacAlgorithm::HmacSha512)),
        _ => return None,
    };
    Some(KeyAlgorithm { gcp: alg.clone(), spec, encryption: e, signature: s, mac: m })
}

/// Every Cloud KMS algorithm hsm models, with its meaning.
pub fn modelled() -> impl Iterator<Item = KeyAlgorithm> {
    [
        Alg::GoogleSymmetricEncryption,
        Alg::Aes128Gcm,
        Alg::Aes256Gcm,
        Alg::RsaDecryptOaep2048Sha256,
        Alg::RsaDecryptOaep3072Sha256,
        Alg::RsaDecryptOaep4096Sha256,
        Alg::RsaDecryptOaep2048Sha1,
        Alg::RsaDecryptOaep3072Sha1,
        Alg::RsaDecryptOaep4096Sha1,
        Alg::RsaSignPss2048Sha256,
        Alg::RsaSignPss3072Sha256,
        Alg::RsaSignPss4096Sha256,
        Alg::RsaSignPss4096Sha512,
        Alg::RsaSignPkcs12048Sha256,
        Alg::RsaSignPkcs13072Sha256,
        Alg::RsaSignPkcs14096Sha256,
        Alg::RsaSignPkcs14096Sha512,
        Alg::EcSignP256Sha256,
        Alg::EcSignP384Sha384,
        Alg::EcSignSecp256K1Sha256,
        Alg::EcSignEd25519,
        Alg::HmacSha256,
        Alg::HmacSha384,
        Alg::HmacSha512,
    ]
    .into_iter()
    .filter_map(|a| describe(&a))
}

/// Whether a key of `alg` can be created with hsm `usage`.
pub(crate) fn fits_usage(alg: &KeyAlgorithm, usage: KeyUsage) -> bool {
    match usage {
        KeyUsage::EncryptDecrypt => alg.encryption.is_some(),
        KeyUsage::WrapUnwrap => alg.wrap().is_some(),
        KeyUsage::SignVerify => alg.signature.is_some(),
        KeyUsage::Mac => alg.mac.is_some(),
        _ => false,
    }
}

/// The algorithm `create_key` gives a key of `spec` and `usage` under `cfg`, if any.
pub(crate) fn default_algorithm(cfg: &GcpConfig, spec: KeySpec, usage: KeyUsage) -> Option<Alg> {
    use EncryptionAlgorithm as E;
    use SignatureAlgorithm as S;
    let rsa = |sha256_oaep: Alg, sha1_oaep: Alg, pss: Alg, pkcs1: Alg| match usage {
        KeyUsage::SignVerify if cfg.rsa_signature == S::RsaPkcs1v15Sha256 => Some(pkcs1),
        KeyUsage::SignVerify => Some(pss),
        KeyUsage::EncryptDecrypt if cfg.rsa_encryption == E::RsaOaepSha1 => Some(sha1_oaep),
        KeyUsage::EncryptDecrypt | KeyUsage::WrapUnwrap => Some(sha256_oaep),
        _ => None,
    };
    let alg = match spec {
        KeySpec::Aes256 if cfg.raw_aes256 => Some(Alg::Aes256Gcm),
        KeySpec::Aes256 => Some(Alg::GoogleSymmetricEncryption),
        KeySpec::Aes128 => Some(Alg::Aes128Gcm),
        KeySpec::Rsa2048 => rsa(
            Alg::RsaDecryptOaep2048Sha256,
            Alg::RsaDecryptOaep2048Sha1,
            Alg::RsaSignPss2048Sha256,
            Alg::RsaSignPkcs12048Sha256,
        ),
        KeySpec::Rsa3072 => rsa(
            Alg::RsaDecryptOaep3072Sha256,
            Alg::RsaDecryptOaep3072Sha1,
            Alg::RsaSignPss3072Sha256,
            Alg::RsaSignPkcs13072Sha256,
        ),
        KeySpec::Rsa4096 => rsa(
            Alg::RsaDecryptOaep4096Sha256,
            Alg::RsaDecryptOaep4096Sha1,
            Alg::RsaSignPss4096Sha256,
            Alg::RsaSignPkcs14096Sha256,
        ),
        KeySpec::EcP256 => Some(Alg::EcSignP256Sha256),
        KeySpec::EcP384 => Some(Alg::EcSignP384Sha384),
        KeySpec::EcSecp256k1 => Some(Alg::EcSignSecp256K1Sha256),
        KeySpec::Ed25519 => Some(Alg::EcSignEd25519),
        KeySpec::HmacSha256 => Some(Alg::HmacSha256),
        KeySpec::HmacSha384 => Some(Alg::HmacSha384),
        KeySpec::HmacSha512 => Some(Alg::HmacSha512),
        _ => None,
    }?;
    describe(&alg).filter(|a| a.spec == spec && fits_usage(a, usage)).map(|a| a.gcp)
}

/// Cloud KMS only offers secp256k1 at the HSM protection level.
pub(crate) fn needs_hsm(alg: &Alg) -> bool {
    matches!(alg, Alg::EcSignSecp256K1Sha256)
}

fn label_char_ok(c: char) -> bool {
    c.is_lowercase() || c.is_ascii_digit() || c.is_numeric() || c == '_' || c == '-'
}

/// Checks tags against Google's label rules: at most 64 labels; keys 1 to 63 characters,
/// starting with a lowercase letter; keys and values only lowercase letters, digits, `_` and
/// `-` (international lowercase letters allowed); values at most 63 characters; keys starting
/// with [`RESERVED_LABEL_PREFIX`] are hsm's.
///
/// # Errors
/// [`Error::InvalidInput`] naming the offending tag and the rule.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    let rules = "Cloud KMS labels use only lowercase letters, digits, '_' and '-', keys start with a \
                 lowercase letter, and keys and values are at most 63 characters";
    for (k, v) in tags {
        let bad = |why: String| {
            Err(Error::invalid_input(PROVIDER, format!("tag '{}': {why}; {rules}", k.escape_debug())))
        };
        if k.is_empty() {
            return bad("the key is empty".into());
        }
        if k.chars().count() > MAX_LABEL_LEN {
            return bad(format!("the key is {} characters long", k.chars().count()));
        }
        if !k.chars().next().is_some_and(char::is_lowercase) {
            return bad("the key does not start with a lowercase letter".into());
        }
        if let Some(c) = k.chars().find(|c| !label_char_ok(*c)) {
            return bad(format!("the key contains {c:?}"));
        }
        if k.starts_with(RESERVED_LABEL_PREFIX) {
            return bad(format!("keys starting with '{RESERVED_LABEL_PREFIX}' are reserved for hsm"));
        }
        if v.chars().count() > MAX_LABEL_LEN {
            return bad(format!("the value is {} characters long", v.chars().count()));
        }
        if let Some(c) = v.chars().find(|c| !label_char_ok(*c)) {
            return bad(format!("the value contains {c:?}"));
        }
    }
    Ok(())
}

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B32.iter().position(|x| *x == c)? as u32;
        acc = ((acc << 5) | v) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The labels a key gets: the user's tags, [`USAGE_LABEL`] for wrapping keys, and the
/// description as lowercase base32 (RFC 4648 alphabet, no padding) cut into 63-character
/// values of `hsm_desc_00`, `hsm_desc_01`, ...
///
/// # Errors
/// [`Error::InvalidInput`] when the whole would exceed Cloud KMS's 64 labels.
pub fn labels_for(
    tags: &BTreeMap<String, String>,
    usage: KeyUsage,
    description: &str,
) -> Result<HashMap<String, String>> {
    let mut labels: HashMap<String, String> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if usage == KeyUsage::WrapUnwrap {
        labels.insert(USAGE_LABEL.into(), "wrap".into());
    }
    let encoded = base32(description.as_bytes());
    for (i, chunk) in encoded.as_bytes().chunks(MAX_LABEL_LEN).enumerate() {
        labels
            .insert(format!("{DESCRIPTION_LABEL_PREFIX}{i:02}"), String::from_utf8_lossy(chunk).into_owned());
    }
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid_input(
            PROVIDER,
            format!(
                "{} tags plus the description need {} Cloud KMS labels; a key holds at most {MAX_LABELS} \
                 (the description takes one label per 39 bytes)",
                tags.len(),
                labels.len()
            ),
        ));
    }
    Ok(labels)
}

/// Splits a key's labels into user tags, the usage marker and the description.
pub fn read_labels(labels: &HashMap<String, String>) -> (BTreeMap<String, String>, bool, String) {
    let mut tags = BTreeMap::new();
    let mut chunks: Vec<(u32, &str)> = Vec::new();
    let mut wrap = false;
    for (k, v) in labels {
        if let Some(i) = k.strip_prefix(DESCRIPTION_LABEL_PREFIX) {
            if let Ok(i) = i.parse::<u32>() {
                chunks.push((i, v));
            }
        } else if k == USAGE_LABEL {
            wrap = v == "wrap";
        } else if !k.starts_with(RESERVED_LABEL_PREFIX) {
            tags.insert(k.clone(), v.clone());
        }
    }
    chunks.sort();
    let joined: String = chunks.iter().map(|(_, v)| *v).collect();
    let description = unbase32(&joined).and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
    (tags, wrap, description)
}

/// CRC32C of `data` as Cloud KMS's int64 fields carry it.
pub(crate) fn crc(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_round_trip_through_labels() {
        for d in ["", "hsm-conformance shared key", "Ünïcødé & UPPER / spaces", &"x".repeat(1024)] {
            let labels = labels_for(&BTreeMap::new(), KeyUsage::EncryptDecrypt, d).unwrap();
            assert!(labels.values().all(|v| v.len() <= 63 && v.bytes().all(|b| B32.contains(&b))));
            let (tags, wrap, back) = read_labels(&labels);
            assert_eq!(back, d);
            assert!(tags.is_empty() && !wrap);
        }
    }

    #[test]
    fn label_rules_are_checked_with_the_reason() {
        let check = |k: &str, v: &str| validate_tags(&BTreeMap::from([(k.to_owned(), v.to_owned())]));
        assert!(check("env", "prod").is_ok());
        assert!(check("hsm-conformance", "gcp-1a2b").is_ok());
        assert!(check("équipe", "ünï").is_ok());
        let msg = |k: &str, v: &str| check(k, v).unwrap_err().to_string();
        assert!(msg("Env", "x").contains("does not start with a lowercase letter"));
        assert!(msg("env", "Prod").contains("'P'"));
        assert!(msg("1env", "x").contains("lowercase letter"));
        assert!(msg("env.x", "x").contains("'.'"));
        assert!(msg(&"k".repeat(64), "").contains("64 characters"));
        assert!(msg("k", &"v".repeat(64)).contains("value is 64"));
        assert!(msg("hsm_usage", "x").contains("reserved"));
    }

    #[test]
    fn every_declared_spec_and_usage_has_an_algorithm_of_that_spec() {
        let cfg = GcpConfig::new("p", "global", "r");
        for a in modelled() {
            assert_eq!(describe(&a.gcp), Some(a));
        }
        assert_eq!(
            default_algorithm(&cfg, KeySpec::Rsa2048, KeyUsage::SignVerify),
            Some(Alg::RsaSignPss2048Sha256)
        );
        assert_eq!(default_algorithm(&cfg, KeySpec::Aes192, KeyUsage::EncryptDecrypt), None);
        assert_eq!(default_algorithm(&cfg, KeySpec::EcP521, KeyUsage::SignVerify), None);
        assert_eq!(default_algorithm(&cfg, KeySpec::EcP256, KeyUsage::EncryptDecrypt), None);
    }
}
