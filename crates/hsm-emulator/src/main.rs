//! `hsm-emulator`: serves one vendor's key-management protocol (or all three) on 127.0.0.1
//! until interrupted (Ctrl-C or SIGTERM; connections in flight finish first).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hsm_emulator::server::Running;
use hsm_emulator::state::StateArgs;

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
    Gcp(GcpArgs),
    /// All three in one process, each on its own port, with one state file; prints the
    /// environment each SDK needs as `export NAME='value'` lines a shell can `eval`.
    All(hsm_emulator::all::Args),
}

#[derive(Debug, clap::Args)]
struct GcpArgs {
    #[command(flatten)]
    args: hsm_emulator::gcp::Args,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    faults: hsm_emulator::faults::FaultArgs,
}

/// How long connections in flight get to finish after Ctrl-C or SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// Ctrl-C (SIGINT) and SIGTERM, registered before any server starts: a signal sent as soon
/// as the listening line appears must stop the emulator gracefully, not kill it.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Resolves on the first Ctrl-C or SIGTERM.
    async fn wait(&mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => Ok(()),
                _ = self.term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    }
}

async fn run(mode: Mode) -> Result<(), String> {
    let mut signals = Signals::register().map_err(|e| format!("cannot handle signals: {e}"))?;
    let (name, servers): (&str, Vec<Running>) = match mode {
        Mode::Aws(args) => {
            ("aws", vec![hsm_emulator::aws::start(args).await.map_err(|e| format!("aws: {e}"))?])
        }
        Mode::Azure(args) => {
            ("azure", vec![hsm_emulator::azure::start(args).await.map_err(|e| format!("azure: {e}"))?])
        }
        Mode::Gcp(g) => {
            let state = g.state.open().map_err(|e| format!("gcp: {e}"))?;
            let faults = g.faults;
            let running = hsm_emulator::gcp::start_with_state_wrapped(g.args, state, |h| {
                faults.wrap(hsm_emulator::faults::Vendor::Gcp, h)
            })
            .await
            .map_err(|e| format!("gcp: {e}"))?;
            ("gcp", vec![running])
        }
        Mode::All(args) => {
            let ready_file: Option<PathBuf> = args.ready_file.clone();
            let all = hsm_emulator::all::start(args).await.map_err(|e| e.to_string())?;
            let env = all.env();
            print!("{env}");
            if let Some(path) = ready_file {
                hsm_emulator::all::write_ready_file(&path, &env).map_err(|e| e.to_string())?;
            }
            println!("# hsm-emulator all: ready");
            ("all", all.into_servers())
        }
    };
    if name != "all" {
        for s in &servers {
            println!("hsm-emulator {name} listening on {}", s.url());
        }
    }
    signals.wait().await.map_err(|e| format!("cannot wait for signals: {e}"))?;
    let mut clean = true;
    for s in servers {
        clean &= s.shutdown(GRACE).await;
    }
    if !clean {
        eprintln!("hsm-emulator {name}: connections still open after {GRACE:?}; closed");
    }
    Ok(())
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
    match rt.block_on(run(cli.mode)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hsm-emulator {e}");
            ExitCode::FAILURE
        }
    }
}
