//! What `inspect` reads from a header, without any provider call.

use hsm_core::KeyRef;
use hsm_envelope::{Context, Protection, Sealer, Suite, VERSION_2};

use crate::provider;

#[tokio::test]
async fn inspect_reads_version_suite_context_segment_size_and_recipients() {
    let p = provider().await;
    let ctx = Context::new().with("b", "2").with("a", "1");
    let sealed = Sealer::new()
        .context(ctx.clone())
        .segment_size(4096)
        .seal(&p, &KeyRef::new("encrypter"), b"hello")
        .await
        .unwrap();
    assert!(hsm_envelope::is_envelope(&sealed));
    let h = hsm_envelope::inspect_bytes(&sealed).unwrap();
    assert_eq!((h.version, h.suite, h.segment_size), (VERSION_2, Suite::Aes256GcmHkdfSha512Committing, 4096));
    assert_eq!(h.context, ctx);
    assert_eq!(h.recipients.len(), 1);
    let r = &h.recipients[0];
    assert_eq!(r.provider.as_deref(), Some("local"));
    assert_eq!(r.key(), Some(KeyRef::new("encrypter").with_version("1")));
    assert_eq!(r.algorithm(), Some("aes-gcm"));
    assert!(matches!(r.protection, Protection::Encrypted(_)));
    assert_eq!(sealed.len(), h.len + 5 + 16);

    // The streaming form consumes exactly the header.
    let mut input = &sealed[..];
    let streamed = hsm_envelope::inspect(&mut input).await.unwrap();
    assert_eq!((&streamed, input.len()), (&h, 5 + 16));

    // Two messages under the same key differ in message id.
    let again = Sealer::new().seal(&p, &KeyRef::new("encrypter"), b"hello").await.unwrap();
    assert_ne!(hsm_envelope::inspect_bytes(&again).unwrap().message_id, h.message_id);
}
