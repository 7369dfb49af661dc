//! Integration tests of hsm-emulator: one module per mode.

mod aws;
mod azure;
mod gcp;
mod node;
mod server;
mod state;
