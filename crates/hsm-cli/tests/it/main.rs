//! End-to-end tests of the `hsm` binary: every command, through real processes.

mod harness;

mod crypto;
mod keys;
mod providers;
