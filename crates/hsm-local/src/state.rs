//! The key store's data model: every key, every version, its material and metadata.
//!
//! The same structures back the in-memory store and the keystore file (serialized as JSON
//! inside the encrypted envelope, see [`crate::keystore`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use base64::Engine as _;
use hsm_core::{KeyInfo, KeySpec, KeyState, KeyUsage};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::material::Parsed;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Secret key material: PKCS#8 DER for key pairs, raw bytes for AES and HMAC keys.
///
/// Zeroized on drop; `Debug` never shows it; serialized as base64 through zeroized buffers.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Secret(bytes)
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Exact capacity, so encoding never reallocates and leaves no unzeroized copy behind.
        let mut text =
            Zeroizing::new(String::with_capacity(base64::encoded_len(self.0.len(), true).unwrap_or(0)));
        B64.encode_string(&*self.0, &mut text);
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("base64 key material")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Secret, E> {
                let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3 + 3));
                // The error names neither the text nor its position.
                B64.decode_vec(text, &mut out).map_err(|_| E::custom("key material is not valid base64"))?;
                Ok(Secret(out))
            }
        }
        d.deserialize_str(V)
    }
}

/// One version of a key.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    /// 1, 2, 3, …
    pub(crate) version: u32,
    pub(crate) created: SystemTime,
    pub(crate) material: Secret,
    /// Parsed key objects, built on first use.
    #[serde(skip)]
    pub(crate) parsed: OnceLock<Arc<Parsed>>,
}

impl fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionRecord")
            .field("version", &self.version)
            .field("created", &self.created)
            .finish()
    }
}

impl VersionRecord {
    pub(crate) fn new(version: u32, created: SystemTime, material: Secret) -> Self {
        VersionRecord { version, created, material, parsed: OnceLock::new() }
    }
}

/// A key: metadata plus every version that still exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub(crate) spec: KeySpec,
    pub(crate) usage: KeyUsage,
    pub(crate) state: KeyState,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created: SystemTime,
    #[serde(default)]
    pub(crate) deletion_date: Option<SystemTime>,
    /// The version new operations use.
    pub(crate) current: u32,
    /// Oldest first.
    pub(crate) versions: Vec<VersionRecord>,
    /// The metadata every operation checks, built on first use and dropped by
    /// [`KeyRecord::touch`] before any change, so hot paths allocate nothing for it.
    #[serde(skip)]
    pub(crate) info_cache: OnceLock<Arc<KeyInfo>>,
}

impl KeyRecord {
    /// True once a scheduled deletion date has passed: the key counts as gone.
    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        self.state == KeyState::PendingDeletion && self.deletion_date.is_some_and(|d| d <= now)
    }

    pub(crate) fn version(&self, v: u32) -> Option<&VersionRecord> {
        self.versions.iter().find(|r| r.version == v)
    }

    /// The version named `v` ("1", "2", …), exactly as `KeyInfo` prints it.
    pub(crate) fn version_named(&self, v: &str) -> Option<&VersionRecord> {
        self.versions.iter().find(|r| r.version.to_string() == v)
    }

    /// The cached [`KeyInfo`], built with `native_id` on first use.
    pub(crate) fn cached_info(&self, name: &str, native_id: impl FnOnce() -> String) -> Arc<KeyInfo> {
        self.info_cache.get_or_init(|| Arc::new(self.info(name, native_id()))).clone()
    }

    /// Forgets the cached metadata; called before every change to the record.
    pub(crate) fn touch(&mut self) -> &mut Self {
        self.info_cache = OnceLock::new();
        self
    }

    pub(crate) fn info(&self, name: &str, native_id: String) -> KeyInfo {
        let mut info = KeyInfo::new(name, self.current.to_string(), self.spec, self.usage);
        info.versions = self.versions.iter().map(|v| v.version.to_string()).collect();
        info.state = self.state;
        info.description.clone_from(&self.description);
        info.tags.clone_from(&self.tags);
        info.created = self.created;
        info.deletion_date = self.deletion_date;
        info.native_id = native_id;
        info
    }
}

/// Every key, by name (so listings come out in name order).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) keys: BTreeMap<String, KeyRecord>,
}

impl State {
    /// Drops keys whose deletion date has passed. Returns how many were dropped.
    pub(crate) fn purge_expired(&mut self, now: SystemTime) -> usize {
        let before = self.keys.len();
        self.keys.retain(|_, k| !k.expired(now));
        before - self.keys.len()
    }

    /// A live (not expired) key.
    pub(crate) fn live(&self, name: &str, now: SystemTime) -> Option<&KeyRecord> {
        self.keys.get(name).filter(|k| !k.expired(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_through_json_and_never_print() {
        let s = Secret::new(Zeroizing::new(vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3]));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"3q2+7wECAw==\"");
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        let err = serde_json::from_str::<Secret>("\"not base64!\"").unwrap_err().to_string();
        assert!(!err.contains("not base64!"), "{err}");
    }
}
