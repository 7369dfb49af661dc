//! The encrypted keystore file: format, key derivation, locking and atomic writes.
//!
//! See the crate documentation for the byte layout. Everything here is blocking I/O; the
//! provider calls it from `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use hsm_core::{Error, Result};
use zeroize::Zeroizing;

use crate::PROVIDER;
use crate::state::State;

/// First bytes of every keystore file.
pub(crate) const MAGIC: &[u8; 8] = b"HSMLKS\x00\x01";
/// The format this build writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Header length; the whole header is the AES-GCM AAD.
pub(crate) const HEADER_LEN: usize = 68;
const TAG_LEN: usize = 16;
const SALT_LEN: usize = 16;
const KCV_LEN: usize = 16;
const NONCE_LEN: usize = 12;

const SOURCE_PASSPHRASE: u8 = 1;
const SOURCE_KEY_FILE: u8 = 2;
const KDF_NONE: u8 = 0;
const KDF_ARGON2ID: u8 = 1;

/// Argon2id parameters for new keystores: 19 MiB, 2 passes, 1 lane (the OWASP
/// recommendation, and argon2's defaults). Existing keystores keep the ones in their header.
pub(crate) const ARGON2_M_KIB: u32 = 19 * 1024;
pub(crate) const ARGON2_T: u32 = 2;
pub(crate) const ARGON2_P: u32 = 1;
/// Refuse headers asking for more than this (a crafted file must not exhaust memory or time).
const ARGON2_MAX_M_KIB: u32 = 4 * 1024 * 1024;
const ARGON2_MAX_T: u32 = 64;
const ARGON2_MAX_P: u32 = 64;

/// Label of the key-check value stored in the header.
const KCV_LABEL: &[u8] = b"hsm-local keystore key check v1";

/// Where the keystore's 256-bit key comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Passphrase { m_kib: u32, t: u32, p: u32 },
    KeyFile,
}

/// The parsed plaintext header.
#[derive(Clone, Copy)]
struct Header {
    source: Source,
    salt: [u8; SALT_LEN],
    kcv: [u8; KCV_LEN],
}

impl Header {
    fn encode(&self, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..10].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        let (src, kdf, m, t, p) = match self.source {
            Source::Passphrase { m_kib, t, p } => (SOURCE_PASSPHRASE, KDF_ARGON2ID, m_kib, t, p),
            Source::KeyFile => (SOURCE_KEY_FILE, KDF_NONE, 0, 0, 0),
        };
        h[10] = src;
        h[11] = kdf;
        h[12..16].copy_from_slice(&m.to_be_bytes());
        h[16..20].copy_from_slice(&t.to_be_bytes());
        h[20..24].copy_from_slice(&p.to_be_bytes());
        h[24..40].copy_from_slice(&self.salt);
        h[40..56].copy_from_slice(&self.kcv);
        h[56..68].copy_from_slice(nonce);
        h
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Header> {
        let corrupt = |why: &str| {
            Error::config(
                PROVIDER,
                format!(
                    "keystore '{}' is corrupt or truncated ({why}); the file was left untouched; \
                     restore it from a backup",
                    path.display()
                ),
            )
        };
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            if bytes.is_empty() {
                return Err(corrupt("the file is empty"));
            }
            return Err(Error::config(
                PROVIDER,
                format!(
                    "'{}' is not an hsm-local keystore (bad magic bytes); the file was left untouched; \
                     point to a keystore file or to a path that does not exist yet",
                    path.display()
                ),
            ));
        }
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(corrupt(&format!("{} bytes, shorter than any keystore", bytes.len())));
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(Error::config(
                PROVIDER,
                format!(
                    "keystore '{}' uses format version {version}; this build reads version {FORMAT_VERSION}; \
                     upgrade hsm",
                    path.display()
                ),
            ));
        }
        let be = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let source = match (bytes[10], bytes[11]) {
            (SOURCE_PASSPHRASE, KDF_ARGON2ID) => {
                let (m_kib, t, p) = (be(12), be(16), be(20));
                let ok = (8 * p..=ARGON2_MAX_M_KIB).contains(&m_kib)
                    && (1..=ARGON2_MAX_T).contains(&t)
                    && (1..=ARGON2_MAX_P).contains(&p);
                if !ok {
                    return Err(corrupt(&format!(
                        "Argon2id parameters m={m_kib} KiB, t={t}, p={p} out of range"
                    )));
                }
                Source::Passphrase { m_kib, t, p }
            }
            (SOURCE_KEY_FILE, KDF_NONE) => Source::KeyFile,
            (s, k) => return Err(corrupt(&format!("unknown key source {s} / KDF {k}"))),
        };
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[24..40]);
        let mut kcv = [0u8; KCV_LEN];
        kcv.copy_from_slice(&bytes[40..56]);
        Ok(Header { source, salt, kcv })
    }
}

/// Identity of the keystore file as last read or written: any replacement by another process
/// (a new inode from its rename, a new mtime, a new size) changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    ino: u64,
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            ino: m.ino(),
            #[cfg(unix)]
            dev: m.dev(),
            #[cfg(unix)]
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// An open keystore: its paths, its derived key and its lock file.
pub(crate) struct Keystore {
    path: PathBuf,
    key_path: PathBuf,
    lock: File,
    header: Header,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.header.source {
            Source::Passphrase { .. } => "passphrase",
            Source::KeyFile => "key-file",
        };
        f.debug_struct("Keystore").field("path", &self.path).field("mode", &mode).finish_non_exhaustive()
    }
}

/// Held while reading-modifying-writing; unlocks on drop.
pub(crate) struct LockGuard<'a>(&'a File);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> Error {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied => "; check the file's owner and permissions",
        io::ErrorKind::NotFound => "; check that the directory exists",
        _ => "",
    };
    Error::config(PROVIDER, format!("cannot {what} '{}': {e}{hint}", path.display()))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn kcv(key: &[u8; 32]) -> [u8; KCV_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), KCV_LABEL);
    let mut out = [0u8; KCV_LEN];
    out.copy_from_slice(&tag.as_ref()[..KCV_LEN]);
    out
}

fn argon2(passphrase: &[u8], salt: &[u8], m_kib: u32, t: u32, p: u32) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(m_kib, t, p, Some(32))
        .map_err(|e| Error::config(PROVIDER, format!("invalid Argon2id parameters: {e}")))?;
    let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    kdf.hash_password_into(passphrase, salt, &mut *out)
        .map_err(|e| Error::config(PROVIDER, format!("Argon2id key derivation failed: {e}")))?;
    Ok(out)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| Error::config(PROVIDER, "the system random generator failed"))?;
    Ok(b)
}

#[cfg(unix)]
fn private_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

#[cfg(not(unix))]
fn private_options() -> OpenOptions {
    OpenOptions::new()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary file of an interrupted write is removed by the next write once its process is
/// gone or, where liveness cannot be told, once it is this old. Writes hold the lock, so a
/// temporary file met under the lock belongs to no write in progress; the age and liveness
/// rules only guard against a writer that does not honour the lock (a filesystem without
/// advisory locks).
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// The name of `path`'s temporary files: `.<name>.<pid>.<16 hex digits>.tmp`.
fn temp_name(name: &str, pid: u32, suffix: u64) -> String {
    format!(".{name}.{pid}.{suffix:016x}.tmp")
}

/// The pid in `file`'s name if it is one of `name`'s temporary files.
fn temp_pid(name: &str, file: &str) -> Option<u32> {
    let middle = file.strip_prefix('.')?.strip_prefix(name)?.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (pid, suffix) = middle.split_once('.')?;
    let hex = suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if hex && digits { pid.parse().ok() } else { None }
}

/// Whether process `pid` is known to be gone. `false` where that cannot be told.
fn process_gone(pid: u32) -> bool {
    if pid == std::process::id() {
        // Our own writes hold the lock, and the caller holds it now: none is in progress.
        return true;
    }
    cfg!(target_os = "linux")
        && Path::new("/proc/self").exists()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the temporary files that interrupted writes (a crash, `kill -9`) left beside
/// `path`. Call with the lock held. Best effort: a failure is logged, never returned, since
/// it does not affect the keystore. Returns how many were removed.
pub(crate) fn remove_stale_temps(path: &Path) -> usize {
    let dir = parent_dir(path);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return 0 };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot list the keystore directory");
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| temp_pid(name, f)) else { continue };
        let old = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_TEMP_AGE);
        if !(old || process_gone(pid)) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove a stale keystore temporary file");
            }
        }
    }
    if removed > 0 {
        tracing::debug!(removed, path = %path.display(), "removed temporary files of interrupted keystore writes");
    }
    removed
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (mode 0600),
/// fsync, rename over `path`, fsync of the directory. Call with the lock held; temporary
/// files of interrupted earlier writes are removed first.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<fs::Metadata> {
    remove_stale_temps(path);
    let dir = parent_dir(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = u64::from_be_bytes(random::<8>()?);
    let tmp = dir.join(temp_name(&name, std::process::id(), suffix));
    let result = (|| -> io::Result<fs::Metadata> {
        let mut f = private_options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fsync_dir(dir)?;
        // Stat after the rename (which changes the inode's ctime); the caller holds the lock,
        // so no other writer can have replaced the file in between.
        fs::metadata(path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write the keystore", path, &e)
    })
}

impl Keystore {
    /// Opens the keystore at `path`, creating it (and the master key file, without a
    /// passphrase) if it does not exist. Returns the keystore, its contents and its stamp.
    pub(crate) fn open(path: &Path, passphrase: Option<&str>) -> Result<(Keystore, State, Stamp)> {
        if passphrase.is_some_and(str::is_empty) {
            return Err(Error::config(
                PROVIDER,
                "the keystore passphrase is empty; give a non-empty passphrase or none at all \
                 (then a random master key is kept in '<keystore>.key')",
            ));
        }
        if path.is_dir() {
            return Err(Error::config(
                PROVIDER,
                format!("keystore path '{}' is a directory; give a file path", path.display()),
            ));
        }
        let dir = parent_dir(path);
        if !dir.exists() {
            create_private_dir(dir).map_err(|e| io_err("create the keystore directory", dir, &e))?;
        }
        let lock_path = sibling(path, ".lock");
        let lock = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err("open the keystore lock file", &lock_path, &e))?;
        let key_path = sibling(path, ".key");
        let mut ks = Keystore {
            path: path.to_path_buf(),
            key_path,
            lock,
            header: Header { source: Source::KeyFile, salt: [0; SALT_LEN], kcv: [0; KCV_LEN] },
            key: Zeroizing::new([0; 32]),
        };
        let guard = ks.lock()?;
        let result = match File::open(path) {
            Ok(f) => ks.open_existing(f, passphrase),
            Err(e) if e.kind() == io::ErrorKind::NotFound => ks.create(passphrase),
            Err(e) => Err(io_err("read the keystore", path, &e)),
        };
        drop(guard);
        let (header, key, state, stamp) = result?;
        ks.header = header;
        ks.key = key;
        Ok((ks, state, stamp))
    }

    fn open_existing(
        &self,
        mut f: File,
        passphrase: Option<&str>,
    ) -> Result<(Header, Zeroizing<[u8; 32]>, State, Stamp)> {
        let meta = f.metadata().map_err(|e| io_err("read the keystore", &self.path, &e))?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
        f.read_to_end(&mut bytes).map_err(|e| io_err("read the keystore", &self.path, &e))?;
        let header = Header::decode(&self.path, &bytes)?;
        let key = match (header.source, passphrase) {
            (Source::Passphrase { m_kib, t, p }, Some(pw)) => {
                argon2(pw.as_bytes(), &header.salt, m_kib, t, p)?
            }
            (Source::Passphrase { .. }, None) => {
                return Err(Error::Unauthenticated {
                    provider: PROVIDER,
                    message: format!(
                        "keystore '{}' is protected by a passphrase and none was given; supply the passphrase",
                        self.path.display()
                    ),
                });
            }
            (Source::KeyFile, Some(_)) => {
                return Err(Error::config(
                    PROVIDER,
                    format!(
                        "keystore '{}' was created without a passphrase (its master key is in '{}'); \
                         open it without a passphrase",
                        self.path.display(),
                        self.key_path.display()
                    ),
                ));
            }
            (Source::KeyFile, None) => self.read_key_file()?,
        };
        if verify_slices_are_equal(&kcv(&key), &header.kcv).is_err() {
            let message = match header.source {
                Source::Passphrase { .. } => format!(
                    "wrong passphrase for keystore '{}': it does not match the passphrase the keystore was created with",
                    self.path.display()
                ),
                Source::KeyFile => format!(
                    "the master key in '{}' does not belong to keystore '{}'; restore the matching key file",
                    self.key_path.display(),
                    self.path.display()
                ),
            };
            return Err(Error::Unauthenticated { provider: PROVIDER, message });
        }
        let state = decrypt_body(&self.path, &key, &mut bytes)?;
        Ok((header, key, state, Stamp::of(&meta)))
    }

    fn read_key_file(&self) -> Result<Zeroizing<[u8; 32]>> {
        let missing = |e: &io::Error| {
            Error::config(
                PROVIDER,
                format!(
                    "cannot read the master key file '{}' of keystore '{}' ({e}); without it the keystore \
                     cannot be decrypted; restore it from a backup",
                    self.key_path.display(),
                    self.path.display()
                ),
            )
        };
        let mut f = File::open(&self.key_path).map_err(|e| missing(&e))?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(33));
        f.read_to_end(&mut bytes).map_err(|e| missing(&e))?;
        if bytes.len() != 32 {
            return Err(Error::config(
                PROVIDER,
                format!(
                    "master key file '{}' is {} bytes long; it must be exactly 32; restore it from a backup",
                    self.key_path.display(),
                    bytes.len()
                ),
            ));
        }
        #[cfg(unix)]
        if let Ok(m) = f.metadata() {
            use std::os::unix::fs::PermissionsExt as _;
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %self.key_path.display(), "master key file is readable by other users; chmod 600 it");
            }
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes);
        Ok(key)
    }

    fn create(&self, passphrase: Option<&str>) -> Result<(Header, Zeroizing<[u8; 32]>, State, Stamp)> {
        let (source, salt, key) = match passphrase {
            Some(pw) => {
                let salt = random::<SALT_LEN>()?;
                let key = argon2(pw.as_bytes(), &salt, ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
                (Source::Passphrase { m_kib: ARGON2_M_KIB, t: ARGON2_T, p: ARGON2_P }, salt, key)
            }
            None => {
                let key = match self.read_key_file() {
                    Ok(k) => k,
                    Err(_) if !self.key_path.exists() => self.create_key_file()?,
                    Err(e) => return Err(e),
                };
                (Source::KeyFile, [0u8; SALT_LEN], key)
            }
        };
        let header = Header { source, salt, kcv: kcv(&key) };
        let state = State::default();
        let stamp = write(&self.path, &header, &key, &state)?;
        tracing::debug!(path = %self.path.display(), "created keystore");
        Ok((header, key, state, stamp))
    }

    fn create_key_file(&self) -> Result<Zeroizing<[u8; 32]>> {
        let key = Zeroizing::new(random::<32>()?);
        let result = (|| -> io::Result<()> {
            let mut f = private_options().write(true).create_new(true).open(&self.key_path)?;
            f.write_all(&*key)?;
            f.sync_all()?;
            fsync_dir(parent_dir(&self.key_path))
        })();
        result.map_err(|e| io_err("create the master key file", &self.key_path, &e))?;
        Ok(key)
    }

    /// Takes the exclusive advisory lock (blocking until other processes release it).
    pub(crate) fn lock(&self) -> Result<LockGuard<'_>> {
        self.lock.lock().map_err(|e| io_err("lock the keystore", &sibling(&self.path, ".lock"), &e))?;
        Ok(LockGuard(&self.lock))
    }

    /// The stamp of the file on disk now.
    pub(crate) fn stamp(&self) -> Result<Stamp> {
        fs::metadata(&self.path)
            .map(|m| Stamp::of(&m))
            .map_err(|e| io_err("read the keystore", &self.path, &e))
    }

    /// Reads and decrypts the file as it is now.
    pub(crate) fn load(&self) -> Result<(State, Stamp)> {
        let mut f = File::open(&self.path).map_err(|e| io_err("read the keystore", &self.path, &e))?;
        let meta = f.metadata().map_err(|e| io_err("read the keystore", &self.path, &e))?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
        f.read_to_end(&mut bytes).map_err(|e| io_err("read the keystore", &self.path, &e))?;
        let header = Header::decode(&self.path, &bytes)?;
        if header.source != self.header.source
            || header.salt != self.header.salt
            || verify_slices_are_equal(&header.kcv, &self.header.kcv).is_err()
        {
            return Err(Error::Unauthenticated {
                provider: PROVIDER,
                message: format!(
                    "keystore '{}' was replaced by one with different credentials; open it again",
                    self.path.display()
                ),
            });
        }
        let state = decrypt_body(&self.path, &self.key, &mut bytes)?;
        Ok((state, Stamp::of(&meta)))
    }

    /// Encrypts and atomically writes `state`. Call with the lock held.
    pub(crate) fn store(&self, state: &State) -> Result<Stamp> {
        write(&self.path, &self.header, &self.key, state)
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Counts serialized bytes so the plaintext buffer can be allocated once, at its exact size.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write(path: &Path, header: &Header, key: &[u8; 32], state: &State) -> Result<Stamp> {
    let ser_err = |e: serde_json::Error| {
        Error::config(PROVIDER, format!("cannot serialize the keystore: {}", e.classify_name()))
    };
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, state).map_err(ser_err)?;
    let nonce = random::<NONCE_LEN>()?;
    let head = header.encode(&nonce);
    // One exact allocation: the plaintext never gets copied by a reallocation.
    let mut buf = Zeroizing::new(Vec::with_capacity(HEADER_LEN + counter.0 + TAG_LEN));
    buf.extend_from_slice(&head);
    serde_json::to_writer(&mut *buf, state).map_err(ser_err)?;
    let cipher = gcm(key)?;
    let tag = cipher
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&head),
            &mut buf[HEADER_LEN..],
        )
        .map_err(|_| Error::config(PROVIDER, "encrypting the keystore failed"))?;
    buf.extend_from_slice(tag.as_ref());
    let meta = write_atomic(path, &buf)?;
    Ok(Stamp::of(&meta))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

fn gcm(key: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| Error::config(PROVIDER, "cannot set up the keystore cipher"))
}

fn decrypt_body(path: &Path, key: &[u8; 32], bytes: &mut Zeroizing<Vec<u8>>) -> Result<State> {
    let corrupt = |why: String| {
        Error::config(
            PROVIDER,
            format!(
                "keystore '{}' is corrupt or truncated ({why}); the file was left untouched; restore it from a backup",
                path.display()
            ),
        )
    };
    let mut aad = [0u8; HEADER_LEN];
    aad.copy_from_slice(&bytes[..HEADER_LEN]);
    let nonce = Nonce::try_assume_unique_for_key(&aad[56..68]).map_err(|_| corrupt("bad nonce".into()))?;
    let plaintext = gcm(key)?
        .open_in_place(nonce, Aad::from(&aad), &mut bytes[HEADER_LEN..])
        .map_err(|_| corrupt("its contents fail authentication".into()))?;
    // Errors name only the category and position, never the (secret) text.
    serde_json::from_slice::<State>(plaintext).map_err(|e| {
        corrupt(format!(
            "decrypted contents are not a key store: {} at line {} column {}",
            e.classify_name(),
            e.line(),
            e.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h =
            Header { source: Source::Passphrase { m_kib: 1024, t: 3, p: 2 }, salt: [9; 16], kcv: [7; 16] };
        let mut bytes = h.encode(&[5; 12]).to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let d = Header::decode(Path::new("x"), &bytes).unwrap();
        assert!(d.source == h.source && d.salt == h.salt && d.kcv == h.kcv);
        assert_eq!(&bytes[..8], MAGIC);
    }

    #[test]
    fn only_this_keystores_temporary_names_are_recognised() {
        let name = "ks.hsm";
        assert_eq!(temp_pid(name, &temp_name(name, 4242, 0xdead_beef)), Some(4242));
        assert_eq!(temp_pid(name, ".ks.hsm.17.00000000000000ff.tmp"), Some(17));
        for other in [
            "ks.hsm",
            ".ks.hsm.lock",
            ".ks.hsm.17.00000000000000ff",
            ".ks.hsm.17.ff.tmp",
            ".ks.hsm.x7.00000000000000ff.tmp",
            ".ks.hsm..00000000000000ff.tmp",
            ".ks.hsm.1.17.00000000000000ff.tmp",
            ".ks.hsm.17.00000000000000fg.tmp",
            ".other.17.00000000000000ff.tmp",
            &temp_name("ks.hsm.1", 17, 1),
            &temp_name("ks", 17, 1),
        ] {
            assert_eq!(temp_pid(name, other), None, "{other}");
        }
    }

    #[test]
    fn absurd_kdf_parameters_are_refused_before_deriving() {
        let h = Header {
            source: Source::Passphrase { m_kib: u32::MAX, t: 2, p: 1 },
            salt: [0; 16],
            kcv: [0; 16],
        };
        let mut bytes = h.encode(&[0; 12]).to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let err = Header::decode(Path::new("x"), &bytes).err().unwrap().to_string();
        assert!(err.contains("out of range"), "{err}");
    }
}
