//! Integration tests of the hsm umbrella: configuration, the client, the quickstart.

mod audit;
mod client;
mod config;
mod envelope;
mod quickstart;
mod registry;
