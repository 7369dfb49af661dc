//! Provider URLs (`Config::from_url`) and TOML configurations (`Config::from_toml`), with
//! every backend built so each provider's own parameters are parsed.
//!
//! First byte: URL or TOML. Invariants: refusals are `Error::Config`, and their messages never
//! echo a PIN given inline (`pin-value=`); an accepted PKCS#11 configuration formats with
//! `Debug` without the PIN either (in other providers' configurations `pin-value=` can only
//! be part of another value, such as a keystore path).
#![no_main]

use hsm::Config;
use hsm_core::Error;
use libfuzzer_sys::fuzz_target;

/// The PINs the input gives inline (`pin-value=…`, in a URL or in a URL inside TOML), when
/// long enough to be recognised in output without false matches.
fn secrets(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("pin-value=") {
        // A parameter, not text inside another value (`pin-source=file:/x/pin-value=…`).
        if i > 0 && !matches!(text.as_bytes()[i - 1], b'?' | b'&' | b';' | b'"' | b'\'' | b' ' | b'\n') {
            continue;
        }
        let value = &text[i + "pin-value=".len()..];
        let end = value.find(['&', ';', '?', '#', '\'', '"', ' ', '\n', '\t']).unwrap_or(value.len());
        let value = &value[..end];
        // Only a value that appears nowhere else in the input can be told apart.
        if value.len() >= 8
            && value.bytes().all(|b| b.is_ascii_alphanumeric())
            && text.matches(value).count() == 1
        {
            out.push(value);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let result = if which & 1 == 0 { Config::from_url(text) } else { Config::from_toml(text) };
    let shown = match &result {
        // Only a PKCS#11 configuration holds a PIN; in any other accepted configuration
        // `pin-value=` was part of another value (a keystore path may contain it) and
        // `Debug` shows that value as it is.
        Ok(config) if config.provider_name() != "pkcs11" => return,
        Ok(config) => format!("{config:?}"),
        Err(e @ Error::Config { .. }) => e.to_string(),
        Err(e) => panic!("a configuration error that is not Error::Config: {e:?}"),
    };
    for secret in secrets(text) {
        assert!(!shown.contains(secret), "secret {secret:?} shown in {shown}");
    }
});
