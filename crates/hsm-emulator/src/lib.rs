//! Wire-compatible local emulators of the cloud key-management services hsm talks to, with
//! real cryptography from [`hsm_crypto`].
//!
//! Each mode serves one vendor's protocol on 127.0.0.1 so that the vendor's own SDKs (Rust
//! and Python) can be pointed at it:
//!
//! | mode | protocol | module |
//! |---|---|---|
//! | `hsm-emulator aws --port P` | AWS KMS JSON protocol (`X-Amz-Target: TrentService.*`), SigV4-verified | [`aws`] |
//! | `hsm-emulator azure --port P --ca-out FILE` | Azure Key Vault keys REST API over TLS | [`azure`] |
//! | `hsm-emulator gcp --port P` | Google Cloud KMS v1 REST API | [`gcp`] |
//! | `hsm-emulator all --aws-port P --azure-port P --gcp-port P` | the three at once, printing the SDKs' environment | [`all`] |
//!
//! A single mode prints one line, `hsm-emulator <mode> listening on <url>`, once it accepts
//! connections, and serves until it is interrupted (Ctrl-C or SIGTERM: requests in flight
//! finish first). Tests usually start a mode in-process instead, through the mode's `start`
//! function, which returns a [`server::Running`] that stops the server when dropped.
//!
//! State lives in memory and is lost when the emulator stops, unless `--state PATH` keeps it
//! in an encrypted, locked file ([`state`]). Limits shared by every mode (413 for oversized
//! bodies, bounded connections) are in [`server`].

pub mod all;
pub mod aws;
pub mod azure;
pub mod faults;
pub mod gcp;
pub mod server;
pub mod state;
