//! Every spec, every usage, every algorithm: what goes in comes back out.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use hsm_core::{
    Ciphertext, EncryptionAlgorithm, KeyRef, KeySpec, KeyUsage, MacTag, Provider, ProviderExt, SignInput,
    Signature, SignatureAlgorithm, WrapAlgorithm, WrappedKey,
};
use hsm_local::LocalProvider;

use crate::key;

fn sha(alg: SignatureAlgorithm, msg: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest;
    let d = match alg.digest().map(|d| d.output_len()) {
        Some(32) => &digest::SHA256,
        Some(48) => &digest::SHA384,
        _ => &digest::SHA512,
    };
    digest::digest(d, msg).as_ref().to_vec()
}

/// aws-lc-rs's own verifier over the exported SPKI: checks the exported public key and the
/// signature format (DER for ECDSA) without going through the provider.
fn independent(spec: KeySpec, alg: SignatureAlgorithm) -> &'static dyn VerificationAlgorithm {
    match (alg, spec) {
        (SignatureAlgorithm::RsaPkcs1v15Sha256, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (SignatureAlgorithm::RsaPkcs1v15Sha384, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (SignatureAlgorithm::RsaPkcs1v15Sha512, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (SignatureAlgorithm::RsaPssSha256, _) => &signature::RSA_PSS_2048_8192_SHA256,
        (SignatureAlgorithm::RsaPssSha384, _) => &signature::RSA_PSS_2048_8192_SHA384,
        (SignatureAlgorithm::RsaPssSha512, _) => &signature::RSA_PSS_2048_8192_SHA512,
        (SignatureAlgorithm::EcdsaSha256, KeySpec::EcSecp256k1) => &signature::ECDSA_P256K1_SHA256_ASN1,
        (SignatureAlgorithm::EcdsaSha256, _) => &signature::ECDSA_P256_SHA256_ASN1,
        (SignatureAlgorithm::EcdsaSha384, _) => &signature::ECDSA_P384_SHA384_ASN1,
        (SignatureAlgorithm::EcdsaSha512, _) => &signature::ECDSA_P521_SHA512_ASN1,
        _ => &signature::ED25519,
    }
}

async fn encrypt_decrypt(p: &LocalProvider, k: &KeyRef, spec: KeySpec) {
    for &alg in &p.capabilities().spec(spec).unwrap().encryption {
        let max = alg.max_plaintext_len(spec).unwrap_or(1000);
        let aad: Option<&[u8]> = (alg == EncryptionAlgorithm::AesGcm).then_some(b"context");
        for pt in [&b""[..], b"hello", &vec![0xa5; max]] {
            let ct = p.encrypt(k, alg, pt, aad).await.unwrap_or_else(|e| panic!("{spec} {alg}: {e}"));
            assert_eq!((ct.key(), ct.version(), ct.algorithm()), (k.name(), "1", alg));
            if let Some(n) = spec.rsa_modulus_bytes() {
                assert_eq!(ct.as_bytes().len(), n);
            } else {
                assert_eq!(ct.as_bytes().len(), 12 + pt.len() + 16);
            }
            let parsed = Ciphertext::from_base64(&ct.to_base64()).unwrap();
            assert_eq!(&p.decrypt_blob(&parsed, aad).await.unwrap()[..], pt, "{spec} {alg}");
        }
    }
}

async fn sign_verify(p: &LocalProvider, k: &KeyRef, spec: KeySpec) {
    let public = p.public_key(k).await.unwrap();
    assert_eq!((public.spec, public.version.as_str()), (spec, "1"));
    assert!(public.to_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let caps = p.capabilities().spec(spec).unwrap().clone();
    for &alg in &caps.signature {
        let msg = format!("message for {spec} {alg}");
        let sig = p.sign(k, alg, SignInput::Message(msg.as_bytes())).await.unwrap();
        if let Some(n) = alg.fixed_signature_len(spec) {
            assert_eq!(sig.as_bytes().len(), n, "{spec} {alg}");
        }
        assert!(p.verify(k, alg, SignInput::Message(msg.as_bytes()), sig.as_bytes()).await.unwrap());
        assert!(!p.verify(k, alg, SignInput::Message(b"another message"), sig.as_bytes()).await.unwrap());
        let parsed = Signature::from_bytes(&sig.to_bytes()).unwrap();
        assert!(p.verify_signature(&parsed, msg.as_bytes()).await.unwrap());
        UnparsedPublicKey::new(independent(spec, alg), &public.spki_der)
            .verify(msg.as_bytes(), sig.as_bytes())
            .unwrap_or_else(|_| panic!("{spec} {alg}: independent verification failed"));
        if caps.sign_digest {
            // A digest signature is a signature over the message, and the other way round.
            let digest = sha(alg, msg.as_bytes());
            let dsig = p.sign(k, alg, SignInput::Digest(&digest)).await.unwrap();
            assert!(p.verify(k, alg, SignInput::Message(msg.as_bytes()), dsig.as_bytes()).await.unwrap());
            assert!(p.verify(k, alg, SignInput::Digest(&digest), sig.as_bytes()).await.unwrap());
            assert!(!p.verify(k, alg, SignInput::Digest(&sha(alg, b"x")), sig.as_bytes()).await.unwrap());
        }
    }
}

async fn wrap_unwrap(p: &LocalProvider, k: &KeyRef, spec: KeySpec) {
    for &alg in &p.capabilities().spec(spec).unwrap().wrap {
        let lens: &[usize] = match alg {
            WrapAlgorithm::AesKeyWrap => &[16, 24, 32, 64],
            WrapAlgorithm::RsaOaepSha256 => &[16, 32, 190],
            _ => &[1, 7, 16, 33, 64],
        };
        for &n in lens {
            let material: Vec<u8> = (0..n as u8).collect();
            let w = p.wrap_key(k, alg, &material).await.unwrap_or_else(|e| panic!("{spec} {alg} {n}: {e}"));
            match alg {
                WrapAlgorithm::AesKeyWrap => assert_eq!(w.as_bytes().len(), n + 8),
                WrapAlgorithm::AesKeyWrapPad => assert_eq!(w.as_bytes().len(), n.div_ceil(8).max(1) * 8 + 8),
                WrapAlgorithm::AesGcm => assert_eq!(w.as_bytes().len(), 12 + n + 16),
                _ => assert_eq!(Some(w.as_bytes().len()), spec.rsa_modulus_bytes()),
            }
            let parsed = WrappedKey::from_base64(&w.to_base64()).unwrap();
            assert_eq!(&p.unwrap_blob(&parsed).await.unwrap()[..], &material[..], "{spec} {alg} {n}");
        }
    }
}

async fn mac(p: &LocalProvider, k: &KeyRef, spec: KeySpec) {
    let alg = spec.default_mac_algorithm().unwrap();
    let tag = p.mac(k, alg, b"message").await.unwrap();
    assert_eq!(tag.as_bytes().len(), alg.tag_len());
    assert!(p.verify_mac(k, alg, b"message", tag.as_bytes()).await.unwrap());
    assert!(p.verify_mac_tag(&MacTag::from_bytes(&tag.to_bytes()).unwrap(), b"message").await.unwrap());
    assert!(!p.verify_mac(k, alg, b"messagf", tag.as_bytes()).await.unwrap());
    let mut bad = tag.as_bytes().to_vec();
    bad[0] ^= 1;
    assert!(!p.verify_mac(k, alg, b"message", &bad).await.unwrap());
    // Deterministic: the same message gives the same tag.
    assert_eq!(p.mac(k, alg, b"message").await.unwrap().as_bytes(), tag.as_bytes());
}

/// Creates one key per usage the spec allows and runs every declared algorithm on it.
async fn exercise(spec: KeySpec) {
    let p = LocalProvider::in_memory();
    for &usage in &p.capabilities().spec(spec).unwrap().usages.clone() {
        let name = format!("{spec}-{usage}");
        let info = key(&p, &name, spec, Some(usage)).await;
        assert_eq!((info.spec, info.usage, info.version.as_str()), (spec, usage, "1"));
        assert_eq!(info.native_id, format!("local:{name}"));
        let k = KeyRef::new(name);
        match usage {
            KeyUsage::EncryptDecrypt => encrypt_decrypt(&p, &k, spec).await,
            KeyUsage::SignVerify => sign_verify(&p, &k, spec).await,
            KeyUsage::WrapUnwrap => wrap_unwrap(&p, &k, spec).await,
            KeyUsage::Mac => mac(&p, &k, spec).await,
            other => panic!("unexpected usage {other}"),
        }
        if spec.is_symmetric() {
            assert!(p.public_key(&k).await.is_err());
        } else {
            assert!(!p.public_key(&k).await.unwrap().spki_der.is_empty());
        }
    }
}

#[tokio::test]
async fn aes_every_size_every_algorithm() {
    for spec in [KeySpec::Aes128, KeySpec::Aes192, KeySpec::Aes256] {
        exercise(spec).await;
    }
}

#[tokio::test]
async fn rsa_2048_every_usage_every_algorithm() {
    exercise(KeySpec::Rsa2048).await;
}

#[tokio::test]
async fn rsa_3072_every_usage_every_algorithm() {
    exercise(KeySpec::Rsa3072).await;
}

#[tokio::test]
async fn rsa_4096_every_usage_every_algorithm() {
    exercise(KeySpec::Rsa4096).await;
}

#[tokio::test]
async fn ecdsa_every_curve() {
    for spec in [KeySpec::EcP256, KeySpec::EcP384, KeySpec::EcP521, KeySpec::EcSecp256k1] {
        exercise(spec).await;
    }
}

#[tokio::test]
async fn ed25519_signs_messages() {
    exercise(KeySpec::Ed25519).await;
}

#[tokio::test]
async fn hmac_every_size() {
    for spec in [KeySpec::HmacSha256, KeySpec::HmacSha384, KeySpec::HmacSha512] {
        exercise(spec).await;
    }
}

#[tokio::test]
async fn ecdsa_signatures_are_randomized_but_ed25519_and_pkcs1_are_deterministic() {
    let p = LocalProvider::in_memory();
    for (name, spec, alg) in [
        ("ec", KeySpec::EcP256, SignatureAlgorithm::EcdsaSha256),
        ("ed", KeySpec::Ed25519, SignatureAlgorithm::Ed25519),
        ("rsa", KeySpec::Rsa2048, SignatureAlgorithm::RsaPkcs1v15Sha256),
    ] {
        key(&p, name, spec, Some(KeyUsage::SignVerify)).await;
        let k = KeyRef::new(name);
        let a = p.sign(&k, alg, SignInput::Message(b"m")).await.unwrap();
        let b = p.sign(&k, alg, SignInput::Message(b"m")).await.unwrap();
        assert_eq!(a.as_bytes() == b.as_bytes(), spec != KeySpec::EcP256, "{spec}");
    }
}

#[tokio::test]
async fn aes_gcm_nonces_are_fresh_for_every_encryption() {
    let p = LocalProvider::in_memory();
    key(&p, "k", KeySpec::Aes256, None).await;
    let mut nonces = std::collections::HashSet::new();
    for _ in 0..200 {
        let ct = p.encrypt(&"k".into(), EncryptionAlgorithm::AesGcm, b"same", None).await.unwrap();
        assert!(nonces.insert(ct.as_bytes()[..12].to_vec()));
    }
}

#[tokio::test]
async fn clones_share_one_store_and_work_concurrently() {
    let p = LocalProvider::in_memory();
    key(&p, "shared", KeySpec::Aes128, None).await;
    let tasks: Vec<tokio::task::JoinHandle<hsm_core::Result<()>>> = (0..64)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                let msg = format!("message {i}");
                let ct =
                    p.encrypt(&"shared".into(), EncryptionAlgorithm::AesGcm, msg.as_bytes(), None).await?;
                let pt = p.decrypt_blob(&ct, None).await?;
                assert_eq!(&pt[..], msg.as_bytes());
                hsm_core::Result::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let arc: std::sync::Arc<dyn Provider> = std::sync::Arc::new(p);
    assert_eq!(arc.name(), "local");
}
