//! Key lifecycle: metadata, listing, rotation, enable/disable, deletion.

use std::time::{Duration, SystemTime};

use hsm_core::{
    CreateKey, EncryptionAlgorithm, Error, KeyRef, KeySpec, KeyState, KeyUsage, ListKeys, MacAlgorithm,
    Provider, ProviderExt, SignInput, SignatureAlgorithm, UnusableReason, WrapAlgorithm,
};
use hsm_local::LocalProvider;

use crate::{assert_err, key};

const DAY: u64 = 86_400;

#[tokio::test]
async fn create_records_description_tags_and_metadata() {
    let p = LocalProvider::in_memory();
    let before = SystemTime::now();
    let info = p
        .create_key(
            CreateKey::new("invoices", KeySpec::Aes256)
                .description("Key for encrypting invoices")
                .tag("environment", "production")
                .tag("owner", "security-team"),
        )
        .await
        .unwrap();
    assert_eq!(info.name, "invoices");
    assert_eq!(info.version, "1");
    assert_eq!(info.versions, ["1"]);
    assert_eq!(info.usage, KeyUsage::EncryptDecrypt);
    assert_eq!(info.state, KeyState::Enabled);
    assert_eq!(info.description, "Key for encrypting invoices");
    assert_eq!(info.tags.get("owner").map(String::as_str), Some("security-team"));
    assert!(info.created >= before - Duration::from_secs(1));
    assert_eq!(info.deletion_date, None);
    assert_eq!(p.get_key(&"invoices".into()).await.unwrap(), info);
    assert!(p.key_exists("invoices").await.unwrap());
    assert!(!p.key_exists("nope").await.unwrap());
}

#[tokio::test]
async fn duplicate_names_and_missing_keys_are_typed_errors() {
    let p = LocalProvider::in_memory();
    key(&p, "dup", KeySpec::EcP256, None).await;
    let e =
        assert_err!(p.create_key(CreateKey::new("dup", KeySpec::Aes128)).await, Error::AlreadyExists { .. });
    assert!(e.to_string().contains("'dup' already exists"), "{e}");
    assert_eq!(p.get_key(&"dup".into()).await.unwrap().spec, KeySpec::EcP256, "the original is untouched");
    assert_err!(p.get_key(&"missing".into()).await, Error::NotFound { .. });
    assert_err!(p.get_key(&KeyRef::new("dup").with_version("2")).await, Error::NotFound { .. });
    assert_err!(
        p.encrypt(&"missing".into(), EncryptionAlgorithm::AesGcm, b"x", None).await,
        Error::NotFound { .. }
    );
    assert_err!(p.rotate_key(&"missing".into()).await, Error::NotFound { .. });
    assert_err!(p.set_key_state(&"missing".into(), KeyState::Disabled).await, Error::NotFound { .. });
    assert_err!(p.schedule_deletion(&"missing".into(), None).await, Error::NotFound { .. });
    assert_err!(p.cancel_deletion(&"missing".into()).await, Error::NotFound { .. });
    assert_err!(p.public_key(&"missing".into()).await, Error::NotFound { .. });
}

#[tokio::test]
async fn rotation_keeps_every_old_version_working() {
    let p = LocalProvider::in_memory();
    key(&p, "aes", KeySpec::Aes256, None).await;
    key(&p, "wrap", KeySpec::Aes128, Some(KeyUsage::WrapUnwrap)).await;
    key(&p, "ec", KeySpec::EcP384, None).await;
    key(&p, "mac", KeySpec::HmacSha256, None).await;
    let ct1 = p.encrypt(&"aes".into(), EncryptionAlgorithm::AesGcm, b"v1 data", Some(b"a")).await.unwrap();
    let w1 = p.wrap_key(&"wrap".into(), WrapAlgorithm::AesKeyWrapPad, b"secret").await.unwrap();
    let s1 = p.sign(&"ec".into(), SignatureAlgorithm::EcdsaSha384, SignInput::Message(b"doc")).await.unwrap();
    let m1 = p.mac(&"mac".into(), MacAlgorithm::HmacSha256, b"msg").await.unwrap();
    let pk1 = p.public_key(&"ec".into()).await.unwrap();

    for name in ["aes", "wrap", "ec", "mac"] {
        let r1 = p.rotate_key(&name.into()).await.unwrap();
        assert_eq!((r1.version.as_str(), r1.versions.clone()), ("2", vec!["1".into(), "2".into()]));
        let r2 = p.rotate_key(&name.into()).await.unwrap();
        assert_eq!(r2.versions, ["1", "2", "3"]);
    }

    let ct3 = p.encrypt(&"aes".into(), EncryptionAlgorithm::AesGcm, b"v3 data", None).await.unwrap();
    assert_eq!(ct3.version(), "3");
    assert_eq!(&p.decrypt_blob(&ct1, Some(b"a")).await.unwrap()[..], b"v1 data");
    assert_eq!(&p.decrypt_blob(&ct3, None).await.unwrap()[..], b"v3 data");
    // The versions really differ: the old blob relabelled as version 3 does not decrypt.
    let relabelled = hsm_core::Ciphertext::new("aes", "3", EncryptionAlgorithm::AesGcm, ct1.bytes().clone());
    assert_err!(p.decrypt_blob(&relabelled, Some(b"a")).await, Error::DecryptionFailed { .. });

    assert_eq!(&p.unwrap_blob(&w1).await.unwrap()[..], b"secret");
    assert!(p.verify_signature(&s1, b"doc").await.unwrap());
    assert!(
        !p.verify(&"ec".into(), SignatureAlgorithm::EcdsaSha384, SignInput::Message(b"doc"), s1.as_bytes())
            .await
            .unwrap(),
        "the current version does not verify version 1's signature"
    );
    assert!(p.verify_mac_tag(&m1, b"msg").await.unwrap());

    let pk3 = p.public_key(&"ec".into()).await.unwrap();
    assert_eq!(pk3.version, "3");
    assert_ne!(pk3.spki_der, pk1.spki_der);
    assert_eq!(p.public_key(&KeyRef::new("ec").with_version("1")).await.unwrap().spki_der, pk1.spki_der);
    // Pinned versions sign too, and what they sign records that version.
    let pinned = p
        .sign(&KeyRef::new("ec").with_version("1"), SignatureAlgorithm::EcdsaSha384, SignInput::Message(b"d"))
        .await
        .unwrap();
    assert_eq!(pinned.version(), "1");
    assert!(p.verify_signature(&pinned, b"d").await.unwrap());

    // A version that never existed.
    let ghost = hsm_core::Ciphertext::new("aes", "9", EncryptionAlgorithm::AesGcm, ct1.bytes().clone());
    let e = assert_err!(p.decrypt_blob(&ghost, Some(b"a")).await, Error::NotFound { .. });
    assert!(e.to_string().contains("aes@9"), "{e}");
}

#[tokio::test]
async fn disabled_keys_refuse_every_operation_until_enabled() {
    let p = LocalProvider::in_memory();
    key(&p, "k", KeySpec::Aes256, None).await;
    key(&p, "s", KeySpec::Ed25519, None).await;
    let ct = p.encrypt(&"k".into(), EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    let sig = p.sign(&"s".into(), SignatureAlgorithm::Ed25519, SignInput::Message(b"m")).await.unwrap();
    for name in ["k", "s"] {
        let info = p.set_key_state(&name.into(), KeyState::Disabled).await.unwrap();
        assert_eq!(info.state, KeyState::Disabled);
    }
    let unusable = |r: Result<_, Error>| match r {
        Err(Error::KeyUnusable { reason: UnusableReason::Disabled, .. }) => {}
        other => panic!("expected KeyUnusable(Disabled), got {:?}", other.map(|_| ())),
    };
    unusable(p.encrypt(&"k".into(), EncryptionAlgorithm::AesGcm, b"x", None).await.map(|_| ()));
    unusable(p.decrypt_blob(&ct, None).await.map(|_| ()));
    unusable(p.sign(&"s".into(), SignatureAlgorithm::Ed25519, SignInput::Message(b"m")).await.map(|_| ()));
    unusable(p.verify_signature(&sig, b"m").await.map(|_| ()));
    // Metadata and the public key stay readable.
    assert_eq!(p.get_key(&"k".into()).await.unwrap().state, KeyState::Disabled);
    assert!(p.public_key(&"s".into()).await.is_ok());
    // Rotation of a disabled key is allowed; enabling brings everything back.
    p.rotate_key(&"k".into()).await.unwrap();
    p.set_key_state(&"k".into(), KeyState::Enabled).await.unwrap();
    assert_eq!(&p.decrypt_blob(&ct, None).await.unwrap()[..], b"x");
    assert_err!(p.set_key_state(&"k".into(), KeyState::PendingDeletion).await, Error::InvalidInput { .. });
}

#[tokio::test]
async fn scheduled_deletion_refuses_use_and_can_be_cancelled_to_disabled() {
    let p = LocalProvider::in_memory();
    key(&p, "k", KeySpec::Aes256, None).await;
    let ct = p.encrypt(&"k".into(), EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    let now = SystemTime::now();
    let d = p.schedule_deletion(&"k".into(), Some(Duration::from_secs(7 * DAY))).await.unwrap();
    assert!(!d.immediate);
    let delta = d.deletion_date.duration_since(now).unwrap();
    assert!(delta >= Duration::from_secs(7 * DAY - 5) && delta <= Duration::from_secs(7 * DAY + 5));
    let info = p.get_key(&"k".into()).await.unwrap();
    assert_eq!((info.state, info.deletion_date), (KeyState::PendingDeletion, Some(d.deletion_date)));

    let e = assert_err!(p.decrypt_blob(&ct, None).await, Error::KeyUnusable { .. });
    assert!(matches!(e, Error::KeyUnusable { reason: UnusableReason::PendingDeletion, .. }));
    assert_err!(p.set_key_state(&"k".into(), KeyState::Enabled).await, Error::KeyUnusable { .. });
    assert_err!(p.rotate_key(&"k".into()).await, Error::KeyUnusable { .. });
    assert_err!(p.create_key(CreateKey::new("k", KeySpec::Aes128)).await, Error::AlreadyExists { .. });

    let info = p.cancel_deletion(&"k".into()).await.unwrap();
    assert_eq!((info.state, info.deletion_date), (KeyState::Disabled, None));
    assert_err!(p.cancel_deletion(&"k".into()).await, Error::InvalidInput { .. });
    p.set_key_state(&"k".into(), KeyState::Enabled).await.unwrap();
    assert_eq!(&p.decrypt_blob(&ct, None).await.unwrap()[..], b"x");
}

#[tokio::test]
async fn deletion_windows_follow_the_declared_policy() {
    let p = LocalProvider::in_memory();
    let policy = p.capabilities().deletion;
    assert_eq!(
        (policy.min_window, policy.max_window, policy.default_window),
        (Duration::ZERO, Duration::from_secs(365 * DAY), Duration::from_secs(30 * DAY))
    );
    key(&p, "k", KeySpec::HmacSha512, None).await;
    let e = assert_err!(
        p.schedule_deletion(&"k".into(), Some(Duration::from_secs(366 * DAY))).await,
        Error::InvalidInput { .. }
    );
    assert!(e.to_string().contains("366 days"), "{e}");
    assert_eq!(p.get_key(&"k".into()).await.unwrap().state, KeyState::Enabled, "nothing changed");
    let d = p.schedule_deletion(&"k".into(), None).await.unwrap();
    let days = d.deletion_date.duration_since(SystemTime::now()).unwrap().as_secs() / DAY;
    assert!((29..=30).contains(&days), "{days}");
    // A pending key can still be deleted at once.
    let d = p.schedule_deletion(&"k".into(), Some(Duration::ZERO)).await.unwrap();
    assert!(d.immediate);
    assert_err!(p.get_key(&"k".into()).await, Error::NotFound { .. });
    // The name is free again.
    key(&p, "k", KeySpec::Aes128, None).await;
}

#[tokio::test]
async fn a_key_whose_deletion_date_passed_is_gone() {
    let p = LocalProvider::in_memory();
    key(&p, "short", KeySpec::Aes128, None).await;
    key(&p, "keep", KeySpec::Aes128, None).await;
    p.schedule_deletion(&"short".into(), Some(Duration::from_millis(200))).await.unwrap();
    assert_eq!(p.get_key(&"short".into()).await.unwrap().state, KeyState::PendingDeletion);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_err!(p.get_key(&"short".into()).await, Error::NotFound { .. });
    let names: Vec<_> = p.list_all(ListKeys::new()).await.unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["keep"]);
    key(&p, "short", KeySpec::EcP256, None).await;
    assert_err!(p.cancel_deletion(&"short".into()).await, Error::InvalidInput { .. });
}

#[tokio::test]
async fn listing_filters_and_pages_in_name_order() {
    let p = LocalProvider::in_memory();
    for i in 0..25 {
        let spec = if i % 2 == 0 { KeySpec::Aes128 } else { KeySpec::HmacSha256 };
        let env = if i % 3 == 0 { "prod" } else { "dev" };
        p.create_key(CreateKey::new(format!("key-{i:02}"), spec).tag("env", env)).await.unwrap();
    }
    key(&p, "other", KeySpec::Ed25519, None).await;

    let mut names = Vec::new();
    let mut req = ListKeys::new().name_prefix("key-").page_size(10);
    let mut pages = 0;
    loop {
        let page = p.list_keys(req.clone()).await.unwrap();
        pages += 1;
        assert!(page.keys.len() <= 10);
        names.extend(page.keys.into_iter().map(|k| k.name));
        match page.next_page_token {
            Some(t) => req = req.page_token(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<_> = (0..25).map(|i| format!("key-{i:02}")).collect();
    assert_eq!(names, want);

    let prod = p.list_all(ListKeys::new().tag("env", "prod")).await.unwrap();
    assert_eq!(prod.len(), 9);
    let prod_aes = p.list_all(ListKeys::new().tag("env", "prod").spec(KeySpec::Aes128)).await.unwrap();
    assert_eq!(
        prod_aes.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["key-00", "key-06", "key-12", "key-18", "key-24"]
    );
    let closure = p.list_keys_where(ListKeys::new(), |k| k.spec == KeySpec::Ed25519).await.unwrap();
    assert_eq!(closure.len(), 1);

    // Default and maximum page size is 100.
    for i in 0..90 {
        key(&p, &format!("zz-{i:03}"), KeySpec::Aes128, None).await;
    }
    let page = p.list_keys(ListKeys::new()).await.unwrap();
    assert_eq!(page.keys.len(), 100);
    assert!(page.next_page_token.is_some());
    assert_eq!(p.list_keys(ListKeys::new().page_size(1000)).await.unwrap().keys.len(), 100);
    assert_eq!(p.list_all(ListKeys::new()).await.unwrap().len(), 116);

    assert_err!(p.list_keys(ListKeys::new().page_token("garbage!")).await, Error::InvalidInput { .. });
    assert!(p.list_keys(ListKeys::new().name_prefix("nothing")).await.unwrap().keys.is_empty());
}
