//! Arbitrary bytes where a blob is expected never panic: they fail with a typed error.

use hsm_core::{
    Ciphertext, EncryptionAlgorithm, Error, KeySpec, KeyUsage, Provider, ProviderExt, SignInput,
    SignatureAlgorithm, WrapAlgorithm, WrappedKey,
};
use hsm_local::LocalProvider;
use proptest::prelude::*;

use crate::key;

struct Fixture {
    rt: tokio::runtime::Runtime,
    p: LocalProvider,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        // Multi-threaded so proptest's parallel test threads may all call block_on.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let p = LocalProvider::in_memory();
        rt.block_on(async {
            key(&p, "aes", KeySpec::Aes192, None).await;
            key(&p, "kek", KeySpec::Aes128, Some(KeyUsage::WrapUnwrap)).await;
            key(&p, "rsa", KeySpec::Rsa2048, None).await;
            key(&p, "rsa-wrap", KeySpec::Rsa2048, Some(KeyUsage::WrapUnwrap)).await;
            key(&p, "ec", KeySpec::EcP256, None).await;
        });
        Fixture { rt, p }
    })
}

fn opaque<T: std::fmt::Debug>(r: hsm_core::Result<T>) -> Result<(), TestCaseError> {
    match r {
        Err(Error::DecryptionFailed { .. }) => Ok(()),
        other => Err(TestCaseError::fail(format!("expected DecryptionFailed, got {other:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_ciphertext_payloads_fail_opaquely(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture();
        f.rt.block_on(async {
            let gcm = Ciphertext::new("aes", "1", EncryptionAlgorithm::AesGcm, bytes.clone());
            opaque(f.p.decrypt_blob(&gcm, None).await)?;
            for alg in [EncryptionAlgorithm::RsaOaepSha1, EncryptionAlgorithm::RsaOaepSha256, EncryptionAlgorithm::RsaPkcs1v15] {
                opaque(f.p.decrypt_blob(&Ciphertext::new("rsa", "1", alg, bytes.clone()), None).await)?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }

    #[test]
    fn arbitrary_wrapped_keys_fail_opaquely(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let f = fixture();
        f.rt.block_on(async {
            for alg in [WrapAlgorithm::AesKeyWrap, WrapAlgorithm::AesKeyWrapPad, WrapAlgorithm::AesGcm] {
                opaque(f.p.unwrap_blob(&WrappedKey::new("kek", "1", alg, bytes.clone())).await)?;
            }
            let rsa = WrappedKey::new("rsa-wrap", "1", WrapAlgorithm::RsaOaepSha256, bytes.clone());
            opaque(f.p.unwrap_blob(&rsa).await)
        })?;
    }

    #[test]
    fn arbitrary_blob_encodings_and_signatures_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let f = fixture();
        let _ = Ciphertext::from_bytes(&bytes);
        let _ = WrappedKey::from_bytes(&bytes);
        let _ = hsm_core::Signature::from_bytes(&bytes);
        f.rt.block_on(async {
            let r = f.p.verify(&"ec".into(), SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"m"), &bytes).await;
            prop_assert!(matches!(r, Ok(false) | Err(Error::InvalidInput { .. })), "{r:?}");
            let r = f.p.verify(&"ec".into(), SignatureAlgorithm::EcdsaSha256, SignInput::Digest(&[7; 32]), &bytes).await;
            prop_assert!(matches!(r, Ok(false) | Err(Error::InvalidInput { .. })), "{r:?}");
            Ok::<(), TestCaseError>(())
        })?;
    }
}
