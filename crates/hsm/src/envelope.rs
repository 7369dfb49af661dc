//! Envelope encryption: data of any size, encrypted locally under a fresh data key that
//! the provider protects.
//!
//! A key-management service encrypts at most a few KiB per call (AWS KMS: 4 KiB, RSA-OAEP:
//! under 512 bytes). Envelope encryption generates a random 256-bit data key, encrypts the
//! data locally with AES-256-GCM in 64 KiB segments, and stores the data key wrapped (or
//! encrypted) by the provider key in a header. Decryption asks the provider once for the
//! data key, whatever the data size, and streams: memory stays bounded by one segment.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> hsm::Result<()> {
//! use hsm::{CreateKey, KeyRef, KeySpec, KeyUsage, Provider, envelope};
//! let p = hsm::local::LocalProvider::in_memory();
//! p.create_key(CreateKey::new("backups", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await?;
//! let big = vec![7u8; 1 << 20];
//! let sealed = envelope::seal(&p, &KeyRef::new("backups"), &big, Some(b"disk-42")).await?;
//! let opened = envelope::open(&p, &sealed, Some(b"disk-42")).await?;
//! assert_eq!(&opened[..], &big[..]);
//! # Ok(()) }
//! ```
//!
//! # Format (version 1)
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `hsmE` |
//! | 1 | format version `01` |
//! | 1 | how the data key is protected: `W` = a [`WrappedKey`] (wrap usage), `C` = a [`Ciphertext`] (encrypt usage) |
//! | 4 + n | length, then that blob's own encoding (it names the key, version and algorithm) |
//! | 4 | plaintext bytes per segment (65 536) |
//! | 7 | random nonce prefix |
//! | … | segments: AES-256-GCM ciphertext ‖ 16-byte tag |
//!
//! Segment `i` uses nonce `prefix ‖ i (u32, big-endian) ‖ last (00 or 01)` and authenticates
//! the whole header followed by the caller's AAD (the STREAM construction of Hoang et al.),
//! so segments cannot be reordered, dropped, truncated or moved to another envelope, and
//! the header cannot be altered. Every segment is authenticated before any of its plaintext
//! is released; a stream that ends early fails with [`Error::DecryptionFailed`].

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::{Ciphertext, Error, KeyRef, KeyUsage, Provider, ProviderExt, Result, WrappedKey};

const MAGIC: &[u8; 4] = b"hsmE";
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const PREFIX_LEN: usize = 7;
/// Plaintext bytes per segment.
pub const SEGMENT_LEN: usize = 64 * 1024;
const MAX_SEGMENT_LEN: usize = 16 * 1024 * 1024;
const MAX_KEY_BLOB_LEN: usize = 64 * 1024;
const PROVIDER: &str = "hsm";

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::Provider {
        provider: PROVIDER,
        code: "io".to_owned(),
        message: format!("envelope {what}: {e}"),
        source: Some(Box::new(e)),
    }
}

fn bad_format(message: impl Into<String>) -> Error {
    Error::invalid_input(PROVIDER, message)
}

fn opaque() -> Error {
    Error::DecryptionFailed { provider: PROVIDER }
}

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn segment_aad(header: &[u8], aad: Option<&[u8]>) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + aad.map_or(0, <[u8]>::len));
    a.extend_from_slice(header);
    a.extend_from_slice(aad.unwrap_or_default());
    a
}

fn data_key(bytes: &[u8]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| bad_format("the envelope's data key is not a 256-bit AES key"))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("read", e)),
        }
    }
    Ok(n)
}

/// Encrypts everything `reader` yields into `writer` under a fresh data key protected by
/// `key`, which must have usage wrap (the data key is wrapped with the key's natural wrap
/// algorithm) or encrypt (it is encrypted). Returns the number of plaintext bytes.
///
/// # Errors
/// `InvalidInput` for a key that neither wraps nor encrypts; the provider's errors for the
/// data-key operation; `Provider { code: "io" }` for I/O failures.
pub async fn seal_stream<R, W>(
    provider: &(impl Provider + ?Sized),
    key: &KeyRef,
    reader: &mut R,
    writer: &mut W,
    aad: Option<&[u8]>,
) -> Result<u64>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let info = provider.get_key(key).await?;
    let mut dk = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut dk[..]).map_err(|_| Error::Unavailable {
        provider: PROVIDER,
        message: "the system random number generator failed".to_owned(),
        retry_after: None,
    })?;
    let (kind, blob) = match info.usage {
        KeyUsage::WrapUnwrap => {
            let alg = info.spec.default_wrap_algorithm().ok_or_else(|| bad_format("key cannot wrap"))?;
            (b'W', provider.wrap_key(key, alg, &dk[..]).await?.to_bytes())
        }
        KeyUsage::EncryptDecrypt => {
            let alg =
                info.spec.default_encryption_algorithm().ok_or_else(|| bad_format("key cannot encrypt"))?;
            (b'C', provider.encrypt(key, alg, &dk[..], None).await?.to_bytes())
        }
        other => {
            return Err(bad_format(format!(
                "envelope encryption needs a key with usage 'wrap' or 'encrypt'; '{}' has usage '{other}'",
                info.name
            )));
        }
    };
    let mut prefix = [0u8; PREFIX_LEN];
    aws_lc_rs::rand::fill(&mut prefix).map_err(|_| opaque())?;

    let mut header = Vec::with_capacity(4 + 2 + 4 + blob.len() + 4 + PREFIX_LEN);
    header.extend_from_slice(MAGIC);
    header.push(VERSION);
    header.push(kind);
    header.extend_from_slice(&(blob.len() as u32).to_be_bytes());
    header.extend_from_slice(&blob);
    header.extend_from_slice(&(SEGMENT_LEN as u32).to_be_bytes());
    header.extend_from_slice(&prefix);
    writer.write_all(&header).await.map_err(|e| io_error("write", e))?;

    let sealing = data_key(&dk[..])?;
    let seg_aad = segment_aad(&header, aad);
    let mut cur = Zeroizing::new(vec![0u8; SEGMENT_LEN + TAG_LEN]);
    let mut next = Zeroizing::new(vec![0u8; SEGMENT_LEN + TAG_LEN]);
    let mut cur_len = read_full(reader, &mut cur[..SEGMENT_LEN]).await?;
    let mut total = 0u64;
    let mut counter = 0u32;
    loop {
        // Look ahead one segment to know whether this one is the last.
        let next_len =
            if cur_len == SEGMENT_LEN { read_full(reader, &mut next[..SEGMENT_LEN]).await? } else { 0 };
        let last = next_len == 0;
        let mut seg = cur[..cur_len].to_vec();
        sealing
            .seal_in_place_append_tag(nonce(&prefix, counter, last), Aad::from(&seg_aad[..]), &mut seg)
            .map_err(|_| opaque())?;
        writer.write_all(&seg).await.map_err(|e| io_error("write", e))?;
        total += cur_len as u64;
        if last {
            break;
        }
        counter = counter
            .checked_add(1)
            .ok_or_else(|| bad_format("input too large for one envelope (over 256 TiB)"))?;
        std::mem::swap(&mut cur, &mut next);
        cur_len = next_len;
    }
    writer.flush().await.map_err(|e| io_error("write", e))?;
    Ok(total)
}

/// Decrypts an envelope from `reader` into `writer`, asking the provider once for the data
/// key. Only authenticated plaintext is written, one segment at a time; on error the
/// caller must discard what was written so far (the CLI writes to a temporary file).
///
/// # Errors
/// `InvalidInput` for something that is not an envelope; `DecryptionFailed` (opaque) for a
/// tampered, truncated or reordered envelope or the wrong AAD; the provider's errors for
/// the data key.
pub async fn open_stream<R, W>(
    provider: &(impl Provider + ?Sized),
    reader: &mut R,
    writer: &mut W,
    aad: Option<&[u8]>,
) -> Result<u64>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut fixed = [0u8; 10];
    if read_full(reader, &mut fixed).await? < fixed.len() || &fixed[..4] != MAGIC {
        return Err(bad_format("this is not an hsm envelope (bad magic bytes or too short)"));
    }
    if fixed[4] != VERSION {
        return Err(bad_format(format!(
            "envelope format version {} is not supported; upgrade hsm",
            fixed[4]
        )));
    }
    let kind = fixed[5];
    let blob_len = u32::from_be_bytes([fixed[6], fixed[7], fixed[8], fixed[9]]) as usize;
    if blob_len == 0 || blob_len > MAX_KEY_BLOB_LEN {
        return Err(bad_format(format!("envelope data-key blob length {blob_len} is out of range")));
    }
    let mut rest = vec![0u8; blob_len + 4 + PREFIX_LEN];
    if read_full(reader, &mut rest).await? < rest.len() {
        return Err(bad_format("envelope header is truncated"));
    }
    let blob = &rest[..blob_len];
    let seg_len =
        u32::from_be_bytes([rest[blob_len], rest[blob_len + 1], rest[blob_len + 2], rest[blob_len + 3]])
            as usize;
    if seg_len == 0 || seg_len > MAX_SEGMENT_LEN {
        return Err(bad_format(format!("envelope segment length {seg_len} is out of range")));
    }
    let mut prefix = [0u8; PREFIX_LEN];
    prefix.copy_from_slice(&rest[blob_len + 4..]);

    let dk = match kind {
        b'W' => provider.unwrap_blob(&WrappedKey::from_bytes(blob)?).await?,
        b'C' => provider.decrypt_blob(&Ciphertext::from_bytes(blob)?, None).await?,
        k => return Err(bad_format(format!("envelope data-key protection {k:#04x} is unknown"))),
    };
    let opening = data_key(&dk)?;
    drop(dk);

    let mut header = fixed.to_vec();
    header.extend_from_slice(&rest);
    let seg_aad = segment_aad(&header, aad);

    let full = seg_len + TAG_LEN;
    let mut cur = Zeroizing::new(vec![0u8; full]);
    let mut next = Zeroizing::new(vec![0u8; full]);
    let mut cur_len = read_full(reader, &mut cur).await?;
    let mut total = 0u64;
    let mut counter = 0u32;
    loop {
        if cur_len < TAG_LEN {
            return Err(opaque());
        }
        let next_len = if cur_len == full { read_full(reader, &mut next).await? } else { 0 };
        let last = next_len == 0;
        let plain = opening
            .open_in_place(nonce(&prefix, counter, last), Aad::from(&seg_aad[..]), &mut cur[..cur_len])
            .map_err(|_| opaque())?;
        writer.write_all(plain).await.map_err(|e| io_error("write", e))?;
        total += plain.len() as u64;
        if last {
            break;
        }
        counter = counter.checked_add(1).ok_or_else(opaque)?;
        std::mem::swap(&mut cur, &mut next);
        cur_len = next_len;
    }
    writer.flush().await.map_err(|e| io_error("write", e))?;
    Ok(total)
}

/// True when `bytes` starts like an envelope (magic and format version), so callers can
/// tell envelopes from single-call ciphertexts.
pub fn is_envelope(bytes: &[u8]) -> bool {
    bytes.len() >= 5 && &bytes[..4] == MAGIC && bytes[4] == VERSION
}

/// The provider key (name and version) that protects an envelope's data key, read from
/// its header without any provider call.
///
/// # Errors
/// `InvalidInput` when `sealed` does not start with a well-formed envelope header.
pub fn protected_by(sealed: &[u8]) -> Result<KeyRef> {
    if !is_envelope(sealed) || sealed.len() < 10 {
        return Err(bad_format("this is not an hsm envelope (bad magic bytes or too short)"));
    }
    let blob_len = u32::from_be_bytes([sealed[6], sealed[7], sealed[8], sealed[9]]) as usize;
    let blob = sealed.get(10..10 + blob_len).ok_or_else(|| bad_format("envelope header is truncated"))?;
    match sealed[5] {
        b'W' => Ok(WrappedKey::from_bytes(blob)?.key_ref()),
        b'C' => Ok(Ciphertext::from_bytes(blob)?.key_ref()),
        k => Err(bad_format(format!("envelope data-key protection {k:#04x} is unknown"))),
    }
}

/// Encrypts `plaintext` in memory; see [`seal_stream`].
///
/// # Errors
/// As [`seal_stream`].
pub async fn seal(
    provider: &(impl Provider + ?Sized),
    key: &KeyRef,
    plaintext: &[u8],
    aad: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + plaintext.len() / SEGMENT_LEN * TAG_LEN + 1024);
    let mut input = plaintext;
    seal_stream(provider, key, &mut input, &mut out, aad).await?;
    Ok(out)
}

/// Decrypts an envelope in memory; see [`open_stream`].
///
/// # Errors
/// As [`open_stream`].
pub async fn open(
    provider: &(impl Provider + ?Sized),
    sealed: &[u8],
    aad: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(sealed.len()));
    let mut input = sealed;
    open_stream(provider, &mut input, &mut *out, aad).await?;
    Ok(out)
}
