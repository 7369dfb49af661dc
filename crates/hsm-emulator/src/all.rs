//! `hsm-emulator all`: the three emulators in one process, each on its own port, sharing one
//! `--state` file, and the environment each vendor's SDK needs printed for a shell to `eval`.
//!
//! In a script, start it in the background and wait for the ready file:
//!
//! ```text
//! hsm-emulator all --aws-port 4566 --azure-port 8443 --gcp-port 9090 \
//!     --state .kms/state --ready-file .kms/ready > .kms/log &
//! while [ ! -f .kms/ready ]; do sleep 0.1; done
//! . .kms/ready
//! ```
//!
//! The output (and the ready file, written once every listener is up, atomically) is:
//!
//! | variable | for |
//! |---|---|
//! | `AWS_ENDPOINT_URL_KMS`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_DEFAULT_REGION` | every AWS SDK and the AWS CLI (the endpoint variable is the SDKs' service-specific override) |
//! | `AZURE_KEYVAULT_URL` | the vault URL to give `KeyClient` (any bearer token is accepted; turn challenge resource verification off) |
//! | `HSM_EMULATOR_AZURE_CA` | the CA certificate (PEM) to trust for that URL (Python: `connection_verify`, Rust: `reqwest::Certificate`) |
//! | `NODE_EXTRA_CA_CERTS` | the same CA, which Node.js adds to its trusted roots |
//! | `HSM_EMULATOR_GCP_URL` | the Cloud KMS REST endpoint (Python: `ClientOptions(api_endpoint=…)` with `transport="rest"`; Node.js: `apiEndpoint`/`port`/`protocol: "http"` with `fallback: true`) |
//! | `CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS` | the same endpoint for `gcloud kms` |
//!
//! followed by the line `# hsm-emulator all: ready`. Ctrl-C or SIGTERM stops all three after
//! the requests in flight.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::server::Running;
use crate::state::StateArgs;

/// Command-line options of `hsm-emulator all`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Port of the AWS KMS emulator on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub aws_port: u16,
    /// Port of the Azure Key Vault emulator (HTTPS) on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub azure_port: u16,
    /// Port of the Cloud KMS emulator on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub gcp_port: u16,
    /// Write the Azure emulator's CA certificate (PEM) here (default: `PATH.azure-ca.pem` next
    /// to `--state`, else `hsm-emulator-azure-ca-<pid>.pem` in the temporary directory).
    #[arg(long, value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
    /// Emulate an Azure Managed HSM instead of a vault.
    #[arg(long)]
    pub managed_hsm: bool,
    /// Write the environment (the same `export` lines as stdout) to this file, atomically,
    /// once every listener is up: scripts wait for it to exist, then source it.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// Persistent state for all three modes (one file, one section per mode).
    #[command(flatten)]
    pub state: StateArgs,
    /// Fault injection and a server-side quota for each of the three (`--faults SPEC`,
    /// `--quota RATE`: each emulator gets its own quota).
    #[command(flatten)]
    pub faults: crate::faults::FaultArgs,
}

/// The three emulators, running.
#[derive(Debug)]
pub struct All {
    /// AWS KMS.
    pub aws: Running,
    /// Azure Key Vault.
    pub azure: Running,
    /// Google Cloud KMS.
    pub gcp: Running,
    /// Where the Azure CA certificate was written.
    pub ca: PathBuf,
}

fn with_mode(mode: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{mode}: {e}"))
}

/// Starts the three emulators on the current tokio runtime, sharing one state file.
///
/// # Errors
/// When the state cannot be opened (held by another emulator, wrong key, corrupt), a port
/// cannot be bound, or the CA cannot be written; the message names the mode.
pub async fn start(args: Args) -> io::Result<All> {
    let state = args.state.open().map_err(|e| with_mode("all", e))?;
    let ca = match (&args.ca_out, &args.state.state) {
        (Some(p), _) => p.clone(),
        (None, Some(state)) => {
            let mut s = state.as_os_str().to_owned();
            s.push(".azure-ca.pem");
            PathBuf::from(s)
        }
        (None, None) => {
            std::env::temp_dir().join(format!("hsm-emulator-azure-ca-{}.pem", std::process::id()))
        }
    };
    let aws_args =
        crate::aws::Args { port: args.aws_port, faults: args.faults.clone(), ..crate::aws::Args::default() };
    let aws = crate::aws::start_with_state(aws_args, state.clone()).await.map_err(|e| with_mode("aws", e))?;
    let azure_args = crate::azure::Args {
        port: args.azure_port,
        ca_out: Some(ca.clone()),
        managed_hsm: args.managed_hsm,
        faults: args.faults.clone(),
        ..crate::azure::Args::default()
    };
    let (azure, _) =
        crate::azure::start_with_state(azure_args, state.clone()).await.map_err(|e| with_mode("azure", e))?;
    let faults = args.faults.clone();
    let gcp = crate::gcp::start_with_state_wrapped(crate::gcp::Args { port: args.gcp_port }, state, |h| {
        faults.wrap(crate::faults::Vendor::Gcp, h)
    })
    .await
    .map_err(|e| with_mode("gcp", e))?;
    Ok(All { aws, azure, gcp, ca })
}

/// `'value'` for a POSIX shell.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

impl All {
    /// The `export NAME='value'` lines (see the module docs), one per line.
    pub fn env(&self) -> String {
        let ca = self.ca.display().to_string();
        let gcp = self.gcp.url();
        let vars = [
            ("AWS_ENDPOINT_URL_KMS", self.aws.url()),
            ("AWS_ACCESS_KEY_ID", crate::aws::DEFAULT_ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", crate::aws::DEFAULT_SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", crate::aws::DEFAULT_REGION.to_owned()),
            ("AWS_DEFAULT_REGION", crate::aws::DEFAULT_REGION.to_owned()),
            ("AZURE_KEYVAULT_URL", self.azure.url()),
            ("HSM_EMULATOR_AZURE_CA", ca.clone()),
            ("NODE_EXTRA_CA_CERTS", ca),
            ("HSM_EMULATOR_GCP_URL", gcp.clone()),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS", format!("{gcp}/")),
        ];
        vars.iter().map(|(k, v)| format!("export {k}={}\n", quote(v))).collect()
    }

    /// The three servers, to wait on and shut down.
    pub fn into_servers(self) -> Vec<Running> {
        vec![self.aws, self.azure, self.gcp]
    }
}

/// Writes `env` to `path` atomically (a temporary file renamed into place), so a script
/// polling for the file never reads half of it.
///
/// # Errors
/// When the file cannot be written.
pub fn write_ready_file(path: &Path, env: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(env.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write the ready file {}: {e}", path.display())))
}
