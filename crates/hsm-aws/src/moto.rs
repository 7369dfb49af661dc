//! Starting a local [moto](https://github.com/getmoto/moto) server for tests.
//!
//! `cargo xtask setup` installs moto into a virtualenv and `cargo xtask ci` sets
//! [`MOTO_ENV`] (`HSM_MOTO_SERVER`) to its `moto_server` executable. Tests call
//! [`MotoServer::from_env`]: `None` means moto is not available and the tests must report
//! themselves as ignored, never as passed. Under `cargo xtask ci` ([`REQUIRE_SERVERS_ENV`] set)
//! a missing moto is an error instead, so CI cannot pass by skipping.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::AwsConfig;

/// The environment variable naming the `moto_server` executable.
pub const MOTO_ENV: &str = "HSM_MOTO_SERVER";

/// Why moto tests are skipped when [`MOTO_ENV`] is unset.
pub const MOTO_MISSING: &str = "moto_server not found; set HSM_MOTO_SERVER";

/// Set (by `cargo xtask ci`) when tests must fail, not skip, if a server they need is missing.
pub const REQUIRE_SERVERS_ENV: &str = "HSM_REQUIRE_SERVERS";

/// Whether [`REQUIRE_SERVERS_ENV`] is set to a non-empty value.
pub fn servers_required() -> bool {
    std::env::var_os(REQUIRE_SERVERS_ENV).is_some_and(|v| !v.is_empty())
}

/// A `moto_server` child process on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
}

impl MotoServer {
    /// Starts the server [`MOTO_ENV`] names; `Ok(None)` when the variable is unset or empty.
    ///
    /// # Errors
    /// When the executable cannot be started or does not accept connections within 60 s.
    pub fn from_env() -> io::Result<Option<MotoServer>> {
        match std::env::var_os(MOTO_ENV) {
            Some(path) if !path.is_empty() => Self::start(Path::new(&path)).map(Some),
            _ if servers_required() => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{MOTO_MISSING}, and {REQUIRE_SERVERS_ENV} is set: CI must not skip moto tests"),
            )),
            _ => Ok(None),
        }
    }

    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it accepts connections.
    ///
    /// # Errors
    /// When the executable cannot be started, exits, or is not listening within 60 s.
    pub fn start(executable: &Path) -> io::Result<MotoServer> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let child = Command::new(executable)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", executable.display())))?;
        let mut server = MotoServer { child, port };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(io::Error::other(format!("{} exited with {status}", executable.display())));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} did not listen on port {port} within 60 s",
                    executable.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A configuration for this server: region us-east-1, static test credentials, short timeouts.
    pub fn config(&self) -> AwsConfig {
        AwsConfig::new()
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .static_credentials("testing", "testing")
            .operation_timeout(Duration::from_secs(60))
    }

    /// The executable [`MOTO_ENV`] names, if set.
    pub fn executable() -> Option<PathBuf> {
        std::env::var_os(MOTO_ENV).filter(|p| !p.is_empty()).map(PathBuf::from)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
