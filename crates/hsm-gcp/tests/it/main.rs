//! hsm-gcp against the in-process Cloud KMS emulator (`hsm_emulator::gcp`), driven through
//! the official `google-cloud-kms-v1` client underneath.

mod bad_input;
mod integrity;
mod lifecycle;
mod operations;
mod python;
mod support;
