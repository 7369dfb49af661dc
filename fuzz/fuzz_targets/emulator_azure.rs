//! `hsm-emulator azure`: Key Vault REST routing, query parameters, bearer authentication,
//! KeyBundle / JWK request bodies (create, import, update) and the crypto operations' bodies,
//! driven in-process (no TLS, no sockets) with a fresh vault per input.
//!
//! Input: requests in the text form of `hsm_fuzz` (the crate's lib), written as a client
//! sends them (`authorization: Bearer …`, `?api-version=7.6`); a first request whose `host`
//! is a `managedhsm` name makes the emulator a Managed HSM. Invariants: never a 500 or a
//! non-JSON body; every error answer is Key Vault's `{"error": {"code", "message"}}`; a 401
//! carries the bearer challenge.
#![no_main]

use hsm_emulator::azure;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let requests = hsm_fuzz::parse(data);
    // A first request addressed to a Managed HSM host selects that flavour (oct-HSM keys).
    let managed_hsm = requests
        .first()
        .and_then(|r| r.header("host"))
        .is_some_and(|h| h.windows(10).any(|w| w == b"managedhsm"));
    let handler = azure::handler(azure::Args { managed_hsm, ..azure::Args::default() }).unwrap();
    for raw in requests {
        let Some(req) = raw.build() else { continue };
        let (status, body) = hsm_fuzz::serve(&handler, req);
        if status >= 400 {
            let error =
                body.get("error").unwrap_or_else(|| panic!("status {status}: no error object: {body}"));
            assert!(error.get("code").is_some_and(|c| c.is_string()), "{body}");
            assert!(error.get("message").is_some_and(|c| c.is_string()), "{body}");
        }
    }
});
