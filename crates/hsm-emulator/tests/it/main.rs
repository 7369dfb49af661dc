//! Integration tests of hsm-emulator: one module per mode.

mod all;
mod aws;
mod azure;
mod faults;
mod gcp;
mod node;
mod server;
mod state;
