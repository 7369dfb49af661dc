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
}
