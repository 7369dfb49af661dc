//! `hsm-emulator`: serves one vendor's key-management protocol on 127.0.0.1 until interrupted.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Wire-compatible local emulators of AWS KMS, Azure Key Vault and Google Cloud KMS.
#[derive(Debug, Parser)]
#[command(name = "hsm-emulator", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// AWS KMS (JSON protocol, SigV4).
    Aws(hsm_emulator::aws::Args),
    /// Azure Key Vault or Managed HSM (REST over TLS).
    Azure(hsm_emulator::azure::Args),
    /// Google Cloud KMS (REST v1).
    Gcp(hsm_emulator::gcp::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hsm-emulator: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let (name, started) = match cli.mode {
            Mode::Aws(args) => ("aws", hsm_emulator::aws::start(args).await),
            Mode::Azure(args) => ("azure", hsm_emulator::azure::start(args).await),
            Mode::Gcp(args) => ("gcp", hsm_emulator::gcp::start(args).await),
        };
        let running = match started {
            Ok(r) => r,
            Err(e) => {
                eprintln!("hsm-emulator {name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("hsm-emulator {name} listening on {}", running.url());
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("hsm-emulator {name}: {e}");
            return ExitCode::FAILURE;
        }
        drop(running);
        ExitCode::SUCCESS
    })
}
