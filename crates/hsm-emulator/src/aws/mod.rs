//! `hsm-emulator aws`: the AWS KMS JSON 1.1 protocol on 127.0.0.1, SigV4-verified, with real
//! cryptography.
//!
//! Requests are `POST /` with `X-Amz-Target: TrentService.<Operation>` and a JSON body
//! (`Content-Type: application/x-amz-json-1.1`); binary fields are base64, timestamps epoch
//! seconds. Every request must carry a valid SigV4 `Authorization` header for the configured
//! access key, region and service `kms` (see "Authentication" below). Errors are
//! `{"__type": "NotFoundException", "message": "..."}` with HTTP 400 (500 for
//! `KMSInternalException`), as AWS answers.
//!
//! # Operations
//!
//! | group | operations |
//! |---|---|
//! | keys | CreateKey, DescribeKey, ListKeys, UpdateKeyDescription, EnableKey, DisableKey, ScheduleKeyDeletion (7–30 days), CancelKeyDeletion (→ Disabled) |
//! | aliases | CreateAlias, UpdateAlias, DeleteAlias, ListAliases (Limit/Marker, KeyId filter) |
//! | tags | TagResource, UntagResource, ListResourceTags |
//! | symmetric | Encrypt, Decrypt (KeyId optional), ReEncrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateRandom |
//! | RSA | Encrypt/Decrypt with RSAES_OAEP_SHA_1/256 (real OAEP) |
//! | signing | Sign, Verify (RAW up to 4096 bytes and DIGEST; RSASSA-PKCS1-v1_5, RSASSA-PSS with salt = digest length, ECDSA (DER), Ed25519 `ED25519_SHA_512`), GetPublicKey (DER SPKI) |
//! | MAC | GenerateMac, VerifyMac (HMAC_224/256/384/512) |
//! | rotation | RotateKeyOnDemand (symmetric; old ciphertexts keep decrypting), GetKeyRotationStatus, EnableKeyRotation, DisableKeyRotation, ListKeyRotations |
//!
//! Key specs: SYMMETRIC_DEFAULT, RSA_2048/3072/4096, ECC_NIST_P256/P384/P521,
//! ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, HMAC_224/256/384/512. Not emulated (answered with
//! `UnsupportedOperationException`): SM2, ML-DSA, ML-KEM, `KEY_AGREEMENT`, imported key
//! material, custom key stores, multi-Region keys, `ED25519_PH_SHA_512` (aws-lc-rs has no
//! Ed25519ph), grants and key policies (a `Policy` is accepted and not enforced). Unknown
//! operations get `UnknownOperationException`.
//!
//! Key states follow AWS: a disabled key answers cryptographic calls with
//! `DisabledException`, a key pending deletion with `KMSInvalidStateException`; cancelling
//! a deletion leaves the key disabled.
//!
//! Symmetric ciphertexts are the emulator's own opaque format, like AWS's: they carry the key
//! id and the key material version, and are AES-256-GCM with the encryption context
//! (canonicalised: sorted by key) bound as additional authenticated data, so `Decrypt` needs
//! no `KeyId` and a different context fails with `InvalidCiphertextException`.
//!
//! # Authentication
//!
//! | request | answer (HTTP 400) |
//! |---|---|
//! | no `Authorization` header | `MissingAuthenticationTokenException` |
//! | malformed `Authorization`, no `X-Amz-Date` | `IncompleteSignatureException` |
//! | unknown access key id | `UnrecognizedClientException` |
//! | wrong signature, wrong region/service scope, clock more than 15 min off, `X-Amz-Content-Sha256` not the body's hash | `InvalidSignatureException` |
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let running = hsm_emulator::aws::start(hsm_emulator::aws::Args::default()).await?;
//! println!("AWS_ENDPOINT_URL_KMS={}", running.url()); // credentials testing/testing, us-east-1
//! # Ok(()) }
//! ```

mod keys;
mod ops;
mod sigv4;

use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;

use crate::server::{Handler, HandlerFuture, Request, Response, Running, serve_http};

/// The default access key id the emulator accepts.
pub const DEFAULT_ACCESS_KEY_ID: &str = "testing";
/// The default secret access key the emulator accepts.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "testing";
/// The default region requests must be signed for.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The default account id in ARNs.
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The largest clock difference accepted in a signed request, in seconds (15 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = sigv4::MAX_SKEW_SECS;

/// Command-line options of `hsm-emulator aws`.
#[derive(Clone, clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The access key id requests must be signed with.
    #[arg(long, default_value = DEFAULT_ACCESS_KEY_ID)]
    pub access_key_id: String,
    /// The secret access key requests must be signed with.
    #[arg(long, default_value = DEFAULT_SECRET_ACCESS_KEY)]
    pub secret_access_key: String,
    /// The region requests must be signed for (and that appears in ARNs).
    #[arg(long, default_value = DEFAULT_REGION)]
    pub region: String,
    /// The AWS account id in ARNs.
    #[arg(long, default_value = DEFAULT_ACCOUNT)]
    pub account: String,
    /// Persistent state (`--state PATH`, `--state-key FILE`).
    #[command(flatten)]
    pub state: crate::state::StateArgs,
    /// Fault injection and a server-side quota (`--faults SPEC`, `--quota RATE`).
    #[command(flatten)]
    pub faults: crate::faults::FaultArgs,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            port: 0,
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_owned(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            account: DEFAULT_ACCOUNT.to_owned(),
            state: crate::state::StateArgs::default(),
            faults: crate::faults::FaultArgs::default(),
        }
    }
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("port", &self.port)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("region", &self.region)
            .field("account", &self.account)
            .field("state", &self.state)
            .field("faults", &self.faults)
            .finish()
    }
}

/// Starts the emulator on the current tokio runtime (cryptography runs on its blocking pool).
///
/// # Errors
/// When the port cannot be bound, the region or account is empty, or the `--state` file cannot
/// be opened (held by another emulator, wrong key, corrupt).
pub async fn start(args: Args) -> io::Result<Running> {
    let state = args.state.open()?;
    start_with_state(args, state).await
}

/// [`start`] with an already open state file (`all` mode shares one between the modes).
///
/// # Errors
/// As [`start`].
pub async fn start_with_state(
    args: Args,
    state: Option<std::sync::Arc<crate::state::StateFile>>,
) -> io::Result<Running> {
    let (port, faults) = (args.port, args.faults.clone());
    serve_http(port, faults.wrap(crate::faults::Vendor::Aws, emulator(args, state)?)).await
}

/// The emulator as a request handler with its own (empty) state, to serve with
/// [`serve_http`](crate::server::serve_http) yourself: serving the same handler again after
/// dropping its [`Running`] restarts the emulator with the keys it had (tests of clients
/// that must survive an outage use this).
///
/// # Errors
/// When the region, account or access key id is empty.
pub fn handler(args: Args) -> io::Result<Arc<dyn crate::server::Handler>> {
    let handler: Arc<dyn crate::server::Handler> = emulator(args, None)?;
    Ok(handler)
}

/// The handler, with its state in memory or loaded from and saved to `state`.
fn emulator(args: Args, state: Option<Arc<crate::state::StateFile>>) -> io::Result<Arc<Emulator>> {
    if args.region.is_empty() || args.account.is_empty() || args.access_key_id.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--region, --account and --access-key-id must not be empty",
        ));
    }
    let persist = state.map(|s| crate::state::Persist::new(s, "aws"));
    let kms = ops::Kms::new(&args.region, &args.account, persist)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Arc::new(Emulator { state: kms, args }))
}

/// An AWS error answer.
#[derive(Debug, Clone)]
pub(crate) struct KmsError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) status: u16,
}

impl KmsError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        KmsError { code, message: message.into(), status: 400 }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        KmsError { code: "KMSInternalException", message: message.into(), status: 500 }
    }

    fn response(&self) -> Response {
        let body = serde_json::json!({ "__type": self.code, "message": self.message });
        reply(self.status, body.to_string().into())
    }
}

fn reply(status: u16, body: Bytes) -> Response {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(id) = keys::random_bytes(16) {
        let id = ops::uuid(&id);
        if let Ok(v) = hyper::header::HeaderValue::from_str(&id) {
            h.insert("x-amzn-requestid", v);
        }
    }
    resp
}

pub(crate) fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

struct Emulator {
    args: Args,
    state: ops::Kms,
}

impl Emulator {
    fn serve(&self, req: &Request) -> Result<Option<serde_json::Value>, KmsError> {
        let expected = sigv4::Expected {
            access_key_id: &self.args.access_key_id,
            secret_access_key: &self.args.secret_access_key,
            region: &self.args.region,
            service: "kms",
        };
        sigv4::verify(req, &expected, now_secs() as i64)?;
        let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let Some(op) = target.strip_prefix("TrentService.").filter(|_| req.method() == hyper::Method::POST)
        else {
            return Err(KmsError::new("UnknownOperationException", format!("unknown operation '{target}'")));
        };
        let body: serde_json::Value = if req.body().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_slice(req.body())
                .map_err(|e| KmsError::new("SerializationException", format!("the body is not JSON: {e}")))?
        };
        let serde_json::Value::Object(input) = body else {
            return Err(KmsError::new("SerializationException", "the body must be a JSON object"));
        };
        self.state.dispatch(op, &ops::Input(input))
    }
}

impl Handler for Emulator {
    fn handle(self: Arc<Self>, req: Request) -> HandlerFuture {
        Box::pin(async move {
            let answer = tokio::task::spawn_blocking(move || self.serve(&req)).await;
            match answer {
                Ok(Ok(Some(v))) => reply(200, v.to_string().into()),
                Ok(Ok(None)) => reply(200, Bytes::new()),
                Ok(Err(e)) => e.response(),
                Err(_) => KmsError::internal("the request handler failed").response(),
            }
        })
    }
}
