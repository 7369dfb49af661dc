//! `hsm-emulator gcp` over raw HTTP/JSON (what any Cloud KMS REST client sends), plus the
//! official Python client (`tests/py/gcp_kms.py`) against the same in-process emulator.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hsm_emulator::gcp;
use hsm_emulator::server::Running;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const LOC: &str = "projects/p1/locations/us-east1";

struct Kms {
    addr: SocketAddr,
    _running: Running,
}

impl Kms {
    async fn start() -> Kms {
        let running = gcp::start(gcp::Args { port: 0 }).await.expect("emulator starts");
        Kms { addr: running.addr(), _running: running }
    }

    /// One request; returns the HTTP status and the JSON body.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, &body.map(|b| b.to_string()).unwrap_or_default()).await
    }

    /// One request with `body` sent as given; returns the HTTP status and the JSON body.
    async fn raw(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: kms\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8(out).expect("utf-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("http response");
        let status: u16 = head[9..12].parse().expect("status");
        let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, json)
    }

    /// A call that must succeed.
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    /// A call that must fail with `status` and google.rpc `code`.
    async fn err(&self, method: &str, path: &str, body: Option<Value>, status: u16, code: &str) -> String {
        let (s, v) = self.call(method, path, body).await;
        assert_eq!((s, v["error"]["status"].as_str()), (status, Some(code)), "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], status);
        v["error"]["message"].as_str().unwrap().to_string()
    }

    async fn ring(&self, id: &str) -> String {
        self.ok("POST", &format!("/v1/{LOC}/keyRings?keyRingId={id}"), Some(json!({}))).await;
        format!("{LOC}/keyRings/{id}")
    }

    async fn key(&self, ring: &str, id: &str, body: Value) -> Value {
        self.ok("POST", &format!("/v1/{ring}/cryptoKeys?cryptoKeyId={id}"), Some(body)).await
    }
}

fn b64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

fn unb64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))).expect("standard base64")
}

fn crc(b: &[u8]) -> String {
    crc32c::crc32c(b).to_string()
}

fn spki_from_pem(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body")
}

#[tokio::test]
async fn key_rings_keys_and_errors_follow_cloud_kms() {
    let kms = Kms::start().await;
    let ring = kms.ring("r1").await;
    let got = kms.ok("GET", &format!("/v1/{ring}"), None).await;
    assert_eq!(got["name"], ring.as_str());
    assert!(got["createTime"].as_str().unwrap().ends_with('Z'));
    kms.err("POST", &format!("/v1/{LOC}/keyRings?keyRingId=r1"), Some(json!({})), 409, "ALREADY_EXISTS")
        .await;
    kms.err("POST", &format!("/v1/{LOC}/keyRings?keyRingId=bad.id"), None, 400, "INVALID_ARGUMENT").await;
    kms.err(
        "POST",
        &format!("/v1/{LOC}/keyRings?keyRingId={}", "a".repeat(64)),
        None,
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    kms.err("GET", &format!("/v1/{LOC}/keyRings/nope"), None, 404, "NOT_FOUND").await;
    kms.err("GET", "/v1/projects/p1/nonsense", None, 404, "NOT_FOUND").await;
    kms.err("GET", &format!("/v1/{ring}/cryptoKeys/none"), None, 404, "NOT_FOUND").await;
    kms.err(
        "POST",
        &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"),
        Some(json!({})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    // An algorithm of another purpose, an unknown number, one not emulated.
    let bad = |alg: Value| json!({"purpose": 1, "versionTemplate": {"algorithm": alg}});
    kms.err(
        "POST",
        &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"),
        Some(bad(json!(12))),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    kms.err(
        "POST",
        &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"),
        Some(bad(json!(999))),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    let cbc = json!({"purpose": "RAW_ENCRYPT_DECRYPT", "versionTemplate": {"algorithm": "AES_128_CBC"}});
    kms.err("POST", &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"), Some(cbc), 501, "UNIMPLEMENTED").await;
    let k1 = json!({"purpose": "EC_SIGN", "versionTemplate": {"algorithm": "EC_SIGN_SECP256K1_SHA256"}});
    kms.err("POST", &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"), Some(k1), 400, "INVALID_ARGUMENT").await;
    let k1 = json!({"purpose": 5, "versionTemplate": {"algorithm": 31}});
    kms.err("POST", &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"), Some(k1), 400, "INVALID_ARGUMENT").await;
    let labels = json!({"purpose": 1, "labels": {"Env": "x"}});
    let msg = kms
        .err("POST", &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"), Some(labels), 400, "INVALID_ARGUMENT")
        .await;
    assert!(msg.contains("Env"), "{msg}");
    kms.err(
        "POST",
        &format!("/v1/{LOC}/keyRings/none/cryptoKeys?cryptoKeyId=k"),
        Some(json!({"purpose": 1})),
        404,
        "NOT_FOUND",
    )
    .await;
    let (s, v) = kms.call("POST", &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=k"), None).await;
    assert_eq!(s, 400, "{v}");

    // Keys with labels, names and integers, listed a page at a time and filtered.
    let k = kms
        .key(&ring, "sym", json!({"purpose": "ENCRYPT_DECRYPT", "labels": {"env": "prod", "team": "a"}}))
        .await;
    assert_eq!(k["purpose"], "ENCRYPT_DECRYPT");
    assert_eq!(k["versionTemplate"]["algorithm"], "GOOGLE_SYMMETRIC_ENCRYPTION");
    assert_eq!(k["versionTemplate"]["protectionLevel"], "SOFTWARE");
    assert_eq!(k["primary"]["name"], format!("{ring}/cryptoKeys/sym/cryptoKeyVersions/1"));
    assert_eq!(k["primary"]["state"], "ENABLED");
    assert_eq!(k["destroyScheduledDuration"], "86400s");
    kms.err(
        "POST",
        &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=sym"),
        Some(json!({"purpose": 1})),
        409,
        "ALREADY_EXISTS",
    )
    .await;
    let int =
        kms.ok("GET", &format!("/v1/{ring}/cryptoKeys/sym?%24alt=json%3Benum-encoding%3Dint"), None).await;
    assert_eq!((int["purpose"].as_i64(), int["versionTemplate"]["algorithm"].as_i64()), (Some(1), Some(1)));
    assert_eq!(int["primary"]["state"], 1);
    kms.key(
        &ring,
        "mac",
        json!({"purpose": 9, "versionTemplate": {"algorithm": 32}, "labels": {"env": "dev"}}),
    )
    .await;
    let skipped = kms
        .ok(
            "POST",
            &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=empty&skipInitialVersionCreation=true"),
            Some(json!({"purpose": 1})),
        )
        .await;
    assert!(skipped.get("primary").is_none(), "{skipped}");
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = kms.ok("GET", &format!("/v1/{ring}/cryptoKeys?pageSize=1&pageToken={token}"), None).await;
        assert_eq!(page["totalSize"], 3);
        names.extend(
            page["cryptoKeys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_string()),
        );
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    let ids: Vec<&str> = names.iter().map(|n| n.rsplit('/').next().unwrap()).collect();
    assert_eq!(ids, ["empty", "mac", "sym"]);
    let prod = kms.ok("GET", &format!("/v1/{ring}/cryptoKeys?filter=labels.env%3Dprod"), None).await;
    assert_eq!(prod["cryptoKeys"].as_array().unwrap().len(), 1);
    assert_eq!(prod["cryptoKeys"][0]["name"], format!("{ring}/cryptoKeys/sym"));
    let macs = kms.ok("GET", &format!("/v1/{ring}/cryptoKeys?filter=purpose%3DMAC"), None).await;
    assert_eq!(macs["totalSize"], 1);
    kms.err("GET", &format!("/v1/{ring}/cryptoKeys?pageToken=bogus"), None, 400, "INVALID_ARGUMENT").await;
    let rings = kms.ok("GET", &format!("/v1/{LOC}/keyRings?pageSize=10"), None).await;
    assert_eq!(rings["keyRings"][0]["name"], ring.as_str());

    // Labels are replaced through updateMask; other fields are refused.
    let patched = kms
        .ok(
            "PATCH",
            &format!("/v1/{ring}/cryptoKeys/sym?updateMask=labels"),
            Some(json!({"labels": {"env": "test"}})),
        )
        .await;
    assert_eq!(patched["labels"], json!({"env": "test"}));
    kms.err(
        "PATCH",
        &format!("/v1/{ring}/cryptoKeys/sym?updateMask=purpose"),
        Some(json!({"purpose": 9})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    kms.err(
        "PATCH",
        &format!("/v1/{ring}/cryptoKeys/sym"),
        Some(json!({"labels": {}})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    let t = json!({"versionTemplate": {"algorithm": "HMAC_SHA512"}});
    let mac = kms
        .ok("PATCH", &format!("/v1/{ring}/cryptoKeys/mac?updateMask=versionTemplate.algorithm"), Some(t))
        .await;
    assert_eq!(mac["versionTemplate"]["algorithm"], "HMAC_SHA512");
    let v2 = kms.ok("POST", &format!("/v1/{ring}/cryptoKeys/mac/cryptoKeyVersions"), Some(json!({}))).await;
    assert_eq!(v2["algorithm"], "HMAC_SHA512");
}

#[tokio::test]
async fn encrypt_decrypt_checks_crcs_aad_states_and_rotation() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    kms.key(&ring, "k", json!({"purpose": 1, "destroyScheduledDuration": "1s"})).await;
    let key = format!("{ring}/cryptoKeys/k");
    let pt = b"attack at dawn";
    let aad = b"context";
    let req = json!({
        "plaintext": b64(pt), "additionalAuthenticatedData": b64(aad),
        "plaintextCrc32c": crc(pt), "additionalAuthenticatedDataCrc32c": crc(aad),
    });
    let enc = kms.ok("POST", &format!("/v1/{key}:encrypt"), Some(req)).await;
    assert_eq!(enc["name"], format!("{key}/cryptoKeyVersions/1"));
    assert_eq!(enc["verifiedPlaintextCrc32c"], true);
    assert_eq!(enc["verifiedAdditionalAuthenticatedDataCrc32c"], true);
    let ct = unb64(&enc["ciphertext"]);
    assert_eq!(enc["ciphertextCrc32c"], crc(&ct), "int64 as a string, and right");
    assert!(!ct.windows(pt.len()).any(|w| w == pt));
    let no_crc = kms.ok("POST", &format!("/v1/{key}:encrypt"), Some(json!({"plaintext": b64(pt)}))).await;
    assert!(no_crc.get("verifiedPlaintextCrc32c").is_none(), "verified only when a CRC was sent: {no_crc}");

    let dec = json!({"ciphertext": b64(&ct), "additionalAuthenticatedData": b64(aad), "ciphertextCrc32c": crc(&ct)});
    let out = kms.ok("POST", &format!("/v1/{key}:decrypt"), Some(dec.clone())).await;
    assert_eq!(unb64(&out["plaintext"]), pt);
    assert_eq!(out["plaintextCrc32c"], crc(pt));
    assert_eq!(out["usedPrimary"], true);
    // Wrong AAD, tampered ciphertext, wrong CRCs.
    let wrong_aad = json!({"ciphertext": b64(&ct), "additionalAuthenticatedData": b64(b"other")});
    kms.err("POST", &format!("/v1/{key}:decrypt"), Some(wrong_aad), 400, "INVALID_ARGUMENT").await;
    let mut bad = ct.clone();
    *bad.last_mut().unwrap() ^= 1;
    kms.err(
        "POST",
        &format!("/v1/{key}:decrypt"),
        Some(json!({"ciphertext": b64(&bad)})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    let wrong_crc = json!({"plaintext": b64(pt), "plaintextCrc32c": crc(b"something else")});
    let msg = kms.err("POST", &format!("/v1/{key}:encrypt"), Some(wrong_crc), 400, "INVALID_ARGUMENT").await;
    assert!(msg.contains("plaintextCrc32c"), "{msg}");
    let wrong_crc = json!({"ciphertext": b64(&ct), "ciphertextCrc32c": "12345"});
    kms.err("POST", &format!("/v1/{key}:decrypt"), Some(wrong_crc), 400, "INVALID_ARGUMENT").await;
    // Limits.
    let big = vec![0u8; 64 * 1024 + 1];
    kms.err(
        "POST",
        &format!("/v1/{key}:encrypt"),
        Some(json!({"plaintext": b64(&big)})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    let ok_big =
        kms.ok("POST", &format!("/v1/{key}:encrypt"), Some(json!({"plaintext": b64(&big[1..])}))).await;
    let back = kms
        .ok("POST", &format!("/v1/{key}:decrypt"), Some(json!({"ciphertext": ok_big["ciphertext"]})))
        .await;
    assert_eq!(unb64(&back["plaintext"]).len(), 64 * 1024);

    // Rotation: a new version, made primary; old ciphertext still decrypts, not by the primary.
    let v2 = kms.ok("POST", &format!("/v1/{key}/cryptoKeyVersions"), Some(json!({}))).await;
    assert_eq!(v2["name"], format!("{key}/cryptoKeyVersions/2"));
    let still = kms.ok("POST", &format!("/v1/{key}:encrypt"), Some(json!({"plaintext": b64(pt)}))).await;
    assert_eq!(still["name"], format!("{key}/cryptoKeyVersions/1"), "a new version is not primary by itself");
    let k = kms
        .ok("POST", &format!("/v1/{key}:updatePrimaryVersion"), Some(json!({"cryptoKeyVersionId": "2"})))
        .await;
    assert_eq!(k["primary"]["name"], format!("{key}/cryptoKeyVersions/2"));
    let out = kms.ok("POST", &format!("/v1/{key}:decrypt"), Some(dec.clone())).await;
    assert_eq!(out.get("usedPrimary"), None, "{out}");
    let by_version = kms
        .ok("POST", &format!("/v1/{key}/cryptoKeyVersions/1:encrypt"), Some(json!({"plaintext": b64(pt)})))
        .await;
    assert_eq!(by_version["name"], format!("{key}/cryptoKeyVersions/1"));
    kms.err(
        "POST",
        &format!("/v1/{key}:updatePrimaryVersion"),
        Some(json!({"cryptoKeyVersionId": "9"})),
        404,
        "NOT_FOUND",
    )
    .await;

    // Disabled and destroyed versions refuse use; restore brings a version back disabled.
    let v1 = format!("{key}/cryptoKeyVersions/1");
    let d = kms.ok("PATCH", &format!("/v1/{v1}?updateMask=state"), Some(json!({"state": "DISABLED"}))).await;
    assert_eq!(d["state"], "DISABLED");
    let msg =
        kms.err("POST", &format!("/v1/{key}:decrypt"), Some(dec.clone()), 400, "FAILED_PRECONDITION").await;
    assert_eq!(msg, format!("{v1} is not enabled, current state is: DISABLED."));
    let (_, body) = kms.call("POST", &format!("/v1/{key}:decrypt"), Some(dec.clone())).await;
    let detail = &body["error"]["details"][0];
    assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.PreconditionFailure");
    assert_eq!(detail["violations"][0], json!({"type": "KEY_DISABLED", "subject": v1}));
    kms.err(
        "POST",
        &format!("/v1/{key}:updatePrimaryVersion"),
        Some(json!({"cryptoKeyVersionId": "1"})),
        400,
        "FAILED_PRECONDITION",
    )
    .await;
    kms.err(
        "PATCH",
        &format!("/v1/{v1}?updateMask=state"),
        Some(json!({"state": "DESTROYED"})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    let before = SystemTime::now();
    let s = kms.ok("POST", &format!("/v1/{v1}:destroy"), Some(json!({}))).await;
    assert_eq!(s["state"], "DESTROY_SCHEDULED");
    assert!(s["destroyTime"].is_string(), "{s}");
    kms.err("POST", &format!("/v1/{v1}:destroy"), Some(json!({})), 400, "FAILED_PRECONDITION").await;
    kms.err(
        "PATCH",
        &format!("/v1/{v1}?updateMask=state"),
        Some(json!({"state": 1})),
        400,
        "FAILED_PRECONDITION",
    )
    .await;
    let r = kms.ok("POST", &format!("/v1/{v1}:restore"), Some(json!({}))).await;
    assert_eq!(r["state"], "DISABLED");
    assert!(r.get("destroyTime").is_none());
    kms.err("POST", &format!("/v1/{v1}:restore"), Some(json!({})), 400, "FAILED_PRECONDITION").await;
    kms.ok("PATCH", &format!("/v1/{v1}?updateMask=state"), Some(json!({"state": 1}))).await;
    assert_eq!(
        unb64(&kms.ok("POST", &format!("/v1/{key}:decrypt"), Some(dec.clone())).await["plaintext"]),
        pt
    );
    // With this key's 1 s schedule the version reaches DESTROYED and its material is gone.
    kms.ok("POST", &format!("/v1/{v1}:destroy"), Some(json!({}))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let gone = kms.ok("GET", &format!("/v1/{v1}"), None).await;
    assert_eq!(gone["state"], "DESTROYED");
    assert!(gone["destroyEventTime"].is_string());
    kms.err("POST", &format!("/v1/{key}:decrypt"), Some(dec), 400, "FAILED_PRECONDITION").await;
    kms.err("POST", &format!("/v1/{v1}:restore"), Some(json!({})), 400, "FAILED_PRECONDITION").await;
    let listed = kms.ok("GET", &format!("/v1/{key}/cryptoKeyVersions?filter=state%3DENABLED"), None).await;
    assert_eq!(listed["totalSize"], 1);
    assert_eq!(listed["cryptoKeyVersions"][0]["name"], format!("{key}/cryptoKeyVersions/2"));
    let page = kms.ok("GET", &format!("/v1/{key}/cryptoKeyVersions?pageSize=1"), None).await;
    let next = page["nextPageToken"].as_str().unwrap();
    let page2 =
        kms.ok("GET", &format!("/v1/{key}/cryptoKeyVersions?pageSize=1&pageToken={next}"), None).await;
    assert_eq!(page2["cryptoKeyVersions"][0]["name"], format!("{key}/cryptoKeyVersions/2"));
    assert!(SystemTime::now() > before);
}

#[tokio::test]
async fn default_destroy_schedule_is_a_day() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    kms.key(&ring, "k", json!({"purpose": 1})).await;
    let s = kms.ok("POST", &format!("/v1/{ring}/cryptoKeys/k/cryptoKeyVersions/1:destroy"), None).await;
    let t = s["destroyTime"].as_str().unwrap();
    let day = SystemTime::now() + Duration::from_secs(86_400);
    let secs = day.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    // The date part of now + 24 h (or of a second before, across midnight).
    let date = |s: u64| {
        let days = s / 86_400;
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        format!("{:04}-{m:02}-{d:02}", yoe + era * 400 + i64::from(m <= 2))
    };
    assert!(t.starts_with(&date(secs)) || t.starts_with(&date(secs - 5)), "{t}");
}

#[tokio::test]
async fn raw_aes_gcm_with_ivs_tags_and_crcs() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    for (id, alg) in [("a128", "AES_128_GCM"), ("a256", "AES_256_GCM")] {
        kms.key(&ring, id, json!({"purpose": "RAW_ENCRYPT_DECRYPT", "versionTemplate": {"algorithm": alg}}))
            .await;
        let v = format!("{ring}/cryptoKeys/{id}/cryptoKeyVersions/1");
        let pt = b"raw bytes";
        let enc = kms
            .ok(
                "POST",
                &format!("/v1/{v}:rawEncrypt"),
                Some(json!({"plaintext": b64(pt), "additionalAuthenticatedData": b64(b"aad"), "plaintextCrc32c": crc(pt)})),
            )
            .await;
        assert_eq!(enc["tagLength"], 16);
        assert_eq!(enc["verifiedPlaintextCrc32c"], true);
        let ct = unb64(&enc["ciphertext"]);
        let iv = unb64(&enc["initializationVector"]);
        assert_eq!((ct.len(), iv.len()), (pt.len() + 16, 12));
        assert_eq!(enc["initializationVectorCrc32c"], crc(&iv));
        let dec = json!({
            "ciphertext": b64(&ct), "initializationVector": b64(&iv), "additionalAuthenticatedData": b64(b"aad"),
            "ciphertextCrc32c": crc(&ct), "initializationVectorCrc32c": crc(&iv),
        });
        let out = kms.ok("POST", &format!("/v1/{v}:rawDecrypt"), Some(dec)).await;
        assert_eq!(unb64(&out["plaintext"]), pt);
        assert_eq!(out["verifiedCiphertextCrc32c"], true);
        assert_eq!(out["verifiedInitializationVectorCrc32c"], true);
        // A truncated tag decrypts with tagLength; the wrong AAD or a flipped bit does not.
        let short = &ct[..ct.len() - 4];
        let dec = json!({"ciphertext": b64(short), "initializationVector": b64(&iv), "additionalAuthenticatedData": b64(b"aad"), "tagLength": 12});
        assert_eq!(unb64(&kms.ok("POST", &format!("/v1/{v}:rawDecrypt"), Some(dec)).await["plaintext"]), pt);
        let dec = json!({"ciphertext": b64(&ct), "initializationVector": b64(&iv)});
        kms.err("POST", &format!("/v1/{v}:rawDecrypt"), Some(dec), 400, "INVALID_ARGUMENT").await;
        // A caller-chosen IV is used as given: the same IV gives the same ciphertext.
        let fixed = [7u8; 12];
        let req = json!({"plaintext": b64(pt), "initializationVector": b64(&fixed), "initializationVectorCrc32c": crc(&fixed)});
        let a = kms.ok("POST", &format!("/v1/{v}:rawEncrypt"), Some(req.clone())).await;
        let b = kms.ok("POST", &format!("/v1/{v}:rawEncrypt"), Some(req)).await;
        assert_eq!(a["ciphertext"], b["ciphertext"]);
        assert_eq!(unb64(&a["initializationVector"]), fixed);
        assert_eq!(a["verifiedInitializationVectorCrc32c"], true);
        let bad_iv = json!({"plaintext": b64(pt), "initializationVector": b64(&[1u8; 16])});
        kms.err("POST", &format!("/v1/{v}:rawEncrypt"), Some(bad_iv), 400, "INVALID_ARGUMENT").await;
        kms.err(
            "POST",
            &format!("/v1/{ring}/cryptoKeys/{id}:encrypt"),
            Some(json!({"plaintext": b64(pt)})),
            400,
            "FAILED_PRECONDITION",
        )
        .await;
    }
}

/// One signing algorithm: its name, the verifier, the digest field and hash (None: Ed25519
/// signs data) and the protection level to create it with.
type SignCase = (
    &'static str,
    &'static dyn signature::VerificationAlgorithm,
    Option<(&'static str, &'static aws_lc_rs::digest::Algorithm)>,
    &'static str,
);

fn sign_cases() -> Vec<SignCase> {
    use aws_lc_rs::digest::{SHA256, SHA384, SHA512};
    vec![
        (
            "RSA_SIGN_PSS_2048_SHA256",
            &signature::RSA_PSS_2048_8192_SHA256,
            Some(("sha256", &SHA256)),
            "SOFTWARE",
        ),
        (
            "RSA_SIGN_PSS_3072_SHA256",
            &signature::RSA_PSS_2048_8192_SHA256,
            Some(("sha256", &SHA256)),
            "SOFTWARE",
        ),
        (
            "RSA_SIGN_PSS_4096_SHA512",
            &signature::RSA_PSS_2048_8192_SHA512,
            Some(("sha512", &SHA512)),
            "SOFTWARE",
        ),
        (
            "RSA_SIGN_PKCS1_2048_SHA256",
            &signature::RSA_PKCS1_2048_8192_SHA256,
            Some(("sha256", &SHA256)),
            "SOFTWARE",
        ),
        (
            "RSA_SIGN_PKCS1_4096_SHA256",
            &signature::RSA_PKCS1_2048_8192_SHA256,
            Some(("sha256", &SHA256)),
            "HSM",
        ),
        ("EC_SIGN_P256_SHA256", &signature::ECDSA_P256_SHA256_ASN1, Some(("sha256", &SHA256)), "SOFTWARE"),
        ("EC_SIGN_P384_SHA384", &signature::ECDSA_P384_SHA384_ASN1, Some(("sha384", &SHA384)), "SOFTWARE"),
        ("EC_SIGN_SECP256K1_SHA256", &signature::ECDSA_P256K1_SHA256_ASN1, Some(("sha256", &SHA256)), "HSM"),
        ("EC_SIGN_ED25519", &signature::ED25519, None, "SOFTWARE"),
    ]
}

#[tokio::test]
async fn asymmetric_signatures_verify_with_the_public_key() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    let msg = b"a message to sign";
    for (i, (alg, verify_alg, digest, level)) in sign_cases().into_iter().enumerate() {
        let id = format!("s{i}");
        let body = json!({"purpose": "ASYMMETRIC_SIGN", "versionTemplate": {"algorithm": alg, "protectionLevel": level}});
        let k = kms.key(&ring, &id, body).await;
        assert!(k.get("primary").is_none(), "asymmetric keys have no primary");
        let v = format!("{ring}/cryptoKeys/{id}/cryptoKeyVersions/1");
        let pk = kms.ok("GET", &format!("/v1/{v}/publicKey"), None).await;
        assert_eq!(pk["algorithm"], alg);
        assert_eq!(pk["name"], v.as_str());
        assert_eq!(pk["protectionLevel"], level);
        let pem = pk["pem"].as_str().unwrap();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n")
        );
        assert_eq!(pk["pemCrc32c"], crc(pem.as_bytes()));
        let public = UnparsedPublicKey::new(verify_alg, spki_from_pem(pem));
        let req = match digest {
            Some((field, d)) => {
                let dg = aws_lc_rs::digest::digest(d, msg);
                json!({"digest": {field: b64(dg.as_ref())}, "digestCrc32c": crc(dg.as_ref())})
            }
            None => json!({"data": b64(msg), "dataCrc32c": crc(msg)}),
        };
        let s = kms.ok("POST", &format!("/v1/{v}:asymmetricSign"), Some(req)).await;
        let sig = unb64(&s["signature"]);
        assert_eq!(s["signatureCrc32c"], crc(&sig));
        assert_eq!(s["name"], v.as_str());
        let flag = if digest.is_some() { "verifiedDigestCrc32c" } else { "verifiedDataCrc32c" };
        assert_eq!(s[flag], true, "{alg}: {s}");
        public.verify(msg, &sig).unwrap_or_else(|_| panic!("{alg}: the signature does not verify"));
        assert!(public.verify(b"another message", &sig).is_err(), "{alg}");
        // The wrong input form is refused.
        let wrong = match digest {
            Some(_) => json!({"data": b64(msg)}),
            None => json!({"digest": {"sha256": b64(&[0u8; 32])}}),
        };
        kms.err("POST", &format!("/v1/{v}:asymmetricSign"), Some(wrong), 400, "INVALID_ARGUMENT").await;
        if let Some((field, _)) = digest {
            let short = json!({"digest": {field: b64(&[1u8; 5])}});
            kms.err("POST", &format!("/v1/{v}:asymmetricSign"), Some(short), 400, "INVALID_ARGUMENT").await;
        }
        kms.err(
            "POST",
            &format!("/v1/{v}:macSign"),
            Some(json!({"data": b64(msg)})),
            400,
            "FAILED_PRECONDITION",
        )
        .await;
    }
    // A digest of the wrong hash for the algorithm.
    let v = format!("{ring}/cryptoKeys/s0/cryptoKeyVersions/1");
    let req = json!({"digest": {"sha384": b64(&[0u8; 48])}});
    kms.err("POST", &format!("/v1/{v}:asymmetricSign"), Some(req), 400, "INVALID_ARGUMENT").await;
    // A wrong digest CRC.
    let req = json!({"digest": {"sha256": b64(&[0u8; 32])}, "digestCrc32c": "1"});
    kms.err("POST", &format!("/v1/{v}:asymmetricSign"), Some(req), 400, "INVALID_ARGUMENT").await;
    // A symmetric key has no public key.
    kms.key(&ring, "sym", json!({"purpose": 1})).await;
    kms.err(
        "GET",
        &format!("/v1/{ring}/cryptoKeys/sym/cryptoKeyVersions/1/publicKey"),
        None,
        400,
        "FAILED_PRECONDITION",
    )
    .await;
}

#[tokio::test]
async fn asymmetric_decrypt_of_locally_encrypted_oaep() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    for (id, alg, oaep) in [
        ("d256", "RSA_DECRYPT_OAEP_2048_SHA256", &OAEP_SHA256_MGF1SHA256),
        ("d1", "RSA_DECRYPT_OAEP_3072_SHA1", &OAEP_SHA1_MGF1SHA1),
    ] {
        kms.key(&ring, id, json!({"purpose": 6, "versionTemplate": {"algorithm": alg}})).await;
        let v = format!("{ring}/cryptoKeys/{id}/cryptoKeyVersions/1");
        let pk = kms.ok("GET", &format!("/v1/{v}/publicKey?publicKeyFormat=PEM"), None).await;
        assert_eq!(pk["publicKeyFormat"], "PEM");
        let public = PublicEncryptingKey::from_der(&spki_from_pem(pk["pem"].as_str().unwrap())).unwrap();
        let public = OaepPublicEncryptingKey::new(public).unwrap();
        let mut ct = vec![0u8; public.ciphertext_size()];
        let ct = public.encrypt(oaep, b"wrapped secret", &mut ct, None).unwrap().to_vec();
        let out = kms
            .ok(
                "POST",
                &format!("/v1/{v}:asymmetricDecrypt"),
                Some(json!({"ciphertext": b64(&ct), "ciphertextCrc32c": crc(&ct)})),
            )
            .await;
        assert_eq!(unb64(&out["plaintext"]), b"wrapped secret");
        assert_eq!(out["verifiedCiphertextCrc32c"], true);
        assert_eq!(out["plaintextCrc32c"], crc(b"wrapped secret"));
        let mut bad = ct.clone();
        bad[10] ^= 1;
        kms.err(
            "POST",
            &format!("/v1/{v}:asymmetricDecrypt"),
            Some(json!({"ciphertext": b64(&bad)})),
            400,
            "INVALID_ARGUMENT",
        )
        .await;
        kms.err(
            "POST",
            &format!("/v1/{v}:asymmetricSign"),
            Some(json!({"digest": {"sha256": b64(&[0; 32])}})),
            400,
            "FAILED_PRECONDITION",
        )
        .await;
    }
}

#[tokio::test]
async fn mac_sign_and_verify() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    for (id, alg, hmac_alg) in [
        ("h256", "HMAC_SHA256", aws_lc_rs::hmac::HMAC_SHA256),
        ("h1", "HMAC_SHA1", aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        ("h224", "HMAC_SHA224", aws_lc_rs::hmac::HMAC_SHA224),
        ("h384", "HMAC_SHA384", aws_lc_rs::hmac::HMAC_SHA384),
        ("h512", "HMAC_SHA512", aws_lc_rs::hmac::HMAC_SHA512),
    ] {
        kms.key(&ring, id, json!({"purpose": "MAC", "versionTemplate": {"algorithm": alg}})).await;
        let v = format!("{ring}/cryptoKeys/{id}/cryptoKeyVersions/1");
        let data = b"authenticate me";
        let s = kms
            .ok(
                "POST",
                &format!("/v1/{v}:macSign"),
                Some(json!({"data": b64(data), "dataCrc32c": crc(data)})),
            )
            .await;
        let mac = unb64(&s["mac"]);
        assert_eq!(mac.len(), hmac_alg.digest_algorithm().output_len(), "{alg}");
        assert_eq!(s["macCrc32c"], crc(&mac));
        assert_eq!(s["verifiedDataCrc32c"], true);
        let req =
            json!({"data": b64(data), "mac": b64(&mac), "dataCrc32c": crc(data), "macCrc32c": crc(&mac)});
        let ok = kms.ok("POST", &format!("/v1/{v}:macVerify"), Some(req)).await;
        assert_eq!(ok["success"], true);
        assert_eq!(ok["verifiedSuccessIntegrity"], true);
        assert_eq!(ok["verifiedMacCrc32c"], true);
        let mut bad = mac.clone();
        bad[0] ^= 1;
        let no = kms
            .ok("POST", &format!("/v1/{v}:macVerify"), Some(json!({"data": b64(data), "mac": b64(&bad)})))
            .await;
        assert!(no.get("success").is_none() && no.get("verifiedSuccessIntegrity").is_none(), "{no}");
        let wrong = json!({"data": b64(data), "mac": b64(&mac), "macCrc32c": crc(&bad)});
        kms.err("POST", &format!("/v1/{v}:macVerify"), Some(wrong), 400, "INVALID_ARGUMENT").await;
    }
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    kms.key(&ring, "k", json!({"purpose": 1})).await;
    let key = format!("{ring}/cryptoKeys/k");
    let (s, v) = kms.call("POST", &format!("/v1/{key}:encrypt"), Some(json!([1, 2]))).await;
    assert_eq!((s, v["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    kms.err(
        "POST",
        &format!("/v1/{key}:encrypt"),
        Some(json!({"plaintext": "***"})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    kms.err(
        "POST",
        &format!("/v1/{key}:encrypt"),
        Some(json!({"plaintext": "", "plaintextCrc32c": "-1"})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    kms.err(
        "POST",
        &format!("/v1/{key}:decrypt"),
        Some(json!({"ciphertext": b64(b"short")})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    kms.err("POST", &format!("/v1/{key}:frobnicate"), Some(json!({})), 404, "NOT_FOUND").await;
    kms.err("DELETE", &format!("/v1/{key}"), None, 501, "UNIMPLEMENTED").await;
    kms.err("GET", &format!("/v1/{key}/cryptoKeyVersions/0"), None, 404, "NOT_FOUND").await;
    kms.err("GET", &format!("/v1/{key}/cryptoKeyVersions/x"), None, 404, "NOT_FOUND").await;
    kms.err("GET", &format!("/v1/{key}/cryptoKeyVersions?orderBy=state"), None, 400, "INVALID_ARGUMENT")
        .await;
    // snake_case field names and URL-safe base64 are accepted, as by proto3 JSON parsers.
    let out = kms
        .ok(
            "POST",
            &format!("/v1/{key}:encrypt"),
            Some(json!({"plaintext": "_-8=", "plaintext_crc32c": crc(&[0xff, 0xef])})),
        )
        .await;
    assert_eq!(out["verifiedPlaintextCrc32c"], true);
}

#[tokio::test]
async fn hsm_keys_limit_plaintext_and_aad_together_and_rings_stay_in_their_location() {
    let kms = Kms::start().await;
    let ring = kms.ring("r").await;
    let body = json!({"purpose": 1, "versionTemplate": {"protectionLevel": "HSM"}});
    let k = kms.key(&ring, "hsm", body).await;
    assert_eq!(k["versionTemplate"]["protectionLevel"], "HSM");
    assert_eq!(k["primary"]["protectionLevel"], "HSM");
    let key = format!("{ring}/cryptoKeys/hsm");
    let ok = json!({"plaintext": b64(&[1u8; 4096]), "additionalAuthenticatedData": b64(&[2u8; 4096])});
    let enc = kms.ok("POST", &format!("/v1/{key}:encrypt"), Some(ok)).await;
    assert_eq!(enc["protectionLevel"], "HSM");
    let over = json!({"plaintext": b64(&[1u8; 4096]), "additionalAuthenticatedData": b64(&[2u8; 4097])});
    let msg = kms.err("POST", &format!("/v1/{key}:encrypt"), Some(over), 400, "INVALID_ARGUMENT").await;
    assert!(msg.contains("8192"), "{msg}");
    // A CRC may also arrive as a JSON number; out-of-range values are refused.
    let num = json!({"plaintext": b64(b"x"), "plaintextCrc32c": crc32c::crc32c(b"x")});
    assert_eq!(
        kms.ok("POST", &format!("/v1/{key}:encrypt"), Some(num)).await["verifiedPlaintextCrc32c"],
        true
    );
    let big = json!({"plaintext": b64(b"x"), "plaintextCrc32c": "4294967296"});
    kms.err("POST", &format!("/v1/{key}:encrypt"), Some(big), 400, "INVALID_ARGUMENT").await;
    // External protection levels need an EKM the emulator does not have.
    let ext = json!({"purpose": 1, "versionTemplate": {"protectionLevel": "EXTERNAL"}});
    kms.err("POST", &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=ext"), Some(ext), 400, "INVALID_ARGUMENT")
        .await;
    // Rings are listed per location.
    kms.ok("POST", "/v1/projects/p1/locations/global/keyRings?keyRingId=other", None).await;
    let here = kms.ok("GET", &format!("/v1/{LOC}/keyRings"), None).await;
    assert_eq!(here["totalSize"], 1);
    let there = kms.ok("GET", "/v1/projects/p1/locations/global/keyRings", None).await;
    assert_eq!(there["keyRings"][0]["name"], "projects/p1/locations/global/keyRings/other");
    let none = kms.ok("GET", "/v1/projects/p2/locations/global/keyRings", None).await;
    assert_eq!(none, json!({}), "an empty list is an empty object");
}

/// The official Python client (`google-cloud-kms`, REST transport) against the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client() {
    let Some(python) = std::env::var_os("HSM_PYTHON").filter(|p| !p.is_empty()) else {
        let required = std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty());
        assert!(
            !required,
            "HSM_PYTHON is not set but HSM_REQUIRE_SERVERS is: the Python fidelity test must run"
        );
        eprintln!("skipped: HSM_PYTHON (a python with google-cloud-kms and cryptography) is not set");
        return;
    };
    let kms = Kms::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/gcp_kms.py");
    let url = format!("http://{}", kms.addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(script).arg(&url).output()
    })
    .await
    .expect("join")
    .expect("run python");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "gcp_kms.py failed:\n{text}");
    assert!(text.contains("gcp_kms.py: all checks passed"), "{text}");
    eprintln!("{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_client() {
    let Some(modules) = crate::node::modules() else { return };
    let kms = Kms::start().await;
    let out = crate::node::run(modules, "gcp_kms.mjs", vec![format!("http://{}", kms.addr)], vec![]).await;
    assert!(out.contains("gcp_kms.mjs: all checks passed"), "{out}");
    eprintln!("{}", out.trim());
}

/// What Google's Node client (REST fallback) sends for an empty message: the JSON string `""`
/// (createKeyRing without a keyRing, createCryptoKeyVersion with an empty version). Cloud KMS
/// takes it as the empty message; so does the emulator. Anything else that is not an object
/// stays a 400.
#[tokio::test]
async fn an_empty_message_may_come_as_an_empty_json_string() {
    let kms = Kms::start().await;
    let (status, v) = kms.raw("POST", &format!("/v1/{LOC}/keyRings?keyRingId=quoted"), "\"\"").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], format!("{LOC}/keyRings/quoted"));
    let ring = format!("{LOC}/keyRings/quoted");
    kms.key(&ring, "k", json!({"purpose": "ENCRYPT_DECRYPT"})).await;
    let (status, v) = kms.raw("POST", &format!("/v1/{ring}/cryptoKeys/k/cryptoKeyVersions"), "\"\"").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], format!("{ring}/cryptoKeys/k/cryptoKeyVersions/2"));
    for bad in ["\"x\"", "[]", "1", "{", "null x"] {
        let (status, v) = kms.raw("POST", &format!("/v1/{LOC}/keyRings?keyRingId=bad"), bad).await;
        assert_eq!((status, v["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")), "{bad}: {v}");
    }
}
