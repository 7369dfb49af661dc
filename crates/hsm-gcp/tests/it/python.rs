//! Cryptography crosses clients: what hsm-gcp encrypts and signs, the official Python client
//! (and `cryptography` over the PEM) opens and verifies, and the reverse. Needs the venv's
//! python (`HSM_PYTHON`); skipped without it unless `HSM_REQUIRE_SERVERS` is set.

use base64::Engine as _;
use hsm_core::{
    Ciphertext, CreateKey, EncryptionAlgorithm as E, KeyRef, KeySpec, Provider, SignInput,
    SignatureAlgorithm as S,
};

use crate::support::provider;

fn python() -> Option<String> {
    match std::env::var("HSM_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("HSM_REQUIRE_SERVERS").is_some() => {
            panic!(
                "HSM_PYTHON is not set; it must name the venv python with google-cloud-kms (`cargo xtask setup` provisions it)"
            )
        }
        _ => None,
    }
}

#[tokio::test]
async fn ciphertexts_and_signatures_cross_between_hsm_gcp_and_the_python_client() {
    let Some(python) = python() else {
        eprintln!("skipped: HSM_PYTHON is not set (the venv python with google-cloud-kms)");
        return;
    };
    let (emu, p) = provider().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let aes = p.create_key(CreateKey::new("cross-aes", KeySpec::Aes256)).await.unwrap();
    let rsa = p.create_key(CreateKey::new("cross-rsa", KeySpec::Rsa2048)).await.unwrap();
    let ec = p.create_key(CreateKey::new("cross-ec", KeySpec::EcP256)).await.unwrap();
    let aad = b"cross-client aad";
    let ct = p.encrypt(&KeyRef::new("cross-aes"), E::AesGcm, b"from hsm-gcp", Some(aad)).await.unwrap();
    let sig = p
        .sign(&KeyRef::new("cross-ec"), S::EcdsaSha256, SignInput::Message(b"signed by hsm-gcp"))
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/cross.py");
    let args = [
        script.to_owned(),
        emu.url(),
        aes.native_id.clone(),
        b64.encode(ct.as_bytes()),
        b64.encode(aad),
        format!("{}/cryptoKeyVersions/1", rsa.native_id),
        b64.encode(sig.as_bytes()),
        format!("{}/cryptoKeyVersions/1", ec.native_id),
    ];
    // The emulator runs on this test's runtime: wait for python off it.
    let out = tokio::task::spawn_blocking(move || std::process::Command::new(&python).args(&args).output())
        .await
        .unwrap()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cross.py failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let from_python = Ciphertext::new("cross-aes", "1", E::AesGcm, b64.decode(lines[0]).unwrap());
    let pt = p.decrypt(&KeyRef::new("cross-aes"), &from_python, Some(aad)).await.unwrap();
    assert_eq!(pt.as_slice(), b"from python");
    let oaep = Ciphertext::new("cross-rsa", "1", E::RsaOaepSha256, b64.decode(lines[1]).unwrap());
    let pt = p.decrypt(&KeyRef::new("cross-rsa"), &oaep, None).await.unwrap();
    assert_eq!(pt.as_slice(), b"oaep from python");
}
