//! Keys as users see them: references, metadata, creation and listing requests.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::vocab::{KeySpec, KeyState, KeyUsage};

/// The longest key name every provider can store.
pub const MAX_KEY_NAME_LEN: usize = 63;

/// Checks that `name` is a portable key name: 1 to 63 characters from `A-Z a-z 0-9 - _`,
/// starting with a letter or digit. Every provider accepts such names (some accept more).
///
/// # Errors
/// [`Error::InvalidInput`] naming what is wrong.
pub fn validate_key_name(provider: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_input(provider, "key name is empty; give a name such as 'my-key'"));
    }
    if name.len() > MAX_KEY_NAME_LEN {
        return Err(Error::invalid_input(
            provider,
            format!("key name is {} characters long; the limit is {MAX_KEY_NAME_LEN}", name.len()),
        ));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(Error::invalid_input(
            provider,
            format!(
                "key name '{}' contains {c:?}; use only letters, digits, '-' and '_'",
                name.escape_debug()
            ),
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(Error::invalid_input(
            provider,
            format!("key name '{name}' must start with a letter or digit"),
        ));
    }
    Ok(())
}

/// A reference to a key by name, optionally pinned to one version.
///
/// ```
/// use hsm_core::KeyRef;
/// let current = KeyRef::new("payments");
/// let old = KeyRef::new("payments").with_version("1");
/// assert_eq!(old.to_string(), "payments@1");
/// let parsed: KeyRef = "payments@1".parse().unwrap();
/// assert_eq!(parsed, old);
/// # let _ = current;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef {
    name: String,
    version: Option<String>,
}

impl KeyRef {
    /// The current version of the key called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        KeyRef { name: name.into(), version: None }
    }

    /// Pins this reference to `version`.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pinned version, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl std::str::FromStr for KeyRef {
    type Err = std::convert::Infallible;

    /// Parses `name` or `name@version`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.rsplit_once('@') {
            Some((n, v)) if !v.is_empty() => KeyRef::new(n).with_version(v),
            _ => KeyRef::new(s),
        })
    }
}

impl From<&str> for KeyRef {
    fn from(s: &str) -> Self {
        KeyRef::new(s)
    }
}

impl From<String> for KeyRef {
    fn from(s: String) -> Self {
        KeyRef::new(s)
    }
}

impl From<&KeyInfo> for KeyRef {
    fn from(k: &KeyInfo) -> Self {
        KeyRef::new(k.name.clone())
    }
}

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string())
}

fn ser_opt_time<S: Serializer>(t: &Option<SystemTime>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// What a provider knows about a key (never its material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The user's name for the key.
    pub name: String,
    /// The current version (the one new encryptions and signatures use).
    pub version: String,
    /// Every version that still exists, oldest first (includes `version`).
    pub versions: Vec<String>,
    /// Key type and size.
    pub spec: KeySpec,
    /// What the key may be used for.
    pub usage: KeyUsage,
    /// Lifecycle state.
    pub state: KeyState,
    /// Free-form description.
    pub description: String,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// When the key was created.
    #[serde(serialize_with = "ser_time")]
    pub created: SystemTime,
    /// When the key will be deleted, if deletion is scheduled.
    #[serde(serialize_with = "ser_opt_time")]
    pub deletion_date: Option<SystemTime>,
    /// The provider's own identifier (AWS key ARN, Key Vault key id, GCP resource name,
    /// PKCS#11 object id, local path).
    pub native_id: String,
}

impl KeyInfo {
    /// Builds key metadata; providers fill the remaining public fields directly.
    pub fn new(name: impl Into<String>, version: impl Into<String>, spec: KeySpec, usage: KeyUsage) -> Self {
        let version = version.into();
        KeyInfo {
            name: name.into(),
            versions: vec![version.clone()],
            version,
            spec,
            usage,
            state: KeyState::Enabled,
            description: String::new(),
            tags: BTreeMap::new(),
            created: SystemTime::now(),
            deletion_date: None,
            native_id: String::new(),
        }
    }

    /// True when every `(key, value)` in `tags` is present on this key.
    pub fn has_tags(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.iter().all(|(k, v)| self.tags.get(k) == Some(v))
    }

    /// The original client's `key_id`: the key's name.
    pub fn key_id(&self) -> &str {
        &self.name
    }
}

/// A request to create a key. Builder style:
///
/// ```
/// use hsm_core::{CreateKey, KeySpec, KeyUsage};
/// let req = CreateKey::new("invoices", KeySpec::Aes256)
///     .description("Key for encrypting invoices")
///     .tag("environment", "production")
///     .tag("owner", "security-team");
/// assert_eq!(req.effective_usage(), KeyUsage::EncryptDecrypt);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateKey {
    /// The key's name.
    pub name: String,
    /// Type and size.
    pub spec: KeySpec,
    /// Usage; `None` means the spec's [default](KeySpec::default_usage).
    pub usage: Option<KeyUsage>,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl CreateKey {
    /// A request for a key called `name` of type `spec`.
    pub fn new(name: impl Into<String>, spec: KeySpec) -> Self {
        CreateKey { name: name.into(), spec, usage: None, description: String::new(), tags: BTreeMap::new() }
    }

    /// Sets the usage.
    #[must_use]
    pub fn usage(mut self, usage: KeyUsage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds one tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Adds several tags.
    #[must_use]
    pub fn tags<K: Into<String>, V: Into<String>>(mut self, tags: impl IntoIterator<Item = (K, V)>) -> Self {
        self.tags.extend(tags.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The usage the key will get.
    pub fn effective_usage(&self) -> KeyUsage {
        self.usage.unwrap_or_else(|| self.spec.default_usage())
    }

    /// Checks the parts every provider agrees on: the name is portable, the usage fits
    /// the spec, tags are non-empty and short, the description is at most 1024 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn validate(&self, provider: &'static str) -> Result<()> {
        validate_key_name(provider, &self.name)?;
        let usage = self.effective_usage();
        if !self.spec.allows_usage(usage) {
            return Err(Error::invalid_input(
                provider,
                format!(
                    "an {} key cannot have usage '{usage}'; use '{}'",
                    self.spec,
                    self.spec.default_usage()
                ),
            ));
        }
        if self.description.len() > 1024 {
            return Err(Error::invalid_input(provider, "description is longer than 1024 bytes"));
        }
        if self.tags.len() > 50 {
            return Err(Error::invalid_input(provider, "more than 50 tags"));
        }
        for (k, v) in &self.tags {
            if k.is_empty() || k.len() > 128 {
                return Err(Error::invalid_input(provider, "tag keys must be 1 to 128 bytes long"));
            }
            if v.len() > 256 {
                return Err(Error::invalid_input(
                    provider,
                    format!("tag '{k}' has a value longer than 256 bytes"),
                ));
            }
        }
        Ok(())
    }
}

/// A request to list keys. All filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListKeys {
    /// Only keys whose name starts with this.
    pub name_prefix: Option<String>,
    /// Only keys that carry every one of these tags with these values.
    pub tags: BTreeMap<String, String>,
    /// Only keys of this spec.
    pub spec: Option<KeySpec>,
    /// At most this many keys per page (the provider may cap it).
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

impl ListKeys {
    /// Lists everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Filters by name prefix.
    #[must_use]
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Filters by one tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Filters by spec.
    #[must_use]
    pub fn spec(mut self, spec: KeySpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// Sets the page size.
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Continues from a previous page.
    #[must_use]
    pub fn page_token(mut self, token: impl Into<String>) -> Self {
        self.page_token = Some(token.into());
        self
    }

    /// True when `key` passes every filter of this request.
    pub fn matches(&self, key: &KeyInfo) -> bool {
        self.name_prefix.as_deref().is_none_or(|p| key.name.starts_with(p))
            && self.spec.is_none_or(|s| key.spec == s)
            && key.has_tags(&self.tags)
    }
}

/// One page of a key listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyPage {
    /// The keys on this page.
    pub keys: Vec<KeyInfo>,
    /// Pass this as [`ListKeys::page_token`] to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

impl KeyPage {
    /// A page.
    pub fn new(keys: Vec<KeyInfo>, next_page_token: Option<String>) -> Self {
        KeyPage { keys, next_page_token }
    }
}

/// The outcome of scheduling a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Deletion {
    /// The key name.
    pub key: String,
    /// When the key will be (or was) deleted.
    #[serde(serialize_with = "ser_time")]
    pub deletion_date: SystemTime,
    /// True when the key is already gone.
    pub immediate: bool,
}

impl Deletion {
    /// A deletion record.
    pub fn new(key: impl Into<String>, deletion_date: SystemTime, immediate: bool) -> Self {
        Deletion { key: key.into(), deletion_date, immediate }
    }
}

/// The public half of an asymmetric key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublicKey {
    /// The key name.
    pub key: String,
    /// The key version.
    pub version: String,
    /// The key spec.
    pub spec: KeySpec,
    /// DER-encoded `SubjectPublicKeyInfo`.
    pub spki_der: Bytes,
}

impl PublicKey {
    /// A public key from its SPKI DER.
    pub fn new(
        key: impl Into<String>,
        version: impl Into<String>,
        spec: KeySpec,
        spki_der: impl Into<Bytes>,
    ) -> Self {
        PublicKey { key: key.into(), version: version.into(), spec, spki_der: spki_der.into() }
    }

    /// PEM (`-----BEGIN PUBLIC KEY-----`), 64-column lines, trailing newline.
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.spki_der);
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key", &self.key)
            .field("version", &self.version)
            .field("spec", &self.spec)
            .field("spki_der_len", &self.spki_der.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_names_are_accepted_and_others_rejected_with_the_reason() {
        assert!(validate_key_name("t", "my-key_1").is_ok());
        assert!(validate_key_name("t", &"a".repeat(63)).is_ok());
        let msg = |n: &str| validate_key_name("t", n).unwrap_err().to_string();
        assert!(msg("").contains("empty"));
        assert!(msg(&"a".repeat(64)).contains("limit is 63"));
        assert!(msg("a/b").contains("'/'"));
        assert!(msg("-ab").contains("must start"));
        assert!(msg("clé").contains("'é'"));
    }

    #[test]
    fn usage_must_fit_the_spec() {
        let err = CreateKey::new("k", KeySpec::EcP256).usage(KeyUsage::EncryptDecrypt).validate("t");
        assert!(matches!(err, Err(Error::InvalidInput { .. })));
        assert!(CreateKey::new("k", KeySpec::Rsa2048).usage(KeyUsage::SignVerify).validate("t").is_ok());
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let pk = PublicKey::new("k", "1", KeySpec::EcP256, vec![7u8; 91]);
        let pem = pk.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn list_filter_requires_every_tag() {
        let mut k = KeyInfo::new("a", "1", KeySpec::Aes256, KeyUsage::EncryptDecrypt);
        k.tags.insert("env".into(), "prod".into());
        assert!(ListKeys::new().tag("env", "prod").matches(&k));
        assert!(!ListKeys::new().tag("env", "prod").tag("team", "x").matches(&k));
        assert!(!ListKeys::new().name_prefix("b").matches(&k));
    }
}
