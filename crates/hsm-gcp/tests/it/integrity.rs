//! CRC32C integrity: a proxy between the provider and the emulator alters responses, and the
//! provider must refuse every altered answer with a retryable error instead of using it.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hsm_core::{
    CreateKey, EncryptionAlgorithm as E, Error, KeyRef, KeySpec, MacAlgorithm, Provider, SignInput,
    SignatureAlgorithm as S,
};
use hsm_gcp::GcpKmsProvider;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::support::{config, emulator};

/// How the proxy alters the next responses.
type Tamper = Arc<Mutex<Option<fn(&mut serde_json::Map<String, Value>)>>>;

async fn forward(
    upstream: String,
    tamper: Tamper,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let stream = tokio::net::TcpStream::connect(&upstream).await.expect("connect upstream");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut out = hyper::Request::builder().method(parts.method).uri(parts.uri).header("host", &upstream);
    for (k, v) in &parts.headers {
        if k != "host" {
            out = out.header(k, v);
        }
    }
    let resp = send.send_request(out.body(Full::new(body)).expect("request")).await.expect("upstream answer");
    let (parts, body) = resp.into_parts();
    let mut bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let f = *tamper.lock().unwrap();
    if let (Some(f), true) = (f, parts.status.is_success())
        && let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&bytes)
    {
        f(&mut map);
        bytes = Bytes::from(serde_json::to_vec(&Value::Object(map)).expect("json"));
    }
    let mut resp = hyper::Response::builder().status(parts.status);
    for (k, v) in &parts.headers {
        if k != "content-length" {
            resp = resp.header(k, v);
        }
    }
    resp.body(Full::new(bytes)).expect("response")
}

/// Starts the proxy in front of `upstream` (`127.0.0.1:PORT`); returns its URL.
async fn proxy(upstream: String, tamper: Tamper) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (upstream, tamper) = (upstream.clone(), tamper.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (upstream, tamper) = (upstream.clone(), tamper.clone());
                    async move { Ok::<_, Infallible>(forward(upstream, tamper, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

fn flip_first_byte_of(map: &mut serde_json::Map<String, Value>, field: &str) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(Value::String(s)) = map.get(field) {
        let mut raw = b64.decode(s).expect("base64");
        raw[0] ^= 1;
        map.insert(field.into(), Value::String(b64.encode(raw)));
    }
}

fn expect_integrity<T: std::fmt::Debug>(what: &str, r: hsm_core::Result<T>) {
    match r {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("CRC32C") || e.to_string().contains("names"), "{what}: {e}");
        }
        other => panic!("{what}: an altered response was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn altered_responses_are_refused_as_retryable_errors() {
    let emu = emulator().await;
    let tamper: Tamper = Arc::new(Mutex::new(None));
    let url = proxy(emu.addr().to_string(), tamper.clone()).await;
    let p = GcpKmsProvider::connect(&config(&url)).await.unwrap();
    p.create_key(CreateKey::new("aes", KeySpec::Aes256)).await.unwrap();
    p.create_key(CreateKey::new("raw", KeySpec::Aes128)).await.unwrap();
    p.create_key(CreateKey::new("ec", KeySpec::EcP256)).await.unwrap();
    p.create_key(CreateKey::new("rsa", KeySpec::Rsa2048)).await.unwrap();
    p.create_key(CreateKey::new("mac", KeySpec::HmacSha256)).await.unwrap();
    let (aes, raw, ec, rsa, mac) =
        (KeyRef::new("aes"), KeyRef::new("raw"), KeyRef::new("ec"), KeyRef::new("rsa"), KeyRef::new("mac"));
    let ct = p.encrypt(&aes, E::AesGcm, b"pt", Some(b"aad")).await.unwrap();
    let rsa_ct = p.encrypt(&rsa, E::RsaOaepSha256, b"pt", None).await.unwrap();
    let tag = p.mac(&mac, MacAlgorithm::HmacSha256, b"m").await.unwrap();

    let set = |f: fn(&mut serde_json::Map<String, Value>)| *tamper.lock().unwrap() = Some(f);
    // Data altered in transit while its CRC stays: every response field is checked.
    set(|m| flip_first_byte_of(m, "ciphertext"));
    expect_integrity("Encrypt ciphertext", p.encrypt(&aes, E::AesGcm, b"pt", None).await);
    expect_integrity("RawEncrypt ciphertext", p.encrypt(&raw, E::AesGcm, b"pt", None).await);
    set(|m| flip_first_byte_of(m, "initializationVector"));
    expect_integrity("RawEncrypt IV", p.encrypt(&raw, E::AesGcm, b"pt", None).await);
    set(|m| flip_first_byte_of(m, "plaintext"));
    expect_integrity("Decrypt plaintext", p.decrypt(&aes, &ct, Some(b"aad")).await);
    expect_integrity("AsymmetricDecrypt plaintext", p.decrypt(&rsa, &rsa_ct, None).await);
    set(|m| flip_first_byte_of(m, "signature"));
    expect_integrity("AsymmetricSign signature", p.sign(&ec, S::EcdsaSha256, SignInput::Message(b"m")).await);
    set(|m| flip_first_byte_of(m, "mac"));
    expect_integrity("MacSign mac", p.mac(&mac, MacAlgorithm::HmacSha256, b"m").await);
    set(|m| {
        if let Some(Value::String(pem)) = m.get("pem") {
            let altered = pem.replacen('A', "B", 1);
            m.insert("pem".into(), Value::String(altered));
        }
    });
    expect_integrity("GetPublicKey pem", p.public_key(&ec).await);
    // The service says it did not verify what we sent.
    set(|m| {
        m.remove("verifiedPlaintextCrc32c");
    });
    expect_integrity("Encrypt verified_plaintext_crc32c", p.encrypt(&aes, E::AesGcm, b"pt", None).await);
    set(|m| {
        m.remove("verifiedAdditionalAuthenticatedDataCrc32c");
    });
    expect_integrity("Encrypt verified AAD", p.encrypt(&aes, E::AesGcm, b"pt", Some(b"a")).await);
    set(|m| {
        m.remove("verifiedDigestCrc32c");
    });
    expect_integrity(
        "AsymmetricSign verified_digest_crc32c",
        p.sign(&ec, S::EcdsaSha256, SignInput::Message(b"m")).await,
    );
    set(|m| {
        m.remove("verifiedCiphertextCrc32c");
    });
    expect_integrity("AsymmetricDecrypt verified_ciphertext_crc32c", p.decrypt(&rsa, &rsa_ct, None).await);
    set(|m| {
        let flipped = !m.get("success").and_then(Value::as_bool).unwrap_or(false);
        m.insert("success".into(), Value::Bool(flipped));
    });
    expect_integrity(
        "MacVerify success integrity",
        p.verify_mac(&mac, MacAlgorithm::HmacSha256, b"m", tag.as_bytes()).await,
    );
    // A response about another version than the one asked for.
    set(|m| {
        if let Some(Value::String(n)) = m.get("name") {
            let other = format!("{}9", n);
            m.insert("name".into(), Value::String(other));
        }
    });
    expect_integrity("Encrypt name", p.encrypt(&aes, E::AesGcm, b"pt", None).await);

    // Untouched again, everything works.
    *tamper.lock().unwrap() = None;
    assert_eq!(p.decrypt(&aes, &ct, Some(b"aad")).await.unwrap().as_slice(), b"pt");
}
