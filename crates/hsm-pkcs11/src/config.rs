//! [`Pkcs11Config`]: which module, which token, which PIN; and the RFC 7512 URI form.

use std::fmt;
use std::path::PathBuf;

use hsm_core::settings::Section;
use hsm_core::{Error, Result, Zeroizing};

use crate::PROVIDER;

/// The environment variable holding the user PIN when the configuration names no PIN
/// source (a `pkcs11:` URI without `pin-source=`, `pin-env=` or `pin-value=`).
pub const PIN_ENV: &str = "HSM_PKCS11_PIN";

/// How the token is chosen among the module's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSelector {
    /// The token whose label is exactly this (labels are space-padded on the token; the
    /// padding is ignored). Exactly one token must match.
    Label(String),
    /// The token with this serial number.
    Serial(String),
    /// The slot with this id.
    Slot(u64),
}

impl fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSelector::Label(l) => write!(f, "token label '{l}'"),
            TokenSelector::Serial(s) => write!(f, "token serial '{s}'"),
            TokenSelector::Slot(s) => write!(f, "slot {s}"),
        }
    }
}

/// Where the user PIN comes from. Read once, at [`connect`](crate::Pkcs11Provider::connect).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinSource {
    /// The PIN itself (tests, or a PIN the application obtained elsewhere).
    Value(Zeroizing<String>),
    /// An environment variable holding the PIN.
    Env(String),
    /// A file whose content (trailing newline removed) is the PIN.
    File(PathBuf),
}

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSource::Value(_) => f.write_str("Value(<redacted>)"),
            PinSource::Env(v) => f.debug_tuple("Env").field(v).finish(),
            PinSource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

impl PinSource {
    /// Reads the PIN.
    ///
    /// # Errors
    /// `Config` for an unset or non-UTF-8 variable, an unreadable file, or an empty PIN.
    pub fn read(&self) -> Result<Zeroizing<String>> {
        let pin = match self {
            PinSource::Value(v) => v.clone(),
            PinSource::Env(var) if var == PIN_ENV => Zeroizing::new(std::env::var(var).map_err(|_| {
                Error::config(
                    PROVIDER,
                    format!(
                        "no user PIN for the token: the configuration names no PIN source and {PIN_ENV} \
                         is not set; set {PIN_ENV}, or add pin-source=file:/path/to/pin (or \
                         pin-env=VAR) to the pkcs11: URI (pin_file/pin_env in a [pkcs11] table); the \
                         hsm CLI also prompts for it when run on a terminal"
                    ),
                )
            })?),
            PinSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
                Error::config(PROVIDER, format!("the PIN variable {var} is not set (or not UTF-8); set it"))
            })?),
            PinSource::File(path) => {
                let mut text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    Error::config(PROVIDER, format!("cannot read the PIN file {}: {e}", path.display()))
                })?);
                while text.ends_with(['\n', '\r']) {
                    text.pop();
                }
                text
            }
        };
        if pin.is_empty() {
            return Err(Error::config(PROVIDER, "the user PIN is empty; give the token's user PIN"));
        }
        Ok(pin)
    }
}

/// How to reach a PKCS#11 token.
///
/// ```
/// # fn main() -> hsm_core::Result<()> {
/// use hsm_pkcs11::{Pkcs11Config, TokenSelector};
/// let cfg = Pkcs11Config::from_uri(
///     "pkcs11:token=app?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
/// )?;
/// assert_eq!(cfg.token, TokenSelector::Label("app".into()));
/// assert!(!format!("{cfg:?}").contains("1234"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (`.so`), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Which token.
    pub token: TokenSelector,
    /// Where the user PIN comes from.
    pub pin: PinSource,
}

impl Pkcs11Config {
    /// A configuration.
    pub fn new(module: impl Into<PathBuf>, token: TokenSelector, pin: PinSource) -> Self {
        Pkcs11Config { module: module.into(), token, pin }
    }

    /// Reads the `[pkcs11]` table of a configuration file: the module, exactly one token
    /// selector and at most one PIN source (relative paths are relative to the file's
    /// directory). The PIN itself never goes in the file.
    ///
    /// ```toml
    /// provider = "pkcs11"
    ///
    /// [pkcs11]
    /// module = "/usr/lib/softhsm/libsofthsm2.so"   # the token's PKCS#11 module
    /// token = "app"                   # its label; or serial = "…", or slot = 3
    /// pin_file = "/etc/app/hsm-pin"   # or pin_env = "VAR"; neither: HSM_PKCS11_PIN
    /// ```
    ///
    /// # Errors
    /// `Config` naming the setting: a missing table or `module`, not exactly one of
    /// `token`/`serial`/`slot`, more than one PIN source, an unknown setting (`pin` too: a
    /// PIN is never read from the file).
    pub fn from_section(section: &mut Section<'_>) -> Result<Self> {
        if !section.is_present() {
            return Err(section.missing("module = \"/usr/lib/softhsm/libsofthsm2.so\" and token = \"LABEL\""));
        }
        section.finish(&["module", "token", "serial", "slot", "pin_file", "pin_env"])?;
        let module = section.take_path("module")?.filter(|m| !m.as_os_str().is_empty()).ok_or_else(|| {
            section.error(
                "pkcs11.module is missing; set module = \"/usr/lib/softhsm/libsofthsm2.so\" (or your \
                 HSM's PKCS#11 module)",
            )
        })?;
        let slot = match section.take_integer("slot")? {
            None => None,
            Some(n) => Some(u64::try_from(n).map_err(|_| {
                section.error(format!("pkcs11.slot = {n} is not a slot id; use a number from 0"))
            })?),
        };
        let token = match (section.take_string("token")?, section.take_string("serial")?, slot) {
            (Some(l), None, None) => TokenSelector::Label(l),
            (None, Some(s), None) => TokenSelector::Serial(s),
            (None, None, Some(n)) => TokenSelector::Slot(n),
            _ => {
                return Err(section
                    .error("[pkcs11] needs exactly one of token = \"LABEL\", serial = \"…\" and slot = N"));
            }
        };
        let pin = match (section.take_path("pin_file")?, section.take_string("pin_env")?) {
            (Some(f), None) => PinSource::File(f),
            (None, Some(v)) if !v.is_empty() => PinSource::Env(v),
            (None, None) => PinSource::Env(PIN_ENV.to_owned()),
            _ => {
                return Err(section.error(format!(
                    "[pkcs11] takes at most one of pin_file and pin_env (a non-empty variable name); \
                     with neither, the PIN comes from {PIN_ENV}"
                )));
            }
        };
        Ok(Pkcs11Config::new(module, token, pin))
    }

    /// Parses an RFC 7512 PKCS#11 URI:
    /// `pkcs11:token=NAME?module-path=/path/to/module.so&pin-source=file:/path`.
    ///
    /// Path attributes: `token` (label), `serial`, `slot-id` (one of them). Query
    /// attributes: `module-path` (required), and at most one of `pin-source=file:/path` (or
    /// a bare path), `pin-value=PIN` (tests only: the PIN is then in the URI) or
    /// `pin-env=VAR` (an extension of this crate); with none, the PIN comes from
    /// [`PIN_ENV`] (`HSM_PKCS11_PIN`). Values are percent-decoded. Unknown path attributes
    /// (`manufacturer`, `model`, `object`, …) are refused rather than silently ignored.
    ///
    /// # Errors
    /// `Config` naming what is missing or wrong.
    pub fn from_uri(uri: &str) -> Result<Self> {
        let bad = |m: String| Error::config(PROVIDER, format!("PKCS#11 URI: {m}"));
        let rest = uri
            .strip_prefix("pkcs11:")
            .or_else(|| uri.get(..7).filter(|s| s.eq_ignore_ascii_case("pkcs11:")).map(|_| &uri[7..]))
            .ok_or_else(|| bad("it must start with 'pkcs11:'".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut token = None;
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| bad(format!("'{attr}' is not name=value")))?;
            let v = decode(v).ok_or_else(|| bad(format!("'{attr}' has a bad %-escape")))?;
            let sel = match k {
                "token" => TokenSelector::Label(v),
                "serial" => TokenSelector::Serial(v),
                "slot-id" => {
                    TokenSelector::Slot(v.parse().map_err(|_| bad(format!("slot-id '{v}' is not a number")))?)
                }
                other => {
                    return Err(bad(format!(
                        "path attribute '{other}' is not supported; use token=, serial= or slot-id="
                    )));
                }
            };
            if token.replace(sel).is_some() {
                return Err(bad("give exactly one of token=, serial= and slot-id=".into()));
            }
        }
        let mut module = None;
        let mut pin = None;
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| {
                bad(format!("'{k}' is not name=value", k = attr.split('=').next().unwrap_or("")))
            })?;
            let v = Zeroizing::new(
                decode(v).ok_or_else(|| bad(format!("query attribute '{k}' has a bad %-escape")))?,
            );
            let source = match k {
                "module-path" => {
                    module = Some(PathBuf::from(v.as_str()));
                    continue;
                }
                "pin-value" => PinSource::Value(v),
                "pin-env" => PinSource::Env(v.to_string()),
                "pin-source" => PinSource::File(PathBuf::from(v.strip_prefix("file:").unwrap_or(&v))),
                other => {
                    return Err(bad(format!(
                        "query attribute '{other}' is not supported; use module-path=, pin-source=, pin-value= or pin-env="
                    )));
                }
            };
            if pin.replace(source).is_some() {
                return Err(bad("give exactly one of pin-source=, pin-value= and pin-env=".into()));
            }
        }
        let module = module.ok_or_else(|| {
            bad("module-path= is missing; add ?module-path=/usr/lib/softhsm/libsofthsm2.so (or your HSM's module)".into())
        })?;
        let token =
            token.ok_or_else(|| bad("no token given; add token=LABEL (or serial=, slot-id=)".into()))?;
        let pin = pin.unwrap_or_else(|| PinSource::Env(PIN_ENV.to_owned()));
        Ok(Pkcs11Config { module, token, pin })
    }
}

/// Percent-decodes `s`; `None` for a bad escape or non-UTF-8 result.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_forms() {
        let c = Pkcs11Config::from_uri("pkcs11:token=my%20tok?module-path=/m.so&pin-source=file:/p").unwrap();
        assert_eq!(c.token, TokenSelector::Label("my tok".into()));
        assert_eq!(c.module, PathBuf::from("/m.so"));
        assert!(matches!(c.pin, PinSource::File(ref p) if p == &PathBuf::from("/p")));
        let c = Pkcs11Config::from_uri("pkcs11:slot-id=7?module-path=/m.so&pin-env=PIN").unwrap();
        assert_eq!(c.token, TokenSelector::Slot(7));
        let c = Pkcs11Config::from_uri("pkcs11:token=a?module-path=/m.so").unwrap();
        assert_eq!(c.pin, PinSource::Env(PIN_ENV.into()));
        for bad in [
            "pkcs11:",
            "pkcs11:token=a",
            "pkcs11:token=a;serial=b?module-path=/m.so&pin-value=1",
            "pkcs11:object=x?module-path=/m.so&pin-value=1",
            "pkcs11:token=a?module-path=/m.so&pin-value=1&pin-env=X",
            "pkcs11:token=%zz?module-path=/m.so&pin-value=1",
            "file:/x",
        ] {
            assert!(matches!(Pkcs11Config::from_uri(bad), Err(Error::Config { .. })), "{bad}");
        }
    }

    #[test]
    fn no_pin_source_names_every_way_to_give_one() {
        if std::env::var_os(PIN_ENV).is_some() {
            return;
        }
        let e = PinSource::Env(PIN_ENV.into()).read().unwrap_err().to_string();
        for needle in [PIN_ENV, "pin-source=file:", "pin-env=", "pin_file", "prompts"] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
    }

    #[test]
    fn pin_never_printed() {
        let c = Pkcs11Config::from_uri("pkcs11:token=a?module-path=/m.so&pin-value=s3cr3t-pin").unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
