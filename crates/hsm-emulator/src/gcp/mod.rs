//! `hsm-emulator gcp`: the Google Cloud KMS v1 REST API on 127.0.0.1 over plain HTTP, with real
//! cryptography (aws-lc-rs, through hsm-crypto's primitives) and state in memory.
//!
//! Point the official clients at it with an endpoint override and anonymous credentials:
//! Python `KeyManagementServiceClient(transport="rest", credentials=AnonymousCredentials(),
//! client_options=ClientOptions(api_endpoint=url))`, Rust `KeyManagementService::builder()
//! .with_endpoint(url).with_credentials(anonymous)`. No header (`Authorization`, `Host`,
//! `x-goog-*`) is required.
//!
//! # Starting it
//!
//! From the shell: `hsm-emulator gcp --port 8080` prints
//! `hsm-emulator gcp listening on http://127.0.0.1:8080` and serves until interrupted.
//! In-process (how the tests use it), on port 0 so the system picks a free port:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use hsm_emulator::gcp;
//!
//! let running = gcp::start(gcp::Args { port: 0 }).await?;
//! let url = running.url(); // "http://127.0.0.1:PORT", the clients' endpoint
//! // … create key rings and keys under any projects/*/locations/* …
//! drop(running); // stops the server
//! # let _ = url;
//! # Ok(()) }
//! ```
//!
//! # What it serves
//!
//! | RPC | HTTP |
//! |---|---|
//! | CreateKeyRing, ListKeyRings, GetKeyRing | `POST/GET /v1/projects/*/locations/*/keyRings[?keyRingId=]`, `GET /v1/{ring}` |
//! | CreateCryptoKey, ListCryptoKeys, GetCryptoKey, UpdateCryptoKey | `POST/GET /v1/{ring}/cryptoKeys[?cryptoKeyId=&skipInitialVersionCreation=]`, `GET/PATCH /v1/{key}?updateMask=` |
//! | UpdateCryptoKeyPrimaryVersion | `POST /v1/{key}:updatePrimaryVersion` |
//! | CreateCryptoKeyVersion, ListCryptoKeyVersions, GetCryptoKeyVersion, UpdateCryptoKeyVersion | `POST/GET /v1/{key}/cryptoKeyVersions`, `GET/PATCH /v1/{version}?updateMask=state` |
//! | DestroyCryptoKeyVersion, RestoreCryptoKeyVersion | `POST /v1/{version}:destroy`, `:restore` |
//! | Encrypt, Decrypt | `POST /v1/{key or version}:encrypt`, `POST /v1/{key}:decrypt` |
//! | RawEncrypt, RawDecrypt | `POST /v1/{version}:rawEncrypt`, `:rawDecrypt` |
//! | AsymmetricSign, AsymmetricDecrypt, GetPublicKey | `POST /v1/{version}:asymmetricSign`, `:asymmetricDecrypt`, `GET /v1/{version}/publicKey` |
//! | MacSign, MacVerify | `POST /v1/{version}:macSign`, `:macVerify` |
//!
//! Algorithms: GOOGLE_SYMMETRIC_ENCRYPTION; AES_128_GCM and AES_256_GCM (raw); RSA_SIGN_PSS_*
//! and RSA_SIGN_PKCS1_* (2048/3072/4096, SHA-256 and the 4096 SHA-512 variants); RSA_DECRYPT_OAEP_*
//! (SHA-256, SHA-1, 4096 SHA-512); EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384,
//! EC_SIGN_SECP256K1_SHA256 (protection level HSM only, as in Cloud KMS); EC_SIGN_ED25519 (signs
//! `data`); HMAC_SHA1/224/256/384/512. The other values of the algorithm enum (AES-CBC/CTR,
//! raw PKCS#1, external, post-quantum) are recognised and answered `501 UNIMPLEMENTED`.
//!
//! # Wire behaviour
//!
//! - Requests may name enums by number or by name and use lowerCamelCase or snake_case field
//!   names; responses use lowerCamelCase, omit default values and write enums as integers when
//!   the request carried `$alt=json;enum-encoding=int` (both official clients send it), else as
//!   names. Bytes are standard base64 with padding; int64 fields (CRC32Cs) are JSON strings.
//! - CRC32C: every `*Crc32c` field a request carries is checked (a mismatch is
//!   `400 INVALID_ARGUMENT`), every response CRC32C is computed, and a `verified*` flag is true
//!   exactly when the request carried that CRC.
//! - Errors are google.rpc statuses with the matching HTTP status:
//!   `{"error":{"code":404,"message":"…","status":"NOT_FOUND"}}`. Unknown resources are
//!   `404 NOT_FOUND`, duplicates `409 ALREADY_EXISTS`, bad fields `400 INVALID_ARGUMENT`, a
//!   version that is not ENABLED or a key of the wrong purpose `400 FAILED_PRECONDITION`, and
//!   failed decryption an opaque `400 INVALID_ARGUMENT`.
//! - Limits: ids `[a-zA-Z0-9_-]{1,63}`; Google's label rules; plaintext and AAD at most 64 KiB
//!   each (SOFTWARE) or 8 KiB together (HSM); Ed25519 and MAC data at most 64 KiB.
//! - Lists are in name order (versions by number), filtered by a subset of the Cloud KMS filter
//!   syntax (`labels.env=prod AND purpose=MAC`, `state!=DISABLED`, `labels.team:*`), paged with
//!   opaque `nextPageToken`s, and report `totalSize`.
//!
//! # Differences from Cloud KMS
//!
//! - Symmetric ciphertexts are `0x01 ‖ version (u32 BE) ‖ nonce ‖ AES-256-GCM ciphertext ‖ tag`:
//!   opaque to clients, like Google's, but a different layout.
//! - DestroyCryptoKeyVersion schedules destruction after the key's `destroyScheduledDuration`
//!   (default 24 hours); durations shorter than Google's 24-hour minimum are accepted so tests
//!   can watch a version reach DESTROYED. Key rings and keys cannot be deleted, as in Cloud KMS.
//! - The first version created on an ENCRYPT_DECRYPT key that has no primary (one created with
//!   `skipInitialVersionCreation`) becomes its primary.
//! - RawEncrypt accepts a caller-chosen 12-byte IV for AES-GCM; RawDecrypt accepts tags of 12
//!   to 16 bytes.
//! - No IAM, import jobs, EKM, automatic rotation (`rotationPeriod` and `nextRotationTime` are
//!   stored and echoed only), key handles or long-running operations; `projects/*/locations/*`
//!   accepts any project and location.

mod crypto;
mod model;
mod store;
mod wire;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use serde_json::{Map, Value, json};

use crate::server::{Handler, HandlerFuture, Request, Response, Running, serve_http};
use crypto::Material;
use model::{
    ASYMMETRIC_DECRYPT, ASYMMETRIC_SIGN, Curve, DISABLED, ENABLED, ENCRYPT_DECRYPT, HSM, Kind, MAC,
    PROTECTION_LEVELS, PURPOSES, RAW_ENCRYPT_DECRYPT, SOFTWARE, STATES,
};
use store::{Filter, Key, Ring, Store, Version};
use wire::{
    Code, Result, Status, bytes, check_crc, crc_json, enum_name, field, invalid, not_found, precondition,
};

/// Command-line options of `hsm-emulator gcp`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Starts the Cloud KMS emulator on the current tokio runtime; it serves until the returned
/// [`Running`] is dropped.
///
/// # Errors
/// When the port cannot be bound.
pub async fn start(args: Args) -> io::Result<Running> {
    start_with_state(args, None).await
}

/// [`start`] with persistent state: keys are loaded from and saved to `state` (see
/// [`crate::state`]).
///
/// # Errors
/// When the port cannot be bound or the saved state does not parse.
pub async fn start_with_state(
    args: Args,
    state: Option<Arc<crate::state::StateFile>>,
) -> io::Result<Running> {
    start_with_state_wrapped(args, state, |h| h).await
}

/// [`start_with_state`] with the request handler wrapped by `wrap` first (e.g. in
/// [`faults::Faults`](crate::faults::Faults), as `--faults` and `--quota` do).
///
/// # Errors
/// As [`start_with_state`].
pub async fn start_with_state_wrapped(
    args: Args,
    state: Option<Arc<crate::state::StateFile>>,
    wrap: impl FnOnce(Arc<dyn crate::server::Handler>) -> Arc<dyn crate::server::Handler>,
) -> io::Result<Running> {
    let persist = state.map(|s| crate::state::Persist::new(s, "gcp"));
    let store = match persist.as_ref().and_then(crate::state::Persist::load) {
        None => Store::default(),
        Some(saved) => Store::restore(&saved).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "the gcp section of the state does not parse")
        })?,
    };
    serve_http(args.port, wrap(Arc::new(Service { store: Mutex::new(store), persist }))).await
}

/// The emulator as a request handler with its own (empty) state, to serve with
/// [`serve_http`](crate::server::serve_http) yourself: serving the same handler again after
/// dropping its [`Running`] restarts the emulator with the keys it had.
pub fn handler() -> Arc<dyn crate::server::Handler> {
    Arc::new(Service::default())
}

/// Largest plaintext, AAD or data for SOFTWARE keys.
const MAX_DATA: usize = 64 * 1024;
/// Largest plaintext + AAD for HSM keys.
const MAX_HSM_DATA: usize = 8 * 1024;
/// Default (and Google's minimum) time a destroyed version stays DESTROY_SCHEDULED.
const DEFAULT_DESTROY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Google's maximum for `destroyScheduledDuration` (120 days).
const MAX_DESTROY_AFTER: Duration = Duration::from_secs(120 * 24 * 3600);
/// Format byte of the emulator's symmetric ciphertexts.
const CIPHERTEXT_FORMAT: u8 = 1;
/// Format byte + version id + GCM nonce + tag.
const CIPHERTEXT_OVERHEAD: usize = 1 + 4 + 12 + 16;

#[derive(Debug, Default)]
struct Service {
    store: Mutex<Store>,
    persist: Option<crate::state::Persist>,
}

impl Handler for Service {
    fn handle(self: Arc<Self>, req: Request) -> HandlerFuture {
        Box::pin(async move {
            let (status, body) = match Call::parse(req) {
                Ok(call) => {
                    tracing::debug!(method = %call.method, path = %call.path, "gcp request");
                    match self.dispatch(&call).await {
                        Ok(v) => (200, v),
                        Err(s) => (s.code.http(), s.body()),
                    }
                }
                Err(s) => (s.code.http(), s.body()),
            };
            let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
            );
            resp
        })
    }
}

/// One request, parsed.
#[derive(Debug)]
struct Call {
    method: Method,
    path: String,
    /// Path segments after `/v1/`, the verb (`:encrypt`) split off the last one.
    segs: Vec<String>,
    verb: Option<String>,
    query: Vec<(String, String)>,
    body: Map<String, Value>,
    /// `$alt=json;enum-encoding=int`: write enums as integers.
    enums: bool,
}

impl Call {
    fn parse(req: Request) -> Result<Call> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = wire::query_pairs(parts.uri.query());
        let enums = query.iter().any(|(k, v)| (k == "$alt" || k == "alt") && v.contains("enum-encoding=int"));
        let Some(rest) = path.strip_prefix("/v1/") else {
            return Err(not_found(format!("{} {path} is not a Cloud KMS v1 method", parts.method)));
        };
        let mut segs: Vec<String> = rest.split('/').map(|s| wire::percent_decode(s, false)).collect();
        let mut verb = None;
        if let Some(last) = segs.last_mut()
            && let Some((name, v)) = last.split_once(':')
        {
            verb = Some(v.to_string());
            *last = name.to_string();
        }
        if segs.iter().any(String::is_empty) {
            return Err(not_found(format!("{path}: empty path segment")));
        }
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => m,
                // Google's Node.js client (REST fallback) sends an empty message as `""`, and a
                // missing one may be `null`; Cloud KMS reads both as the empty message.
                Ok(Value::Null) => Map::new(),
                Ok(Value::String(s)) if s.is_empty() => Map::new(),
                _ => return Err(invalid("Invalid JSON payload received: the body must be a JSON object.")),
            }
        };
        Ok(Call { method: parts.method, path, segs, verb, query, body, enums })
    }

    /// A query parameter by its lowerCamelCase or snake_case name.
    fn q(&self, camel: &str) -> Option<&str> {
        let snake: String = camel
            .chars()
            .flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] })
            .collect();
        self.query.iter().find(|(k, _)| *k == camel || *k == snake).map(|(_, v)| v.as_str())
    }

    fn seg(&self, i: usize) -> &str {
        self.segs.get(i).map_or("", String::as_str)
    }

    /// The resource the path names, checking the fixed segments.
    fn shape(&self) -> Option<Shape> {
        const FIXED: [(usize, &str); 6] = [
            (0, "projects"),
            (2, "locations"),
            (4, "keyRings"),
            (6, "cryptoKeys"),
            (8, "cryptoKeyVersions"),
            (10, "publicKey"),
        ];
        let n = self.segs.len();
        if !(3..=11).contains(&n) || FIXED.iter().any(|&(i, s)| i < n && self.seg(i) != s) {
            return None;
        }
        Some(match n {
            5 => Shape::Rings,
            6 => Shape::Ring,
            7 => Shape::Keys,
            8 => Shape::Key,
            9 => Shape::Versions,
            10 => Shape::Version,
            11 => Shape::PublicKey,
            _ => return None,
        })
    }

    /// `projects/P/locations/L`.
    fn location(&self) -> String {
        self.segs[..4].join("/")
    }

    fn ring_name(&self) -> String {
        self.segs[..6].join("/")
    }

    fn key_name(&self) -> String {
        self.segs[..8].join("/")
    }

    fn version_name(&self) -> String {
        self.segs[..10].join("/")
    }

    fn version_id(&self) -> Result<u32> {
        self.seg(9)
            .parse::<u32>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| not_found(format!("CryptoKeyVersion {} not found.", self.version_name())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Rings,
    Ring,
    Keys,
    Key,
    Versions,
    Version,
    PublicKey,
}

/// What a crypto operation needs from the store, copied out so the lock is not held while
/// computing.
struct Use {
    material: Arc<Material>,
    version: u32,
    algorithm: &'static model::Algorithm,
    protection: i32,
    primary: Option<u32>,
}

/// Cloud KMS's answer for a version that is not ENABLED, with its PreconditionFailure detail
/// (violation type `KEY_<STATE>`).
fn not_enabled(name: &str, state: i32) -> Status {
    let state = enum_name(STATES, state);
    precondition(format!("{name} is not enabled, current state is: {state}."))
        .with_precondition_violation(&format!("KEY_{state}"), name)
}

fn wrong_purpose(key_name: &str, have: i32, want: &[i32]) -> Status {
    let want: Vec<&str> = want.iter().map(|&p| enum_name(PURPOSES, p)).collect();
    precondition(format!(
        "{key_name} has purpose {}; this operation needs a key of purpose {}.",
        enum_name(PURPOSES, have),
        want.join(" or ")
    ))
}

/// A version ready for use: ENABLED, with material.
fn usable(key: &Key, version: &Version, name: &str) -> Result<Use> {
    if version.state != ENABLED {
        return Err(not_enabled(name, version.state));
    }
    let material = version.material.clone().ok_or_else(|| not_enabled(name, version.state))?;
    let algorithm = model::algorithm(version.algorithm)
        .ok_or_else(|| Status::new(Code::Internal, "version with an unknown algorithm"))?;
    Ok(Use { material, version: version.id, algorithm, protection: version.protection, primary: key.primary })
}

/// Plaintext/AAD size limits of Encrypt and RawEncrypt.
fn check_sizes(protection: i32, plaintext: usize, aad: usize) -> Result<()> {
    if plaintext > MAX_DATA {
        return Err(invalid(format!("The plaintext is {plaintext} bytes; the limit is {MAX_DATA} bytes.")));
    }
    if aad > MAX_DATA {
        return Err(invalid(format!(
            "The additional authenticated data is {aad} bytes; the limit is {MAX_DATA} bytes."
        )));
    }
    if protection == HSM && plaintext + aad > MAX_HSM_DATA {
        return Err(invalid(format!(
            "For HSM keys the plaintext and additional authenticated data together may be at most \
             {MAX_HSM_DATA} bytes; they are {} bytes.",
            plaintext + aad
        )));
    }
    Ok(())
}

fn decryption_failed() -> Status {
    invalid("Decryption failed: verify that 'name' refers to the correct CryptoKey.")
}

fn internal() -> Status {
    Status::new(Code::Internal, "Internal error in the emulator's cryptography.")
}

/// The GCM AAD binding a symmetric ciphertext to its key and version.
fn envelope_aad(key_name: &str, version: u32, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key_name.len() + 4 + aad.len());
    out.extend_from_slice(&(key_name.len() as u16).to_be_bytes());
    out.extend_from_slice(key_name.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(aad);
    out
}

/// Inserts `verified*` flags that are true (proto3 JSON omits false).
fn flags(o: &mut Map<String, Value>, list: &[(&str, bool)]) {
    for &(name, v) in list {
        if v {
            o.insert(name.into(), true.into());
        }
    }
}

/// Parses `labels` from a CryptoKey body, checking Google's label rules.
fn parse_labels(v: Option<&Value>) -> Result<std::collections::BTreeMap<String, String>> {
    let Some(v) = v else { return Ok(Default::default()) };
    let obj = v.as_object().ok_or_else(|| invalid("Invalid value at 'labels': expected a map of strings"))?;
    let mut pairs = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let v =
            v.as_str().ok_or_else(|| invalid(format!("Invalid value at 'labels.{k}': expected a string")))?;
        pairs.push((k.clone(), v.to_string()));
    }
    if let Some(p) = model::label_problem(&pairs) {
        return Err(invalid(p));
    }
    Ok(pairs.into_iter().collect())
}

/// Checks an algorithm against a purpose and protection level; returns it.
fn check_algorithm(alg_n: i32, purpose: i32, protection: i32) -> Result<&'static model::Algorithm> {
    let alg = model::algorithm(alg_n).ok_or_else(|| invalid(format!("Unknown algorithm {alg_n}.")))?;
    if alg.purpose != purpose {
        return Err(invalid(format!(
            "Algorithm {} is not compatible with purpose {}.",
            alg.name,
            enum_name(PURPOSES, purpose)
        )));
    }
    if alg.kind == Kind::NotEmulated {
        return Err(Status::new(
            Code::Unimplemented,
            format!("Algorithm {} is not emulated by hsm-emulator.", alg.name),
        ));
    }
    if matches!(alg.kind, Kind::Ec { curve: Curve::Secp256k1, .. }) && protection != HSM {
        return Err(invalid("EC_SIGN_SECP256K1_SHA256 is only supported with protection level HSM."));
    }
    Ok(alg)
}

fn check_protection(p: i32) -> Result<i32> {
    match p {
        0 => Ok(SOFTWARE),
        SOFTWARE | HSM => Ok(p),
        other => Err(invalid(format!(
            "Protection level {} needs an external key manager, which the emulator does not have; \
             use SOFTWARE or HSM.",
            enum_name(PROTECTION_LEVELS, other)
        ))),
    }
}

/// Generates material off the async executor (RSA-4096 takes a while).
async fn generate(kind: Kind) -> Result<Arc<Material>> {
    tokio::task::spawn_blocking(move || Material::generate(kind))
        .await
        .map_err(|_| internal())?
        .map(Arc::new)
        .map_err(|_| internal())
}

fn new_version(id: u32, alg: i32, protection: i32, material: Arc<Material>, now: SystemTime) -> Version {
    Version {
        id,
        algorithm: alg,
        protection,
        state: ENABLED,
        create_time: now,
        destroy_time: None,
        destroy_event_time: None,
        material: Some(material),
    }
}

impl Service {
    fn lock(&self) -> MutexGuard<'_, Store> {
        let mut g = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        for ring in g.rings.values_mut() {
            for key in ring.keys.values_mut() {
                key.settle(now);
            }
        }
        g
    }

    /// Runs `f` on the key the call names (404 for a missing ring or key).
    fn with_key<T>(&self, call: &Call, f: impl FnOnce(&mut Key, &str) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        let ring_name = call.ring_name();
        let ring = g
            .rings
            .get_mut(&ring_name)
            .ok_or_else(|| not_found(format!("KeyRing {ring_name} not found.")))?;
        let key_name = call.key_name();
        let key = ring
            .keys
            .get_mut(call.seg(7))
            .ok_or_else(|| not_found(format!("CryptoKey {key_name} not found.")))?;
        f(key, &key_name)
    }

    /// The usable version the call names, for a key of one of `purposes`.
    fn use_version(&self, call: &Call, purposes: &[i32]) -> Result<Use> {
        let id = call.version_id()?;
        self.with_key(call, |key, key_name| {
            let name = call.version_name();
            let v =
                key.version(id).ok_or_else(|| not_found(format!("CryptoKeyVersion {name} not found.")))?;
            if !purposes.contains(&key.purpose) {
                return Err(wrong_purpose(key_name, key.purpose, purposes));
            }
            usable(key, v, &name)
        })
    }

    async fn dispatch(&self, call: &Call) -> Result<Value> {
        let v = self.dispatch_call(call).await?;
        let changes = call.method != Method::GET
            && matches!(call.verb.as_deref(), None | Some("updatePrimaryVersion" | "destroy" | "restore"));
        if changes && let Some(p) = &self.persist {
            // Under the store lock, so saves land in the order of the changes.
            let g = self.lock();
            p.save(g.snapshot()).map_err(|e| {
                Status::new(Code::Internal, format!("The change was made but not saved: {e}"))
            })?;
        }
        Ok(v)
    }

    async fn dispatch_call(&self, call: &Call) -> Result<Value> {
        let Some(shape) = call.shape() else {
            return Err(not_found(format!("{} {} is not a Cloud KMS v1 method", call.method, call.path)));
        };
        let m = &call.method;
        match (shape, call.verb.as_deref()) {
            (Shape::Rings, None) if m == Method::GET => self.list_rings(call),
            (Shape::Rings, None) if m == Method::POST => self.create_ring(call),
            (Shape::Ring, None) if m == Method::GET => self.get_ring(call),
            (Shape::Keys, None) if m == Method::GET => self.list_keys(call),
            (Shape::Keys, None) if m == Method::POST => self.create_key(call).await,
            (Shape::Key, None) if m == Method::GET => self.get_key(call),
            (Shape::Key, None) if m == Method::PATCH => self.update_key(call),
            (Shape::Key, Some("updatePrimaryVersion")) if m == Method::POST => self.update_primary(call),
            (Shape::Key | Shape::Version, Some("encrypt")) if m == Method::POST => self.encrypt(call),
            (Shape::Key, Some("decrypt")) if m == Method::POST => self.decrypt(call),
            (Shape::Versions, None) if m == Method::GET => self.list_versions(call),
            (Shape::Versions, None) if m == Method::POST => self.create_version(call).await,
            (Shape::Version, None) if m == Method::GET => self.get_version(call),
            (Shape::Version, None) if m == Method::PATCH => self.update_version(call),
            (Shape::Version, Some("destroy")) if m == Method::POST => self.destroy(call),
            (Shape::Version, Some("restore")) if m == Method::POST => self.restore(call),
            (Shape::Version, Some("asymmetricSign")) if m == Method::POST => self.asymmetric_sign(call),
            (Shape::Version, Some("asymmetricDecrypt")) if m == Method::POST => self.asymmetric_decrypt(call),
            (Shape::Version, Some("rawEncrypt")) if m == Method::POST => self.raw_encrypt(call),
            (Shape::Version, Some("rawDecrypt")) if m == Method::POST => self.raw_decrypt(call),
            (Shape::Version, Some("macSign")) if m == Method::POST => self.mac_sign(call),
            (Shape::Version, Some("macVerify")) if m == Method::POST => self.mac_verify(call),
            (Shape::PublicKey, None) if m == Method::GET => self.public_key(call),
            (Shape::Key | Shape::Version, None) if m == Method::DELETE => Err(Status::new(
                Code::Unimplemented,
                "Deleting keys and versions is not emulated: destroy versions with :destroy instead.",
            )),
            _ => Err(not_found(format!("{} {} is not a Cloud KMS v1 method", call.method, call.path))),
        }
    }

    // ---- key rings ----

    fn create_ring(&self, call: &Call) -> Result<Value> {
        let id = call.q("keyRingId").unwrap_or("");
        if !model::valid_id(id) {
            return Err(invalid(format!("keyRingId {id:?} must match [a-zA-Z0-9_-]{{1,63}}.")));
        }
        let name = format!("{}/keyRings/{id}", call.location());
        let mut g = self.lock();
        if g.rings.contains_key(&name) {
            return Err(Status::new(Code::AlreadyExists, format!("KeyRing {name} already exists.")));
        }
        let ring = Ring { create_time: SystemTime::now(), keys: Default::default() };
        let v = store::ring_json(&name, &ring);
        g.rings.insert(name, ring);
        Ok(v)
    }

    fn get_ring(&self, call: &Call) -> Result<Value> {
        let name = call.ring_name();
        let g = self.lock();
        let ring = g.rings.get(&name).ok_or_else(|| not_found(format!("KeyRing {name} not found.")))?;
        Ok(store::ring_json(&name, ring))
    }

    fn list_rings(&self, call: &Call) -> Result<Value> {
        let (filter, size, after) = list_params(call)?;
        let prefix = format!("{}/keyRings/", call.location());
        let g = self.lock();
        let items: Vec<(String, Value)> = g
            .rings
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, r)| (n.clone(), store::ring_json(n, r)))
            .filter(|(_, v)| filter.matches(v))
            .collect();
        Ok(store::page("keyRings", items, size, after.as_deref(), str::cmp))
    }

    // ---- crypto keys ----

    async fn create_key(&self, call: &Call) -> Result<Value> {
        let id = call.q("cryptoKeyId").unwrap_or("").to_string();
        if !model::valid_id(&id) {
            return Err(invalid(format!("cryptoKeyId {id:?} must match [a-zA-Z0-9_-]{{1,63}}.")));
        }
        let skip = match call.q("skipInitialVersionCreation").unwrap_or("") {
            "" | "false" | "False" | "0" => false,
            "true" | "True" | "1" => true,
            other => return Err(invalid(format!("skipInitialVersionCreation {other:?} is not a boolean."))),
        };
        let b = &call.body;
        let purpose = wire::enum_value(field(b, "purpose"), PURPOSES, "purpose")?;
        if purpose == 0 {
            return Err(invalid("CryptoKey.purpose is required."));
        }
        let template = match field(b, "versionTemplate") {
            None => Map::new(),
            Some(Value::Object(t)) => t.clone(),
            Some(_) => return Err(invalid("Invalid value at 'versionTemplate': expected an object")),
        };
        let protection = check_protection(wire::enum_value(
            field(&template, "protectionLevel"),
            PROTECTION_LEVELS,
            "versionTemplate.protectionLevel",
        )?)?;
        let mut alg_n = wire::enum_value(
            field(&template, "algorithm"),
            model::algorithm_table(),
            "versionTemplate.algorithm",
        )?;
        if alg_n == 0 {
            if purpose != ENCRYPT_DECRYPT {
                return Err(invalid(format!(
                    "versionTemplate.algorithm is required for purpose {}.",
                    enum_name(PURPOSES, purpose)
                )));
            }
            alg_n = 1;
        }
        let alg = check_algorithm(alg_n, purpose, protection)?;
        let labels = parse_labels(field(b, "labels"))?;
        let destroy_after = match field(b, "destroyScheduledDuration") {
            None => DEFAULT_DESTROY_AFTER,
            Some(v) => {
                let d = wire::parse_duration(v, "destroyScheduledDuration")?;
                if d.is_zero() || d > MAX_DESTROY_AFTER {
                    return Err(invalid(
                        "destroyScheduledDuration must be more than 0 and at most 120 days.",
                    ));
                }
                d
            }
        };
        let import_only = field(b, "importOnly").and_then(Value::as_bool).unwrap_or(false);
        if import_only && !skip {
            return Err(invalid("Import-only keys must be created with skipInitialVersionCreation."));
        }
        let rotation_period =
            field(b, "rotationPeriod").map(|v| wire::parse_duration(v, "rotationPeriod")).transpose()?;
        let next_rotation_time = field(b, "nextRotationTime").and_then(Value::as_str).map(str::to_string);
        if (rotation_period.is_some() || next_rotation_time.is_some()) && purpose != ENCRYPT_DECRYPT {
            return Err(invalid("Only ENCRYPT_DECRYPT keys support automatic rotation."));
        }
        if rotation_period.is_some_and(|p| p < DEFAULT_DESTROY_AFTER) {
            return Err(invalid("rotationPeriod must be at least 24 hours."));
        }
        if !wire::string(b, "cryptoKeyBackend")?.is_empty() {
            return Err(Status::new(Code::Unimplemented, "cryptoKeyBackend (EKM) is not emulated."));
        }
        let ring_name = call.ring_name();
        let key_name = format!("{ring_name}/cryptoKeys/{id}");
        let exists = |g: &Store| -> Result<()> {
            let ring = g
                .rings
                .get(&ring_name)
                .ok_or_else(|| not_found(format!("KeyRing {ring_name} not found.")))?;
            if ring.keys.contains_key(&id) {
                return Err(Status::new(
                    Code::AlreadyExists,
                    format!("CryptoKey {key_name} already exists."),
                ));
            }
            Ok(())
        };
        exists(&self.lock())?;
        let material = if skip { None } else { Some(generate(alg.kind).await?) };
        let mut g = self.lock();
        exists(&g)?;
        let now = SystemTime::now();
        let mut key = Key {
            purpose,
            create_time: now,
            algorithm: alg_n,
            protection,
            labels,
            primary: None,
            versions: Vec::new(),
            destroy_scheduled_duration: destroy_after,
            import_only,
            rotation_period,
            next_rotation_time,
        };
        if let Some(m) = material {
            key.versions.push(new_version(1, alg_n, protection, m, now));
            if purpose == ENCRYPT_DECRYPT {
                key.primary = Some(1);
            }
        }
        let v = key.json(&key_name, call.enums);
        g.rings.get_mut(&ring_name).ok_or_else(internal)?.keys.insert(id, key);
        Ok(v)
    }

    fn get_key(&self, call: &Call) -> Result<Value> {
        self.with_key(call, |key, name| Ok(key.json(name, call.enums)))
    }

    fn list_keys(&self, call: &Call) -> Result<Value> {
        let (filter, size, after) = list_params(call)?;
        let ring_name = call.ring_name();
        let g = self.lock();
        let ring =
            g.rings.get(&ring_name).ok_or_else(|| not_found(format!("KeyRing {ring_name} not found.")))?;
        let items: Vec<(String, Value)> = ring
            .keys
            .iter()
            .map(|(id, k)| {
                let name = format!("{ring_name}/cryptoKeys/{id}");
                (id.clone(), k.json(&name, false), k.json(&name, call.enums))
            })
            .filter(|(_, named, _)| filter.matches(named))
            .map(|(id, _, v)| (id, v))
            .collect();
        Ok(store::page("cryptoKeys", items, size, after.as_deref(), str::cmp))
    }

    fn update_key(&self, call: &Call) -> Result<Value> {
        let mask = update_mask(call)?;
        let b = &call.body;
        let body_name = wire::string(b, "name")?;
        if !body_name.is_empty() && body_name != call.key_name() {
            return Err(invalid(format!("The name in the body ({body_name}) differs from the URL.")));
        }
        let labels =
            if mask.iter().any(|p| p == "labels") { Some(parse_labels(field(b, "labels"))?) } else { None };
        let template = field(b, "versionTemplate").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut new_alg = None;
        let mut new_protection = None;
        for p in &mask {
            match p.as_str() {
                "labels" => {}
                "versionTemplate" | "versionTemplate.algorithm" | "versionTemplate.protectionLevel" => {
                    if p != "versionTemplate.protectionLevel" {
                        new_alg = Some(wire::enum_value(
                            field(&template, "algorithm"),
                            model::algorithm_table(),
                            "versionTemplate.algorithm",
                        )?);
                    }
                    if p != "versionTemplate.algorithm" {
                        new_protection = Some(wire::enum_value(
                            field(&template, "protectionLevel"),
                            PROTECTION_LEVELS,
                            "versionTemplate.protectionLevel",
                        )?);
                    }
                }
                "rotationPeriod" | "nextRotationTime" => {}
                other => {
                    return Err(invalid(format!(
                        "updateMask path {other:?} cannot be updated; use labels, versionTemplate, \
                         rotationPeriod or nextRotationTime."
                    )));
                }
            }
        }
        let rotation = mask
            .iter()
            .any(|p| p == "rotationPeriod")
            .then(|| {
                field(b, "rotationPeriod").map(|v| wire::parse_duration(v, "rotationPeriod")).transpose()
            })
            .transpose()?;
        let next = mask
            .iter()
            .any(|p| p == "nextRotationTime")
            .then(|| field(b, "nextRotationTime").and_then(Value::as_str).map(str::to_string));
        self.with_key(call, |key, name| {
            let protection = match new_protection {
                Some(0) | None => key.protection,
                Some(p) if p == key.protection => p,
                Some(_) => return Err(invalid("versionTemplate.protectionLevel is immutable.")),
            };
            let alg = match new_alg {
                Some(0) if key.purpose == ENCRYPT_DECRYPT => 1,
                Some(0) => return Err(invalid("versionTemplate.algorithm is required.")),
                Some(a) => a,
                None => key.algorithm,
            };
            check_algorithm(alg, key.purpose, protection)?;
            if (rotation.as_ref().is_some_and(Option::is_some) || next.as_ref().is_some_and(Option::is_some))
                && key.purpose != ENCRYPT_DECRYPT
            {
                return Err(invalid("Only ENCRYPT_DECRYPT keys support automatic rotation."));
            }
            key.algorithm = alg;
            if let Some(l) = labels {
                key.labels = l;
            }
            if let Some(r) = rotation {
                key.rotation_period = r;
            }
            if let Some(n) = next {
                key.next_rotation_time = n;
            }
            Ok(key.json(name, call.enums))
        })
    }

    fn update_primary(&self, call: &Call) -> Result<Value> {
        let id_s = wire::string(&call.body, "cryptoKeyVersionId")?;
        self.with_key(call, |key, name| {
            if key.purpose != ENCRYPT_DECRYPT {
                return Err(wrong_purpose(name, key.purpose, &[ENCRYPT_DECRYPT]));
            }
            let vname = format!("{name}/cryptoKeyVersions/{id_s}");
            let id = id_s
                .parse::<u32>()
                .map_err(|_| invalid(format!("cryptoKeyVersionId {id_s:?} is not a version number.")))?;
            let v =
                key.version(id).ok_or_else(|| not_found(format!("CryptoKeyVersion {vname} not found.")))?;
            if v.state != ENABLED {
                return Err(not_enabled(&vname, v.state));
            }
            key.primary = Some(id);
            Ok(key.json(name, call.enums))
        })
    }

    // ---- versions ----

    async fn create_version(&self, call: &Call) -> Result<Value> {
        let (kind, alg_n, protection) = self.with_key(call, |key, name| {
            if key.import_only {
                return Err(precondition(format!("{name} is import-only: versions can only be imported.")));
            }
            let alg = check_algorithm(key.algorithm, key.purpose, key.protection)?;
            Ok((alg.kind, key.algorithm, key.protection))
        })?;
        let material = generate(kind).await?;
        self.with_key(call, |key, name| {
            let id = key.versions.len() as u32 + 1;
            key.versions.push(new_version(id, alg_n, protection, material, SystemTime::now()));
            if key.purpose == ENCRYPT_DECRYPT && key.primary.is_none() {
                key.primary = Some(id);
            }
            Ok(key.versions[id as usize - 1].json(name, call.enums))
        })
    }

    fn get_version(&self, call: &Call) -> Result<Value> {
        let id = call.version_id()?;
        self.with_key(call, |key, name| {
            let v = key
                .version(id)
                .ok_or_else(|| not_found(format!("CryptoKeyVersion {} not found.", call.version_name())))?;
            Ok(v.json(name, call.enums))
        })
    }

    fn list_versions(&self, call: &Call) -> Result<Value> {
        let (filter, size, after) = list_params(call)?;
        if let Some(v) = call.q("view").filter(|v| !v.is_empty()) {
            wire::enum_value(Some(&Value::from(v)), model::VERSION_VIEWS, "view")?;
        }
        let after = after
            .map(|a| a.parse::<u32>().map_err(|_| invalid("pageToken is not a token this server returned")))
            .transpose()?;
        self.with_key(call, |key, name| {
            let items: Vec<(String, Value)> = key
                .versions
                .iter()
                .filter(|v| filter.matches(&v.json(name, false)))
                .map(|v| (v.id.to_string(), v.json(name, call.enums)))
                .collect();
            let after = after.map(|a| a.to_string());
            Ok(store::page("cryptoKeyVersions", items, size, after.as_deref(), |a, b| {
                a.parse::<u32>().unwrap_or(0).cmp(&b.parse::<u32>().unwrap_or(0))
            }))
        })
    }

    fn update_version(&self, call: &Call) -> Result<Value> {
        let mask = update_mask(call)?;
        if let Some(p) = mask.iter().find(|p| *p != "state") {
            return Err(invalid(format!("updateMask path {p:?} cannot be updated; only state can.")));
        }
        let target = wire::enum_value(field(&call.body, "state"), STATES, "state")?;
        if target != ENABLED && target != DISABLED {
            return Err(invalid(format!(
                "state may only be set to ENABLED or DISABLED, not {}.",
                enum_name(STATES, target)
            )));
        }
        let id = call.version_id()?;
        self.with_key(call, |key, name| {
            let vname = call.version_name();
            let v = key
                .version_mut(id)
                .ok_or_else(|| not_found(format!("CryptoKeyVersion {vname} not found.")))?;
            if v.state != ENABLED && v.state != DISABLED {
                return Err(precondition(format!(
                    "{vname} is in state {}; only ENABLED and DISABLED versions can change state.",
                    enum_name(STATES, v.state)
                )));
            }
            v.state = target;
            Ok(v.json(name, call.enums))
        })
    }

    fn destroy(&self, call: &Call) -> Result<Value> {
        let id = call.version_id()?;
        self.with_key(call, |key, name| {
            let after = key.destroy_scheduled_duration;
            let vname = call.version_name();
            let v = key
                .version_mut(id)
                .ok_or_else(|| not_found(format!("CryptoKeyVersion {vname} not found.")))?;
            if v.state != ENABLED && v.state != DISABLED {
                return Err(precondition(format!(
                    "{vname} is in state {}; only ENABLED and DISABLED versions can be destroyed.",
                    enum_name(STATES, v.state)
                )));
            }
            v.state = model::DESTROY_SCHEDULED;
            v.destroy_time = Some(SystemTime::now() + after);
            Ok(v.json(name, call.enums))
        })
    }

    fn restore(&self, call: &Call) -> Result<Value> {
        let id = call.version_id()?;
        self.with_key(call, |key, name| {
            let vname = call.version_name();
            let v = key
                .version_mut(id)
                .ok_or_else(|| not_found(format!("CryptoKeyVersion {vname} not found.")))?;
            if v.state != model::DESTROY_SCHEDULED {
                return Err(precondition(format!(
                    "{vname} is in state {}; only DESTROY_SCHEDULED versions can be restored.",
                    enum_name(STATES, v.state)
                )));
            }
            v.state = DISABLED;
            v.destroy_time = None;
            Ok(v.json(name, call.enums))
        })
    }

    // ---- cryptography ----

    fn encrypt(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let plaintext = zeroize::Zeroizing::new(bytes(b, "plaintext")?);
        let aad = bytes(b, "additionalAuthenticatedData")?;
        let vp = check_crc(b, "plaintext", &plaintext)?;
        let va = check_crc(b, "additionalAuthenticatedData", &aad)?;
        let by_version = call.segs.len() == 10;
        let key_name = call.key_name();
        let u = self.with_key(call, |key, key_name| {
            if key.purpose != ENCRYPT_DECRYPT {
                return Err(wrong_purpose(key_name, key.purpose, &[ENCRYPT_DECRYPT]));
            }
            let (id, name) = if by_version {
                (call.version_id()?, call.version_name())
            } else {
                let id =
                    key.primary.ok_or_else(|| precondition(format!("{key_name} has no primary version.")))?;
                (id, format!("{key_name}/cryptoKeyVersions/{id}"))
            };
            let v =
                key.version(id).ok_or_else(|| not_found(format!("CryptoKeyVersion {name} not found.")))?;
            usable(key, v, &name)
        })?;
        check_sizes(u.protection, plaintext.len(), aad.len())?;
        let sealed =
            u.material.seal(&plaintext, &envelope_aad(&key_name, u.version, &aad)).map_err(|_| internal())?;
        let mut ct = Vec::with_capacity(5 + sealed.len());
        ct.push(CIPHERTEXT_FORMAT);
        ct.extend_from_slice(&u.version.to_be_bytes());
        ct.extend_from_slice(&sealed);
        let mut v = json!({
            "name": format!("{key_name}/cryptoKeyVersions/{}", u.version),
            "ciphertext": wire::b64(&ct),
            "ciphertextCrc32c": crc_json(&ct),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(o, &[("verifiedPlaintextCrc32c", vp), ("verifiedAdditionalAuthenticatedDataCrc32c", va)]);
        Ok(v)
    }

    fn decrypt(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let ct = bytes(b, "ciphertext")?;
        let aad = bytes(b, "additionalAuthenticatedData")?;
        check_crc(b, "ciphertext", &ct)?;
        check_crc(b, "additionalAuthenticatedData", &aad)?;
        if ct.is_empty() {
            return Err(invalid("ciphertext is required."));
        }
        if ct.len() > MAX_DATA + CIPHERTEXT_OVERHEAD || aad.len() > MAX_DATA {
            return Err(invalid(format!(
                "The ciphertext or additional authenticated data exceeds {MAX_DATA} bytes."
            )));
        }
        let version = (ct.len() >= CIPHERTEXT_OVERHEAD && ct[0] == CIPHERTEXT_FORMAT)
            .then(|| u32::from_be_bytes([ct[1], ct[2], ct[3], ct[4]]));
        let key_name = call.key_name();
        let u = self.with_key(call, |key, key_name| {
            if key.purpose != ENCRYPT_DECRYPT {
                return Err(wrong_purpose(key_name, key.purpose, &[ENCRYPT_DECRYPT]));
            }
            let id = version.ok_or_else(decryption_failed)?;
            let v = key.version(id).ok_or_else(decryption_failed)?;
            usable(key, v, &format!("{key_name}/cryptoKeyVersions/{id}"))
        })?;
        let plaintext = u
            .material
            .open(&ct[5..], &envelope_aad(&key_name, u.version, &aad))
            .map_err(|_| decryption_failed())?;
        let mut v = json!({
            "plaintext": wire::b64(&plaintext),
            "plaintextCrc32c": crc_json(&plaintext),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(o, &[("usedPrimary", u.primary == Some(u.version))]);
        Ok(v)
    }

    fn raw_encrypt(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let plaintext = zeroize::Zeroizing::new(bytes(b, "plaintext")?);
        let aad = bytes(b, "additionalAuthenticatedData")?;
        let iv_in = bytes(b, "initializationVector")?;
        let vp = check_crc(b, "plaintext", &plaintext)?;
        let va = check_crc(b, "additionalAuthenticatedData", &aad)?;
        let vi = check_crc(b, "initializationVector", &iv_in)?;
        let u = self.use_version(call, &[RAW_ENCRYPT_DECRYPT])?;
        check_sizes(u.protection, plaintext.len(), aad.len())?;
        let iv: [u8; 12] = if iv_in.is_empty() {
            crypto::random_iv().map_err(|_| internal())?
        } else {
            iv_in.as_slice().try_into().map_err(|_| {
                invalid(format!(
                    "initializationVector must be 12 bytes for AES-GCM; it is {} bytes.",
                    iv_in.len()
                ))
            })?
        };
        let ct = u.material.raw_seal(&iv, &plaintext, &aad).map_err(|_| internal())?;
        let mut v = json!({
            "ciphertext": wire::b64(&ct),
            "initializationVector": wire::b64(&iv),
            "tagLength": 16,
            "ciphertextCrc32c": crc_json(&ct),
            "initializationVectorCrc32c": crc_json(&iv),
            "name": call.version_name(),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(
            o,
            &[
                ("verifiedPlaintextCrc32c", vp),
                ("verifiedAdditionalAuthenticatedDataCrc32c", va),
                ("verifiedInitializationVectorCrc32c", vi),
            ],
        );
        Ok(v)
    }

    fn raw_decrypt(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let ct = bytes(b, "ciphertext")?;
        let aad = bytes(b, "additionalAuthenticatedData")?;
        let iv = bytes(b, "initializationVector")?;
        let vc = check_crc(b, "ciphertext", &ct)?;
        let va = check_crc(b, "additionalAuthenticatedData", &aad)?;
        let vi = check_crc(b, "initializationVector", &iv)?;
        let tag_len = match wire::int64(b, "tagLength")? {
            None | Some(0) => 16,
            Some(n @ 12..=16) => n as usize,
            Some(n) => {
                return Err(invalid(format!("tagLength {n} is not supported for AES-GCM: use 12 to 16.")));
            }
        };
        let iv: [u8; 12] = iv.as_slice().try_into().map_err(|_| {
            invalid(format!(
                "initializationVector must be the 12 bytes RawEncrypt returned; it is {} bytes.",
                iv.len()
            ))
        })?;
        if ct.len() > MAX_DATA + 16 || aad.len() > MAX_DATA {
            return Err(invalid(format!(
                "The ciphertext or additional authenticated data exceeds {MAX_DATA} bytes."
            )));
        }
        let u = self.use_version(call, &[RAW_ENCRYPT_DECRYPT])?;
        let plaintext = u.material.raw_open(&iv, &ct, &aad, tag_len).map_err(|_| decryption_failed())?;
        let mut v = json!({
            "plaintext": wire::b64(&plaintext),
            "plaintextCrc32c": crc_json(&plaintext),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(
            o,
            &[
                ("verifiedCiphertextCrc32c", vc),
                ("verifiedAdditionalAuthenticatedDataCrc32c", va),
                ("verifiedInitializationVectorCrc32c", vi),
            ],
        );
        Ok(v)
    }

    fn asymmetric_sign(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let digest_obj = match field(b, "digest") {
            None => None,
            Some(Value::Object(d)) => Some(d.clone()),
            Some(_) => return Err(invalid("Invalid value at 'digest': expected an object")),
        };
        let data = bytes(b, "data")?;
        let has_data = field(b, "data").is_some();
        let u = self.use_version(call, &[ASYMMETRIC_SIGN])?;
        let (signature, vd, vdata) = match u.algorithm.kind {
            Kind::Ed25519 => {
                if digest_obj.is_some() {
                    return Err(invalid("EC_SIGN_ED25519 signs data: send 'data', not 'digest'."));
                }
                if data.len() > MAX_DATA {
                    return Err(invalid(format!(
                        "data is {} bytes; the limit is {MAX_DATA} bytes.",
                        data.len()
                    )));
                }
                let vdata = check_crc(b, "data", &data)?;
                (u.material.sign_data(&data).map_err(|_| internal())?, false, vdata)
            }
            Kind::RsaSign { hash, .. } | Kind::Ec { hash, .. } => {
                if has_data {
                    return Err(invalid(format!(
                        "{} signs a digest: send 'digest.{}', not 'data'.",
                        u.algorithm.name,
                        hash.digest_field()
                    )));
                }
                let d = digest_obj.unwrap_or_default();
                let want = hash.digest_field();
                if let Some(other) = d.keys().find(|k| k.as_str() != want) {
                    return Err(invalid(format!(
                        "{} needs a digest in 'digest.{want}', not 'digest.{other}'.",
                        u.algorithm.name
                    )));
                }
                let digest = bytes(&d, want)?;
                let vd = check_crc(b, "digest", &digest)?;
                let sig = u.material.sign_digest(hash, &digest).map_err(|_| {
                    invalid(format!(
                        "digest.{want} has the wrong length ({} bytes) for {}.",
                        digest.len(),
                        u.algorithm.name
                    ))
                })?;
                (sig, vd, false)
            }
            _ => return Err(internal()),
        };
        let mut v = json!({
            "signature": wire::b64(&signature),
            "signatureCrc32c": crc_json(&signature),
            "name": call.version_name(),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(o, &[("verifiedDigestCrc32c", vd), ("verifiedDataCrc32c", vdata)]);
        Ok(v)
    }

    fn asymmetric_decrypt(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let ct = bytes(b, "ciphertext")?;
        let vc = check_crc(b, "ciphertext", &ct)?;
        let u = self.use_version(call, &[ASYMMETRIC_DECRYPT])?;
        let plaintext = u.material.rsa_decrypt(&ct).map_err(|_| invalid("Decryption failed."))?;
        let mut v = json!({
            "plaintext": wire::b64(&plaintext),
            "plaintextCrc32c": crc_json(&plaintext),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(o, &[("verifiedCiphertextCrc32c", vc)]);
        Ok(v)
    }

    fn mac_sign(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let data = bytes(b, "data")?;
        let vd = check_crc(b, "data", &data)?;
        if data.len() > MAX_DATA {
            return Err(invalid(format!("data is {} bytes; the limit is {MAX_DATA} bytes.", data.len())));
        }
        let u = self.use_version(call, &[MAC])?;
        let mac = u.material.mac(&data).map_err(|_| internal())?;
        let mut v = json!({
            "name": call.version_name(),
            "mac": wire::b64(&mac),
            "macCrc32c": crc_json(&mac),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(o, &[("verifiedDataCrc32c", vd)]);
        Ok(v)
    }

    fn mac_verify(&self, call: &Call) -> Result<Value> {
        let b = &call.body;
        let data = bytes(b, "data")?;
        let mac = bytes(b, "mac")?;
        let vd = check_crc(b, "data", &data)?;
        let vm = check_crc(b, "mac", &mac)?;
        if data.len() > MAX_DATA {
            return Err(invalid(format!("data is {} bytes; the limit is {MAX_DATA} bytes.", data.len())));
        }
        let u = self.use_version(call, &[MAC])?;
        let success = u.material.mac_verify(&data, &mac);
        let mut v = json!({
            "name": call.version_name(),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        let o = v.as_object_mut().ok_or_else(internal)?;
        flags(
            o,
            &[
                ("success", success),
                ("verifiedDataCrc32c", vd),
                ("verifiedMacCrc32c", vm),
                ("verifiedSuccessIntegrity", success),
            ],
        );
        Ok(v)
    }

    fn public_key(&self, call: &Call) -> Result<Value> {
        let format = match call.q("publicKeyFormat").filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => wire::enum_value(Some(&Value::from(s)), model::PUBLIC_KEY_FORMATS, "publicKeyFormat")?,
        };
        if format != 0 && format != model::PEM {
            return Err(invalid("publicKeyFormat NIST_PQC is only for post-quantum keys; use PEM."));
        }
        let u = self.use_version(call, &[ASYMMETRIC_SIGN, ASYMMETRIC_DECRYPT])?;
        let pem = crypto::pem(u.material.spki().ok_or_else(internal)?);
        let mut v = json!({
            "pem": pem,
            "algorithm": wire::enum_json(call.enums, model::algorithm_table(), u.algorithm.number),
            "pemCrc32c": crc_json(pem.as_bytes()),
            "name": call.version_name(),
            "protectionLevel": wire::enum_json(call.enums, PROTECTION_LEVELS, u.protection),
        });
        if format == model::PEM {
            let o = v.as_object_mut().ok_or_else(internal)?;
            o.insert(
                "publicKeyFormat".into(),
                wire::enum_json(call.enums, model::PUBLIC_KEY_FORMATS, format),
            );
            o.insert(
                "publicKey".into(),
                json!({ "data": wire::b64(pem.as_bytes()), "crc32cChecksum": crc_json(pem.as_bytes()) }),
            );
        }
        Ok(v)
    }
}

/// `filter`, `pageSize`, `pageToken` and `orderBy` of a List call.
fn list_params(call: &Call) -> Result<(Filter, usize, Option<String>)> {
    store::check_order_by(call.q("orderBy").unwrap_or(""))?;
    let filter = Filter::parse(call.q("filter").unwrap_or(""))?;
    let size = store::page_size(call.q("pageSize"))?;
    let after = store::page_token(call.q("pageToken"))?;
    Ok((filter, size, after))
}

/// The `updateMask` paths in lowerCamelCase; an empty mask is refused.
fn update_mask(call: &Call) -> Result<Vec<String>> {
    let raw = call.q("updateMask").unwrap_or("");
    let paths: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split('.')
                .map(|seg| {
                    let mut out = String::new();
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
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    if paths.is_empty() {
        return Err(invalid("updateMask is required: name the fields to update, e.g. updateMask=labels."));
    }
    Ok(paths)
}
