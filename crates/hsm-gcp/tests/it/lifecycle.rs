//! Rotation, enable/disable, scheduled destruction and its cancellation, listing.

use std::time::{Duration, SystemTime};

use hsm_core::{
    CreateKey, EncryptionAlgorithm as E, Error, KeyRef, KeySpec, KeyState, KeyUsage, ListKeys, Provider,
    ProviderExt as _, SignInput, SignatureAlgorithm as S, UnusableReason,
};

use crate::support::{provider, provider_with};

#[tokio::test]
async fn rotating_a_symmetric_key_moves_the_primary_and_old_ciphertexts_still_open() {
    let (_emu, p) = provider().await;
    p.create_key(CreateKey::new("rot", KeySpec::Aes256)).await.unwrap();
    let r = KeyRef::new("rot");
    let old = p.encrypt(&r, E::AesGcm, b"v1", None).await.unwrap();
    let info = p.rotate_key(&r).await.unwrap();
    assert_eq!((info.version.as_str(), info.versions.clone()), ("2", vec!["1".to_owned(), "2".to_owned()]));
    let new = p.encrypt(&r, E::AesGcm, b"v2", None).await.unwrap();
    assert_eq!(new.version(), "2");
    assert_eq!(p.decrypt(&r, &old, None).await.unwrap().as_slice(), b"v1");
    // Encrypting with a pinned older version works, and records it.
    let pinned = p.encrypt(&r.clone().with_version("1"), E::AesGcm, b"p", None).await.unwrap();
    assert_eq!(pinned.version(), "1");
    assert_eq!(p.decrypt(&r, &pinned, None).await.unwrap().as_slice(), b"p");
}

#[tokio::test]
async fn the_newest_enabled_version_is_current_for_asymmetric_keys() {
    let (_emu, p) = provider().await;
    p.create_key(CreateKey::new("ec", KeySpec::EcP256)).await.unwrap();
    let r = KeyRef::new("ec");
    let old = p.sign(&r, S::EcdsaSha256, SignInput::Message(b"m")).await.unwrap();
    let info = p.rotate_key(&r).await.unwrap();
    assert_eq!(info.version, "2");
    let new = p.sign(&r, S::EcdsaSha256, SignInput::Message(b"m")).await.unwrap();
    assert_eq!(new.version(), "2");
    assert!(
        p.verify(&old.key_ref(), S::EcdsaSha256, SignInput::Message(b"m"), old.as_bytes()).await.unwrap()
    );
    // The old version's signature does not verify under the new version.
    assert!(!p.verify(&r, S::EcdsaSha256, SignInput::Message(b"m"), old.as_bytes()).await.unwrap());
    // Disable version 2 through the SDK: version 1 becomes current again.
    let v2 = format!("{}/cryptoKeyVersions/2", info.native_id);
    use hsm_gcp::google_cloud_kms_v1::model::{CryptoKeyVersion, crypto_key_version::CryptoKeyVersionState};
    p.client()
        .update_crypto_key_version()
        .set_crypto_key_version(
            CryptoKeyVersion::new().set_name(&v2).set_state(CryptoKeyVersionState::Disabled),
        )
        .set_update_mask(hsm_gcp::google_cloud_wkt::FieldMask::default().set_paths(["state"]))
        .send()
        .await
        .unwrap();
    assert_eq!(p.get_key(&r).await.unwrap().version, "1");
}

#[tokio::test]
async fn disabling_refuses_use_and_enabling_restores_it() {
    let (_emu, p) = provider().await;
    p.create_key(CreateKey::new("dis", KeySpec::HmacSha256)).await.unwrap();
    let r = KeyRef::new("dis");
    p.rotate_key(&r).await.unwrap();
    let info = p.set_key_state(&r, KeyState::Disabled).await.unwrap();
    assert_eq!(info.state, KeyState::Disabled);
    let err = p.mac(&r, hsm_core::MacAlgorithm::HmacSha256, b"x").await.unwrap_err();
    assert!(matches!(err, Error::KeyUnusable { reason: UnusableReason::Disabled, .. }), "{err}");
    assert_eq!(p.set_key_state(&r, KeyState::Enabled).await.unwrap().state, KeyState::Enabled);
    p.mac(&r.clone().with_version("1"), hsm_core::MacAlgorithm::HmacSha256, b"x").await.unwrap();
}

#[tokio::test]
async fn deletion_schedules_every_version_reports_the_date_and_cancels_to_disabled() {
    let day = Duration::from_secs(86_400);
    let (_emu, p) = provider_with(|c| c.with_deletion_window(day).unwrap()).await;
    p.create_key(CreateKey::new("del", KeySpec::Aes256)).await.unwrap();
    let r = KeyRef::new("del");
    p.rotate_key(&r).await.unwrap();
    let err = p.schedule_deletion(&r, Some(7 * day)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let d = p.schedule_deletion(&r, None).await.unwrap();
    let expected = SystemTime::now() + day;
    let off = d.deletion_date.duration_since(expected).unwrap_or_else(|e| e.duration());
    assert!(off < Duration::from_secs(120), "deletion date is {off:?} away from now + 1 day");
    let info = p.get_key(&r).await.unwrap();
    assert_eq!(info.state, KeyState::PendingDeletion);
    assert!(info.deletion_date.is_some());
    let err = p.encrypt(&r, E::AesGcm, b"x", None).await.unwrap_err();
    assert!(matches!(err, Error::KeyUnusable { reason: UnusableReason::PendingDeletion, .. }), "{err}");
    let back = p.cancel_deletion(&r).await.unwrap();
    assert_eq!(back.state, KeyState::Disabled);
    assert_eq!(back.versions, ["1", "2"]);
    p.set_key_state(&r, KeyState::Enabled).await.unwrap();
    p.encrypt(&r, E::AesGcm, b"x", None).await.unwrap();
}

#[tokio::test]
async fn listing_filters_by_label_prefix_and_spec_and_pages_by_name() {
    let (_emu, p) = provider().await;
    for i in 0..5 {
        let spec = if i == 4 { KeySpec::EcP256 } else { KeySpec::Aes256 };
        let req = CreateKey::new(format!("ls-{i}"), spec)
            .tag("team", if i % 2 == 0 { "a" } else { "b" })
            .description(format!("List Key #{i}"));
        p.create_key(req).await.unwrap();
    }
    p.create_key(CreateKey::new("other", KeySpec::Aes256)).await.unwrap();
    let first = p.list_keys(ListKeys::new().name_prefix("ls-").page_size(2)).await.unwrap();
    let names: Vec<_> = first.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["ls-0", "ls-1"]);
    assert_eq!(first.keys[1].description, "List Key #1");
    let all = p.list_all(ListKeys::new().name_prefix("ls-").page_size(2)).await.unwrap();
    assert_eq!(all.len(), 5);
    let team_a = p.list_all(ListKeys::new().tag("team", "a")).await.unwrap();
    let names: Vec<_> = team_a.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["ls-0", "ls-2", "ls-4"]);
    let ec = p.list_all(ListKeys::new().spec(KeySpec::EcP256)).await.unwrap();
    assert_eq!(ec.len(), 1);
    assert_eq!(ec[0].usage, KeyUsage::SignVerify);
    let err = p.list_keys(ListKeys::new().page_token("garbage")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}
