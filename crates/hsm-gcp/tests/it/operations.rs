//! Every purpose and algorithm the provider declares, native ciphertexts both ways, and the
//! algorithm a key is created with.

use bytes::Bytes;
use hsm_core::{
    Ciphertext, CreateKey, EncryptionAlgorithm as E, Error, KeyRef, KeySpec, KeyUsage, MacAlgorithm,
    Provider, SignInput, SignatureAlgorithm as S, WrapAlgorithm,
};
use hsm_gcp::google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm as Alg;

use crate::support::{provider, provider_with};

#[tokio::test]
async fn symmetric_keys_encrypt_with_aad_through_the_service() {
    let (_emu, p) = provider().await;
    for spec in [KeySpec::Aes256, KeySpec::Aes128] {
        let name = format!("sym-{spec}");
        let info = p.create_key(CreateKey::new(&name, spec)).await.unwrap();
        assert_eq!((info.spec, info.version.as_str()), (spec, "1"));
        let r = KeyRef::new(&name);
        for (pt, aad) in [(&b"hello"[..], Some(&b"ctx"[..])), (&b""[..], None), (&b""[..], Some(&b"x"[..]))] {
            let ct = p.encrypt(&r, E::AesGcm, pt, aad).await.unwrap();
            assert_eq!((ct.key(), ct.version()), (name.as_str(), "1"));
            assert_eq!(p.decrypt(&r, &ct, aad).await.unwrap().as_slice(), pt);
            let wrong = p.decrypt(&r, &ct, Some(b"other")).await.unwrap_err();
            assert!(matches!(wrong, Error::DecryptionFailed { .. }), "{wrong}");
        }
        let big = vec![7u8; 64 * 1024];
        let ct = p.encrypt(&r, E::AesGcm, &big, None).await.unwrap();
        assert_eq!(p.decrypt(&r, &ct, None).await.unwrap().as_slice(), &big[..]);
        let alg = p.key_algorithm(&r).await.unwrap();
        assert_eq!(alg.is_raw(), spec == KeySpec::Aes128, "{alg:?}");
    }
}

#[tokio::test]
async fn native_symmetric_ciphertexts_cross_between_hsm_and_the_sdk() {
    let (_emu, p) = provider().await;
    let info = p.create_key(CreateKey::new("native", KeySpec::Aes256)).await.unwrap();
    let r = KeyRef::new("native");
    // hsm → SDK: as_bytes is what Cloud KMS Decrypt takes.
    let ct = p.encrypt(&r, E::AesGcm, b"to the sdk", Some(b"aad")).await.unwrap();
    let out = p
        .client()
        .decrypt()
        .set_name(&info.native_id)
        .set_ciphertext(Bytes::copy_from_slice(ct.as_bytes()))
        .set_additional_authenticated_data(Bytes::from_static(b"aad"))
        .send()
        .await
        .unwrap();
    assert_eq!(&out.plaintext[..], b"to the sdk");
    // SDK → hsm: Ciphertext::new around Encrypt's output decrypts.
    let sdk = p
        .client()
        .encrypt()
        .set_name(&info.native_id)
        .set_plaintext(Bytes::from_static(b"from the sdk"))
        .send()
        .await
        .unwrap();
    let wrapped = Ciphertext::new("native", "1", E::AesGcm, sdk.ciphertext.clone());
    assert_eq!(p.decrypt(&r, &wrapped, None).await.unwrap().as_slice(), b"from the sdk");
    let via_helper = p.native_ciphertext(&r, sdk.ciphertext.to_vec()).await.unwrap();
    assert_eq!(p.decrypt(&r, &via_helper, None).await.unwrap().as_slice(), b"from the sdk");
}

#[tokio::test]
async fn rsa_keys_encrypt_locally_and_decrypt_on_the_service() {
    let (_emu, p) = provider_with(|c| c.with_rsa_encryption(E::RsaOaepSha1).unwrap()).await;
    assert!(p.capabilities().supports_encryption(KeySpec::Rsa2048, E::RsaOaepSha1));
    assert!(!p.capabilities().supports_encryption(KeySpec::Rsa2048, E::RsaOaepSha256));
    p.create_key(CreateKey::new("oaep1", KeySpec::Rsa2048)).await.unwrap();
    let r = KeyRef::new("oaep1");
    assert_eq!(p.key_algorithm(&r).await.unwrap().gcp, Alg::RsaDecryptOaep2048Sha1);
    for pt in [&b""[..], b"secret", &[9u8; 214][..]] {
        let ct = p.encrypt(&r, E::RsaOaepSha1, pt, None).await.unwrap();
        assert_eq!(ct.as_bytes().len(), 256);
        assert_eq!(p.decrypt(&r, &ct, None).await.unwrap().as_slice(), pt);
    }
    let err = p.encrypt(&r, E::RsaOaepSha256, b"x", None).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("RSA_DECRYPT_OAEP_2048_SHA1"), "{err}");

    // Wrapping keys are always OAEP-SHA256, and unwrap through the service.
    p.create_key(CreateKey::new("wrap", KeySpec::Rsa3072).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    let w = KeyRef::new("wrap");
    let wrapped = p.wrap_key(&w, WrapAlgorithm::RsaOaepSha256, &[3u8; 32]).await.unwrap();
    assert_eq!(p.unwrap_key(&w, &wrapped).await.unwrap().as_slice(), &[3u8; 32]);
    assert_eq!(p.get_key(&w).await.unwrap().usage, KeyUsage::WrapUnwrap);
}

#[tokio::test]
async fn every_signing_spec_signs_on_the_service_and_verifies_locally() {
    let (_emu, p) = provider().await;
    let cases = [
        (KeySpec::Rsa2048, S::RsaPssSha256),
        (KeySpec::EcP256, S::EcdsaSha256),
        (KeySpec::EcP384, S::EcdsaSha384),
        (KeySpec::EcSecp256k1, S::EcdsaSha256),
        (KeySpec::Ed25519, S::Ed25519),
    ];
    for (spec, alg) in cases {
        let name = format!("sig-{spec}");
        p.create_key(CreateKey::new(&name, spec).usage(KeyUsage::SignVerify)).await.unwrap();
        let r = KeyRef::new(&name);
        let msg = b"signed message";
        let sig = p.sign(&r, alg, SignInput::Message(msg)).await.unwrap();
        assert_eq!((sig.version(), sig.algorithm()), ("1", alg));
        assert!(p.verify(&r, alg, SignInput::Message(msg), sig.as_bytes()).await.unwrap(), "{spec}");
        assert!(!p.verify(&r, alg, SignInput::Message(b"other"), sig.as_bytes()).await.unwrap(), "{spec}");
        if let Some(d) = alg.digest() {
            let digest = match d {
                hsm_core::DigestAlgorithm::Sha384 => {
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, msg)
                }
                _ => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg),
            };
            let dsig = p.sign(&r, alg, SignInput::Digest(digest.as_ref())).await.unwrap();
            assert!(p.verify(&r, alg, SignInput::Message(msg), dsig.as_bytes()).await.unwrap(), "{spec}");
        }
        let pk = p.public_key(&r).await.unwrap();
        assert!(pk.to_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
    }
}

#[tokio::test]
async fn rsa_signing_algorithm_follows_the_configuration_and_explicit_choices() {
    let (_emu, p) = provider_with(|c| c.with_rsa_signature(S::RsaPkcs1v15Sha256).unwrap()).await;
    assert!(p.capabilities().supports_signature(KeySpec::Rsa4096, S::RsaPkcs1v15Sha256));
    assert!(!p.capabilities().supports_signature(KeySpec::Rsa4096, S::RsaPssSha256));
    p.create_key(CreateKey::new("pkcs1", KeySpec::Rsa2048).usage(KeyUsage::SignVerify)).await.unwrap();
    let r = KeyRef::new("pkcs1");
    assert_eq!(p.key_algorithm(&r).await.unwrap().gcp, Alg::RsaSignPkcs12048Sha256);
    let sig = p.sign(&r, S::RsaPkcs1v15Sha256, SignInput::Message(b"m")).await.unwrap();
    assert!(p.verify(&r, S::RsaPkcs1v15Sha256, SignInput::Message(b"m"), sig.as_bytes()).await.unwrap());
    let err = p.sign(&r, S::RsaPssSha256, SignInput::Message(b"m")).await.unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { .. }) && err.to_string().contains("RSA_SIGN_PKCS1_2048_SHA256"),
        "{err}"
    );

    // An explicit algorithm beyond the configured default.
    let req = CreateKey::new("pss512", KeySpec::Rsa4096).usage(KeyUsage::SignVerify);
    p.create_key_with_algorithm(req, Alg::RsaSignPss4096Sha512).await.unwrap();
    let r = KeyRef::new("pss512");
    let sig = p.sign(&r, S::RsaPssSha512, SignInput::Message(b"m")).await.unwrap();
    assert!(p.verify(&r, S::RsaPssSha512, SignInput::Message(b"m"), sig.as_bytes()).await.unwrap());
    // An algorithm that does not fit the request is refused before any call.
    let bad = CreateKey::new("nope", KeySpec::Rsa2048).usage(KeyUsage::SignVerify);
    let err = p.create_key_with_algorithm(bad, Alg::EcSignP256Sha256).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn hmac_keys_mac_and_verify_on_the_service() {
    let (_emu, p) = provider().await;
    for (spec, alg, len) in [
        (KeySpec::HmacSha256, MacAlgorithm::HmacSha256, 32),
        (KeySpec::HmacSha384, MacAlgorithm::HmacSha384, 48),
        (KeySpec::HmacSha512, MacAlgorithm::HmacSha512, 64),
    ] {
        let name = format!("mac-{spec}");
        p.create_key(CreateKey::new(&name, spec)).await.unwrap();
        let r = KeyRef::new(&name);
        let tag = p.mac(&r, alg, b"data").await.unwrap();
        assert_eq!(tag.as_bytes().len(), len);
        assert!(p.verify_mac(&r, alg, b"data", tag.as_bytes()).await.unwrap());
        assert!(!p.verify_mac(&r, alg, b"datA", tag.as_bytes()).await.unwrap());
    }
}

#[tokio::test]
async fn aes_keys_wrap_with_aes_gcm() {
    let (_emu, p) = provider().await;
    p.create_key(CreateKey::new("kek", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    let r = KeyRef::new("kek");
    let w = p.wrap_key(&r, WrapAlgorithm::AesGcm, &[1u8; 32]).await.unwrap();
    assert_eq!(p.unwrap_key(&r, &w).await.unwrap().as_slice(), &[1u8; 32]);
    let err = p.wrap_key(&r, WrapAlgorithm::AesKeyWrapPad, &[1u8; 32]).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}
