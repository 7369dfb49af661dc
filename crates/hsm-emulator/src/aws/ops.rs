//! The emulator's state (keys, aliases, tags) and its KMS operations.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_core::SignInput;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::keys::{self, ALL_KEY_SPECS, Material, Spec};
use super::{KmsError, now_secs};

const DAY: f64 = 86_400.0;
/// The largest symmetric plaintext, RAW message and MAC message.
const MAX_PLAINTEXT: usize = 4096;
/// How many on-demand rotations AWS allows per key.
const MAX_ON_DEMAND_ROTATIONS: usize = 25;
const MAX_TAGS: usize = 50;
const USAGES: &[&str] =
    &["SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE"];
const ENCRYPTION_ALGS: &[&str] = &["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"];
const SIGNING_ALGS: &[&str] = &[
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "SM2DSA",
    "ML_DSA_SHAKE_256",
    "ED25519_SHA_512",
    "ED25519_PH_SHA_512",
];
const MAC_ALGS: &[&str] = &["HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512"];

type R<T> = Result<T, KmsError>;

/// A UUID (version 4 layout) from 16 random bytes.
pub(crate) fn uuid(b: &[u8]) -> String {
    let mut b: [u8; 16] = b.get(..16).and_then(|s| s.try_into().ok()).unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = super::sigv4::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn validation(field: &str, constraint: impl std::fmt::Display, value: impl std::fmt::Display) -> KmsError {
    KmsError::new(
        "ValidationException",
        format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ),
    )
}

fn camel(name: &str) -> String {
    let mut c = name.chars();
    c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
}

fn one_of(field: &str, value: &str, set: &[&str]) -> R<()> {
    if set.contains(&value) {
        Ok(())
    } else {
        Err(validation(
            &camel(field),
            format!("Member must satisfy enum value set: [{}]", set.join(", ")),
            value,
        ))
    }
}

/// A request body.
pub(crate) struct Input(pub(crate) Map<String, Value>);

impl Input {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn wrong_type(name: &str, what: &str) -> KmsError {
        KmsError::new("SerializationException", format!("'{name}' must be {what}"))
    }

    fn missing(name: &str) -> KmsError {
        KmsError::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                camel(name)
            ),
        )
    }

    fn str(&self, name: &str) -> R<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Self::wrong_type(name, "a string")),
        }
    }

    fn req_str(&self, name: &str) -> R<&str> {
        self.str(name)?.ok_or_else(|| Self::missing(name))
    }

    /// A string field that must have 1 to `max` characters.
    fn id(&self, name: &str, max: usize) -> R<&str> {
        let s = self.req_str(name)?;
        if s.is_empty() || s.chars().count() > max {
            return Err(validation(
                &camel(name),
                format!("Member must have length between 1 and {max}"),
                s.chars().take(64).collect::<String>(),
            ));
        }
        Ok(s)
    }

    fn opt_id(&self, name: &str, max: usize) -> R<Option<&str>> {
        if self.get(name).is_none() { Ok(None) } else { self.id(name, max).map(Some) }
    }

    fn blob(&self, name: &str) -> R<Option<Zeroizing<Vec<u8>>>> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) => B64
                .decode(s)
                .map(|b| Some(Zeroizing::new(b)))
                .map_err(|_| Self::wrong_type(name, "base64 (standard alphabet)")),
        }
    }

    /// A blob of `min` to `max` bytes.
    fn req_blob(&self, name: &str, min: usize, max: usize) -> R<Zeroizing<Vec<u8>>> {
        let b = self.blob(name)?.ok_or_else(|| Self::missing(name))?;
        if b.len() < min || b.len() > max {
            return Err(validation(
                &camel(name),
                format!("Member must have length {} {min} and {max}", "between"),
                format!("({} bytes)", b.len()),
            ));
        }
        Ok(b)
    }

    fn int(&self, name: &str) -> R<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| Self::wrong_type(name, "an integer"))
            }
            Some(_) => Err(Self::wrong_type(name, "an integer")),
        }
    }

    /// An integer in `min..=max`, if present.
    fn ranged(&self, name: &str, min: i64, max: i64) -> R<Option<i64>> {
        let Some(v) = self.int(name)? else { return Ok(None) };
        if v < min {
            return Err(validation(
                &camel(name),
                format!("Member must have value greater than or equal to {min}"),
                v,
            ));
        }
        if v > max {
            return Err(validation(
                &camel(name),
                format!("Member must have value less than or equal to {max}"),
                v,
            ));
        }
        Ok(Some(v))
    }

    fn bool(&self, name: &str) -> R<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::wrong_type(name, "a boolean")),
        }
    }

    fn context(&self, name: &str) -> R<BTreeMap<String, String>> {
        match self.get(name) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Self::wrong_type(name, "a map of strings to strings")),
                })
                .collect(),
            Some(_) => Err(Self::wrong_type(name, "a map of strings to strings")),
        }
    }

    fn tags(&self, name: &str) -> R<Vec<(String, String)>> {
        let Some(v) = self.get(name) else { return Ok(Vec::new()) };
        let Value::Array(items) = v else { return Err(Self::wrong_type(name, "a list of tags")) };
        let mut out = Vec::new();
        for item in items {
            let Value::Object(m) = item else { return Err(Self::wrong_type(name, "a list of tags")) };
            let t = Input(m.clone());
            let k = t.req_str("TagKey")?;
            let v = t.req_str("TagValue")?;
            if k.is_empty() || k.chars().count() > 128 {
                return Err(validation("tags.member.tagKey", "Member must have length between 1 and 128", k));
            }
            if v.chars().count() > 256 {
                return Err(validation(
                    "tags.member.tagValue",
                    "Member must have length less than or equal to 256",
                    v,
                ));
            }
            out.push((k.to_owned(), v.to_owned()));
        }
        Ok(out)
    }

    fn strings(&self, name: &str) -> R<Vec<String>> {
        let Some(v) = self.get(name) else { return Ok(Vec::new()) };
        let Value::Array(items) = v else { return Err(Self::wrong_type(name, "a list of strings")) };
        items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| Self::wrong_type(name, "a list of strings")))
            .collect()
    }

    fn dry_run(&self) -> R<()> {
        if self.bool("DryRun")? == Some(true) {
            return Err(KmsError::new(
                "DryRunOperationException",
                "The request would have succeeded, but the DryRun option is set.",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Enabled => "Enabled",
            State::Disabled => "Disabled",
            State::PendingDeletion => "PendingDeletion",
        }
    }
}

struct Rotation {
    material_id: String,
    date: f64,
}

struct Key {
    id: String,
    arn: String,
    created: f64,
    description: String,
    spec: Spec,
    usage: &'static str,
    state: State,
    deletion: Option<(f64, i64)>,
    tags: BTreeMap<String, String>,
    material: Arc<Material>,
    rotation_period: Option<i64>,
    rotations: Vec<Rotation>,
}

struct Alias {
    target: String,
    created: f64,
    updated: f64,
}

#[derive(Default)]
struct Store {
    keys: HashMap<String, Key>,
    /// Key ids in creation order (ListKeys pages through this).
    order: Vec<String>,
    aliases: BTreeMap<String, Alias>,
}

/// What a cryptographic operation needs of a key, taken out of the lock.
struct Use {
    id: String,
    arn: String,
    spec: Spec,
    usage: &'static str,
    material: Arc<Material>,
}

/// The emulated KMS of one account and region.
pub(crate) struct Kms {
    region: String,
    account: String,
    store: Mutex<Store>,
    persist: Option<crate::state::Persist>,
}

/// The operations that change the store (saved to `--state` after they succeed).
const MUTATING: &[&str] = &[
    "CreateKey",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "TagResource",
    "UntagResource",
    "UpdateKeyDescription",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "RotateKeyOnDemand",
    "EnableKeyRotation",
    "DisableKeyRotation",
];

impl State {
    fn parse(s: &str) -> Option<State> {
        [State::Enabled, State::Disabled, State::PendingDeletion].into_iter().find(|st| st.as_str() == s)
    }
}

impl Store {
    /// The whole store as JSON for `--state` (key material included: the state file is
    /// encrypted).
    fn snapshot(&self) -> R<Value> {
        let mut keys = Vec::with_capacity(self.order.len());
        for id in &self.order {
            let Some(k) = self.keys.get(id) else { continue };
            keys.push(json!({
                "id": k.id,
                "arn": k.arn,
                "created": k.created,
                "description": k.description,
                "spec": k.spec.as_str(),
                "usage": k.usage,
                "state": k.state.as_str(),
                "deletion": k.deletion,
                "tags": k.tags,
                "material": k.material.export()?,
                "rotationPeriod": k.rotation_period,
                "rotations": k.rotations.iter().map(|r| json!([r.material_id, r.date])).collect::<Vec<_>>(),
            }));
        }
        let aliases: Map<String, Value> = self
            .aliases
            .iter()
            .map(|(name, a)| (name.clone(), json!([a.target, a.created, a.updated])))
            .collect();
        Ok(json!({"keys": keys, "aliases": aliases}))
    }

    /// A store from [`Store::snapshot`]; `None` when any part of it does not parse.
    fn restore(v: &Value) -> Option<Store> {
        let mut st = Store::default();
        for k in v.get("keys")?.as_array()? {
            let spec = Spec::parse(k.get("spec")?.as_str()?)?;
            let usage = k.get("usage")?.as_str()?;
            let usage: &'static str = spec.usages().iter().find(|u| **u == usage)?;
            let rotations = k
                .get("rotations")?
                .as_array()?
                .iter()
                .map(|r| {
                    Some(Rotation { material_id: r.get(0)?.as_str()?.to_owned(), date: r.get(1)?.as_f64()? })
                })
                .collect::<Option<Vec<_>>>()?;
            let key = Key {
                id: k.get("id")?.as_str()?.to_owned(),
                arn: k.get("arn")?.as_str()?.to_owned(),
                created: k.get("created")?.as_f64()?,
                description: k.get("description")?.as_str()?.to_owned(),
                spec,
                usage,
                state: State::parse(k.get("state")?.as_str()?)?,
                deletion: serde_json::from_value(k.get("deletion")?.clone()).ok()?,
                tags: serde_json::from_value(k.get("tags")?.clone()).ok()?,
                material: Arc::new(Material::restore(spec, usage, k.get("material")?)?),
                rotation_period: serde_json::from_value(k.get("rotationPeriod")?.clone()).ok()?,
                rotations,
            };
            st.order.push(key.id.clone());
            st.keys.insert(key.id.clone(), key);
        }
        for (name, a) in v.get("aliases")?.as_object()? {
            let alias = Alias {
                target: a.get(0)?.as_str()?.to_owned(),
                created: a.get(1)?.as_f64()?,
                updated: a.get(2)?.as_f64()?,
            };
            st.aliases.insert(name.clone(), alias);
        }
        Some(st)
    }
}

fn marker(kind: &str, at: &str) -> String {
    B64.encode(format!("{kind}:{at}"))
}

fn unmarker(kind: &str, m: Option<&str>) -> R<Option<String>> {
    let Some(m) = m else { return Ok(None) };
    B64.decode(m)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(&format!("{kind}:")).map(str::to_owned))
        .map(Some)
        .ok_or_else(|| KmsError::new("InvalidMarkerException", "Invalid marker"))
}

fn b64(b: &[u8]) -> Value {
    Value::String(B64.encode(b))
}

impl Kms {
    /// A KMS whose state is in memory, or loaded from and saved to `persist`.
    ///
    /// # Errors
    /// When the saved state does not parse (a state written by another mode or a newer build).
    pub(crate) fn new(
        region: &str,
        account: &str,
        persist: Option<crate::state::Persist>,
    ) -> Result<Self, String> {
        let store = match persist.as_ref().and_then(crate::state::Persist::load) {
            None => Store::default(),
            Some(saved) => Store::restore(&saved).ok_or("the aws section of the state does not parse")?,
        };
        Ok(Kms { region: region.to_owned(), account: account.to_owned(), store: Mutex::new(store), persist })
    }

    /// Saves the store when `--state` is in use; holds the store lock while writing, so saves
    /// land in the order of the changes.
    fn persist(&self) -> R<()> {
        let Some(p) = &self.persist else { return Ok(()) };
        let st = self.lock();
        let snapshot = st.snapshot()?;
        p.save(snapshot).map_err(|e| KmsError::internal(format!("the change was made but not saved: {e}")))
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arn_prefix(&self) -> String {
        format!("arn:aws:kms:{}:{}:", self.region, self.account)
    }

    /// Answers one operation; `Ok(None)` is an empty 200.
    pub(crate) fn dispatch(&self, op: &str, input: &Input) -> R<Option<Value>> {
        let answer = self.dispatch_op(op, input)?;
        if MUTATING.contains(&op) {
            self.persist()?;
        }
        Ok(answer)
    }

    fn dispatch_op(&self, op: &str, input: &Input) -> R<Option<Value>> {
        let v = match op {
            "CreateKey" => self.create_key(input)?,
            "DescribeKey" => self.describe_key(input)?,
            "ListKeys" => self.list_keys(input)?,
            "ListAliases" => self.list_aliases(input)?,
            "CreateAlias" => return self.create_alias(input, false).map(|()| None),
            "UpdateAlias" => return self.create_alias(input, true).map(|()| None),
            "DeleteAlias" => return self.delete_alias(input).map(|()| None),
            "TagResource" => return self.tag_resource(input).map(|()| None),
            "UntagResource" => return self.untag_resource(input).map(|()| None),
            "ListResourceTags" => self.list_resource_tags(input)?,
            "UpdateKeyDescription" => return self.update_description(input).map(|()| None),
            "EnableKey" => return self.set_enabled(input, true).map(|()| None),
            "DisableKey" => return self.set_enabled(input, false).map(|()| None),
            "ScheduleKeyDeletion" => self.schedule_deletion(input)?,
            "CancelKeyDeletion" => self.cancel_deletion(input)?,
            "Encrypt" => self.encrypt(input)?,
            "Decrypt" => self.decrypt(input)?,
            "ReEncrypt" => self.re_encrypt(input)?,
            "GenerateDataKey" => self.generate_data_key(input, true)?,
            "GenerateDataKeyWithoutPlaintext" => self.generate_data_key(input, false)?,
            "GenerateRandom" => self.generate_random(input)?,
            "Sign" => self.sign(input)?,
            "Verify" => self.verify(input)?,
            "GetPublicKey" => self.get_public_key(input)?,
            "GenerateMac" => self.generate_mac(input, None)?,
            "VerifyMac" => self.generate_mac(input, Some(()))?,
            "RotateKeyOnDemand" => self.rotate_on_demand(input)?,
            "GetKeyRotationStatus" => self.rotation_status(input)?,
            "EnableKeyRotation" => return self.set_rotation(input, true).map(|()| None),
            "DisableKeyRotation" => return self.set_rotation(input, false).map(|()| None),
            "ListKeyRotations" => self.list_rotations(input)?,
            other => {
                return Err(KmsError::new(
                    "UnsupportedOperationException",
                    format!("hsm-emulator does not implement the KMS operation {other}"),
                ));
            }
        };
        Ok(Some(v))
    }

    // ---- lookup ----

    /// The key id `key_id` names (a key id, key ARN, alias name or alias ARN when
    /// `allow_alias`).
    fn resolve(&self, st: &Store, key_id: &str, allow_alias: bool) -> R<String> {
        let prefix = self.arn_prefix();
        let resource = if let Some(rest) = key_id.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            if parts.len() != 5 || parts[1] != "kms" || parts[4].is_empty() {
                return Err(KmsError::new("InvalidArnException", format!("Invalid arn {key_id}")));
            }
            if !key_id.starts_with(&prefix) {
                return Err(KmsError::new("NotFoundException", format!("Key '{key_id}' does not exist")));
            }
            &key_id[prefix.len()..]
        } else if key_id.starts_with("alias/") {
            key_id
        } else {
            return match st.keys.contains_key(key_id) {
                true => Ok(key_id.to_owned()),
                false => Err(KmsError::new(
                    "NotFoundException",
                    format!("Key '{prefix}key/{key_id}' does not exist"),
                )),
            };
        };
        if let Some(id) = resource.strip_prefix("key/") {
            return match st.keys.contains_key(id) {
                true => Ok(id.to_owned()),
                false => {
                    Err(KmsError::new("NotFoundException", format!("Key '{prefix}key/{id}' does not exist")))
                }
            };
        }
        if resource.starts_with("alias/") {
            if !allow_alias {
                return Err(KmsError::new(
                    "NotFoundException",
                    format!(
                        "Invalid keyId '{key_id}': this operation takes a key id or key ARN, not an alias"
                    ),
                ));
            }
            return st.aliases.get(resource).map(|a| a.target.clone()).ok_or_else(|| {
                KmsError::new("NotFoundException", format!("Alias {prefix}{resource} is not found."))
            });
        }
        Err(KmsError::new("NotFoundException", format!("Invalid keyId '{key_id}'")))
    }

    fn key_mut<'s>(&self, st: &'s mut Store, key_id: &str, allow_alias: bool) -> R<&'s mut Key> {
        let id = self.resolve(st, key_id, allow_alias)?;
        st.keys.get_mut(&id).ok_or_else(|| KmsError::internal("key index out of step"))
    }

    fn disabled(k: &Key) -> KmsError {
        KmsError::new("DisabledException", format!("{} is disabled.", k.arn))
    }

    fn pending(k: &Key) -> KmsError {
        KmsError::new("KMSInvalidStateException", format!("{} is pending deletion.", k.arn))
    }

    fn not_pending(k: &Key) -> R<()> {
        if k.state == State::PendingDeletion { Err(Self::pending(k)) } else { Ok(()) }
    }

    /// An enabled key, for a cryptographic operation.
    fn usable(&self, key_id: &str) -> R<Use> {
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, true)?;
        match k.state {
            State::Disabled => return Err(Self::disabled(k)),
            State::PendingDeletion => return Err(Self::pending(k)),
            State::Enabled => {}
        }
        Ok(Use {
            id: k.id.clone(),
            arn: k.arn.clone(),
            spec: k.spec,
            usage: k.usage,
            material: k.material.clone(),
        })
    }

    fn metadata(&self, k: &Key) -> Value {
        let mut m = json!({
            "AWSAccountId": self.account,
            "KeyId": k.id,
            "Arn": k.arn,
            "CreationDate": k.created,
            "Enabled": k.state == State::Enabled,
            "Description": k.description,
            "KeyUsage": k.usage,
            "KeyState": k.state.as_str(),
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": k.spec.as_str(),
            "KeySpec": k.spec.as_str(),
            "MultiRegion": false,
        });
        let Value::Object(obj) = &mut m else { return m };
        match k.usage {
            "ENCRYPT_DECRYPT" => {
                obj.insert("EncryptionAlgorithms".into(), json!(k.spec.encryption_algorithms()));
            }
            "SIGN_VERIFY" => {
                obj.insert("SigningAlgorithms".into(), json!(k.spec.signing_algorithms()));
            }
            _ => {}
        }
        if let Some(mac) = k.spec.mac_algorithm() {
            obj.insert("MacAlgorithms".into(), json!([mac]));
        }
        if let Material::Symmetric(v) = &*k.material
            && let Some(cur) = v.last()
        {
            obj.insert("CurrentKeyMaterialId".into(), json!(cur.id));
        }
        if let Some((date, days)) = k.deletion {
            obj.insert("DeletionDate".into(), json!(date));
            obj.insert("PendingDeletionWindowInDays".into(), json!(days));
        }
        m
    }

    // ---- keys ----

    fn create_key(&self, input: &Input) -> R<Value> {
        let spec_name = match (input.str("KeySpec")?, input.str("CustomerMasterKeySpec")?) {
            (Some(_), Some(_)) => {
                return Err(KmsError::new(
                    "ValidationException",
                    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
                     CustomerMasterKeySpec is deprecated.",
                ));
            }
            (Some(s), None) => ("KeySpec", s),
            (None, Some(s)) => ("CustomerMasterKeySpec", s),
            (None, None) => ("KeySpec", "SYMMETRIC_DEFAULT"),
        };
        one_of(spec_name.0, spec_name.1, ALL_KEY_SPECS)?;
        let Some(spec) = Spec::parse(spec_name.1) else {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                format!("hsm-emulator does not implement {} keys", spec_name.1),
            ));
        };
        let usage = match input.str("KeyUsage")? {
            Some(u) => {
                one_of("KeyUsage", u, USAGES)?;
                u
            }
            // AWS's default; asymmetric and HMAC keys must name their usage.
            None => "ENCRYPT_DECRYPT",
        };
        let Some(&usage) = spec.usages().iter().find(|u| **u == usage) else {
            return Err(KmsError::new(
                "ValidationException",
                format!(
                    "KeyUsage {usage} is not compatible with KeySpec {}; it allows {}",
                    spec.as_str(),
                    spec.usages().join(", ")
                ),
            ));
        };
        if usage == "KEY_AGREEMENT" {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                "hsm-emulator does not implement KEY_AGREEMENT keys",
            ));
        }
        if let Some(origin) = input.str("Origin")? {
            one_of("Origin", origin, &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"])?;
            if origin != "AWS_KMS" {
                return Err(KmsError::new(
                    "UnsupportedOperationException",
                    format!("hsm-emulator does not implement Origin {origin}"),
                ));
            }
        }
        if input.str("CustomKeyStoreId")?.is_some() || input.str("XksKeyId")?.is_some() {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                "hsm-emulator has no custom key stores",
            ));
        }
        if input.bool("MultiRegion")? == Some(true) {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                "hsm-emulator has no multi-Region keys",
            ));
        }
        let description = input.str("Description")?.unwrap_or_default().to_owned();
        if description.chars().count() > 8192 {
            return Err(validation("description", "Member must have length less than or equal to 8192", "…"));
        }
        let tags = input.tags("Tags")?;
        check_tags(&tags)?;
        if tags.len() > MAX_TAGS {
            return Err(KmsError::new("TagException", format!("A KMS key can have at most {MAX_TAGS} tags")));
        }
        let material = Arc::new(Material::generate(spec, usage)?);
        let id = uuid(&keys::random_bytes(16)?);
        let key = Key {
            arn: format!("{}key/{id}", self.arn_prefix()),
            id: id.clone(),
            created: now_secs(),
            description,
            spec,
            usage,
            state: State::Enabled,
            deletion: None,
            tags: tags.into_iter().collect(),
            material,
            rotation_period: None,
            rotations: Vec::new(),
        };
        let meta = self.metadata(&key);
        let mut st = self.lock();
        st.order.push(id.clone());
        st.keys.insert(id, key);
        Ok(json!({ "KeyMetadata": meta }))
    }

    fn describe_key(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, true)?;
        Ok(json!({ "KeyMetadata": self.metadata(k) }))
    }

    fn list_keys(&self, input: &Input) -> R<Value> {
        let limit = input.ranged("Limit", 1, 1000)?.unwrap_or(100) as usize;
        let start = match unmarker("keys", input.str("Marker")?)? {
            Some(n) => {
                n.parse::<usize>().map_err(|_| KmsError::new("InvalidMarkerException", "Invalid marker"))?
            }
            None => 0,
        };
        let st = self.lock();
        let page: Vec<Value> = st
            .order
            .iter()
            .skip(start)
            .take(limit)
            .filter_map(|id| st.keys.get(id))
            .map(|k| json!({ "KeyId": k.id, "KeyArn": k.arn }))
            .collect();
        let next = start + limit;
        let mut out = json!({ "Keys": page, "Truncated": next < st.order.len() });
        if next < st.order.len() {
            out["NextMarker"] = json!(marker("keys", &next.to_string()));
        }
        Ok(out)
    }

    fn update_description(&self, input: &Input) -> R<()> {
        let key_id = input.id("KeyId", 2048)?;
        let description = input.req_str("Description")?;
        if description.chars().count() > 8192 {
            return Err(validation("description", "Member must have length less than or equal to 8192", "…"));
        }
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        Self::not_pending(k)?;
        k.description = description.to_owned();
        Ok(())
    }

    fn set_enabled(&self, input: &Input, enabled: bool) -> R<()> {
        let key_id = input.id("KeyId", 2048)?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        Self::not_pending(k)?;
        k.state = if enabled { State::Enabled } else { State::Disabled };
        Ok(())
    }

    fn schedule_deletion(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let days = input.ranged("PendingWindowInDays", 1, 365)?.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(validation(
                "pendingWindowInDays",
                "Member must have value between 7 and 30 (inclusive)",
                days,
            ));
        }
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        Self::not_pending(k)?;
        let date = (now_secs() + days as f64 * DAY).floor();
        k.state = State::PendingDeletion;
        k.deletion = Some((date, days));
        Ok(
            json!({ "KeyId": k.arn, "DeletionDate": date, "KeyState": "PendingDeletion", "PendingWindowInDays": days }),
        )
    }

    fn cancel_deletion(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        if k.state != State::PendingDeletion {
            return Err(KmsError::new(
                "KMSInvalidStateException",
                format!("{} is not pending deletion (it is {}).", k.arn, k.state.as_str()),
            ));
        }
        k.state = State::Disabled;
        k.deletion = None;
        Ok(json!({ "KeyId": k.arn }))
    }

    // ---- aliases ----

    fn alias_name<'a>(&self, input: &'a Input) -> R<&'a str> {
        let name = input.id("AliasName", 256)?;
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-')) {
            return Err(validation(
                "aliasName",
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
                name,
            ));
        }
        if !name.starts_with("alias/") || name.len() == "alias/".len() {
            return Err(KmsError::new(
                "InvalidAliasNameException",
                format!("Alias must start with the prefix \"alias/\": {name}"),
            ));
        }
        Ok(name)
    }

    fn create_alias(&self, input: &Input, update: bool) -> R<()> {
        let name = self.alias_name(input)?;
        let target = input.id("TargetKeyId", 2048)?;
        if !update && name.starts_with("alias/aws/") {
            return Err(KmsError::new(
                "InvalidAliasNameException",
                "Alias must not begin with 'alias/aws/'; that prefix is reserved for AWS managed keys.",
            ));
        }
        let mut st = self.lock();
        let prefix = self.arn_prefix();
        let target_id = self.resolve(&st, target, false)?;
        let (spec, usage) = {
            let k = &st.keys[&target_id];
            Self::not_pending(k)?;
            (k.spec, k.usage)
        };
        let now = now_secs();
        if update {
            let Some(old) = st.aliases.get(name).map(|a| a.target.clone()) else {
                return Err(KmsError::new(
                    "NotFoundException",
                    format!("Alias {prefix}{name} is not found."),
                ));
            };
            let old = &st.keys[&old];
            let kind = |s: Spec| (s.is_hmac(), s.is_asymmetric());
            if kind(old.spec) != kind(spec) || old.usage != usage {
                return Err(KmsError::new(
                    "ValidationException",
                    format!(
                        "Alias {name} points to a {} {} key; it can only be moved to a key of the same type and usage, not a {} {} key",
                        old.spec.as_str(),
                        old.usage,
                        spec.as_str(),
                        usage
                    ),
                ));
            }
            if let Some(a) = st.aliases.get_mut(name) {
                a.target = target_id;
                a.updated = now;
            }
            return Ok(());
        }
        if st.aliases.contains_key(name) {
            return Err(KmsError::new(
                "AlreadyExistsException",
                format!("An alias with the name {prefix}{name} already exists"),
            ));
        }
        st.aliases.insert(name.to_owned(), Alias { target: target_id, created: now, updated: now });
        Ok(())
    }

    fn delete_alias(&self, input: &Input) -> R<()> {
        let name = self.alias_name(input)?;
        let mut st = self.lock();
        if st.aliases.remove(name).is_none() {
            return Err(KmsError::new(
                "NotFoundException",
                format!("Alias {}{name} is not found.", self.arn_prefix()),
            ));
        }
        Ok(())
    }

    fn list_aliases(&self, input: &Input) -> R<Value> {
        let limit = input.ranged("Limit", 1, 100)?.unwrap_or(50) as usize;
        let from = unmarker("aliases", input.str("Marker")?)?;
        let st = self.lock();
        let filter = match input.opt_id("KeyId", 2048)? {
            Some(k) => Some(self.resolve(&st, k, false)?),
            None => None,
        };
        let prefix = self.arn_prefix();
        let mut items = st
            .aliases
            .range(from.clone().unwrap_or_default()..)
            .filter(|(_, a)| filter.as_ref().is_none_or(|f| *f == a.target));
        let page: Vec<Value> = items
            .by_ref()
            .take(limit)
            .map(|(name, a)| {
                json!({
                    "AliasName": name,
                    "AliasArn": format!("{prefix}{name}"),
                    "TargetKeyId": a.target,
                    "CreationDate": a.created,
                    "LastUpdatedDate": a.updated,
                })
            })
            .collect();
        let next = items.next().map(|(n, _)| n.clone());
        let mut out = json!({ "Aliases": page, "Truncated": next.is_some() });
        if let Some(n) = next {
            out["NextMarker"] = json!(marker("aliases", &n));
        }
        Ok(out)
    }

    // ---- tags ----

    fn tag_resource(&self, input: &Input) -> R<()> {
        let key_id = input.id("KeyId", 2048)?;
        let tags = input.tags("Tags")?;
        if input.get("Tags").is_none() {
            return Err(Input::missing("Tags"));
        }
        check_tags(&tags)?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        Self::not_pending(k)?;
        let mut merged = k.tags.clone();
        merged.extend(tags);
        if merged.len() > MAX_TAGS {
            return Err(KmsError::new("TagException", format!("A KMS key can have at most {MAX_TAGS} tags")));
        }
        k.tags = merged;
        Ok(())
    }

    fn untag_resource(&self, input: &Input) -> R<()> {
        let key_id = input.id("KeyId", 2048)?;
        if input.get("TagKeys").is_none() {
            return Err(Input::missing("TagKeys"));
        }
        let names = input.strings("TagKeys")?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        Self::not_pending(k)?;
        for n in names {
            k.tags.remove(&n);
        }
        Ok(())
    }

    fn list_resource_tags(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let limit = input.ranged("Limit", 1, 50)?.unwrap_or(50) as usize;
        let from = unmarker("tags", input.str("Marker")?)?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        let mut items = k.tags.range(from.unwrap_or_default()..);
        let page: Vec<Value> =
            items.by_ref().take(limit).map(|(t, v)| json!({ "TagKey": t, "TagValue": v })).collect();
        let next = items.next().map(|(n, _)| n.clone());
        let mut out = json!({ "Tags": page, "Truncated": next.is_some() });
        if let Some(n) = next {
            out["NextMarker"] = json!(marker("tags", &n));
        }
        Ok(out)
    }

    // ---- encryption ----

    fn encryption_alg<'a>(input: &'a Input, name: &str) -> R<&'a str> {
        let alg = input.str(name)?.unwrap_or("SYMMETRIC_DEFAULT");
        one_of(name, alg, ENCRYPTION_ALGS)?;
        Ok(alg)
    }

    fn check_encrypt_key(u: &Use, alg: &str, op: &str) -> R<()> {
        if u.usage != "ENCRYPT_DECRYPT" {
            return Err(KmsError::new(
                "InvalidKeyUsageException",
                format!("{} key usage is {} which is not valid for {op}.", u.arn, u.usage),
            ));
        }
        if !u.spec.encryption_algorithms().contains(&alg) {
            return Err(KmsError::new(
                "InvalidKeyUsageException",
                format!("Algorithm {alg} is incompatible with key spec {}.", u.spec.as_str()),
            ));
        }
        Ok(())
    }

    /// Encrypts under a usable key; returns the key ARN, the blob and the material id.
    fn encrypt_with(
        &self,
        op: &str,
        key_id: &str,
        plaintext: &[u8],
        ctx: &BTreeMap<String, String>,
        alg: &str,
    ) -> R<(String, Vec<u8>, Option<String>)> {
        let u = self.usable(key_id)?;
        Self::check_encrypt_key(&u, alg, op)?;
        if let Material::Symmetric(versions) = &*u.material {
            let cur = versions.last().ok_or_else(|| KmsError::internal("key has no material"))?;
            let blob = keys::seal(
                &u.id,
                (versions.len() - 1) as u32,
                cur,
                plaintext,
                &keys::canonical_context(ctx),
            )?;
            return Ok((u.arn, blob, Some(cur.id.clone())));
        }
        if !ctx.is_empty() {
            return Err(KmsError::new(
                "ValidationException",
                "EncryptionContext is not supported with asymmetric KMS keys",
            ));
        }
        let max = u.spec.max_oaep_plaintext(alg);
        if plaintext.len() > max {
            return Err(KmsError::new(
                "ValidationException",
                format!(
                    "Plaintext is {} bytes; {alg} under a {} key encrypts at most {max}",
                    plaintext.len(),
                    u.spec.as_str()
                ),
            ));
        }
        Ok((u.arn, u.material.rsa_encrypt(alg, plaintext)?, None))
    }

    /// Decrypts; returns the key ARN, the plaintext and the material id.
    fn decrypt_with(
        &self,
        op: &str,
        key_id: Option<&str>,
        blob: &[u8],
        ctx: &BTreeMap<String, String>,
        alg: &str,
    ) -> R<(String, Zeroizing<Vec<u8>>, Option<String>)> {
        let bad = || {
            KmsError::new(
                "InvalidCiphertextException",
                "The ciphertext is invalid or does not match the encryption context.",
            )
        };
        if alg != "SYMMETRIC_DEFAULT" {
            let Some(key_id) = key_id else {
                return Err(KmsError::new(
                    "ValidationException",
                    format!("KeyId is required to decrypt with {alg} (an asymmetric KMS key)"),
                ));
            };
            let u = self.usable(key_id)?;
            Self::check_encrypt_key(&u, alg, op)?;
            if !ctx.is_empty() {
                return Err(KmsError::new(
                    "ValidationException",
                    "EncryptionContext is not supported with asymmetric KMS keys",
                ));
            }
            let pt = u.material.rsa_decrypt(alg, blob).ok_or_else(bad)?;
            return Ok((u.arn, pt, None));
        }
        let header = keys::blob_header(blob);
        let u = match (key_id, header) {
            (Some(k), h) => {
                let u = self.usable(k)?;
                Self::check_encrypt_key(&u, alg, op)?;
                let Some((id, _)) = h else { return Err(bad()) };
                if id != u.id {
                    return Err(KmsError::new(
                        "IncorrectKeyException",
                        "The key ID in the request does not identify a KMS key that can perform this operation.",
                    ));
                }
                u
            }
            (None, Some((id, _))) => {
                let exists = self.lock().keys.contains_key(id);
                if !exists {
                    return Err(bad());
                }
                let u = self.usable(id)?;
                Self::check_encrypt_key(&u, alg, op)?;
                u
            }
            (None, None) => return Err(bad()),
        };
        let (_, index) = header.ok_or_else(bad)?;
        let Material::Symmetric(versions) = &*u.material else { return Err(bad()) };
        let version = versions.get(index as usize).ok_or_else(bad)?;
        let pt = keys::open(blob, version, &keys::canonical_context(ctx)).ok_or_else(bad)?;
        Ok((u.arn, pt, Some(version.id.clone())))
    }

    fn encrypt(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let plaintext = input.req_blob("Plaintext", 1, MAX_PLAINTEXT)?;
        let ctx = input.context("EncryptionContext")?;
        let alg = Self::encryption_alg(input, "EncryptionAlgorithm")?;
        let (arn, blob, _) = self.encrypt_with("Encrypt", key_id, &plaintext, &ctx, alg)?;
        input.dry_run()?;
        Ok(json!({ "CiphertextBlob": b64(&blob), "KeyId": arn, "EncryptionAlgorithm": alg }))
    }

    fn decrypt(&self, input: &Input) -> R<Value> {
        let blob = input.req_blob("CiphertextBlob", 1, 6144)?;
        let key_id = input.opt_id("KeyId", 2048)?;
        let ctx = input.context("EncryptionContext")?;
        let alg = Self::encryption_alg(input, "EncryptionAlgorithm")?;
        let (arn, pt, material) = self.decrypt_with("Decrypt", key_id, &blob, &ctx, alg)?;
        input.dry_run()?;
        let mut out = json!({ "KeyId": arn, "Plaintext": b64(&pt), "EncryptionAlgorithm": alg });
        if let Some(m) = material {
            out["KeyMaterialId"] = json!(m);
        }
        Ok(out)
    }

    fn re_encrypt(&self, input: &Input) -> R<Value> {
        let blob = input.req_blob("CiphertextBlob", 1, 6144)?;
        let source = input.opt_id("SourceKeyId", 2048)?;
        let dest = input.id("DestinationKeyId", 2048)?;
        let src_ctx = input.context("SourceEncryptionContext")?;
        let dst_ctx = input.context("DestinationEncryptionContext")?;
        let src_alg = Self::encryption_alg(input, "SourceEncryptionAlgorithm")?;
        let dst_alg = Self::encryption_alg(input, "DestinationEncryptionAlgorithm")?;
        let (src_arn, pt, src_material) = self.decrypt_with("ReEncrypt", source, &blob, &src_ctx, src_alg)?;
        let (dst_arn, out_blob, dst_material) =
            self.encrypt_with("ReEncrypt", dest, &pt, &dst_ctx, dst_alg)?;
        input.dry_run()?;
        let mut out = json!({
            "CiphertextBlob": b64(&out_blob),
            "SourceKeyId": src_arn,
            "KeyId": dst_arn,
            "SourceEncryptionAlgorithm": src_alg,
            "DestinationEncryptionAlgorithm": dst_alg,
        });
        if let Some(m) = src_material {
            out["SourceKeyMaterialId"] = json!(m);
        }
        if let Some(m) = dst_material {
            out["DestinationKeyMaterialId"] = json!(m);
        }
        Ok(out)
    }

    fn generate_data_key(&self, input: &Input, with_plaintext: bool) -> R<Value> {
        let op = if with_plaintext { "GenerateDataKey" } else { "GenerateDataKeyWithoutPlaintext" };
        let key_id = input.id("KeyId", 2048)?;
        let ctx = input.context("EncryptionContext")?;
        let len = match (input.str("KeySpec")?, input.ranged("NumberOfBytes", 1, 1024)?) {
            (Some(_), Some(_)) => {
                return Err(KmsError::new(
                    "ValidationException",
                    "Please specify either number of bytes or key spec.",
                ));
            }
            (None, None) => {
                return Err(KmsError::new(
                    "ValidationException",
                    "Please specify either number of bytes or key spec.",
                ));
            }
            (Some(spec), None) => {
                one_of("KeySpec", spec, &["AES_256", "AES_128"])?;
                if spec == "AES_256" { 32 } else { 16 }
            }
            (None, Some(n)) => n as usize,
        };
        {
            let u = self.usable(key_id)?;
            if u.spec != Spec::SymmetricDefault {
                return Err(KmsError::new(
                    "InvalidKeyUsageException",
                    format!("Algorithm SYMMETRIC_DEFAULT is incompatible with key spec {}.", u.spec.as_str()),
                ));
            }
        }
        let data_key = keys::random_bytes(len)?;
        let (arn, blob, material) = self.encrypt_with(op, key_id, &data_key, &ctx, "SYMMETRIC_DEFAULT")?;
        input.dry_run()?;
        let mut out = json!({ "CiphertextBlob": b64(&blob), "KeyId": arn });
        if with_plaintext {
            out["Plaintext"] = b64(&data_key);
        }
        if let Some(m) = material {
            out["KeyMaterialId"] = json!(m);
        }
        Ok(out)
    }

    fn generate_random(&self, input: &Input) -> R<Value> {
        if input.str("CustomKeyStoreId")?.is_some() {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                "hsm-emulator has no custom key stores",
            ));
        }
        let n = input.ranged("NumberOfBytes", 1, 1024)?.ok_or_else(|| Input::missing("NumberOfBytes"))?;
        Ok(json!({ "Plaintext": b64(&keys::random_bytes(n as usize)?) }))
    }

    // ---- signing ----

    /// The key, algorithm, message and whether it is a digest, checked as AWS checks them.
    fn sign_request(&self, input: &Input, op: &str) -> R<(Use, &'static str, Zeroizing<Vec<u8>>, bool)> {
        let key_id = input.id("KeyId", 2048)?;
        let message = input.req_blob("Message", 1, MAX_PLAINTEXT)?;
        let message_type = input.str("MessageType")?.unwrap_or("RAW");
        one_of("MessageType", message_type, &["RAW", "DIGEST", "EXTERNAL_MU"])?;
        let alg = input.req_str("SigningAlgorithm")?;
        one_of("SigningAlgorithm", alg, SIGNING_ALGS)?;
        let u = self.usable(key_id)?;
        if u.usage != "SIGN_VERIFY" {
            return Err(KmsError::new(
                "InvalidKeyUsageException",
                format!("{} key usage is {} which is not valid for {op}.", u.arn, u.usage),
            ));
        }
        let Some(&alg) = u.spec.signing_algorithms().iter().find(|a| **a == alg) else {
            return Err(KmsError::new(
                "InvalidKeyUsageException",
                format!("Algorithm {alg} is incompatible with key spec {}.", u.spec.as_str()),
            ));
        };
        if message_type == "EXTERNAL_MU" {
            return Err(KmsError::new(
                "ValidationException",
                "MessageType EXTERNAL_MU is only for ML-DSA keys",
            ));
        }
        if alg == "ED25519_PH_SHA_512" {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                "hsm-emulator does not implement ED25519_PH_SHA_512 (no Ed25519ph in aws-lc-rs)",
            ));
        }
        let digest = message_type == "DIGEST";
        let (_, digest_len) =
            keys::signature_algorithm(alg).ok_or_else(|| KmsError::internal("algorithm table"))?;
        if digest && alg == "ED25519_SHA_512" {
            return Err(KmsError::new(
                "ValidationException",
                "ED25519_SHA_512 signs RAW messages only; use ED25519_PH_SHA_512 for digests",
            ));
        }
        if digest && message.len() != digest_len {
            return Err(KmsError::new(
                "ValidationException",
                format!("Digest is invalid length for algorithm {alg}."),
            ));
        }
        Ok((u, alg, message, digest))
    }

    fn sign(&self, input: &Input) -> R<Value> {
        let (u, alg, message, digest) = self.sign_request(input, "Sign")?;
        let (hsm_alg, _) =
            keys::signature_algorithm(alg).ok_or_else(|| KmsError::internal("algorithm table"))?;
        let sign_input = if digest { SignInput::Digest(&message) } else { SignInput::Message(&message) };
        let sig = u.material.sign(hsm_alg, sign_input)?;
        input.dry_run()?;
        Ok(json!({ "KeyId": u.arn, "Signature": b64(&sig), "SigningAlgorithm": alg }))
    }

    fn verify(&self, input: &Input) -> R<Value> {
        let signature = input.req_blob("Signature", 1, 6144)?;
        let (u, alg, message, digest) = self.sign_request(input, "Verify")?;
        let (hsm_alg, _) =
            keys::signature_algorithm(alg).ok_or_else(|| KmsError::internal("algorithm table"))?;
        let sign_input = if digest { SignInput::Digest(&message) } else { SignInput::Message(&message) };
        input.dry_run()?;
        if !u.material.verify(u.spec, hsm_alg, sign_input, &signature) {
            return Err(KmsError::new("KMSInvalidSignatureException", ""));
        }
        Ok(json!({ "KeyId": u.arn, "SignatureValid": true, "SigningAlgorithm": alg }))
    }

    fn get_public_key(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let u = self.usable(key_id)?;
        let Some(spki) = u.material.spki() else {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                format!("{} key spec {} is not supported for this operation.", u.arn, u.spec.as_str()),
            ));
        };
        let mut out = json!({
            "KeyId": u.arn,
            "PublicKey": b64(spki),
            "CustomerMasterKeySpec": u.spec.as_str(),
            "KeySpec": u.spec.as_str(),
            "KeyUsage": u.usage,
        });
        if u.usage == "ENCRYPT_DECRYPT" {
            out["EncryptionAlgorithms"] = json!(u.spec.encryption_algorithms());
        } else {
            out["SigningAlgorithms"] = json!(u.spec.signing_algorithms());
        }
        Ok(out)
    }

    // ---- MAC ----

    fn generate_mac(&self, input: &Input, verify: Option<()>) -> R<Value> {
        let op = if verify.is_some() { "VerifyMac" } else { "GenerateMac" };
        let key_id = input.id("KeyId", 2048)?;
        let message = input.req_blob("Message", 1, MAX_PLAINTEXT)?;
        let alg = input.req_str("MacAlgorithm")?;
        one_of("MacAlgorithm", alg, MAC_ALGS)?;
        let tag = match verify {
            Some(()) => Some(input.req_blob("Mac", 1, 6144)?),
            None => None,
        };
        let u = self.usable(key_id)?;
        if u.usage != "GENERATE_VERIFY_MAC" {
            return Err(KmsError::new(
                "InvalidKeyUsageException",
                format!("{} key usage is {} which is not valid for {op}.", u.arn, u.usage),
            ));
        }
        if u.spec.mac_algorithm() != Some(alg) {
            return Err(KmsError::new(
                "InvalidKeyUsageException",
                format!("Algorithm {alg} is incompatible with key spec {}.", u.spec.as_str()),
            ));
        }
        input.dry_run()?;
        match tag {
            None => {
                let mac = u.material.mac(&message).ok_or_else(|| KmsError::internal("HMAC"))?;
                Ok(json!({ "Mac": b64(&mac), "MacAlgorithm": alg, "KeyId": u.arn }))
            }
            Some(tag) => {
                if !u.material.verify_mac(&message, &tag) {
                    return Err(KmsError::new("KMSInvalidMacException", ""));
                }
                Ok(json!({ "KeyId": u.arn, "MacValid": true, "MacAlgorithm": alg }))
            }
        }
    }

    // ---- rotation ----

    fn symmetric_only(k: &Key) -> R<()> {
        if k.spec != Spec::SymmetricDefault {
            return Err(KmsError::new(
                "UnsupportedOperationException",
                format!("{} key spec {} is not supported for this operation.", k.arn, k.spec.as_str()),
            ));
        }
        Ok(())
    }

    fn rotate_on_demand(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let fresh = keys::new_sym_version()?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        match k.state {
            State::Disabled => return Err(Self::disabled(k)),
            State::PendingDeletion => return Err(Self::pending(k)),
            State::Enabled => {}
        }
        Self::symmetric_only(k)?;
        if k.rotations.len() >= MAX_ON_DEMAND_ROTATIONS {
            return Err(KmsError::new(
                "LimitExceededException",
                format!(
                    "{} has been rotated on demand {MAX_ON_DEMAND_ROTATIONS} times, the most AWS allows",
                    k.arn
                ),
            ));
        }
        let Material::Symmetric(versions) = &*k.material else {
            return Err(KmsError::internal("symmetric key without symmetric material"));
        };
        let mut versions = versions.clone();
        k.rotations.push(Rotation { material_id: fresh.id.clone(), date: now_secs() });
        versions.push(fresh);
        k.material = Arc::new(Material::Symmetric(versions));
        Ok(json!({ "KeyId": k.id }))
    }

    fn rotation_status(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        Self::not_pending(k)?;
        Self::symmetric_only(k)?;
        let mut out = json!({ "KeyRotationEnabled": k.rotation_period.is_some(), "KeyId": k.arn });
        if let Some(p) = k.rotation_period {
            out["RotationPeriodInDays"] = json!(p);
            out["NextRotationDate"] = json!((k.created + p as f64 * DAY).floor());
        }
        Ok(out)
    }

    fn set_rotation(&self, input: &Input, enable: bool) -> R<()> {
        let key_id = input.id("KeyId", 2048)?;
        let period = input.ranged("RotationPeriodInDays", 90, 2560)?;
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        match k.state {
            State::Disabled => return Err(Self::disabled(k)),
            State::PendingDeletion => return Err(Self::pending(k)),
            State::Enabled => {}
        }
        Self::symmetric_only(k)?;
        k.rotation_period = enable.then_some(period.unwrap_or(365));
        Ok(())
    }

    fn list_rotations(&self, input: &Input) -> R<Value> {
        let key_id = input.id("KeyId", 2048)?;
        let limit = input.ranged("Limit", 1, 1000)?.unwrap_or(100) as usize;
        let start = match unmarker("rotations", input.str("Marker")?)? {
            Some(n) => {
                n.parse::<usize>().map_err(|_| KmsError::new("InvalidMarkerException", "Invalid marker"))?
            }
            None => 0,
        };
        let mut st = self.lock();
        let k = self.key_mut(&mut st, key_id, false)?;
        Self::symmetric_only(k)?;
        let current = match &*k.material {
            Material::Symmetric(v) => v.last().map(|c| c.id.clone()),
            _ => None,
        };
        let page: Vec<Value> = k
            .rotations
            .iter()
            .skip(start)
            .take(limit)
            .map(|r| {
                let state = if Some(&r.material_id) == current.as_ref() { "CURRENT" } else { "NON_CURRENT" };
                json!({
                    "KeyId": k.arn,
                    "KeyMaterialId": r.material_id,
                    "KeyMaterialState": state,
                    "RotationDate": r.date,
                    "RotationType": "ON_DEMAND",
                })
            })
            .collect();
        let next = start + limit;
        let mut out = json!({ "Rotations": page, "Truncated": next < k.rotations.len() });
        if next < k.rotations.len() {
            out["NextMarker"] = json!(marker("rotations", &next.to_string()));
        }
        Ok(out)
    }
}

fn check_tags(tags: &[(String, String)]) -> R<()> {
    for (k, _) in tags {
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(KmsError::new(
                "TagException",
                format!("Tag key '{k}' uses the reserved prefix 'aws:'"),
            ));
        }
    }
    Ok(())
}
