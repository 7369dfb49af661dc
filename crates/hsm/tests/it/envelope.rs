//! The umbrella's envelope surface: `Client` and the `hsm::envelope` re-export (the format
//! itself is tested in hsm-envelope).

use hsm::envelope::Context;
use hsm::local::LocalProvider;
use hsm::{Client, CreateKey, Error, KeySpec, Provider};

#[tokio::test]
async fn client_seals_with_a_context_and_opens_only_when_it_matches() {
    let p = LocalProvider::in_memory();
    p.create_key(CreateKey::new("encrypter", KeySpec::Aes256)).await.unwrap();
    let client = Client::from_provider(std::sync::Arc::new(p));
    let ctx = Context::new().with("tenant", "acme");
    let sealed = client.encrypt_envelope("encrypter", b"any size", &ctx).await.unwrap();
    assert!(hsm::envelope::is_envelope(&sealed));
    assert_eq!(&client.decrypt_envelope(&sealed, &ctx).await.unwrap()[..], b"any size");
    assert_eq!(&client.decrypt_envelope(&sealed, &Context::new()).await.unwrap()[..], b"any size");
    let other = Context::new().with("tenant", "globex");
    assert!(matches!(client.decrypt_envelope(&sealed, &other).await, Err(Error::InvalidInput { .. })));
}
