//! [`Timeout`] (a deadline per call of the inner provider) and [`Concurrency`] (a bound on
//! calls in flight).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hsm_core::{Error, Provider};
use tokio::sync::Semaphore;

use crate::call::{Around, BoxFut, Call, plain_create, plain_reads, provider_via_around};

/// Fails a call of the inner provider with [`Error::Timeout`] when it takes longer than the
/// configured duration, dropping (cancelling) its future.
///
/// Placed under [`Retry`](crate::Retry) it bounds each attempt; above it, the whole operation
/// with its retries and backoffs ([`layered`](crate::layered) does both).
///
/// Cancellation drops the future, which closes an HTTP request at once. A PKCS#11 call already
/// running on a blocking thread cannot be cancelled: the caller gets its `Timeout` on time, but
/// the thread stays busy until the token answers. Bound such calls with [`Concurrency`] so that
/// a stuck token cannot tie up every blocking thread.
pub struct Timeout {
    inner: Arc<dyn Provider>,
    limit: Duration,
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("inner", &self.inner.name()).field("limit", &self.limit).finish()
    }
}

impl Timeout {
    /// Wraps `inner` with a deadline of `limit` per call.
    pub fn new(inner: Arc<dyn Provider>, limit: Duration) -> Self {
        Timeout { inner, limit }
    }

    plain_create!();
    plain_reads!();
}

impl Around for Timeout {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut f: impl FnMut() -> BoxFut<'a, T> + Send + 'a,
    ) -> BoxFut<'a, T> {
        Box::pin(async move {
            match tokio::time::timeout(self.limit, f()).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout {
                    provider: self.inner.name(),
                    operation: call.op.as_str().to_owned(),
                }),
            }
        })
    }
}

provider_via_around!(Timeout);

/// Lets at most `n` calls of the inner provider run at once; the others wait their turn.
pub struct Concurrency {
    inner: Arc<dyn Provider>,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Concurrency")
            .field("inner", &self.inner.name())
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl Concurrency {
    /// Wraps `inner` with at most `n` (at least 1) calls in flight.
    pub fn new(inner: Arc<dyn Provider>, n: usize) -> Self {
        Concurrency { inner, permits: Arc::new(Semaphore::new(n.max(1))) }
    }

    plain_create!();
    plain_reads!();
}

impl Around for Concurrency {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _call: Call<'a>,
        mut f: impl FnMut() -> BoxFut<'a, T> + Send + 'a,
    ) -> BoxFut<'a, T> {
        Box::pin(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = self.permits.acquire().await.ok();
            f().await
        })
    }
}

provider_via_around!(Concurrency);
