//! The key schedule (HKDF-SHA-512 → payload key + commitment) and the STREAM segment cipher.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf};
use hsm_core::{Error, Result};

use crate::header::{COMMITMENT_LEN, Header, MESSAGE_ID_LEN, PREFIX_LEN, Suite};
use crate::{PROVIDER, opaque};

/// Bytes of the data key.
pub(crate) const DATA_KEY_LEN: usize = 32;
/// AES-GCM tag bytes per segment.
pub(crate) const TAG_LEN: usize = 16;
const LABEL: &[u8] = b"hsm envelope v2";

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF info: label ‖ suite id ‖ purpose.
fn info(purpose: &'static [u8]) -> [&'static [u8]; 3] {
    [LABEL, &[Suite::V2_DEFAULT_ID], purpose]
}

/// The commitment to `data_key` for a message: HKDF-SHA-512(salt = message id, ikm = data key,
/// info = "hsm envelope v2" ‖ suite ‖ "commitment"), 32 bytes.
pub(crate) fn commitment(data_key: &[u8], message_id: &[u8; MESSAGE_ID_LEN]) -> Result<[u8; COMMITMENT_LEN]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA512, message_id).extract(data_key);
    let mut out = [0u8; COMMITMENT_LEN];
    prk.expand(&info(b"commitment"), Len(COMMITMENT_LEN))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| opaque())?;
    Ok(out)
}

/// The AES-256-GCM payload key: the same HKDF with info "… payload key". It goes straight
/// from HKDF into the AEAD key and never sits in a buffer of ours.
fn payload_key(data_key: &[u8], message_id: &[u8; MESSAGE_ID_LEN]) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA512, message_id).extract(data_key);
    let info = info(b"payload key");
    let okm = prk.expand(&info, &AES_256_GCM).map_err(|_| opaque())?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// The cipher that seals and opens one message's segments.
pub(crate) struct SegmentCipher {
    key: LessSafeKey,
    prefix: [u8; PREFIX_LEN],
    aad: Vec<u8>,
}

impl SegmentCipher {
    /// For a new format-2 message: the payload key from the data key, AAD the header hash.
    pub(crate) fn v2(
        data_key: &[u8],
        message_id: &[u8; MESSAGE_ID_LEN],
        authenticated: &[u8],
    ) -> Result<Self> {
        Ok(SegmentCipher {
            key: payload_key(data_key, message_id)?,
            prefix: [0; PREFIX_LEN],
            aad: digest::digest(&digest::SHA256, authenticated).as_ref().to_vec(),
        })
    }

    /// For a message being opened, after checking the key commitment (format 2) in constant
    /// time. `caller_aad` is format 1's caller-supplied AAD (format 2 has none).
    pub(crate) fn open(header: &Header, data_key: &[u8], caller_aad: Option<&[u8]>) -> Result<Self> {
        if data_key.len() != DATA_KEY_LEN {
            return Err(opaque());
        }
        match (header.suite, header.message_id) {
            (Suite::Aes256GcmHkdfSha512Committing, Some(id)) => {
                let expected = commitment(data_key, &id)?;
                // aws-lc-rs compares in constant time (CRYPTO_memcmp).
                #[allow(deprecated)]
                aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &header.commitment)
                    .map_err(|_| opaque())?;
                SegmentCipher::v2(data_key, &id, &header.authenticated)
            }
            (Suite::V1Aes256Gcm, _) => {
                let key = UnboundKey::new(&AES_256_GCM, data_key).map_err(|_| opaque())?;
                let mut aad = header.authenticated.clone();
                aad.extend_from_slice(caller_aad.unwrap_or_default());
                Ok(SegmentCipher { key: LessSafeKey::new(key), prefix: header.nonce_prefix, aad })
            }
            _ => Err(Error::invalid_input(PROVIDER, "envelope header: unknown suite")),
        }
    }

    fn nonce(&self, counter: u32, last: bool) -> Nonce {
        let mut n = [0u8; 12];
        n[..PREFIX_LEN].copy_from_slice(&self.prefix);
        n[PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        Nonce::assume_unique_for_key(n)
    }

    /// Seals segment `counter` in place: `buf` holds the plaintext followed by `TAG_LEN`
    /// spare bytes, which receive the tag.
    pub(crate) fn seal(&self, counter: u32, last: bool, buf: &mut [u8]) -> Result<()> {
        let split = buf.len() - TAG_LEN;
        let (data, tag_out) = buf.split_at_mut(split);
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(counter, last), Aad::from(&self.aad[..]), data)
            .map_err(|_| opaque())?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens segment `counter` in place; the plaintext is `buf[..buf.len() - TAG_LEN]`.
    pub(crate) fn open_segment(&self, counter: u32, last: bool, buf: &mut [u8]) -> Result<()> {
        self.key
            .open_in_place(self.nonce(counter, last), Aad::from(&self.aad[..]), buf)
            .map(|_| ())
            .map_err(|_| opaque())
    }
}
