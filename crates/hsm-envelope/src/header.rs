//! The envelope header: encoding (v2) and decoding (v1 and v2), with every length checked
//! before it sizes an allocation.

use hsm_core::{Ciphertext, Error, KeyRef, Result, WrappedKey};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::context::{Context, MAX_CONTEXT_BYTES};
use crate::{PROVIDER, io_error};

pub(crate) const MAGIC: &[u8; 4] = b"hsmE";
/// The first format: one key blob, a random nonce prefix, no key commitment. Still opens.
pub const VERSION_1: u8 = 1;
/// The current format (see the crate docs).
pub const VERSION_2: u8 = 2;
pub(crate) const MESSAGE_ID_LEN: usize = 32;
pub(crate) const COMMITMENT_LEN: usize = 32;
pub(crate) const PREFIX_LEN: usize = 7;
/// Smallest and largest segment sizes a header may declare.
pub const SEGMENT_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1024..=(16 << 20);
/// Default cap on the recipients a header may list before anything is allocated for them.
pub const DEFAULT_MAX_RECIPIENTS: usize = 16;
/// Largest key blob a stanza may carry (an RSA-4096 wrap is about 600 bytes).
const MAX_BLOB_LEN: usize = 64 * 1024;
const MAX_PROVIDER_NAME: usize = 64;
/// Largest stanza: share prefix, kind, provider name, blob.
const MAX_STANZA_LEN: usize = 4 + 2 + MAX_PROVIDER_NAME + 4 + MAX_BLOB_LEN;

/// The cipher suite of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Suite {
    /// Format 1: AES-256-GCM STREAM under the data key itself, no key commitment.
    V1Aes256Gcm,
    /// Format 2, suite `0x01`: HKDF-SHA-512 derives the payload key and a 32-byte key
    /// commitment from the data key and message id; AES-256-GCM STREAM segments.
    Aes256GcmHkdfSha512Committing,
}

impl Suite {
    pub(crate) const V2_DEFAULT_ID: u8 = 0x01;

    /// A stable name for display: `aes-256-gcm-hkdf-sha512-committing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Suite::V1Aes256Gcm => "aes-256-gcm (v1, not committing)",
            Suite::Aes256GcmHkdfSha512Committing => "aes-256-gcm-hkdf-sha512-committing",
        }
    }
}

/// How a recipient protects the data key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protection {
    /// Wrapped with [`Provider::wrap_key`](hsm_core::Provider::wrap_key) (key usage wrap).
    Wrapped(WrappedKey),
    /// Encrypted with [`Provider::encrypt`](hsm_core::Provider::encrypt) (key usage encrypt).
    Encrypted(Ciphertext),
    /// A stanza kind this version of hsm does not know (written by a newer one); skipped.
    Unknown {
        /// The stanza's kind byte.
        kind: u8,
    },
}

/// Which Shamir share of the data key a threshold stanza protects (see
/// [`Keyring::threshold`](crate::Keyring::threshold)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// The share's x coordinate, 1 ..= `count`: the recipient group it belongs to, counted
    /// from 1.
    pub index: u8,
    /// How many distinct shares open the data key.
    pub threshold: u8,
    /// How many shares (recipient groups) there are.
    pub count: u8,
}

/// One recipient stanza: who can open the data key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recipient {
    /// The provider kind that made it ([`Provider::name`](hsm_core::Provider::name):
    /// `local`, `aws-kms`, …); `None` in format 1, which did not record it.
    pub provider: Option<String>,
    /// The protected data key, or for a threshold envelope the protected share.
    pub protection: Protection,
    /// For a threshold envelope: which share `protection` holds (`None`: the data key).
    pub share: Option<Share>,
}

impl Recipient {
    /// The key (name and version) that protects the data key.
    pub fn key(&self) -> Option<KeyRef> {
        match &self.protection {
            Protection::Wrapped(w) => Some(w.key_ref()),
            Protection::Encrypted(c) => Some(c.key_ref()),
            Protection::Unknown { .. } => None,
        }
    }

    /// The provider algorithm that protects the data key (`AES_GCM`, `RSAES_OAEP_SHA_256`, …).
    pub fn algorithm(&self) -> Option<&'static str> {
        match &self.protection {
            Protection::Wrapped(w) => Some(w.algorithm().as_str()),
            Protection::Encrypted(c) => Some(c.algorithm().as_str()),
            Protection::Unknown { .. } => None,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let (kind, blob) = match &self.protection {
            Protection::Wrapped(w) => (b'W', w.to_bytes()),
            Protection::Encrypted(c) => (b'C', c.to_bytes()),
            Protection::Unknown { .. } => return,
        };
        let name = self.provider.as_deref().unwrap_or_default().as_bytes();
        let share_len = if self.share.is_some() { 4 } else { 0 };
        let len = share_len + 1 + 1 + name.len() + 4 + blob.len();
        out.extend_from_slice(&(len as u32).to_be_bytes());
        if let Some(s) = self.share {
            out.extend_from_slice(&[b'S', s.index, s.threshold, s.count]);
        }
        out.push(kind);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        out.extend_from_slice(&blob);
    }

    fn decode(stanza: &[u8]) -> Result<Recipient> {
        let bad = || bad_format("a recipient stanza is malformed");
        let (share, stanza) = match stanza {
            [b'S', index, threshold, count, rest @ ..] => {
                let s = Share { index: *index, threshold: *threshold, count: *count };
                if s.threshold < 2 || s.count < s.threshold || s.index == 0 || s.index > s.count {
                    return Err(bad_format(format!(
                        "share {} of a {}-of-{} split is out of range",
                        s.index, s.threshold, s.count
                    )));
                }
                (Some(s), rest)
            }
            _ => (None, stanza),
        };
        let (&kind, rest) = stanza.split_first().ok_or_else(bad)?;
        let (&name_len, rest) = rest.split_first().ok_or_else(bad)?;
        let name_len = usize::from(name_len);
        if name_len > MAX_PROVIDER_NAME || rest.len() < name_len + 4 {
            return Err(bad());
        }
        let provider = std::str::from_utf8(&rest[..name_len]).map_err(|_| bad())?.to_owned();
        let rest = &rest[name_len..];
        let blob_len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let blob = &rest[4..];
        if blob_len != blob.len() {
            return Err(bad());
        }
        let protection = match kind {
            b'W' => Protection::Wrapped(WrappedKey::from_bytes(blob)?),
            b'C' => Protection::Encrypted(Ciphertext::from_bytes(blob)?),
            kind => Protection::Unknown { kind },
        };
        Ok(Recipient { provider: Some(provider), protection, share })
    }
}

/// A decoded envelope header: everything [`inspect`](crate::inspect) shows, read without
/// any provider call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// Format version ([`VERSION_1`] or [`VERSION_2`]).
    pub version: u8,
    /// The cipher suite.
    pub suite: Suite,
    /// The random message id (format 2).
    pub message_id: Option<[u8; MESSAGE_ID_LEN]>,
    /// Plaintext bytes per segment.
    pub segment_size: usize,
    /// The encryption context (empty in format 1).
    pub context: Context,
    /// Who can open the data key.
    pub recipients: Vec<Recipient>,
    /// The length of the header in bytes: the body starts here.
    pub len: usize,
    pub(crate) commitment: [u8; COMMITMENT_LEN],
    /// The bytes the segments authenticate: format 2, the header up to and including the
    /// commitment; format 1, the whole header.
    pub(crate) authenticated: Vec<u8>,
    pub(crate) nonce_prefix: [u8; PREFIX_LEN],
}

pub(crate) fn bad_format(message: impl Into<String>) -> Error {
    Error::invalid_input(PROVIDER, format!("envelope header: {}", message.into()))
}

/// Encodes the authenticated part of a format-2 header.
pub(crate) fn encode_v2_fixed(
    message_id: &[u8; MESSAGE_ID_LEN],
    segment_size: usize,
    context: &Context,
    commitment: &[u8; COMMITMENT_LEN],
) -> Result<Vec<u8>> {
    let ctx = context.encode()?;
    let mut out = Vec::with_capacity(42 + ctx.len() + COMMITMENT_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION_2);
    out.push(Suite::V2_DEFAULT_ID);
    out.extend_from_slice(message_id);
    out.extend_from_slice(&(segment_size as u32).to_be_bytes());
    out.extend_from_slice(&ctx);
    out.extend_from_slice(commitment);
    Ok(out)
}

/// The recipients section: `u16` count, then each stanza as `u32` length + bytes.
pub(crate) fn encode_recipients(recipients: &[Recipient]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + recipients.len() * 128);
    let known: Vec<&Recipient> =
        recipients.iter().filter(|r| !matches!(r.protection, Protection::Unknown { .. })).collect();
    out.extend_from_slice(&(known.len() as u16).to_be_bytes());
    for r in known {
        r.encode(&mut out);
    }
    out
}

/// Reads exactly `n` more bytes onto `raw`, or fails as a truncated header.
async fn take<R: AsyncRead + Unpin>(r: &mut R, raw: &mut Vec<u8>, n: usize) -> Result<()> {
    let start = raw.len();
    raw.resize(start + n, 0);
    match r.read_exact(&mut raw[start..]).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(bad_format("it is truncated")),
        Err(e) => Err(io_error("read", e)),
    }
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// Reads a header (format 1 or 2) from the start of `r`, consuming exactly its bytes.
///
/// `max_recipients` caps the recipients section before anything is allocated for it.
pub(crate) async fn read<R: AsyncRead + Unpin>(r: &mut R, max_recipients: usize) -> Result<Header> {
    let mut raw = Vec::with_capacity(256);
    match take(r, &mut raw, 6).await {
        Err(Error::InvalidInput { .. }) => return Err(not_an_envelope()),
        other => other?,
    }
    if &raw[..4] != MAGIC {
        return Err(not_an_envelope());
    }
    match raw[4] {
        VERSION_1 => read_v1(r, raw).await,
        VERSION_2 => read_v2(r, raw, max_recipients).await,
        v => Err(Error::invalid_input(
            PROVIDER,
            format!("envelope format version {v} is not supported by this hsm; upgrade hsm"),
        )),
    }
}

pub(crate) fn not_an_envelope() -> Error {
    Error::invalid_input(PROVIDER, "this is not an hsm envelope (bad magic bytes or too short)")
}

fn segment_size(n: usize) -> Result<usize> {
    if SEGMENT_SIZE_RANGE.contains(&n) {
        Ok(n)
    } else {
        Err(bad_format(format!("segment size {n} is out of range")))
    }
}

async fn read_v1<R: AsyncRead + Unpin>(r: &mut R, mut raw: Vec<u8>) -> Result<Header> {
    // magic, 1, kind, u32 blob length, blob, u32 segment size, 7-byte nonce prefix
    let kind = raw[5];
    take(r, &mut raw, 4).await?;
    let blob_len = be32(&raw[6..10]);
    if blob_len == 0 || blob_len > MAX_BLOB_LEN {
        return Err(bad_format(format!("data-key blob length {blob_len} is out of range")));
    }
    take(r, &mut raw, blob_len + 4 + PREFIX_LEN).await?;
    let blob = &raw[10..10 + blob_len];
    let protection = match kind {
        b'W' => Protection::Wrapped(WrappedKey::from_bytes(blob)?),
        b'C' => Protection::Encrypted(Ciphertext::from_bytes(blob)?),
        k => return Err(bad_format(format!("data-key protection {k:#04x} is unknown"))),
    };
    let seg = be32(&raw[10 + blob_len..]);
    // Format 1 always wrote 64 KiB segments but accepted up to 16 MiB.
    let segment_size = segment_size(seg)?;
    let mut nonce_prefix = [0u8; PREFIX_LEN];
    nonce_prefix.copy_from_slice(&raw[raw.len() - PREFIX_LEN..]);
    Ok(Header {
        version: VERSION_1,
        suite: Suite::V1Aes256Gcm,
        message_id: None,
        segment_size,
        context: Context::new(),
        recipients: vec![Recipient { provider: None, protection, share: None }],
        len: raw.len(),
        commitment: [0; COMMITMENT_LEN],
        authenticated: raw,
        nonce_prefix,
    })
}

async fn read_v2<R: AsyncRead + Unpin>(r: &mut R, mut raw: Vec<u8>, max_recipients: usize) -> Result<Header> {
    if raw[5] != Suite::V2_DEFAULT_ID {
        return Err(Error::invalid_input(
            PROVIDER,
            format!("envelope suite {:#04x} is not supported by this hsm; upgrade hsm", raw[5]),
        ));
    }
    take(r, &mut raw, MESSAGE_ID_LEN + 4 + 2).await?;
    let mut message_id = [0u8; MESSAGE_ID_LEN];
    message_id.copy_from_slice(&raw[6..38]);
    let segment_size = segment_size(be32(&raw[38..42]))?;
    // The context: read field by field, never more than MAX_CONTEXT_BYTES in all.
    let ctx_start = 42;
    let count = usize::from(u16::from_be_bytes([raw[42], raw[43]]));
    for _ in 0..count * 2 {
        take(r, &mut raw, 2).await?;
        let n = usize::from(u16::from_be_bytes([raw[raw.len() - 2], raw[raw.len() - 1]]));
        if raw.len() - ctx_start + n > MAX_CONTEXT_BYTES {
            return Err(bad_format("the encryption context is too long"));
        }
        take(r, &mut raw, n).await?;
    }
    let (context, _) = Context::decode(&raw[ctx_start..])?;
    take(r, &mut raw, COMMITMENT_LEN).await?;
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(&raw[raw.len() - COMMITMENT_LEN..]);
    let authenticated_len = raw.len();

    take(r, &mut raw, 2).await?;
    let count = usize::from(u16::from_be_bytes([raw[raw.len() - 2], raw[raw.len() - 1]]));
    if count == 0 {
        return Err(bad_format("it lists no recipients"));
    }
    if count > max_recipients {
        return Err(bad_format(format!(
            "it lists {count} recipients, more than the {max_recipients} allowed (raise the cap with Opener::max_recipients if this is expected)"
        )));
    }
    let mut recipients = Vec::with_capacity(count);
    for _ in 0..count {
        take(r, &mut raw, 4).await?;
        let n = be32(&raw[raw.len() - 4..]);
        if n == 0 || n > MAX_STANZA_LEN {
            return Err(bad_format(format!("a recipient stanza of {n} bytes is out of range")));
        }
        take(r, &mut raw, n).await?;
        recipients.push(Recipient::decode(&raw[raw.len() - n..])?);
    }
    let len = raw.len();
    raw.truncate(authenticated_len);
    Ok(Header {
        version: VERSION_2,
        suite: Suite::Aes256GcmHkdfSha512Committing,
        message_id: Some(message_id),
        segment_size,
        context,
        recipients,
        len,
        commitment,
        authenticated: raw,
        nonce_prefix: [0; PREFIX_LEN],
    })
}
