//! Reading inputs and writing outputs: `-` is stdin/stdout, files are written atomically.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use base64::Engine as _;
use hsm::Zeroizing;

use crate::failure::Failure;

pub(crate) fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads all of `path` (stdin for `-`) into a buffer that is zeroized on drop: inputs are
/// plaintexts, messages and key material.
pub(crate) fn read_all(path: &Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut buf = Zeroizing::new(Vec::new());
    if is_stdio(path) {
        io::stdin().lock().read_to_end(&mut buf).map_err(|e| Failure::read(path, e))?;
    } else {
        let mut file = fs::File::open(path).map_err(|e| Failure::read(path, e))?;
        // Size the buffer up front so it is not reallocated (leaving copies) while reading.
        if let Ok(meta) = file.metadata() {
            buf.reserve(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
        }
        file.read_to_end(&mut buf).map_err(|e| Failure::read(path, e))?;
    }
    Ok(buf)
}

/// Reads an artifact hsm made (ciphertext, signature, wrapped key, MAC tag), decoding
/// base64 when `base64` is set. `what` names it in errors.
pub(crate) fn read_artifact(path: &Path, base64: bool, what: &str) -> Result<Vec<u8>, Failure> {
    let raw = read_all(path)?;
    if !base64 {
        return Ok(raw.to_vec());
    }
    let text: String = String::from_utf8_lossy(&raw).split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(&text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&text))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&text))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text))
        .map_err(|_| Failure::Input(format!("the {what} is not valid base64; drop --base64 if it is binary")))
}

/// Who may read an output file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    /// Ciphertexts, signatures, public keys: mode 0644.
    Public,
    /// Plaintexts and unwrapped key material: mode 0600.
    Secret,
}

/// Writes `bytes` to `path` (stdout for `-`). A file is written to a temporary file in
/// the same directory, flushed to disk and renamed over `path`, so an error never leaves
/// a half-written file behind.
pub(crate) fn write_all(path: &Path, bytes: &[u8], secrecy: Secrecy) -> Result<(), Failure> {
    if is_stdio(path) {
        let mut out = io::stdout().lock();
        return out.write_all(bytes).and_then(|()| out.flush()).map_err(|e| Failure::write(path, e));
    }
    if is_special(path) {
        let mut out = fs::OpenOptions::new().write(true).open(path).map_err(|e| Failure::write(path, e))?;
        return out.write_all(bytes).and_then(|()| out.flush()).map_err(|e| Failure::write(path, e));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let write = || -> io::Result<()> {
        // tempfile creates the file with mode 0600.
        let mut tmp = tempfile::Builder::new().prefix(".hsm-").suffix(".tmp").tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        #[cfg(unix)]
        if secrecy == Secrecy::Public {
            use std::os::unix::fs::PermissionsExt as _;
            tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644))?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| Failure::write(path, e))
}

/// True for an existing path that is not a regular file (`/dev/null`, a FIFO, a terminal):
/// written in place, never replaced by renaming a temporary file over it.
pub(crate) fn is_special(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Fails when a binary artifact would be printed to a terminal. Commands check this
/// before reading their input, so nobody types a plaintext only to be refused.
pub(crate) fn refuse_binary_tty(path: &Path, base64: bool) -> Result<(), Failure> {
    if !base64 && is_stdio(path) && io::stdout().is_terminal() {
        return Err(Failure::Input(
            "refusing to write binary output to a terminal; pass -o FILE, pipe it, or add --base64".into(),
        ));
    }
    Ok(())
}

/// Writes an artifact hsm made: raw bytes, or base64 and a newline when `base64` is set.
/// Refuses to print binary to a terminal.
pub(crate) fn write_artifact(path: &Path, bytes: &[u8], base64: bool) -> Result<(), Failure> {
    refuse_binary_tty(path, base64)?;
    if base64 {
        let mut text = base64::engine::general_purpose::STANDARD.encode(bytes);
        text.push('\n');
        return write_all(path, text.as_bytes(), Secrecy::Public);
    }
    write_all(path, bytes, Secrecy::Public)
}

/// Text for stdout, reporting a closed pipe like any other write error.
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    write_all(Path::new("-"), text.as_bytes(), Secrecy::Public)
}
