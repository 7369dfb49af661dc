//! The CLI against AWS KMS as emulated by moto, selected by URL through `HSM_PROVIDER` and
//! `--provider`. Without `HSM_MOTO_SERVER` the test says it was skipped and returns.

use hsm_aws::moto::{MOTO_MISSING, MotoServer};

use crate::harness::{Hsm, provider_story};

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

    provider_story(&hsm, &url);

    // Native ciphertexts interoperate with other AWS tools (here the SDK itself) both ways.
    let native = hsm.ok(&["encrypt", "--key", "orders", "--native"], b"from hsm").stdout;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(hsm_aws::AwsKmsProvider::connect(&server.config())).unwrap().client().clone();
    let plain = rt
        .block_on(
            client.decrypt().ciphertext_blob(hsm_aws::aws_sdk_kms::primitives::Blob::new(native)).send(),
        )
        .unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), b"from hsm");
    let theirs = rt
        .block_on(
            client
                .encrypt()
                .key_id("alias/orders")
                .plaintext(hsm_aws::aws_sdk_kms::primitives::Blob::new(&b"from the SDK"[..]))
                .send(),
        )
        .unwrap();
    let blob = theirs.ciphertext_blob().unwrap().as_ref().to_vec();
    assert_eq!(hsm.ok(&["decrypt", "--key", "orders", "--native"], &blob).stdout, b"from the SDK");
}
