//! hsm-aws integration tests: error mapping, URL and configuration parsing, bad input that
//! must fail before any call, transport failures, and a few round trips against moto (started
//! from `HSM_MOTO_SERVER`; without it those tests say so and return).

use std::time::{Duration, Instant};

use hsm_aws::error::from_code;
use hsm_aws::moto::MotoServer;
use hsm_aws::{AwsConfig, AwsKmsProvider};
use hsm_core::{
    CreateKey, EncryptionAlgorithm, Error, KeyRef, KeySpec, KeyUsage, ListKeys, Provider, ProviderExt as _,
    SignInput, SignatureAlgorithm, UnusableReason,
};

/// A provider whose endpoint refuses connections at once (nothing listens on port 9).
async fn unreachable() -> AwsKmsProvider {
    let cfg = AwsConfig::new()
        .with_region("us-east-1")
        .with_endpoint("http://127.0.0.1:9")
        .static_credentials("testing", "testing")
        .operation_timeout(Duration::from_secs(5));
    AwsKmsProvider::connect(&cfg).await.unwrap()
}

#[test]
fn every_listed_code_maps_to_its_error() {
    let k = Some("k");
    assert!(matches!(from_code("NotFoundException", "m", k), Error::NotFound { ref key, .. } if key == "k"));
    assert!(matches!(from_code("AlreadyExistsException", "m", k), Error::AlreadyExists { .. }));
    for code in ["InvalidCiphertextException", "IncorrectKeyException"] {
        assert!(matches!(from_code(code, "m", k), Error::DecryptionFailed { .. }), "{code}");
    }
    assert!(matches!(
        from_code("DisabledException", "m", k),
        Error::KeyUnusable { reason: UnusableReason::Disabled, .. }
    ));
    assert!(matches!(from_code("KMSInvalidStateException", "m", k), Error::KeyUnusable { .. }));
    for code in ["ThrottlingException", "LimitExceededException"] {
        assert!(matches!(from_code(code, "m", k), Error::Throttled { .. }), "{code}");
    }
    assert!(matches!(from_code("AccessDeniedException", "m", k), Error::PermissionDenied { .. }));
    for code in ["UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"] {
        assert!(matches!(from_code(code, "m", k), Error::Unauthenticated { .. }), "{code}");
    }
    assert!(matches!(from_code("ValidationException", "m", k), Error::InvalidInput { .. }));
    for code in ["DependencyTimeoutException", "KMSInternalException", "KeyUnavailableException"] {
        let e = from_code(code, "m", k);
        assert!(matches!(e, Error::Unavailable { .. }) && e.is_retryable(), "{code}");
    }
    match from_code("SomethingNewException", "what happened", k) {
        Error::Provider { code, message, .. } => {
            assert_eq!(code, "SomethingNewException");
            assert_eq!(message, "what happened");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn urls_parse_and_bad_ones_say_why() {
    let cfg = AwsConfig::from_url(
        "aws-kms://?region=us-east-1&endpoint=http://127.0.0.1:4566&profile=dev&timeout=5s&max_attempts=2",
    )
    .unwrap();
    assert_eq!(cfg.region(), Some("us-east-1"));
    assert_eq!(cfg.endpoint(), Some("http://127.0.0.1:4566"));
    assert_eq!(cfg.profile(), Some("dev"));
    assert!(AwsConfig::from_url("aws-kms://").unwrap().region().is_none());
    assert!(AwsConfig::from_url("AWS-KMS:?region=eu-west-2").is_ok());
    for (url, says) in [
        ("aws-kms://?region=moon", "not an AWS region"),
        ("aws-kms://?region=us-east-1&colour=blue", "unknown parameter 'colour'"),
        ("aws-kms://?endpoint=ftp://x", "http:// or https://"),
        ("aws-kms://?endpoint=not a url", "not a URL"),
        ("aws-kms://somehost", "host or path"),
        ("aws-kms://?secret_access_key=abc", "never go in a URL"),
        ("aws-kms://?timeout=soon", "not a duration"),
        ("aws-kms://?max_attempts=0", "1 to 10"),
        ("aws-kms://?region=", "is empty"),
        ("local:///x", "not an aws-kms URL"),
    ] {
        match AwsConfig::from_url(url) {
            Err(Error::Config { message, .. }) => assert!(message.contains(says), "{url}: {message}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn secrets_stay_out_of_debug() {
    let cfg = AwsConfig::new().static_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI-secret");
    let shown = format!("{cfg:?}");
    assert!(shown.contains("AKIDEXAMPLE") && !shown.contains("wJalrXUtnFEMI"), "{shown}");
}

#[tokio::test]
async fn a_malformed_region_is_a_config_error_before_any_call() {
    let err = AwsKmsProvider::connect(&AwsConfig::new().with_region("Moon Base")).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_quickly() {
    let p = unreachable().await;
    let start = Instant::now();
    let err = p.get_key(&KeyRef::new("anything")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
}

#[tokio::test]
async fn bad_input_fails_before_any_call() {
    // The endpoint is unreachable: an InvalidInput here proves no call was attempted.
    let p = unreachable().await;
    let err = p.get_key(&KeyRef::new("no/slashes")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = p.create_key(CreateKey::new("", KeySpec::Aes256)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = p.create_key(CreateKey::new("k", KeySpec::Aes128)).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let err = p.create_key(CreateKey::new("k", KeySpec::Aes256).tag("hsm:version", "9")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = p.list_keys(ListKeys::new().page_token("forged")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = p.schedule_deletion(&KeyRef::new("k"), Some(Duration::from_secs(86_400))).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn missing_credentials_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(&file, "[other]\naws_access_key_id = A\naws_secret_access_key = B\n").unwrap();
    let cfg = AwsConfig::new()
        .with_region("us-east-1")
        .with_endpoint("http://127.0.0.1:9")
        .with_profile("hsm-test-no-such-profile")
        .with_profile_file(&file)
        .max_attempts(1);
    let p = AwsKmsProvider::connect(&cfg).await.unwrap();
    let err = p.get_key(&KeyRef::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err}");
    assert!(err.to_string().contains("hsm-test-no-such-profile"), "{err}");
}

fn moto() -> Option<MotoServer> {
    match MotoServer::from_env() {
        Ok(Some(m)) => Some(m),
        Ok(None) => {
            eprintln!("skipped: {}", hsm_aws::moto::MOTO_MISSING);
            None
        }
        Err(e) => panic!("cannot start moto_server: {e}"),
    }
}

#[tokio::test]
async fn against_moto_names_are_aliases_and_taken_names_leave_no_orphan() {
    let Some(server) = moto() else { return };
    let p = AwsKmsProvider::connect(&server.config()).await.unwrap();
    let info = p.create_key(CreateKey::new("orders", KeySpec::Aes256).tag("team", "payments")).await.unwrap();
    assert!(info.native_id.starts_with("arn:aws:kms:us-east-1:"), "{}", info.native_id);
    let aliases = p.client().list_aliases().send().await.unwrap();
    assert!(aliases.aliases().iter().any(|a| a.alias_name() == Some("alias/orders")));
    let err = p.create_key(CreateKey::new("orders", KeySpec::EcP256)).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    // The key made for the taken name is scheduled for deletion, not left behind.
    let keys = p.client().list_keys().send().await.unwrap();
    let mut live = 0;
    for k in keys.keys() {
        let meta = p.client().describe_key().key_id(k.key_id().unwrap()).send().await.unwrap();
        let state = meta.key_metadata().and_then(|m| m.key_state()).map(|s| s.as_str().to_owned());
        if state.as_deref() == Some("Enabled") {
            live += 1;
        }
    }
    assert_eq!(live, 1);
    // User tags read back without hsm's own.
    let got = p.get_key(&KeyRef::new("orders")).await.unwrap();
    assert_eq!(got.tags.len(), 1);
    assert_eq!(got.tags["team"], "payments");
}

#[tokio::test]
async fn against_moto_aad_is_the_encryption_context_and_long_messages_are_digested() {
    let Some(server) = moto() else { return };
    let p = AwsKmsProvider::connect(&server.config()).await.unwrap();
    p.create_key(CreateKey::new("data", KeySpec::Aes256)).await.unwrap();
    let ct =
        p.encrypt(&KeyRef::new("data"), EncryptionAlgorithm::AesGcm, b"secret", Some(b"ctx")).await.unwrap();
    // Another AWS client decrypts it with the documented context.
    let (k, v) = hsm_aws::encryption_context(Some(b"ctx")).unwrap();
    let out = p
        .client()
        .decrypt()
        .ciphertext_blob(hsm_aws::aws_sdk_kms::primitives::Blob::new(ct.as_bytes()))
        .encryption_context(k, v)
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"secret");
    let err = p.decrypt(&KeyRef::new("data"), &ct, Some(b"other")).await.unwrap_err();
    assert!(matches!(err, Error::DecryptionFailed { .. }), "{err}");
    // Empty plaintexts round-trip even though KMS refuses them.
    let empty = p.encrypt(&KeyRef::new("data"), EncryptionAlgorithm::AesGcm, b"", None).await.unwrap();
    assert!(p.decrypt(&KeyRef::new("data"), &empty, None).await.unwrap().is_empty());
    // Over the 4096-byte limit: InvalidInput before any call.
    let err =
        p.encrypt(&KeyRef::new("data"), EncryptionAlgorithm::AesGcm, &[0; 4097], None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");

    p.create_key(CreateKey::new("signer", KeySpec::EcP256).usage(KeyUsage::SignVerify)).await.unwrap();
    let long = vec![7u8; 10_000];
    let r = KeyRef::new("signer");
    let sig = p.sign(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(&long)).await.unwrap();
    assert!(
        p.verify(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(&long), sig.as_bytes())
            .await
            .unwrap()
    );
    let short = p.sign(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"hi")).await.unwrap();
    assert!(
        !p.verify(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"ho"), short.as_bytes())
            .await
            .unwrap()
    );
    let listed = p.list_all(ListKeys::new()).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["data", "signer"]);
}

#[tokio::test]
async fn against_moto_ciphertexts_interoperate_with_boto3_and_signatures_verify_independently() {
    use base64::Engine as _;
    let Some(server) = moto() else { return };
    let p = AwsKmsProvider::connect(&server.config()).await.unwrap();

    // Signatures (RAW path) verify with aws-lc-rs over GetPublicKey's SPKI.
    for (name, spec, alg, verifier) in [
        (
            "ec",
            KeySpec::EcP256,
            SignatureAlgorithm::EcdsaSha256,
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1 as &dyn aws_lc_rs::signature::VerificationAlgorithm,
        ),
        (
            "rsa",
            KeySpec::Rsa2048,
            SignatureAlgorithm::RsaPkcs1v15Sha256,
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        ),
    ] {
        p.create_key(CreateKey::new(name, spec).usage(KeyUsage::SignVerify)).await.unwrap();
        let r = KeyRef::new(name);
        let sig = p.sign(&r, alg, SignInput::Message(b"interop message")).await.unwrap();
        let pk = p.public_key(&r).await.unwrap();
        aws_lc_rs::signature::UnparsedPublicKey::new(verifier, &pk.spki_der[..])
            .verify(b"interop message", sig.as_bytes())
            .unwrap_or_else(|_| panic!("{name}: the signature does not verify independently"));
    }

    // A ciphertext made by hsm-aws decrypts with boto3 (given the documented encryption
    // context), and one boto3 made decrypts with hsm-aws.
    p.create_key(CreateKey::new("data", KeySpec::Aes256)).await.unwrap();
    let r = KeyRef::new("data");
    let ct = p.encrypt(&r, EncryptionAlgorithm::AesGcm, b"from hsm", Some(b"aad")).await.unwrap();
    let (_, context) = hsm_aws::encryption_context(Some(b"aad")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let python = MotoServer::executable().unwrap().with_file_name("python");
    let script = r#"
import base64, sys, boto3
c = boto3.client("kms", region_name="us-east-1", endpoint_url=sys.argv[1],
                 aws_access_key_id="testing", aws_secret_access_key="testing")
ctx = {"hsm:aad": sys.argv[3]}
pt = c.decrypt(CiphertextBlob=base64.b64decode(sys.argv[2]), EncryptionContext=ctx)["Plaintext"]
out = c.encrypt(KeyId="alias/data", Plaintext=b"from boto3", EncryptionContext=ctx)["CiphertextBlob"]
print(pt.decode())
print(base64.b64encode(out).decode())
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script, &server.endpoint(), &b64.encode(ct.as_bytes()), &context])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "from hsm");
    let theirs =
        p.native_ciphertext(&r, EncryptionAlgorithm::AesGcm, b64.decode(lines[1]).unwrap()).await.unwrap();
    assert_eq!((theirs.key(), theirs.version()), ("data", "1"));
    assert_eq!(p.decrypt(&r, &theirs, Some(b"aad")).await.unwrap().as_slice(), b"from boto3");
}

#[tokio::test]
async fn against_moto_foreign_aliases_and_blobs_of_other_keys_are_refused_clearly() {
    use hsm_aws::aws_sdk_kms::types::{KeySpec as KmsSpec, KeyUsageType};
    let Some(server) = moto() else { return };
    let p = AwsKmsProvider::connect(&server.config()).await.unwrap();
    // Aliases made by other tools: an SM2 key hsm does not model, and an ECC key used to encrypt.
    for (name, spec, usage) in [
        ("made-elsewhere-sm2", KmsSpec::Sm2, KeyUsageType::SignVerify),
        ("made-elsewhere-ecc", KmsSpec::EccNistP256, KeyUsageType::SignVerify),
    ] {
        let meta = p.client().create_key().key_spec(spec).key_usage(usage).send().await.unwrap();
        let id = meta.key_metadata().unwrap().key_id().to_owned();
        p.client().create_alias().alias_name(format!("alias/{name}")).target_key_id(id).send().await.unwrap();
    }
    let err = p.get_key(&KeyRef::new("made-elsewhere-sm2")).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }) && err.to_string().contains("SM2"), "{err}");
    let ecc = KeyRef::new("made-elsewhere-ecc");
    let info = p.get_key(&ecc).await.unwrap();
    assert_eq!((info.spec, info.usage, info.version.as_str()), (KeySpec::EcP256, KeyUsage::SignVerify, "1"));
    let err = p.encrypt(&ecc, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    assert!(matches!(err, Error::KeyUnusable { .. } | Error::InvalidInput { .. }), "{err}");
    let sig = p.sign(&ecc, SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"m")).await.unwrap();
    assert!(
        p.verify(&ecc, SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"m"), sig.as_bytes())
            .await
            .unwrap()
    );

    // A ciphertext made under another key is refused before any call, naming both keys.
    p.create_key(CreateKey::new("a", KeySpec::Aes256)).await.unwrap();
    p.create_key(CreateKey::new("b", KeySpec::Aes256)).await.unwrap();
    let ct = p.encrypt(&KeyRef::new("a"), EncryptionAlgorithm::AesGcm, b"for a", None).await.unwrap();
    let err = p.decrypt(&KeyRef::new("b"), &ct, None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("'a'"), "{err}");
    // A version that does not exist is NotFound.
    let err = p.get_key(&KeyRef::new("a").with_version("7")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn against_moto_metadata_is_cached_for_data_calls_and_changes_are_seen() {
    let Some(server) = moto() else { return };
    let cached =
        AwsKmsProvider::connect(&server.config().metadata_ttl(Duration::from_secs(600))).await.unwrap();
    let uncached = AwsKmsProvider::connect(&server.config().metadata_ttl(Duration::ZERO)).await.unwrap();
    let key = KeyRef::new("cached");
    cached.create_key(CreateKey::new("cached", KeySpec::Aes256)).await.unwrap();
    let ct = cached.encrypt(&key, EncryptionAlgorithm::AesGcm, b"one", None).await.unwrap();

    // Changes made through the provider are seen at once: disable, then encrypt is refused
    // before any call, and enabling again makes it work.
    cached.set_key_state(&key, hsm_core::KeyState::Disabled).await.unwrap();
    let err = cached.encrypt(&key, EncryptionAlgorithm::AesGcm, b"two", None).await.unwrap_err();
    assert!(matches!(err, Error::KeyUnusable { reason: UnusableReason::Disabled, .. }), "{err}");
    cached.set_key_state(&key, hsm_core::KeyState::Enabled).await.unwrap();
    cached.encrypt(&key, EncryptionAlgorithm::AesGcm, b"three", None).await.unwrap();

    // The alias removed behind the provider's back: the cached provider still reaches the key
    // by its KMS id (no DescribeKey per call), the uncached one looks the alias up and fails.
    cached.client().delete_alias().alias_name("alias/cached").send().await.unwrap();
    assert_eq!(cached.decrypt(&key, &ct, None).await.unwrap().as_slice(), b"one");
    let err = uncached.decrypt(&key, &ct, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    // get_key always reads afresh, and drops what was cached.
    let err = cached.get_key(&key).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = cached.decrypt(&key, &ct, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn metadata_ttl_in_urls() {
    let cfg = AwsConfig::from_url("aws-kms://?region=us-east-1&metadata_ttl=0").unwrap();
    assert_eq!(cfg.metadata_cache_ttl(), Duration::ZERO);
    let cfg = AwsConfig::from_url("aws-kms://?region=us-east-1&metadata_ttl=500ms").unwrap();
    assert_eq!(cfg.metadata_cache_ttl(), Duration::from_millis(500));
    assert_eq!(AwsConfig::new().metadata_cache_ttl(), hsm_aws::DEFAULT_METADATA_TTL);
    let cfg = AwsConfig::from_url("aws-kms://?region=us-east-1&verify=local").unwrap();
    assert_eq!(cfg.verification_mode(), hsm_aws::Verification::Local);
    assert_eq!(AwsConfig::new().verification_mode(), hsm_aws::Verification::Service);
    let err = AwsConfig::from_url("aws-kms://?verify=maybe").unwrap_err();
    assert!(err.to_string().contains("verify=service or verify=local"), "{err}");
    let err = AwsConfig::from_url("aws-kms://?metadata_ttl=soon").unwrap_err();
    assert!(err.to_string().contains("metadata_ttl=soon"), "{err}");
}
