//! The little DER this crate writes and reads: SubjectPublicKeyInfo from key attributes,
//! ECDSA signatures between raw `r‖s` (PKCS#11) and DER (every other provider), and the
//! OCTET STRING around `CKA_EC_POINT`.

use hsm_core::KeySpec;

/// DER of the curve OID, as `CKA_EC_PARAMS` wants it.
pub(crate) fn ec_params(spec: KeySpec) -> Option<&'static [u8]> {
    Some(match spec {
        KeySpec::EcP256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        KeySpec::EcP384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        KeySpec::EcP521 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
        KeySpec::EcSecp256k1 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        KeySpec::Ed25519 => &[0x06, 0x03, 0x2b, 0x65, 0x70],
        _ => return None,
    })
}

/// The spec of `CKA_EC_PARAMS` (a curve OID, or the printable string `edwards25519`).
pub(crate) fn spec_of_ec_params(params: &[u8]) -> Option<KeySpec> {
    const EDWARDS25519: &[u8] = b"\x13\x0cedwards25519";
    if params == EDWARDS25519 {
        return Some(KeySpec::Ed25519);
    }
    [KeySpec::EcP256, KeySpec::EcP384, KeySpec::EcP521, KeySpec::EcSecp256k1, KeySpec::Ed25519]
        .into_iter()
        .find(|s| ec_params(*s) == Some(params))
}

const OID_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A positive INTEGER from big-endian unsigned bytes.
fn uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed = &bytes[bytes.iter().take_while(|b| **b == 0).count().min(bytes.len().saturating_sub(1))..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

fn spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    let mut body = tlv(0x30, alg);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// SPKI of an RSA key from `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT`.
pub(crate) fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut alg = OID_RSA.to_vec();
    alg.extend_from_slice(&[0x05, 0x00]);
    let mut key = uint(modulus);
    key.extend(uint(exponent));
    spki(&alg, &tlv(0x30, &key))
}

/// SPKI of an EC or Ed25519 key from its uncompressed (or raw Ed25519) point.
pub(crate) fn ec_spki(spec: KeySpec, point: &[u8]) -> Option<Vec<u8>> {
    let params = ec_params(spec)?;
    let alg = if spec == KeySpec::Ed25519 {
        params.to_vec()
    } else {
        let mut a = OID_EC.to_vec();
        a.extend_from_slice(params);
        a
    };
    Some(spki(&alg, point))
}

/// Reads one TLV with tag `tag` at the start of `input`: (content, rest).
fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&l, rest) = rest.split_first()?;
    let (len, rest) = if l < 0x80 {
        (usize::from(l), rest)
    } else {
        let n = usize::from(l & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the point; some tokens give the bare point.
pub(crate) fn strip_octet_string(point: &[u8]) -> &[u8] {
    match read_tlv(point, 0x04) {
        Some((inner, [])) => inner,
        _ => point,
    }
}

/// ECDSA raw `r‖s` → DER `SEQUENCE { INTEGER r, INTEGER s }`.
pub(crate) fn ecdsa_to_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = uint(r);
    body.extend(uint(s));
    tlv(0x30, &body)
}

/// ECDSA DER → raw `r‖s` with each half `n` bytes; `None` for a malformed signature.
pub(crate) fn ecdsa_from_der(der: &[u8], n: usize) -> Option<Vec<u8>> {
    let (body, rest) = read_tlv(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (r, body) = read_tlv(body, 0x02)?;
    let (s, body) = read_tlv(body, 0x02)?;
    if !body.is_empty() {
        return None;
    }
    let mut out = vec![0u8; 2 * n];
    for (i, v) in [r, s].into_iter().enumerate() {
        let v = &v[v.iter().take_while(|b| **b == 0).count()..];
        if v.len() > n {
            return None;
        }
        out[(i + 1) * n - v.len()..(i + 1) * n].copy_from_slice(v);
    }
    Some(out)
}

/// Bytes in each half of a raw ECDSA signature for the curve.
pub(crate) fn ecdsa_half(spec: KeySpec) -> usize {
    match spec {
        KeySpec::EcP384 => 48,
        KeySpec::EcP521 => 66,
        _ => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_round_trips() {
        let mut raw = vec![0x80u8; 32];
        raw.extend([0u8; 31]);
        raw.push(1);
        let der = ecdsa_to_der(&raw);
        assert_eq!(der[0], 0x30);
        assert_eq!(ecdsa_from_der(&der, 32).unwrap(), raw);
        assert!(ecdsa_from_der(&der[..der.len() - 1], 32).is_none());
    }

    #[test]
    fn curve_params_name_their_spec() {
        for spec in [KeySpec::EcP256, KeySpec::EcP521, KeySpec::EcSecp256k1, KeySpec::Ed25519] {
            assert_eq!(spec_of_ec_params(ec_params(spec).unwrap()), Some(spec));
        }
        assert_eq!(spec_of_ec_params(b"\x13\x0cedwards25519"), Some(KeySpec::Ed25519));
        assert_eq!(spec_of_ec_params(&[0x06, 0x01, 0x00]), None);
    }

    #[test]
    fn long_lengths_and_octet_strings() {
        let big = tlv(0x04, &[7u8; 300]);
        assert_eq!(&big[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(strip_octet_string(&big), &[7u8; 300][..]);
        assert_eq!(strip_octet_string(&[4, 1, 9]), &[9]);
        assert_eq!(strip_octet_string(&[9, 9]), &[9, 9]);
    }
}
