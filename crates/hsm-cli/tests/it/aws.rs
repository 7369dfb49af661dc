//! The CLI against AWS KMS as emulated by moto, selected by URL through `HSM_PROVIDER` and
//! `--provider`. Without `HSM_MOTO_SERVER` the test says it was skipped and returns.

use hsm_aws::moto::{MOTO_MISSING, MotoServer};

use crate::harness::Hsm;

#[test]
fn keys_encryption_and_signatures_through_aws_kms_urls() {
    let server = match MotoServer::from_env() {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("skipped: {MOTO_MISSING}");
            return;
        }
        Err(e) => panic!("cannot start moto_server: {e}"),
    };
    let url = format!("aws-kms://?region=us-east-1&endpoint={}", server.endpoint());
    let hsm = Hsm::new()
        .env("HSM_PROVIDER", &url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");

    hsm.ok(&["key", "create", "orders", "--spec", "aes-256", "--tag", "team=payments"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "orders"], b"card number").stdout;
    let blob = hsm::Ciphertext::from_bytes(&ct).unwrap();
    assert_eq!((blob.key(), blob.version()), ("orders", "1"));
    assert_eq!(hsm.ok(&["decrypt", "--key", "orders"], &ct).stdout, b"card number");

    // --provider works the same, and the name is taken.
    let msg = hsm.fails(4, &["--provider", &url, "key", "create", "orders", "--spec", "aes-256"], b"");
    assert!(msg.contains("already exists"), "{msg}");

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
