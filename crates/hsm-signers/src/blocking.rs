//! Running the async provider from synchronous callers (RustCrypto's `Signer`, rcgen,
//! rustls) without stalling a tokio runtime.
//!
//! The strategy, in one function ([`block_on`]):
//! - on a thread outside any runtime (a plain thread, a test, a CLI before it starts a
//!   runtime), the future runs on the signer's runtime via `Handle::block_on`;
//! - on a worker thread of a **multi-thread** runtime (a rustls server inside tokio-rustls,
//!   a `Signer` called from async code), `tokio::task::block_in_place` first hands this
//!   worker's queued tasks and its share of the I/O driver to another thread, then the
//!   future is driven to completion here. Other tasks keep running; the reactor is never
//!   blocked;
//! - on a thread of tokio's blocking pool entered through [`on_blocking_pool`] (what this
//!   crate's async X.509 functions do), the future runs via `Handle::block_on`: the runtime's
//!   own threads stay free to drive I/O, whatever the runtime's flavor;
//! - on a **current-thread** runtime's thread the only thread would wait on itself: the call
//!   fails with an error saying so instead of deadlocking.

use std::cell::Cell;
use std::future::Future;

use hsm_core::{Error, Result};
use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `fut` to completion on `handle`'s runtime from synchronous code (see the module docs).
///
/// # Errors
/// `fut`'s error, or `Config` when called on a current-thread runtime's thread.
pub fn block_on<T>(
    handle: &Handle,
    provider: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    if ON_BLOCKING_POOL.with(Cell::get) {
        return handle.block_on(fut);
    }
    match Handle::try_current() {
        Err(_) => handle.block_on(fut),
        Ok(current) => match current.runtime_flavor() {
            RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| handle.block_on(fut)),
            _ => Err(Error::config(
                provider,
                "a synchronous signer (RustCrypto Signer, rcgen, rustls) was called on a current-thread \
                 tokio runtime, where waiting for the provider would deadlock; use a multi-thread runtime \
                 (#[tokio::main] or #[tokio::test(flavor = \"multi_thread\")]) or the async signer",
            )),
        },
    }
}

thread_local! {
    /// Set while [`on_blocking_pool`] runs a closure on this thread.
    static ON_BLOCKING_POOL: Cell<bool> = const { Cell::new(false) };
}

/// Runs synchronous code that signs through [`block_on`] (rcgen, a `Signer`) on tokio's
/// blocking pool, from async code on any runtime flavor, the current-thread runtime included.
///
/// # Errors
/// `f`'s error, or `Provider` (code `TaskFailed`) when the blocking task panicked or was
/// cancelled.
pub async fn on_blocking_pool<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    /// Clears the mark when the closure ends, even by a panic (the thread goes back to the pool).
    struct Mark;
    impl Drop for Mark {
        fn drop(&mut self) {
            ON_BLOCKING_POOL.with(|c| c.set(false));
        }
    }
    tokio::task::spawn_blocking(move || {
        ON_BLOCKING_POOL.with(|c| c.set(true));
        let _mark = Mark;
        f()
    })
    .await
    .map_err(|e| Error::Provider {
        provider: "hsm",
        code: "TaskFailed".into(),
        message: e.to_string(),
        source: None,
    })?
}
