//! Shamir's secret sharing of a data key over GF(2^8), on `vsss-rs`, whose field arithmetic
//! is constant-time (no lookup tables). Shares are `index ‖ 32 bytes`; the index (x
//! coordinate, 1 ..= 255) is stored in the stanza, the 32 bytes are what a recipient
//! protects, so a share is wrapped exactly like a data key.

use hsm_core::{Error, Result};
use vsss_rs::Gf256;
use zeroize::{Zeroize, Zeroizing};

use crate::PROVIDER;
use crate::schedule::DATA_KEY_LEN;

/// One share: its x coordinate and its 32 y bytes.
pub(crate) struct Piece {
    pub(crate) index: u8,
    pub(crate) value: Zeroizing<[u8; DATA_KEY_LEN]>,
}

/// The system random number generator for vsss-rs. aws-lc-rs's `fill` does not fail in
/// practice; if it ever does, the failure is remembered and the split is refused.
struct SystemRng {
    failed: bool,
}

impl rand_core::TryRng for SystemRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
        if aws_lc_rs::rand::fill(dst).is_err() {
            self.failed = true;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SystemRng {}

fn failed(what: &str) -> Error {
    Error::Provider {
        provider: PROVIDER,
        code: "shamir".to_owned(),
        message: format!("secret sharing failed: {what}"),
        source: None,
    }
}

/// Splits `secret` into `count` shares (indexes 1 ..= count), any `threshold` of which
/// recover it.
pub(crate) fn split(secret: &[u8; DATA_KEY_LEN], threshold: u8, count: u8) -> Result<Vec<Piece>> {
    let mut rng = SystemRng { failed: false };
    let mut shares = Gf256::split_bytes(usize::from(threshold), usize::from(count), secret, &mut rng)
        .map_err(|e| {
            failed(&format!("cannot split into {count} shares with threshold {threshold}: {e:?}"))
        })?;
    let pieces = shares.iter().map(|s| piece(s)).collect::<Result<Vec<_>>>();
    for s in &mut shares {
        s.zeroize();
    }
    if rng.failed {
        return Err(failed("the system random number generator failed"));
    }
    pieces
}

fn piece(share: &[u8]) -> Result<Piece> {
    match share.split_first() {
        Some((&index, rest)) if rest.len() == DATA_KEY_LEN && index != 0 => {
            let mut value = Zeroizing::new([0u8; DATA_KEY_LEN]);
            value.copy_from_slice(rest);
            Ok(Piece { index, value })
        }
        _ => Err(failed("a share has an unexpected shape")),
    }
}

/// The value at `x` of the polynomial through `pieces` (distinct indexes): `x = 0` is the
/// secret, `x = i` share `i`. Lagrange interpolation in constant-time field arithmetic.
pub(crate) fn evaluate(pieces: &[Piece], x: u8) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>> {
    let distinct = pieces
        .iter()
        .enumerate()
        .all(|(i, p)| p.index != 0 && pieces[..i].iter().all(|q| q.index != p.index));
    if pieces.is_empty() || !distinct {
        return Err(failed("shares must be non-empty with distinct indexes"));
    }
    if let Some(p) = pieces.iter().find(|p| p.index == x) {
        return Ok(p.value.clone());
    }
    let x = Gf256(x);
    // Lagrange basis at x: l_j = Π_{m ≠ j} (x - x_m) / (x_j - x_m); the denominators are
    // non-zero because the indexes are distinct.
    let basis: Vec<Gf256> = pieces
        .iter()
        .enumerate()
        .map(|(j, pj)| {
            pieces.iter().enumerate().filter(|(m, _)| *m != j).fold(Gf256(1), |acc, (_, pm)| {
                acc * ((x - Gf256(pm.index)) / (Gf256(pj.index) - Gf256(pm.index)))
            })
        })
        .collect();
    let mut out = Zeroizing::new([0u8; DATA_KEY_LEN]);
    for (i, byte) in out.iter_mut().enumerate() {
        let sum = pieces.iter().zip(&basis).fold(Gf256(0), |acc, (p, l)| acc + Gf256(p.value[i]) * *l);
        *byte = sum.0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_recovers_the_secret_and_fewer_do_not() {
        let secret = [0x5au8; DATA_KEY_LEN];
        let pieces = split(&secret, 2, 3).unwrap();
        assert_eq!(pieces.iter().map(|p| p.index).collect::<Vec<_>>(), [1, 2, 3]);
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let two = [clone(&pieces[a]), clone(&pieces[b])];
            assert_eq!(*evaluate(&two, 0).unwrap(), secret);
            // The third share is recomputed from any two (rewrap adds recipients this way).
            let third = 6 - (a + 1) - (b + 1);
            assert_eq!(*evaluate(&two, third as u8).unwrap(), *pieces[third - 1].value);
        }
        // One share of a 2-of-3 split says nothing: it is not the secret.
        assert_ne!(*evaluate(&[clone(&pieces[0])], 0).unwrap(), secret);
        assert!(evaluate(&[clone(&pieces[0]), clone(&pieces[0])], 0).is_err());
        assert!(evaluate(&[], 0).is_err());
    }

    fn clone(p: &Piece) -> Piece {
        Piece { index: p.index, value: p.value.clone() }
    }
}
