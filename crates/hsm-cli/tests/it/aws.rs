//! The CLI against AWS KMS as emulated by moto and by `hsm-emulator aws`, selected by URL
//! through `HSM_PROVIDER` and `--provider`. Without `HSM_MOTO_SERVER` the moto test says it
//! was skipped and returns (under `cargo xtask ci` it fails instead).

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

#[test]
fn the_same_story_against_hsm_emulator_aws_with_signed_requests() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let running = rt.block_on(hsm_emulator::aws::start(hsm_emulator::aws::Args::default())).unwrap();
    let url = format!("aws-kms://?region={}&endpoint={}", hsm_emulator::aws::DEFAULT_REGION, running.url());
    let hsm = Hsm::new()
        .env("HSM_PROVIDER", &url)
        .env("AWS_ACCESS_KEY_ID", hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY);
    provider_story(&hsm, &url);

    // The emulator checks SigV4: a wrong secret is refused as unauthenticated (exit 5).
    let wrong = Hsm::new()
        .env("HSM_PROVIDER", &url)
        .env("AWS_ACCESS_KEY_ID", hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let msg = wrong.fails(5, &["key", "list"], b"");
    assert!(!msg.contains("not-the-secret"), "{msg}");
    drop(running);
}

/// `hsm -v` prints each attempt and the operation's latency to stderr: a throttled first
/// attempt, the retry after its backoff, the answer; never the data.
#[test]
fn verbose_prints_attempts_and_timings() {
    use hsm_emulator::faults::{Fault, FaultSpec, Faults, Vendor};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let faults = Faults::new(
        hsm_emulator::aws::handler(hsm_emulator::aws::Args::default()).unwrap(),
        Vendor::Aws,
        FaultSpec::default(),
    );
    let running = rt.block_on(hsm_emulator::server::serve_http(0, faults.clone())).unwrap();
    let url = format!("aws-kms://?region={}&endpoint={}", hsm_emulator::aws::DEFAULT_REGION, running.url());
    let hsm = Hsm::new()
        .env("HSM_PROVIDER", &url)
        .env("AWS_ACCESS_KEY_ID", hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY);
    hsm.ok(&["key", "create", "verbose", "--spec", "aes-256"], b"");
    let quiet = hsm.ok(&["encrypt", "--key", "verbose"], b"plaintext-never-logged");
    assert!(quiet.stderr.is_empty(), "without -v stderr stays empty: {}", quiet.stderr);
    faults.push(Fault::Throttle);
    let run = hsm.run(&["-v", "encrypt", "--key", "verbose"], b"plaintext-never-logged");
    let err = &run.stderr;
    assert_eq!(run.code, 0, "{err}");
    assert!(
        err.contains("attempt=1") && err.contains("outcome=\"throttled\"") && err.contains("backoff_ms="),
        "{err}"
    );
    assert!(err.contains("attempt=2") && err.contains("outcome=\"ok\""), "{err}");
    assert!(err.contains("operation done") && err.contains("latency_ms="), "{err}");
    assert!(err.contains("operation=\"encrypt\""), "{err}");
    assert!(!err.contains("plaintext-never-logged"), "{err}");
    assert_eq!(faults.counts().throttled, 1);
    drop(running);
}
