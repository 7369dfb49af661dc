//! Key Vault vocabulary ↔ hsm vocabulary: key types and sizes, algorithms, key operations,
//! capabilities per vault kind, and the DER encodings Key Vault does not speak (SPKI public
//! keys from JWKs, ECDSA signatures raw `r‖s` ↔ DER).

use std::time::Duration;

use azure_security_keyvault_keys::models::{
    CurveName, EncryptionAlgorithm as KvEnc, JsonWebKey, KeyOperation, KeyType, SignatureAlgorithm as KvSig,
};
use hsm_core::{
    Capabilities, DeletionPolicy, EncryptionAlgorithm, KeyFamily, KeySpec, KeyUsage, SignatureAlgorithm,
    SpecCapabilities, WrapAlgorithm,
};

use crate::config::{KeyProtection, VaultKind};

const DAY: u64 = 86_400;

/// What a Key Vault (`Vault`) or Managed HSM (`ManagedHsm`) supports, as hsm vocabulary;
/// `retention_days` is the vault's soft-delete retention, the one deletion window.
///
/// | spec | usages | algorithms |
/// |---|---|---|
/// | rsa-2048/3072/4096 | encrypt, sign, wrap | rsa-oaep-sha1 (`RSA-OAEP`), rsa-oaep-sha256 (`RSA-OAEP-256`), rsa-pkcs1v15 (`RSA1_5`); `RS256/384/512`, `PS256/384/512`; wrap rsa-oaep-sha256 |
/// | ec-p256 / ec-secp256k1 / ec-p384 / ec-p521 | sign | `ES256` / `ES256K` / `ES384` / `ES512` |
/// | aes-128/192/256 (Managed HSM only) | encrypt, wrap | aes-gcm (`A128GCM`…); wrap aes-key-wrap (`A128KW`…), aes-key-wrap-pad (`CKM_AES_KEY_WRAP_PAD`) |
///
/// Every spec rotates and signs caller-supplied digests.
pub fn azure_capabilities(kind: VaultKind, retention_days: u32) -> Capabilities {
    use EncryptionAlgorithm as E;
    use SignatureAlgorithm as S;
    let rsa = SpecCapabilities::new()
        .with_usages([KeyUsage::EncryptDecrypt, KeyUsage::SignVerify, KeyUsage::WrapUnwrap])
        .with_encryption([E::RsaOaepSha1, E::RsaOaepSha256, E::RsaPkcs1v15])
        .with_signature([
            S::RsaPkcs1v15Sha256,
            S::RsaPkcs1v15Sha384,
            S::RsaPkcs1v15Sha512,
            S::RsaPssSha256,
            S::RsaPssSha384,
            S::RsaPssSha512,
        ])
        .with_wrap([WrapAlgorithm::RsaOaepSha256])
        .with_rotation(true)
        .with_sign_digest(true);
    let ec = |alg| {
        SpecCapabilities::new()
            .with_usages([KeyUsage::SignVerify])
            .with_signature([alg])
            .with_rotation(true)
            .with_sign_digest(true)
    };
    let window = Duration::from_secs(u64::from(retention_days) * DAY);
    let mut caps = Capabilities::new()
        .with_spec(KeySpec::Rsa2048, rsa.clone())
        .with_spec(KeySpec::Rsa3072, rsa.clone())
        .with_spec(KeySpec::Rsa4096, rsa)
        .with_spec(KeySpec::EcP256, ec(S::EcdsaSha256))
        .with_spec(KeySpec::EcSecp256k1, ec(S::EcdsaSha256))
        .with_spec(KeySpec::EcP384, ec(S::EcdsaSha384))
        .with_spec(KeySpec::EcP521, ec(S::EcdsaSha512))
        .with_deletion(DeletionPolicy::new(window, window, window, true))
        .with_max_page_size(25);
    if kind == VaultKind::ManagedHsm {
        let aes = SpecCapabilities::new()
            .with_usages([KeyUsage::EncryptDecrypt, KeyUsage::WrapUnwrap])
            .with_encryption([E::AesGcm])
            .with_wrap([WrapAlgorithm::AesKeyWrap, WrapAlgorithm::AesKeyWrapPad])
            .with_rotation(true);
        for spec in [KeySpec::Aes128, KeySpec::Aes192, KeySpec::Aes256] {
            caps = caps.with_spec(spec, aes.clone());
        }
    }
    caps
}

/// The Key Vault key type for a new key of `spec`.
pub(crate) fn key_type(spec: KeySpec, kind: VaultKind, protection: KeyProtection) -> KeyType {
    let hsm = kind == VaultKind::ManagedHsm || protection == KeyProtection::Hsm;
    match (spec.family(), hsm) {
        (KeyFamily::Rsa, false) => KeyType::Rsa,
        (KeyFamily::Rsa, true) => KeyType::RsaHsm,
        (KeyFamily::Ec, false) => KeyType::Ec,
        (KeyFamily::Ec, true) => KeyType::EcHsm,
        _ => KeyType::OctHsm,
    }
}

/// The curve of an EC spec.
pub(crate) fn curve(spec: KeySpec) -> Option<CurveName> {
    match spec {
        KeySpec::EcP256 => Some(CurveName::P256),
        KeySpec::EcP384 => Some(CurveName::P384),
        KeySpec::EcP521 => Some(CurveName::P521),
        KeySpec::EcSecp256k1 => Some(CurveName::P256K),
        _ => None,
    }
}

/// The key operations a key of `usage` is created with.
pub(crate) fn key_ops(usage: KeyUsage) -> Vec<KeyOperation> {
    match usage {
        KeyUsage::SignVerify => vec![KeyOperation::Sign, KeyOperation::Verify],
        KeyUsage::WrapUnwrap => vec![KeyOperation::WrapKey, KeyOperation::UnwrapKey],
        _ => vec![KeyOperation::Encrypt, KeyOperation::Decrypt],
    }
}

/// The hsm usage of a key from its `key_ops`: `sign`/`verify` → sign, `encrypt`/`decrypt` →
/// encrypt, `wrapKey`/`unwrapKey` → wrap, checked in the order that suits the key type (EC
/// keys only sign). A key without operations gets its type's default usage.
pub(crate) fn usage_from_ops(spec: KeySpec, ops: &[String]) -> KeyUsage {
    let has = |names: &[&str]| ops.iter().any(|o| names.iter().any(|n| o.eq_ignore_ascii_case(n)));
    let sign = has(&["sign", "verify"]);
    let enc = has(&["encrypt", "decrypt"]);
    let wrap = has(&["wrapKey", "unwrapKey"]);
    match spec.family() {
        KeyFamily::Ec => KeyUsage::SignVerify,
        KeyFamily::Rsa if enc => KeyUsage::EncryptDecrypt,
        KeyFamily::Rsa if sign => KeyUsage::SignVerify,
        KeyFamily::Rsa if wrap => KeyUsage::WrapUnwrap,
        KeyFamily::Aes if !enc && wrap => KeyUsage::WrapUnwrap,
        _ => spec.default_usage(),
    }
}

/// Strips leading zero bytes (JWK integers may carry one).
fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|x| **x == 0).count();
    &b[n.min(b.len().saturating_sub(1))..]
}

/// The hsm spec of a JWK; `aes_hint` is the spec recorded for AES keys (Key Vault does not
/// return the size of `oct` keys). `None` for a key type hsm does not model.
pub fn spec_of(jwk: &JsonWebKey, aes_hint: Option<KeySpec>) -> Option<KeySpec> {
    match jwk.kty.as_ref()? {
        KeyType::Rsa | KeyType::RsaHsm => {
            let bits = strip_zeros(jwk.n.as_deref()?).len() * 8;
            match bits {
                2048 => Some(KeySpec::Rsa2048),
                3072 => Some(KeySpec::Rsa3072),
                4096 => Some(KeySpec::Rsa4096),
                _ => None,
            }
        }
        KeyType::Ec | KeyType::EcHsm => match jwk.crv.as_ref()? {
            CurveName::P256 => Some(KeySpec::EcP256),
            CurveName::P384 => Some(KeySpec::EcP384),
            CurveName::P521 => Some(KeySpec::EcP521),
            CurveName::P256K => Some(KeySpec::EcSecp256k1),
            _ => None,
        },
        KeyType::Oct | KeyType::OctHsm => {
            Some(aes_hint.filter(|s| s.family() == KeyFamily::Aes).unwrap_or(KeySpec::Aes256))
        }
        _ => None,
    }
}

/// The Key Vault name of a key type, for messages.
pub(crate) fn kty_name(kty: Option<&KeyType>) -> String {
    kty.map(|k| k.to_string()).unwrap_or_else(|| "(none)".into())
}

/// The Key Vault encryption algorithm for `alg` under a key of `spec`.
pub(crate) fn encryption(alg: EncryptionAlgorithm, spec: KeySpec) -> KvEnc {
    match (alg, spec) {
        (EncryptionAlgorithm::RsaOaepSha1, _) => KvEnc::RsaOaep,
        (EncryptionAlgorithm::RsaPkcs1v15, _) => KvEnc::Rsa1_5,
        (EncryptionAlgorithm::AesGcm, KeySpec::Aes128) => KvEnc::A128Gcm,
        (EncryptionAlgorithm::AesGcm, KeySpec::Aes192) => KvEnc::A192Gcm,
        (EncryptionAlgorithm::AesGcm, _) => KvEnc::A256Gcm,
        _ => KvEnc::RsaOaep256,
    }
}

/// The Key Vault algorithm for wrapping with `alg` under a key of `spec`.
pub(crate) fn wrap(alg: WrapAlgorithm, spec: KeySpec) -> KvEnc {
    match (alg, spec) {
        (WrapAlgorithm::AesKeyWrap, KeySpec::Aes128) => KvEnc::A128Kw,
        (WrapAlgorithm::AesKeyWrap, KeySpec::Aes192) => KvEnc::A192Kw,
        (WrapAlgorithm::AesKeyWrap, _) => KvEnc::A256Kw,
        (WrapAlgorithm::AesKeyWrapPad, _) => KvEnc::CkmAesKeyWrapPad,
        _ => KvEnc::RsaOaep256,
    }
}

/// The Key Vault signature algorithm for `alg` with a key of `spec`.
pub(crate) fn signature(alg: SignatureAlgorithm, spec: KeySpec) -> KvSig {
    use SignatureAlgorithm as S;
    match alg {
        S::RsaPkcs1v15Sha256 => KvSig::Rs256,
        S::RsaPkcs1v15Sha384 => KvSig::Rs384,
        S::RsaPkcs1v15Sha512 => KvSig::Rs512,
        S::RsaPssSha256 => KvSig::Ps256,
        S::RsaPssSha384 => KvSig::Ps384,
        S::RsaPssSha512 => KvSig::Ps512,
        S::EcdsaSha256 if spec == KeySpec::EcSecp256k1 => KvSig::Es256K,
        S::EcdsaSha256 => KvSig::Es256,
        S::EcdsaSha384 => KvSig::Es384,
        _ => KvSig::Es512,
    }
}

/// The byte length of one coordinate (and of `r` and `s`) on an EC spec.
pub(crate) fn coordinate_len(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::EcP256 | KeySpec::EcSecp256k1 => Some(32),
        KeySpec::EcP384 => Some(48),
        KeySpec::EcP521 => Some(66),
        _ => None,
    }
}

// ---- DER ---------------------------------------------------------------------------------

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// A non-negative DER INTEGER from big-endian magnitude bytes.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let m = strip_zeros(magnitude);
    let mut content = Vec::with_capacity(m.len() + 1);
    if m.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(m);
    der(0x02, &content)
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_K256: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];

fn left_pad(b: &[u8], len: usize) -> Option<Vec<u8>> {
    let b = if b.len() > len { strip_zeros(b) } else { b };
    if b.len() > len {
        return None;
    }
    let mut out = vec![0; len - b.len()];
    out.extend_from_slice(b);
    Some(out)
}

/// The DER `SubjectPublicKeyInfo` of an RSA or EC JWK of `spec`; `None` when the JWK lacks
/// the public parts.
pub fn spki_der(jwk: &JsonWebKey, spec: KeySpec) -> Option<Vec<u8>> {
    let (alg_id, bits) = match spec.family() {
        KeyFamily::Rsa => {
            let n = jwk.n.as_deref()?;
            let e = jwk.e.as_deref()?;
            let key = der(0x30, &[der_uint(n), der_uint(e)].concat());
            let alg = der(0x30, &[der(0x06, OID_RSA), vec![0x05, 0x00]].concat());
            (alg, key)
        }
        KeyFamily::Ec => {
            let len = coordinate_len(spec)?;
            let oid = match spec {
                KeySpec::EcP256 => OID_P256,
                KeySpec::EcP384 => OID_P384,
                KeySpec::EcP521 => OID_P521,
                _ => OID_K256,
            };
            let mut point = vec![0x04];
            point.extend(left_pad(jwk.x.as_deref()?, len)?);
            point.extend(left_pad(jwk.y.as_deref()?, len)?);
            let alg = der(0x30, &[der(0x06, OID_EC), der(0x06, oid)].concat());
            (alg, point)
        }
        _ => return None,
    };
    let mut bit_string = vec![0];
    bit_string.extend(bits);
    Some(der(0x30, &[alg_id, der(0x03, &bit_string)].concat()))
}

/// An ECDSA signature as Key Vault returns it (raw `r‖s`, each `len` bytes) in DER
/// (`SEQUENCE { INTEGER r, INTEGER s }`), the form every other hsm provider returns.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(der(0x30, &[der_uint(r), der_uint(s)].concat()))
}

fn read_der<'a>(buf: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    let (&t, rest) = buf.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let (content, tail) = rest.split_at(len);
    *buf = tail;
    Some(content)
}

/// The raw `r‖s` form (each `coordinate_len` bytes) of a DER ECDSA signature, as Key Vault's
/// verify takes it; `None` when `der` is not a well-formed signature of that size.
pub fn ecdsa_der_to_raw(der: &[u8], coordinate_len: usize) -> Option<Vec<u8>> {
    let mut outer = der;
    let mut seq = read_der(&mut outer, 0x30)?;
    if !outer.is_empty() {
        return None;
    }
    let r = read_der(&mut seq, 0x02)?;
    let s = read_der(&mut seq, 0x02)?;
    if !seq.is_empty() {
        return None;
    }
    let mut raw = left_pad(r, coordinate_len)?;
    raw.extend(left_pad(s, coordinate_len)?);
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_survive_raw_der_raw() {
        for len in [32usize, 48, 66] {
            let mut raw = vec![0u8; 2 * len];
            raw[0] = 0x80; // r needs a leading zero in DER
            raw[len] = 0x00; // s has leading zeros to strip
            raw[len + 1] = 0x00;
            raw[len + 2] = 0x01;
            raw[2 * len - 1] = 0x7f;
            let der = ecdsa_raw_to_der(&raw).unwrap();
            assert_eq!(der[0], 0x30);
            assert_eq!(ecdsa_der_to_raw(&der, len).unwrap(), raw);
        }
        assert!(ecdsa_der_to_raw(&[0x30, 0x00], 32).is_none());
        assert!(ecdsa_der_to_raw(&[0x30, 0x03, 0x02, 0x01, 0x01, 0x00], 32).is_none());
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
    }

    #[test]
    fn der_lengths_use_the_long_form_past_127() {
        let big = der(0x04, &[0u8; 300]);
        assert_eq!(&big[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut b = &big[..];
        assert_eq!(read_der(&mut b, 0x04).map(<[u8]>::len), Some(300));
    }

    #[test]
    fn usage_follows_key_ops() {
        let ops = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(usage_from_ops(KeySpec::Rsa2048, &ops(&["sign", "verify"])), KeyUsage::SignVerify);
        assert_eq!(usage_from_ops(KeySpec::Rsa2048, &ops(&["wrapKey", "unwrapKey"])), KeyUsage::WrapUnwrap);
        assert_eq!(usage_from_ops(KeySpec::Rsa2048, &ops(&[])), KeyUsage::EncryptDecrypt);
        assert_eq!(usage_from_ops(KeySpec::Aes128, &ops(&["wrapKey"])), KeyUsage::WrapUnwrap);
        assert_eq!(usage_from_ops(KeySpec::EcP256, &ops(&["encrypt"])), KeyUsage::SignVerify);
    }

    #[test]
    fn standard_vaults_declare_no_aes() {
        let v = azure_capabilities(VaultKind::Vault, 90);
        assert!(v.spec(KeySpec::Aes256).is_none());
        assert!(v.spec(KeySpec::Ed25519).is_none());
        let m = azure_capabilities(VaultKind::ManagedHsm, 90);
        assert!(m.supports_wrap(KeySpec::Aes192, WrapAlgorithm::AesKeyWrapPad));
        assert_eq!(m.deletion.default_window, Duration::from_secs(90 * DAY));
    }
}
