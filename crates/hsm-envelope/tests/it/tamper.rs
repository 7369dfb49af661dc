//! Every kind of damage to a message fails, and never opens to another plaintext.

use hsm_core::{Error, KeyRef, Provider, ProviderExt, WrapAlgorithm, WrappedKey};
use hsm_envelope::{Context, Opener, Protection, Sealer};

use crate::{data, provider};

const SEG: usize = 1024;
const FULL: usize = SEG + 16;

fn opaque<T: std::fmt::Debug>(r: &hsm_core::Result<T>) -> bool {
    matches!(r, Err(Error::DecryptionFailed { .. }))
}

/// Where the authenticated header part ends and the recipients section starts.
fn recipients_start(sealed: &[u8]) -> usize {
    let ctx_count = u16::from_be_bytes([sealed[42], sealed[43]]);
    let mut at = 44;
    for _ in 0..ctx_count * 2 {
        at += 2 + usize::from(u16::from_be_bytes([sealed[at], sealed[at + 1]]));
    }
    at + 32
}

/// A recipients section with these stanzas (kind, provider name, blob).
fn recipients(stanzas: &[(u8, &str, &[u8])]) -> Vec<u8> {
    let mut out = (stanzas.len() as u16).to_be_bytes().to_vec();
    for (kind, name, blob) in stanzas {
        let len = 1 + 1 + name.len() + 4 + blob.len();
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.push(*kind);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        out.extend_from_slice(blob);
    }
    out
}

/// The message with its recipients section replaced.
fn with_recipients(sealed: &[u8], section: &[u8]) -> Vec<u8> {
    let header = hsm_envelope::inspect_bytes(sealed).unwrap();
    let start = recipients_start(sealed);
    [&sealed[..start], section, &sealed[header.len..]].concat()
}

fn wrapped(sealed: &[u8]) -> WrappedKey {
    match &hsm_envelope::inspect_bytes(sealed).unwrap().recipients[0].protection {
        Protection::Wrapped(w) => w.clone(),
        other => panic!("expected a wrapped stanza, got {other:?}"),
    }
}

#[tokio::test]
async fn every_header_byte_is_protected_and_stanza_bytes_never_change_the_plaintext() {
    let p = provider().await;
    let pt = data(3 * SEG + 5);
    let ctx = Context::new().with("tenant", "acme");
    for key in ["wrapper", "encrypter"] {
        let sealed = Sealer::new()
            .segment_size(SEG)
            .context(ctx.clone())
            .seal(&p, &KeyRef::new(key), &pt)
            .await
            .unwrap();
        let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
        let authenticated = recipients_start(&sealed);
        let mut opened_anyway = Vec::new();
        for i in 0..header.len {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            match Opener::new().open(&p, &bad).await {
                Ok(out) => {
                    assert!(
                        i >= authenticated,
                        "{key}: byte {i} of the authenticated header was not checked"
                    );
                    assert!(out[..] == pt[..], "{key}: byte {i} changed the plaintext");
                    opened_anyway.push(i);
                }
                Err(Error::DecryptionFailed { .. } | Error::InvalidInput { .. } | Error::NotFound { .. }) => {
                }
                Err(e) => panic!("{key}: byte {i}: unexpected {e}"),
            }
        }
        // Only the provider name ("local") is free: it is a routing hint, not a secret or a key.
        let name_at = authenticated + 2 + 4 + 2;
        assert_eq!(opened_anyway, (name_at..name_at + 5).collect::<Vec<_>>(), "{key}");
    }
}

#[tokio::test]
async fn every_segment_bit_flip_truncation_extension_duplicate_and_swap_fails_opaquely() {
    let p = provider().await;
    let pt = data(3 * SEG + 5);
    let sealed = Sealer::new().segment_size(SEG).seal(&p, &KeyRef::new("wrapper"), &pt).await.unwrap();
    let body = hsm_envelope::inspect_bytes(&sealed).unwrap().len;
    let seg = |i: usize| &sealed[body + i * FULL..(body + (i + 1) * FULL).min(sealed.len())];
    let open = |bytes: Vec<u8>| {
        let p = &p;
        async move { Opener::new().open(p, &bytes).await }
    };
    for i in 0..4 {
        for at in [0, 17, seg(i).len() - 1] {
            let mut bad = sealed.clone();
            bad[body + i * FULL + at] ^= 0x80;
            assert!(opaque(&open(bad).await), "segment {i} byte {at}");
        }
    }
    // Truncated at every segment boundary and inside segments, down to an empty body.
    for cut in [0, 1, 15, 16, FULL - 1, FULL, 2 * FULL, 3 * FULL, 3 * FULL + 20, sealed.len() - body - 1] {
        assert!(opaque(&open(sealed[..body + cut].to_vec()).await), "cut at {cut}");
    }
    for extra in [&[0u8][..], &[0; 16], seg(3), seg(0)] {
        assert!(opaque(&open([&sealed[..], extra].concat()).await), "appended {} bytes", extra.len());
    }
    let dup = [&sealed[..body + 2 * FULL], seg(1), &sealed[body + 2 * FULL..]].concat();
    assert!(opaque(&open(dup).await), "duplicated segment");
    let swapped = [&sealed[..body], seg(1), seg(0), &sealed[body + 2 * FULL..]].concat();
    assert!(opaque(&open(swapped).await), "swapped segments");
    let empty = Sealer::new().seal(&p, &KeyRef::new("wrapper"), b"").await.unwrap();
    let len = hsm_envelope::inspect_bytes(&empty).unwrap().len;
    assert!(opaque(&open(empty[..len].to_vec()).await), "an empty message without its final segment");
}

#[tokio::test]
async fn a_stanza_from_another_message_or_for_another_data_key_fails_on_the_commitment() {
    let p = provider().await;
    let key = KeyRef::new("wrapper");
    let one = Sealer::new().seal(&p, &key, b"message one").await.unwrap();
    let two = Sealer::new().seal(&p, &key, b"message two").await.unwrap();
    let from_two = wrapped(&two).to_bytes();
    let swapped = with_recipients(&one, &recipients(&[(b'W', "local", &from_two)]));
    assert!(opaque(&Opener::new().open(&p, &swapped).await), "a stanza moved from another message");

    // A stanza that really wraps a different data key, under the right key.
    let other_key = p.wrap_key(&key, WrapAlgorithm::AesGcm, &[7u8; 32]).await.unwrap().to_bytes();
    let forged = with_recipients(&one, &recipients(&[(b'W', "local", &other_key)]));
    assert!(opaque(&Opener::new().open(&p, &forged).await), "a stanza for another data key");
}

#[tokio::test]
async fn recipients_change_by_rewriting_the_header_alone() {
    let p = provider().await;
    let pt = data(5 * SEG);
    let sealed = Sealer::new().segment_size(SEG).seal(&p, &KeyRef::new("wrapper"), &pt).await.unwrap();
    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
    // Open the data key once, wrap it for another key, and keep an unknown future stanza kind.
    let data_key = p.unwrap_blob(&wrapped(&sealed)).await.unwrap();
    let rewrapped =
        p.wrap_key(&KeyRef::new("rsa-wrapper"), WrapAlgorithm::RsaOaepSha256, &data_key).await.unwrap();
    let section = recipients(&[(b'Z', "future", b"whatever"), (b'W', "local", &rewrapped.to_bytes())]);
    let moved = with_recipients(&sealed, &section);
    assert_eq!(moved[moved.len() - (sealed.len() - header.len)..], sealed[header.len..], "body untouched");
    let inspected = hsm_envelope::inspect_bytes(&moved).unwrap();
    assert_eq!(inspected.recipients[0].protection, Protection::Unknown { kind: b'Z' });
    assert_eq!(inspected.recipients[1].key().unwrap().name(), "rsa-wrapper");
    p.schedule_deletion(&KeyRef::new("wrapper"), None).await.unwrap();
    assert!(Opener::new().open(&p, &moved).await.unwrap()[..] == pt[..]);
}

#[tokio::test]
async fn a_context_that_differs_is_refused_and_an_altered_one_fails_opaquely() {
    let p = provider().await;
    let ctx = Context::new().with("tenant", "acme").with("table", "payments");
    for key in ["wrapper", "encrypter"] {
        let sealed = Sealer::new().context(ctx.clone()).seal(&p, &KeyRef::new(key), b"row 1").await.unwrap();
        let err =
            Opener::new().expect_context(Context::new().with("tenant", "globex")).open(&p, &sealed).await;
        assert!(
            matches!(&err, Err(Error::InvalidInput { message, .. }) if message.contains("tenant=globex")),
            "{err:?}"
        );
        let subset = Opener::new().expect_context(Context::new().with("table", "payments"));
        assert_eq!(&subset.open(&p, &sealed).await.unwrap()[..], b"row 1");
        // Same length, other value: the stored context no longer matches what was sealed.
        let at = sealed.windows(4).position(|w| w == b"acme").unwrap();
        let mut altered = sealed.clone();
        altered[at..at + 4].copy_from_slice(b"acmf");
        assert_eq!(hsm_envelope::inspect_bytes(&altered).unwrap().context.get("tenant"), Some("acmf"));
        assert!(opaque(&Opener::new().open(&p, &altered).await), "{key}");
    }
}

#[tokio::test]
async fn hostile_lengths_are_refused_before_allocation() {
    let p = provider().await;
    let sealed = Sealer::new().seal(&p, &KeyRef::new("wrapper"), b"x").await.unwrap();
    let rs = recipients_start(&sealed);
    let invalid = |bytes: Vec<u8>, what: &'static str| {
        let p = &p;
        async move {
            let r = Opener::new().open(p, &bytes).await;
            assert!(matches!(r, Err(Error::InvalidInput { .. })), "{what}: {r:?}");
            r.unwrap_err().to_string()
        }
    };
    let mut many = sealed.clone();
    many[rs..rs + 2].copy_from_slice(&17u16.to_be_bytes());
    assert!(invalid(many.clone(), "17 recipients").await.contains("more than the 16 allowed"));
    let raised = Opener::new().max_recipients(17).open(&p, &many).await;
    assert!(matches!(raised, Err(Error::InvalidInput { .. })), "the 16 others are missing: {raised:?}");
    let mut none = sealed.clone();
    none[rs..rs + 2].copy_from_slice(&0u16.to_be_bytes());
    invalid(none, "no recipients").await;
    let mut huge = sealed.clone();
    huge[rs + 2..rs + 6].copy_from_slice(&u32::MAX.to_be_bytes());
    invalid(huge, "a 4 GiB stanza").await;
    for seg in [0u32, 1023, (16 << 20) + 1, u32::MAX] {
        let mut bad = sealed.clone();
        bad[38..42].copy_from_slice(&seg.to_be_bytes());
        invalid(bad, "segment size").await;
    }
    let mut ctx = sealed.clone();
    ctx[42..44].copy_from_slice(&u16::MAX.to_be_bytes());
    invalid(ctx, "65,535 context pairs").await;
    let mut version = sealed.clone();
    version[4] = 3;
    assert!(invalid(version, "version 3").await.contains("upgrade hsm"));
    for junk in [&b""[..], b"hsmE", b"not an envelope at all", b"hsmE\x02\x01", &sealed[..60]] {
        invalid(junk.to_vec(), "junk").await;
    }
}

#[tokio::test]
async fn keys_that_cannot_protect_a_data_key_and_bad_settings_are_refused_up_front() {
    let p = provider().await;
    let err = Sealer::new().seal(&p, &KeyRef::new("signer"), b"x").await.unwrap_err();
    assert!(err.to_string().contains("usage 'wrap' or 'encrypt'"), "{err}");
    assert!(matches!(
        Sealer::new().seal(&p, &KeyRef::new("missing"), b"x").await,
        Err(Error::NotFound { .. })
    ));
    let err = Sealer::new().segment_size(100).seal(&p, &KeyRef::new("wrapper"), b"x").await.unwrap_err();
    assert!(err.to_string().contains("segment size 100 is out of range"), "{err}");
    let big = Context::new().with("k", "v".repeat(9000));
    assert!(matches!(
        Sealer::new().context(big).seal(&p, &KeyRef::new("wrapper"), b"x").await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn errors_and_debug_output_never_show_plaintext_or_keys() {
    let p = provider().await;
    let secret = b"TOP-SECRET-PLAINTEXT";
    let sealed = Sealer::new().seal(&p, &KeyRef::new("wrapper"), secret).await.unwrap();
    let mut bad = sealed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let err = Opener::new().open(&p, &bad).await.unwrap_err();
    assert_eq!(err.to_string(), "hsm: decryption failed");
    let shown = format!("{:?} {:?}", hsm_envelope::inspect_bytes(&sealed).unwrap(), err);
    assert!(!shown.contains("TOP-SECRET"), "{shown}");
}
