//! Sealing: a fresh data key, protected by the provider key, encrypts the segments.

use hsm_core::{EncryptionAlgorithm, Error, KeyRef, KeyUsage, Provider, Result};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::cache::{DataKeyCache, Made};
use crate::context::Context;
use crate::header::{self, MESSAGE_ID_LEN, Protection, Recipient, SEGMENT_SIZE_RANGE};
use crate::keyring::{Keyring, RecipientFailure};
use crate::pipeline::{self, Direction, Plan, Progress, Span};
use crate::schedule::{self, DATA_KEY_LEN, SegmentCipher, TAG_LEN};
use crate::{PROVIDER, SEGMENT_LEN, io_error};

/// Seals data into format-2 envelopes.
///
/// ```
/// # #[tokio::main] async fn main() -> hsm_core::Result<()> {
/// use hsm_core::{CreateKey, KeyRef, KeySpec, Provider};
/// use hsm_envelope::{Context, Sealer};
/// let p = hsm_local::LocalProvider::in_memory();
/// p.create_key(CreateKey::new("k", KeySpec::Aes256)).await?;
/// let mut input: &[u8] = b"stream me";
/// let mut out = Vec::new();
/// let n = Sealer::new()
///     .context(Context::new().with("tenant", "acme"))
///     .seal_stream(&p, &KeyRef::new("k"), &mut input, &mut out)
///     .await?;
/// assert_eq!(n, 9);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Sealer {
    context: Context,
    segment_size: usize,
    concurrency: usize,
    progress: Progress,
    cache: Option<DataKeyCache>,
}

/// What a keyring seal did: the plaintext bytes, the stanzas in the header, and the
/// recipients that failed (allowed by [`Keyring::min_recipients`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct SealReport {
    /// Plaintext bytes sealed.
    pub plaintext_len: u64,
    /// The recipient stanzas written to the header.
    pub recipients: Vec<Recipient>,
    /// The recipients that could not protect the data key, each with its error.
    pub failed: Vec<RecipientFailure>,
}

/// Where a seal's data key goes: one provider key, or a keyring.
enum Target<'a, P: ?Sized> {
    One(&'a P, &'a KeyRef),
    Ring(&'a Keyring),
}

impl Default for Sealer {
    fn default() -> Self {
        Sealer {
            context: Context::new(),
            segment_size: SEGMENT_LEN,
            concurrency: default_concurrency(),
            progress: Progress::default(),
            cache: None,
        }
    }
}

pub(crate) fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Sealer {
    /// Default settings: no context, 64 KiB segments, one batch in flight per core.
    pub fn new() -> Self {
        Sealer::default()
    }

    /// The encryption context to store, authenticate and hand to the provider.
    #[must_use]
    pub fn context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Plaintext bytes per segment, within [`SEGMENT_SIZE_RANGE`] (checked when sealing).
    /// Smaller segments make [`Opener::open_range`](crate::Opener::open_range) read less;
    /// the default 64 KiB costs 0.02 % in tags.
    #[must_use]
    pub fn segment_size(mut self, bytes: usize) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Calls `f` with the number of plaintext bytes each time a batch of segments is done
    /// (about every MiB), from whichever thread did it: for progress bars.
    #[must_use]
    pub fn on_progress(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.progress = Progress(Some(std::sync::Arc::new(f)));
        self
    }

    /// How many batches of segments are encrypted at once on Tokio's blocking pool (default:
    /// the number of cores; 0 encrypts on the calling task).
    #[must_use]
    pub fn concurrency(mut self, batches: usize) -> Self {
        self.concurrency = batches;
        self
    }

    /// Reuses data keys from `cache` for keyring seals of known length ([`seal_to`](Sealer::seal_to),
    /// [`seal_file_to`](Sealer::seal_file_to)); see [`DataKeyCache`].
    #[must_use]
    pub fn cache(mut self, cache: DataKeyCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The counters of the data-key cache, when one is set.
    pub fn cache_stats(&self) -> Option<crate::CacheStats> {
        self.cache.as_ref().map(DataKeyCache::stats)
    }

    /// Encrypts everything `reader` yields into `writer` under a fresh data key protected by
    /// `key`, which must have usage wrap (the data key is wrapped with the key's natural wrap
    /// algorithm) or encrypt (it is encrypted). Returns the number of plaintext bytes.
    /// Memory stays bounded whatever the input size.
    ///
    /// # Errors
    /// `InvalidInput` for a segment size out of range, a context that is too large, or a key
    /// that neither wraps nor encrypts (all before any data is read); the provider's errors
    /// for the key and the data-key operation; `Provider { code: "io" }` for I/O failures.
    pub async fn seal_stream<R, W>(
        &self,
        provider: &(impl Provider + ?Sized),
        key: &KeyRef,
        reader: &mut R,
        writer: &mut W,
    ) -> Result<u64>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.stream(Target::One(provider, key), None, reader, writer).await.map(|(n, _)| n)
    }

    /// The header, then the segments of everything `reader` yields.
    async fn stream<P, R, W>(
        &self,
        target: Target<'_, P>,
        len: Option<u64>,
        reader: &mut R,
        writer: &mut W,
    ) -> Result<(u64, Made)>
    where
        P: Provider + ?Sized,
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let (head, cipher, made) = self.begin(target, len).await?;
        writer.write_all(&head).await.map_err(|e| io_error("write", e))?;
        let n = pipeline::run(reader, writer, cipher, self.plan(), Direction::Seal, Span::WHOLE).await?;
        Ok((n, made))
    }

    /// [`seal_stream`](Sealer::seal_stream) for every recipient of `keyring` (or a k-of-n
    /// split across its groups); see [`Keyring`]. The data-key cache is not used: the
    /// length is unknown up front.
    ///
    /// # Errors
    /// As [`seal_stream`](Sealer::seal_stream); `InvalidInput` for a keyring without
    /// recipients or with a policy out of range; `Provider { code: "recipients" }` (or
    /// `"threshold"`) when too few recipients protected the data key, listing each error
    /// (the source is a [`RecipientErrors`](crate::RecipientErrors)); with one recipient,
    /// its own error.
    pub async fn seal_stream_to<R, W>(
        &self,
        keyring: &Keyring,
        reader: &mut R,
        writer: &mut W,
    ) -> Result<SealReport>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let (n, made) = self.stream(Target::<dyn Provider>::Ring(keyring), None, reader, writer).await?;
        Ok(SealReport { plaintext_len: n, recipients: made.recipients, failed: made.failed })
    }

    /// [`seal`](Sealer::seal) for a [`Keyring`], with the data-key cache when one is set.
    ///
    /// # Errors
    /// As [`seal_stream_to`](Sealer::seal_stream_to).
    pub async fn seal_to(&self, keyring: &Keyring, plaintext: &[u8]) -> Result<(Vec<u8>, SealReport)> {
        let mut out = Vec::with_capacity(self.sealed_len(plaintext.len()));
        let mut input = plaintext;
        let target = Target::<dyn Provider>::Ring(keyring);
        let (n, made) = self.stream(target, Some(plaintext.len() as u64), &mut input, &mut out).await?;
        Ok((out, SealReport { plaintext_len: n, recipients: made.recipients, failed: made.failed }))
    }

    /// Room for a sealed message of `len` plaintext bytes (the header is about 1 KiB at most
    /// for a few recipients; a larger one just reallocates once).
    fn sealed_len(&self, len: usize) -> usize {
        let segments = len / self.segment_size.max(1) + 1;
        len + segments * TAG_LEN + 1024
    }

    /// [`seal_file`](Sealer::seal_file) for a [`Keyring`], with the data-key cache when one
    /// is set.
    ///
    /// # Errors
    /// As [`seal_file`](Sealer::seal_file) and [`seal_stream_to`](Sealer::seal_stream_to).
    pub async fn seal_file_to(
        &self,
        keyring: &Keyring,
        input: &std::fs::File,
        output: &std::fs::File,
    ) -> Result<SealReport> {
        let size = regular_len(input)?;
        let made = self.file(Target::<dyn Provider>::Ring(keyring), input, output, size).await?;
        Ok(SealReport { plaintext_len: size, recipients: made.recipients, failed: made.failed })
    }

    /// Checks the settings, protects a data key (fresh, or from the cache for a keyring seal
    /// of `len` bytes), and returns the header bytes, the segment cipher and the stanzas.
    async fn begin<P: Provider + ?Sized>(
        &self,
        target: Target<'_, P>,
        len: Option<u64>,
    ) -> Result<(Vec<u8>, SegmentCipher, Made)> {
        if !SEGMENT_SIZE_RANGE.contains(&self.segment_size) {
            return Err(Error::invalid_input(
                PROVIDER,
                format!(
                    "segment size {} is out of range; choose {} ..= {} bytes",
                    self.segment_size,
                    SEGMENT_SIZE_RANGE.start(),
                    SEGMENT_SIZE_RANGE.end()
                ),
            ));
        }
        let context_aad = self.context.encode()?;
        let made = match target {
            Target::One(provider, key) => {
                let data_key = random::<DATA_KEY_LEN>()?;
                let recipient = protect(provider, key, &data_key[..], &self.context, &context_aad).await?;
                Made { data_key, recipients: vec![recipient], failed: Vec::new() }
            }
            Target::Ring(keyring) => {
                keyring.check()?;
                let make = || async {
                    let data_key = random::<DATA_KEY_LEN>()?;
                    let (recipients, failed) =
                        keyring.protect(&data_key, &self.context, &context_aad).await?;
                    Ok(Made { data_key, recipients, failed })
                };
                match (&self.cache, len) {
                    (Some(cache), Some(len)) => {
                        let partition = DataKeyCache::partition(keyring.id(), &context_aad);
                        cache.encrypting(partition, len, make).await?
                    }
                    _ => make().await?,
                }
            }
        };
        let message_id = random::<MESSAGE_ID_LEN>()?;
        let commitment = schedule::commitment(&made.data_key[..], &message_id)?;
        let fixed = header::encode_v2_fixed(&message_id, self.segment_size, &self.context, &commitment)?;
        let cipher = SegmentCipher::v2(&made.data_key[..], &message_id, &fixed)?;
        let mut head = fixed;
        head.extend_from_slice(&header::encode_recipients(&made.recipients));
        Ok((head, cipher, made))
    }

    /// Encrypts the regular file `input` into `output` (replacing its contents), with
    /// positional reads and writes on every core: reading and writing run in parallel with
    /// encryption, which on tmpfs doubles the speed of a stream. Returns the plaintext bytes.
    ///
    /// # Errors
    /// As [`seal_stream`](Sealer::seal_stream); `InvalidInput` when `input` is not a
    /// regular file or changes size while it is read.
    pub async fn seal_file(
        &self,
        provider: &(impl Provider + ?Sized),
        key: &KeyRef,
        input: &std::fs::File,
        output: &std::fs::File,
    ) -> Result<u64> {
        let size = regular_len(input)?;
        self.file(Target::One(provider, key), input, output, size).await?;
        Ok(size)
    }

    async fn file<P: Provider + ?Sized>(
        &self,
        target: Target<'_, P>,
        input: &std::fs::File,
        output: &std::fs::File,
        size: u64,
    ) -> Result<Made> {
        let (head, cipher, made) = self.begin(target, Some(size)).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt as _;
            output.write_all_at(&head, 0).map_err(|e| io_error("write", e))?;
            let layout = pipeline::Layout::for_plaintext(self.segment_size as u64, size, head.len() as u64);
            let (i, o) = (clone(input)?, clone(output)?);
            crate::file::run(i, o, cipher, layout, Direction::Seal, &self.plan()).await?;
            let total = head.len() as u64 + layout.segments * TAG_LEN as u64 + size;
            output.set_len(total).map_err(|e| io_error("write", e))?;
        }
        #[cfg(not(unix))]
        {
            let mut r = tokio::fs::File::from_std(input.try_clone().map_err(|e| io_error("read", e))?);
            let mut w = tokio::fs::File::from_std(output.try_clone().map_err(|e| io_error("write", e))?);
            w.write_all(&head).await.map_err(|e| io_error("write", e))?;
            let plan = self.plan();
            pipeline::run(&mut r, &mut w, cipher, plan, Direction::Seal, Span::WHOLE).await?;
        }
        if regular_len(input)? != size {
            return Err(Error::invalid_input(
                PROVIDER,
                "the input file changed size while it was encrypted; encrypt a copy",
            ));
        }
        Ok(made)
    }

    fn plan(&self) -> Plan {
        Plan { segment: self.segment_size, concurrency: self.concurrency, progress: self.progress.clone() }
    }

    /// Encrypts `plaintext` in memory; see [`seal_stream`](Sealer::seal_stream).
    ///
    /// # Errors
    /// As [`seal_stream`](Sealer::seal_stream).
    pub async fn seal(
        &self,
        provider: &(impl Provider + ?Sized),
        key: &KeyRef,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.sealed_len(plaintext.len()));
        let mut input = plaintext;
        self.seal_stream(provider, key, &mut input, &mut out).await?;
        Ok(out)
    }
}

/// The length of a regular file.
pub(crate) fn regular_len(f: &std::fs::File) -> Result<u64> {
    let meta = f.metadata().map_err(|e| io_error("read", e))?;
    if !meta.is_file() {
        return Err(Error::invalid_input(
            PROVIDER,
            "not a regular file; use the stream functions for pipes and devices",
        ));
    }
    Ok(meta.len())
}

#[cfg(unix)]
pub(crate) fn clone(f: &std::fs::File) -> Result<std::sync::Arc<std::fs::File>> {
    f.try_clone().map(std::sync::Arc::new).map_err(|e| io_error("read", e))
}

/// Fills a fresh secret-holding buffer from the system's random number generator.
pub(crate) fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut b = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(&mut b[..]).map_err(|_| Error::Unavailable {
        provider: PROVIDER,
        message: "the system random number generator failed".to_owned(),
        retry_after: None,
    })?;
    Ok(b)
}

/// The AAD handed to the provider with the data key: the encoded context when there is one
/// and the algorithm takes AAD.
pub(crate) fn provider_aad<'a>(
    alg: EncryptionAlgorithm,
    context: &Context,
    encoded: &'a [u8],
) -> Option<&'a [u8]> {
    (alg == EncryptionAlgorithm::AesGcm && !context.is_empty()).then_some(encoded)
}

/// The algorithm that protects a data key: the spec's default when the provider declares
/// it (or declares nothing for the spec), else the first declared one that fits (Cloud KMS
/// fixes one algorithm per key, which a provider configuration may set to another).
pub(crate) fn choose<A: Copy + PartialEq>(
    default: Option<A>,
    declared: Option<&[A]>,
    fits: impl Fn(A) -> bool,
) -> Option<A> {
    match declared {
        Some(list) if !list.is_empty() => {
            default.filter(|d| list.contains(d)).or_else(|| list.iter().copied().find(|a| fits(*a)))
        }
        _ => default,
    }
}

/// Protects `data_key` under `key`: wrapped for a wrap key, encrypted for an encrypt key.
pub(crate) async fn protect(
    provider: &(impl Provider + ?Sized),
    key: &KeyRef,
    data_key: &[u8],
    context: &Context,
    context_aad: &[u8],
) -> Result<Recipient> {
    let info = provider.get_key(key).await?;
    let cannot = |what: &str| {
        Error::invalid_input(
            PROVIDER,
            format!(
                "envelope encryption needs a key that can {what}; '{}' ({}) cannot",
                info.name, info.spec
            ),
        )
    };
    let declared = provider.capabilities().spec(info.spec);
    let protection = match info.usage {
        KeyUsage::WrapUnwrap => {
            let alg = choose(info.spec.default_wrap_algorithm(), declared.map(|d| &d.wrap[..]), |a| {
                a.fits(info.spec)
            })
            .ok_or_else(|| cannot("wrap"))?;
            Protection::Wrapped(provider.wrap_key(key, alg, data_key).await?)
        }
        KeyUsage::EncryptDecrypt => {
            let alg = choose(
                info.spec.default_encryption_algorithm(),
                declared.map(|d| &d.encryption[..]),
                // Never PKCS#1 v1.5 (padding oracles) for a new data key.
                |a| {
                    a.fits(info.spec)
                        && a != EncryptionAlgorithm::RsaPkcs1v15
                        && a.max_plaintext_len(info.spec).is_none_or(|n| n >= DATA_KEY_LEN)
                },
            )
            .ok_or_else(|| cannot("encrypt"))?;
            let aad = provider_aad(alg, context, context_aad);
            Protection::Encrypted(provider.encrypt(key, alg, data_key, aad).await?)
        }
        other => {
            return Err(Error::invalid_input(
                PROVIDER,
                format!(
                    "envelope encryption needs a key with usage 'wrap' or 'encrypt'; '{}' has usage '{other}'",
                    info.name
                ),
            ));
        }
    };
    Ok(Recipient { provider: Some(provider.name().to_owned()), protection, share: None })
}
