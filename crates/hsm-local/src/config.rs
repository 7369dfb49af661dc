//! [`LocalConfig`]: the local provider's URL forms (`memory:`, `local:`, `file:`) and its
//! `[local]` table.

use std::fmt;
use std::path::{Path, PathBuf};

use hsm_core::settings::Section;
use hsm_core::{Error, Result, Zeroizing};

use crate::{LocalProvider, PROVIDER};

/// The environment variable holding the keystore passphrase, read when a configuration
/// names none.
pub const PASSPHRASE_ENV: &str = "HSM_PASSPHRASE";

/// Which local store to open: in memory, or a keystore file with an optional passphrase.
///
/// | URL                              | store                                                |
/// |----------------------------------|------------------------------------------------------|
/// | `memory:` (or `mem:`)            | in memory; keys vanish with the provider             |
/// | `local:///abs/path/to/keystore`  | encrypted keystore file (absolute path)              |
/// | `local:relative/path`, `file:…`  | the same, relative to the working directory          |
///
/// Paths are percent-decoded (`%20` for a space). The passphrase never appears in a URL: it
/// comes from [`with_passphrase`](Self::with_passphrase) or, in a TOML table, from the
/// variable `passphrase_env` names (`HSM_PASSPHRASE` by default). It is zeroized on drop
/// and never shown by `Debug`.
///
/// ```
/// use hsm_local::LocalConfig;
/// let cfg = LocalConfig::from_url("local:///var/lib/app/keystore")?.with_passphrase("hunter2");
/// assert_eq!(cfg.path(), Some(std::path::Path::new("/var/lib/app/keystore")));
/// assert!(!format!("{cfg:?}").contains("hunter2"));
/// assert!(LocalConfig::from_url("memory:")?.is_memory());
/// # Ok::<(), hsm_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LocalConfig {
    path: Option<PathBuf>,
    passphrase: Option<Zeroizing<String>>,
}

impl fmt::Debug for LocalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LocalConfig");
        match &self.path {
            None => d.field("store", &"memory"),
            Some(p) => d.field("path", p),
        };
        d.field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>")).finish()
    }
}

fn err(message: String) -> Error {
    Error::config(PROVIDER, message)
}

impl LocalConfig {
    /// The in-memory store.
    pub fn memory() -> Self {
        LocalConfig { path: None, passphrase: None }
    }

    /// A keystore file at `path`, created on first open, encrypted under a random master key
    /// in `<path>.key` unless a passphrase is set.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        LocalConfig { path: Some(path.into()), passphrase: None }
    }

    /// Encrypts the keystore under a key derived (Argon2id) from `passphrase`; ignored by
    /// the in-memory store.
    #[must_use]
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(Zeroizing::new(passphrase.into()));
        self
    }

    /// The keystore path; `None` for the in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// True for the in-memory store.
    pub fn is_memory(&self) -> bool {
        self.path.is_none()
    }

    /// True when a passphrase is set (it is never shown).
    pub fn has_passphrase(&self) -> bool {
        self.passphrase.is_some()
    }

    /// Takes the passphrase from variable `var` read through `vars`: unset leaves the
    /// configuration as it is (or is an error when `required`), empty is a mistake.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when it is empty, not UTF-8, or required and unset.
    pub fn passphrase_from(
        mut self,
        vars: &dyn Fn(&str) -> Result<Option<String>>,
        var: &str,
        required: bool,
    ) -> Result<Self> {
        match vars(var)? {
            None if required => Err(err(format!(
                "local.passphrase_env names {var}, but {var} is not set; set it to the keystore \
                 passphrase, or remove passphrase_env to use the master-key file"
            ))),
            None => Ok(self),
            Some(v) if v.is_empty() => Err(err(format!(
                "{var} is set but empty; set it to the keystore passphrase, or unset it to use the \
                 master-key file"
            ))),
            Some(v) => {
                self.passphrase = Some(Zeroizing::new(v));
                Ok(self)
            }
        }
    }

    /// Parses `memory:`, `mem:`, `local:…` or `file:…` (see the table on [`LocalConfig`]).
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, `memory:` with a path, a `local:` URL without a
    /// path, with a host, a query or a fragment, a bad `%`-escape or a path that is not UTF-8.
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        let (scheme, rest) = url.split_once(':').unwrap_or((url, ""));
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "memory" | "mem" => {
                if !matches!(rest, "" | "//" | "///") {
                    return Err(err(format!(
                        "provider URL '{url}': memory: takes no path; write just `memory:`"
                    )));
                }
                Ok(Self::memory())
            }
            "local" | "file" => {
                let path = if let Some(after) = rest.strip_prefix("//") {
                    let (host, path) = match after.find('/') {
                        Some(i) => after.split_at(i),
                        None => (after, ""),
                    };
                    if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                        return Err(err(format!(
                            "provider URL '{url}' names host '{host}', but {scheme}: URLs take a \
                             path: write {scheme}:///abs/path (three slashes) or {scheme}:relative/path"
                        )));
                    }
                    path
                } else {
                    rest
                };
                if path.contains(['?', '#']) {
                    return Err(err(format!(
                        "provider URL '{url}' has a query or fragment, which local URLs do not take; \
                         write '?' as %3F and '#' as %23 in paths"
                    )));
                }
                let path = percent_decode(url, path)?;
                if path.is_empty() {
                    return Err(err(format!(
                        "provider URL '{url}' has no keystore path; write \
                         {scheme}:///abs/path/to/keystore or {scheme}:relative/path"
                    )));
                }
                Ok(Self::file(path))
            }
            _ => Err(err(format!(
                "'{url}' is not a local URL; write memory:, local:///abs/path/to/keystore or local:relative/path"
            ))),
        }
    }

    /// Reads the `[local]` table: `path` (relative to the file's directory) and
    /// `passphrase_env`, the variable holding the passphrase. If `passphrase_env` is given,
    /// the variable must be set; if it is left out, `HSM_PASSPHRASE` is used when set, and
    /// otherwise the keystore uses its master-key file.
    ///
    /// ```toml
    /// provider = "local"
    ///
    /// [local]
    /// path = "/var/lib/app/keystore"
    /// passphrase_env = "HSM_PASSPHRASE"
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: a missing table or `path`, an empty
    /// `passphrase_env` or an unset variable it names, an unknown setting.
    pub fn from_section(section: &mut Section<'_>) -> Result<Self> {
        if !section.is_present() {
            return Err(section.missing("path = \"/path/to/keystore\""));
        }
        section.finish(&["path", "passphrase_env"])?;
        let path = section.take_path("path")?.filter(|p| !p.as_os_str().is_empty()).ok_or_else(|| {
            section.error("local.path is missing or empty; set path = \"/path/to/keystore\"")
        })?;
        let passphrase_env = section.take_string("passphrase_env")?;
        let vars = |name: &str| section.var(name);
        let config = match passphrase_env.as_deref() {
            Some("") => {
                return Err(section.error(
                    "local.passphrase_env is empty; name the variable that holds the passphrase, e.g. \
                     passphrase_env = \"HSM_PASSPHRASE\"",
                ));
            }
            Some(var) => Self::file(path).passphrase_from(&vars, var, true),
            None => Self::file(path).passphrase_from(&vars, PASSPHRASE_ENV, false),
        }
        .map_err(|e| section.context(e))?;
        Ok(config)
    }

    /// Opens the store. A keystore file is opened on Tokio's blocking pool inside a runtime
    /// (a passphrase's Argon2id derivation takes a moment), directly outside one.
    ///
    /// # Errors
    /// As [`LocalProvider::open`].
    pub async fn open(&self) -> Result<LocalProvider> {
        let Some(path) = self.path.clone() else { return Ok(LocalProvider::in_memory()) };
        let passphrase = self.passphrase.clone();
        let open = move || LocalProvider::open(path, passphrase);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.spawn_blocking(open).await.map_err(|e| Error::Provider {
                provider: PROVIDER,
                code: "task".into(),
                message: "opening the keystore did not finish".into(),
                source: Some(Box::new(e)),
            })?,
            Err(_) => open(),
        }
    }
}

fn percent_decode(url: &str, s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => {
                    return Err(err(format!(
                        "provider URL '{url}' has a bad %-escape; write '%' itself as %25"
                    )));
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| err(format!("provider URL '{url}' decodes to a path that is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("u", "/a%20b%2Fc").unwrap(), "/a b/c");
        assert!(percent_decode("u", "/a%2").is_err());
        assert!(percent_decode("u", "/a%g0").is_err());
    }
}
