//! The per-key metadata object (`CKO_DATA`) and the names of key objects.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hsm_core::{KeyInfo, KeySpec, KeyState, KeyUsage};
use serde::{Deserialize, Serialize};

/// `CKA_APPLICATION` of every metadata object this crate writes.
pub(crate) const APPLICATION: &[u8] = b"hsm";

/// The JSON in `CKA_VALUE` of a key's metadata object (layout version 1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Layout version, 1.
    pub(crate) format: u32,
    /// Incremented on every change; when a replacement briefly leaves two objects, the
    /// higher wins.
    pub(crate) seq: u64,
    pub(crate) spec: KeySpec,
    pub(crate) usage: KeyUsage,
    pub(crate) state: KeyState,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    /// Unix seconds.
    pub(crate) created: u64,
    /// Unix seconds; set while pending deletion.
    #[serde(default)]
    pub(crate) deletion: Option<u64>,
    /// Every live version, oldest first.
    pub(crate) versions: Vec<u32>,
    /// The version new operations use.
    pub(crate) current: u32,
    /// Key objects are created with `CKA_EXTRACTABLE` (wrappable by other keys); absent
    /// (false) for most keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) extractable: bool,
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) fn from_unix(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

impl Meta {
    pub(crate) fn new(
        spec: KeySpec,
        usage: KeyUsage,
        description: String,
        tags: BTreeMap<String, String>,
    ) -> Self {
        Meta {
            format: 1,
            seq: 0,
            spec,
            usage,
            state: KeyState::Enabled,
            description,
            tags,
            created: unix(SystemTime::now()),
            deletion: None,
            versions: vec![1],
            current: 1,
            extractable: false,
        }
    }

    /// True once a scheduled deletion date has passed.
    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        self.state == KeyState::PendingDeletion && self.deletion.is_some_and(|d| d <= unix(now))
    }

    pub(crate) fn info(&self, name: &str, token: &str) -> KeyInfo {
        let mut info = KeyInfo::new(name, self.current.to_string(), self.spec, self.usage);
        info.versions = self.versions.iter().map(u32::to_string).collect();
        info.state = self.state;
        info.description.clone_from(&self.description);
        info.tags.clone_from(&self.tags);
        info.created = from_unix(self.created);
        info.deletion_date = self.deletion.map(from_unix);
        info.native_id = format!("pkcs11:token={token};object={name}");
        info
    }
}

/// `CKA_ID` of version `v` of key `name`: `<name>#<v>`.
pub(crate) fn object_id(name: &str, v: u32) -> Vec<u8> {
    format!("{name}#{v}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable_json() {
        let mut m = Meta::new(KeySpec::Aes256, KeyUsage::WrapUnwrap, "d".into(), BTreeMap::new());
        m.created = 1_700_000_000;
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"format":1,"seq":0,"spec":"aes-256","usage":"wrap","state":"enabled","description":"d","tags":{},"created":1700000000,"deletion":null,"versions":[1],"current":1}"#
        );
        assert_eq!(serde_json::from_str::<Meta>(&json).unwrap(), m);
        m.extractable = true;
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.ends_with(r#""current":1,"extractable":true}"#), "{json}");
        assert_eq!(serde_json::from_str::<Meta>(&json).unwrap(), m);
        assert_eq!(object_id("k", 3), b"k#3");
    }
}
