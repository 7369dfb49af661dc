//! End-to-end tests of the `hsm` binary: every command, through real processes.

mod harness;

mod aws;
mod azure;
mod crypto;
mod envelope;
mod gcp;
mod keyring;
mod keys;
mod pkcs11;
mod providers;
mod signers;
mod third_party;
