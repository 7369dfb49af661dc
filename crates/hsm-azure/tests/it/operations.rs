//! What is particular to Key Vault, through the provider against the emulator: native
//! names, versions and ciphertexts, AlreadyExists over Key Vault's silent new version, tags
//! and the reserved description tag, soft deletion, paging, errors from the service.

use std::time::{Duration, SystemTime};

use hsm_azure::azure_security_keyvault_keys::models::SignatureAlgorithm as KvSig;
use hsm_azure::azure_security_keyvault_keys::models::{
    EncryptionAlgorithm as KvEnc, KeyClientEncryptOptions, KeyOperationParameters, VerifyParameters,
};
use hsm_azure::{AzureKeyVaultProvider, TAG_DESCRIPTION, VaultKind};
use hsm_core::{
    Ciphertext, CreateKey, EncryptionAlgorithm, Error, KeyRef, KeySpec, KeyState, KeyUsage, ListKeys,
    Provider, ProviderExt as _, SignInput, SignatureAlgorithm, UnusableReason, WrapAlgorithm,
};

use crate::emulator::start;

fn is_kv_version(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn names_and_versions_are_key_vaults_own() {
    let emu = start(false).await;
    let p = &emu.provider;
    let info = p.create_key(CreateKey::new("invoices", KeySpec::Rsa2048)).await.unwrap();
    assert_eq!(info.name, "invoices");
    assert!(is_kv_version(&info.version), "version {}", info.version);
    assert!(info.native_id.ends_with(&format!("/keys/invoices/{}", info.version)), "{}", info.native_id);
    assert_eq!(info.usage, KeyUsage::EncryptDecrypt);
    let ct = p
        .encrypt(&KeyRef::new("invoices"), EncryptionAlgorithm::RsaOaepSha256, b"pay 10", None)
        .await
        .unwrap();
    assert_eq!(ct.version(), info.version);

    let rotated = p.rotate_key(&KeyRef::new("invoices")).await.unwrap();
    assert!(is_kv_version(&rotated.version));
    assert_ne!(rotated.version, info.version);
    assert_eq!(rotated.versions.len(), 2, "{:?}", rotated.versions);
    assert_eq!(rotated.versions.last(), Some(&rotated.version));
    // The old version still decrypts what it made.
    assert_eq!(p.decrypt(&KeyRef::new("invoices"), &ct, None).await.unwrap().as_slice(), b"pay 10");
    let old = p.get_key(&KeyRef::new("invoices").with_version(&info.version)).await.unwrap();
    assert_eq!(old.version, rotated.version, "get_key of an old version reports the current version");
    assert!(matches!(
        p.get_key(&KeyRef::new("invoices").with_version("0123456789abcdef0123456789abcdef")).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn creating_a_taken_name_is_already_exists_not_a_new_version() {
    let emu = start(false).await;
    let p = &emu.provider;
    p.create_key(CreateKey::new("dup", KeySpec::EcP256)).await.unwrap();
    let err = p.create_key(CreateKey::new("dup", KeySpec::Rsa2048)).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { ref key, .. } if key == "dup"), "{err}");
    let info = p.get_key(&KeyRef::new("dup")).await.unwrap();
    assert_eq!(info.versions.len(), 1);
    assert_eq!(info.spec, KeySpec::EcP256);
    // A soft-deleted name is taken too (Key Vault answers 409 ObjectIsDeletedButRecoverable).
    p.schedule_deletion(&KeyRef::new("dup"), None).await.unwrap();
    let err = p.create_key(CreateKey::new("dup", KeySpec::EcP256)).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
}

#[tokio::test]
async fn tags_are_native_and_the_description_lives_in_a_reserved_tag() {
    let emu = start(false).await;
    let p = &emu.provider;
    let req = CreateKey::new("tagged", KeySpec::EcP384).description("signs the ledger").tag("env", "prod");
    let info = p.create_key(req).await.unwrap();
    assert_eq!(info.description, "signs the ledger");
    assert_eq!(info.tags.get("env").map(String::as_str), Some("prod"));
    assert!(!info.tags.contains_key(TAG_DESCRIPTION), "reserved tags are hidden");
    // Other Key Vault clients see plain tags.
    let raw = p.client().get_key("tagged", None).await.unwrap().into_model().unwrap();
    let tags = raw.tags.unwrap();
    assert_eq!(tags.get(TAG_DESCRIPTION).map(String::as_str), Some("signs the ledger"));
    assert_eq!(tags.get("env").map(String::as_str), Some("prod"));
    // Rotation keeps tags and description on the new version.
    let r = p.rotate_key(&KeyRef::new("tagged")).await.unwrap();
    assert_eq!(r.description, "signs the ledger");
    assert_eq!(r.tags, info.tags);
    let err = p.create_key(CreateKey::new("bad-tag", KeySpec::EcP256).tag("hsm:x", "1")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn rsa_ciphertexts_are_native_both_ways() {
    let emu = start(false).await;
    let p = &emu.provider;
    let info = p.create_key(CreateKey::new("native", KeySpec::Rsa3072)).await.unwrap();
    let r = KeyRef::new("native");
    // hsm → another Key Vault client: as_bytes() is the value Key Vault decrypts.
    let ct = p.encrypt(&r, EncryptionAlgorithm::RsaOaepSha1, b"to the SDK", None).await.unwrap();
    let body = KeyOperationParameters {
        algorithm: Some(KvEnc::RsaOaep),
        value: Some(ct.as_bytes().to_vec()),
        ..Default::default()
    };
    let out = p.client().decrypt("native", ct.version(), body.try_into().unwrap(), None).await.unwrap();
    assert_eq!(out.into_model().unwrap().result.unwrap(), b"to the SDK");
    // Another client → hsm: its raw bytes, with the version, decrypt.
    let body = KeyOperationParameters {
        algorithm: Some(KvEnc::Rsa1_5),
        value: Some(b"from the SDK".to_vec()),
        ..Default::default()
    };
    let options = KeyClientEncryptOptions { key_version: Some(info.version.clone()), ..Default::default() };
    let out = p.client().encrypt("native", body.try_into().unwrap(), Some(options)).await.unwrap();
    let raw = out.into_model().unwrap().result.unwrap();
    let wrapped = Ciphertext::new("native", &info.version, EncryptionAlgorithm::RsaPkcs1v15, raw.clone());
    assert_eq!(p.decrypt(&r, &wrapped, None).await.unwrap().as_slice(), b"from the SDK");
    let via = p
        .native_ciphertext(&r.clone().with_version(&info.version), EncryptionAlgorithm::RsaPkcs1v15, raw)
        .await
        .unwrap();
    assert_eq!(via, wrapped);
}

#[tokio::test]
async fn aes_gcm_ciphertexts_are_iv_value_tag() {
    let emu = start(true).await;
    let p = &emu.provider;
    let info = p.create_key(CreateKey::new("gcm", KeySpec::Aes128)).await.unwrap();
    assert_eq!(info.spec, KeySpec::Aes128, "the AES size reads back");
    let r = KeyRef::new("gcm");
    let ct = p.encrypt(&r, EncryptionAlgorithm::AesGcm, b"secret", Some(b"ctx")).await.unwrap();
    assert_eq!(ct.as_bytes().len(), 12 + 6 + 16);
    assert_eq!(p.decrypt(&r, &ct, Some(b"ctx")).await.unwrap().as_slice(), b"secret");
    assert!(matches!(p.decrypt(&r, &ct, Some(b"other")).await, Err(Error::DecryptionFailed { .. })));
    // The same layout from a direct SDK call decrypts through hsm.
    let body = KeyOperationParameters {
        algorithm: Some(KvEnc::A128Gcm),
        value: Some(b"direct".to_vec()),
        additional_authenticated_data: Some(b"aad".to_vec()),
        ..Default::default()
    };
    let out = p.client().encrypt("gcm", body.try_into().unwrap(), None).await.unwrap().into_model().unwrap();
    let bytes = [out.iv.unwrap(), out.result.unwrap(), out.authentication_tag.unwrap()].concat();
    let native = Ciphertext::new("gcm", &info.version, EncryptionAlgorithm::AesGcm, bytes);
    assert_eq!(p.decrypt(&r, &native, Some(b"aad")).await.unwrap().as_slice(), b"direct");
}

#[tokio::test]
async fn ecdsa_signatures_are_der_and_the_raw_form_verifies_at_the_service() {
    let emu = start(false).await;
    let p = &emu.provider;
    for (name, spec, alg, kv, len) in [
        ("p256", KeySpec::EcP256, SignatureAlgorithm::EcdsaSha256, KvSig::Es256, 64),
        ("k256", KeySpec::EcSecp256k1, SignatureAlgorithm::EcdsaSha256, KvSig::Es256K, 64),
        ("p521", KeySpec::EcP521, SignatureAlgorithm::EcdsaSha512, KvSig::Es512, 132),
    ] {
        p.create_key(CreateKey::new(name, spec)).await.unwrap();
        let r = KeyRef::new(name);
        let sig = p.sign(&r, alg, SignInput::Message(b"ledger")).await.unwrap();
        assert_eq!(sig.as_bytes()[0], 0x30, "{name}: DER SEQUENCE");
        assert!(p.verify(&r, alg, SignInput::Message(b"ledger"), sig.as_bytes()).await.unwrap());
        assert!(!p.verify(&r, alg, SignInput::Message(b"ledgers"), sig.as_bytes()).await.unwrap());
        let raw = AzureKeyVaultProvider::raw_signature(&sig).unwrap();
        assert_eq!(raw.len(), len, "{name}");
        let hash = if alg == SignatureAlgorithm::EcdsaSha512 {
            &aws_lc_rs::digest::SHA512
        } else {
            &aws_lc_rs::digest::SHA256
        };
        let digest = aws_lc_rs::digest::digest(hash, b"ledger").as_ref().to_vec();
        let body = VerifyParameters { algorithm: Some(kv), digest: Some(digest), signature: Some(raw) };
        let out = p.client().verify(name, sig.version(), body.try_into().unwrap(), None).await.unwrap();
        assert_eq!(out.into_model().unwrap().value, Some(true), "{name}");
    }
}

#[tokio::test]
async fn managed_hsm_wraps_with_aes_key_wrap_and_vaults_refuse_aes_naming_managed_hsm() {
    let emu = start(true).await;
    let p = &emu.provider;
    p.create_key(CreateKey::new("kek", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    let r = KeyRef::new("kek");
    for (alg, material) in
        [(WrapAlgorithm::AesKeyWrap, vec![7u8; 32]), (WrapAlgorithm::AesKeyWrapPad, vec![9u8; 20])]
    {
        let w = p.wrap_key(&r, alg, &material).await.unwrap();
        assert_eq!(p.unwrap_key(&r, &w).await.unwrap().as_slice(), material.as_slice());
    }
    let vault = start(false).await;
    let err = vault.provider.create_key(CreateKey::new("aes", KeySpec::Aes256)).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("Managed HSM"), "{err}");
}

#[tokio::test]
async fn deletion_is_soft_and_can_be_cancelled_or_purged() {
    let emu = start(false).await;
    let p = &emu.provider;
    p.create_key(CreateKey::new("gone", KeySpec::EcP256)).await.unwrap();
    let r = KeyRef::new("gone");
    let before = SystemTime::now();
    let d = p.schedule_deletion(&r, None).await.unwrap();
    let days = d.deletion_date.duration_since(before).unwrap().as_secs_f64() / 86_400.0;
    assert!((89.9..90.1).contains(&days), "purge in {days} days");
    let info = p.get_key(&r).await.unwrap();
    assert_eq!(info.state, KeyState::PendingDeletion);
    let err = p.sign(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"m")).await.unwrap_err();
    assert!(matches!(err, Error::KeyUnusable { reason: UnusableReason::PendingDeletion, .. }), "{err}");
    let err = p.create_key(CreateKey::new("gone", KeySpec::EcP256)).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(p.list_all(ListKeys::new().name_prefix("gone")).await.unwrap().is_empty());
    // A window other than the vault's retention is refused.
    p.create_key(CreateKey::new("kept", KeySpec::EcP256)).await.unwrap();
    let err =
        p.schedule_deletion(&KeyRef::new("kept"), Some(Duration::from_secs(7 * 86_400))).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");

    let back = p.cancel_deletion(&r).await.unwrap();
    assert_eq!(back.state, KeyState::Disabled);
    p.set_key_state(&r, KeyState::Enabled).await.unwrap();
    p.sign(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"m")).await.unwrap();

    p.schedule_deletion(&r, None).await.unwrap();
    p.purge_deleted_key("gone").await.unwrap();
    assert!(matches!(p.get_key(&r).await, Err(Error::NotFound { .. })));
    // Purged, the name is free again.
    p.create_key(CreateKey::new("gone", KeySpec::EcP256)).await.unwrap();
}

#[tokio::test]
async fn listing_follows_next_links_and_filters_by_tag() {
    let emu = start(false).await;
    let p = &emu.provider;
    // More keys than one Key Vault page (25).
    for i in 0..27 {
        let team = if i % 3 == 0 { "a" } else { "b" };
        p.create_key(CreateKey::new(format!("k-{i:02}"), KeySpec::EcP256).tag("team", team)).await.unwrap();
    }
    let all = p.list_all(ListKeys::new().name_prefix("k-")).await.unwrap();
    let names: Vec<_> = all.iter().map(|k| k.name.clone()).collect();
    let expected: Vec<_> = (0..27).map(|i| format!("k-{i:02}")).collect();
    assert_eq!(names, expected);
    let a = p.list_all(ListKeys::new().tag("team", "a").page_size(2)).await.unwrap();
    assert_eq!(a.len(), 9);
    assert!(a.iter().all(|k| k.tags.get("team").map(String::as_str) == Some("a")));
}

#[tokio::test]
async fn a_token_the_service_rejects_is_unauthenticated() {
    use hsm_emulator::azure::{self, Args};
    let (running, pem) =
        azure::start_with_ca(Args { token: Some("the-right-one".into()), ..Args::default() }).await.unwrap();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), pem).unwrap();
    let cfg =
        crate::emulator::config_for(&running.url(), ca.path(), VaultKind::Vault).with_token("a-wrong-one");
    let p = AzureKeyVaultProvider::connect(&cfg).unwrap();
    let err = p.get_key(&KeyRef::new("any")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err}");
    let good =
        crate::emulator::config_for(&running.url(), ca.path(), VaultKind::Vault).with_token("the-right-one");
    let p = AzureKeyVaultProvider::connect(&good).unwrap();
    assert!(matches!(p.get_key(&KeyRef::new("any")).await, Err(Error::NotFound { .. })));
}
