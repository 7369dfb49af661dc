//! Deliberately broken providers: the kit must fail each, on exactly the cases that catch
//! its fault, and pass everything else.

use std::collections::BTreeSet;

use hsm_core::KeySpec;

use crate::{Fault, Wrapper, failed, run, runnable};

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_correct_provider_with_fewer_capabilities_passes_and_its_gaps_are_checked() {
    let report = run(Fault::None);
    assert!(report.is_success(), "{report}");
    // Undeclared combinations are listed as ignored with the reason, never as passed.
    assert_eq!(
        report.ignored_reason("encrypt::roundtrip::rsa-2048::rsa-oaep-sha1"),
        Some("capabilities do not declare rsa-oaep-sha1 on rsa-2048")
    );
    assert_eq!(
        report.ignored_reason("sign::roundtrip::ec-p384::ecdsa-sha384"),
        Some("capabilities do not declare ec-p384")
    );
    assert_eq!(
        report.ignored_reason("rotate::sign::ed25519"),
        Some("capabilities declare no rotation for ed25519")
    );
    assert_eq!(
        report.ignored_reason("sign::digest::ec-p256::ecdsa-sha256"),
        Some("capabilities do not declare digest signing (sign_digest) for ec-p256")
    );
    // ... and each gap is checked to fail with Unsupported.
    for gap in [
        "errors::undeclared::rsa-2048::rsa-oaep-sha1",
        "errors::undeclared::rsa-2048::rsa-pss-sha512",
        "errors::undeclared::aes-256::aes-key-wrap",
        "errors::undeclared-key::aes-128::encrypt",
        "errors::undeclared-key::ec-p384::sign",
        "errors::undeclared-rotation::ed25519",
        "errors::undeclared-digest::ec-p256::ecdsa-sha256",
    ] {
        assert!(report.passed.iter().any(|p| p == gap), "{gap} did not run and pass:\n{report}");
    }
    assert!(report.passed.len() > 120, "{report}");
    assert!(report.cleanup_problems.is_empty(), "{report}");
}

#[test]
fn a_provider_that_ignores_aad_fails_the_aad_contracts() {
    let report = run(Fault::IgnoresAad);
    assert_eq!(
        failed(&report),
        set(&[
            "envelope::context::encrypt::aes-256",
            "errors::aad-rejected::rsa-2048::rsa-oaep-sha256",
            "errors::aad-rejected::rsa-2048::rsa-pkcs1v15",
            "errors::wrong-aad::aes-256::aes-gcm",
        ]),
        "{report}"
    );
    let why = &report.failed.iter().find(|(n, _)| n == "errors::wrong-aad::aes-256::aes-gcm").unwrap().1;
    assert!(
        why.contains("decrypt with different AAD: expected DecryptionFailed but the call succeeded"),
        "{why}"
    );
}

#[test]
fn a_provider_whose_signatures_do_not_verify_independently_fails_the_independent_checks() {
    let report = run(Fault::CorruptsSignatures);
    // Its own verify accepts its signatures, so the round trips pass; every case that
    // checks a signature with an independent verifier fails.
    let caps = Wrapper::new(Fault::CorruptsSignatures).caps;
    let want = runnable(&caps, |n| {
        n.starts_with("sign::independent::")
            || n.starts_with("sign::digest::")
            || n.starts_with("rotate::sign::")
    });
    assert_eq!(want.len(), 8, "{want:?}");
    assert_eq!(failed(&report), want, "{report}");
    assert!(report.passed.iter().any(|n| n == "sign::roundtrip::ec-p256::ecdsa-sha256"), "{report}");
    let why = &report.failed.iter().find(|(n, _)| n == "sign::independent::ed25519::ed25519").unwrap().1;
    assert!(why.contains("independent ed25519 verification (ed25519) failed"), "{why}");
}

#[test]
fn a_provider_declaring_an_algorithm_it_cannot_do_fails_every_case_using_it() {
    let report = run(Fault::DeclaresUnsupported);
    let want: BTreeSet<String> = [
        "encrypt::roundtrip",
        "encrypt::empty",
        "encrypt::max-length",
        "encrypt::independent",
        "errors::tampered",
        "errors::foreign-ciphertext",
        "errors::aad-rejected",
    ]
    .iter()
    .map(|c| format!("{c}::rsa-2048::rsa-oaep-sha1"))
    .collect();
    assert_eq!(failed(&report), want, "{report}");
    // The one case whose contract (InvalidInput for an oversized plaintext) comes before
    // the algorithm is even tried still passes.
    assert!(report.passed.iter().any(|n| n == "errors::oversized::rsa-2048::rsa-oaep-sha1"), "{report}");
    let why = &report.failed.iter().find(|(n, _)| n.starts_with("encrypt::roundtrip")).unwrap().1;
    assert!(why.contains("Unsupported"), "{why}");
}

#[test]
fn a_provider_declaring_an_algorithm_that_does_not_fit_its_spec_fails_the_capability_check() {
    let report = run(Fault::DeclaresMisfit);
    assert_eq!(failed(&report), set(&["capabilities::well-formed"]), "{report}");
    let why = &report.failed[0].1;
    assert!(why.contains("rsa-2048 declares aes-gcm, which does not fit a rsa-2048 key"), "{why}");
}

#[test]
fn a_provider_leaking_plaintext_in_debug_fails_the_secret_checks() {
    let report = run(Fault::LeaksPlaintext);
    assert_eq!(failed(&report), set(&["secrets::debug::encrypt", "secrets::debug::wrap"]), "{report}");
    let why = &report.failed.iter().find(|(n, _)| n == "secrets::debug::encrypt").unwrap().1;
    assert!(
        why.contains("the plaintext appears (as a list of byte values) in the Debug of the provider"),
        "{why}"
    );
}

#[test]
fn a_provider_whose_pagination_drops_keys_fails_the_pagination_check() {
    let report = run(Fault::DropsPages);
    assert_eq!(failed(&report), set(&["keys::list::pagination"]), "{report}");
    let why = &report.failed[0].1;
    assert!(why.contains("never returned"), "{why}");
}

#[test]
fn a_provider_that_decrypts_with_the_current_version_fails_the_rotation_checks() {
    let report = run(Fault::ForgetsVersions);
    let caps = Wrapper::new(Fault::ForgetsVersions).caps;
    let want = runnable(&caps, |n| {
        [
            "rotate::encrypt::",
            "rotate::wrap::",
            "envelope::rotation::encrypt::",
            "envelope::rotation::wrap::",
            // Re-protecting under the current version first opens the old stanza.
            "envelope::rewrap_rotation::",
        ]
        .iter()
        .any(|p| n.starts_with(p))
    });
    assert_eq!(want.len(), 12, "{want:?}");
    assert_eq!(failed(&report), want, "{report}");
    let why = &report.failed.iter().find(|(n, _)| n == "rotate::encrypt::aes-256").unwrap().1;
    assert!(why.contains("opening the ciphertext after rotation failed with DecryptionFailed"), "{why}");
}

#[test]
fn the_restricted_capabilities_are_what_the_broken_providers_assume() {
    let caps = Wrapper::new(Fault::None).caps;
    assert_eq!(caps.specs.len(), 5);
    assert!(caps.spec(KeySpec::Rsa2048).is_some_and(|c| c.rotation && c.sign_digest));
}
