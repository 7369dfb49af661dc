//! [`Observe`]: one `tracing` span and the per-operation metrics for every call.

use std::fmt;
use std::sync::Arc;

use hsm_core::Provider;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::call::{Around, BoxFut, Call, plain_create, plain_reads, provider_via_around};
use crate::metrics_names::{REQUEST_DURATION, REQUESTS};

/// Opens a span `hsm.operation` (fields `provider`, `operation`, `key`) around every call, so
/// the per-attempt events of [`Retry`](crate::Retry) nest under it, and records
/// `hsm_requests_total` and `hsm_request_duration_seconds`. Key names are in the span (they
/// are names, not secrets) but never in metric labels (unbounded cardinality).
pub struct Observe {
    inner: Arc<dyn Provider>,
}

impl fmt::Debug for Observe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe").field("inner", &self.inner.name()).finish()
    }
}

impl Observe {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Observe { inner }
    }

    plain_create!();
    plain_reads!();
}

impl Around for Observe {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut f: impl FnMut() -> BoxFut<'a, T> + Send + 'a,
    ) -> BoxFut<'a, T> {
        let provider = self.inner.name();
        let span =
            tracing::debug_span!("hsm.operation", provider, operation = call.op.as_str(), key = call.key);
        Box::pin(
            async move {
                let started = Instant::now();
                let r = f().await;
                let outcome = match &r {
                    Ok(_) => "ok",
                    Err(e) => e.kind(),
                };
                let op = call.op.as_str();
                metrics::counter!(REQUESTS, "provider" => provider, "operation" => op, "outcome" => outcome)
                    .increment(1);
                metrics::histogram!(REQUEST_DURATION, "provider" => provider, "operation" => op, "outcome" => outcome)
                    .record(started.elapsed().as_secs_f64());
                tracing::debug!(outcome, latency_ms = started.elapsed().as_millis() as u64, "operation done");
                r
            }
            .instrument(span),
        )
    }
}

provider_via_around!(Observe);
