//! Throwaway SoftHSM2 tokens for tests: a token directory on tmpfs, its own configuration
//! file, tokens initialized with `softhsm2-util`. Nothing touches the system's SoftHSM
//! configuration.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, when the module is initialized: point it at
//! [`SoftHsm::conf`] (with `std::env::set_var` while the process is still single-threaded,
//! or on a child process) and create every token before the first
//! [`Pkcs11Provider::connect`](crate::Pkcs11Provider::connect).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where Debian and Ubuntu's `softhsm2` package installs the module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 token directory with its configuration file, removed on drop.
#[derive(Debug)]
pub struct SoftHsm {
    dir: PathBuf,
}

impl SoftHsm {
    /// Whether `softhsm2-util` and [`MODULE`] are installed.
    pub fn available() -> bool {
        Path::new(MODULE).is_file()
            && Command::new("softhsm2-util").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    /// A new, empty token directory under `/dev/shm` (tmpfs: token writes take
    /// milliseconds instead of a hundred) or the system temporary directory.
    ///
    /// # Errors
    /// I/O errors creating the directory or the configuration file.
    pub fn new() -> io::Result<SoftHsm> {
        let base = Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()).unwrap_or_else(std::env::temp_dir);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = base.join(format!("hsm-softhsm-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(dir.join("tokens"))?;
        let me = SoftHsm { dir };
        std::fs::write(
            me.conf(),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                me.dir.join("tokens").display()
            ),
        )?;
        Ok(me)
    }

    /// The configuration file to put in `SOFTHSM2_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// Initializes a new token labelled `label` with user PIN `pin` (and SO PIN `so_pin`).
    ///
    /// # Errors
    /// When `softhsm2-util` cannot run or fails.
    pub fn init_token(&self, label: &str, so_pin: &str, pin: &str) -> io::Result<()> {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", self.conf())
            .args(["--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin])
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "softhsm2-util --init-token failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl Drop for SoftHsm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
