//! Cryptography crosses clients: what hsm-azure encrypts or signs, the official Python SDK
//! (`azure-keyvault-keys`, run from `HSM_PYTHON`) decrypts or verifies, and the reverse
//! (`tests/py/cross_client.py`). Skipped without `HSM_PYTHON`, unless `HSM_REQUIRE_SERVERS`.

use hsm_azure::AzureKeyVaultProvider;
use hsm_core::{
    Ciphertext, CreateKey, EncryptionAlgorithm, KeyRef, KeySpec, Provider, SignInput, SignatureAlgorithm,
};
use serde_json::{Value, json};

use crate::emulator::start;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn python() -> Option<String> {
    match std::env::var("HSM_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            let required = std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty());
            assert!(
                !required,
                "HSM_PYTHON is not set and HSM_REQUIRE_SERVERS is: the cross-client check cannot run"
            );
            eprintln!(
                "skipped: HSM_PYTHON is not set (a Python with azure-keyvault-keys, see .ci/requirements.txt)"
            );
            None
        }
    }
}

async fn cross_client(managed_hsm: bool) {
    let Some(python) = python() else { return };
    let emu = start(managed_hsm).await;
    let p = &emu.provider;
    let mut made = serde_json::Map::new();

    let rsa = p.create_key(CreateKey::new("x-rsa", KeySpec::Rsa2048)).await.unwrap();
    let ct = p
        .encrypt(&KeyRef::new("x-rsa"), EncryptionAlgorithm::RsaOaepSha256, b"from hsm", None)
        .await
        .unwrap();
    made.insert(
        "rsa".into(),
        json!({"name": "x-rsa", "version": rsa.version, "ciphertext": hex(ct.as_bytes()), "plaintext": "from hsm"}),
    );
    let ec = p.create_key(CreateKey::new("x-ec", KeySpec::EcP256)).await.unwrap();
    let sig = p
        .sign(&KeyRef::new("x-ec"), SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"signed in rust"))
        .await
        .unwrap();
    let raw = AzureKeyVaultProvider::raw_signature(&sig).unwrap();
    made.insert(
        "ec".into(),
        json!({"name": "x-ec", "version": ec.version, "der": hex(sig.as_bytes()), "raw": hex(&raw), "message": "signed in rust"}),
    );
    if managed_hsm {
        let aes = p.create_key(CreateKey::new("x-aes", KeySpec::Aes256)).await.unwrap();
        let ct = p
            .encrypt(&KeyRef::new("x-aes"), EncryptionAlgorithm::AesGcm, b"gcm from hsm", Some(b"rs-aad"))
            .await
            .unwrap();
        made.insert(
            "aes".into(),
            json!({"name": "x-aes", "version": aes.version, "ciphertext": hex(ct.as_bytes()), "aad": "rs-aad", "plaintext": "gcm from hsm"}),
        );
    }
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), Value::Object(made).to_string()).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/cross_client.py");
    let args = [emu.running.url(), emu.ca.path().display().to_string(), input.path().display().to_string()];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(script).args(args).output()
    })
    .await
    .unwrap()
    .expect("the Python interpreter runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cross_client.py failed:\n{stdout}\n{stderr}");
    eprintln!("{}", stderr.trim());
    let back: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON from the script");

    // What Python made opens through hsm-azure.
    let r = &back["rsa"];
    let ct = Ciphertext::new(
        "x-rsa",
        r["version"].as_str().unwrap(),
        EncryptionAlgorithm::RsaOaepSha256,
        unhex(r["ciphertext"].as_str().unwrap()),
    );
    assert_eq!(p.decrypt(&KeyRef::new("x-rsa"), &ct, None).await.unwrap().as_slice(), b"from python");
    let e = &back["ec"];
    let der = hsm_azure::ecdsa_raw_to_der(&unhex(e["raw"].as_str().unwrap())).unwrap();
    let r = KeyRef::new("x-ec").with_version(e["version"].as_str().unwrap());
    let msg = e["message"].as_str().unwrap().as_bytes();
    assert!(p.verify(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(msg), &der).await.unwrap());
    assert!(
        !p.verify(&r, SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"tampered"), &der).await.unwrap()
    );
    if managed_hsm {
        let a = &back["aes"];
        let ct = Ciphertext::new(
            "x-aes",
            a["version"].as_str().unwrap(),
            EncryptionAlgorithm::AesGcm,
            unhex(a["ciphertext"].as_str().unwrap()),
        );
        assert_eq!(
            p.decrypt(&KeyRef::new("x-aes"), &ct, Some(b"py-aad")).await.unwrap().as_slice(),
            b"gcm from python"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_opens_what_hsm_azure_made_and_back_in_a_vault() {
    cross_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_opens_what_hsm_azure_made_and_back_in_a_managed_hsm() {
    cross_client(true).await;
}
