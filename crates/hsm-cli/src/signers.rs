//! The commands that put provider keys into other tools' formats and protocols: public keys
//! as DER, JWK and OpenSSH; X.509 certificates and CSRs; JWTs; an SSH agent. All of them go
//! through `hsm::signers`, which refuses keys that cannot serve the request (exit 4).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use hsm::signers::{KeySigner, jose, ssh, x509};
use hsm::{Client, KeyRef, SignatureAlgorithm};

use crate::failure::{Failure, code};
use crate::io::{Secrecy, print, read_all, refuse_binary_tty, write_all};

/// How `hsm key public` writes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PublicFormat {
    /// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), for openssl
    Pem,
    /// DER SubjectPublicKeyInfo (binary)
    Der,
    /// A JSON Web Key with kid = NAME@VERSION
    Jwk,
    /// One OpenSSH public key line (authorized_keys, allowed_signers)
    Ssh,
}

/// `hsm x509 ...`
#[derive(Debug, Subcommand)]
pub(crate) enum X509Command {
    /// A self-signed certificate for a key (with --ca: a root CA whose key stays in the provider)
    SelfSigned(CertArgs),
    /// A PKCS#10 certificate signing request for a key
    Csr(CsrArgs),
    /// Issue a certificate for a CSR, signed by a CA key in the provider
    Issue(IssueArgs),
}

/// Options shared by the certificate commands.
#[derive(Debug, Args)]
pub(crate) struct CertArgs {
    /// The key to certify (and sign with)
    #[arg(long)]
    key: String,
    /// Subject, e.g. 'CN=example.com,O=Example,C=DE' (CN, O, OU, C, ST, L)
    #[arg(long)]
    subject: String,
    /// Subject alternative name, DNS:host or IP:address (repeatable)
    #[arg(long = "san", value_name = "DNS:NAME|IP:ADDR")]
    sans: Vec<String>,
    /// Days of validity
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Make a CA certificate
    #[arg(long)]
    ca: bool,
    /// Write the PEM certificate to FILE
    #[arg(short = 'o', long = "out", value_name = "FILE", default_value = "-")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CsrArgs {
    /// The key the request is for (it signs the request)
    #[arg(long)]
    key: String,
    /// Subject, e.g. 'CN=example.com,O=Example'
    #[arg(long)]
    subject: String,
    /// Subject alternative name, DNS:host or IP:address (repeatable)
    #[arg(long = "san", value_name = "DNS:NAME|IP:ADDR")]
    sans: Vec<String>,
    /// Write the PEM request to FILE
    #[arg(short = 'o', long = "out", value_name = "FILE", default_value = "-")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// The CA's key in the provider
    #[arg(long)]
    issuer_key: String,
    /// The CA's certificate (PEM)
    #[arg(long, value_name = "FILE")]
    issuer_cert: PathBuf,
    /// The certificate signing request (PEM)
    #[arg(long, value_name = "FILE")]
    csr: PathBuf,
    /// Days of validity
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Make a (subordinate) CA certificate
    #[arg(long)]
    ca: bool,
    /// Write the PEM certificate to FILE
    #[arg(short = 'o', long = "out", value_name = "FILE", default_value = "-")]
    out: PathBuf,
}

/// `hsm jwt ...`
#[derive(Debug, Subcommand)]
pub(crate) enum JwtCommand {
    /// Sign claims as a compact JWT (printed on stdout)
    Sign(JwtSignArgs),
    /// Verify a JWT: exit 0 and the claims, or exit 1 and why it is invalid
    Verify(JwtVerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct JwtSignArgs {
    /// The signing key
    #[arg(long)]
    key: String,
    /// JWS algorithm (RS256, PS256, ES256, ES256K, EdDSA, ...) [default: the key's]
    #[arg(long, value_parser = parse_algorithm)]
    algorithm: Option<SignatureAlgorithm>,
    /// The claims: a JSON object, or @FILE to read it from a file
    #[arg(long)]
    claims: String,
    /// Add exp (and iat) this far from now, e.g. 1h, 30m, 7d
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct JwtVerifyArgs {
    /// The key the token must be signed by (NAME, or NAME@VERSION)
    #[arg(long)]
    key: String,
    /// The token ('-' for stdin)
    #[arg(short = 'i', long = "in", value_name = "FILE", default_value = "-")]
    input: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SshAgentArgs {
    /// The Unix socket to listen on (must not exist); use it as SSH_AUTH_SOCK
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// A key to serve (repeatable) [default: every signing key with an SSH form]
    #[arg(long = "key", value_name = "NAME")]
    keys: Vec<String>,
}

fn parse_algorithm(s: &str) -> Result<SignatureAlgorithm, String> {
    s.parse::<SignatureAlgorithm>().map_err(|e| e.to_string())
}

async fn signer(client: &Client, key: &str, alg: Option<SignatureAlgorithm>) -> Result<KeySigner, Failure> {
    let provider = client.provider().clone();
    Ok(match alg {
        Some(a) => KeySigner::with_algorithm(provider, key, a).await?,
        None => KeySigner::new(provider, key).await?,
    })
}

/// `hsm key public NAME --format ...`
pub(crate) async fn public_key(
    client: &Client,
    name: KeyRef,
    format: PublicFormat,
    out: &Path,
) -> Result<(), Failure> {
    let pk = client.public_key(name).await?;
    match format {
        PublicFormat::Pem => write_all(out, pk.to_pem().as_bytes(), Secrecy::Public),
        PublicFormat::Der => {
            refuse_binary_tty(out, false)?;
            write_all(out, &pk.spki_der, Secrecy::Public)
        }
        PublicFormat::Jwk => {
            // A signing key's JWK names its algorithm ("use": "sig", "alg"); others do not.
            let signing = KeySigner::new(
                client.provider().clone(),
                KeyRef::new(pk.key.clone()).with_version(pk.version.clone()),
            )
            .await
            .ok()
            .map(|s| s.algorithm());
            let jwk = jose::jwk(&pk, signing)?;
            let text = serde_json::to_string_pretty(&jwk).map_err(|e| Failure::Input(e.to_string()))? + "\n";
            write_all(out, text.as_bytes(), Secrecy::Public)
        }
        PublicFormat::Ssh => {
            let line = ssh::openssh_public_key(&pk, None)? + "\n";
            write_all(out, line.as_bytes(), Secrecy::Public)
        }
    }
}

fn validity(days: u32) -> Duration {
    Duration::from_secs(u64::from(days) * 86_400)
}

fn read_text(path: &Path, what: &str) -> Result<String, Failure> {
    let bytes = read_all(path)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Failure::Input(format!("the {what} in {} is not text (PEM)", path.display())))
}

/// `hsm x509 ...`
pub(crate) async fn x509(client: &Client, cmd: X509Command) -> Result<u8, Failure> {
    match cmd {
        X509Command::SelfSigned(a) => {
            let s = signer(client, &a.key, None).await?;
            let mut opts = x509::CertOptions::new(a.subject).validity(validity(a.days)).ca(a.ca);
            opts.sans = a.sans;
            let pem = x509::self_signed(&s, &opts).await?;
            write_all(&a.out, pem.as_bytes(), Secrecy::Public)?;
        }
        X509Command::Csr(a) => {
            let s = signer(client, &a.key, None).await?;
            let mut opts = x509::CertOptions::new(a.subject);
            opts.sans = a.sans;
            let pem = x509::csr(&s, &opts).await?;
            write_all(&a.out, pem.as_bytes(), Secrecy::Public)?;
        }
        X509Command::Issue(a) => {
            let s = signer(client, &a.issuer_key, None).await?;
            let issuer_cert = read_text(&a.issuer_cert, "issuer certificate")?;
            let csr = read_text(&a.csr, "certificate request")?;
            let opts = x509::CertOptions::new(String::new()).validity(validity(a.days)).ca(a.ca);
            let pem = x509::issue(&s, &issuer_cert, &csr, &opts).await?;
            write_all(&a.out, pem.as_bytes(), Secrecy::Public)?;
        }
    }
    Ok(code::OK)
}

/// `hsm jwt ...`
pub(crate) async fn jwt(client: &Client, cmd: JwtCommand) -> Result<u8, Failure> {
    match cmd {
        JwtCommand::Sign(a) => {
            let text = match a.claims.strip_prefix('@') {
                Some(file) => read_text(&PathBuf::from(file), "claims")?,
                None => a.claims,
            };
            let mut claims: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Failure::Input(format!("--claims is not JSON: {e}")))?;
            let Some(obj) = claims.as_object_mut() else {
                return Err(Failure::Input(
                    "--claims must be a JSON object, e.g. '{\"sub\":\"alice\"}'".into(),
                ));
            };
            if let Some(d) = &a.expires_in {
                let d = hsm::settings::parse_duration(
                    "hsm",
                    "--expires-in",
                    d,
                    Duration::from_secs(100 * 365 * 86_400),
                )?;
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs());
                obj.entry("iat").or_insert(now.into());
                obj.insert("exp".into(), (now + d.as_secs()).into());
            }
            let s = signer(client, &a.key, a.algorithm).await?;
            let token = jose::sign_jwt(&s, &claims).await?;
            print(&format!("{token}\n"))?;
            Ok(code::OK)
        }
        JwtCommand::Verify(a) => {
            let token = read_text(&a.input, "token")?;
            let key: KeyRef = a.key.parse().unwrap_or_else(|e: std::convert::Infallible| match e {});
            match jose::verify_jwt(client.provider().as_ref(), &key, token.trim(), 0).await? {
                jose::Verification::Valid(v) => {
                    print(&format!("valid\n{}\n", String::from_utf8_lossy(&v.payload)))?;
                    Ok(code::OK)
                }
                jose::Verification::Invalid(why) => {
                    print(&format!("invalid: {why}\n"))?;
                    Ok(code::INVALID)
                }
                _ => Ok(code::INVALID),
            }
        }
    }
}

/// `hsm ssh-agent --socket PATH [--key NAME]...`: serves until interrupted, then removes the
/// socket.
pub(crate) async fn ssh_agent(client: &Client, a: SshAgentArgs) -> Result<u8, Failure> {
    let provider: Arc<dyn hsm::Provider> = client.provider().clone();
    let agent = if a.keys.is_empty() {
        let (agent, skipped) = ssh::SshAgent::all_with_skipped(provider).await?;
        for (key, why) in skipped {
            eprintln!("hsm ssh-agent: not serving '{key}': {why}");
        }
        agent
    } else {
        ssh::SshAgent::new(provider, &a.keys).await?
    };
    // Mode 0600: whoever can open the socket can sign with every served key.
    let listener = ssh::bind_private(&a.socket)?;
    let mut lines = format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;\n", a.socket.display());
    for k in agent.public_keys() {
        lines.push_str(&format!("# {k}\n"));
    }
    print(&lines)?;
    tokio::select! {
        () = agent.serve(listener) => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminate() => {}
    }
    let _ = std::fs::remove_file(&a.socket);
    Ok(code::OK)
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending().await
}
