//! The four blob formats (`Ciphertext`, `Signature`, `WrappedKey`, `MacTag`): parsing bytes
//! and base64 from untrusted sources, and encoding what the constructors accept.
//!
//! First byte: which blob (and whether the rest is bytes, base64 text or constructor input).
//! Invariants: a blob that parses re-encodes to bytes that parse to an equal value and encode
//! identically; every refusal is `InvalidInput`; `new` + `to_bytes` always parses back.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hsm_core::{
    Ciphertext, EncryptionAlgorithm, Error, MacAlgorithm, MacTag, Signature, SignatureAlgorithm,
    WrapAlgorithm, WrappedKey,
};
use libfuzzer_sys::fuzz_target;

macro_rules! parse {
    ($t:ty, $data:expr) => {{
        match <$t>::from_bytes($data) {
            Ok(b) => {
                let again = b.to_bytes();
                let back = <$t>::from_bytes(&again).expect("a re-encoded blob parses");
                assert_eq!(back, b);
                assert_eq!(back.to_bytes(), again, "encoding is stable");
                assert_eq!(<$t>::from_base64(&b.to_base64()).expect("base64 round trip"), b);
            }
            Err(e) => assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
        }
    }};
}

macro_rules! parse_base64 {
    ($t:ty, $text:expr) => {{
        match <$t>::from_base64($text) {
            Ok(b) => assert_eq!(<$t>::from_bytes(&b.to_bytes()).expect("re-encoded blob parses"), b),
            Err(e) => assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
        }
    }};
}

/// A blob made with `new`: key and version non-empty (the documented precondition), any
/// length; the encoding must parse back, with names cut to at most 255 bytes.
macro_rules! construct {
    ($t:ty, $alg:ty, $u:expr) => {{
        let mut u = $u;
        let (Ok(key), Ok(version), Ok(i), Ok(payload)) = (
            String::arbitrary(&mut u),
            String::arbitrary(&mut u),
            usize::arbitrary(&mut u),
            Vec::<u8>::arbitrary(&mut u),
        ) else {
            return;
        };
        if key.is_empty() || version.is_empty() {
            return;
        }
        let alg = <$alg>::ALL[i % <$alg>::ALL.len()];
        let blob = <$t>::new(key.clone(), version.clone(), alg, payload.clone());
        let back =
            <$t>::from_bytes(&blob.to_bytes()).expect("what new() makes encodes to a blob that parses");
        assert!(key.starts_with(back.key()) && back.key().len() <= 255);
        assert!(version.starts_with(back.version()) && back.version().len() <= 255);
        assert_eq!(back.algorithm(), alg);
        assert_eq!(back.as_bytes(), &payload[..]);
        if key.len() <= 255 && version.len() <= 255 {
            assert_eq!(back, blob);
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let text = std::str::from_utf8(rest).ok();
    match which % 12 {
        0 => parse!(Ciphertext, rest),
        1 => parse!(Signature, rest),
        2 => parse!(WrappedKey, rest),
        3 => parse!(MacTag, rest),
        4 => text.into_iter().for_each(|t| parse_base64!(Ciphertext, t)),
        5 => text.into_iter().for_each(|t| parse_base64!(Signature, t)),
        6 => text.into_iter().for_each(|t| parse_base64!(WrappedKey, t)),
        7 => text.into_iter().for_each(|t| parse_base64!(MacTag, t)),
        8 => construct!(Ciphertext, EncryptionAlgorithm, Unstructured::new(rest)),
        9 => construct!(Signature, SignatureAlgorithm, Unstructured::new(rest)),
        10 => construct!(WrappedKey, WrapAlgorithm, Unstructured::new(rest)),
        _ => construct!(MacTag, MacAlgorithm, Unstructured::new(rest)),
    }
});
