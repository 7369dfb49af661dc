//! `Client` end to end on the in-memory local provider.

use std::sync::Arc;

use hsm::{
    Ciphertext, Client, Config, CreateKey, EncryptionAlgorithm, Error, KeySpec, KeyState, KeyUsage, ListKeys,
    MacAlgorithm, SignatureAlgorithm, UnusableReason, WrapAlgorithm,
};

async fn client() -> Client {
    Client::connect(Config::memory()).await.expect("in-memory provider opens")
}

#[test]
fn client_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let c = Client::from_provider(Arc::new(hsm::local::LocalProvider::in_memory()));
    let ct = Ciphertext::new("k", "1", EncryptionAlgorithm::AesGcm, vec![0u8; 28]);
    is_send(&c.list_keys_where(|_| true));
    is_send(&c.encrypt("k", b"x", None));
    is_send(&c.decrypt(&ct));
    is_send(&c.sign("k", b"x", None));
    is_send(&c.verify("k", b"x", b"s", None));
    is_send(&c.wrap_key("k", b"x", None));
    is_send(&c.mac("k", b"x"));
    is_send(&Client::connect(Config::memory()));
}

#[tokio::test]
async fn create_get_and_duplicate() {
    let hsm = client().await;
    let key = hsm
        .create_key(
            CreateKey::new("my-encryption-key", KeySpec::Aes256)
                .description("Key for encrypting sensitive data")
                .tag("environment", "production")
                .tag("owner", "security-team"),
        )
        .await
        .unwrap();
    assert_eq!(key.key_id(), "my-encryption-key");
    assert_eq!(key.usage, KeyUsage::EncryptDecrypt);
    assert_eq!(key.state, KeyState::Enabled);
    assert_eq!(key.version, "1");

    let got = hsm.get_key("my-encryption-key").await.unwrap();
    assert_eq!(got.description, "Key for encrypting sensitive data");
    assert_eq!(got.tags.get("owner").map(String::as_str), Some("security-team"));

    let dup = hsm.create_key(CreateKey::new("my-encryption-key", KeySpec::Rsa2048)).await;
    assert!(
        matches!(dup, Err(Error::AlreadyExists { ref key, .. }) if key == "my-encryption-key"),
        "{dup:?}"
    );

    let missing = hsm.get_key("nope").await;
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");

    let bad = hsm.create_key(CreateKey::new("bad/name", KeySpec::Aes256)).await;
    assert!(matches!(bad, Err(Error::InvalidInput { .. })), "{bad:?}");
}

#[tokio::test]
async fn listing_all_filtered_and_matching() {
    let hsm = client().await;
    for (name, env) in [("a", "production"), ("b", "staging"), ("c", "production")] {
        hsm.create_key(CreateKey::new(name, KeySpec::HmacSha256).tag("environment", env)).await.unwrap();
    }
    let all: Vec<String> = hsm.list_keys().await.unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(all, ["a", "b", "c"]);

    let prod: Vec<String> = hsm
        .list_keys_where(|k| k.tags.get("environment").is_some_and(|v| v == "production"))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(prod, ["a", "c"]);

    let staging = hsm.list_keys_matching(ListKeys::new().tag("environment", "staging")).await.unwrap();
    assert_eq!(staging.len(), 1);
    assert_eq!(staging[0].name, "b");
}

#[tokio::test]
async fn encrypt_uses_the_natural_algorithm_and_decrypt_the_recorded_one() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("aes", KeySpec::Aes128)).await.unwrap();
    hsm.create_key(CreateKey::new("rsa", KeySpec::Rsa2048)).await.unwrap();

    let ct = hsm.encrypt("aes", b"hello", None).await.unwrap();
    assert_eq!(ct.algorithm(), EncryptionAlgorithm::AesGcm);
    assert_eq!((ct.key(), ct.version()), ("aes", "1"));
    assert_eq!(&hsm.decrypt(&ct).await.unwrap()[..], b"hello");

    let ct = hsm.encrypt("rsa", b"hello", None).await.unwrap();
    assert_eq!(ct.algorithm(), EncryptionAlgorithm::RsaOaepSha256);
    assert_eq!(&hsm.decrypt(&ct).await.unwrap()[..], b"hello");

    let ct = hsm.encrypt("rsa", b"hello", Some(EncryptionAlgorithm::RsaOaepSha1)).await.unwrap();
    assert_eq!(ct.algorithm(), EncryptionAlgorithm::RsaOaepSha1);
    // The blob survives its byte encoding.
    let back = Ciphertext::from_bytes(&ct.to_bytes()).unwrap();
    assert_eq!(&hsm.decrypt(&back).await.unwrap()[..], b"hello");

    let wrong = hsm.encrypt("aes", b"x", Some(EncryptionAlgorithm::RsaOaepSha256)).await;
    assert!(matches!(wrong, Err(Error::InvalidInput { .. })), "{wrong:?}");

    hsm.create_key(CreateKey::new("ec", KeySpec::EcP256)).await.unwrap();
    let msg = hsm.encrypt("ec", b"x", None).await.unwrap_err().to_string();
    assert!(msg.contains("does not encrypt"), "{msg}");
}

#[tokio::test]
async fn aad_must_match() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("k", KeySpec::Aes256)).await.unwrap();
    let ct = hsm.encrypt_with_aad("k", b"data", None, b"context-1").await.unwrap();
    assert_eq!(&hsm.decrypt_with_aad(&ct, b"context-1").await.unwrap()[..], b"data");
    let wrong = hsm.decrypt_with_aad(&ct, b"context-2").await;
    assert!(matches!(wrong, Err(Error::DecryptionFailed { .. })), "{wrong:?}");
    let none = hsm.decrypt(&ct).await;
    assert!(matches!(none, Err(Error::DecryptionFailed { .. })), "{none:?}");
}

#[tokio::test]
async fn rotation_keeps_old_ciphertexts_decryptable() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("k", KeySpec::Aes256)).await.unwrap();
    let old = hsm.encrypt("k", b"before", None).await.unwrap();
    let rotated = hsm.rotate_key("k").await.unwrap();
    assert_eq!(rotated.version, "2");
    assert_eq!(rotated.versions, ["1", "2"]);
    let new = hsm.encrypt("k", b"after", None).await.unwrap();
    assert_eq!(new.version(), "2");
    assert_eq!(&hsm.decrypt(&old).await.unwrap()[..], b"before");
    assert_eq!(&hsm.decrypt(&new).await.unwrap()[..], b"after");
}

#[tokio::test]
async fn disabled_keys_refuse_use_until_enabled() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("k", KeySpec::Aes256)).await.unwrap();
    let ct = hsm.encrypt("k", b"x", None).await.unwrap();
    assert_eq!(hsm.disable_key("k").await.unwrap().state, KeyState::Disabled);
    let refused = hsm.decrypt(&ct).await;
    assert!(
        matches!(refused, Err(Error::KeyUnusable { reason: UnusableReason::Disabled, .. })),
        "{refused:?}"
    );
    assert_eq!(hsm.enable_key("k").await.unwrap().state, KeyState::Enabled);
    assert_eq!(&hsm.decrypt(&ct).await.unwrap()[..], b"x");
}

#[tokio::test]
async fn deletion_can_be_scheduled_cancelled_or_immediate() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("k", KeySpec::Aes256)).await.unwrap();
    let d = hsm.schedule_key_deletion("k", Some(7)).await.unwrap();
    assert!(!d.immediate);
    assert_eq!(d.key, "k");
    assert_eq!(hsm.get_key("k").await.unwrap().state, KeyState::PendingDeletion);
    let refused = hsm.encrypt("k", b"x", None).await;
    assert!(
        matches!(refused, Err(Error::KeyUnusable { reason: UnusableReason::PendingDeletion, .. })),
        "{refused:?}"
    );
    assert_eq!(hsm.cancel_key_deletion("k").await.unwrap().state, KeyState::Disabled);

    let too_long = hsm.schedule_key_deletion("k", Some(400)).await;
    assert!(matches!(too_long, Err(Error::InvalidInput { .. })), "{too_long:?}");

    let d = hsm.schedule_key_deletion("k", Some(0)).await.unwrap();
    assert!(d.immediate);
    assert!(matches!(hsm.get_key("k").await, Err(Error::NotFound { .. })));

    hsm.create_key(CreateKey::new("d", KeySpec::Aes256)).await.unwrap();
    let d = hsm.schedule_key_deletion("d", None).await.unwrap();
    assert!(!d.immediate);
}

#[tokio::test]
async fn signatures_with_natural_and_original_algorithms() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("rsa", KeySpec::Rsa2048).usage(KeyUsage::SignVerify)).await.unwrap();
    hsm.create_key(CreateKey::new("p256", KeySpec::EcP256)).await.unwrap();
    hsm.create_key(CreateKey::new("p384", KeySpec::EcP384)).await.unwrap();
    hsm.create_key(CreateKey::new("ed", KeySpec::Ed25519)).await.unwrap();

    let pkcs1: SignatureAlgorithm = "RSASSA_PKCS1_V1_5_SHA_256".parse().unwrap();
    let sig = hsm.sign("rsa", b"data", Some(pkcs1)).await.unwrap();
    assert_eq!(sig.as_bytes().len(), 256);
    assert!(hsm.verify("rsa", b"data", sig.as_bytes(), Some(pkcs1)).await.unwrap());
    assert!(!hsm.verify("rsa", b"Data", sig.as_bytes(), Some(pkcs1)).await.unwrap());

    for (key, want) in [
        ("rsa", SignatureAlgorithm::RsaPssSha256),
        ("p256", SignatureAlgorithm::EcdsaSha256),
        ("p384", SignatureAlgorithm::EcdsaSha384),
        ("ed", SignatureAlgorithm::Ed25519),
    ] {
        let sig = hsm.sign(key, b"data", None).await.unwrap();
        assert_eq!(sig.algorithm(), want, "{key}");
        assert!(hsm.verify(key, b"data", sig.as_bytes(), None).await.unwrap(), "{key}");
        assert!(!hsm.verify(key, b"other", sig.as_bytes(), None).await.unwrap(), "{key}");
        assert!(hsm.verify_signature(&sig, b"data").await.unwrap(), "{key}");
    }

    let mismatch = hsm.sign("p256", b"data", Some(SignatureAlgorithm::EcdsaSha384)).await;
    assert!(matches!(mismatch, Err(Error::InvalidInput { .. })), "{mismatch:?}");

    hsm.create_key(CreateKey::new("aes", KeySpec::Aes256)).await.unwrap();
    let msg = hsm.verify("aes", b"data", b"sig", None).await.unwrap_err().to_string();
    assert!(msg.contains("does not sign"), "{msg}");
}

#[tokio::test]
async fn a_pinned_version_verifies_after_rotation() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("ed", KeySpec::Ed25519)).await.unwrap();
    let sig = hsm.sign("ed", b"data", None).await.unwrap();
    hsm.rotate_key("ed").await.unwrap();
    assert!(!hsm.verify("ed", b"data", sig.as_bytes(), None).await.unwrap());
    let v1 = hsm::KeyRef::new("ed").with_version("1");
    assert!(hsm.verify(v1, b"data", sig.as_bytes(), None).await.unwrap());
    assert!(hsm.verify_signature(&sig, b"data").await.unwrap());
}

#[tokio::test]
async fn public_keys_are_pem_and_only_for_asymmetric_keys() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("ec", KeySpec::EcP256)).await.unwrap();
    hsm.create_key(CreateKey::new("aes", KeySpec::Aes256)).await.unwrap();
    let pem = hsm.public_key("ec").await.unwrap().to_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    let sym = hsm.public_key("aes").await;
    assert!(matches!(sym, Err(Error::InvalidInput { .. })), "{sym:?}");
}

#[tokio::test]
async fn wrap_and_unwrap_with_aes_and_rsa() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("aes-w", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    hsm.create_key(CreateKey::new("rsa-w", KeySpec::Rsa2048).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    let material = [7u8; 32];

    let w = hsm.wrap_key("aes-w", &material, None).await.unwrap();
    assert_eq!(w.algorithm(), WrapAlgorithm::AesKeyWrapPad);
    assert_eq!(&hsm.unwrap_key(&w).await.unwrap()[..], &material);

    let w = hsm.wrap_key("aes-w", &material, Some(WrapAlgorithm::AesKeyWrap)).await.unwrap();
    assert_eq!(w.as_bytes().len(), 40);
    assert_eq!(&hsm.unwrap_key(&w).await.unwrap()[..], &material);

    let w = hsm.wrap_key("aes-w", &material, Some("AES_GCM".parse().unwrap())).await.unwrap();
    assert_eq!(&hsm.unwrap_key(&w).await.unwrap()[..], &material);

    let w = hsm.wrap_key("rsa-w", &material, None).await.unwrap();
    assert_eq!(w.algorithm(), WrapAlgorithm::RsaOaepSha256);
    assert_eq!(&hsm.unwrap_key(&w).await.unwrap()[..], &material);

    // An encryption key does not wrap.
    hsm.create_key(CreateKey::new("aes-e", KeySpec::Aes256)).await.unwrap();
    let refused = hsm.wrap_key("aes-e", &material, None).await;
    assert!(matches!(refused, Err(Error::KeyUnusable { .. })), "{refused:?}");
}

#[tokio::test]
async fn macs_verify_only_over_the_same_data() {
    let hsm = client().await;
    hsm.create_key(CreateKey::new("h", KeySpec::HmacSha384)).await.unwrap();
    let tag = hsm.mac("h", b"data").await.unwrap();
    assert_eq!(tag.algorithm(), MacAlgorithm::HmacSha384);
    assert_eq!(tag.as_bytes().len(), 48);
    assert!(hsm.verify_mac("h", b"data", tag.as_bytes()).await.unwrap());
    assert!(!hsm.verify_mac("h", b"Data", tag.as_bytes()).await.unwrap());
    assert!(hsm.verify_mac_tag(&tag, b"data").await.unwrap());

    hsm.create_key(CreateKey::new("aes", KeySpec::Aes256)).await.unwrap();
    let msg = hsm.mac("aes", b"data").await.unwrap_err().to_string();
    assert!(msg.contains("not an HMAC key"), "{msg}");
}

#[tokio::test]
async fn from_provider_shares_the_provider() {
    let provider: Arc<dyn hsm::Provider> = Arc::new(hsm::local::LocalProvider::in_memory());
    let a = Client::from_provider(provider.clone());
    let b = a.clone();
    a.create_key(CreateKey::new("shared", KeySpec::Aes256)).await.unwrap();
    assert!(b.get_key("shared").await.is_ok());
    assert!(Arc::ptr_eq(a.provider(), &provider));
    assert_eq!(a.capabilities(), provider.capabilities());
    assert_eq!(format!("{a:?}"), "Client { provider: \"local\" }");
}
