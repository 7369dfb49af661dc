//! Bad input gets a clear typed error, before any call where the provider can tell.

use std::time::{Duration, Instant};

use hsm_core::{CreateKey, EncryptionAlgorithm as E, Error, KeyRef, KeySpec, KeyUsage, Provider};
use hsm_gcp::{GcpConfig, GcpKmsProvider};

use crate::support::{config, provider};

/// A provider on a port nobody listens on: any error other than `Unavailable` was raised
/// before a call.
async fn unreachable() -> GcpKmsProvider {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    GcpKmsProvider::connect(&config(&format!("http://127.0.0.1:{port}"))).await.unwrap()
}

#[tokio::test]
async fn labels_breaking_googles_rules_are_refused_before_any_call() {
    let p = unreachable().await;
    for (k, v, says) in [
        ("Env", "prod", "lowercase letter"),
        ("env", "Prod", "'P'"),
        ("env", "a b", "' '"),
        ("hsm_usage", "x", "reserved"),
        ("k", "", ""),
    ] {
        let result = p.create_key(CreateKey::new("k1", KeySpec::Aes256).tag(k, v)).await;
        match result {
            Err(Error::InvalidInput { message, .. }) => assert!(message.contains(says), "{message}"),
            Err(Error::Unavailable { .. }) if v.is_empty() => {} // a valid label: the call was made
            other => panic!("tag {k}={v}: {other:?}"),
        }
    }
    let long = "v".repeat(64);
    let err = p.create_key(CreateKey::new("k1", KeySpec::Aes256).tag("k", &long)).await.unwrap_err();
    assert!(err.to_string().contains("64 characters"), "{err}");
    // Too many labels once the description is counted.
    let tags: Vec<(String, String)> = (0..50).map(|i| (format!("t{i}"), "v".to_owned())).collect();
    let req = CreateKey::new("k1", KeySpec::Aes256).tags(tags).description("d".repeat(1000));
    let err = p.create_key(req).await.unwrap_err();
    assert!(err.to_string().contains("at most 64"), "{err}");
}

#[tokio::test]
async fn undeclared_specs_and_bad_names_are_refused_before_any_call() {
    let p = unreachable().await;
    for spec in [KeySpec::Aes192, KeySpec::EcP521] {
        let err = p.create_key(CreateKey::new("k", spec)).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{spec}: {err}");
    }
    let err =
        p.create_key(CreateKey::new("k", KeySpec::EcP256).usage(KeyUsage::EncryptDecrypt)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = p.get_key(&KeyRef::new("no/slash")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = p.create_key(CreateKey::new("a".repeat(64), KeySpec::Aes256)).await.unwrap_err();
    assert!(err.to_string().contains("limit is 63"), "{err}");
}

#[tokio::test]
async fn an_endpoint_nobody_listens_on_is_unavailable_quickly() {
    let p = unreachable().await;
    let start = Instant::now();
    let err = p.get_key(&KeyRef::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    // With the default three attempts it still fails within seconds, not a minute.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let cfg = GcpConfig::from_url(&format!(
        "gcp-kms://projects/p/locations/global/keyRings/r?endpoint=http://127.0.0.1:{port}"
    ))
    .unwrap();
    let p = GcpKmsProvider::connect(&cfg).await.unwrap();
    let start = Instant::now();
    let err = p.get_key(&KeyRef::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    eprintln!("three attempts against a closed port failed in {:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[tokio::test]
async fn oversized_inputs_unknown_keys_and_versions_get_typed_errors() {
    let (_emu, p) = provider().await;
    p.create_key(CreateKey::new("big", KeySpec::Aes256)).await.unwrap();
    let r = KeyRef::new("big");
    let err = p.encrypt(&r, E::AesGcm, &vec![0u8; 64 * 1024 + 1], None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("65537"), "{err}");
    let err = p.encrypt(&r, E::AesGcm, b"x", Some(&vec![0u8; 64 * 1024 + 1])).await.unwrap_err();
    assert!(err.to_string().contains("AAD is 65537 bytes"), "{err}");
    let err = p.encrypt(&r, E::RsaOaepSha256, b"x", None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = p.get_key(&KeyRef::new("missing")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = p.get_key(&r.clone().with_version("9")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = p.get_key(&r.clone().with_version("x")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = p.create_key(CreateKey::new("big", KeySpec::Aes256)).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
}

#[tokio::test]
async fn a_missing_key_ring_without_create_says_how_to_fix_it() {
    let emu = crate::support::emulator().await;
    let p = GcpKmsProvider::connect(&config(&emu.url()).create_key_ring(false)).await.unwrap();
    let err = p.create_key(CreateKey::new("k", KeySpec::Aes256)).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }) && err.to_string().contains("create_key_ring"), "{err}");
}
