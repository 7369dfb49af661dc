//! A writer that passes on only one byte range of what is written to it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// Discards the first `skip` bytes, passes on the next `keep`, discards the rest.
pub(crate) struct Window<'a, W> {
    pub(crate) inner: &'a mut W,
    pub(crate) skip: u64,
    pub(crate) keep: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Window<'_, W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let skipped = usize::try_from(self.skip).unwrap_or(usize::MAX).min(buf.len());
        if skipped > 0 {
            self.skip -= skipped as u64;
            return Poll::Ready(Ok(skipped));
        }
        let n = usize::try_from(self.keep).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Poll::Ready(Ok(buf.len()));
        }
        let this = &mut *self;
        match Pin::new(&mut *this.inner).poll_write(cx, &buf[..n]) {
            Poll::Ready(Ok(w)) => {
                this.keep -= w as u64;
                Poll::Ready(Ok(w))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
