//! Persistent state (`--state PATH`): every mode's keys, versions, aliases, labels/tags and
//! deletion schedules kept in one encrypted file across restarts.
//!
//! # Files
//!
//! | path | what |
//! |---|---|
//! | `PATH` | the state: `HSMEMU\0\1` ‖ AES-256-GCM (`nonce ‖ ciphertext ‖ tag`, the 8 magic bytes as AAD) of a JSON document with one section per mode (`aws`, `azure`, `gcp`), and `azure-tls` (the Azure mode's CA and server certificate, so clients keep trusting them) |
//! | `PATH.key` (or `--state-key FILE`) | the 32-byte AES key, random, created with mode 0600 on first use; key material is never written unencrypted |
//! | `PATH.lock` | held with an exclusive lock (`flock`) while the emulator runs: a second emulator on the same state fails at start with a clear error |
//!
//! Every change is written at once: the whole document to `PATH.tmp`, fsync, rename over
//! `PATH`, fsync of the directory, so a crash leaves either the old or the new state. The
//! cryptography is hsm-crypto's ([`hsm_crypto::AesGcmKey`]), as in hsm-local; the key file plays the
//! part of hsm-local's key-file keystores. Keep the key file next to the state (or wherever
//! `--state-key` points) and both out of version control: whoever has both has the keys.
//!
//! Without `--state`, state lives in memory and is lost when the emulator stops.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hsm_crypto::AesGcmKey;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// First bytes of a state file (format 1).
const MAGIC: &[u8; 8] = b"HSMEMU\x00\x01";
/// Length of the state encryption key.
const KEY_LEN: usize = 32;

/// Command-line options for persistent state, shared by every mode.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StateArgs {
    /// Keep keys across restarts in this file (encrypted; see the crate docs). Without it,
    /// state lives in memory only.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// The state's key file (32 random bytes, created with mode 0600 when missing; default
    /// PATH.key next to the state).
    #[arg(long, value_name = "FILE", requires = "state")]
    pub state_key: Option<PathBuf>,
}

impl StateArgs {
    /// Opens the state file when `--state` was given.
    ///
    /// # Errors
    /// As [`StateFile::open`].
    pub fn open(&self) -> io::Result<Option<Arc<StateFile>>> {
        match &self.state {
            None => Ok(None),
            Some(path) => StateFile::open(path, self.state_key.as_deref()).map(|s| Some(Arc::new(s))),
        }
    }
}

/// An open, locked state file. Modes read their section at start ([`StateFile::section`]) and
/// write it after every change ([`StateFile::save`]).
pub struct StateFile {
    path: PathBuf,
    key: AesGcmKey,
    sections: Mutex<Map<String, Value>>,
    /// Holds the exclusive lock while open.
    _lock: File,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile").field("path", &self.path).finish_non_exhaustive()
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn err(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reads the key file, or creates it with 32 random bytes (mode 0600) when it does not exist.
fn load_or_create_key(path: &Path) -> io::Result<AesGcmKey> {
    let mut raw = Zeroizing::new(Vec::with_capacity(KEY_LEN));
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut raw)
                .map_err(|e| err(e.kind(), format!("cannot read the state key {}: {e}", path.display())))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            raw.resize(KEY_LEN, 0);
            aws_lc_rs::rand::fill(&mut raw).map_err(|_| io::Error::other("the random generator failed"))?;
            let mut f =
                private_options().write(true).create_new(true).open(path).map_err(|e| {
                    err(e.kind(), format!("cannot create the state key {}: {e}", path.display()))
                })?;
            f.write_all(&raw)
                .and_then(|()| f.sync_all())
                .map_err(|e| err(e.kind(), format!("cannot write the state key {}: {e}", path.display())))?;
        }
        Err(e) => return Err(err(e.kind(), format!("cannot read the state key {}: {e}", path.display()))),
    }
    if raw.len() != KEY_LEN {
        return Err(err(
            io::ErrorKind::InvalidData,
            format!("the state key {} is {} bytes long, not {KEY_LEN}", path.display(), raw.len()),
        ));
    }
    AesGcmKey::new(&raw).map_err(|_| io::Error::other("cannot set up the state key"))
}

impl StateFile {
    /// Locks `path` for this process, loads its key (creating a random one, mode 0600, when
    /// missing) and reads the state when the file exists.
    ///
    /// # Errors
    /// When another emulator holds the state (`WouldBlock`, naming the file), the key or the
    /// state cannot be read or created, or the state does not decrypt with the key or is not a
    /// state file (`InvalidData`; the file is left untouched).
    pub fn open(path: &Path, key_file: Option<&Path>) -> io::Result<StateFile> {
        let lock_path = sibling(path, ".lock");
        let lock =
            private_options().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(
                |e| err(e.kind(), format!("cannot open the state lock {}: {e}", lock_path.display())),
            )?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(err(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "the state {} is in use by another hsm-emulator (lock {} is held); \
                         stop it or use another --state",
                        path.display(),
                        lock_path.display()
                    ),
                ));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(err(e.kind(), format!("cannot lock {}: {e}", lock_path.display())));
            }
        }
        let key_path = key_file.map_or_else(|| sibling(path, ".key"), Path::to_path_buf);
        let key = load_or_create_key(&key_path)?;
        let sections = match fs::read(path) {
            Ok(bytes) => Self::decode(path, &key_path, &key, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(err(e.kind(), format!("cannot read the state {}: {e}", path.display()))),
        };
        Ok(StateFile { path: path.to_path_buf(), key, sections: Mutex::new(sections), _lock: lock })
    }

    fn decode(path: &Path, key_path: &Path, key: &AesGcmKey, bytes: &[u8]) -> io::Result<Map<String, Value>> {
        let Some(sealed) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(err(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not an hsm-emulator state file (bad magic bytes); it was left untouched",
                    path.display()
                ),
            ));
        };
        let plain = key.open(sealed, MAGIC).map_err(|_| {
            err(
                io::ErrorKind::InvalidData,
                format!(
                    "the state {} does not decrypt with the key {} (wrong key file, or a corrupt state); \
                     it was left untouched",
                    path.display(),
                    key_path.display()
                ),
            )
        })?;
        match serde_json::from_slice(&plain) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(err(io::ErrorKind::InvalidData, format!("the state {} is corrupt", path.display()))),
        }
    }

    /// The path of the state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved section of `mode` (`aws`, `azure`, `gcp`), if any.
    pub fn section(&self, mode: &str) -> Option<Value> {
        self.sections.lock().unwrap_or_else(|p| p.into_inner()).get(mode).cloned()
    }

    /// Replaces the section of `mode` and writes the whole state atomically (temporary file,
    /// fsync, rename, fsync of the directory).
    ///
    /// # Errors
    /// When the file cannot be written; the previous state stays on disk.
    pub fn save(&self, mode: &str, section: Value) -> io::Result<()> {
        let mut sections = self.sections.lock().unwrap_or_else(|p| p.into_inner());
        sections.insert(mode.to_owned(), section);
        let plain = Zeroizing::new(serde_json::to_vec(&*sections).map_err(io::Error::other)?);
        let sealed =
            self.key.seal(&plain, MAGIC).map_err(|_| io::Error::other("cannot encrypt the state"))?;
        let tmp = sibling(&self.path, ".tmp");
        let write = || -> io::Result<()> {
            let mut f = private_options().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&sealed)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            #[cfg(unix)]
            File::open(parent_dir(&self.path))?.sync_all()?;
            Ok(())
        };
        write().map_err(|e| err(e.kind(), format!("cannot write the state {}: {e}", self.path.display())))
    }
}

/// Writes a mode's snapshot after each change, logging (never panicking) when it fails.
#[derive(Debug, Clone)]
pub(crate) struct Persist {
    file: Arc<StateFile>,
    mode: &'static str,
}

impl Persist {
    pub(crate) fn new(file: Arc<StateFile>, mode: &'static str) -> Persist {
        Persist { file, mode }
    }

    /// The saved section of this mode.
    pub(crate) fn load(&self) -> Option<Value> {
        self.file.section(self.mode)
    }

    /// Saves the section; a failure is logged and reported as an error string.
    pub(crate) fn save(&self, section: Value) -> Result<(), String> {
        self.file.save(self.mode, section).map_err(|e| {
            tracing::error!(target: "hsm_emulator::state", mode = self.mode, "{e}");
            e.to_string()
        })
    }
}

/// Serde helpers for secret bytes in a snapshot (base64; the whole snapshot is encrypted).
pub(crate) mod secret {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::Value;
    use zeroize::Zeroizing;

    /// Base64 of `b` as a JSON string.
    pub(crate) fn to_json(b: &[u8]) -> Value {
        Value::String(STANDARD.encode(b))
    }

    /// The bytes of a base64 JSON string.
    pub(crate) fn from_json(v: &Value) -> Option<Zeroizing<Vec<u8>>> {
        STANDARD.decode(v.as_str()?).ok().map(Zeroizing::new)
    }
}
