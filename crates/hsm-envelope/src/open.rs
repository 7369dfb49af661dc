//! Opening: one provider call for the data key, the commitment checked, then the segments.

use std::io::SeekFrom;
use std::ops::Range;

use hsm_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::cache::DataKeyCache;
use crate::context::Context;
use crate::header::{self, DEFAULT_MAX_RECIPIENTS, Header, VERSION_1};
use crate::keyring::Unlock;
use crate::pipeline::{self, Direction, Plan, Progress, Span};
use crate::schedule::{SegmentCipher, TAG_LEN};
use crate::seal::default_concurrency;
use crate::window::Window;
use crate::{PROVIDER, io_error, opaque};

/// Opens envelopes (format 2, and format 1 for data sealed by earlier versions).
///
/// ```
/// # #[tokio::main] async fn main() -> hsm_core::Result<()> {
/// use hsm_core::{CreateKey, KeyRef, KeySpec, Provider};
/// use hsm_envelope::{Context, Opener, Sealer};
/// let p = hsm_local::LocalProvider::in_memory();
/// p.create_key(CreateKey::new("k", KeySpec::Aes256)).await?;
/// let ctx = Context::new().with("tenant", "acme");
/// let sealed = Sealer::new().context(ctx.clone()).seal(&p, &KeyRef::new("k"), b"0123456789").await?;
///
/// // Only bytes 3..7, decrypting only the segments they lie in.
/// let mut out = Vec::new();
/// let n = Opener::new().open_range(&p, &mut std::io::Cursor::new(&sealed), 3..7, &mut out).await?;
/// assert_eq!((n, &out[..]), (4, &b"3456"[..]));
///
/// // A context the envelope does not have is refused before any provider call.
/// let other = Context::new().with("tenant", "globex");
/// assert!(Opener::new().expect_context(other).open(&p, &sealed).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Opener {
    expected: Context,
    max_recipients: usize,
    concurrency: usize,
    progress: Progress,
    v1_aad: Option<Vec<u8>>,
    cache: Option<DataKeyCache>,
}

impl Default for Opener {
    fn default() -> Self {
        Opener {
            expected: Context::new(),
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            concurrency: default_concurrency(),
            progress: Progress::default(),
            v1_aad: None,
            cache: None,
        }
    }
}

impl Opener {
    /// Default settings: no context required, at most 16 recipients, one batch per core.
    pub fn new() -> Self {
        Opener::default()
    }

    /// Requires every pair of `context` in the envelope's encryption context (it may have
    /// more), checked before any provider call.
    #[must_use]
    pub fn expect_context(mut self, context: Context) -> Self {
        self.expected = context;
        self
    }

    /// The most recipients a header may list (default 16); a header with more is refused
    /// before anything is allocated for them.
    #[must_use]
    pub fn max_recipients(mut self, n: usize) -> Self {
        self.max_recipients = n.clamp(1, usize::from(u16::MAX));
        self
    }

    /// Calls `f` with the number of plaintext bytes each time a batch of segments is done
    /// (about every MiB), from whichever thread did it: for progress bars.
    #[must_use]
    pub fn on_progress(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.progress = Progress(Some(std::sync::Arc::new(f)));
        self
    }

    /// How many batches of segments are decrypted at once (default: the number of cores;
    /// 0 decrypts on the calling task).
    #[must_use]
    pub fn concurrency(mut self, batches: usize) -> Self {
        self.concurrency = batches;
        self
    }

    /// The AAD a format-1 envelope was sealed with (format 1 took caller AAD instead of a
    /// stored context); ignored for format 2.
    #[must_use]
    pub fn v1_aad(mut self, aad: impl Into<Vec<u8>>) -> Self {
        self.v1_aad = Some(aad.into());
        self
    }

    /// Reuses data keys unwrapped by a [`Keyring`](crate::Keyring) open from `cache` for
    /// envelopes with the same recipients, keyring and context (see [`DataKeyCache`]).
    #[must_use]
    pub fn cache(mut self, cache: DataKeyCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Reads the header from `reader` and recovers the segment cipher: the expected context
    /// checked, one provider call per recipient tried, the commitment checked.
    async fn unlock<R: AsyncRead + Unpin>(
        &self,
        from: &(impl Unlock + ?Sized),
        reader: &mut R,
    ) -> Result<(Header, SegmentCipher)> {
        let header = header::read(reader, self.max_recipients).await?;
        let cipher = self.unlock_header(from, &header).await?;
        Ok((header, cipher))
    }

    async fn unlock_header(&self, from: &(impl Unlock + ?Sized), header: &Header) -> Result<SegmentCipher> {
        self.expected.require_in(&header.context)?;
        let data_key = from.data_key(header, self.cache.as_ref()).await?;
        let aad = (header.version == VERSION_1).then_some(self.v1_aad.as_deref()).flatten();
        SegmentCipher::open(header, &data_key, aad)
    }

    /// The data key of `header` through `keyring`, with the expected context and the key
    /// commitment checked, and the shares it was combined from (threshold envelopes).
    pub(crate) async fn recover(
        &self,
        keyring: &crate::Keyring,
        header: &Header,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<crate::shamir::Piece>)> {
        self.expected.require_in(&header.context)?;
        keyring.check_members()?;
        let (data_key, pieces) = keyring.recover_uncached(header, &header.context.encode()?).await?;
        SegmentCipher::open(header, &data_key, None)?;
        Ok((data_key, pieces))
    }

    pub(crate) fn recipients_cap(&self) -> usize {
        self.max_recipients
    }

    fn plan(&self, header: &Header) -> Plan {
        Plan {
            segment: header.segment_size,
            concurrency: self.concurrency,
            progress: self.progress.clone(),
            hint: None,
        }
    }

    /// Decrypts an envelope from `reader` into `writer`, asking the provider once for the
    /// data key. Only authenticated plaintext is written, in order; a stream that is
    /// truncated, reordered or altered ends in `DecryptionFailed` after the segments before
    /// the damage were written, so the caller must discard the output on error (the CLI
    /// writes to a temporary file). Memory stays bounded whatever the input size.
    ///
    /// # Errors
    /// `InvalidInput` for something that is not an envelope, too many recipients, or a
    /// context that lacks an expected pair; `DecryptionFailed` (opaque) for a tampered,
    /// truncated or reordered envelope or a data key that fails the commitment; the
    /// provider's errors for the data key; `Provider { code: "io" }` for I/O failures.
    pub async fn open_stream<R, W>(
        &self,
        from: &(impl Unlock + ?Sized),
        reader: &mut R,
        writer: &mut W,
    ) -> Result<u64>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let header = header::read(reader, self.max_recipients).await?;
        self.open_body(from, &header, reader, writer).await
    }

    /// Decrypts the body that follows a header already read with [`inspect`](crate::inspect)
    /// from the same `reader`, e.g. after checking its recipients or context; see
    /// [`open_stream`](Opener::open_stream).
    ///
    /// # Errors
    /// As [`open_stream`](Opener::open_stream).
    pub async fn open_body<R, W>(
        &self,
        from: &(impl Unlock + ?Sized),
        header: &Header,
        reader: &mut R,
        writer: &mut W,
    ) -> Result<u64>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.body(from, header, reader, writer, None).await
    }

    /// The body after `header`, `hint` its length when known.
    async fn body<R, W>(
        &self,
        from: &(impl Unlock + ?Sized),
        header: &Header,
        reader: &mut R,
        writer: &mut W,
        hint: Option<u64>,
    ) -> Result<u64>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        // A header read elsewhere (with `inspect`) may list more recipients than allowed here.
        if header.recipients.len() > self.max_recipients {
            return Err(header::bad_format(format!(
                "it lists {} recipients, more than the {} allowed",
                header.recipients.len(),
                self.max_recipients
            )));
        }
        let cipher = self.unlock_header(from, header).await?;
        let plan = Plan { hint, ..self.plan(header) };
        pipeline::run(reader, writer, cipher, plan, Direction::Open, Span::WHOLE).await
    }

    /// Decrypts the envelope in the regular file `input` into `output` (replacing its
    /// contents), with positional reads and writes on every core; returns the plaintext
    /// bytes. Segments are written as they are authenticated, not in order: on error the
    /// caller must discard `output` (the CLI writes to a temporary file).
    ///
    /// # Errors
    /// As [`open_stream`](Opener::open_stream).
    pub async fn open_file(
        &self,
        from: &(impl Unlock + ?Sized),
        input: &std::fs::File,
        output: &std::fs::File,
    ) -> Result<u64> {
        let size = crate::seal::regular_len(input)?;
        let mut reader = tokio::fs::File::from_std(input.try_clone().map_err(|e| io_error("read", e))?);
        reader.seek(SeekFrom::Start(0)).await.map_err(|e| io_error("seek", e))?;
        let (header, cipher) = self.unlock(from, &mut reader).await?;
        #[cfg(unix)]
        {
            let body = size.checked_sub(header.len as u64).ok_or_else(opaque)?;
            let layout = pipeline::Layout::for_body(header.segment_size as u64, body, header.len as u64)
                .ok_or_else(opaque)?;
            let (i, o) = (crate::seal::clone(input)?, crate::seal::clone(output)?);
            crate::file::run(i, o, cipher, layout, Direction::Open, &self.plan(&header)).await?;
            output.set_len(layout.plaintext_len()).map_err(|e| io_error("write", e))?;
            Ok(layout.plaintext_len())
        }
        #[cfg(not(unix))]
        {
            let _ = size;
            let mut w = tokio::fs::File::from_std(output.try_clone().map_err(|e| io_error("write", e))?);
            pipeline::run(&mut reader, &mut w, cipher, self.plan(&header), Direction::Open, Span::WHOLE).await
        }
    }

    /// Decrypts an envelope in memory; see [`open_stream`](Opener::open_stream).
    ///
    /// # Errors
    /// As [`open_stream`](Opener::open_stream).
    pub async fn open(&self, from: &(impl Unlock + ?Sized), sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        // Sized up front so the plaintext is never reallocated (which would leave copies).
        let mut out = Zeroizing::new(Vec::with_capacity(sealed.len()));
        let mut input = sealed;
        let header = header::read(&mut input, self.max_recipients).await?;
        if header.version == VERSION_1 || !pipeline::fits_one_pass(input.len()) {
            let body = Some(input.len() as u64);
            self.body(from, &header, &mut input, &mut *out, body).await?;
            return Ok(out);
        }
        // header::read already refused more recipients than allowed.
        let cipher = self.unlock_header(from, &header).await?;
        let n = pipeline::open_slice(&cipher, header.segment_size, input, &mut out)?;
        self.progress.add(n);
        Ok(out)
    }

    /// Decrypts only the plaintext bytes `range` (clipped to the message's length) of a
    /// seekable envelope, reading and decrypting only the segments they lie in; returns the
    /// bytes written. The commitment is checked as for a whole message; when the range
    /// reaches the end of the message the final segment is authenticated too, so a
    /// truncated envelope is detected.
    ///
    /// # Errors
    /// As [`open_stream`](Opener::open_stream); `InvalidInput` for a range whose start is
    /// after its end.
    pub async fn open_range<R, W>(
        &self,
        from: &(impl Unlock + ?Sized),
        reader: &mut R,
        range: Range<u64>,
        writer: &mut W,
    ) -> Result<u64>
    where
        R: AsyncRead + AsyncSeek + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        if range.start > range.end {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("byte range {}..{} starts after it ends", range.start, range.end),
            ));
        }
        reader.seek(SeekFrom::Start(0)).await.map_err(|e| io_error("seek", e))?;
        let (header, cipher) = self.unlock(from, reader).await?;
        let end = reader.seek(SeekFrom::End(0)).await.map_err(|e| io_error("seek", e))?;
        let body = end.checked_sub(header.len as u64).ok_or_else(opaque)?;
        let seg = header.segment_size as u64;
        let full = seg + TAG_LEN as u64;
        let layout = pipeline::Layout::for_body(seg, body, header.len as u64).ok_or_else(opaque)?;
        let (segments, plain_len) = (layout.segments, layout.plaintext_len());
        let (start, stop) = (range.start.min(plain_len), range.end.min(plain_len));
        // A range reaching the end takes the final segment, which proves the length.
        let reaches_end = range.end >= plain_len;
        if stop <= start && !reaches_end {
            return Ok(0);
        }
        let first = if start < plain_len { start / seg } else { segments - 1 };
        let last = if reaches_end { segments - 1 } else { (stop - 1) / seg };
        reader
            .seek(SeekFrom::Start(header.len as u64 + first * full))
            .await
            .map_err(|e| io_error("seek", e))?;
        let mut input = reader.take((last - first + 1) * full);
        let mut window = Window { inner: writer, skip: start - first * seg, keep: stop - start };
        let span = Span { first, ends_message: last == segments - 1 };
        pipeline::run(&mut input, &mut window, cipher, self.plan(&header), Direction::Open, span).await?;
        writer.flush().await.map_err(|e| io_error("write", e))?;
        Ok(stop - start)
    }
}
