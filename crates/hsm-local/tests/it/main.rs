//! Integration tests of hsm-local: one binary, one module per concern.

mod bad_input;
mod keystore;
mod lifecycle;
mod never_panics;
mod round_trips;
mod wycheproof_vectors;

use hsm_core::{CreateKey, KeyInfo, KeySpec, KeyUsage, Provider};
use hsm_local::LocalProvider;

/// Creates a key of `spec` with `usage` (or the spec's default) and returns its metadata.
pub(crate) async fn key(p: &LocalProvider, name: &str, spec: KeySpec, usage: Option<KeyUsage>) -> KeyInfo {
    let mut req = CreateKey::new(name, spec);
    if let Some(u) = usage {
        req = req.usage(u);
    }
    p.create_key(req).await.unwrap_or_else(|e| panic!("creating {name} ({spec}): {e}"))
}

/// Asserts that `result` is the error variant matched by `pat`, printing it otherwise.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pat:pat) => {
        match $result {
            Err(e @ $pat) => e,
            other => panic!("expected {}, got {:?}", stringify!($pat), other),
        }
    };
}
