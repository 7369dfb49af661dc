//! `hsm-emulator aws`: SigV4 header parsing and verification, the KMS JSON 1.1 protocol and
//! every operation's input decoding, driven in-process (no sockets) with a fresh emulator
//! per input.
//!
//! Input: requests in the text form of `hsm_fuzz` (the crate's lib). A request without an
//! `authorization` header is signed by the harness with the emulator's default credentials,
//! so the operations behind SigV4 are reached; one with such a header goes to the verifier
//! as written. `@KEY@` in a body becomes the `KeyId` of the last key the emulator created.
//! Invariants: never a 500 or a non-JSON body; every error answer is `{"__type", "message"}`;
//! a request with a made-up `authorization` header is refused.
#![no_main]

use hsm_emulator::aws::{self, DEFAULT_ACCESS_KEY_ID, DEFAULT_REGION, DEFAULT_SECRET_ACCESS_KEY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let handler = aws::handler(aws::Args::default()).unwrap();
    let mut key_id: Option<String> = None;
    for mut raw in hsm_fuzz::parse(data) {
        if let Some(id) = &key_id {
            raw.substitute(b"@KEY@", id.as_bytes());
        }
        let forged = raw.header("authorization").is_some();
        if !forged {
            hsm_fuzz::sigv4::sign(&mut raw, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, DEFAULT_REGION);
        }
        let Some(req) = raw.build() else { continue };
        let (status, body) = hsm_fuzz::serve(&handler, req);
        if status == 200 {
            assert!(!forged, "a request with a made-up signature was served: {body}");
            let id = body.pointer("/KeyMetadata/KeyId").or_else(|| body.get("KeyId"));
            if let Some(id) = id.and_then(|v| v.as_str()) {
                key_id = Some(id.to_owned());
            }
        } else {
            assert!(
                body.get("__type").is_some_and(|t| t.is_string()) && body.get("message").is_some(),
                "status {status}: not an AWS error body: {body}"
            );
        }
    }
});
