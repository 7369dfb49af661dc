//! Parsing the settings every provider's URL and TOML forms share.

use std::time::Duration;

use crate::{Error, Result};

/// Parses a duration setting `key=value`: seconds (`5`, `5s`, `0.5`), milliseconds
/// (`500ms`), hours (`24h`) or days (`30d`), greater than zero and at most `max`.
///
/// ```
/// use std::time::Duration;
/// use hsm_core::settings::parse_duration;
/// let hour = Duration::from_secs(3600);
/// assert_eq!(parse_duration("aws-kms", "timeout", "500ms", hour)?, Duration::from_millis(500));
/// assert_eq!(parse_duration("aws-kms", "timeout", "5", hour)?, Duration::from_secs(5));
/// assert!(parse_duration("aws-kms", "timeout", "2h", hour).is_err());
/// # Ok::<(), hsm_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::Config`] naming `key`, the value and the forms accepted.
pub fn parse_duration(provider: &'static str, key: &str, value: &str, max: Duration) -> Result<Duration> {
    let (num, scale) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(d) = value.strip_suffix('d') {
        (d, 86_400.0)
    } else if let Some(h) = value.strip_suffix('h') {
        (h, 3600.0)
    } else {
        (value.strip_suffix('s').unwrap_or(value), 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() && n * scale <= max.as_secs_f64() => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        _ => Err(Error::config(
            provider,
            format!(
                "{key}={value} is not a duration; write seconds ({key}=5 or {key}=5s), milliseconds \
                 ({key}=500ms), hours ({key}=2h) or days ({key}=2d), more than zero and at most {}",
                describe(max)
            ),
        )),
    }
}

fn describe(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

/// A scalar value of a configuration table.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Float(f64),
    /// `true` or `false`.
    Boolean(bool),
    /// Anything else (an array, a table, a date), by its kind, which providers refuse.
    Other(&'static str),
}

impl Value {
    /// The value as it would be written in a URL query: strings as they are, numbers and
    /// booleans in their usual text form; `None` for [`Value::Other`].
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::String(s) => Some(s.clone()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Boolean(b) => Some(b.to_string()),
            Value::Other(_) => None,
        }
    }
}

/// How a [`Section`] reads environment variables: `Ok(None)` when unset.
pub type Vars<'a> = &'a dyn Fn(&str) -> Result<Option<String>>;

/// The process environment as [`Vars`]: unset is `None`, a value that is not UTF-8 an error.
///
/// # Errors
/// [`Error::Config`] naming the variable when its value is not UTF-8.
pub fn process_env(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(
            HSM,
            format!("environment variable {name} is not valid UTF-8; set it to UTF-8 text"),
        )),
    }
}

/// The provider name of configuration errors: configuration files belong to hsm.
const HSM: &str = "hsm";

/// One provider's table of a TOML configuration file (`[aws]`, `[pkcs11]`, …), as the `hsm`
/// crate hands it to the provider that `provider = "…"` selects.
///
/// It holds the table's scalar settings in file order with their line numbers, the file's
/// directory (relative paths are relative to it) and the environment, so a provider can
/// read its settings without knowing TOML, and every error names the file, the line and
/// the setting. Take each setting you know ([`take_string`](Self::take_string),
/// [`take_path`](Self::take_path), …), after [`finish`](Self::finish) has refused the
/// ones you do not know.
///
/// ```
/// use hsm_core::settings::{Section, Value};
/// let mut s = Section::new("configuration file /etc/app/hsm.toml", "acme", "acme")
///     .with_base("/etc/app");
/// s.insert("key_file", Value::String("acme.key".into()), Some(3));
/// s.insert("colour", Value::String("blue".into()), Some(4));
/// assert_eq!(s.take_path("key_file")?, Some("/etc/app/acme.key".into()));
/// let err = s.finish(&["key_file"]).unwrap_err().to_string();
/// assert!(err.contains("line 4") && err.contains("unknown field `colour`"), "{err}");
/// # Ok::<(), hsm_core::Error>(())
/// ```
pub struct Section<'a> {
    origin: String,
    provider: String,
    name: String,
    present: bool,
    base: Option<std::path::PathBuf>,
    entries: Vec<(String, Value, Option<usize>)>,
    vars: Vars<'a>,
}

impl std::fmt::Debug for Section<'_> {
    // Values may be secrets (a PIN someone put in the file): only the keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("origin", &self.origin)
            .field("name", &self.name)
            .field("present", &self.present)
            .field("base", &self.base)
            .field("keys", &self.entries.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> Section<'a> {
    /// An absent table `[name]` of the configuration `origin` (e.g. `"configuration file
    /// /etc/hsm.toml"`) for `provider = "provider"`, reading the process environment.
    /// [`insert`](Self::insert) makes it present.
    pub fn new(
        origin: impl Into<String>,
        provider: impl Into<String>,
        name: impl Into<String>,
    ) -> Section<'static> {
        Section {
            origin: origin.into(),
            provider: provider.into(),
            name: name.into(),
            present: false,
            base: None,
            entries: Vec::new(),
            vars: &process_env,
        }
    }

    /// Marks the table as written in the file (an empty `[name]` is present).
    #[must_use]
    pub fn present(mut self) -> Self {
        self.present = true;
        self
    }

    /// Resolves relative paths against `dir` (the configuration file's directory).
    #[must_use]
    pub fn with_base(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.base = Some(dir.into());
        self
    }

    /// Reads environment variables through `vars` instead of the process environment.
    #[must_use]
    pub fn with_vars<'b>(self, vars: Vars<'b>) -> Section<'b> {
        Section {
            origin: self.origin,
            provider: self.provider,
            name: self.name,
            present: self.present,
            base: self.base,
            entries: self.entries,
            vars,
        }
    }

    /// Adds setting `key` (found at `line` of the file) and marks the table present.
    pub fn insert(&mut self, key: impl Into<String>, value: Value, line: Option<usize>) {
        self.present = true;
        self.entries.push((key.into(), value, line));
    }

    /// Where the configuration came from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The table's name (`aws` for `[aws]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the file has the table.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The settings not taken yet, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _, _)| k.as_str())
    }

    /// Reads environment variable `name` (`Ok(None)` when unset).
    ///
    /// # Errors
    /// [`Error::Config`] when it is set but not UTF-8.
    pub fn var(&self, name: &str) -> Result<Option<String>> {
        (self.vars)(name)
    }

    /// Removes setting `key`, with its line.
    pub fn take(&mut self, key: &str) -> Option<(Value, Option<usize>)> {
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        let (_, value, line) = self.entries.remove(i);
        Some((value, line))
    }

    /// The text of setting `key` (a string, number or boolean) without removing it.
    pub fn peek_text(&self, key: &str) -> Option<String> {
        self.entries.iter().find(|(k, _, _)| k == key).and_then(|(_, v, _)| v.to_text())
    }

    /// Removes string setting `key`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting and its line when it is not a string.
    pub fn take_string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::String(s), _)) => Ok(Some(s)),
            Some((_, line)) => Err(self.error_at(line, format!("{}.{key} must be a string", self.name))),
        }
    }

    /// Removes integer setting `key`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting and its line when it is not an integer.
    pub fn take_integer(&mut self, key: &str) -> Result<Option<i64>> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::Integer(i), _)) => Ok(Some(i)),
            Some((_, line)) => Err(self.error_at(line, format!("{}.{key} must be an integer", self.name))),
        }
    }

    /// Removes path setting `key` (a string), relative to the file's directory when relative.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting and its line when it is not a string.
    pub fn take_path(&mut self, key: &str) -> Result<Option<std::path::PathBuf>> {
        Ok(self.take_string(key)?.map(|p| self.resolve(std::path::PathBuf::from(p))))
    }

    /// `path` relative to the file's directory when it is relative and the file has one.
    pub fn resolve(&self, path: std::path::PathBuf) -> std::path::PathBuf {
        match &self.base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        }
    }

    /// Removes every setting left, as URL query text (`key=value&…`, form-encoded), for
    /// providers whose table takes the parameters of their URL. Keys named in `paths` are
    /// paths, resolved like [`take_path`](Self::take_path).
    ///
    /// # Errors
    /// [`Error::Config`] naming a setting that is not a string, number or boolean.
    pub fn take_query(&mut self, paths: &[&str]) -> Result<String> {
        let mut query = String::new();
        for (key, value, line) in std::mem::take(&mut self.entries) {
            let Some(mut text) = value.to_text() else {
                return Err(
                    self.error_at(line, format!("{}.{key} must be a string, number or boolean", self.name))
                );
            };
            if paths.contains(&key.as_str()) {
                text = self.resolve(text.into()).display().to_string();
            }
            if !query.is_empty() {
                query.push('&');
            }
            form_encode(&mut query, &key);
            query.push('=');
            form_encode(&mut query, &text);
        }
        Ok(query)
    }

    /// Refuses every setting not in `known`, naming the first with its line and listing
    /// `known`. Call it before taking settings, so a misspelt key is reported as such
    /// rather than as a missing one.
    ///
    /// # Errors
    /// [`Error::Config`] when a setting is not in `known`.
    pub fn finish(&self, known: &[&str]) -> Result<()> {
        let Some((key, _, line)) = self.entries.iter().find(|(k, _, _)| !known.contains(&k.as_str())) else {
            return Ok(());
        };
        let expected = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        Err(self
            .error_at(*line, format!("[{}]: unknown field `{key}`, expected one of {expected}", self.name)))
    }

    /// A configuration error at `line`: `"{origin} at line {line}: {message}"`.
    pub fn error_at(&self, line: Option<usize>, message: impl std::fmt::Display) -> Error {
        match line {
            Some(line) => Error::config(HSM, format!("{} at line {line}: {message}", self.origin)),
            None => Error::config(HSM, format!("{}: {message}", self.origin)),
        }
    }

    /// A configuration error about the whole table: `"{origin}: {message}"`.
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        self.error_at(None, message)
    }

    /// The error for a required table the file does not have, saying what to add:
    /// `"{origin} says provider = \"…\" but has no [name] table; add [name] with {hint}"`.
    pub fn missing(&self, hint: &str) -> Error {
        Error::config(
            HSM,
            format!(
                "{} says provider = \"{}\" but has no [{}] table; add [{}] with {hint}",
                self.origin, self.provider, self.name, self.name
            ),
        )
    }

    /// A provider's configuration error about this table, prefixed with where it is
    /// (`"{origin}, [name]: …"`); other errors pass through.
    pub fn context(&self, e: Error) -> Error {
        match e {
            Error::Config { message, .. } if message.starts_with(&self.origin) => Error::config(HSM, message),
            Error::Config { message, .. } => {
                Error::config(HSM, format!("{}, [{}]: {message}", self.origin, self.name))
            }
            e => e,
        }
    }
}

/// Appends `s` form-encoded (`application/x-www-form-urlencoded`).
fn form_encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}
