//! `hsm-emulator gcp`: Cloud KMS v1 REST routing, JSON bodies with CRC32C fields, enums as
//! numbers or names, field masks, filters and page tokens, driven in-process (no sockets)
//! with a fresh emulator per input.
//!
//! Input: requests in the text form of `hsm_fuzz` (the crate's lib). Invariants: never a 500
//! or a non-JSON body; every error answer is `google.rpc.Status` JSON
//! (`{"error": {"code", "message", "status"}}`) whose `code` is the HTTP status.
#![no_main]

use hsm_emulator::gcp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let handler = gcp::handler();
    for raw in hsm_fuzz::parse(data) {
        let Some(req) = raw.build() else { continue };
        let (status, body) = hsm_fuzz::serve(&handler, req);
        if status >= 400 {
            let error =
                body.get("error").unwrap_or_else(|| panic!("status {status}: no error object: {body}"));
            assert_eq!(error.get("code").and_then(|c| c.as_u64()), Some(u64::from(status)), "{body}");
            assert!(error.get("message").is_some_and(|c| c.is_string()), "{body}");
            assert!(error.get("status").is_some_and(|c| c.is_string()), "{body}");
        }
    }
});
