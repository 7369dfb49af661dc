//! Integration tests of hsm-emulator: one module per mode.

mod gcp;
mod server;
