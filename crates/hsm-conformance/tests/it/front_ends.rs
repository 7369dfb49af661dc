//! The three front ends: `run_cases` options, the libtest-mimic `Runner`, and the macro.

use std::sync::Arc;

use hsm_conformance::libtest_mimic::Arguments;
use hsm_conformance::{Options, Runner, run_cases};
use hsm_core::{CreateKey, KeySpec, ListKeys, Provider, ProviderExt as _};
use hsm_local::LocalProvider;

use crate::{Fault, Wrapper, runtime};

#[test]
fn known_gaps_are_reported_as_ignored_with_their_reason_and_not_run() {
    let options = Options::new()
        .only("rotate::*")
        .only("keys::tags")
        .ignore("rotate::sign", "pretend the emulator cannot rotate signing keys");
    let report = runtime().block_on(run_cases(Arc::new(Wrapper::new(Fault::None)), &options));
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.ignored_reason("rotate::sign::ec-p256"),
        Some("pretend the emulator cannot rotate signing keys")
    );
    // A capability reason wins over a known gap: it says more.
    assert_eq!(
        report.ignored_reason("rotate::sign::ed25519"),
        Some("capabilities declare no rotation for ed25519")
    );
    assert!(report.passed.contains(&"rotate::encrypt::aes-256".to_owned()), "{report}");
    assert!(report.passed.contains(&"keys::tags".to_owned()), "{report}");
    assert!(report.total() < 40, "only the selected cases are reported:\n{report}");
}

#[test]
fn the_kit_deletes_every_key_it_created_and_nothing_else() {
    let local = LocalProvider::in_memory();
    let rt = runtime();
    rt.block_on(async {
        local.create_key(CreateKey::new("precious", KeySpec::Aes256)).await.unwrap();
        // Even a key that looks like the kit's own, but was not made by this run.
        local.create_key(CreateKey::new("hc-00000000-aes-256-encrypt-a", KeySpec::Aes256)).await.unwrap();
        let options = Options::new().only("keys").only("lifecycle").only("errors::already-exists");
        let report = run_cases(Arc::new(Wrapper::over(local.clone(), Fault::None)), &options).await;
        assert!(report.is_success(), "{report}");
        assert!(report.cleanup_problems.is_empty(), "{report}");
        let left: Vec<String> =
            local.list_all(ListKeys::new()).await.unwrap().into_iter().map(|k| k.name).collect();
        assert_eq!(left, ["hc-00000000-aes-256-encrypt-a", "precious"]);
    });
}

#[test]
fn keys_use_the_chosen_prefix_and_cleanup_can_be_turned_off() {
    let local = LocalProvider::in_memory();
    let rt = runtime();
    rt.block_on(async {
        let options = Options::new().key_prefix("ci-7").only("keys::tags").cleanup(false);
        let report = run_cases(Arc::new(Wrapper::over(local.clone(), Fault::None)), &options).await;
        assert!(report.is_success(), "{report}");
        assert!(report.key_prefix.starts_with("ci-7-") && report.key_prefix.len() == "ci-7-".len() + 8);
        let left = local.list_all(ListKeys::new()).await.unwrap();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.iter().all(|k| k.name.starts_with(&report.key_prefix)), "{left:?}");
    });
}

#[test]
fn a_bad_key_prefix_fails_the_setup_instead_of_making_bad_names() {
    let report = runtime()
        .block_on(run_cases(Arc::new(Wrapper::new(Fault::None)), &Options::new().key_prefix("no/slashes")));
    assert_eq!(report.failed.len(), 1, "{report}");
    assert_eq!(report.failed[0].0, "setup");
    assert!(report.failed[0].1.contains("key prefix 'no/slashes' is not usable"), "{report}");
}

#[test]
fn the_libtest_runner_reports_passes_failures_and_reasoned_ignores() {
    let log = std::env::temp_dir().join(format!("hsm-conformance-runner-{}.log", std::process::id()));
    let log_arg = log.to_string_lossy().into_owned();
    let args = Arguments::from_iter(["it", "--test-threads", "2", "--logfile", &log_arg]);
    let conclusion = Runner::new()
        .provider(
            "good",
            || async { Arc::new(Wrapper::new(Fault::None)) },
            Options::new().only("encrypt").ignore("encrypt::empty", "a known gap"),
        )
        .provider(
            "aad",
            || async { Arc::new(Wrapper::new(Fault::IgnoresAad)) },
            Options::new().only("errors::wrong-aad"),
        )
        .provider(
            "broken-factory",
            || async { Err::<Arc<dyn Provider>, _>("no credentials") },
            Options::new(),
        )
        .run_with_args(&args);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    // good: encrypt cases pass, undeclared ones are ignored with the reason; aad: its one
    // runnable wrong-aad case fails; broken-factory: a failing setup test.
    assert_eq!(conclusion.num_failed, 2, "{output}");
    assert!(conclusion.num_passed >= 5, "{output}");
    assert!(conclusion.num_ignored >= 10, "{output}");
    for line in [
        "test good::encrypt::roundtrip::aes-256::aes-gcm ... ok",
        "test good::encrypt::empty::aes-256::aes-gcm ... ignored (a known gap)",
        "test good::encrypt::roundtrip::rsa-2048::rsa-oaep-sha1 ... ignored (capabilities do not declare rsa-oaep-sha1 on rsa-2048)",
        "test aad::errors::wrong-aad::aes-128::aes-gcm ... ignored (capabilities do not declare aes-128)",
        "test aad::errors::wrong-aad::aes-256::aes-gcm ... FAILED",
        "test broken-factory::setup ... FAILED",
        "the provider factory failed: no credentials",
    ] {
        let squeezed = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeezed(&output).contains(&squeezed(line)), "missing {line:?} in:\n{output}");
    }
}

mod macro_front_end {
    use std::sync::Arc;

    hsm_conformance::conformance_tests!(|| async { Arc::new(crate::Wrapper::new(crate::Fault::None)) });
}

mod macro_front_end_with_options {
    hsm_conformance::conformance_tests!(
        || async { Ok::<_, String>(std::sync::Arc::new(crate::Wrapper::new(crate::Fault::None))) },
        hsm_conformance::Options::new()
            .ignore("rotate", "rotation is tested by the other module")
            .key_prefix("mac")
    );
}
