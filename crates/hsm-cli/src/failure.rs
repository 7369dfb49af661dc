//! What can go wrong in a command, the one line it prints, and the exit code it maps to.

use std::io;
use std::path::Path;

use hsm::{Error, UnusableReason};

/// Exit codes (also documented in the crate docs and `hsm --help`).
pub(crate) mod code {
    /// Success; for `verify` and `mac-verify`, the signature or tag is valid.
    pub(crate) const OK: u8 = 0;
    /// `verify` / `mac-verify`: the signature or tag does not match.
    pub(crate) const INVALID: u8 = 1;
    /// A usage error (unknown flag, bad spec/usage/algorithm name), as clap reports it.
    pub(crate) const USAGE: u8 = 2;
    /// The key (or key version) does not exist.
    pub(crate) const NOT_FOUND: u8 = 3;
    /// The request was refused: bad input, algorithm that does not fit the key, disabled
    /// key, name taken, decryption failed, unsupported operation.
    pub(crate) const REFUSED: u8 = 4;
    /// Configuration or authentication: bad provider URL or config file, wrong passphrase,
    /// unreadable or corrupt keystore, permission denied.
    pub(crate) const CONFIG: u8 = 5;
    /// Reading the input or writing the output failed.
    pub(crate) const IO: u8 = 6;
    /// The provider failed or is unavailable; retrying later may help.
    pub(crate) const SERVICE: u8 = 7;
}

/// A failed command.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error from the provider or the hsm library.
    Hsm(Error),
    /// A local file or stream could not be read or written.
    Io { action: String, source: io::Error },
    /// The input given to the command is wrong (message says how to fix it).
    Input(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Hsm(e)
    }
}

impl Failure {
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        Failure::Io { action: format!("cannot read {}", shown(path, "standard input")), source }
    }

    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        Failure::Io { action: format!("cannot write {}", shown(path, "standard output")), source }
    }

    /// True for a reader of our stdout that went away (`hsm key list | head -1`).
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, Failure::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Io { .. } => code::IO,
            Failure::Input(_) => code::REFUSED,
            Failure::Hsm(e) => match e {
                Error::NotFound { .. } => code::NOT_FOUND,
                Error::AlreadyExists { .. }
                | Error::Unsupported { .. }
                | Error::InvalidInput { .. }
                | Error::KeyUnusable { .. }
                | Error::DecryptionFailed { .. } => code::REFUSED,
                Error::Config { .. } | Error::Unauthenticated { .. } | Error::PermissionDenied { .. } => {
                    code::CONFIG
                }
                _ => code::SERVICE,
            },
        }
    }

    /// The single line printed after `error: `. Built from metadata only: never key
    /// material, plaintext or passphrases.
    pub(crate) fn message(&self) -> String {
        let text = match self {
            Failure::Io { action, source } => format!("{action}: {source}"),
            Failure::Input(m) => m.clone(),
            Failure::Hsm(e) => {
                let hint = match e {
                    Error::NotFound { .. } => " (see `hsm key list` for the keys that exist)",
                    Error::DecryptionFailed { .. } => {
                        " (wrong key or --aad, or the data was altered or truncated)"
                    }
                    Error::KeyUnusable { reason: UnusableReason::PendingDeletion, .. } => {
                        " (`hsm key cancel-delete NAME` cancels it)"
                    }
                    Error::Unauthenticated { provider: "local", .. } => {
                        " (the keystore passphrase comes from HSM_PASSPHRASE)"
                    }
                    _ => "",
                };
                let source = match e {
                    Error::Provider { source: Some(s), .. } => format!(": {s}"),
                    _ => String::new(),
                };
                format!("{e}{source}{hint}")
            }
        };
        // One line, whatever a provider put in its message.
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

fn shown(path: &Path, stdio: &str) -> String {
    if path.as_os_str() == "-" { stdio.to_owned() } else { format!("'{}'", path.display()) }
}
