//! The CLI against Azure Key Vault as emulated in-process by `hsm_emulator::azure` (Managed
//! HSM mode, so AES keys exist), selected by an `azure-keyvault://…?ca=…` URL through
//! `HSM_PROVIDER` and `--provider`, with the bearer token from `HSM_AZURE_ACCESS_TOKEN`.

use crate::harness::Hsm;

/// Starts the emulator on a runtime of its own (the CLI runs in other processes).
fn emulator(managed_hsm: bool) -> (tokio::runtime::Runtime, hsm_emulator::server::Running, String) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let args = hsm_emulator::azure::Args { managed_hsm, ..Default::default() };
    let (running, pem) = rt.block_on(hsm_emulator::azure::start_with_ca(args)).expect("the emulator starts");
    (rt, running, pem)
}

fn is_kv_version(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn keys_encryption_rotation_and_signatures_through_azure_keyvault_urls() {
    let (_rt, running, pem) = emulator(true);
    let hsm = Hsm::new().env("HSM_AZURE_ACCESS_TOKEN", "cli-token");
    let ca = hsm.file("ca.pem", pem.as_bytes());
    let url =
        format!("azure-keyvault://127.0.0.1:{}?ca={ca}&kind=managed-hsm&credential=token", running.port());
    let hsm = hsm.env("HSM_PROVIDER", &url);

    hsm.ok(&["key", "create", "orders", "--spec", "aes-256", "--tag", "team=payments"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "orders"], b"card number").stdout;
    let blob = hsm::Ciphertext::from_bytes(&ct).unwrap();
    assert_eq!(blob.key(), "orders");
    assert!(is_kv_version(blob.version()), "version {}", blob.version());
    assert_eq!(hsm.ok(&["decrypt", "--key", "orders"], &ct).stdout, b"card number");

    // --provider works the same, and the name is taken (not silently a new version).
    let msg = hsm.fails(4, &["--provider", &url, "key", "create", "orders", "--spec", "aes-256"], b"");
    assert!(msg.contains("already exists"), "{msg}");

    // After rotation the old ciphertext still decrypts, with the version it recorded.
    hsm.ok(&["key", "rotate", "orders"], b"");
    assert_eq!(hsm.ok(&["decrypt", "--key", "orders"], &ct).stdout, b"card number");

    hsm.ok(&["key", "create", "signer", "--spec", "ec-p256"], b"");
    let data = hsm.file("data.txt", b"Data to sign");
    hsm.ok(&["sign", "--key", "signer", "-i", &data, "-o", "sig.bin"], b"");
    let r = hsm.ok(&["verify", "--key", "signer", "--signature", "sig.bin", "-i", &data], b"");
    assert_eq!(r.stdout_text(), "valid\n");
    let r = hsm.run(&["verify", "--key", "signer", "--signature", "sig.bin"], b"other data");
    assert_eq!((r.code, r.stdout_text().as_str()), (1, "invalid\n"));

    let listed = hsm.ok(&["key", "list", "--output", "json"], b"").json();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["orders", "signer"]);
}

#[test]
fn a_standard_vault_url_refuses_aes_and_a_missing_token_is_a_config_error() {
    let (_rt, running, pem) = emulator(false);
    let hsm = Hsm::new();
    let ca = hsm.file("ca.pem", pem.as_bytes());
    let url = format!("azure-keyvault://127.0.0.1:{}?ca={ca}&credential=token", running.port());
    let msg = hsm.fails(5, &["--provider", &url, "key", "list"], b"");
    assert!(msg.contains("HSM_AZURE_ACCESS_TOKEN"), "{msg}");
    let hsm = hsm.env("HSM_AZURE_ACCESS_TOKEN", "cli-token");
    let msg = hsm.fails(4, &["--provider", &url, "key", "create", "k", "--spec", "aes-256"], b"");
    assert!(msg.contains("Managed HSM"), "{msg}");
    hsm.ok(&["--provider", &url, "key", "create", "k", "--spec", "rsa-2048"], b"");
}
