//! The Key Vault keys REST API: authentication (the bearer challenge), routing, request
//! parsing, the operations, and Key Vault's error bodies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::crypto::{CryptoFailure, Curve, Material, RsaComponents, SymParams};
use super::store::{Attrs, Deleted, Key, RECOVERABLE_DAYS, Vault, Version, b64, new_version_id, now};
use crate::server::{Handler, HandlerFuture, Request, Response};

/// The tenant named in the bearer challenge (any GUID does: clients only parse it).
pub(crate) const CHALLENGE_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// Options fixed when the emulator starts.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) managed_hsm: bool,
    /// The host used in `kid`/`nextLink` when a request carries no `Host` header.
    pub(crate) host: String,
    /// When set, the only bearer token accepted.
    pub(crate) token: Option<String>,
    /// When set, every Nth authenticated request is answered 429 Throttled.
    pub(crate) throttle_every: Option<u64>,
}

/// The emulator: options and the vault state.
#[derive(Debug)]
pub(crate) struct Emulator {
    opts: Options,
    vault: Mutex<Vault>,
    persist: Option<crate::state::Persist>,
    /// Authenticated requests so far (for `throttle_every`).
    requests: AtomicU64,
}

/// A Key Vault error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    inner: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), inner: None }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    fn key_not_found(name: &str, version: &str) -> ApiError {
        let id = if version.is_empty() { name.to_string() } else { format!("{name}/{version}") };
        ApiError::new(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            format!(
                "A key with (name/id) {id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command."
            ),
        )
    }

    fn deleted_not_found(name: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "KeyNotFound", format!("Deleted Key not found: {name}"))
    }

    fn forbidden(message: impl Into<String>, inner: &'static str) -> ApiError {
        ApiError { inner: Some(inner), ..ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message) }
    }

    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    fn body(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(inner) = self.inner {
            e["innererror"] = json!({"code": inner});
        }
        json!({"error": e})
    }
}

impl From<CryptoFailure> for ApiError {
    fn from(f: CryptoFailure) -> ApiError {
        match f {
            CryptoFailure::BadInput(m) => ApiError::bad(m),
            CryptoFailure::Opaque => ApiError::bad(
                "The operation failed: the value does not decrypt or unwrap with this key, algorithm and parameters",
            ),
        }
    }
}

type ApiResult<T = Reply> = Result<T, ApiError>;

/// A successful answer: 200 with a JSON body, or 204 with none.
#[derive(Debug)]
enum Reply {
    Json(Value),
    NoContent,
}

/// One request, parsed as far as every route needs.
#[derive(Debug)]
struct Call<'a> {
    method: &'a Method,
    /// Path segments, empty ones kept (`/keys/k//sign` has an empty version segment).
    segments: Vec<&'a str>,
    query: BTreeMap<String, String>,
    body: &'a Bytes,
    /// `https://HOST[:PORT]` as the client addressed the emulator.
    base: String,
    api_version: String,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Rewrites a serde error so it never echoes a value from the request (which could be
/// plaintext or key material sent with the wrong type).
fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    let msg = match (msg.find(": "), msg.find(", expected")) {
        (Some(a), Some(b)) if msg.starts_with("invalid") && a < b => format!("{}{}", &msg[..a], &msg[b..]),
        _ => msg,
    };
    format!("the request body is not valid for this operation: {msg}")
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::bad("the request needs a JSON body"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(describe_json_error(&e)))
}

fn unb64(field: &str, s: &str) -> ApiResult<Vec<u8>> {
    let cleaned: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| {
            if c == '+' {
                '-'
            } else if c == '/' {
                '_'
            } else {
                c
            }
        })
        .collect();
    URL_SAFE_NO_PAD.decode(cleaned).map_err(|_| ApiError::bad(format!("`{field}` is not base64url")))
}

fn unb64_opt(field: &str, s: Option<&String>) -> ApiResult<Option<Vec<u8>>> {
    s.map(|s| unb64(field, s)).transpose()
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 127 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ApiError::bad(format!(
            "The request URI contains an invalid name: {name:?}. Key names are 1 to 127 characters: letters, digits and dashes"
        )));
    }
    Ok(())
}

/// A timestamp attribute: integer seconds (a fractional value is truncated).
fn timestamp(field: &str, v: Option<&Value>) -> ApiResult<Option<Option<i64>>> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(|t| Some(Some(t)))
            .ok_or_else(|| ApiError::bad(format!("attributes.{field} is not a Unix time in seconds"))),
        Some(_) => Err(ApiError::bad(format!("attributes.{field} must be an integer Unix time in seconds"))),
    }
}

#[derive(Debug, Default, Deserialize)]
struct AttrsReq {
    enabled: Option<bool>,
    nbf: Option<Value>,
    exp: Option<Value>,
    exportable: Option<bool>,
}

impl AttrsReq {
    fn apply(&self, a: &mut Attrs) -> ApiResult<()> {
        if let Some(e) = self.enabled {
            a.enabled = e;
        }
        if let Some(t) = timestamp("nbf", self.nbf.as_ref())? {
            a.nbf = t;
        }
        if let Some(t) = timestamp("exp", self.exp.as_ref())? {
            a.exp = t;
        }
        if let Some(x) = self.exportable {
            a.exportable = x;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct CreateReq {
    kty: Option<String>,
    key_size: Option<u32>,
    public_exponent: Option<u64>,
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    attributes: AttrsReq,
    tags: Option<BTreeMap<String, String>>,
    crv: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ImportJwk {
    kty: Option<String>,
    key_ops: Option<Vec<String>>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    p: Option<String>,
    q: Option<String>,
    k: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ImportReq {
    key: ImportJwk,
    #[serde(rename = "Hsm", alias = "hsm")]
    hsm: Option<bool>,
    #[serde(default)]
    attributes: AttrsReq,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct UpdateReq {
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    attributes: AttrsReq,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct OpReq {
    alg: String,
    value: String,
    iv: Option<String>,
    aad: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VerifyReq {
    alg: String,
    digest: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct RngReq {
    count: i64,
}

const ALL_OPS: &[&str] =
    &["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"];

fn default_ops(kty: &str) -> Vec<String> {
    let ops: &[&str] = match kty {
        "EC" | "EC-HSM" => &["sign", "verify"],
        "oct" | "oct-HSM" => &["encrypt", "decrypt", "wrapKey", "unwrapKey"],
        _ => &["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    };
    ops.iter().map(|s| s.to_string()).collect()
}

fn check_ops(kty: &str, ops: Option<Vec<String>>) -> ApiResult<Vec<String>> {
    let Some(ops) = ops else { return Ok(default_ops(kty)) };
    for op in &ops {
        if !ALL_OPS.contains(&op.as_str()) {
            return Err(ApiError::bad(format!(
                "key_ops contains {op:?}; valid operations are {}",
                ALL_OPS.join(", ")
            )));
        }
        let fits = match kty {
            "EC" | "EC-HSM" => !matches!(op.as_str(), "encrypt" | "decrypt" | "wrapKey" | "unwrapKey"),
            "oct" | "oct-HSM" => !matches!(op.as_str(), "sign" | "verify"),
            _ => true,
        };
        if !fits {
            return Err(ApiError::bad(format!("key_ops contains {op:?}, which {kty} keys do not support")));
        }
    }
    Ok(ops)
}

fn check_tags(tags: &BTreeMap<String, String>) -> ApiResult<()> {
    if tags.len() > 15 {
        return Err(ApiError::bad(format!("{} tags given; a key can have at most 15", tags.len())));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 512 {
            return Err(ApiError::bad("tag names must be 1 to 512 characters long"));
        }
        if v.chars().count() > 256 {
            return Err(ApiError::bad(format!("the value of tag {k:?} is longer than 256 characters")));
        }
    }
    Ok(())
}

fn maxresults(call: &Call<'_>) -> ApiResult<usize> {
    match call.query.get("maxresults") {
        None => Ok(25),
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=25) => Ok(n),
            _ => Err(ApiError::bad(format!("maxresults is {s:?}; it must be an integer from 1 to 25"))),
        },
    }
}

/// One page of a listing: `items` from after the skip token, and the `nextLink` if more remain.
fn page(call: &Call<'_>, path: &str, items: Vec<(String, Value)>) -> ApiResult<Reply> {
    let max = maxresults(call)?;
    let skip = call.query.get("$skiptoken").cloned().unwrap_or_default();
    let mut rest = items.into_iter().skip_while(|(k, _)| !skip.is_empty() && k.as_str() <= skip.as_str());
    let taken: Vec<(String, Value)> = rest.by_ref().take(max).collect();
    let more = rest.next().is_some();
    let next = match (more, taken.last()) {
        (true, Some((last, _))) => Value::String(format!(
            "{}/{path}?api-version={}&$skiptoken={last}&maxresults={max}",
            call.base, call.api_version
        )),
        _ => Value::Null,
    };
    Ok(Reply::Json(json!({"value": taken.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "nextLink": next})))
}

impl Emulator {
    /// An emulator whose vault is in memory, or loaded from and saved to `persist`.
    ///
    /// # Errors
    /// When the saved state does not parse.
    pub(crate) fn new(opts: Options, persist: Option<crate::state::Persist>) -> Result<Emulator, String> {
        let vault = match persist.as_ref().and_then(crate::state::Persist::load) {
            None => Vault::default(),
            Some(saved) => Vault::restore(&saved).ok_or("the azure section of the state does not parse")?,
        };
        Ok(Emulator { opts, vault: Mutex::new(vault), persist, requests: AtomicU64::new(0) })
    }

    fn vault(&self) -> MutexGuard<'_, Vault> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than refusing all later requests would.
        self.vault.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn resource(&self) -> &'static str {
        if self.opts.managed_hsm { "https://managedhsm.azure.net" } else { "https://vault.azure.net" }
    }

    fn challenge(&self) -> String {
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{CHALLENGE_TENANT}\", resource=\"{}\"",
            self.resource()
        )
    }

    /// Counts an authenticated request; true when it is one to throttle.
    fn throttled(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        self.opts.throttle_every.is_some_and(|every| every > 0 && n.is_multiple_of(every))
    }

    fn authenticate(&self, req: &Request) -> ApiResult<()> {
        let Some(value) = req.headers().get(hyper::header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized("AKV10000: Request is missing a Bearer or PoP token."));
        };
        let value = value.to_str().unwrap_or_default();
        let token = match value.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => "",
        };
        if token.is_empty() {
            return Err(ApiError::unauthorized("AKV10000: Request is missing a Bearer or PoP token."));
        }
        if self.opts.token.as_deref().is_some_and(|want| want != token) {
            return Err(ApiError::unauthorized(
                "AKV10032: Invalid issuer. The bearer token is not the one this emulator accepts (--token).",
            ));
        }
        Ok(())
    }

    async fn answer(self: Arc<Self>, req: Request) -> Response {
        let result = match self.authenticate(&req) {
            Ok(()) if self.throttled() => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Request was not processed because too many requests were received (hsm-emulator --throttle-every).",
            )),
            Ok(()) => self.clone().route(&req).await,
            Err(e) => Err(e),
        };
        let (status, body) = match result {
            Ok(Reply::Json(v)) => (StatusCode::OK, Some(v)),
            Ok(Reply::NoContent) => (StatusCode::NO_CONTENT, None),
            Err(e) => (e.status, Some(e.body())),
        };
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut resp = Response::new(Full::new(bytes));
        *resp.status_mut() = status;
        if status != StatusCode::NO_CONTENT {
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        }
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = HeaderValue::from_str(&self.challenge())
        {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Ok(v) = HeaderValue::from_str(&new_version_id()) {
            resp.headers_mut().insert("x-ms-request-id", v);
        }
        resp
    }

    async fn route(self: Arc<Self>, req: &Request) -> ApiResult {
        let reply = self.clone().route_call(req).await?;
        let segs: Vec<&str> = req.uri().path().trim_start_matches('/').split('/').collect();
        let read_only = req.method() == Method::GET
            || (req.method() == Method::POST && (segs.len() == 4 && segs[0] == "keys" || segs == ["rng"]));
        if !read_only && let Some(p) = &self.persist {
            // Under the vault lock, so saves land in the order of the changes.
            let vault = self.vault();
            p.save(vault.snapshot()).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    format!("The change was made but not saved: {e}"),
                )
            })?;
        }
        Ok(reply)
    }

    async fn route_call(self: Arc<Self>, req: &Request) -> ApiResult {
        let uri = req.uri();
        let query = parse_query(uri.query());
        let Some(api_version) = query.get("api-version").cloned() else {
            return Err(ApiError::bad(
                "The api-version query parameter is missing; Key Vault requires one (for example api-version=7.6)",
            ));
        };
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| self.opts.host.clone());
        let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
        let call = Call {
            method: req.method(),
            segments: path.split('/').collect(),
            query,
            body: req.body(),
            base: format!("https://{host}"),
            api_version,
        };
        let m = call.method.clone();
        let segs = call.segments.clone();
        match (&m, segs.as_slice()) {
            (&Method::GET, ["keys"] | ["keys", ""]) => self.list_keys(&call),
            (&Method::POST, ["keys", name, "create"]) => self.create(&call, name).await,
            (&Method::PUT, ["keys", name]) => self.import(&call, name),
            (&Method::POST, ["keys", name, "rotate"]) => self.rotate(&call, name).await,
            (&Method::GET, ["keys", name, "versions"]) => self.list_versions(&call, name),
            (&Method::GET, ["keys", name] | ["keys", name, ""]) => self.get(&call, name, ""),
            (&Method::GET, ["keys", name, version]) => self.get(&call, name, version),
            (&Method::PATCH, ["keys", name] | ["keys", name, ""]) => self.update(&call, name, ""),
            (&Method::PATCH, ["keys", name, version]) => self.update(&call, name, version),
            (&Method::DELETE, ["keys", name]) => self.delete(&call, name),
            (&Method::POST, ["keys", name, version, op]) => self.operate(&call, name, version, op),
            (&Method::GET, ["deletedkeys"] | ["deletedkeys", ""]) => self.list_deleted(&call),
            (&Method::GET, ["deletedkeys", name]) => self.get_deleted(&call, name),
            (&Method::DELETE, ["deletedkeys", name]) => self.purge(name),
            (&Method::POST, ["deletedkeys", name, "recover"]) => self.recover(&call, name),
            (&Method::POST, ["rng"]) => rng(&call),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} /{path} is not an operation of the Key Vault keys API", call.method),
            )),
        }
    }

    fn check_kty(&self, kty: &str) -> ApiResult<()> {
        let ok: &[&str] = if self.opts.managed_hsm {
            &["RSA-HSM", "EC-HSM", "oct-HSM"]
        } else {
            &["RSA", "RSA-HSM", "EC", "EC-HSM"]
        };
        if ok.contains(&kty) {
            return Ok(());
        }
        let hint = match (self.opts.managed_hsm, kty) {
            (false, "oct" | "oct-HSM") => {
                "AES (oct-HSM) keys exist only on Managed HSM (https://NAME.managedhsm.azure.net)".to_string()
            }
            (true, "RSA" | "EC" | "oct") => {
                format!("Managed HSM holds only HSM-protected keys; use {kty}-HSM")
            }
            _ => format!("this vault supports {}", ok.join(", ")),
        };
        Err(ApiError::bad(format!("kty {kty:?} is not supported: {hint}")))
    }

    /// Refuses a name that is deleted but recoverable, as Key Vault does on create and import.
    fn check_not_deleted(vault: &Vault, name: &str) -> ApiResult<()> {
        if vault.deleted.contains_key(name) {
            return Err(ApiError {
                inner: Some("ObjectIsDeletedButRecoverable"),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."
                    ),
                )
            });
        }
        Ok(())
    }

    /// Adds `version` to key `name` (creating the key) and answers its KeyBundle.
    fn add_version(&self, call: &Call<'_>, name: &str, version: Version) -> ApiResult {
        let mut vault = self.vault();
        Self::check_not_deleted(&vault, name)?;
        let bundle = version.bundle(&call.base, name);
        vault
            .keys
            .entry(name.to_string())
            .or_insert_with(|| Key { versions: Vec::new() })
            .versions
            .push(version);
        Ok(Reply::Json(Value::Object(bundle)))
    }

    async fn create(&self, call: &Call<'_>, name: &str) -> ApiResult {
        check_name(name)?;
        let req: CreateReq = parse_body(call.body)?;
        let Some(kty) = req.kty.clone() else {
            return Err(ApiError::bad("kty is required: RSA, RSA-HSM, EC, EC-HSM or (Managed HSM) oct-HSM"));
        };
        self.check_kty(&kty)?;
        Self::check_not_deleted(&self.vault(), name)?;
        let key_ops = check_ops(&kty, req.key_ops.clone())?;
        let tags = req.tags.clone().unwrap_or_default();
        check_tags(&tags)?;
        let mut attrs = Attrs::new_now();
        req.attributes.apply(&mut attrs)?;
        let material = match kty.as_str() {
            "RSA" | "RSA-HSM" => {
                if req.public_exponent.is_some_and(|e| e != 65537) {
                    return Err(ApiError::bad("public_exponent must be 65537"));
                }
                if req.crv.is_some() {
                    return Err(ApiError::bad("crv is for EC keys; RSA keys take key_size"));
                }
                let bits = req.key_size.unwrap_or(2048);
                generate(move || Material::generate_rsa(bits)).await?
            }
            "EC" | "EC-HSM" => {
                let crv = req.crv.as_deref().unwrap_or("P-256");
                let curve = Curve::parse(crv).ok_or_else(|| {
                    ApiError::bad(format!("crv {crv:?} is not supported; use P-256, P-384, P-521 or P-256K"))
                })?;
                if let Some(bits) = req.key_size {
                    let want = match curve {
                        Curve::P256 | Curve::P256K => 256,
                        Curve::P384 => 384,
                        Curve::P521 => 521,
                    };
                    if bits != want {
                        return Err(ApiError::bad(format!("key_size {bits} does not fit curve {crv}")));
                    }
                }
                Material::generate_ec(curve)?
            }
            _ => Material::generate_oct(req.key_size.unwrap_or(256))?,
        };
        let version =
            Version { id: new_version_id(), kty, material: Arc::new(material), key_ops, attrs, tags };
        self.add_version(call, name, version)
    }

    fn import(&self, call: &Call<'_>, name: &str) -> ApiResult {
        check_name(name)?;
        let req: ImportReq = parse_body(call.body)?;
        let jwk = &req.key;
        let given = jwk.kty.clone().ok_or_else(|| ApiError::bad("key.kty is required"))?;
        let base = given.trim_end_matches("-HSM").to_string();
        let hsm = self.opts.managed_hsm || req.hsm.unwrap_or(false) || given.ends_with("-HSM");
        let kty = if hsm { format!("{base}-HSM") } else { base.clone() };
        self.check_kty(&kty)?;
        let field = |f: &str, v: &Option<String>| -> ApiResult<Zeroizing<Vec<u8>>> {
            let s = v
                .as_ref()
                .ok_or_else(|| ApiError::bad(format!("key.{f} is required to import a {base} key")))?;
            Ok(Zeroizing::new(unb64(&format!("key.{f}"), s)?))
        };
        let material = match base.as_str() {
            "RSA" => {
                let (n, e, d) = (field("n", &jwk.n)?, field("e", &jwk.e)?, field("d", &jwk.d)?);
                let (p, q) = (field("p", &jwk.p)?, field("q", &jwk.q)?);
                let (dp, dq, qi) = (field("dp", &jwk.dp)?, field("dq", &jwk.dq)?, field("qi", &jwk.qi)?);
                Material::import_rsa(&RsaComponents {
                    n: &n,
                    e: &e,
                    d: &d,
                    p: &p,
                    q: &q,
                    dp: &dp,
                    dq: &dq,
                    qi: &qi,
                })?
            }
            "EC" => {
                let crv = jwk.crv.as_deref().unwrap_or_default();
                let curve = Curve::parse(crv).ok_or_else(|| {
                    ApiError::bad(format!(
                        "key.crv {crv:?} is not supported; use P-256, P-384, P-521 or P-256K"
                    ))
                })?;
                Material::import_ec(curve, &field("d", &jwk.d)?, &field("x", &jwk.x)?, &field("y", &jwk.y)?)?
            }
            _ => Material::import_oct(&field("k", &jwk.k)?)?,
        };
        let key_ops = check_ops(&kty, jwk.key_ops.clone())?;
        let tags = req.tags.clone().unwrap_or_default();
        check_tags(&tags)?;
        let mut attrs = Attrs::new_now();
        req.attributes.apply(&mut attrs)?;
        let version =
            Version { id: new_version_id(), kty, material: Arc::new(material), key_ops, attrs, tags };
        self.add_version(call, name, version)
    }

    async fn rotate(&self, call: &Call<'_>, name: &str) -> ApiResult {
        let current = {
            let vault = self.vault();
            vault.keys.get(name).ok_or_else(|| ApiError::key_not_found(name, ""))?.latest().clone()
        };
        let material = match current.material.public() {
            super::crypto::PublicJwk::Rsa { n, .. } => {
                let bits = (n.len() * 8) as u32;
                generate(move || Material::generate_rsa(bits)).await?
            }
            super::crypto::PublicJwk::Ec { crv, .. } => Material::generate_ec(crv)?,
            super::crypto::PublicJwk::Oct => match &*current.material {
                Material::Oct { key } => Material::generate_oct((key.len() * 8) as u32)?,
                _ => return Err(ApiError::bad("cannot rotate this key")),
            },
        };
        let mut attrs = Attrs::new_now();
        attrs.exportable = current.attrs.exportable;
        let version = Version {
            id: new_version_id(),
            kty: current.kty.clone(),
            material: Arc::new(material),
            key_ops: current.key_ops.clone(),
            attrs,
            tags: current.tags.clone(),
        };
        let mut vault = self.vault();
        let key = vault.keys.get_mut(name).ok_or_else(|| ApiError::key_not_found(name, ""))?;
        let bundle = version.bundle(&call.base, name);
        key.versions.push(version);
        Ok(Reply::Json(Value::Object(bundle)))
    }

    fn get(&self, call: &Call<'_>, name: &str, version: &str) -> ApiResult {
        let vault = self.vault();
        let v = vault
            .keys
            .get(name)
            .and_then(|k| k.version(version))
            .ok_or_else(|| ApiError::key_not_found(name, version))?;
        Ok(Reply::Json(Value::Object(v.bundle(&call.base, name))))
    }

    fn update(&self, call: &Call<'_>, name: &str, version: &str) -> ApiResult {
        let req: UpdateReq = parse_body(call.body)?;
        if let Some(tags) = &req.tags {
            check_tags(tags)?;
        }
        let mut vault = self.vault();
        let v = vault
            .keys
            .get_mut(name)
            .and_then(|k| k.version_mut(version))
            .ok_or_else(|| ApiError::key_not_found(name, version))?;
        let mut attrs = v.attrs.clone();
        req.attributes.apply(&mut attrs)?;
        if let Some(ops) = req.key_ops.clone() {
            v.key_ops = check_ops(&v.kty, Some(ops))?;
        }
        if let Some(tags) = req.tags {
            v.tags = tags;
        }
        attrs.updated = now();
        v.attrs = attrs;
        Ok(Reply::Json(Value::Object(v.bundle(&call.base, name))))
    }

    fn list_keys(&self, call: &Call<'_>) -> ApiResult {
        let vault = self.vault();
        let items = vault
            .keys
            .iter()
            .map(|(n, k)| (n.clone(), Value::Object(k.latest().item(&call.base, n, false))))
            .collect();
        page(call, "keys", items)
    }

    fn list_versions(&self, call: &Call<'_>, name: &str) -> ApiResult {
        let vault = self.vault();
        let key = vault.keys.get(name).ok_or_else(|| ApiError::key_not_found(name, ""))?;
        // Skip tokens must sort: the position, zero-padded.
        let items = key
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{i:08}"), Value::Object(v.item(&call.base, name, true))))
            .collect();
        page(call, &format!("keys/{name}/versions"), items)
    }

    fn delete(&self, call: &Call<'_>, name: &str) -> ApiResult {
        let mut vault = self.vault();
        let key = vault.keys.remove(name).ok_or_else(|| ApiError::key_not_found(name, ""))?;
        let t = now();
        let deleted = Deleted { key, deleted_date: t, scheduled_purge_date: t + RECOVERABLE_DAYS * 86_400 };
        let bundle = deleted.bundle(&call.base, name);
        vault.deleted.insert(name.to_string(), deleted);
        Ok(Reply::Json(bundle))
    }

    fn list_deleted(&self, call: &Call<'_>) -> ApiResult {
        let vault = self.vault();
        let items = vault.deleted.iter().map(|(n, d)| (n.clone(), d.item(&call.base, n))).collect();
        page(call, "deletedkeys", items)
    }

    fn get_deleted(&self, call: &Call<'_>, name: &str) -> ApiResult {
        let vault = self.vault();
        let d = vault.deleted.get(name).ok_or_else(|| ApiError::deleted_not_found(name))?;
        Ok(Reply::Json(d.bundle(&call.base, name)))
    }

    fn purge(&self, name: &str) -> ApiResult {
        let mut vault = self.vault();
        vault.deleted.remove(name).ok_or_else(|| ApiError::deleted_not_found(name))?;
        Ok(Reply::NoContent)
    }

    fn recover(&self, call: &Call<'_>, name: &str) -> ApiResult {
        let mut vault = self.vault();
        if vault.keys.contains_key(name) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Key {name} already exists"),
            ));
        }
        let d = vault.deleted.remove(name).ok_or_else(|| ApiError::deleted_not_found(name))?;
        let bundle = d.key.latest().bundle(&call.base, name);
        vault.keys.insert(name.to_string(), d.key);
        Ok(Reply::Json(Value::Object(bundle)))
    }

    fn operate(&self, call: &Call<'_>, name: &str, version: &str, op: &str) -> ApiResult {
        let key_op = match op.to_ascii_lowercase().as_str() {
            "encrypt" => "encrypt",
            "decrypt" => "decrypt",
            "sign" => "sign",
            "verify" => "verify",
            "wrapkey" => "wrapKey",
            "unwrapkey" => "unwrapKey",
            _ => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("POST /keys/{name}/{version}/{op} is not an operation of the Key Vault keys API"),
                ));
            }
        };
        let v = {
            let vault = self.vault();
            vault
                .keys
                .get(name)
                .and_then(|k| k.version(version))
                .ok_or_else(|| ApiError::key_not_found(name, version))?
                .clone()
        };
        let t = now();
        if !v.attrs.enabled {
            return Err(ApiError::forbidden(
                format!("Operation {key_op} is not allowed on a disabled key."),
                "KeyDisabled",
            ));
        }
        if v.attrs.nbf.is_some_and(|nbf| t < nbf) {
            return Err(ApiError::forbidden(
                format!("Operation {key_op} is not allowed on a key that is not yet valid (nbf)."),
                "KeyNotYetValid",
            ));
        }
        if v.attrs.exp.is_some_and(|exp| t >= exp) {
            return Err(ApiError::forbidden(
                format!("Operation {key_op} is not allowed on an expired key."),
                "KeyExpired",
            ));
        }
        if !v.key_ops.iter().any(|o| o == key_op) {
            return Err(ApiError::forbidden(
                format!(
                    "Operation {key_op} is not permitted on this key (key_ops: {}).",
                    v.key_ops.join(", ")
                ),
                "OperationNotPermitted",
            ));
        }
        let kid = format!("{}/keys/{name}/{}", call.base, v.id);
        let m = &v.material;
        match key_op {
            "verify" => {
                let req: VerifyReq = parse_body(call.body)?;
                let digest = unb64("digest", &req.digest)?;
                let sig = unb64("value", &req.value)?;
                Ok(Reply::Json(json!({"value": m.verify(&req.alg, &digest, &sig)?})))
            }
            "sign" => {
                let req: OpReq = parse_body(call.body)?;
                let digest = unb64("value", &req.value)?;
                Ok(Reply::Json(json!({"kid": kid, "value": b64(&m.sign(&req.alg, &digest)?)})))
            }
            _ => {
                let req: OpReq = parse_body(call.body)?;
                let value = Zeroizing::new(unb64("value", &req.value)?);
                let iv = unb64_opt("iv", req.iv.as_ref())?;
                let aad = unb64_opt("aad", req.aad.as_ref())?;
                let tag = unb64_opt("tag", req.tag.as_ref())?;
                let p = SymParams { iv: iv.as_deref(), aad: aad.as_deref(), tag: tag.as_deref() };
                if matches!(key_op, "encrypt" | "wrapKey") {
                    let s = m.encrypt(&req.alg, &value, &p)?;
                    let mut out = json!({"kid": kid, "value": b64(&s.value)});
                    for (k, v) in [("iv", s.iv), ("tag", s.tag), ("aad", s.aad)] {
                        if let Some(v) = v {
                            out[k] = b64(&v).into();
                        }
                    }
                    Ok(Reply::Json(out))
                } else {
                    let plain = m.decrypt(&req.alg, &value, &p)?;
                    Ok(Reply::Json(json!({"kid": kid, "value": b64(&plain)})))
                }
            }
        }
    }
}

fn rng(call: &Call<'_>) -> ApiResult {
    let req: RngReq = parse_body(call.body)?;
    if !(1..=128).contains(&req.count) {
        return Err(ApiError::bad(format!("count is {}; it must be from 1 to 128", req.count)));
    }
    let mut b = vec![0u8; req.count as usize];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| ApiError::bad("the random generator failed"))?;
    Ok(Reply::Json(json!({"value": b64(&b)})))
}

/// Runs a slow key generation off the async executor.
async fn generate(
    f: impl FnOnce() -> Result<Material, CryptoFailure> + Send + 'static,
) -> ApiResult<Material> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::bad("key generation failed")),
    }
}

impl Handler for Emulator {
    fn handle(self: Arc<Self>, req: Request) -> HandlerFuture {
        Box::pin(self.answer(req))
    }
}
