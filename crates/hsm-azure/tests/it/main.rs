//! hsm-azure against the in-process Key Vault emulator (`hsm_emulator::azure`), in vault
//! and Managed HSM mode, plus bad configuration and unreachable or untrusted endpoints.

mod bad_input;
mod emulator;
mod operations;
mod python;
mod throttling;
