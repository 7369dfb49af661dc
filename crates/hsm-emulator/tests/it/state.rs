//! `--state`: keys survive a restart of the real binary (material, versions, aliases,
//! labels/tags, deletion schedules), the state is encrypted under a 0600 key file, and a
//! second emulator cannot open a state in use.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::aws::create_key;

/// A fresh directory under the system temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let mut rnd = [0u8; 8];
        aws_lc_rs::rand::fill(&mut rnd).unwrap();
        let name = format!("hsm-emulator-{tag}-{}-{}", std::process::id(), u64::from_le_bytes(rnd));
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real binary, killed when dropped.
pub(crate) struct Emulator {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Emulator {
    /// Starts `hsm-emulator <args>` and waits for its "listening on URL" line.
    pub(crate) fn start(args: &[&str]) -> Emulator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some((_, url)) = line.trim().split_once(" listening on ") else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("no listening line: {line:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        };
        Emulator { url: url.to_owned(), child }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited successfully.
    pub(crate) fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {pid}");
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hsm-emulator did not exit within 5 s of SIGTERM");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kms(url: &str) -> Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

fn state_arg(dir: &TempDir) -> String {
    dir.join("state").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_keys_survive_a_restart() {
    let dir = TempDir::new("aws-state");
    let state = state_arg(&dir);
    let emu = Emulator::start(&["aws", "--port", "0", "--state", &state]);
    let c = kms(&emu.url);
    let tag = Tag::builder().tag_key("team").tag_value("blue").build().unwrap();
    let sym = c.create_key().description("kept").tags(tag).send().await.unwrap().key_metadata.unwrap();
    c.create_alias().alias_name("alias/kept").target_key_id(sym.key_id()).send().await.unwrap();
    let ct = c
        .encrypt()
        .key_id("alias/kept")
        .plaintext(Blob::new("before the restart"))
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    // A rotation: the ciphertext above names the old material, which must survive too.
    c.rotate_key_on_demand().key_id(sym.key_id()).send().await.unwrap();
    let ct2 = c.encrypt().key_id(sym.key_id()).plaintext(Blob::new("after rotation")).send().await.unwrap();
    let ec = create_key(&c, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let rsa = create_key(&c, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let hmac = create_key(&c, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let sign = |id: &str, alg: SigningAlgorithmSpec| {
        c.sign()
            .key_id(id)
            .message(Blob::new("signed before"))
            .message_type(MessageType::Raw)
            .signing_algorithm(alg)
    };
    let ec_sig =
        sign(ec.key_id(), SigningAlgorithmSpec::EcdsaSha256).send().await.unwrap().signature.unwrap();
    let rsa_sig =
        sign(rsa.key_id(), SigningAlgorithmSpec::RsassaPssSha256).send().await.unwrap().signature.unwrap();
    let ec_spki = c.get_public_key().key_id(ec.key_id()).send().await.unwrap().public_key.unwrap();
    let mac = c
        .generate_mac()
        .key_id(hmac.key_id())
        .message(Blob::new("mac before"))
        .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();
    let doomed = c.create_key().send().await.unwrap().key_metadata.unwrap();
    c.schedule_key_deletion().key_id(doomed.key_id()).pending_window_in_days(9).send().await.unwrap();
    let disabled = c.create_key().send().await.unwrap().key_metadata.unwrap();
    c.disable_key().key_id(disabled.key_id()).send().await.unwrap();
    assert!(emu.terminate(), "SIGTERM: clean exit");

    let emu = Emulator::start(&["aws", "--port", "0", "--state", &state]);
    let c = kms(&emu.url);
    let pt =
        c.decrypt().ciphertext_blob(ct).encryption_context("k", "v").send().await.unwrap().plaintext.unwrap();
    assert_eq!(pt.as_ref(), b"before the restart");
    let pt2 = c.decrypt().ciphertext_blob(ct2.ciphertext_blob.unwrap()).send().await.unwrap();
    assert_eq!(pt2.plaintext.unwrap().as_ref(), b"after rotation");
    let meta = c.describe_key().key_id("alias/kept").send().await.unwrap().key_metadata.unwrap();
    assert_eq!((meta.key_id(), meta.description()), (sym.key_id(), Some("kept")));
    let tags = c.list_resource_tags().key_id(sym.key_id()).send().await.unwrap();
    assert_eq!(tags.tags()[0].tag_value(), "blue");
    let rotations = c.list_key_rotations().key_id(sym.key_id()).send().await.unwrap();
    assert_eq!(rotations.rotations().len(), 1);
    for (id, alg, sig) in [
        (ec.key_id(), SigningAlgorithmSpec::EcdsaSha256, ec_sig.clone()),
        (rsa.key_id(), SigningAlgorithmSpec::RsassaPssSha256, rsa_sig),
    ] {
        let ok = c
            .verify()
            .key_id(id)
            .message(Blob::new("signed before"))
            .signature(sig)
            .signing_algorithm(alg)
            .send()
            .await
            .unwrap();
        assert!(ok.signature_valid());
    }
    // The public key is the same one: the old signature verifies locally against it.
    let spki_after = c.get_public_key().key_id(ec.key_id()).send().await.unwrap().public_key.unwrap();
    assert_eq!(spki_after.as_ref(), ec_spki.as_ref());
    let raw_point = &spki_after.as_ref()[spki_after.as_ref().len() - 65..];
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, raw_point)
        .verify(b"signed before", ec_sig.as_ref())
        .unwrap();
    let mac_ok = c
        .verify_mac()
        .key_id(hmac.key_id())
        .message(Blob::new("mac before"))
        .mac(mac)
        .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap();
    assert!(mac_ok.mac_valid());
    let d = c.describe_key().key_id(doomed.key_id()).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::PendingDeletion));
    assert!(d.deletion_date().is_some());
    let d = c.describe_key().key_id(disabled.key_id()).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::Disabled));
    let listed = c.list_keys().send().await.unwrap();
    assert_eq!(listed.keys().len(), 6);
    drop(emu);
}

/// One request to a plain-HTTP emulator; returns the status and the JSON body.
async fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: kms\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn ok(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, v) = call(base, method, path, body).await;
    assert_eq!(status, 200, "{method} {path}: {v}");
    v
}

#[tokio::test]
async fn gcp_keys_survive_a_restart() {
    let dir = TempDir::new("gcp-state");
    let state = state_arg(&dir);
    let loc = "/v1/projects/p/locations/l";
    let ring = "projects/p/locations/l/keyRings/r";
    let emu = Emulator::start(&["gcp", "--port", "0", "--state", &state]);
    ok(&emu.url, "POST", &format!("{loc}/keyRings?keyRingId=r"), None).await;
    ok(
        &emu.url,
        "POST",
        &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=sym"),
        Some(json!({"purpose": "ENCRYPT_DECRYPT", "labels": {"env": "prod"}})),
    )
    .await;
    let enc = ok(
        &emu.url,
        "POST",
        &format!("/v1/{ring}/cryptoKeys/sym:encrypt"),
        Some(json!({"plaintext": STANDARD.encode("kept")})),
    )
    .await;
    // A second version made primary (v1 must still decrypt), a third scheduled for destruction.
    ok(&emu.url, "POST", &format!("/v1/{ring}/cryptoKeys/sym/cryptoKeyVersions"), Some(json!({}))).await;
    ok(
        &emu.url,
        "POST",
        &format!("/v1/{ring}/cryptoKeys/sym:updatePrimaryVersion"),
        Some(json!({"cryptoKeyVersionId": "2"})),
    )
    .await;
    ok(&emu.url, "POST", &format!("/v1/{ring}/cryptoKeys/sym/cryptoKeyVersions"), Some(json!({}))).await;
    let destroyed = ok(
        &emu.url,
        "POST",
        &format!("/v1/{ring}/cryptoKeys/sym/cryptoKeyVersions/3:destroy"),
        Some(json!({})),
    )
    .await;
    ok(
        &emu.url,
        "POST",
        &format!("/v1/{ring}/cryptoKeys?cryptoKeyId=ec"),
        Some(json!({"purpose": "ASYMMETRIC_SIGN", "versionTemplate": {"algorithm": "EC_SIGN_P256_SHA256"}})),
    )
    .await;
    let ec = format!("/v1/{ring}/cryptoKeys/ec/cryptoKeyVersions/1");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"signed before");
    let sig = ok(
        &emu.url,
        "POST",
        &format!("{ec}:asymmetricSign"),
        Some(json!({"digest": {"sha256": STANDARD.encode(digest.as_ref())}})),
    )
    .await;
    let pem_before = ok(&emu.url, "GET", &format!("{ec}/publicKey"), None).await["pem"].clone();
    assert!(emu.terminate());

    let emu = Emulator::start(&["gcp", "--port", "0", "--state", &state]);
    let dec = ok(
        &emu.url,
        "POST",
        &format!("/v1/{ring}/cryptoKeys/sym:decrypt"),
        Some(json!({"ciphertext": enc["ciphertext"]})),
    )
    .await;
    assert_eq!(STANDARD.decode(dec["plaintext"].as_str().unwrap()).unwrap(), b"kept");
    let key = ok(&emu.url, "GET", &format!("/v1/{ring}/cryptoKeys/sym"), None).await;
    assert_eq!(key["labels"]["env"], "prod");
    assert_eq!(key["primary"]["name"], format!("{ring}/cryptoKeys/sym/cryptoKeyVersions/2"));
    let v3 = ok(&emu.url, "GET", &format!("/v1/{ring}/cryptoKeys/sym/cryptoKeyVersions/3"), None).await;
    assert_eq!(v3["state"], "DESTROY_SCHEDULED");
    assert_eq!(v3["destroyTime"], destroyed["destroyTime"]);
    let pem_after = ok(&emu.url, "GET", &format!("{ec}/publicKey"), None).await["pem"].clone();
    assert_eq!(pem_before, pem_after);
    let pem: String = pem_after.as_str().unwrap().lines().filter(|l| !l.starts_with("-----")).collect();
    let spki = STANDARD.decode(pem).unwrap();
    let point = &spki[spki.len() - 65..];
    let sig = STANDARD.decode(sig["signature"].as_str().unwrap()).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(b"signed before", &sig)
        .expect("a signature made before the restart verifies after it");
    // And the key still signs.
    ok(
        &emu.url,
        "POST",
        &format!("{ec}:asymmetricSign"),
        Some(json!({"digest": {"sha256": STANDARD.encode(digest.as_ref())}})),
    )
    .await;
}

#[test]
fn a_second_emulator_cannot_share_the_state() {
    let dir = TempDir::new("lock");
    let state = state_arg(&dir);
    let first = Emulator::start(&["gcp", "--port", "0", "--state", &state]);
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
        .args(["aws", "--port", "0", "--state", &state])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second emulator started: {stderr}");
    assert!(stderr.contains("is in use by another hsm-emulator"), "{stderr}");
    assert!(stderr.contains(&state), "{stderr}");
    assert!(first.terminate());
    // Once the first one is gone, the state opens again.
    let again = Emulator::start(&["aws", "--port", "0", "--state", &state]);
    assert!(again.terminate());
}

#[test]
fn the_state_is_encrypted_under_a_private_key_file() {
    use hsm_emulator::state::StateFile;
    let dir = TempDir::new("enc");
    let path = dir.join("state");
    {
        let s = StateFile::open(&path, None).unwrap();
        s.save("gcp", json!({"secret": "do-not-leak-me"})).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"HSMEMU\0\x01"));
    assert!(!bytes.windows(14).any(|w| w == b"do-not-leak-me"), "plaintext in the state file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("state.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let reopened = StateFile::open(&path, None).unwrap();
    assert_eq!(reopened.section("gcp").unwrap()["secret"], "do-not-leak-me");
    drop(reopened);
    // Another key: refused, file untouched.
    let other = dir.join("other.key");
    std::fs::write(&other, [7u8; 32]).unwrap();
    let e = StateFile::open(&path, Some(&other)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("does not decrypt"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // Not a state file at all.
    let junk = dir.join("junk");
    std::fs::write(&junk, b"{}").unwrap();
    let e = StateFile::open(&junk, Some(Path::new(&dir.join("state.key")))).unwrap_err();
    assert!(e.to_string().contains("not an hsm-emulator state file"), "{e}");
}
