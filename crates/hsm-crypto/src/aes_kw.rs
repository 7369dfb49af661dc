//! AES Key Wrap (RFC 3394) and AES Key Wrap with Padding (RFC 5649) for every AES key size.
//!
//! `aws_lc_rs::key_wrap` only offers AES-128 and AES-256 key-encryption keys, and hsm supports
//! AES-192 as well, so this module calls the same AWS-LC functions (`AES_wrap_key`,
//! `AES_unwrap_key`, `AES_wrap_key_padded`, `AES_unwrap_key_padded`) directly through
//! `aws-lc-sys`, the crate aws-lc-rs itself links. With `fork.rs` (one `pthread_atfork` call), the only
//! `unsafe` code in hsm-crypto.
//!
//! Every call is bounded: output buffers are sized from the input length before the call and
//! AWS-LC never writes past `max_out` (padded) or `in_len ± 8` (unpadded); the expanded key
//! schedule is zeroized on drop.

// The FFI calls below need `unsafe`; the workspace denies it everywhere else.
#![allow(unsafe_code)]

use aws_lc_sys::{
    AES_KEY, AES_set_decrypt_key, AES_set_encrypt_key, AES_unwrap_key, AES_unwrap_key_padded, AES_wrap_key,
    AES_wrap_key_padded,
};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

/// The longest input accepted (AWS-LC limits unpadded wrap to `INT_MAX - 8` bytes; we stay far below).
const MAX_INPUT: usize = 1 << 30;

/// An expanded AES key schedule, zeroized when dropped.
struct Schedule(AES_KEY);

impl Schedule {
    fn new(kek: &[u8], encrypt: bool) -> Result<Self, CryptoError> {
        if !matches!(kek.len(), 16 | 24 | 32) {
            return Err(CryptoError);
        }
        let mut s = Schedule(AES_KEY { rd_key: [0; 60], rounds: 0 });
        let bits = (kek.len() * 8) as std::os::raw::c_uint;
        // SAFETY: `kek` points to `bits / 8` readable bytes and `s.0` is a valid, writable
        // AES_KEY; AWS-LC reads exactly the key and writes only the schedule.
        let rc = unsafe {
            if encrypt {
                AES_set_encrypt_key(kek.as_ptr(), bits, &mut s.0)
            } else {
                AES_set_decrypt_key(kek.as_ptr(), bits, &mut s.0)
            }
        };
        // These two functions return 0 on success and a negative number on failure.
        if rc != 0 { Err(CryptoError) } else { Ok(s) }
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        self.0.rd_key.zeroize();
        self.0.rounds.zeroize();
    }
}

/// RFC 3394 wrap with the default IV. `input` must be at least 16 bytes and a multiple of 8.
///
/// # Errors
/// [`CryptoError`] for a KEK that is not 16, 24 or 32 bytes or an input of the wrong length.
pub fn wrap(kek: &[u8], input: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if input.len() < 16 || !input.len().is_multiple_of(8) || input.len() > MAX_INPUT {
        return Err(CryptoError);
    }
    let key = Schedule::new(kek, true)?;
    let mut out = vec![0u8; input.len() + 8];
    // SAFETY: `out` has room for `in_len + 8` bytes, which is exactly what AES_wrap_key
    // writes; a null IV selects the RFC 3394 default IV.
    let n = unsafe { AES_wrap_key(&key.0, std::ptr::null(), out.as_mut_ptr(), input.as_ptr(), input.len()) };
    if usize::try_from(n).ok() != Some(out.len()) {
        return Err(CryptoError);
    }
    Ok(out)
}

/// RFC 3394 unwrap with the default IV; fails (opaquely) on any integrity-check mismatch.
///
/// # Errors
/// [`CryptoError`] for a bad KEK length, a malformed input or a failed integrity check.
pub fn unwrap(kek: &[u8], input: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if input.len() < 24 || !input.len().is_multiple_of(8) || input.len() > MAX_INPUT {
        return Err(CryptoError);
    }
    let key = Schedule::new(kek, false)?;
    let mut out = Zeroizing::new(vec![0u8; input.len() - 8]);
    // SAFETY: `out` has room for `in_len - 8` bytes, exactly what AES_unwrap_key writes.
    let n =
        unsafe { AES_unwrap_key(&key.0, std::ptr::null(), out.as_mut_ptr(), input.as_ptr(), input.len()) };
    if usize::try_from(n).ok() != Some(out.len()) {
        return Err(CryptoError);
    }
    Ok(out)
}

/// RFC 5649 wrap of 1 or more bytes.
///
/// # Errors
/// [`CryptoError`] for a bad KEK length or an empty input.
pub fn wrap_pad(kek: &[u8], input: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if input.is_empty() || input.len() > MAX_INPUT {
        return Err(CryptoError);
    }
    let key = Schedule::new(kek, true)?;
    let max_out = input.len() + 15;
    let mut out = vec![0u8; max_out];
    let mut out_len = 0usize;
    // SAFETY: `out` is `max_out` bytes long and AWS-LC writes at most `max_out` bytes,
    // reporting the count in `out_len`.
    let ok = unsafe {
        AES_wrap_key_padded(&key.0, out.as_mut_ptr(), &mut out_len, max_out, input.as_ptr(), input.len())
    };
    if ok != 1 || out_len > max_out {
        return Err(CryptoError);
    }
    out.truncate(out_len);
    Ok(out)
}

/// RFC 5649 unwrap; fails (opaquely) on any integrity or padding mismatch.
///
/// # Errors
/// [`CryptoError`] for a bad KEK length, a malformed input or a failed integrity check.
pub fn unwrap_pad(kek: &[u8], input: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if input.len() < 16 || !input.len().is_multiple_of(8) || input.len() > MAX_INPUT {
        return Err(CryptoError);
    }
    let key = Schedule::new(kek, false)?;
    let max_out = input.len();
    let mut out = Zeroizing::new(vec![0u8; max_out]);
    let mut out_len = 0usize;
    // SAFETY: `out` is `max_out` bytes long and AWS-LC writes at most `max_out` bytes,
    // reporting the count in `out_len`.
    let ok = unsafe {
        AES_unwrap_key_padded(&key.0, out.as_mut_ptr(), &mut out_len, max_out, input.as_ptr(), input.len())
    };
    if ok != 1 || out_len > max_out || out_len == 0 {
        return Err(CryptoError);
    }
    out.truncate(out_len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn rfc3394_vectors_for_every_kek_size() {
        // RFC 3394 §4.1, §4.3 and §4.5 (128-bit key data under 128/192/256-bit KEKs).
        let data = hex("00112233445566778899AABBCCDDEEFF");
        let cases = [
            ("000102030405060708090A0B0C0D0E0F", "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
            (
                "000102030405060708090A0B0C0D0E0F1011121314151617",
                "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D",
            ),
            (
                "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
                "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7",
            ),
        ];
        for (kek, want) in cases {
            let kek = hex(kek);
            let wrapped = wrap(&kek, &data).unwrap();
            assert_eq!(wrapped, hex(want));
            assert_eq!(&*unwrap(&kek, &wrapped).unwrap(), &data[..]);
        }
    }

    #[test]
    fn rfc5649_vectors() {
        // RFC 5649 §6, 192-bit KEK.
        let kek = hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
        let cases = [
            (
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
            ),
            ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
        ];
        for (data, want) in cases {
            let data = hex(data);
            let wrapped = wrap_pad(&kek, &data).unwrap();
            assert_eq!(wrapped, hex(want));
            assert_eq!(&*unwrap_pad(&kek, &wrapped).unwrap(), &data[..]);
        }
    }

    #[test]
    fn bad_lengths_and_tampering_fail_without_panicking() {
        let kek = [7u8; 24];
        assert!(wrap(&kek, &[1; 8]).is_err());
        assert!(wrap(&kek, &[1; 17]).is_err());
        assert!(wrap(&[0; 20], &[1; 16]).is_err());
        assert!(wrap_pad(&kek, &[]).is_err());
        let mut w = wrap(&kek, &[1; 32]).unwrap();
        w[3] ^= 1;
        assert!(unwrap(&kek, &w).is_err());
        let mut p = wrap_pad(&kek, &[1; 5]).unwrap();
        assert!(unwrap(&kek, &p).is_err(), "an RFC 5649 blob does not unwrap as RFC 3394");
        p[15] ^= 0x80;
        assert!(unwrap_pad(&kek, &p).is_err());
        for n in 0..40 {
            let _ = unwrap(&kek, &vec![0; n]);
            let _ = unwrap_pad(&kek, &vec![0; n]);
        }
    }
}
