//! The state of one emulated vault: keys with their versions, and soft-deleted keys, plus the
//! JSON shapes Key Vault renders them in (KeyBundle, KeyItem, DeletedKeyBundle).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::crypto::{Material, PublicJwk};

/// Days a deleted key stays recoverable (Key Vault's default and maximum).
pub(crate) const RECOVERABLE_DAYS: i64 = 90;

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// base64url without padding, as every Key Vault binary field.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh 32-hex-digit version identifier.
pub(crate) fn new_version_id() -> String {
    let mut b = [0u8; 16];
    // aws-lc's DRBG does not fail in practice; a zero id would still be unique enough per run.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Key attributes of one version.
#[derive(Debug, Clone)]
pub(crate) struct Attrs {
    pub(crate) enabled: bool,
    pub(crate) nbf: Option<i64>,
    pub(crate) exp: Option<i64>,
    pub(crate) created: i64,
    pub(crate) updated: i64,
    pub(crate) exportable: bool,
}

impl Attrs {
    pub(crate) fn new_now() -> Attrs {
        let t = now();
        Attrs { enabled: true, nbf: None, exp: None, created: t, updated: t, exportable: false }
    }

    fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert("enabled".into(), self.enabled.into());
        if let Some(nbf) = self.nbf {
            m.insert("nbf".into(), nbf.into());
        }
        if let Some(exp) = self.exp {
            m.insert("exp".into(), exp.into());
        }
        m.insert("created".into(), self.created.into());
        m.insert("updated".into(), self.updated.into());
        m.insert("recoveryLevel".into(), "Recoverable+Purgeable".into());
        m.insert("recoverableDays".into(), RECOVERABLE_DAYS.into());
        m.insert("exportable".into(), self.exportable.into());
        Value::Object(m)
    }
}

/// One version of a key.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) id: String,
    /// The key type as created: `RSA`, `RSA-HSM`, `EC`, `EC-HSM` or `oct-HSM`.
    pub(crate) kty: String,
    pub(crate) material: Arc<Material>,
    pub(crate) key_ops: Vec<String>,
    pub(crate) attrs: Attrs,
    pub(crate) tags: BTreeMap<String, String>,
}

impl Version {
    /// The JWK (public members only; oct keys never show `k`).
    fn jwk(&self, kid: String) -> Value {
        let mut m = Map::new();
        m.insert("kid".into(), kid.into());
        m.insert("kty".into(), self.kty.clone().into());
        m.insert("key_ops".into(), json!(self.key_ops));
        match self.material.public() {
            PublicJwk::Rsa { n, e } => {
                m.insert("n".into(), b64(&n).into());
                m.insert("e".into(), b64(&e).into());
            }
            PublicJwk::Ec { crv, x, y } => {
                m.insert("crv".into(), crv.name().into());
                m.insert("x".into(), b64(&x).into());
                m.insert("y".into(), b64(&y).into());
            }
            PublicJwk::Oct => {}
        }
        Value::Object(m)
    }

    fn tags_into(&self, m: &mut Map<String, Value>) {
        if !self.tags.is_empty() {
            m.insert("tags".into(), json!(self.tags));
        }
    }

    /// The KeyBundle of this version of key `name` in the vault at `base` (`https://host`).
    pub(crate) fn bundle(&self, base: &str, name: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("key".into(), self.jwk(format!("{base}/keys/{name}/{}", self.id)));
        m.insert("attributes".into(), self.attrs.json());
        self.tags_into(&mut m);
        m
    }

    /// The KeyItem of this version; `versioned` selects the kid form (versions listing) or
    /// the bare key id (keys listing).
    pub(crate) fn item(&self, base: &str, name: &str, versioned: bool) -> Map<String, Value> {
        let kid =
            if versioned { format!("{base}/keys/{name}/{}", self.id) } else { format!("{base}/keys/{name}") };
        let mut m = Map::new();
        m.insert("kid".into(), kid.into());
        m.insert("attributes".into(), self.attrs.json());
        self.tags_into(&mut m);
        m
    }
}

/// A key: its versions in creation order (never empty; the last is the current one).
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) versions: Vec<Version>,
}

impl Key {
    /// The current (most recently created) version.
    pub(crate) fn latest(&self) -> &Version {
        // A key is created with one version and versions are never removed.
        &self.versions[self.versions.len() - 1]
    }

    /// Version `id`, or the latest for an empty id.
    pub(crate) fn version(&self, id: &str) -> Option<&Version> {
        if id.is_empty() { Some(self.latest()) } else { self.versions.iter().find(|v| v.id == id) }
    }

    /// Mutable version `id`, or the latest for an empty id.
    pub(crate) fn version_mut(&mut self, id: &str) -> Option<&mut Version> {
        if id.is_empty() { self.versions.last_mut() } else { self.versions.iter_mut().find(|v| v.id == id) }
    }
}

/// A soft-deleted key.
#[derive(Debug, Clone)]
pub(crate) struct Deleted {
    pub(crate) key: Key,
    pub(crate) deleted_date: i64,
    pub(crate) scheduled_purge_date: i64,
}

impl Deleted {
    fn deletion_into(&self, base: &str, name: &str, m: &mut Map<String, Value>) {
        m.insert("recoveryId".into(), format!("{base}/deletedkeys/{name}").into());
        m.insert("deletedDate".into(), self.deleted_date.into());
        m.insert("scheduledPurgeDate".into(), self.scheduled_purge_date.into());
    }

    /// The DeletedKeyBundle.
    pub(crate) fn bundle(&self, base: &str, name: &str) -> Value {
        let mut m = self.key.latest().bundle(base, name);
        self.deletion_into(base, name, &mut m);
        Value::Object(m)
    }

    /// The DeletedKeyItem.
    pub(crate) fn item(&self, base: &str, name: &str) -> Value {
        let mut m = self.key.latest().item(base, name, false);
        self.deletion_into(base, name, &mut m);
        Value::Object(m)
    }
}

/// Everything one vault holds.
#[derive(Debug, Default)]
pub(crate) struct Vault {
    pub(crate) keys: BTreeMap<String, Key>,
    pub(crate) deleted: BTreeMap<String, Deleted>,
}

fn key_json(k: &Key) -> Value {
    let versions: Vec<Value> = k
        .versions
        .iter()
        .map(|v| {
            json!({
                "id": v.id,
                "kty": v.kty,
                "material": v.material.export(),
                "keyOps": v.key_ops,
                "attrs": [v.attrs.enabled, v.attrs.nbf, v.attrs.exp, v.attrs.created, v.attrs.updated, v.attrs.exportable],
                "tags": v.tags,
            })
        })
        .collect();
    Value::Array(versions)
}

fn key_from(v: &Value) -> Option<Key> {
    let mut versions = Vec::new();
    for v in v.as_array()? {
        let a = v.get("attrs")?;
        let opt = |x: &Value| if x.is_null() { Some(None) } else { x.as_i64().map(Some) };
        versions.push(Version {
            id: v.get("id")?.as_str()?.to_owned(),
            kty: v.get("kty")?.as_str()?.to_owned(),
            material: Arc::new(Material::restore(v.get("material")?)?),
            key_ops: serde_json::from_value(v.get("keyOps")?.clone()).ok()?,
            attrs: Attrs {
                enabled: a.get(0)?.as_bool()?,
                nbf: opt(a.get(1)?)?,
                exp: opt(a.get(2)?)?,
                created: a.get(3)?.as_i64()?,
                updated: a.get(4)?.as_i64()?,
                exportable: a.get(5)?.as_bool()?,
            },
            tags: serde_json::from_value(v.get("tags")?.clone()).ok()?,
        });
    }
    // A key always has a version (see `Key::latest`).
    if versions.is_empty() {
        return None;
    }
    Some(Key { versions })
}

impl Vault {
    /// Keys and soft-deleted keys as JSON for `--state` (key material included: the state
    /// file is encrypted).
    pub(crate) fn snapshot(&self) -> Value {
        let keys: Map<String, Value> = self.keys.iter().map(|(n, k)| (n.clone(), key_json(k))).collect();
        let deleted: Map<String, Value> = self
            .deleted
            .iter()
            .map(|(n, d)| (n.clone(), json!([key_json(&d.key), d.deleted_date, d.scheduled_purge_date])))
            .collect();
        json!({"keys": keys, "deleted": deleted})
    }

    /// A vault from [`Vault::snapshot`]; `None` when any part of it does not parse.
    pub(crate) fn restore(v: &Value) -> Option<Vault> {
        let mut vault = Vault::default();
        for (name, k) in v.get("keys")?.as_object()? {
            vault.keys.insert(name.clone(), key_from(k)?);
        }
        for (name, d) in v.get("deleted")?.as_object()? {
            let deleted = Deleted {
                key: key_from(d.get(0)?)?,
                deleted_date: d.get(1)?.as_i64()?,
                scheduled_purge_date: d.get(2)?.as_i64()?,
            };
            vault.deleted.insert(name.clone(), deleted);
        }
        Some(vault)
    }
}
