//! The PKCS#11 user PIN when the configuration leaves it to `HSM_PKCS11_PIN` and that is
//! unset: prompted for on the terminal, without echo.
//!
//! Only when standard input is a terminal; otherwise the provider's own error says how to
//! supply the PIN (`HSM_PKCS11_PIN`, `pin-source=file:…`, `pin-env=…`). The PIN is read
//! from `/dev/tty` into a zeroized buffer and never printed or logged. Echo is turned off
//! with termios through `rustix` (already in the dependency tree, via `tempfile`; only its
//! `termios` feature is added) rather than a prompt crate.

use std::io::IsTerminal as _;

use hsm::Config;
use hsm::pkcs11::{PIN_ENV, PinSource};

use crate::failure::Failure;

/// Puts a prompted PIN into `config` when it selects a PKCS#11 token whose PIN would
/// come from an unset `HSM_PKCS11_PIN`, and standard input is a terminal.
pub(crate) fn supply(config: &mut Config) -> Result<(), Failure> {
    let Some(p11) = config.pkcs11_mut() else { return Ok(()) };
    let defaulted = matches!(&p11.pin, PinSource::Env(v) if v == PIN_ENV);
    if !defaulted || std::env::var_os(PIN_ENV).is_some() || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let pin = prompt(&format!("PIN for the PKCS#11 {}: ", p11.token))?;
    p11.pin = PinSource::Value(pin);
    Ok(())
}

#[cfg(unix)]
fn prompt(text: &str) -> Result<hsm::Zeroizing<String>, Failure> {
    use std::io::{Read as _, Write as _};

    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};

    let io = |action: &str, source: std::io::Error| Failure::Io { action: action.to_owned(), source };
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| io("cannot open the terminal to ask for the PKCS#11 PIN", e))?;
    let saved = tcgetattr(&tty).map_err(|e| io("cannot read the terminal settings", e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // Echo off before the prompt shows, so nothing typed after it is ever echoed.
    tcsetattr(&tty, OptionalActions::Flush, &quiet).map_err(|e| io("cannot turn off echo", e.into()))?;
    if let Err(e) = tty.write_all(text.as_bytes()).and_then(|()| tty.flush()) {
        let _ = tcsetattr(&tty, OptionalActions::Now, &saved);
        return Err(io("cannot write the prompt", e));
    }
    // Byte by byte, so no buffer holds the PIN outside the zeroized one.
    let mut pin = hsm::Zeroizing::new(Vec::with_capacity(64));
    let mut byte = hsm::Zeroizing::new([0u8; 1]);
    let read = loop {
        match tty.read(&mut byte[..]) {
            Ok(0) => break Ok(()),
            Ok(_) if byte[0] == b'\n' => break Ok(()),
            Ok(_) => pin.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let restored = tcsetattr(&tty, OptionalActions::Now, &saved);
    read.map_err(|e| io("cannot read the PIN from the terminal", e))?;
    restored.map_err(|e| io("cannot restore the terminal settings", e.into()))?;
    while pin.last() == Some(&b'\r') {
        pin.pop();
    }
    let text =
        std::str::from_utf8(&pin).map_err(|_| Failure::Input("the PIN typed is not valid UTF-8".into()))?;
    let pin = hsm::Zeroizing::new(text.to_owned());
    if pin.is_empty() {
        return Err(Failure::Input(format!("no PIN typed; type the token's user PIN, or set {PIN_ENV}")));
    }
    Ok(pin)
}

#[cfg(not(unix))]
fn prompt(_: &str) -> Result<hsm::Zeroizing<String>, Failure> {
    Err(Failure::Input(format!(
        "this platform has no PIN prompt; set {PIN_ENV} or add pin-source=file:/path to the pkcs11: URI"
    )))
}
