//! `hsm-emulator aws`: not built yet.

use std::io;

use crate::server::Running;

/// Command-line options of `hsm-emulator aws`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Starts the emulator on the current tokio runtime.
///
/// # Errors
/// Always, for now: this mode is not built yet.
pub async fn start(args: Args) -> io::Result<Running> {
    let _ = args;
    Err(io::Error::new(io::ErrorKind::Unsupported, "hsm-emulator aws is not built yet"))
}
