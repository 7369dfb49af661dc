//! The `conformance_tests!` front end: one ordinary `#[test]` per case group.

use std::future::Future;

use crate::options::Options;
use crate::report::{IntoProvider, Report, run_group};

/// Expands to one test function per case [group](crate::GROUPS) (`conformance_encrypt`,
/// `conformance_errors`, ...), each running every case of its group against a provider
/// made by `factory`, and failing with the list of failed cases. Cases the provider does
/// not declare, and known gaps, are printed to stderr as skipped, with the reason.
///
/// `factory` is an expression evaluating to a closure `|| async { … }` returning an
/// `Arc<dyn Provider>`, an `Arc<YourProvider>`, or a `Result` of either. An optional
/// second argument gives the [`Options`](crate::Options).
///
/// ```no_run
/// // tests/conformance.rs of your provider crate (an ordinary test target)
/// mod memory {
///     use std::sync::Arc;
///     hsm_conformance::conformance_tests!(|| async { Arc::new(hsm_local::LocalProvider::in_memory()) });
/// }
/// mod keystore_file {
///     hsm_conformance::conformance_tests!(
///         || async { hsm_local::LocalProvider::open("/tmp/conformance.keystore", None).map(std::sync::Arc::new) },
///         hsm_conformance::Options::new().ignore("rotate::*", "an example of marking a known gap")
///     );
/// }
/// # fn main() {}
/// ```
///
/// Each test builds its own multi-thread tokio runtime (what
/// `#[tokio::test(flavor = "multi_thread")]` expands to), so your crate needs no tokio
/// dependency and the macro works however this crate is renamed.
///
/// **Trade-off against [`run`](crate::run):** a macro cannot enumerate cases, which are
/// generated at run time from the provider's capabilities, so the granularity is the group:
/// `cargo test encrypt` selects a group, not a case; one failing case fails its whole group
/// (the message lists every failed case with why); skipped cases are printed to stderr, not
/// shown as `ignored`; and each group makes its own provider and its own shared keys. The
/// libtest-mimic front end ([`run`](crate::run), [`Runner`](crate::Runner)) shows every case
/// as its own test, ignored ones with their reason, in a `harness = false` target. Use the
/// macro when you want the kit inside an existing test target.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!($factory, $crate::Options::new());
    };
    ($factory:expr, $options:expr $(,)?) => {
        $crate::__conformance_group!(conformance_capabilities, "capabilities", $factory, $options);
        $crate::__conformance_group!(conformance_keys, "keys", $factory, $options);
        $crate::__conformance_group!(conformance_encrypt, "encrypt", $factory, $options);
        $crate::__conformance_group!(conformance_sign, "sign", $factory, $options);
        $crate::__conformance_group!(conformance_wrap, "wrap", $factory, $options);
        $crate::__conformance_group!(conformance_mac, "mac", $factory, $options);
        $crate::__conformance_group!(conformance_envelope, "envelope", $factory, $options);
        $crate::__conformance_group!(conformance_rotate, "rotate", $factory, $options);
        $crate::__conformance_group!(conformance_lifecycle, "lifecycle", $factory, $options);
        $crate::__conformance_group!(conformance_errors, "errors", $factory, $options);
        $crate::__conformance_group!(conformance_concurrency, "concurrency", $factory, $options);
        $crate::__conformance_group!(conformance_secrets, "secrets", $factory, $options);

        #[test]
        fn conformance_groups_cover_every_case() {
            $crate::__private::check_groups(&[
                "capabilities",
                "keys",
                "encrypt",
                "sign",
                "wrap",
                "mac",
                "envelope",
                "rotate",
                "lifecycle",
                "errors",
                "concurrency",
                "secrets",
            ]);
        }
    };
}

/// One test of [`conformance_tests!`]. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_group {
    ($name:ident, $group:literal, $factory:expr, $options:expr) => {
        #[test]
        fn $name() {
            $crate::__private::block_on_group($factory, $options, $group);
        }
    };
}

/// Runs one group on a fresh multi-thread runtime and panics listing the failed cases.
pub fn block_on_group<F, Fut, P>(factory: F, options: Options, group: &str)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = P>,
    P: IntoProvider,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("hsm-conformance: could not start a tokio runtime: {e}"));
    let report = runtime.block_on(run_group(factory, options, group));
    finish_group(group, &report);
}

/// Prints skipped cases to stderr and panics when a case failed.
pub fn finish_group(group: &str, report: &Report) {
    for (name, reason) in &report.ignored {
        eprintln!("skipped {name}: {reason}");
    }
    for p in &report.cleanup_problems {
        eprintln!("cleanup: {p}");
    }
    if !report.is_success() {
        let lines: Vec<String> = report.failed.iter().map(|(n, why)| format!("  {n}: {why}")).collect();
        panic!(
            "{} of {} '{group}' cases failed on provider '{}':\n{}",
            report.failed.len(),
            report.total(),
            report.provider,
            lines.join("\n")
        );
    }
    eprintln!("hsm-conformance '{group}': {} passed, {} skipped", report.passed.len(), report.ignored.len());
}

/// Panics when the macro's group list and [`GROUPS`](crate::GROUPS) disagree.
pub fn check_groups(in_macro: &[&str]) {
    assert_eq!(
        in_macro,
        crate::GROUPS,
        "conformance_tests! and hsm_conformance::GROUPS list different groups"
    );
}
