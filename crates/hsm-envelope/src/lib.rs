//! # Envelope encryption over any hsm provider
//!
//! A key-management service encrypts at most a few KiB per call. Envelope encryption makes a
//! fresh 256-bit data key per message, encrypts the data locally with AES-256-GCM in
//! segments, and stores the data key protected (wrapped or encrypted) by a provider key in
//! the header. Opening asks the provider once for the data key, whatever the data size.
//!
//! - **Streaming on every core.** [`Sealer::seal_stream`] and [`Opener::open_stream`] go from
//!   any `AsyncRead` to any `AsyncWrite`, a bounded number of 1 MiB batches of segments in
//!   flight on Tokio's blocking pool: memory stays at a few MiB for inputs of any size, and
//!   both cores of a two-core machine work.
//! - **Key-committing.** The header commits to the data key; opening checks the commitment
//!   in constant time before any segment, so no recipient stanza can open a message to
//!   another plaintext (the "invisible salamanders" attack on plain AES-GCM).
//! - **Recipients can change without touching the data.** Segments authenticate a hash of
//!   the header *without* its recipients section, so recipients can be added, removed or
//!   re-wrapped by rewriting the header alone.
//! - **Random access.** [`Opener::open_range`] decrypts only the segments a byte range needs.
//! - **Keyrings.** A [`Keyring`] protects one data key under several recipients (any mix of
//!   providers), seals with an all-or-[`min_recipients`](Keyring::min_recipients) policy and
//!   opens hedged (first answer wins); [`Keyring::threshold`] splits the data key k-of-n with
//!   Shamir's scheme across recipient groups. [`Rewrap`] adds, removes and re-protects
//!   recipients by rewriting the header alone, and a [`DataKeyCache`] lets many small
//!   messages share one provider call.
//! - **Every length is checked before it sizes an allocation**; malformed headers are
//!   [`Error::InvalidInput`], any cryptographic failure the opaque
//!   [`Error::DecryptionFailed`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> hsm_core::Result<()> {
//! use hsm_core::{CreateKey, KeyRef, KeySpec, KeyUsage, Provider};
//! use hsm_envelope::{Context, Opener, Sealer};
//!
//! let p = hsm_local::LocalProvider::in_memory();
//! p.create_key(CreateKey::new("backups", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await?;
//! let ctx = Context::new().with("disk", "42");
//! let big = vec![7u8; 1 << 20];
//! let sealed = Sealer::new().context(ctx.clone()).seal(&p, &KeyRef::new("backups"), &big).await?;
//!
//! let header = hsm_envelope::inspect_bytes(&sealed)?; // no provider call
//! assert_eq!(header.context, ctx);
//!
//! let opened = Opener::new().expect_context(ctx).open(&p, &sealed).await?;
//! assert_eq!(&opened[..], &big[..]);
//! # Ok(()) }
//! ```
//!
//! # Format (version 2)
//!
//! All integers are big-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `hsmE` |
//! | 1 | format version `02` |
//! | 1 | suite `01`: AES-256-GCM STREAM, HKDF-SHA-512, key-committing |
//! | 32 | message id, random |
//! | 4 | plaintext bytes per segment, 1 KiB ..= 16 MiB (default 64 KiB) |
//! | 2 + … | encryption context: `u16` count, then per pair in strictly ascending key order `u16` key length, key, `u16` value length, value (UTF-8, at most 8 KiB in all) |
//! | 32 | key commitment |
//! | 2 | recipient count, 1 ..= the opener's cap (default 16) |
//! | … | per recipient: `u32` stanza length, then the stanza |
//! | … | segments |
//!
//! A stanza is: 1 byte kind (`W`: the data key wrapped with `wrap_key`, `C`: encrypted with
//! `encrypt`), 1 byte provider-name length and the name ([`Provider::name`](hsm_core::Provider::name),
//! e.g. `aws-kms`), `u32` blob length and the hsm-core blob ([`WrappedKey`](hsm_core::WrappedKey)
//! or [`Ciphertext`](hsm_core::Ciphertext) bytes, which name the key, key version and
//! algorithm). Stanzas of an unknown kind are skipped, so later formats can add kinds.
//!
//! A **threshold** stanza ([`Keyring::threshold`]) starts with `S`, the share's index
//! (1 ..= count, its x coordinate), the threshold k (≥ 2) and the share count, followed by
//! an ordinary `W`/`C` stanza whose protected secret is the share's 32 bytes. The shares
//! are Shamir's scheme over GF(2⁸) applied bytewise to the data key (`vsss-rs`, constant
//! time); any k distinct indexes give back the data key, which the commitment then checks.
//! hsm versions without threshold support skip these stanzas and say they cannot open it.
//!
//! **Key schedule.** `PRK = HKDF-Extract(SHA-512, salt = message id, IKM = data key)`; the
//! payload key is `HKDF-Expand(PRK, "hsm envelope v2" ‖ 01 ‖ "payload key", 32)`, the
//! commitment `HKDF-Expand(PRK, "hsm envelope v2" ‖ 01 ‖ "commitment", 32)`. SHA-512 as in
//! the AWS Encryption SDK's committing suites, whose construction is analysed in the
//! literature; a fresh message id gives every message its own payload key even when a data
//! key is reused (a data-key cache).
//!
//! **Segments** are STREAM (Hoang, Reyhanitabar, Rogaway, Vizár): segment `i` is AES-256-GCM
//! under the payload key with nonce `00×7 ‖ i (u32) ‖ last (00 or 01)` and AAD
//! `SHA-256(header up to and including the commitment)`. Every segment holds a full segment
//! of plaintext but the last, which holds 0 ..= segment bytes; each carries a 16-byte tag.
//! Segments cannot be reordered, dropped, duplicated, truncated or moved to another message.
//!
//! **The provider** receives the encoded context as AAD when it encrypts the data key with
//! AES-GCM (AWS KMS: the encryption context `hsm:aad`; Cloud KMS, Managed HSM, PKCS#11,
//! local: GCM AAD), so a data key cannot be decrypted for another context. RSA-OAEP and key
//! wrapping take no AAD; there the context is bound by the commitment and segment AAD only.
//!
//! # Format (version 1, read only)
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `hsmE` |
//! | 1 | format version `01` |
//! | 1 | `W` (a `WrappedKey`) or `C` (a `Ciphertext`) |
//! | 4 + n | blob length, blob |
//! | 4 | plaintext bytes per segment (65 536) |
//! | 7 | random nonce prefix |
//! | … | segments: AES-256-GCM under the data key, nonce `prefix ‖ i ‖ last`, AAD = header ‖ caller's AAD |

mod cache;
mod context;
#[cfg(unix)]
mod file;
mod header;
mod keyring;
mod open;
mod pipeline;
mod rewrap;
mod schedule;
mod seal;
mod shamir;
mod window;

use hsm_core::{Error, Result};
use tokio::io::AsyncRead;

pub use cache::{CacheStats, DataKeyCache};
pub use context::{Context, MAX_CONTEXT_BYTES};
pub use header::{
    DEFAULT_MAX_RECIPIENTS, Header, Protection, Recipient, SEGMENT_SIZE_RANGE, Share, Suite, VERSION_1,
    VERSION_2,
};
pub use keyring::{
    DEFAULT_HEDGE_DELAY, DEFAULT_RECIPIENT_TIMEOUT, DataKeyFuture, Keyring, Member, RecipientErrors,
    RecipientFailure, Unlock,
};
pub use open::Opener;
pub use rewrap::{Rewrap, RewrapReport};
pub use seal::{SealReport, Sealer};

/// Default plaintext bytes per segment.
pub const SEGMENT_LEN: usize = 64 * 1024;
const PROVIDER: &str = "hsm";

pub(crate) fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::Provider {
        provider: PROVIDER,
        code: "io".to_owned(),
        message: format!("envelope {what}: {e}"),
        source: Some(Box::new(e)),
    }
}

pub(crate) fn opaque() -> Error {
    Error::DecryptionFailed { provider: PROVIDER }
}

/// True when `bytes` starts like an envelope (magic and a known format version), so callers
/// can tell envelopes from single-call ciphertexts.
pub fn is_envelope(bytes: &[u8]) -> bool {
    bytes.len() >= 5 && &bytes[..4] == header::MAGIC && matches!(bytes[4], VERSION_1 | VERSION_2)
}

/// Reads an envelope's header from `reader` (consuming exactly the header) without any
/// provider call: version, suite, segment size, context and recipients.
///
/// # Errors
/// `InvalidInput` for something that is not a well-formed envelope header, or one that
/// lists more than [`DEFAULT_MAX_RECIPIENTS`]; `Provider { code: "io" }` for read failures.
pub async fn inspect<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Header> {
    header::read(reader, DEFAULT_MAX_RECIPIENTS).await
}

/// [`inspect`] over bytes in memory.
///
/// # Errors
/// As [`inspect`].
pub fn inspect_bytes(sealed: &[u8]) -> Result<Header> {
    let mut input = sealed;
    // Reading from a slice never waits, so the future completes on its first poll.
    let mut fut = std::pin::pin!(inspect(&mut input));
    match fut.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Err(header::not_an_envelope()),
    }
}

/// Seals `plaintext` under `key` with `context`; see [`Sealer`].
///
/// # Errors
/// As [`Sealer::seal`].
pub async fn seal(
    provider: &(impl hsm_core::Provider + ?Sized),
    key: &hsm_core::KeyRef,
    plaintext: &[u8],
    context: &Context,
) -> Result<Vec<u8>> {
    Sealer::new().context(context.clone()).seal(provider, key, plaintext).await
}

/// Opens an envelope in memory, requiring every pair of `expected` in its context; see
/// [`Opener`].
///
/// # Errors
/// As [`Opener::open`].
pub async fn open(
    provider: &(impl hsm_core::Provider + ?Sized),
    sealed: &[u8],
    expected: &Context,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    Opener::new().expect_context(expected.clone()).open(provider, sealed).await
}

use std::future::Future as _;
