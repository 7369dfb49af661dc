//! Self-describing results: [`Ciphertext`], [`Signature`], [`WrappedKey`] and [`MacTag`].
//!
//! Each records the key name, key version and algorithm that produced it, so that
//! decrypt, verify and unwrap after a rotation use the right version on every provider.
//!
//! # Byte encoding (format version 1)
//!
//! Every blob has the same layout; integers are big-endian:
//!
//! | bytes      | field                                                            |
//! |------------|------------------------------------------------------------------|
//! | 3          | magic `68 73 6d` (`"hsm"`)                                       |
//! | 1          | format version, `01`                                             |
//! | 1          | kind: `43` `C` ciphertext, `53` `S` signature, `57` `W` wrapped key, `4d` `M` MAC tag |
//! | 1 + n      | key name: length `n` (1..=255), then UTF-8                       |
//! | 1 + n      | key version: length `n` (1..=255), then UTF-8                    |
//! | 1 + n      | algorithm: length `n` (1..=255), then its short name (`aes-gcm`) |
//! | 4 + n      | payload: length `n`, then the provider's bytes                   |
//!
//! Nothing may follow the payload. The payload is provider-specific: for AES-GCM it is
//! `nonce (12) ‖ ciphertext ‖ tag (16)`, for RSA it is the raw RSA output, for signatures
//! the raw signature (DER for ECDSA). Decoding rejects a wrong magic, an unknown format
//! version, the wrong kind, a truncated or over-long blob, non-UTF-8 text and unknown
//! algorithm names, each with [`Error::InvalidInput`] naming the problem.
//!
//! ```
//! use hsm_core::{Ciphertext, EncryptionAlgorithm};
//! let ct = Ciphertext::new("invoices", "2", EncryptionAlgorithm::AesGcm, vec![1, 2, 3]);
//! let bytes = ct.to_bytes();
//! assert_eq!(&bytes[..5], b"hsm\x01C");
//! assert_eq!(Ciphertext::from_bytes(&bytes).unwrap(), ct);
//! assert_eq!(Ciphertext::from_base64(&ct.to_base64()).unwrap(), ct);
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::vocab::{EncryptionAlgorithm, MacAlgorithm, SignatureAlgorithm, WrapAlgorithm};

const MAGIC: &[u8; 3] = b"hsm";
const FORMAT_VERSION: u8 = 1;
const PROVIDER: &str = "hsm";

fn encode(kind: u8, key: &str, version: &str, alg: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + 3 + key.len() + version.len() + alg.len() + 4 + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(kind);
    for field in [key, version, alg] {
        let b = clamp(field).as_bytes();
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `field` cut to at most 255 bytes at a character boundary: a cut inside a character would
/// make the blob's text invalid UTF-8, and the blob unreadable (found by fuzzing).
fn clamp(field: &str) -> &str {
    let mut end = field.len().min(255);
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    &field[..end]
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("{} is truncated (in its {field}); pass the whole blob", self.what),
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn text(&mut self, field: &str) -> Result<&'a str> {
        let n = self.take(1, field)?[0] as usize;
        if n == 0 {
            return Err(Error::invalid_input(PROVIDER, format!("{} has an empty {field}", self.what)));
        }
        std::str::from_utf8(self.take(n, field)?).map_err(|_| {
            Error::invalid_input(PROVIDER, format!("{} has a {field} that is not UTF-8", self.what))
        })
    }
}

struct Decoded<'a> {
    key: &'a str,
    version: &'a str,
    alg: &'a str,
    payload: &'a [u8],
}

fn decode<'a>(kind: u8, what: &'static str, bytes: &'a [u8]) -> Result<Decoded<'a>> {
    let mut r = Reader { buf: bytes, what };
    if r.take(3, "header")? != MAGIC {
        return Err(Error::invalid_input(PROVIDER, format!("this is not an hsm {what} (bad magic bytes)")));
    }
    let v = r.take(1, "header")?[0];
    if v != FORMAT_VERSION {
        return Err(Error::invalid_input(
            PROVIDER,
            format!("{what} uses format version {v}; this build reads version {FORMAT_VERSION}; upgrade hsm"),
        ));
    }
    let k = r.take(1, "header")?[0];
    if k != kind {
        return Err(Error::invalid_input(
            PROVIDER,
            format!("expected an hsm {what} but found a {}", kind_name(k)),
        ));
    }
    let key = r.text("key name")?;
    let version = r.text("key version")?;
    let alg = r.text("algorithm")?;
    let len = u32::from_be_bytes(r.take(4, "payload length")?.try_into().unwrap_or_default()) as usize;
    let payload = r.take(len, "payload")?;
    if !r.buf.is_empty() {
        return Err(Error::invalid_input(
            PROVIDER,
            format!("{what} has {} unexpected bytes after its payload", r.buf.len()),
        ));
    }
    Ok(Decoded { key, version, alg, payload })
}

fn kind_name(k: u8) -> &'static str {
    match k {
        b'C' => "ciphertext",
        b'S' => "signature",
        b'W' => "wrapped key",
        b'M' => "MAC tag",
        _ => "blob of unknown kind",
    }
}

fn parse_alg<A: FromStr>(what: &str, s: &str) -> Result<A>
where
    A::Err: fmt::Display,
{
    s.parse().map_err(|e| {
        Error::invalid_input(PROVIDER, format!("{what} names an algorithm this build does not know: {e}"))
    })
}

fn decode_b64(what: &str, s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .map_err(|e| Error::invalid_input(PROVIDER, format!("{what} is not valid base64: {e}")))
}

macro_rules! blob {
    ($(#[$m:meta])* $name:ident, $alg:ty, $kind:expr, $what:literal, $payload_doc:literal) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name {
            key: String,
            version: String,
            algorithm: $alg,
            bytes: Bytes,
        }

        impl $name {
            #[doc = concat!("A ", $what, " made by key `key` at `version` with `algorithm`.")]
            #[doc = ""]
            #[doc = "`key` and `version` should be 1 to 255 bytes (every provider's are); longer ones are cut to at most 255 bytes, at a character boundary, when encoded."]
            pub fn new(key: impl Into<String>, version: impl Into<String>, algorithm: $alg, bytes: impl Into<Bytes>) -> Self {
                let (key, version) = (key.into(), version.into());
                $name { key, version, algorithm, bytes: bytes.into() }
            }

            /// The name of the key that produced this.
            pub fn key(&self) -> &str {
                &self.key
            }

            /// The key version that produced this.
            pub fn version(&self) -> &str {
                &self.version
            }

            /// The algorithm.
            pub fn algorithm(&self) -> $alg {
                self.algorithm
            }

            #[doc = $payload_doc]
            pub fn as_bytes(&self) -> &[u8] {
                &self.bytes
            }

            /// The payload as shared bytes.
            pub fn bytes(&self) -> &Bytes {
                &self.bytes
            }

            /// A reference to the exact key version that produced this.
            pub fn key_ref(&self) -> crate::KeyRef {
                crate::KeyRef::new(self.key.clone()).with_version(self.version.clone())
            }

            /// The stable, versioned encoding (see the [module docs](crate::blob)).
            pub fn to_bytes(&self) -> Vec<u8> {
                encode($kind, &self.key, &self.version, self.algorithm.as_str(), &self.bytes)
            }

            /// Parses [`to_bytes`](Self::to_bytes) output.
            ///
            /// # Errors
            #[doc = concat!("[`Error::InvalidInput`] when `bytes` is not a well-formed ", $what, ".")]
            pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
                let d = decode($kind, $what, bytes)?;
                Ok($name {
                    key: d.key.to_owned(),
                    version: d.version.to_owned(),
                    algorithm: parse_alg($what, d.alg)?,
                    bytes: Bytes::copy_from_slice(d.payload),
                })
            }

            /// [`to_bytes`](Self::to_bytes) as standard base64 (with padding).
            pub fn to_base64(&self) -> String {
                base64::engine::general_purpose::STANDARD.encode(self.to_bytes())
            }

            /// Parses [`to_base64`](Self::to_base64) output (URL-safe base64 is accepted too).
            ///
            /// # Errors
            /// [`Error::InvalidInput`] when the text is not base64 or not a well-formed blob.
            pub fn from_base64(text: &str) -> Result<Self> {
                Self::from_bytes(&decode_b64($what, text)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("key", &self.key)
                    .field("version", &self.version)
                    .field("algorithm", &self.algorithm)
                    .field("len", &self.bytes.len())
                    .finish()
            }
        }
    };
}

blob!(
    /// The result of [`Provider::encrypt`](crate::Provider::encrypt).
    Ciphertext, EncryptionAlgorithm, b'C', "ciphertext",
    "The provider's ciphertext bytes (for AES-GCM: nonce ‖ ciphertext ‖ tag)."
);
blob!(
    /// The result of [`Provider::sign`](crate::Provider::sign).
    Signature, SignatureAlgorithm, b'S', "signature",
    "The raw signature (DER for ECDSA, 64 bytes for Ed25519, the modulus length for RSA): what other tools verify."
);
blob!(
    /// The result of [`Provider::wrap_key`](crate::Provider::wrap_key).
    WrappedKey, WrapAlgorithm, b'W', "wrapped key",
    "The wrapped key bytes (RFC 3394/5649 output, RSA-OAEP output, or nonce ‖ ciphertext ‖ tag for AES-GCM)."
);
blob!(
    /// The result of [`Provider::mac`](crate::Provider::mac).
    MacTag, MacAlgorithm, b'M', "MAC tag",
    "The raw MAC tag."
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_malformation_is_a_typed_error() {
        let ct = Ciphertext::new("k", "1", EncryptionAlgorithm::AesGcm, vec![9; 40]);
        let good = ct.to_bytes();
        let msg = |b: &[u8]| match Ciphertext::from_bytes(b) {
            Err(Error::InvalidInput { message, .. }) => message,
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert!(msg(&good[..good.len() - 1]).contains("truncated"));
        assert!(msg(&[]).contains("truncated"));
        let mut extra = good.clone();
        extra.push(0);
        assert!(msg(&extra).contains("unexpected bytes"));
        let mut bad_magic = good.clone();
        bad_magic[0] = b'x';
        assert!(msg(&bad_magic).contains("magic"));
        let mut future = good.clone();
        future[3] = 9;
        assert!(msg(&future).contains("format version 9"));
        let sig = Signature::new("k", "1", SignatureAlgorithm::Ed25519, vec![1; 64]).to_bytes();
        assert!(msg(&sig).contains("found a signature"));
        let alien = encode(b'C', "k", "1", "rot13", b"x");
        assert!(msg(&alien).contains("rot13"));
        assert!(Ciphertext::from_base64("not base64!!").is_err());
    }

    /// Regression (fuzz target `blob`): a 300-byte name of two-byte characters was cut at
    /// byte 255, inside a character, and the blob no longer parsed.
    #[test]
    fn a_long_name_is_cut_at_a_character_boundary_and_still_parses() {
        let key = "é".repeat(150);
        let version = "v".repeat(254) + "€";
        let ct = Ciphertext::new(key.clone(), version.clone(), EncryptionAlgorithm::AesGcm, vec![1, 2, 3]);
        let back = Ciphertext::from_bytes(&ct.to_bytes()).expect("the encoding of a long name parses");
        assert_eq!(back.key(), "é".repeat(127));
        assert_eq!(back.version(), "v".repeat(254));
        assert_eq!((back.algorithm(), back.as_bytes()), (EncryptionAlgorithm::AesGcm, &[1u8, 2, 3][..]));
        let at_limit = "x".repeat(255);
        let exact = MacTag::new(at_limit.clone(), "1", MacAlgorithm::HmacSha256, vec![0; 32]);
        assert_eq!(MacTag::from_bytes(&exact.to_bytes()).unwrap().key(), at_limit);
    }

    proptest! {
        #[test]
        fn round_trip_any_blob(key in "[a-z]{1,40}", version in "[0-9a-f]{1,32}", payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let w = WrappedKey::new(key, version, WrapAlgorithm::AesKeyWrapPad, payload);
            prop_assert_eq!(WrappedKey::from_bytes(&w.to_bytes()).unwrap(), w.clone());
            prop_assert_eq!(WrappedKey::from_base64(&w.to_base64()).unwrap(), w);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Ciphertext::from_bytes(&bytes);
            let mut prefixed = b"hsm\x01S".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = Signature::from_bytes(&prefixed);
        }
    }
}
