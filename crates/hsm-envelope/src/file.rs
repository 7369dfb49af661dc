//! Files on every core: each worker reads its batch of segments with positional reads,
//! seals or opens it, and writes it at its own offset, so reading and writing run in
//! parallel too (on tmpfs, writing is as costly as encrypting). Unix only; elsewhere the
//! stream pipeline is used.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hsm_core::{Error, Result};
use zeroize::Zeroizing;

use crate::pipeline::{Direction, Layout, Plan};
use crate::schedule::{SegmentCipher, TAG_LEN};
use crate::{PROVIDER, io_error, opaque};

/// Seals or opens every segment of `layout` between `input` and `output` on one thread of
/// the blocking pool per unit of the plan's concurrency, each taking the next batch.
pub(crate) async fn run(
    input: Arc<File>,
    output: Arc<File>,
    cipher: SegmentCipher,
    layout: Layout,
    dir: Direction,
    plan: &Plan,
) -> Result<()> {
    let (workers, per_batch, progress) =
        (plan.concurrency.max(1), plan.segments_per_batch() as u64, &plan.progress);
    let cipher = Arc::new(cipher);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let batches = layout.segments.div_ceil(per_batch);
    let mut handles = Vec::new();
    for _ in 0..workers.clamp(1, usize::try_from(batches).unwrap_or(usize::MAX)) {
        let (input, output, cipher, next, failed) = (
            Arc::clone(&input),
            Arc::clone(&output),
            Arc::clone(&cipher),
            Arc::clone(&next),
            Arc::clone(&failed),
        );
        let progress = progress.clone();
        handles.push(tokio::task::spawn_blocking(move || -> Result<()> {
            let full = layout.segment + TAG_LEN as u64;
            let mut buf = Zeroizing::new(vec![0u8; usize::try_from(per_batch * full).map_err(|_| opaque())?]);
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches || failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                match batch(&input, &output, &cipher, &layout, dir, b * per_batch, per_batch, &mut buf) {
                    Ok(done) => progress.add(done),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        }));
    }
    let mut first_error = None;
    for h in handles {
        let r = h.await.map_err(|e| Error::Provider {
            provider: PROVIDER,
            code: "worker".to_owned(),
            message: format!("an envelope worker failed: {e}"),
            source: None,
        });
        if let Err(e) = r.and_then(|r| r) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn read_exact_at(f: &File, buf: &mut [u8], at: u64) -> Result<()> {
    f.read_exact_at(buf, at).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::invalid_input(PROVIDER, "the input file shrank while it was read")
        }
        _ => io_error("read", e),
    })
}

#[allow(clippy::too_many_arguments)]
fn batch(
    input: &File,
    output: &File,
    cipher: &SegmentCipher,
    layout: &Layout,
    dir: Direction,
    first: u64,
    per_batch: u64,
    buf: &mut [u8],
) -> Result<u64> {
    let seg = layout.segment as usize;
    let full = seg + TAG_LEN;
    let count = per_batch.min(layout.segments - first) as usize;
    let last_segment = first + count as u64 == layout.segments;
    let counter = |j: usize| u32::try_from(first + j as u64).map_err(|_| opaque());
    match dir {
        Direction::Seal => {
            let mut out_len = 0;
            for j in 0..count {
                let is_final = last_segment && j + 1 == count;
                let len = if is_final { layout.last_plain as usize } else { seg };
                let at = j * full;
                read_exact_at(input, &mut buf[at..at + len], (first + j as u64) * layout.segment)?;
                cipher.seal(counter(j)?, is_final, &mut buf[at..at + len + TAG_LEN])?;
                out_len = at + len + TAG_LEN;
            }
            output
                .write_all_at(&buf[..out_len], layout.body_at + first * full as u64)
                .map_err(|e| io_error("write", e))?;
            Ok((out_len - count * TAG_LEN) as u64)
        }
        Direction::Open => {
            let in_len = if last_segment {
                (count - 1) * full + layout.last_plain as usize + TAG_LEN
            } else {
                count * full
            };
            read_exact_at(input, &mut buf[..in_len], layout.body_at + first * full as u64)?;
            let mut out = 0;
            for j in 0..count {
                let is_final = last_segment && j + 1 == count;
                let at = j * full;
                let len = if is_final { in_len - at } else { full };
                cipher.open_segment(counter(j)?, is_final, &mut buf[at..at + len])?;
                // One write per segment: cheaper than moving the plaintext together over the tags.
                output
                    .write_all_at(&buf[at..at + len - TAG_LEN], first * layout.segment + out as u64)
                    .map_err(|e| io_error("write", e))?;
                out += len - TAG_LEN;
            }
            Ok(out as u64)
        }
    }
}
