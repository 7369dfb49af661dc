//! `hsm-emulator azure`: the Azure Key Vault keys REST API (vault or Managed HSM) over TLS,
//! faithful enough for the official Rust and Python SDKs, with real cryptography.
//!
//! # Running it
//!
//! ```text
//! hsm-emulator azure --port 8443 --ca-out /tmp/kv-ca.pem [--managed-hsm] [--host test.vault.azure.net] [--token T]
//! ```
//!
//! It generates a CA and a server certificate for `127.0.0.1`, `localhost` and `--host`
//! (default `emulator.vault.azure.net`, or `emulator.managedhsm.azure.net` with
//! `--managed-hsm`), writes the CA certificate (PEM) to `--ca-out`, and serves HTTPS (HTTP/1.1)
//! on 127.0.0.1. Point a client at `https://127.0.0.1:PORT` and trust the CA file. Without
//! `--state` the CA is new at every start; with `--state` the CA and server certificate are
//! made once and kept (encrypted) in the state, so clients keep trusting them across restarts
//! (until `--host` changes).
//!
//! # In-process (tests)
//!
//! [`start_with_ca`] returns the running server and the CA PEM (no file needed); [`start`] is
//! the same but only writes the PEM to [`Args::ca_out`] when set. The server stops when the
//! returned [`Running`] is dropped.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use hsm_emulator::azure::{self, Args};
//! let (running, ca_pem) = azure::start_with_ca(Args { managed_hsm: true, ..Args::default() }).await?;
//! let url = running.url(); // https://127.0.0.1:PORT
//! // Trust `ca_pem` (reqwest: Certificate::from_pem; Python: connection_verify="ca.pem"),
//! // and turn off challenge-resource verification (the host is not *.vault.azure.net).
//! # let _ = (url, ca_pem); Ok(()) }
//! ```
//!
//! # Protocol
//!
//! - **Authentication**: every request needs `Authorization: Bearer <non-empty token>`
//!   (exactly `--token` when given), checked before the body is read. Otherwise the answer
//!   is 401 with `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
//!   resource="https://vault.azure.net"` (`https://managedhsm.azure.net` in Managed HSM
//!   mode) and `{"error":{"code":"Unauthorized",…}}`: the SDKs' challenge flow. The token
//!   itself is not validated otherwise.
//! - **Throttling** on demand: with `--throttle-every N` every Nth authenticated request is
//!   answered 429 `{"error":{"code":"Throttled",…}}` with `Retry-After: 1`.
//! - **api-version** is required on every request; any value is accepted.
//! - **Routes** (`{v}` empty or absent = latest version; `/keys/{n}/` and `/keys/{n}//sign` work):
//!   `POST /keys/{n}/create`, `PUT /keys/{n}` (import a JWK with private members),
//!   `GET|PATCH /keys/{n}[/{v}]`, `GET /keys`, `GET /keys/{n}/versions`,
//!   `POST /keys/{n}/rotate`, `POST /keys/{n}/{v}/{encrypt|decrypt|sign|verify|wrapkey|unwrapkey}`,
//!   `DELETE /keys/{n}` (soft delete), `GET /deletedkeys`, `GET /deletedkeys/{n}`,
//!   `DELETE /deletedkeys/{n}` (purge: **204**), `POST /deletedkeys/{n}/recover`, `POST /rng`.
//!   Everything else succeeds with 200.
//! - **Key types**: vault mode `RSA`/`RSA-HSM` (2048, 3072, 4096; exponent 65537) and
//!   `EC`/`EC-HSM` (P-256, P-384, P-521, P-256K). Managed HSM mode only HSM types:
//!   `RSA-HSM`, `EC-HSM`, `oct-HSM` (128, 192, 256); software `RSA`/`EC` there, and `oct*` in
//!   vault mode, are 400 BadParameter. Default `key_ops`: RSA all six, EC sign/verify, oct
//!   encrypt/decrypt/wrapKey/unwrapKey.
//! - **KeyBundle**: `kid` is `https://<Host header>/keys/{n}/{32 hex}` (the address the client
//!   used, so SDKs following `kid` come back here), binary fields base64url without padding,
//!   EC `x`/`y` zero-padded, no `k` for oct keys, timestamps integer seconds, attributes with
//!   `recoveryLevel: "Recoverable+Purgeable"`, `recoverableDays: 90`, `exportable`; `tags`
//!   only when non-empty.
//! - **Versions**: creating (or importing) an existing name adds a version, as Key Vault does.
//!   Rotation adds a version of the same type and size with the same `key_ops` and tags.
//!   Tags and attributes belong to versions; listings show the latest version's.
//! - **Listing**: `maxresults` 1–25 (default 25); `nextLink` is an absolute https URL with
//!   `$skiptoken`, `null` on the last page.
//! - **Crypto**: encrypt/decrypt and wrapkey/unwrapkey take the same algorithms: RSA-OAEP,
//!   RSA-OAEP-256, RSA1_5 on RSA keys; on oct-HSM keys A{128,192,256}GCM (the service picks
//!   the 12-byte `iv`; the answer carries `value`, `iv`, `tag` and echoes `aad`; decrypt needs
//!   `iv` and `tag`), A{128,192,256}KW and CKM_AES_KEY_WRAP (RFC 3394), CKM_AES_KEY_WRAP_PAD
//!   (RFC 5649), A{128,192,256}CBC and …CBCPAD (client `iv`). Sign takes a digest of the
//!   algorithm's hash length: RS/PS 256/384/512 (PSS salt = hash length) on RSA, ES256
//!   (P-256), ES384 (P-384), ES512 (P-521), ES256K (P-256K) with raw `r ‖ s` signatures.
//!   Verify `{"alg","digest","value"}` answers `{"value": true|false}`.
//! - **Errors** `{"error":{"code","message"[,"innererror":{"code"}]}}`: 400 BadParameter (bad
//!   body, algorithm not fitting the key, wrong digest length, failed decryption — opaque), 401
//!   Unauthorized, 403 Forbidden for a disabled key (innererror KeyDisabled), an expired or
//!   not-yet-valid key (KeyExpired, KeyNotYetValid) or an operation missing from `key_ops`
//!   (OperationNotPermitted), 404 KeyNotFound (unknown name or version, or not deleted), 409
//!   Conflict with innererror ObjectIsDeletedButRecoverable when creating over a deleted name.
//! - **Deletion**: `DELETE /keys/{n}` answers the DeletedKeyBundle (`recoveryId`,
//!   `deletedDate`, `scheduledPurgeDate` = +90 days) and the key moves to `/deletedkeys` at
//!   once; it is never purged automatically.

mod api;
mod crypto;
mod store;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::server::{Running, serve_https};

/// Command-line options of `hsm-emulator azure` (also the in-process configuration).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Write the generated CA certificate (PEM) here; clients must trust it. Required on the
    /// command line; optional in-process, where [`start_with_ca`] returns the PEM.
    #[arg(long, value_name = "FILE", required = true)]
    pub ca_out: Option<PathBuf>,
    /// Emulate a Managed HSM (oct-HSM AES keys, HSM key types only) instead of a vault.
    #[arg(long)]
    pub managed_hsm: bool,
    /// Host name added to the server certificate (default emulator.vault.azure.net, or
    /// emulator.managedhsm.azure.net with --managed-hsm).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Accept only this bearer token (default: any non-empty token).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Answer every Nth authenticated request with 429 `Throttled` and `Retry-After: 1`
    /// (to test retries and error mapping).
    #[arg(long, value_name = "N")]
    pub throttle_every: Option<u64>,
    /// Persistent state (`--state PATH`, `--state-key FILE`).
    #[command(flatten)]
    pub state: crate::state::StateArgs,
    /// Fault injection and a server-side quota (`--faults SPEC`, `--quota RATE`).
    #[command(flatten)]
    pub faults: crate::faults::FaultArgs,
}

impl Args {
    fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            if self.managed_hsm { "emulator.managedhsm.azure.net" } else { "emulator.vault.azure.net" }
                .to_string()
        })
    }
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot set up TLS: {e}"))
}

/// The TLS identity the emulator serves: the CA certificate (PEM) clients trust, and the
/// server certificate and its PKCS#8 key (DER).
struct Identity {
    ca_pem: String,
    cert_der: Vec<u8>,
    key_der: zeroize::Zeroizing<Vec<u8>>,
}

/// The state section holding the TLS identity, so clients keep trusting the same CA across
/// restarts with `--state` (the key is encrypted with the rest of the state).
const TLS_SECTION: &str = "azure-tls";

impl Identity {
    fn to_json(&self, host: &str) -> serde_json::Value {
        serde_json::json!({
            "host": host,
            "ca": self.ca_pem,
            "cert": crate::state::secret::to_json(&self.cert_der),
            "key": crate::state::secret::to_json(&self.key_der),
        })
    }

    /// The saved identity, when it was made for `host`.
    fn from_json(v: &serde_json::Value, host: &str) -> Option<Identity> {
        if v.get("host")?.as_str()? != host {
            return None;
        }
        Some(Identity {
            ca_pem: v.get("ca")?.as_str()?.to_owned(),
            cert_der: crate::state::secret::from_json(v.get("cert")?)?.to_vec(),
            key_der: crate::state::secret::from_json(v.get("key")?)?,
        })
    }

    fn server_config(&self) -> io::Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.to_vec())),
            )
            .map_err(tls_error)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A fresh CA and a server certificate for 127.0.0.1, localhost and `host`.
fn new_identity(host: &str) -> io::Result<Identity> {
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "hsm-emulator azure test CA");
    ca.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(tls_error)?).map_err(tls_error)?;

    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.subject_alt_names = vec![
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::DnsName("localhost".try_into().map_err(tls_error)?),
        SanType::DnsName(host.try_into().map_err(|e| tls_error(format!("--host {host:?}: {e}")))?),
    ];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().map_err(tls_error)?;
    let cert = leaf.signed_by(&leaf_key, &ca).map_err(tls_error)?;
    Ok(Identity {
        ca_pem: ca.pem(),
        cert_der: cert.der().to_vec(),
        key_der: zeroize::Zeroizing::new(leaf_key.serialize_der()),
    })
}

/// Starts the emulator on the current tokio runtime and returns it with the PEM of the CA
/// that signed its certificate (also written to [`Args::ca_out`] when set).
///
/// # Errors
/// When the port cannot be bound, `--host` is not a valid DNS name, or the CA file cannot
/// be written.
pub async fn start_with_ca(args: Args) -> io::Result<(Running, String)> {
    start_with_ca_wrapped(args, |h| h).await
}

/// [`start_with_ca`] with the request handler wrapped by `wrap` first (e.g. in
/// [`faults::Faults`](crate::faults::Faults)).
///
/// # Errors
/// As [`start_with_ca`].
pub async fn start_with_ca_wrapped(
    args: Args,
    wrap: impl FnOnce(Arc<dyn crate::server::Handler>) -> Arc<dyn crate::server::Handler>,
) -> io::Result<(Running, String)> {
    let state = args.state.open()?;
    start_with_state_wrapped(args, state, wrap).await
}

/// [`start_with_ca`] with an already open state file (`all` mode shares one between the modes).
///
/// # Errors
/// As [`start_with_ca`], and when the saved state does not parse.
pub async fn start_with_state(
    args: Args,
    state: Option<Arc<crate::state::StateFile>>,
) -> io::Result<(Running, String)> {
    start_with_state_wrapped(args, state, |h| h).await
}

async fn start_with_state_wrapped(
    args: Args,
    state: Option<Arc<crate::state::StateFile>>,
    wrap: impl FnOnce(Arc<dyn crate::server::Handler>) -> Arc<dyn crate::server::Handler>,
) -> io::Result<(Running, String)> {
    let host = args.host();
    // With --state the TLS identity is state too: clients trust the same CA after a restart.
    let saved =
        state.as_ref().and_then(|s| s.section(TLS_SECTION)).and_then(|v| Identity::from_json(&v, &host));
    let identity = match saved {
        Some(identity) => identity,
        None => {
            let identity = new_identity(&host)?;
            if let Some(s) = &state {
                s.save(TLS_SECTION, identity.to_json(&host))?;
            }
            identity
        }
    };
    let config = identity.server_config()?;
    let ca_pem = identity.ca_pem.clone();
    if let Some(path) = &args.ca_out {
        std::fs::write(path, &ca_pem).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write the CA to {}: {e}", path.display()))
        })?;
    }
    let persist = state.map(|s| crate::state::Persist::new(s, "azure"));
    let emulator = api::Emulator::new(
        api::Options {
            managed_hsm: args.managed_hsm,
            host,
            token: args.token.clone(),
            throttle_every: args.throttle_every,
        },
        persist,
    )
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let handler = args.faults.wrap(crate::faults::Vendor::Azure, Arc::new(emulator));
    let running = serve_https(args.port, wrap(handler), Arc::new(config)).await?;
    Ok((running, ca_pem))
}

/// The emulator as a request handler with its own (empty) state and no TLS, for driving it
/// in-process (the fuzz targets in `fuzz/` do; [`start_with_ca`] serves it over HTTPS).
/// `ca_out`, `port` and `state` are not used.
///
/// # Errors
/// None today (there is no state to restore); kept for symmetry with
/// [`aws::handler`](crate::aws::handler).
pub fn handler(args: Args) -> io::Result<Arc<dyn crate::server::Handler>> {
    let options = api::Options {
        managed_hsm: args.managed_hsm,
        host: args.host(),
        token: args.token.clone(),
        throttle_every: args.throttle_every,
    };
    let emulator =
        api::Emulator::new(options, None).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Arc::new(emulator))
}

/// Starts the emulator on the current tokio runtime; see [`start_with_ca`].
///
/// # Errors
/// As [`start_with_ca`].
pub async fn start(args: Args) -> io::Result<Running> {
    Ok(start_with_ca(args).await?.0)
}
