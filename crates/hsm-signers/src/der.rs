//! The little DER this crate needs: ECDSA `SEQUENCE { INTEGER r, INTEGER s }` both ways and
//! the fields of a `SubjectPublicKeyInfo`. Every read is bounds-checked and returns `None` on
//! malformed input; callers turn that into a typed error.

/// One TLV: its tag, its contents, and what follows it.
pub(crate) fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Reads a TLV that must have `tag`.
pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, body, rest) = read_tlv(input)?;
    (t == tag).then_some((body, rest))
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OID: u8 = 0x06;

/// Encodes one TLV.
pub(crate) fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// An unsigned big-endian integer without leading zeros (one zero byte for zero).
pub(crate) fn strip_zeros(mut b: &[u8]) -> &[u8] {
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    b
}

/// An unsigned integer as a DER INTEGER (a zero byte added when the top bit is set).
pub(crate) fn integer(unsigned: &[u8]) -> Vec<u8> {
    let v = strip_zeros(unsigned);
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        let mut body = Vec::with_capacity(v.len() + 1);
        body.push(0);
        body.extend_from_slice(v);
        tlv(INTEGER, &body)
    } else {
        tlv(INTEGER, if v.is_empty() { &[0] } else { v })
    }
}

/// `(r, s)` of a DER ECDSA signature, as unsigned big-endian integers without leading zeros.
pub(crate) fn ecdsa_parts(sig: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, rest) = expect(sig, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (r, seq) = expect(seq, INTEGER)?;
    let (s, seq) = expect(seq, INTEGER)?;
    if !seq.is_empty() || r.first().is_some_and(|b| b & 0x80 != 0) || s.first().is_some_and(|b| b & 0x80 != 0)
    {
        return None;
    }
    Some((strip_zeros(r), strip_zeros(s)))
}

/// A DER ECDSA signature from unsigned `r` and `s`.
pub(crate) fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = integer(r);
    body.extend_from_slice(&integer(s));
    tlv(SEQUENCE, &body)
}

/// `n` left-padded with zeros to `len` bytes; `None` when it does not fit.
pub(crate) fn pad(n: &[u8], len: usize) -> Option<Vec<u8>> {
    let n = strip_zeros(n);
    if n.len() > len {
        return None;
    }
    let mut out = vec![0; len - n.len()];
    out.extend_from_slice(n);
    Some(out)
}

/// The public key bits of a `SubjectPublicKeyInfo` (the key spec says what they are).
pub(crate) struct Spki<'a> {
    /// The BIT STRING contents after the unused-bits byte.
    pub(crate) key: &'a [u8],
}

pub(crate) fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let (seq, rest) = expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (alg, seq) = expect(seq, SEQUENCE)?;
    let (bits, seq) = expect(seq, BIT_STRING)?;
    if !seq.is_empty() {
        return None;
    }
    expect(alg, OID)?;
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then_some(Spki { key })
}

/// `(n, e)` of a PKCS#1 `RSAPublicKey`, without leading zeros.
pub(crate) fn rsa_public(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, rest) = expect(key, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (n, seq) = expect(seq, INTEGER)?;
    let (e, seq) = expect(seq, INTEGER)?;
    seq.is_empty().then_some((strip_zeros(n), strip_zeros(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_round_trip_and_keep_sign_bytes() {
        let r = [0x80u8, 1, 2];
        let s = [0u8, 0, 5];
        let der = ecdsa_der(&r, &s);
        assert_eq!(der, vec![0x30, 0x09, 0x02, 0x04, 0x00, 0x80, 1, 2, 0x02, 0x01, 5]);
        let (r2, s2) = ecdsa_parts(&der).unwrap();
        assert_eq!((r2, s2), (&r[..], &[5u8][..]));
    }

    #[test]
    fn malformed_input_is_none_not_a_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x00, 0x00],
        ] {
            assert!(ecdsa_parts(bad).is_none(), "{bad:?}");
            assert!(spki(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn long_lengths_encode_in_the_fewest_bytes() {
        let body = vec![7u8; 300];
        let t = tlv(SEQUENCE, &body);
        assert_eq!(&t[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(read_tlv(&t).unwrap().1.len(), 300);
    }
}
