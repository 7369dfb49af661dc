//! The CLI against Google Cloud KMS as served by the in-process `hsm-emulator gcp`, selected
//! by a `gcp-kms://` URL through `HSM_PROVIDER` and `--provider`.

use crate::harness::{Hsm, provider_story};

#[test]
fn keys_encryption_and_signatures_through_gcp_kms_urls() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let emu = rt.block_on(hsm_emulator::gcp::start(hsm_emulator::gcp::Args { port: 0 })).unwrap();
    let url = format!(
        "gcp-kms://projects/cli/locations/global/keyRings/ring?endpoint={}&create_key_ring=true",
        emu.url()
    );
    let hsm = Hsm::new().env("HSM_PROVIDER", &url);
    provider_story(&hsm, &url);

    // Cloud KMS specifics: labels follow Google's rules, and the key is a crypto key.
    let msg = hsm.fails(4, &["key", "create", "bad", "--spec", "aes-256", "--tag", "Team=x"], b"");
    assert!(msg.contains("lowercase letter"), "{msg}");
    let shown = hsm.ok(&["key", "show", "orders", "--output", "json"], b"").json();
    let native = shown["native_id"].as_str().unwrap();
    assert!(native.ends_with("/keyRings/ring/cryptoKeys/orders"), "{native}");
    drop(emu);
}
