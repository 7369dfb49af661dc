//! Envelope encryption: any size, one provider call, every tampering detected.

use hsm::envelope::{self, SEGMENT_LEN};
use hsm::local::LocalProvider;
use hsm::{Client, CreateKey, Error, KeyRef, KeySpec, KeyUsage, Provider};

async fn provider() -> LocalProvider {
    let p = LocalProvider::in_memory();
    p.create_key(CreateKey::new("wrapper", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    p.create_key(CreateKey::new("encrypter", KeySpec::Aes256)).await.unwrap();
    p.create_key(CreateKey::new("rsa-wrapper", KeySpec::Rsa2048).usage(KeyUsage::WrapUnwrap)).await.unwrap();
    p.create_key(CreateKey::new("signer", KeySpec::EcP256)).await.unwrap();
    p
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn round_trips_every_size_around_segment_boundaries() {
    let p = provider().await;
    for len in [0, 1, SEGMENT_LEN - 1, SEGMENT_LEN, SEGMENT_LEN + 1, 3 * SEGMENT_LEN, 3 * SEGMENT_LEN + 17] {
        for key in ["wrapper", "encrypter", "rsa-wrapper"] {
            let pt = data(len);
            let sealed = envelope::seal(&p, &KeyRef::new(key), &pt, Some(b"ctx")).await.unwrap();
            assert!(sealed.len() >= len + 16, "{key} {len}");
            let opened = envelope::open(&p, &sealed, Some(b"ctx")).await.unwrap();
            assert_eq!(&opened[..], &pt[..], "{key} {len}");
        }
    }
}

#[tokio::test]
async fn tampering_truncation_reordering_and_wrong_aad_fail_opaquely() {
    let p = provider().await;
    let pt = data(3 * SEGMENT_LEN + 5);
    let sealed = envelope::seal(&p, &KeyRef::new("wrapper"), &pt, None).await.unwrap();
    let seg = SEGMENT_LEN + 16;
    let body_start = sealed.len() - (3 * seg + 5 + 16);
    let opaque = |r: hsm::Result<_>| matches!(r, Err(Error::DecryptionFailed { .. }));

    let mut flipped = sealed.clone();
    flipped[body_start + 10] ^= 1;
    assert!(opaque(envelope::open(&p, &flipped, None).await));

    // Dropping the last segment leaves a stream whose final segment is not marked last.
    assert!(opaque(envelope::open(&p, &sealed[..body_start + 3 * seg], None).await));
    // Cutting inside a segment.
    assert!(opaque(envelope::open(&p, &sealed[..sealed.len() - 1], None).await));

    let mut swapped = sealed.clone();
    let (a, b) = (body_start, body_start + seg);
    let first = sealed[a..a + seg].to_vec();
    swapped[a..a + seg].copy_from_slice(&sealed[b..b + seg]);
    swapped[b..b + seg].copy_from_slice(&first);
    assert!(opaque(envelope::open(&p, &swapped, None).await));

    assert!(opaque(envelope::open(&p, &sealed, Some(b"other")).await));

    // The header is authenticated too: change the segment-size field's neighbour, the nonce prefix.
    let mut header = sealed.clone();
    header[body_start - 1] ^= 0x80;
    assert!(opaque(envelope::open(&p, &header, None).await));
}

#[tokio::test]
async fn garbage_is_invalid_input_and_keys_that_cannot_protect_are_refused() {
    let p = provider().await;
    for junk in [&b""[..], b"hsmE", b"not an envelope at all", b"hsmE\x09W\0\0\0\x01x"] {
        assert!(matches!(envelope::open(&p, junk, None).await, Err(Error::InvalidInput { .. })), "{junk:?}");
    }
    let err = envelope::seal(&p, &KeyRef::new("signer"), b"x", None).await.unwrap_err();
    assert!(err.to_string().contains("usage 'wrap' or 'encrypt'"), "{err}");
    assert!(matches!(
        envelope::seal(&p, &KeyRef::new("missing"), b"x", None).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn old_envelopes_open_after_rotation_and_streaming_matches_in_memory() {
    let p = provider().await;
    let pt = data(2 * SEGMENT_LEN + 3);
    let old = envelope::seal(&p, &KeyRef::new("wrapper"), &pt, None).await.unwrap();
    p.rotate_key(&KeyRef::new("wrapper")).await.unwrap();
    assert_eq!(&envelope::open(&p, &old, None).await.unwrap()[..], &pt[..]);

    let mut reader = &pt[..];
    let mut sealed = Vec::new();
    let n = envelope::seal_stream(&p, &KeyRef::new("wrapper"), &mut reader, &mut sealed, None).await.unwrap();
    assert_eq!(n, pt.len() as u64);
    let mut out = Vec::new();
    let mut input = &sealed[..];
    assert_eq!(envelope::open_stream(&p, &mut input, &mut out, None).await.unwrap(), pt.len() as u64);
    assert_eq!(out, pt);
}

#[tokio::test]
async fn client_exposes_envelope_encryption() {
    let client = Client::from_provider(std::sync::Arc::new(provider().await));
    let sealed = client.encrypt_envelope("encrypter", b"any size", None).await.unwrap();
    assert_eq!(&client.decrypt_envelope(&sealed, None).await.unwrap()[..], b"any size");
}
