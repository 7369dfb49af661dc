//! In-memory resources (key rings, crypto keys, versions), their JSON form, list filters and
//! page tokens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::crypto::Material;
use super::model::{
    self, DESTROY_SCHEDULED, DESTROYED, ENCRYPT_DECRYPT, PROTECTION_LEVELS, PURPOSES, STATES,
};
use super::wire::{self, Result, enum_json, invalid, timestamp};

/// Every resource, keyed by key ring name (`projects/P/locations/L/keyRings/R`).
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) rings: BTreeMap<String, Ring>,
}

#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) create_time: SystemTime,
    /// Crypto keys by id.
    pub(crate) keys: BTreeMap<String, Key>,
}

#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) purpose: i32,
    pub(crate) create_time: SystemTime,
    /// The template's algorithm and protection level.
    pub(crate) algorithm: i32,
    pub(crate) protection: i32,
    pub(crate) labels: BTreeMap<String, String>,
    /// The primary version's id (ENCRYPT_DECRYPT keys only).
    pub(crate) primary: Option<u32>,
    /// Versions in creation order; ids are 1, 2, ….
    pub(crate) versions: Vec<Version>,
    pub(crate) destroy_scheduled_duration: Duration,
    pub(crate) import_only: bool,
    /// Stored and echoed, never acted on (the emulator does not rotate by itself).
    pub(crate) rotation_period: Option<Duration>,
    pub(crate) next_rotation_time: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Version {
    pub(crate) id: u32,
    pub(crate) algorithm: i32,
    pub(crate) protection: i32,
    pub(crate) state: i32,
    pub(crate) create_time: SystemTime,
    pub(crate) destroy_time: Option<SystemTime>,
    pub(crate) destroy_event_time: Option<SystemTime>,
    /// Dropped when the version is destroyed.
    pub(crate) material: Option<Arc<Material>>,
}

impl Version {
    /// Moves a version whose scheduled destruction time has passed to DESTROYED and drops its
    /// material.
    pub(crate) fn settle(&mut self, now: SystemTime) {
        if self.state == DESTROY_SCHEDULED && self.destroy_time.is_some_and(|t| t <= now) {
            self.state = DESTROYED;
            self.destroy_event_time = self.destroy_time.take();
            self.material = None;
        }
    }

    /// The CryptoKeyVersion resource.
    pub(crate) fn json(&self, key_name: &str, enums: bool) -> Value {
        let mut v = json!({
            "name": format!("{key_name}/cryptoKeyVersions/{}", self.id),
            "state": enum_json(enums, STATES, self.state),
            "protectionLevel": enum_json(enums, PROTECTION_LEVELS, self.protection),
            "algorithm": enum_json(enums, model::algorithm_table(), self.algorithm),
            "createTime": timestamp(self.create_time),
        });
        let o = v.as_object_mut().expect("object");
        if self.state != DESTROYED {
            o.insert("generateTime".into(), timestamp(self.create_time).into());
        }
        if let Some(t) = self.destroy_time {
            o.insert("destroyTime".into(), timestamp(t).into());
        }
        if let Some(t) = self.destroy_event_time {
            o.insert("destroyEventTime".into(), timestamp(t).into());
        }
        v
    }
}

impl Key {
    pub(crate) fn settle(&mut self, now: SystemTime) {
        for v in &mut self.versions {
            v.settle(now);
        }
    }

    pub(crate) fn version(&self, id: u32) -> Option<&Version> {
        id.checked_sub(1).and_then(|i| self.versions.get(i as usize))
    }

    pub(crate) fn version_mut(&mut self, id: u32) -> Option<&mut Version> {
        id.checked_sub(1).and_then(|i| self.versions.get_mut(i as usize))
    }

    /// The CryptoKey resource.
    pub(crate) fn json(&self, name: &str, enums: bool) -> Value {
        let mut v = json!({
            "name": name,
            "purpose": enum_json(enums, PURPOSES, self.purpose),
            "createTime": timestamp(self.create_time),
            "versionTemplate": {
                "protectionLevel": enum_json(enums, PROTECTION_LEVELS, self.protection),
                "algorithm": enum_json(enums, model::algorithm_table(), self.algorithm),
            },
            "destroyScheduledDuration": wire::duration_json(self.destroy_scheduled_duration),
        });
        let o = v.as_object_mut().expect("object");
        if self.purpose == ENCRYPT_DECRYPT
            && let Some(p) = self.primary.and_then(|id| self.version(id))
        {
            o.insert("primary".into(), p.json(name, enums));
        }
        if !self.labels.is_empty() {
            o.insert("labels".into(), json!(self.labels));
        }
        if self.import_only {
            o.insert("importOnly".into(), true.into());
        }
        if let Some(p) = self.rotation_period {
            o.insert("rotationPeriod".into(), wire::duration_json(p).into());
        }
        if let Some(t) = &self.next_rotation_time {
            o.insert("nextRotationTime".into(), t.clone().into());
        }
        v
    }
}

fn time_json(t: SystemTime) -> Value {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    json!([d.as_secs(), d.subsec_nanos()])
}

fn time_from(v: &Value) -> Option<SystemTime> {
    let secs = v.get(0)?.as_u64()?;
    let nanos = u32::try_from(v.get(1)?.as_u64()?).ok()?;
    std::time::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn opt_time_json(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, time_json)
}

fn opt_time_from(v: &Value) -> Option<Option<SystemTime>> {
    if v.is_null() { Some(None) } else { time_from(v).map(Some) }
}

impl Store {
    /// Every ring, key and version as JSON for `--state` (key material included: the state
    /// file is encrypted).
    pub(crate) fn snapshot(&self) -> Value {
        let rings: Map<String, Value> = self
            .rings
            .iter()
            .map(|(name, ring)| {
                let keys: Map<String, Value> = ring
                    .keys
                    .iter()
                    .map(|(id, k)| {
                        let versions: Vec<Value> = k
                            .versions
                            .iter()
                            .map(|v| {
                                json!({
                                    "id": v.id,
                                    "algorithm": v.algorithm,
                                    "protection": v.protection,
                                    "state": v.state,
                                    "createTime": time_json(v.create_time),
                                    "destroyTime": opt_time_json(v.destroy_time),
                                    "destroyEventTime": opt_time_json(v.destroy_event_time),
                                    "material": v.material.as_ref().map(|m| crate::state::secret::to_json(m.secret())),
                                })
                            })
                            .collect();
                        let key = json!({
                            "purpose": k.purpose,
                            "createTime": time_json(k.create_time),
                            "algorithm": k.algorithm,
                            "protection": k.protection,
                            "labels": k.labels,
                            "primary": k.primary,
                            "versions": versions,
                            "destroyScheduledDuration": [k.destroy_scheduled_duration.as_secs(), k.destroy_scheduled_duration.subsec_nanos()],
                            "importOnly": k.import_only,
                            "rotationPeriod": k.rotation_period.map(|d| [d.as_secs(), u64::from(d.subsec_nanos())]),
                            "nextRotationTime": k.next_rotation_time,
                        });
                        (id.clone(), key)
                    })
                    .collect();
                (name.clone(), json!({"createTime": time_json(ring.create_time), "keys": keys}))
            })
            .collect();
        json!({"rings": rings})
    }

    /// A store from [`Store::snapshot`]; `None` when any part of it does not parse.
    pub(crate) fn restore(v: &Value) -> Option<Store> {
        let duration =
            |v: &Value| Some(Duration::new(v.get(0)?.as_u64()?, u32::try_from(v.get(1)?.as_u64()?).ok()?));
        let mut store = Store::default();
        for (name, r) in v.get("rings")?.as_object()? {
            let mut ring = Ring { create_time: time_from(r.get("createTime")?)?, keys: BTreeMap::new() };
            for (id, k) in r.get("keys")?.as_object()? {
                let mut versions = Vec::new();
                for v in k.get("versions")?.as_array()? {
                    let algorithm = i32::try_from(v.get("algorithm")?.as_i64()?).ok()?;
                    let material = match v.get("material")? {
                        Value::Null => None,
                        m => {
                            let kind = model::algorithm(algorithm)?.kind;
                            let secret = crate::state::secret::from_json(m)?;
                            Some(Arc::new(Material::from_secret(kind, secret).ok()?))
                        }
                    };
                    versions.push(Version {
                        id: u32::try_from(v.get("id")?.as_u64()?).ok()?,
                        algorithm,
                        protection: i32::try_from(v.get("protection")?.as_i64()?).ok()?,
                        state: i32::try_from(v.get("state")?.as_i64()?).ok()?,
                        create_time: time_from(v.get("createTime")?)?,
                        destroy_time: opt_time_from(v.get("destroyTime")?)?,
                        destroy_event_time: opt_time_from(v.get("destroyEventTime")?)?,
                        material,
                    });
                }
                let key = Key {
                    purpose: i32::try_from(k.get("purpose")?.as_i64()?).ok()?,
                    create_time: time_from(k.get("createTime")?)?,
                    algorithm: i32::try_from(k.get("algorithm")?.as_i64()?).ok()?,
                    protection: i32::try_from(k.get("protection")?.as_i64()?).ok()?,
                    labels: serde_json::from_value(k.get("labels")?.clone()).ok()?,
                    primary: serde_json::from_value(k.get("primary")?.clone()).ok()?,
                    versions,
                    destroy_scheduled_duration: duration(k.get("destroyScheduledDuration")?)?,
                    import_only: k.get("importOnly")?.as_bool()?,
                    rotation_period: match k.get("rotationPeriod")? {
                        Value::Null => None,
                        d => Some(duration(d)?),
                    },
                    next_rotation_time: serde_json::from_value(k.get("nextRotationTime")?.clone()).ok()?,
                };
                ring.keys.insert(id.clone(), key);
            }
            store.rings.insert(name.clone(), ring);
        }
        Some(store)
    }
}

/// The KeyRing resource.
pub(crate) fn ring_json(name: &str, ring: &Ring) -> Value {
    json!({ "name": name, "createTime": timestamp(ring.create_time) })
}

/// One `field OP value` term of a list filter.
#[derive(Debug)]
struct Term {
    path: Vec<String>,
    op: Op,
    value: String,
    negate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Has,
}

/// A list filter: terms joined by `AND` (the subset of
/// <https://cloud.google.com/kms/docs/sorting-and-filtering> the emulator understands):
/// `labels.env=prod`, `labels.env:*`, `purpose=ENCRYPT_DECRYPT`, `state!=DISABLED`,
/// `versionTemplate.algorithm=EC_SIGN_P256_SHA256`, `primary.state=ENABLED`, `name:foo`,
/// with `NOT` or `-` in front of a term. Enums compare by name.
#[derive(Debug, Default)]
pub(crate) struct Filter(Vec<Term>);

fn camel(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    let mut up = false;
    for c in seg.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Filter {
    pub(crate) fn parse(s: &str) -> Result<Filter> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Filter::default());
        }
        let mut terms = Vec::new();
        for raw in s.split(" AND ") {
            let mut t = raw.trim();
            let mut negate = false;
            if let Some(rest) = t.strip_prefix("NOT ") {
                negate = true;
                t = rest.trim();
            } else if let Some(rest) = t.strip_prefix('-') {
                negate = true;
                t = rest.trim();
            }
            let (pos, op, len) = [("!=", Op::Ne), ("=", Op::Eq), (":", Op::Has)]
                .iter()
                .filter_map(|(sym, op)| t.find(sym).map(|p| (p, *op, sym.len())))
                .min_by_key(|(p, _, _)| *p)
                .ok_or_else(|| {
                    invalid(format!(
                        "filter term {t:?} is not understood: use field=value, field!=value or field:value \
                         joined by AND"
                    ))
                })?;
            let field = t[..pos].trim();
            let value = t[pos + len..].trim().trim_matches('"').to_string();
            if field.is_empty() || field.contains(' ') {
                return Err(invalid(format!("filter term {t:?} has no field name")));
            }
            // Label keys stay as written; other path segments may be snake_case.
            let mut path: Vec<String> = field.split('.').map(str::to_string).collect();
            let labels_at = path.iter().position(|p| p == "labels");
            for (i, p) in path.iter_mut().enumerate() {
                if labels_at.is_none_or(|l| i <= l) {
                    *p = camel(p);
                }
            }
            terms.push(Term { path, op, value, negate });
        }
        Ok(Filter(terms))
    }

    /// Whether a resource (in its name-encoded JSON form) matches every term.
    pub(crate) fn matches(&self, resource: &Value) -> bool {
        self.0.iter().all(|t| {
            let mut v = Some(resource);
            for p in &t.path {
                v = v.and_then(|x| x.get(p));
            }
            let s = v.map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let hit = match (t.op, s) {
                (Op::Has, Some(_)) if t.value == "*" => true,
                (Op::Has, Some(s)) => s.contains(&t.value),
                (Op::Eq, Some(s)) => s == t.value,
                (Op::Ne, Some(s)) => s != t.value,
                (Op::Ne, None) => true,
                (_, None) => false,
            };
            hit != t.negate
        })
    }
}

/// Checks `orderBy`: the emulator lists in name order only.
pub(crate) fn check_order_by(s: &str) -> Result<()> {
    match s.trim() {
        "" | "name" | "name asc" => Ok(()),
        other => Err(invalid(format!(
            "orderBy {other:?} is not supported by the emulator: it lists in name order (\"name\")"
        ))),
    }
}

/// Page size from the request: 0 means the default (1000); at most 1000.
pub(crate) fn page_size(v: Option<&str>) -> Result<usize> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(1000),
        Some(s) => match s.parse::<i64>() {
            Ok(0) => Ok(1000),
            Ok(n) if n > 0 => Ok(n.min(1000) as usize),
            _ => Err(invalid(format!("pageSize {s:?} must be a non-negative integer"))),
        },
    }
}

/// A page token names the last item of the previous page.
pub(crate) fn page_token(v: Option<&str>) -> Result<Option<String>> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) => wire::b64_url_decode(t)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("after:").map(str::to_string))
            .map(Some)
            .ok_or_else(|| invalid("pageToken is not a token this server returned")),
    }
}

pub(crate) fn make_token(last: &str) -> String {
    wire::b64_url(format!("after:{last}").as_bytes())
}

/// One page of `items` (already filtered, in order, each with its sort key) and the JSON
/// list response `{<field>: [...], nextPageToken, totalSize}`.
pub(crate) fn page(
    field: &str,
    items: Vec<(String, Value)>,
    size: usize,
    after: Option<&str>,
    key_cmp: impl Fn(&str, &str) -> std::cmp::Ordering,
) -> Value {
    let total = items.len();
    let start = match after {
        Some(a) => items.iter().position(|(k, _)| key_cmp(k, a).is_gt()).unwrap_or(total),
        None => 0,
    };
    let end = (start + size).min(total);
    let mut out = Map::new();
    let page: Vec<Value> = items[start..end].iter().map(|(_, v)| v.clone()).collect();
    if !page.is_empty() {
        out.insert(field.into(), Value::Array(page));
    }
    if end < total {
        out.insert("nextPageToken".into(), make_token(&items[end - 1].0).into());
    }
    if total > 0 {
        out.insert("totalSize".into(), total.into());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_labels_and_enums() {
        let r = json!({"name": "k1", "purpose": "MAC", "labels": {"env_x": "prod"}, "primary": {"state": "ENABLED"}});
        let t = |f: &str| Filter::parse(f).unwrap().matches(&r);
        assert!(t("labels.env_x=prod"));
        assert!(t("labels.env_x:*"));
        assert!(!t("labels.other:*"));
        assert!(t("purpose=MAC AND labels.env_x=\"prod\""));
        assert!(!t("purpose=MAC AND labels.env_x=dev"));
        assert!(t("NOT purpose=ENCRYPT_DECRYPT"));
        assert!(t("primary.state=ENABLED"));
        assert!(t("name:k"));
        assert!(t("purpose!=ENCRYPT_DECRYPT"));
        assert!(Filter::parse("garbage").is_err());
    }

    #[test]
    fn pages_carry_tokens_until_the_end() {
        let items: Vec<(String, Value)> = (1..=5).map(|i| (format!("k{i}"), json!(i))).collect();
        let p1 = page("x", items.clone(), 2, None, str::cmp);
        assert_eq!(p1["x"], json!([1, 2]));
        assert_eq!(p1["totalSize"], 5);
        let tok = page_token(p1["nextPageToken"].as_str()).unwrap();
        let p2 = page("x", items.clone(), 2, tok.as_deref(), str::cmp);
        assert_eq!(p2["x"], json!([3, 4]));
        let tok = page_token(p2["nextPageToken"].as_str()).unwrap();
        let p3 = page("x", items, 2, tok.as_deref(), str::cmp);
        assert_eq!(p3["x"], json!([5]));
        assert!(p3.get("nextPageToken").is_none());
        assert!(page_token(Some("nonsense!")).is_err());
    }
}
