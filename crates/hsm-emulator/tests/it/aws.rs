//! `hsm-emulator aws` driven by the official Rust SDK (`aws-sdk-kms`), by raw HTTP for what
//! an SDK cannot send (unsigned and stale requests), by boto3 (`tests/py/aws_boto3.py`, run
//! with `$HSM_PYTHON`), and by hsm-aws interoperating with boto3 (`tests/py/aws_interop.py`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeySpec, EncryptionAlgorithmSpec, KeyMetadata, KeySpec, KeyState, KeyUsageType, MessageType,
    SigningAlgorithmSpec, Tag,
};
use base64::Engine as _;
use hsm_core::{EncryptionAlgorithm, KeyRef, Provider as _, SignInput, SignatureAlgorithm};
use hsm_emulator::aws::{Args, start};
use hsm_emulator::server::Running;

async fn emulator() -> Running {
    start(Args::default()).await.expect("hsm-emulator aws starts")
}

fn client_with(running: &Running, key_id: &str, secret: &str, region: &str) -> Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(running.url())
        .credentials_provider(Credentials::new(key_id, secret, None, None, "test"))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// Creates a key with the SDK and returns its metadata.
pub(crate) async fn create_key(kms: &Client, spec: KeySpec, usage: KeyUsageType) -> KeyMetadata {
    kms.create_key().key_spec(spec).key_usage(usage).send().await.unwrap().key_metadata.unwrap()
}

fn client(running: &Running) -> Client {
    client_with(running, "testing", "testing", "us-east-1")
}

/// The AWS error code of a failed SDK call (panics if it succeeded).
fn code<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("no error code in {e:?}")).to_owned(),
    }
}

/// One raw HTTP/1.1 request; returns the status code and body.
async fn raw_post(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head =
        format!("POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn unsigned_and_stale_requests_get_the_errors_aws_sends() {
    let running = emulator().await;
    let json = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "TrentService.ListKeys")];
    let (status, body) = raw_post(running.addr(), &json, "{}").await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["__type"], "MissingAuthenticationTokenException", "{body}");

    // Correctly formed, but dated 2015: refused for the clock, before the signature is read.
    let mut stale = json.to_vec();
    stale.push(("x-amz-date", "20150830T123600Z"));
    stale.push((
        "authorization",
        "AWS4-HMAC-SHA256 Credential=testing/20150830/us-east-1/kms/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00",
    ));
    let (status, body) = raw_post(running.addr(), &stale, "{}").await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["__type"], "InvalidSignatureException", "{body}");
    assert!(v["message"].as_str().unwrap().starts_with("Signature expired"), "{body}");

    let mut garbled = json.to_vec();
    garbled.push(("authorization", "AWS4-HMAC-SHA256 Signature=00"));
    garbled.push(("x-amz-date", "20150830T123600Z"));
    let (status, body) = raw_post(running.addr(), &garbled, "{}").await;
    assert_eq!(status, 400);
    assert!(body.contains("IncompleteSignatureException"), "{body}");
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_the_right_ones_accepted() {
    let running = emulator().await;
    let e = client_with(&running, "testing", "not-the-secret", "us-east-1").list_keys().send().await;
    assert_eq!(code(e), "InvalidSignatureException");
    let e = client_with(&running, "AKIDUNKNOWN", "testing", "us-east-1").list_keys().send().await;
    assert_eq!(code(e), "UnrecognizedClientException");
    let e = client_with(&running, "testing", "testing", "eu-west-1").list_keys().send().await;
    assert_eq!(code(e), "InvalidSignatureException");
    let keys = client(&running).list_keys().send().await.unwrap();
    assert!(keys.keys().is_empty() && !keys.truncated());

    // Configured credentials other than the defaults.
    let custom = start(Args {
        access_key_id: "AKIDCUSTOM".into(),
        secret_access_key: "s3cr3t".into(),
        region: "eu-central-1".into(),
        account: "999988887777".into(),
        ..Args::default()
    })
    .await
    .unwrap();
    let c = client_with(&custom, "AKIDCUSTOM", "s3cr3t", "eu-central-1");
    let meta = c.create_key().send().await.unwrap().key_metadata.unwrap();
    assert!(meta.arn().unwrap().starts_with("arn:aws:kms:eu-central-1:999988887777:key/"), "{meta:?}");
    assert_eq!(code(client(&custom).list_keys().send().await), "UnrecognizedClientException");
}

#[tokio::test]
async fn key_states_give_the_errors_aws_gives() {
    let running = emulator().await;
    let kms = client(&running);
    let id = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let blob =
        kms.encrypt().key_id(&id).plaintext(Blob::new("x")).send().await.unwrap().ciphertext_blob.unwrap();

    kms.disable_key().key_id(&id).send().await.unwrap();
    kms.disable_key().key_id(&id).send().await.unwrap(); // idempotent
    assert_eq!(code(kms.encrypt().key_id(&id).plaintext(Blob::new("x")).send().await), "DisabledException");
    assert_eq!(code(kms.decrypt().ciphertext_blob(blob.clone()).send().await), "DisabledException");
    assert_eq!(code(kms.rotate_key_on_demand().key_id(&id).send().await), "DisabledException");
    kms.enable_key().key_id(&id).send().await.unwrap();

    assert_eq!(code(kms.cancel_key_deletion().key_id(&id).send().await), "KMSInvalidStateException");
    let e = kms.schedule_key_deletion().key_id(&id).pending_window_in_days(31).send().await;
    assert_eq!(code(e), "ValidationException");
    let out = kms.schedule_key_deletion().key_id(&id).pending_window_in_days(7).send().await.unwrap();
    assert_eq!(out.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(out.pending_window_in_days(), Some(7));
    let meta = kms.describe_key().key_id(&id).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(meta.key_state(), Some(&KeyState::PendingDeletion));
    assert!(!meta.enabled());
    let days = meta.deletion_date().unwrap().secs()
        - aws_sdk_kms::primitives::DateTime::from(std::time::SystemTime::now()).secs();
    assert!((6 * 86_400..=7 * 86_400).contains(&days), "{days}");
    for e in [
        code(kms.encrypt().key_id(&id).plaintext(Blob::new("x")).send().await),
        code(kms.decrypt().ciphertext_blob(blob.clone()).send().await),
        code(kms.enable_key().key_id(&id).send().await),
        code(kms.disable_key().key_id(&id).send().await),
        code(kms.schedule_key_deletion().key_id(&id).send().await),
        code(kms.update_key_description().key_id(&id).description("d").send().await),
        code(kms.create_alias().alias_name("alias/late").target_key_id(&id).send().await),
    ] {
        assert_eq!(e, "KMSInvalidStateException");
    }
    // Still visible while pending deletion.
    kms.list_resource_tags().key_id(&id).send().await.unwrap();
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    let meta = kms.describe_key().key_id(&id).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(meta.key_state(), Some(&KeyState::Disabled), "cancelling leaves the key disabled, as on AWS");
    assert!(meta.deletion_date().is_none());
    kms.enable_key().key_id(&id).send().await.unwrap();
    let pt = kms.decrypt().ciphertext_blob(blob).send().await.unwrap().plaintext.unwrap();
    assert_eq!(pt.as_ref(), b"x");
}

#[tokio::test]
async fn usage_and_input_errors() {
    let running = emulator().await;
    let kms = client(&running);
    let sym = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let other = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let ec = create_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await.key_id;
    // Asymmetric keys must name a usage that fits (the default ENCRYPT_DECRYPT does not for EC).
    assert_eq!(code(kms.create_key().key_spec(KeySpec::EccNistP256).send().await), "ValidationException");
    let e = kms.create_key().key_spec(KeySpec::Hmac256).key_usage(KeyUsageType::SignVerify).send().await;
    assert_eq!(code(e), "ValidationException");
    assert_eq!(
        code(kms.create_key().key_spec(KeySpec::Sm2).key_usage(KeyUsageType::SignVerify).send().await),
        "UnsupportedOperationException"
    );

    let e = kms
        .sign()
        .key_id(&sym)
        .message(Blob::new("m"))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(code(e), "InvalidKeyUsageException");
    let e = kms.encrypt().key_id(&ec).plaintext(Blob::new("m")).send().await;
    assert_eq!(code(e), "InvalidKeyUsageException");
    let e = kms
        .sign()
        .key_id(&ec)
        .message(Blob::new("m"))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha384)
        .send()
        .await;
    assert_eq!(code(e), "InvalidKeyUsageException");
    let e = kms
        .sign()
        .key_id(&ec)
        .message(Blob::new([0u8; 31]))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(code(e), "ValidationException");
    assert_eq!(code(kms.get_public_key().key_id(&sym).send().await), "UnsupportedOperationException");
    assert_eq!(code(kms.rotate_key_on_demand().key_id(&ec).send().await), "UnsupportedOperationException");
    assert_eq!(code(kms.describe_key().key_id("alias/nope").send().await), "NotFoundException");
    assert_eq!(
        code(kms.describe_key().key_id("arn:aws:kms:us-east-1:000000000000:key/x").send().await),
        "NotFoundException"
    );
    assert_eq!(code(kms.describe_key().key_id("arn:nonsense").send().await), "InvalidArnException");
    let e = kms.encrypt().key_id(&sym).plaintext(Blob::new(vec![0u8; 4097])).send().await;
    assert_eq!(code(e), "ValidationException");
    assert_eq!(code(kms.generate_data_key().key_id(&sym).send().await), "ValidationException");
    let e = kms.generate_data_key().key_id(&ec).key_spec(DataKeySpec::Aes256).send().await;
    assert_eq!(code(e), "InvalidKeyUsageException");

    // Ciphertexts: wrong key, wrong context, flipped bytes, garbage.
    let blob = kms
        .encrypt()
        .key_id(&sym)
        .plaintext(Blob::new("secret"))
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let e =
        kms.decrypt().key_id(&other).ciphertext_blob(blob.clone()).encryption_context("k", "v").send().await;
    assert_eq!(code(e), "IncorrectKeyException");
    assert_eq!(code(kms.decrypt().ciphertext_blob(blob.clone()).send().await), "InvalidCiphertextException");
    for i in [0, 5, 40, blob.as_ref().len() / 2, blob.as_ref().len() - 1] {
        let mut t = blob.as_ref().to_vec();
        t[i] ^= 0x20;
        let e = kms.decrypt().ciphertext_blob(Blob::new(t)).encryption_context("k", "v").send().await;
        assert_eq!(code(e), "InvalidCiphertextException", "byte {i}");
    }
    assert_eq!(
        code(kms.decrypt().ciphertext_blob(Blob::new("garbage")).send().await),
        "InvalidCiphertextException"
    );
    let ok = kms.decrypt().ciphertext_blob(blob).encryption_context("k", "v").send().await.unwrap();
    assert_eq!(ok.plaintext().unwrap().as_ref(), b"secret");
    assert!(ok.key_id().unwrap().ends_with(&sym));
}

#[tokio::test]
async fn digests_are_signed_as_given_and_rotation_keeps_old_ciphertexts() {
    let running = emulator().await;
    let kms = client(&running);
    let rsa = create_key(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await.key_id;
    let msg = b"message to sign";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg);
    for alg in [SigningAlgorithmSpec::RsassaPssSha256, SigningAlgorithmSpec::RsassaPkcs1V15Sha256] {
        let sig = kms
            .sign()
            .key_id(&rsa)
            .message(Blob::new(digest.as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(alg.clone())
            .send()
            .await
            .unwrap()
            .signature
            .unwrap();
        // A DIGEST signature verifies as a RAW one over the message: no second hashing.
        let out = kms
            .verify()
            .key_id(&rsa)
            .message(Blob::new(&msg[..]))
            .signature(sig.clone())
            .signing_algorithm(alg.clone())
            .send()
            .await
            .unwrap();
        assert!(out.signature_valid());
        let e = kms
            .verify()
            .key_id(&rsa)
            .message(Blob::new("other"))
            .signature(sig)
            .signing_algorithm(alg)
            .send()
            .await;
        assert_eq!(code(e), "KMSInvalidSignatureException");
    }

    let sym = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let old =
        kms.encrypt().key_id(&sym).plaintext(Blob::new("old")).send().await.unwrap().ciphertext_blob.unwrap();
    let first = kms.describe_key().key_id(&sym).send().await.unwrap().key_metadata.unwrap();
    kms.rotate_key_on_demand().key_id(&sym).send().await.unwrap();
    let second = kms.describe_key().key_id(&sym).send().await.unwrap().key_metadata.unwrap();
    assert_ne!(first.current_key_material_id(), second.current_key_material_id());
    let out = kms.decrypt().ciphertext_blob(old).send().await.unwrap();
    assert_eq!(out.plaintext().unwrap().as_ref(), b"old");
    assert_eq!(out.key_material_id(), first.current_key_material_id());
    let rotations = kms.list_key_rotations().key_id(&sym).send().await.unwrap();
    assert_eq!(rotations.rotations().len(), 1);

    let dk = kms.generate_data_key().key_id(&sym).key_spec(DataKeySpec::Aes128).send().await.unwrap();
    let pt =
        kms.decrypt().ciphertext_blob(dk.ciphertext_blob.unwrap()).send().await.unwrap().plaintext.unwrap();
    assert_eq!(pt.as_ref(), dk.plaintext.unwrap().as_ref());
    assert_eq!(pt.as_ref().len(), 16);

    let rsa_enc = create_key(&kms, KeySpec::Rsa3072, KeyUsageType::EncryptDecrypt).await.key_id;
    let ct = kms
        .encrypt()
        .key_id(&rsa_enc)
        .plaintext(Blob::new("oaep"))
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha1)
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    assert_eq!(ct.as_ref().len(), 384);
    let e = kms
        .decrypt()
        .key_id(&rsa_enc)
        .ciphertext_blob(ct.clone())
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .send()
        .await;
    assert_eq!(code(e), "InvalidCiphertextException");
    let pt = kms
        .decrypt()
        .key_id(&rsa_enc)
        .ciphertext_blob(ct)
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha1)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(pt.as_ref(), b"oaep");
}

#[tokio::test]
async fn listings_paginate_with_limit_and_marker() {
    let running = emulator().await;
    let kms = client(&running);
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = kms
            .create_key()
            .tags(Tag::builder().tag_key("n").tag_value(i.to_string()).build().unwrap())
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id;
        kms.create_alias().alias_name(format!("alias/page-{i}")).target_key_id(&id).send().await.unwrap();
        ids.push(id);
    }
    kms.create_alias().alias_name("alias/page-extra").target_key_id(&ids[0]).send().await.unwrap();

    let mut seen = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let out = kms.list_keys().limit(3).set_marker(marker).send().await.unwrap();
        pages += 1;
        assert!(out.keys().len() <= 3);
        seen.extend(out.keys().iter().map(|k| k.key_id().unwrap().to_owned()));
        match (out.truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            (false, None) => break,
            other => panic!("Truncated and NextMarker disagree: {other:?}"),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every key once, in creation order");

    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let out = kms.list_aliases().limit(2).set_marker(marker).send().await.unwrap();
        names.extend(out.aliases().iter().map(|a| a.alias_name().unwrap().to_owned()));
        if !out.truncated() {
            break;
        }
        marker = out.next_marker().map(str::to_owned);
    }
    assert_eq!(names.len(), 8);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    let filtered = kms.list_aliases().key_id(&ids[0]).send().await.unwrap();
    let mut f: Vec<_> = filtered.aliases().iter().map(|a| a.alias_name().unwrap()).collect();
    f.sort();
    assert_eq!(f, ["alias/page-0", "alias/page-extra"]);
    assert_eq!(code(kms.list_aliases().key_id("alias/page-0").send().await), "NotFoundException");
    assert_eq!(code(kms.list_keys().marker("garbage").send().await), "InvalidMarkerException");
    assert_eq!(code(kms.list_keys().limit(1001).send().await), "ValidationException");
    assert_eq!(code(kms.list_aliases().limit(101).send().await), "ValidationException");

    for i in 0..5 {
        let tag = Tag::builder().tag_key(format!("t{i}")).tag_value("v").build().unwrap();
        kms.tag_resource().key_id(&ids[1]).tags(tag).send().await.unwrap();
    }
    let first = kms.list_resource_tags().key_id(&ids[1]).limit(4).send().await.unwrap();
    assert_eq!(first.tags().len(), 4);
    assert!(first.truncated());
    let rest = kms
        .list_resource_tags()
        .key_id(&ids[1])
        .limit(4)
        .marker(first.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.tags().len(), 2);
    assert!(!rest.truncated());
}

/// The venv's python from `HSM_PYTHON`; `None` (test skipped) unless `HSM_REQUIRE_SERVERS`.
fn python() -> Option<PathBuf> {
    match std::env::var_os("HSM_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None if hsm_aws::moto::servers_required() => {
            panic!("HSM_PYTHON is not set and HSM_REQUIRE_SERVERS is: the boto3 tests must run")
        }
        None => {
            eprintln!("skipped: HSM_PYTHON is not set (the venv's python with boto3)");
            None
        }
    }
}

/// Runs `tests/py/<script> <args>` off the async executor; returns stdout, panics with the
/// script's output when it fails.
async fn run_script(python: PathBuf, script: &str, args: Vec<String>) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
    let out = tokio::task::spawn_blocking(move || Command::new(&python).arg(&path).args(&args).output())
        .await
        .unwrap()
        .expect("the python from HSM_PYTHON runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sees_a_faithful_kms() {
    let Some(python) = python() else { return };
    let running = emulator().await;
    let out = run_script(python, "aws_boto3.py", vec![running.url()]).await;
    assert!(out.contains("all boto3 checks passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_aws_and_boto3_interoperate() {
    let Some(python) = python() else { return };
    let running = emulator().await;
    let config = hsm_aws::AwsConfig::new()
        .with_region("us-east-1")
        .with_endpoint(running.url())
        .static_credentials("testing", "testing");
    let hsm = hsm_aws::AwsKmsProvider::connect(&config).await.unwrap();
    hsm.create_key(hsm_core::CreateKey::new("interop", hsm_core::KeySpec::Aes256)).await.unwrap();
    hsm.create_key(hsm_core::CreateKey::new("interop-ec", hsm_core::KeySpec::EcP384)).await.unwrap();
    let key = KeyRef::new("interop");
    let aad = b"header v1";
    let ct = hsm.encrypt(&key, EncryptionAlgorithm::AesGcm, b"made by hsm-aws", Some(aad)).await.unwrap();
    let sig = hsm
        .sign(
            &KeyRef::new("interop-ec"),
            SignatureAlgorithm::EcdsaSha384,
            SignInput::Message(b"signed by hsm-aws"),
        )
        .await
        .unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let out = run_script(
        python,
        "aws_interop.py",
        vec![
            running.url(),
            "alias/interop".into(),
            b64(aad),
            b64(ct.as_bytes()),
            "alias/interop-ec".into(),
            b64(sig.as_bytes()),
        ],
    )
    .await;
    let blob = out
        .lines()
        .find_map(|l| l.strip_prefix("boto3-ciphertext: "))
        .unwrap_or_else(|| panic!("no ciphertext in the script's output:\n{out}"));
    let blob = base64::engine::general_purpose::STANDARD.decode(blob.trim()).unwrap();
    let native = hsm.native_ciphertext(&key, EncryptionAlgorithm::AesGcm, blob).await.unwrap();
    let pt = hsm.decrypt(&key, &native, Some(aad)).await.unwrap();
    assert_eq!(pt.as_slice(), b"made by boto3");
    assert!(hsm.decrypt(&key, &native, Some(b"other aad")).await.is_err());
}

#[test]
fn the_binary_serves_and_says_where() {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
        .args(["aws", "--port", "0", "--region", "eu-west-3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("hsm-emulator aws listening on http://127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn ed25519_keys_sign_raw_messages() {
    let running = emulator().await;
    let kms = client(&running);
    let meta = create_key(&kms, KeySpec::EccNistEdwards25519, KeyUsageType::SignVerify).await;
    let id = meta.key_id().to_owned();
    let spki = kms.get_public_key().key_id(&id).send().await.unwrap().public_key.unwrap();
    let sig = kms
        .sign()
        .key_id(&id)
        .message(Blob::new("edwards"))
        .signing_algorithm(SigningAlgorithmSpec::Ed25519Sha512)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    assert_eq!(sig.as_ref().len(), 64);
    // Independently: the last 32 bytes of the SPKI are the raw Ed25519 public key.
    let raw = &spki.as_ref()[spki.as_ref().len() - 32..];
    let public = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, raw);
    public.verify(b"edwards", sig.as_ref()).unwrap();
    let e = kms
        .sign()
        .key_id(&id)
        .message(Blob::new([0u8; 64]))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::Ed25519Sha512)
        .send()
        .await;
    assert_eq!(code(e), "ValidationException");
}

/// hsm-aws's metadata cache against a KMS that enforces key states: a key disabled by another
/// tool is refused by the service at once, the stale entry is dropped, and the key works
/// again as soon as it is re-enabled.
#[tokio::test]
async fn hsm_aws_cache_follows_changes_made_by_other_tools() {
    let running = emulator().await;
    let cfg = hsm_aws::AwsConfig::new()
        .with_region(hsm_emulator::aws::DEFAULT_REGION)
        .with_endpoint(running.url())
        .static_credentials(
            hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID,
            hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY,
        )
        .metadata_ttl(std::time::Duration::from_secs(600));
    let p = hsm_aws::AwsKmsProvider::connect(&cfg).await.unwrap();
    let key = KeyRef::new("elsewhere");
    let info = p.create_key(hsm_core::CreateKey::new("elsewhere", hsm_core::KeySpec::Aes256)).await.unwrap();
    p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();

    let other = client(&running);
    other.disable_key().key_id(&info.native_id).send().await.unwrap();
    // The cache still says enabled, so the call goes out, and KMS refuses it.
    let err = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    assert!(matches!(err, hsm_core::Error::KeyUnusable { .. }), "{err}");
    // The entry was dropped: the next call reads afresh and refuses before any Encrypt.
    let err = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    assert!(
        matches!(err, hsm_core::Error::KeyUnusable { reason: hsm_core::UnusableReason::Disabled, .. }),
        "{err}"
    );
    other.enable_key().key_id(&info.native_id).send().await.unwrap();
    let ct = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    assert_eq!(p.decrypt(&key, &ct, None).await.unwrap().as_slice(), b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_sees_a_faithful_kms() {
    let Some(modules) = crate::node::modules() else { return };
    let running = emulator().await;
    let out = crate::node::run(modules, "aws_kms.mjs", vec![running.url()], vec![]).await;
    assert!(out.contains("aws_kms.mjs: all checks passed"), "{out}");
    eprintln!("{}", out.lines().last().unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_aws_and_the_node_sdk_interoperate() {
    let Some(modules) = crate::node::modules() else { return };
    let running = emulator().await;
    let config = hsm_aws::AwsConfig::new()
        .with_region("us-east-1")
        .with_endpoint(running.url())
        .static_credentials("testing", "testing");
    let hsm = hsm_aws::AwsKmsProvider::connect(&config).await.unwrap();
    hsm.create_key(hsm_core::CreateKey::new("interop", hsm_core::KeySpec::Aes256)).await.unwrap();
    hsm.create_key(hsm_core::CreateKey::new("interop-ec", hsm_core::KeySpec::EcP384)).await.unwrap();
    let key = KeyRef::new("interop");
    let aad = b"header v1";
    let ct = hsm.encrypt(&key, EncryptionAlgorithm::AesGcm, b"made by hsm-aws", Some(aad)).await.unwrap();
    let sig = hsm
        .sign(
            &KeyRef::new("interop-ec"),
            SignatureAlgorithm::EcdsaSha384,
            SignInput::Message(b"signed by hsm-aws"),
        )
        .await
        .unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let args = vec![
        running.url(),
        "alias/interop".into(),
        b64(aad),
        b64(ct.as_bytes()),
        "alias/interop-ec".into(),
        b64(sig.as_bytes()),
    ];
    let out = crate::node::run(modules, "aws_interop.mjs", args, vec![]).await;
    let blob = out
        .lines()
        .find_map(|l| l.strip_prefix("node-ciphertext: "))
        .unwrap_or_else(|| panic!("no ciphertext in the script's output:\n{out}"));
    let blob = base64::engine::general_purpose::STANDARD.decode(blob.trim()).unwrap();
    let native = hsm.native_ciphertext(&key, EncryptionAlgorithm::AesGcm, blob).await.unwrap();
    let pt = hsm.decrypt(&key, &native, Some(aad)).await.unwrap();
    assert_eq!(pt.as_slice(), b"made by node");
    assert!(hsm.decrypt(&key, &native, Some(b"other aad")).await.is_err());
}
