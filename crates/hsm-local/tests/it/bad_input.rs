//! Every bad input of the issue gets a typed error, and nothing changes.

use hsm_core::{
    Ciphertext, CreateKey, EncryptionAlgorithm, Error, KeyRef, KeySpec, KeyUsage, ListKeys, MacAlgorithm,
    Provider, ProviderExt, SignInput, Signature, SignatureAlgorithm, UnusableReason, WrapAlgorithm,
    WrappedKey,
};
use hsm_local::LocalProvider;

use crate::{assert_err, key};

fn message(e: &Error) -> String {
    e.to_string()
}

#[tokio::test]
async fn empty_overlong_and_illegal_names_are_refused() {
    let p = LocalProvider::in_memory();
    let cases = [
        (String::new(), "empty"),
        ("a".repeat(64), "limit is 63"),
        ("has space".into(), "' '"),
        ("slash/name".into(), "'/'"),
        ("-leading".into(), "must start"),
        ("clé".into(), "'é'"),
        ("nul\0".into(), "'\\0'"),
    ];
    for (name, why) in &cases {
        let e = assert_err!(
            p.create_key(CreateKey::new(name.clone(), KeySpec::Aes256)).await,
            Error::InvalidInput { .. }
        );
        assert!(message(&e).contains(why), "{name:?}: {e}");
        // Lookups explain the same problem rather than just "not found".
        assert_err!(p.get_key(&KeyRef::new(name.clone())).await, Error::InvalidInput { .. });
    }
    assert!(p.list_all(ListKeys::new()).await.unwrap().is_empty(), "nothing was created");
    key(&p, &"a".repeat(63), KeySpec::Aes256, None).await;
}

#[tokio::test]
async fn usage_and_metadata_limits_are_checked_on_create() {
    let p = LocalProvider::in_memory();
    assert_err!(
        p.create_key(CreateKey::new("k", KeySpec::EcP256).usage(KeyUsage::EncryptDecrypt)).await,
        Error::InvalidInput { .. }
    );
    assert_err!(
        p.create_key(CreateKey::new("k", KeySpec::HmacSha256).usage(KeyUsage::SignVerify)).await,
        Error::InvalidInput { .. }
    );
    assert_err!(
        p.create_key(CreateKey::new("k", KeySpec::Aes128).description("x".repeat(1025))).await,
        Error::InvalidInput { .. }
    );
    assert_err!(
        p.create_key(CreateKey::new("k", KeySpec::Aes128).tag("", "v")).await,
        Error::InvalidInput { .. }
    );
    assert_err!(p.get_key(&"k".into()).await, Error::NotFound { .. });
}

#[tokio::test]
async fn algorithms_that_do_not_fit_the_key_are_invalid_input() {
    let p = LocalProvider::in_memory();
    key(&p, "ec", KeySpec::EcP256, None).await;
    key(&p, "rsa", KeySpec::Rsa2048, Some(KeyUsage::WrapUnwrap)).await;
    key(&p, "aes", KeySpec::Aes256, None).await;
    key(&p, "mac", KeySpec::HmacSha256, None).await;

    // RSA-OAEP on an EC key: the EC key's usage is sign, so the usage check answers first.
    let e = assert_err!(
        p.encrypt(&"ec".into(), EncryptionAlgorithm::RsaOaepSha256, b"x", None).await,
        Error::KeyUnusable { .. }
    );
    assert!(matches!(e, Error::KeyUnusable { reason: UnusableReason::WrongUsage { .. }, .. }));
    // ECDSA-SHA384 on a P-256 key.
    let e = assert_err!(
        p.sign(&"ec".into(), SignatureAlgorithm::EcdsaSha384, SignInput::Message(b"m")).await,
        Error::InvalidInput { .. }
    );
    assert!(message(&e).contains("ecdsa-sha256"), "the error suggests the right algorithm: {e}");
    assert_err!(
        p.verify(&"ec".into(), SignatureAlgorithm::RsaPssSha256, SignInput::Message(b"m"), &[0; 70]).await,
        Error::InvalidInput { .. }
    );
    // AES key wrap on an RSA key.
    let e = assert_err!(
        p.wrap_key(&"rsa".into(), WrapAlgorithm::AesKeyWrap, &[0; 16]).await,
        Error::InvalidInput { .. }
    );
    assert!(message(&e).contains("rsa-oaep-sha256"), "{e}");
    // RSA-OAEP on an AES key, AES-GCM with the wrong MAC algorithm.
    assert_err!(
        p.encrypt(&"aes".into(), EncryptionAlgorithm::RsaOaepSha1, b"x", None).await,
        Error::InvalidInput { .. }
    );
    assert_err!(p.mac(&"mac".into(), MacAlgorithm::HmacSha512, b"x").await, Error::InvalidInput { .. });
    // Wrong usage: wrapping with an encryption key, encrypting with a wrapping key.
    assert_err!(
        p.wrap_key(&"aes".into(), WrapAlgorithm::AesKeyWrap, &[0; 16]).await,
        Error::KeyUnusable { .. }
    );
    assert_err!(
        p.encrypt(&"rsa".into(), EncryptionAlgorithm::RsaOaepSha256, b"x", None).await,
        Error::KeyUnusable { .. }
    );
    // Digests: wrong length, or with Ed25519.
    let e = assert_err!(
        p.sign(&"ec".into(), SignatureAlgorithm::EcdsaSha256, SignInput::Digest(&[0; 31])).await,
        Error::InvalidInput { .. }
    );
    assert!(message(&e).contains("31 bytes"), "{e}");
    key(&p, "ed", KeySpec::Ed25519, None).await;
    assert_err!(
        p.sign(&"ed".into(), SignatureAlgorithm::Ed25519, SignInput::Digest(&[0; 32])).await,
        Error::InvalidInput { .. }
    );
    // AAD with RSA.
    key(&p, "rsa-enc", KeySpec::Rsa2048, None).await;
    assert_err!(
        p.encrypt(&"rsa-enc".into(), EncryptionAlgorithm::RsaOaepSha256, b"x", Some(b"aad")).await,
        Error::InvalidInput { .. }
    );
    // Public key of a symmetric key.
    assert_err!(p.public_key(&"aes".into()).await, Error::InvalidInput { .. });
}

#[tokio::test]
async fn sizes_are_checked_before_any_work() {
    let p = LocalProvider::in_memory();
    key(&p, "rsa", KeySpec::Rsa2048, None).await;
    key(&p, "kw", KeySpec::Aes192, Some(KeyUsage::WrapUnwrap)).await;
    let k: KeyRef = "rsa".into();
    let e = assert_err!(
        p.encrypt(&k, EncryptionAlgorithm::RsaOaepSha256, &[0; 191], None).await,
        Error::InvalidInput { .. }
    );
    assert!(message(&e).contains("at most 190"), "{e}");
    assert_err!(
        p.encrypt(&k, EncryptionAlgorithm::RsaOaepSha1, &[0; 215], None).await,
        Error::InvalidInput { .. }
    );
    assert_err!(
        p.encrypt(&k, EncryptionAlgorithm::RsaPkcs1v15, &[0; 246], None).await,
        Error::InvalidInput { .. }
    );
    assert!(p.encrypt(&k, EncryptionAlgorithm::RsaPkcs1v15, &[0; 245], None).await.is_ok());
    for n in [0, 8, 15, 17] {
        assert_err!(
            p.wrap_key(&"kw".into(), WrapAlgorithm::AesKeyWrap, &vec![1; n]).await,
            Error::InvalidInput { .. }
        );
    }
    assert_err!(
        p.wrap_key(&"kw".into(), WrapAlgorithm::AesKeyWrapPad, &[]).await,
        Error::InvalidInput { .. }
    );
    key(&p, "big", KeySpec::Aes128, None).await;
    let max = p.capabilities().spec(KeySpec::Aes128).unwrap().max_plaintext_len.unwrap();
    let e = assert_err!(
        p.encrypt(&"big".into(), EncryptionAlgorithm::AesGcm, &vec![0; max + 1], None).await,
        Error::InvalidInput { .. }
    );
    assert!(message(&e).contains("envelope"), "{e}");
}

#[tokio::test]
async fn truncated_tampered_and_foreign_ciphertexts_fail_opaquely() {
    let p = LocalProvider::in_memory();
    key(&p, "aes", KeySpec::Aes256, None).await;
    key(&p, "other", KeySpec::Aes256, None).await;
    key(&p, "rsa", KeySpec::Rsa2048, None).await;
    let ct =
        p.encrypt(&"aes".into(), EncryptionAlgorithm::AesGcm, b"attack at dawn", Some(b"ctx")).await.unwrap();

    // Truncated blob encodings are malformed input.
    let bytes = ct.to_bytes();
    for n in [0, 4, 10, bytes.len() - 1] {
        assert_err!(Ciphertext::from_bytes(&bytes[..n]), Error::InvalidInput { .. });
    }
    // Truncated or tampered payloads fail decryption, opaquely.
    let payload = ct.as_bytes();
    for n in [0, 11, 12, 27, payload.len() - 1] {
        let t = Ciphertext::new("aes", "1", EncryptionAlgorithm::AesGcm, payload[..n].to_vec());
        let e = assert_err!(p.decrypt_blob(&t, Some(b"ctx")).await, Error::DecryptionFailed { .. });
        assert_eq!(e.to_string(), "local: decryption failed");
    }
    for i in [0, 11, 12, payload.len() - 17, payload.len() - 1] {
        let mut t = payload.to_vec();
        t[i] ^= 0x40;
        let t = Ciphertext::new("aes", "1", EncryptionAlgorithm::AesGcm, t);
        assert_err!(p.decrypt_blob(&t, Some(b"ctx")).await, Error::DecryptionFailed { .. });
    }
    // Wrong or missing AAD.
    assert_err!(p.decrypt_blob(&ct, Some(b"ctX")).await, Error::DecryptionFailed { .. });
    assert_err!(p.decrypt_blob(&ct, None).await, Error::DecryptionFailed { .. });
    // A ciphertext made with another key: refused by name, and by cryptography if relabelled.
    let e = assert_err!(p.decrypt(&"other".into(), &ct, Some(b"ctx")).await, Error::InvalidInput { .. });
    assert!(message(&e).contains("'aes'"), "{e}");
    let relabelled = Ciphertext::new("other", "1", EncryptionAlgorithm::AesGcm, ct.bytes().clone());
    assert_err!(p.decrypt_blob(&relabelled, Some(b"ctx")).await, Error::DecryptionFailed { .. });
    // A ciphertext claiming an algorithm the key does not have.
    let wrong_alg = Ciphertext::new("aes", "1", EncryptionAlgorithm::RsaOaepSha256, ct.bytes().clone());
    assert_err!(p.decrypt_blob(&wrong_alg, None).await, Error::InvalidInput { .. });
    // RSA: wrong length and garbage of the right length.
    for bad in [vec![1u8; 10], vec![1u8; 256], vec![0u8; 256], vec![0xff; 256]] {
        for alg in [
            EncryptionAlgorithm::RsaOaepSha1,
            EncryptionAlgorithm::RsaOaepSha256,
            EncryptionAlgorithm::RsaPkcs1v15,
        ] {
            let t = Ciphertext::new("rsa", "1", alg, bad.clone());
            assert_err!(p.decrypt_blob(&t, None).await, Error::DecryptionFailed { .. });
        }
    }
    // An RSA-OAEP-SHA-256 ciphertext presented as SHA-1.
    let rct = p.encrypt(&"rsa".into(), EncryptionAlgorithm::RsaOaepSha256, b"x", None).await.unwrap();
    let as_sha1 = Ciphertext::new("rsa", "1", EncryptionAlgorithm::RsaOaepSha1, rct.bytes().clone());
    assert_err!(p.decrypt_blob(&as_sha1, None).await, Error::DecryptionFailed { .. });
}

#[tokio::test]
async fn tampered_wrapped_keys_fail_opaquely() {
    let p = LocalProvider::in_memory();
    key(&p, "kek", KeySpec::Aes256, Some(KeyUsage::WrapUnwrap)).await;
    for alg in [WrapAlgorithm::AesKeyWrap, WrapAlgorithm::AesKeyWrapPad, WrapAlgorithm::AesGcm] {
        let w = p.wrap_key(&"kek".into(), alg, &[7; 32]).await.unwrap();
        for i in 0..w.as_bytes().len() {
            let mut t = w.as_bytes().to_vec();
            t[i] ^= 1;
            let t = WrappedKey::new("kek", "1", alg, t);
            assert_err!(p.unwrap_blob(&t).await, Error::DecryptionFailed { .. });
        }
        let short = WrappedKey::new("kek", "1", alg, w.as_bytes()[..w.as_bytes().len() - 8].to_vec());
        assert_err!(p.unwrap_blob(&short).await, Error::DecryptionFailed { .. });
    }
    // RFC 3394 output presented as RFC 5649 and the other way round.
    let kw = p.wrap_key(&"kek".into(), WrapAlgorithm::AesKeyWrap, &[7; 32]).await.unwrap();
    let as_kwp = WrappedKey::new("kek", "1", WrapAlgorithm::AesKeyWrapPad, kw.bytes().clone());
    assert_err!(p.unwrap_blob(&as_kwp).await, Error::DecryptionFailed { .. });
}

#[tokio::test]
async fn signatures_of_impossible_length_are_invalid_and_bad_ones_are_false() {
    let p = LocalProvider::in_memory();
    key(&p, "rsa", KeySpec::Rsa2048, Some(KeyUsage::SignVerify)).await;
    key(&p, "ed", KeySpec::Ed25519, None).await;
    key(&p, "ec", KeySpec::EcP521, None).await;
    let m = SignInput::Message(b"msg");
    let e = assert_err!(
        p.verify(&"rsa".into(), SignatureAlgorithm::RsaPssSha256, m, &[0; 255]).await,
        Error::InvalidInput { .. }
    );
    assert!(message(&e).contains("256 bytes"), "{e}");
    assert_err!(
        p.verify(&"ed".into(), SignatureAlgorithm::Ed25519, m, &[0; 63]).await,
        Error::InvalidInput { .. }
    );
    assert_err!(
        p.verify(&"ec".into(), SignatureAlgorithm::EcdsaSha512, m, &[]).await,
        Error::InvalidInput { .. }
    );
    // Right length (or variable length) but wrong: false, never an error.
    assert!(!p.verify(&"rsa".into(), SignatureAlgorithm::RsaPssSha256, m, &[0; 256]).await.unwrap());
    assert!(!p.verify(&"ed".into(), SignatureAlgorithm::Ed25519, m, &[0; 64]).await.unwrap());
    for garbage in [&[0x30u8][..], &[0x30, 0x00], &[1, 2, 3], &[0xff; 139], &[0x30; 300]] {
        assert!(!p.verify(&"ec".into(), SignatureAlgorithm::EcdsaSha512, m, garbage).await.unwrap());
    }
    let sig = p.sign(&"ec".into(), SignatureAlgorithm::EcdsaSha512, m).await.unwrap();
    let mut t = sig.as_bytes().to_vec();
    let last = t.len() - 1;
    t[last] ^= 1;
    assert!(!p.verify(&"ec".into(), SignatureAlgorithm::EcdsaSha512, m, &t).await.unwrap());
    // A signature blob naming another key is checked against the key it names.
    let moved = Signature::new("ed", "1", SignatureAlgorithm::EcdsaSha512, sig.bytes().clone());
    assert_err!(p.verify_signature(&moved, b"msg").await, Error::InvalidInput { .. });
    // MAC tags of the wrong length.
    key(&p, "mac", KeySpec::HmacSha384, None).await;
    assert_err!(
        p.verify_mac(&"mac".into(), MacAlgorithm::HmacSha384, b"m", &[0; 32]).await,
        Error::InvalidInput { .. }
    );
    assert!(!p.verify_mac(&"mac".into(), MacAlgorithm::HmacSha384, b"m", &[0; 48]).await.unwrap());
}

#[tokio::test]
async fn errors_never_contain_plaintext() {
    let p = LocalProvider::in_memory();
    key(&p, "rsa", KeySpec::Rsa2048, None).await;
    let secret = b"SUPER-SECRET-PLAINTEXT".repeat(10);
    let e = p.encrypt(&"rsa".into(), EncryptionAlgorithm::RsaOaepSha256, &secret, None).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("SUPER-SECRET"), "{shown}");
}
