//! Integration tests of hsm-emulator: one module per mode.

mod azure;
mod server;
