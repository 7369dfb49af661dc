//! `hsm-emulator azure`: TLS with the generated CA, the bearer challenge, routing (including
//! empty version segments), paging, the KeyBundle format, crypto and Key Vault's errors,
//! checked over real HTTPS; then the official Python SDK against the emulator.

use std::sync::Arc;

use bytes::Bytes;
use hsm_emulator::azure::{self, Args};
use hsm_emulator::server::Running;
use http_body_util::{BodyExt as _, Full};
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

/// A minimal HTTPS client for the emulator: one connection per request, trusting `ca_pem`.
struct Kv {
    running: Running,
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

type Answer = (StatusCode, HeaderMap, Value);

fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl Kv {
    async fn start(args: Args) -> Kv {
        let (running, ca_pem) = azure::start_with_ca(args).await.unwrap();
        Kv {
            running,
            tls: tokio_rustls::TlsConnector::from(Arc::new(client_config(&ca_pem))),
            server_name: ServerName::try_from("127.0.0.1").unwrap(),
        }
    }

    async fn vault() -> Kv {
        Kv::start(Args::default()).await
    }

    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let tcp = tokio::net::TcpStream::connect(self.running.addr()).await.unwrap();
        let tls = self.tls.connect(self.server_name.clone(), tcp).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.running.addr().to_string())
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let resp = sender.send_request(req.body(Full::new(body)).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (parts.status, parts.headers, json)
    }

    /// An authenticated call with `?api-version=7.6` appended.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let sep = if path.contains('?') { '&' } else { '?' };
        self.send(method, &format!("{path}{sep}api-version=7.6"), Some("test-token"), body).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, _, json) = self.call(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {json}");
        json
    }

    async fn create(&self, name: &str, body: Value) -> Value {
        self.ok(Method::POST, &format!("/keys/{name}/create"), Some(body)).await
    }

    fn base(&self) -> String {
        format!("https://{}", self.running.addr())
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    use base64::Engine as _;
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    assert!(!s.contains(['+', '/', '=']), "not base64url without padding: {s}");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn error_code(json: &Value) -> (&str, Option<&str>) {
    (json["error"]["code"].as_str().unwrap(), json["error"]["innererror"]["code"].as_str())
}

fn version_of(kid: &Value) -> String {
    kid.as_str().unwrap().rsplit('/').next().unwrap().to_string()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

#[tokio::test]
async fn serves_tls_trusted_by_the_generated_ca_for_ip_localhost_and_host() {
    let kv = Kv::start(Args { host: Some("test.vault.azure.net".into()), ..Args::default() }).await;
    assert!(kv.running.url().starts_with("https://127.0.0.1:"));
    let (status, _, _) = kv.call(Method::GET, "/keys", None).await;
    assert_eq!(status, StatusCode::OK);
    // The same certificate covers the DNS names.
    for name in ["localhost", "test.vault.azure.net"] {
        let tcp = tokio::net::TcpStream::connect(kv.running.addr()).await.unwrap();
        let sni = ServerName::try_from(name.to_string()).unwrap();
        assert!(kv.tls.connect(sni, tcp).await.is_ok(), "{name}");
    }
    // A client that does not trust the CA is refused by its own verifier.
    let (_, other_ca) = azure::start_with_ca(Args::default()).await.unwrap();
    let untrusting = tokio_rustls::TlsConnector::from(Arc::new(client_config(&other_ca)));
    let tcp = tokio::net::TcpStream::connect(kv.running.addr()).await.unwrap();
    assert!(untrusting.connect(kv.server_name.clone(), tcp).await.is_err());
}

#[tokio::test]
async fn ca_out_writes_the_pem_the_server_chains_to() {
    let dir = std::env::temp_dir().join(format!("hsm-emulator-azure-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.pem");
    let (_running, pem) =
        azure::start_with_ca(Args { ca_out: Some(path.clone()), ..Args::default() }).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unauthenticated_requests_get_the_challenge_before_the_body_is_read() {
    let kv = Kv::vault().await;
    // No Authorization and an invalid body: 401, not 400.
    let (status, headers, json) =
        kv.send(Method::POST, "/keys/k/create?api-version=7.6", None, Some(json!("not an object"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&json).0, "Unauthorized");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer authorization=\"https://login.microsoftonline.com/"),
        "{challenge}"
    );
    assert!(challenge.ends_with("resource=\"https://vault.azure.net\""), "{challenge}");
    // An empty token is no token.
    let (status, _, _) = kv.send(Method::GET, "/keys?api-version=7.6", Some(""), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing was created.
    assert_eq!(kv.ok(Method::GET, "/keys", None).await["value"], json!([]));

    // Managed HSM names its own resource; --token restricts the accepted token.
    let hsm = Kv::start(Args { managed_hsm: true, token: Some("right".into()), ..Args::default() }).await;
    let (status, headers, _) = hsm.send(Method::GET, "/keys?api-version=7.6", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"].to_str().unwrap().contains("resource=\"https://managedhsm.azure.net\"")
    );
    let (status, _, _) = hsm.send(Method::GET, "/keys?api-version=7.6", Some("right"), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn api_version_is_required_but_any_value_is_accepted() {
    let kv = Kv::vault().await;
    let (status, _, json) = kv.send(Method::GET, "/keys", Some("t"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&json).0, "BadParameter");
    for v in ["7.6", "2025-07-01", "7.4"] {
        let (status, _, _) = kv.send(Method::GET, &format!("/keys?api-version={v}"), Some("t"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
}

#[tokio::test]
async fn key_bundles_have_the_key_vault_shape() {
    let kv = Kv::vault().await;
    let rsa = kv.create("rsa", json!({"kty": "RSA", "key_size": 3072, "tags": {"team": "a"}})).await;
    let kid = rsa["key"]["kid"].as_str().unwrap();
    let version = version_of(&rsa["key"]["kid"]);
    assert_eq!(kid, format!("{}/keys/rsa/{version}", kv.base()));
    assert_eq!(version.len(), 32);
    assert!(version.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(rsa["key"]["kty"], "RSA");
    assert_eq!(unb64(&rsa["key"]["n"]).len(), 384);
    assert_eq!(unb64(&rsa["key"]["e"]), vec![1, 0, 1]);
    assert_eq!(
        rsa["key"]["key_ops"],
        json!(["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])
    );
    let attrs = &rsa["attributes"];
    assert_eq!(attrs["enabled"], true);
    assert!(attrs["created"].is_i64() && attrs["updated"].is_i64());
    assert_eq!(attrs["recoveryLevel"], "Recoverable+Purgeable");
    assert_eq!(attrs["recoverableDays"], 90);
    assert_eq!(rsa["tags"], json!({"team": "a"}));

    for (crv, len) in [("P-256", 32), ("P-384", 48), ("P-521", 66), ("P-256K", 32)] {
        let ec = kv.create(&format!("ec-{}", len * 8), json!({"kty": "EC-HSM", "crv": crv})).await;
        assert_eq!(ec["key"]["crv"], crv);
        assert_eq!(ec["key"]["kty"], "EC-HSM");
        assert_eq!(unb64(&ec["key"]["x"]).len(), len, "{crv} x is zero-padded");
        assert_eq!(unb64(&ec["key"]["y"]).len(), len, "{crv} y is zero-padded");
        assert_eq!(ec["key"]["key_ops"], json!(["sign", "verify"]));
        assert!(ec.get("tags").is_none(), "no tags member without tags");
    }
}

#[tokio::test]
async fn versions_route_with_trailing_slashes_and_empty_segments() {
    let kv = Kv::vault().await;
    let v1 = version_of(&kv.create("k", json!({"kty": "EC", "crv": "P-256"})).await["key"]["kid"]);
    // Creating an existing name adds a version (Key Vault's behaviour).
    let v2 = version_of(&kv.create("k", json!({"kty": "EC", "crv": "P-256"})).await["key"]["kid"]);
    assert_ne!(v1, v2);
    for path in ["/keys/k", "/keys/k/"] {
        assert_eq!(version_of(&kv.ok(Method::GET, path, None).await["key"]["kid"]), v2, "{path}");
    }
    assert_eq!(version_of(&kv.ok(Method::GET, &format!("/keys/k/{v1}"), None).await["key"]["kid"]), v1);
    let (status, _, json) = kv.call(Method::GET, "/keys/k/0123456789abcdef0123456789abcdef", None).await;
    assert_eq!((status, error_code(&json).0), (StatusCode::NOT_FOUND, "KeyNotFound"));
    let (status, _, json) = kv.call(Method::GET, "/keys/missing", None).await;
    assert_eq!((status, error_code(&json).0), (StatusCode::NOT_FOUND, "KeyNotFound"));

    // `/keys/k//sign` (the Rust SDK without a version) signs with the latest version.
    let digest = sha256(b"message");
    let sig =
        kv.ok(Method::POST, "/keys/k//sign", Some(json!({"alg": "ES256", "value": b64(&digest)}))).await;
    assert_eq!(version_of(&sig["kid"]), v2);
    assert_eq!(unb64(&sig["value"]).len(), 64, "raw r ‖ s");
    let body = json!({"alg": "ES256", "digest": b64(&digest), "value": sig["value"]});
    assert_eq!(kv.ok(Method::POST, &format!("/keys/k/{v2}/verify"), Some(body.clone())).await["value"], true);
    assert_eq!(kv.ok(Method::POST, &format!("/keys/k/{v1}/verify"), Some(body)).await["value"], false);

    // PATCH updates one version; rotation adds one with the same ops and tags.
    let upd = kv
        .ok(
            Method::PATCH,
            "/keys/k/",
            Some(json!({"tags": {"x": "1"}, "attributes": {"exp": 4102444800_i64}})),
        )
        .await;
    assert_eq!(upd["tags"], json!({"x": "1"}));
    assert_eq!(upd["attributes"]["exp"], 4102444800_i64);
    let rotated = kv.ok(Method::POST, "/keys/k/rotate", Some(json!({}))).await;
    assert_eq!(rotated["tags"], json!({"x": "1"}));
    assert_eq!(rotated["key"]["crv"], "P-256");
    let v3 = version_of(&rotated["key"]["kid"]);
    let versions = kv.ok(Method::GET, "/keys/k/versions", None).await;
    let listed: Vec<String> =
        versions["value"].as_array().unwrap().iter().map(|i| version_of(&i["kid"])).collect();
    assert_eq!(listed, vec![v1, v2, v3]);
}

/// Follows `nextLink`s from `first`, checking each is an https URL back to the emulator.
async fn collect_pages(kv: &Kv, first: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut page = kv.ok(Method::GET, first, None).await;
    loop {
        pages += 1;
        items.extend(page["value"].as_array().unwrap().iter().cloned());
        let Some(next) = page["nextLink"].as_str() else { break };
        let rest =
            next.strip_prefix(&kv.base()).unwrap_or_else(|| panic!("nextLink {next} is not https to us"));
        let (status, _, json) = kv.send(Method::GET, rest, Some("t"), None).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        page = json;
    }
    (items, pages)
}

#[tokio::test]
async fn listings_page_with_maxresults_and_next_links() {
    let kv = Kv::vault().await;
    for i in 0..7 {
        kv.create(&format!("key-{i}"), json!({"kty": "EC", "crv": "P-256"})).await;
    }
    let (items, pages) = collect_pages(&kv, "/keys?maxresults=3").await;
    assert_eq!(pages, 3);
    let kids: Vec<&str> = items.iter().map(|i| i["kid"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..7).map(|i| format!("{}/keys/key-{i}", kv.base())).collect();
    assert_eq!(kids, want, "each key once, unversioned kid");
    let (items, pages) = collect_pages(&kv, "/keys").await;
    assert_eq!((items.len(), pages), (7, 1));

    for _ in 0..4 {
        kv.ok(Method::POST, "/keys/key-0/rotate", None).await;
    }
    let (items, pages) = collect_pages(&kv, "/keys/key-0/versions?maxresults=2").await;
    assert_eq!((items.len(), pages), (5, 3));

    for i in 0..3 {
        kv.ok(Method::DELETE, &format!("/keys/key-{i}"), None).await;
    }
    let (items, pages) = collect_pages(&kv, "/deletedkeys?maxresults=2").await;
    assert_eq!((items.len(), pages), (3, 2));
    assert!(items.iter().all(|i| i["recoveryId"].as_str().unwrap().contains("/deletedkeys/key-")));

    for bad in ["0", "26", "x"] {
        let (status, _, json) = kv.call(Method::GET, &format!("/keys?maxresults={bad}"), None).await;
        assert_eq!((status, error_code(&json).0), (StatusCode::BAD_REQUEST, "BadParameter"), "{bad}");
    }
}

#[tokio::test]
async fn rsa_encrypts_signs_and_wraps_with_every_algorithm() {
    let kv = Kv::vault().await;
    kv.create("r", json!({"kty": "RSA", "key_size": 2048})).await;
    for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
        for (enc, dec) in [("encrypt", "decrypt"), ("wrapkey", "unwrapkey")] {
            let ct = kv
                .ok(
                    Method::POST,
                    &format!("/keys/r//{enc}"),
                    Some(json!({"alg": alg, "value": b64(b"secret")})),
                )
                .await;
            assert_eq!(unb64(&ct["value"]).len(), 256);
            let pt = kv
                .ok(Method::POST, &format!("/keys/r//{dec}"), Some(json!({"alg": alg, "value": ct["value"]})))
                .await;
            assert_eq!(unb64(&pt["value"]), b"secret", "{alg} {enc}");
        }
    }
    // A decryption failure is an opaque 400.
    let (status, _, json) = kv
        .call(Method::POST, "/keys/r//decrypt", Some(json!({"alg": "RSA-OAEP", "value": b64(&[1; 256])})))
        .await;
    assert_eq!((status, error_code(&json).0), (StatusCode::BAD_REQUEST, "BadParameter"));

    for (alg, hash) in [
        ("RS256", &aws_lc_rs::digest::SHA256),
        ("RS384", &aws_lc_rs::digest::SHA384),
        ("RS512", &aws_lc_rs::digest::SHA512),
        ("PS256", &aws_lc_rs::digest::SHA256),
        ("PS384", &aws_lc_rs::digest::SHA384),
        ("PS512", &aws_lc_rs::digest::SHA512),
    ] {
        let d = aws_lc_rs::digest::digest(hash, b"m").as_ref().to_vec();
        let sig = kv.ok(Method::POST, "/keys/r//sign", Some(json!({"alg": alg, "value": b64(&d)}))).await;
        let body = json!({"alg": alg, "digest": b64(&d), "value": sig["value"]});
        assert_eq!(kv.ok(Method::POST, "/keys/r//verify", Some(body)).await["value"], true, "{alg}");
    }
    // A digest of the wrong length is the client's mistake.
    let (status, _, json) = kv
        .call(Method::POST, "/keys/r//sign", Some(json!({"alg": "RS384", "value": b64(&sha256(b"m"))})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["error"]["message"].as_str().unwrap().contains("48-byte"), "{json}");
}

#[tokio::test]
async fn permissions_states_and_key_types_answer_key_vault_errors() {
    let kv = Kv::vault().await;
    kv.create("signer", json!({"kty": "RSA", "key_ops": ["sign", "verify"]})).await;
    let (status, _, json) = kv
        .call(Method::POST, "/keys/signer//encrypt", Some(json!({"alg": "RSA-OAEP", "value": b64(b"x")})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&json), ("Forbidden", Some("OperationNotPermitted")));

    kv.ok(Method::PATCH, "/keys/signer", Some(json!({"attributes": {"enabled": false}}))).await;
    let d = b64(&sha256(b"m"));
    let (status, _, json) =
        kv.call(Method::POST, "/keys/signer//sign", Some(json!({"alg": "RS256", "value": d}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&json), ("Forbidden", Some("KeyDisabled")));
    // Reading a disabled key is allowed.
    assert_eq!(kv.ok(Method::GET, "/keys/signer", None).await["attributes"]["enabled"], false);

    kv.create("old", json!({"kty": "EC", "attributes": {"exp": 1_000_000}})).await;
    let (status, _, json) =
        kv.call(Method::POST, "/keys/old//sign", Some(json!({"alg": "ES256", "value": d}))).await;
    assert_eq!((status, error_code(&json)), (StatusCode::FORBIDDEN, ("Forbidden", Some("KeyExpired"))));

    for (body, why) in [
        (json!({"kty": "oct-HSM", "key_size": 256}), "Managed HSM"),
        (json!({"kty": "RSA", "key_size": 1024}), "2048"),
        (json!({"kty": "EC", "crv": "P-192"}), "P-256"),
        (json!({"kty": "EC", "key_ops": ["encrypt"]}), "encrypt"),
        (json!({"kty": "RSA", "tags": {"v": "x".repeat(257)}}), "256"),
        (json!({"key_size": 2048}), "kty"),
    ] {
        let (status, _, json) = kv.call(Method::POST, "/keys/bad/create", Some(body.clone())).await;
        assert_eq!((status, error_code(&json).0), (StatusCode::BAD_REQUEST, "BadParameter"), "{body}");
        assert!(json["error"]["message"].as_str().unwrap().contains(why), "{body}: {json}");
    }
    let (status, _, _) = kv.call(Method::POST, "/keys/bad_name/create", Some(json!({"kty": "RSA"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, json) =
        kv.call(Method::POST, "/keys/x/create", Some(json!({"kty": 5, "value": "secret"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!json.to_string().contains("secret") && !json.to_string().contains('5'), "{json}");
}

#[tokio::test]
async fn soft_delete_recover_and_purge() {
    let kv = Kv::vault().await;
    let created = kv.create("d", json!({"kty": "EC", "tags": {"a": "b"}})).await;
    let deleted = kv.ok(Method::DELETE, "/keys/d", None).await;
    assert_eq!(deleted["recoveryId"], format!("{}/deletedkeys/d", kv.base()));
    assert_eq!(deleted["key"]["kid"], created["key"]["kid"]);
    let (dd, purge) =
        (deleted["deletedDate"].as_i64().unwrap(), deleted["scheduledPurgeDate"].as_i64().unwrap());
    assert_eq!(purge - dd, 90 * 86_400);
    // Gone from /keys at once, visible under /deletedkeys at once.
    let (status, _, _) = kv.call(Method::GET, "/keys/d", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(kv.ok(Method::GET, "/deletedkeys/d", None).await["tags"], json!({"a": "b"}));
    // The name cannot be reused while recoverable.
    let (status, _, json) = kv.call(Method::POST, "/keys/d/create", Some(json!({"kty": "EC"}))).await;
    assert_eq!(
        (status, error_code(&json)),
        (StatusCode::CONFLICT, ("Conflict", Some("ObjectIsDeletedButRecoverable")))
    );
    let recovered = kv.ok(Method::POST, "/deletedkeys/d/recover", None).await;
    assert_eq!(recovered["key"]["kid"], created["key"]["kid"]);
    kv.ok(Method::GET, "/keys/d", None).await;

    kv.ok(Method::DELETE, "/keys/d", None).await;
    let (status, _, body) = kv.call(Method::DELETE, "/deletedkeys/d", None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    for (m, path) in
        [(Method::DELETE, "/deletedkeys/d"), (Method::GET, "/deletedkeys/d"), (Method::DELETE, "/keys/d")]
    {
        let (status, _, json) = kv.call(m.clone(), path, None).await;
        assert_eq!((status, error_code(&json).0), (StatusCode::NOT_FOUND, "KeyNotFound"), "{m} {path}");
    }
    kv.create("d", json!({"kty": "EC"})).await;
}

#[tokio::test]
async fn random_bytes() {
    let kv = Kv::vault().await;
    let r = kv.ok(Method::POST, "/rng", Some(json!({"count": 32}))).await;
    assert_eq!(unb64(&r["value"]).len(), 32);
    let (status, _, _) = kv.call(Method::POST, "/rng", Some(json!({"count": 0}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn imported_keys_keep_their_public_half() {
    let kv = Kv::vault().await;
    // An EC key generated here, imported as a JWK.
    use aws_lc_rs::encoding::AsBigEndian as _;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let d = pair.private_key().as_be_bytes().unwrap();
    let jwk = json!({"kty": "EC", "crv": "P-256", "d": b64(d.as_ref()), "x": b64(&point[1..33]), "y": b64(&point[33..])});
    let imported = kv.ok(Method::PUT, "/keys/imp", Some(json!({"key": jwk}))).await;
    assert_eq!(unb64(&imported["key"]["x"]), point[1..33]);
    assert!(imported["key"].get("d").is_none());
    // A signature made by the emulator verifies with the original public key.
    let digest = sha256(b"m");
    let sig =
        kv.ok(Method::POST, "/keys/imp//sign", Some(json!({"alg": "ES256", "value": b64(&digest)}))).await;
    let verifier =
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED, &point);
    assert!(verifier.verify(b"m", &unb64(&sig["value"])).is_ok());
}

#[tokio::test]
async fn managed_hsm_holds_aes_keys_with_gcm_and_key_wrap() {
    let kv = Kv::start(Args { managed_hsm: true, ..Args::default() }).await;
    let (status, _, json) = kv.call(Method::POST, "/keys/soft/create", Some(json!({"kty": "RSA"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["error"]["message"].as_str().unwrap().contains("RSA-HSM"), "{json}");
    kv.create("rsa", json!({"kty": "RSA-HSM"})).await;

    for bits in [128, 192, 256] {
        let name = format!("aes{bits}");
        let key = kv.create(&name, json!({"kty": "oct-HSM", "key_size": bits})).await;
        assert_eq!(key["key"]["kty"], "oct-HSM");
        assert!(key["key"].get("k").is_none(), "oct keys never show k");
        assert_eq!(key["key"]["key_ops"], json!(["encrypt", "decrypt", "wrapKey", "unwrapKey"]));

        let gcm = format!("A{bits}GCM");
        let aad = b64(b"context");
        let ct = kv
            .ok(
                Method::POST,
                &format!("/keys/{name}//encrypt"),
                Some(json!({"alg": gcm, "value": b64(b"hello"), "aad": aad})),
            )
            .await;
        assert_eq!(unb64(&ct["value"]).len(), 5);
        assert_eq!(unb64(&ct["iv"]).len(), 12);
        assert_eq!(unb64(&ct["tag"]).len(), 16);
        let body = json!({"alg": gcm, "value": ct["value"], "iv": ct["iv"], "tag": ct["tag"], "aad": aad});
        let pt = kv.ok(Method::POST, &format!("/keys/{name}//decrypt"), Some(body.clone())).await;
        assert_eq!(unb64(&pt["value"]), b"hello");
        let mut tampered = body;
        tampered["aad"] = b64(b"other").into();
        let (status, _, _) = kv.call(Method::POST, &format!("/keys/{name}//decrypt"), Some(tampered)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        for alg in [format!("A{bits}KW"), "CKM_AES_KEY_WRAP".into(), "CKM_AES_KEY_WRAP_PAD".into()] {
            let w = kv
                .ok(
                    Method::POST,
                    &format!("/keys/{name}//wrapkey"),
                    Some(json!({"alg": alg, "value": b64(&[5; 32])})),
                )
                .await;
            assert_eq!(unb64(&w["value"]).len(), 40, "{alg}");
            let u = kv
                .ok(
                    Method::POST,
                    &format!("/keys/{name}//unwrapkey"),
                    Some(json!({"alg": alg, "value": w["value"]})),
                )
                .await;
            assert_eq!(unb64(&u["value"]), [5; 32], "{alg}");
        }
        // The algorithm's size must match the key's.
        let other = if bits == 128 { "A256GCM" } else { "A128GCM" };
        let (status, _, _) = kv
            .call(
                Method::POST,
                &format!("/keys/{name}//encrypt"),
                Some(json!({"alg": other, "value": b64(b"x")})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[test]
fn the_binary_writes_the_ca_and_prints_its_url() {
    use std::io::BufRead as _;
    let dir = std::env::temp_dir().join(format!("hsm-emulator-azure-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
        .args(["azure", "--port", "0", "--managed-hsm", "--ca-out"])
        .arg(&ca)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("hsm-emulator azure listening on https://127.0.0.1:"), "{line}");
    assert!(std::fs::read_to_string(&ca).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The interpreter named by `HSM_PYTHON` (a venv with azure-keyvault-keys and cryptography);
/// `None` (test skipped) when unset, unless `HSM_REQUIRE_SERVERS` demands it.
fn python() -> Option<String> {
    match std::env::var("HSM_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            let required = std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty());
            assert!(
                !required,
                "HSM_PYTHON is not set and HSM_REQUIRE_SERVERS is: the Python SDK check cannot run"
            );
            eprintln!(
                "skipped: HSM_PYTHON is not set (a Python with azure-keyvault-keys, see .ci/requirements.txt)"
            );
            None
        }
    }
}

/// Runs tests/py/azure_keyvault.py against an in-process emulator started with `args`.
async fn python_sdk(args: Args, mode: &str) {
    let Some(python) = python() else { return };
    let (running, ca_pem) = azure::start_with_ca(args).await.unwrap();
    let ca = std::env::temp_dir().join(format!("hsm-emulator-azure-py-{mode}-{}.pem", std::process::id()));
    std::fs::write(&ca, ca_pem).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/azure_keyvault.py");
    let (url, ca_arg, mode_arg) = (running.url(), ca.clone(), mode.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(script).arg(url).arg(ca_arg).arg(mode_arg).output()
    })
    .await
    .unwrap()
    .unwrap();
    let _ = std::fs::remove_file(&ca);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "azure_keyvault.py {mode} failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("checks passed"), "{stdout}");
    eprintln!("{}", stdout.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_against_a_vault() {
    python_sdk(Args::default(), "vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_against_a_managed_hsm() {
    python_sdk(Args { managed_hsm: true, ..Args::default() }, "managed-hsm").await;
}

#[tokio::test]
async fn throttles_every_nth_request_on_demand() {
    let kv = Kv::start(Args { throttle_every: Some(3), ..Args::default() }).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, headers, json) = kv.call(Method::GET, "/keys", None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(headers["retry-after"], "1");
            assert_eq!(error_code(&json).0, "Throttled");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
}

#[test]
fn the_binary_requires_ca_out() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
        .args(["azure", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ca-out"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs tests/node/azure_keyvault.mjs (the official Node.js SDK) against an in-process emulator
/// started with `args`; the emulator's CA is trusted through `NODE_EXTRA_CA_CERTS`.
async fn node_sdk(args: Args, mode: &str) {
    let Some(modules) = crate::node::modules() else { return };
    let (running, ca_pem) = azure::start_with_ca(args).await.unwrap();
    let ca = std::env::temp_dir().join(format!("hsm-emulator-azure-node-{mode}-{}.pem", std::process::id()));
    std::fs::write(&ca, ca_pem).unwrap();
    let envs = vec![("NODE_EXTRA_CA_CERTS".to_string(), ca.display().to_string())];
    let out =
        crate::node::run(modules, "azure_keyvault.mjs", vec![running.url(), mode.to_string()], envs).await;
    let _ = std::fs::remove_file(&ca);
    assert!(out.contains("checks passed"), "{out}");
    eprintln!("{}", out.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_against_a_vault() {
    node_sdk(Args::default(), "vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_against_a_managed_hsm() {
    node_sdk(Args { managed_hsm: true, ..Args::default() }, "managed-hsm").await;
}

/// `--state` in-process: keys (RSA, EC, and oct-HSM on a Managed HSM), versions, tags and
/// soft-deleted keys come back after a restart, and data made before opens after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_restart() {
    let dir = crate::state::TempDir::new("azure-state");
    let state = hsm_emulator::state::StateArgs { state: Some(dir.join("state")), state_key: None };
    let args = Args { managed_hsm: true, state: state.clone(), ..Args::default() };
    let (running, ca_before) = azure::start_with_ca(args.clone()).await.unwrap();
    let kv = Kv {
        running,
        tls: tokio_rustls::TlsConnector::from(Arc::new(client_config(&ca_before))),
        server_name: ServerName::try_from("127.0.0.1").unwrap(),
    };
    let rsa = kv.create("rsa", json!({"kty": "RSA-HSM", "key_size": 2048, "tags": {"t": "1"}})).await;
    let rsa_v1 = version_of(&rsa["key"]["kid"]);
    kv.ok(Method::POST, "/keys/rsa/rotate", None).await;
    let ec = kv.create("ec", json!({"kty": "EC-HSM", "crv": "P-256"})).await;
    let aes = kv.create("aes", json!({"kty": "oct-HSM", "key_size": 256})).await;
    let aes_v = version_of(&aes["key"]["kid"]);
    let gcm = kv
        .ok(
            Method::POST,
            &format!("/keys/aes/{aes_v}/encrypt"),
            Some(json!({"alg": "A256GCM", "value": b64(b"sealed before"), "aad": b64(b"a")})),
        )
        .await;
    let digest = sha256(b"signed before");
    let ec_v = version_of(&ec["key"]["kid"]);
    let sig = kv
        .ok(
            Method::POST,
            &format!("/keys/ec/{ec_v}/sign"),
            Some(json!({"alg": "ES256", "value": b64(&digest)})),
        )
        .await;
    let wrapped = kv
        .ok(
            Method::POST,
            &format!("/keys/rsa/{rsa_v1}/wrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&[9u8; 32])})),
        )
        .await;
    kv.create("gone", json!({"kty": "EC-HSM", "crv": "P-256"})).await;
    kv.ok(Method::DELETE, "/keys/gone", None).await;
    assert!(kv.running.shutdown(std::time::Duration::from_secs(5)).await);

    // The handler (and its lock on the state) goes away with the server's tasks.
    let mut kv = None;
    for _ in 0..50 {
        match azure::start_with_ca(args.clone()).await {
            Ok((running, ca_pem)) => {
                // The TLS identity is state too: clients keep trusting the same CA.
                assert_eq!(ca_pem, ca_before);
                kv = Some(Kv {
                    running,
                    tls: tokio_rustls::TlsConnector::from(Arc::new(client_config(&ca_pem))),
                    server_name: ServerName::try_from("127.0.0.1").unwrap(),
                });
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let kv = kv.expect("the state is released after shutdown");
    let versions = kv.ok(Method::GET, "/keys/rsa/versions", None).await;
    assert_eq!(versions["value"].as_array().unwrap().len(), 2);
    let got = kv.ok(Method::GET, &format!("/keys/rsa/{rsa_v1}"), None).await;
    assert_eq!(got["key"]["n"], rsa["key"]["n"]);
    assert_eq!(got["tags"]["t"], "1");
    let unwrapped = kv
        .ok(
            Method::POST,
            &format!("/keys/rsa/{rsa_v1}/unwrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": wrapped["value"]})),
        )
        .await;
    assert_eq!(unb64(&unwrapped["value"]), [9u8; 32]);
    let opened = kv
        .ok(
            Method::POST,
            &format!("/keys/aes/{aes_v}/decrypt"),
            Some(json!({"alg": "A256GCM", "value": gcm["value"], "iv": gcm["iv"], "tag": gcm["tag"], "aad": b64(b"a")})),
        )
        .await;
    assert_eq!(unb64(&opened["value"]), b"sealed before");
    let verified = kv
        .ok(
            Method::POST,
            &format!("/keys/ec/{ec_v}/verify"),
            Some(json!({"alg": "ES256", "digest": b64(&digest), "value": sig["value"]})),
        )
        .await;
    assert_eq!(verified["value"], true);
    let deleted = kv.ok(Method::GET, "/deletedkeys/gone", None).await;
    assert!(deleted["scheduledPurgeDate"].as_i64().is_some());
}
