//! The segment pipeline: reads batches of segments, seals or opens them on the blocking pool
//! (several in flight, so every core works), and writes them in order. Memory stays bounded
//! by `concurrency + 2` batches whatever the input size.

use std::collections::VecDeque;
use std::sync::Arc;

use hsm_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::schedule::{SegmentCipher, TAG_LEN};
use crate::{PROVIDER, io_error, opaque};

/// Plaintext bytes a batch aims for: large enough that handing it to another thread costs
/// nothing measurable, small enough that a few in flight stay in cache-sized memory.
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// Which way the segments go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Seal,
    Open,
}

/// A callback told how many plaintext bytes were just sealed or opened.
#[derive(Clone, Default)]
pub(crate) struct Progress(pub(crate) Option<Arc<dyn Fn(u64) + Send + Sync>>);

impl Progress {
    pub(crate) fn add(&self, bytes: u64) {
        if let Some(f) = &self.0 {
            f(bytes);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// How the pipeline runs.
#[derive(Clone)]
pub(crate) struct Plan {
    /// Plaintext bytes per segment.
    pub(crate) segment: usize,
    /// Batches processed at once off the async task; 0 processes them inline.
    pub(crate) concurrency: usize,
    /// Told of every batch written.
    pub(crate) progress: Progress,
    /// The input's length when known (plaintext to seal, body to open): a small message
    /// then gets a batch buffer of its own size instead of a full batch's. Only sizing.
    pub(crate) hint: Option<u64>,
}

impl Plan {
    fn full(&self) -> usize {
        self.segment + TAG_LEN
    }

    pub(crate) fn segments_per_batch(&self) -> usize {
        (BATCH_BYTES / self.segment).max(1)
    }

    /// Segments per batch buffer for this input: a full batch, or fewer for a short input
    /// of known length (sealing keeps one spare segment to see the end in the same read).
    fn segments_to_read(&self, dir: Direction) -> usize {
        let per = self.segments_per_batch();
        let Some(hint) = self.hint else { return per };
        let needed = match dir {
            Direction::Seal => hint / self.segment as u64 + 1,
            Direction::Open => hint.div_ceil(self.full() as u64).max(1),
        };
        usize::try_from(needed).map_or(per, |n| per.min(n))
    }
}

/// One message body laid out in segments.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) segment: u64,
    /// Segments in the message (at least one).
    pub(crate) segments: u64,
    /// Plaintext bytes of the final segment.
    pub(crate) last_plain: u64,
    /// Where the body starts in the envelope.
    pub(crate) body_at: u64,
}

impl Layout {
    /// The layout of a message of `plain` bytes.
    pub(crate) fn for_plaintext(segment: u64, plain: u64, body_at: u64) -> Layout {
        let segments = plain.div_ceil(segment).max(1);
        Layout { segment, segments, last_plain: plain - (segments - 1) * segment, body_at }
    }

    /// The layout of a body of `body` bytes, or `None` when no message has that length.
    pub(crate) fn for_body(segment: u64, body: u64, body_at: u64) -> Option<Layout> {
        let full = segment + TAG_LEN as u64;
        let (whole, rest) = (body / full, body % full);
        if body == 0 || (rest != 0 && rest < TAG_LEN as u64) {
            return None;
        }
        let segments = whole + u64::from(rest != 0);
        let last_plain = if rest == 0 { segment } else { rest - TAG_LEN as u64 };
        Some(Layout { segment, segments, last_plain, body_at })
    }

    pub(crate) fn plaintext_len(&self) -> u64 {
        (self.segments - 1) * self.segment + self.last_plain
    }
}

/// A batch of consecutive segments in one buffer laid out as on the wire: every segment but
/// the last is `segment + TAG_LEN` bytes.
struct Batch {
    buf: Zeroizing<Vec<u8>>,
    /// Segments in the batch (0 for an empty read).
    segments: usize,
    /// Bytes of the last segment as read: plaintext (seal) or ciphertext with tag (open).
    last_len: usize,
    /// The input ended inside this batch.
    eof: bool,
}

/// Whether a message of `len` bytes in memory is sealed or opened on the calling task in
/// one pass (no batch buffers, no thread hand-off): anything below one batch.
pub(crate) fn fits_one_pass(len: usize) -> bool {
    len < BATCH_BYTES
}

/// Seals `plaintext` (below one batch) straight into `out`, segment by segment.
pub(crate) fn seal_slice(
    cipher: &SegmentCipher,
    segment: usize,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let segments = plaintext.len().div_ceil(segment).max(1);
    out.reserve(plaintext.len() + segments * TAG_LEN);
    for i in 0..segments {
        let chunk = &plaintext[(i * segment).min(plaintext.len())..((i + 1) * segment).min(plaintext.len())];
        let at = out.len();
        out.extend_from_slice(chunk);
        out.resize(at + chunk.len() + TAG_LEN, 0);
        let counter = u32::try_from(i).map_err(|_| opaque())?;
        cipher.seal(counter, i + 1 == segments, &mut out[at..])?;
    }
    Ok(())
}

/// Opens `body` (below one batch plus its tags) into `out`, which must have room for the
/// plaintext already so that it never reallocates (a reallocation would leave plaintext
/// behind). On error `out` holds partial plaintext: the caller drops it (it is zeroized).
pub(crate) fn open_slice(
    cipher: &SegmentCipher,
    segment: usize,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<u64> {
    let layout = Layout::for_body(segment as u64, body.len() as u64, 0).ok_or_else(opaque)?;
    let full = segment + TAG_LEN;
    if out.capacity() - out.len() < body.len() {
        return Err(opaque());
    }
    for i in 0..layout.segments as usize {
        let chunk = &body[i * full..((i + 1) * full).min(body.len())];
        let at = out.len();
        out.extend_from_slice(chunk);
        let counter = u32::try_from(i).map_err(|_| opaque())?;
        cipher.open_segment(counter, i + 1 == layout.segments as usize, &mut out[at..])?;
        out.truncate(out.len() - TAG_LEN);
    }
    Ok(layout.plaintext_len())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub(crate) async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
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

async fn read_batch<R: AsyncRead + Unpin>(
    r: &mut R,
    mut buf: Zeroizing<Vec<u8>>,
    plan: &Plan,
    dir: Direction,
) -> Result<Batch> {
    let (full, per) = (plan.full(), plan.segments_to_read(dir));
    buf.resize(full * per, 0);
    match dir {
        Direction::Seal => {
            // Plaintext goes straight to where its ciphertext will be, leaving room for tags.
            for j in 0..per {
                let got = read_full(r, &mut buf[j * full..j * full + plan.segment]).await?;
                if got < plan.segment {
                    let (segments, last_len) = if got == 0 { (j, plan.segment) } else { (j + 1, got) };
                    let last_len = if segments == 0 { 0 } else { last_len };
                    return Ok(Batch { buf, segments, last_len, eof: true });
                }
            }
            Ok(Batch { buf, segments: per, last_len: plan.segment, eof: false })
        }
        Direction::Open => {
            let got = read_full(r, &mut buf[..]).await?;
            let eof = got < full * per;
            let (whole, rest) = (got / full, got % full);
            let (segments, last_len) = if rest == 0 { (whole, full) } else { (whole + 1, rest) };
            Ok(Batch { buf, segments, last_len: if segments == 0 { 0 } else { last_len }, eof })
        }
    }
}

/// Seals or opens every segment of `batch` in place; returns the output bytes, which start
/// at the beginning of the buffer (opened plaintext is moved together over the tags).
fn process(
    cipher: &SegmentCipher,
    plan: &Plan,
    dir: Direction,
    batch: &mut Batch,
    first: u32,
    last: bool,
) -> Result<usize> {
    let full = plan.full();
    let mut out = 0;
    for j in 0..batch.segments {
        let is_last = j + 1 == batch.segments;
        let counter = first + j as u32;
        let len = if is_last { batch.last_len } else { plan.segment };
        let at = j * full;
        match dir {
            Direction::Seal => {
                cipher.seal(counter, last && is_last, &mut batch.buf[at..at + len + TAG_LEN])?;
                out = at + len + TAG_LEN;
            }
            Direction::Open => {
                let len = if is_last { len } else { full };
                if len < TAG_LEN {
                    return Err(opaque());
                }
                cipher.open_segment(counter, last && is_last, &mut batch.buf[at..at + len])?;
                batch.buf.copy_within(at..at + len - TAG_LEN, out);
                out += len - TAG_LEN;
            }
        }
    }
    Ok(out)
}

enum Pending {
    Done(Batch, Result<usize>),
    Running(JoinHandle<(Batch, Result<usize>)>),
}

impl Pending {
    async fn finish(self) -> Result<(Batch, usize)> {
        let (batch, r) = match self {
            Pending::Done(b, r) => (b, r),
            Pending::Running(h) => h.await.map_err(|e| Error::Provider {
                provider: PROVIDER,
                code: "worker".to_owned(),
                message: format!("an envelope worker failed: {e}"),
                source: None,
            })?,
        };
        r.map(|n| (batch, n))
    }
}

/// Which segments of a message the input holds.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    /// The counter of the first segment read.
    pub(crate) first: u64,
    /// The input ends where the message ends, so its last segment is the final one.
    pub(crate) ends_message: bool,
}

impl Span {
    /// A whole message.
    pub(crate) const WHOLE: Span = Span { first: 0, ends_message: true };
}

/// Runs the whole body of a message from `reader` to `writer`; returns the plaintext bytes.
/// In the open direction an empty body (no final segment) is a truncated message.
pub(crate) async fn run<R, W>(
    reader: &mut R,
    writer: &mut W,
    cipher: SegmentCipher,
    plan: Plan,
    dir: Direction,
    span: Span,
) -> Result<u64>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let cipher = Arc::new(cipher);
    let runtime = tokio::runtime::Handle::try_current().is_ok();
    let mut pool: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut inflight: VecDeque<Pending> = VecDeque::new();
    let mut counter: u64 = span.first;
    let mut total: u64 = 0;

    let mut cur = read_batch(reader, Zeroizing::new(Vec::new()), &plan, dir).await?;
    if cur.segments == 0 {
        match dir {
            // An empty message is one empty final segment.
            Direction::Seal => cur.segments = 1,
            Direction::Open => return Err(opaque()),
        }
    }
    let mut first_batch = true;
    loop {
        let next = if cur.eof {
            None
        } else {
            let b = read_batch(reader, pool.pop().unwrap_or_default(), &plan, dir).await?;
            if b.segments == 0 {
                pool.push(b.buf);
                None
            } else {
                Some(b)
            }
        };
        let last = next.is_none() && span.ends_message;
        let first = u32::try_from(counter)
            .ok()
            .filter(|f| f.checked_add(cur.segments as u32 - 1).is_some())
            .ok_or_else(|| match dir {
                Direction::Seal => Error::invalid_input(
                    PROVIDER,
                    "input too large for one envelope (over 2^32 segments); use a larger segment size",
                ),
                Direction::Open => opaque(),
            })?;
        counter += cur.segments as u64;
        let mut batch = cur;
        // A message of one batch is done inline: no thread hand-off for small messages.
        let pending = if plan.concurrency == 0 || !runtime || (first_batch && next.is_none()) {
            let r = process(&cipher, &plan, dir, &mut batch, first, last);
            Pending::Done(batch, r)
        } else {
            let (cipher, worker_plan) = (Arc::clone(&cipher), plan.clone());
            Pending::Running(tokio::task::spawn_blocking(move || {
                let r = process(&cipher, &worker_plan, dir, &mut batch, first, last);
                (batch, r)
            }))
        };
        first_batch = false;
        inflight.push_back(pending);
        while inflight.len() > plan.concurrency.max(1) || (next.is_none() && !inflight.is_empty()) {
            let Some(p) = inflight.pop_front() else { break };
            let (batch, n) = p.finish().await?;
            writer.write_all(&batch.buf[..n]).await.map_err(|e| io_error("write", e))?;
            let done = match dir {
                Direction::Seal => (n - batch.segments * TAG_LEN) as u64,
                Direction::Open => n as u64,
            };
            plan.progress.add(done);
            total += done;
            pool.push(batch.buf);
        }
        match next {
            Some(b) => cur = b,
            None => break,
        }
    }
    writer.flush().await.map_err(|e| io_error("write", e))?;
    Ok(total)
}
