//! SSH: provider public keys in OpenSSH format, and an SSH agent serving provider keys, so
//! `ssh`, `ssh-keygen -Y sign` and git commit signing use a key that stays in the KMS or HSM.
//!
//! The agent speaks the two requests a signing agent needs (draft-miller-ssh-agent):
//! `REQUEST_IDENTITIES` and `SIGN_REQUEST`; every other request (adding or removing keys,
//! locking, extensions) gets `SSH_AGENT_FAILURE`, as the keys are managed by the provider.
//! The subset is small enough to implement here on tokio's `UnixListener` rather than pull
//! in ssh-agent-lib's tree (ssh-key, ssh-encoding, RustCrypto 0.13 types, service-binding).
//!
//! Key types: `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521` and RSA (`rsa-sha2-256`,
//! `rsa-sha2-512`; the SHA-1 `ssh-rsa` signature is refused). An RSA key whose provider
//! cannot sign PKCS#1 v1.5 (a Cloud KMS RSA-PSS key) and secp256k1 keys have no SSH form.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use hsm_core::{
    Error, KeyFamily, KeySpec, KeyUsage, ListKeys, Provider, ProviderExt as _, PublicKey, Result,
    SignatureAlgorithm,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use crate::{KeySigner, der, signer::ec_field_len};

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
const SSH_AGENT_RSA_SHA2_256: u32 = 2;
const SSH_AGENT_RSA_SHA2_512: u32 = 4;
/// The longest request the agent reads (OpenSSH's own limit is 256 KiB).
const MAX_MESSAGE: usize = 256 * 1024;

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_mpint(out: &mut Vec<u8>, unsigned: &[u8]) {
    let v = der::strip_zeros(unsigned);
    if v == [0] || v.is_empty() {
        put_string(out, &[]);
    } else if v[0] & 0x80 != 0 {
        let mut b = vec![0];
        b.extend_from_slice(v);
        put_string(out, &b);
    } else {
        put_string(out, v);
    }
}

fn get_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(u32::from_be_bytes(input.get(..4)?.try_into().ok()?)).ok()?;
    let end = len.checked_add(4)?;
    let s = input.get(4..end)?;
    *input = input.get(end..)?;
    Some(s)
}

fn unsupported(pk: &PublicKey, why: &str) -> Error {
    Error::unsupported("hsm", format!("SSH with {} key '{}'", pk.spec, pk.key), why)
}

/// The SSH key type name and wire blob of a public key.
///
/// # Errors
/// `Unsupported` for secp256k1 (no SSH key type); `InvalidInput` for a malformed SPKI.
pub fn public_key_blob(pk: &PublicKey) -> Result<(&'static str, Vec<u8>)> {
    let bad =
        || Error::invalid_input("hsm", format!("the public key of '{}' is not a well-formed SPKI", pk.key));
    let spki = der::spki(&pk.spki_der).ok_or_else(bad)?;
    let mut blob = Vec::new();
    let name = match pk.spec {
        KeySpec::Ed25519 => {
            put_string(&mut blob, b"ssh-ed25519");
            put_string(&mut blob, spki.key);
            "ssh-ed25519"
        }
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcP521 => {
            let (name, curve) = match pk.spec {
                KeySpec::EcP256 => ("ecdsa-sha2-nistp256", "nistp256"),
                KeySpec::EcP384 => ("ecdsa-sha2-nistp384", "nistp384"),
                _ => ("ecdsa-sha2-nistp521", "nistp521"),
            };
            put_string(&mut blob, name.as_bytes());
            put_string(&mut blob, curve.as_bytes());
            put_string(&mut blob, spki.key);
            name
        }
        s if s.family() == KeyFamily::Rsa => {
            let (n, e) = der::rsa_public(spki.key).ok_or_else(bad)?;
            put_string(&mut blob, b"ssh-rsa");
            put_mpint(&mut blob, e);
            put_mpint(&mut blob, n);
            "ssh-rsa"
        }
        _ => return Err(unsupported(pk, "SSH has no key type for this curve; use Ed25519 or P-256")),
    };
    Ok((name, blob))
}

/// The public key as one OpenSSH `authorized_keys` / `allowed_signers` line:
/// `type base64 comment` (the comment is `name@version` when `comment` is `None`).
///
/// # Errors
/// As [`public_key_blob`].
pub fn openssh_public_key(pk: &PublicKey, comment: Option<&str>) -> Result<String> {
    let (name, blob) = public_key_blob(pk)?;
    let comment = comment.map_or_else(|| format!("{}@{}", pk.key, pk.version), str::to_owned);
    Ok(format!("{name} {} {comment}", base64::engine::general_purpose::STANDARD.encode(blob)))
}

/// One key the agent serves.
#[derive(Debug, Clone)]
struct Identity {
    signer: KeySigner,
    blob: Vec<u8>,
    comment: String,
}

/// An SSH agent serving provider keys over a Unix socket.
///
/// ```no_run
/// # async fn demo(provider: std::sync::Arc<dyn hsm_core::Provider>) -> hsm_core::Result<()> {
/// let agent = hsm_signers::ssh::SshAgent::all(provider).await?;
/// let listener = tokio::net::UnixListener::bind("/tmp/hsm-agent.sock").map_err(|e| hsm_core::Error::config("hsm", e.to_string()))?;
/// agent.serve(listener).await; // SSH_AUTH_SOCK=/tmp/hsm-agent.sock ssh-keygen -Y sign ...
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SshAgent {
    identities: Arc<Vec<Identity>>,
}

impl SshAgent {
    /// An agent serving the named keys.
    ///
    /// # Errors
    /// `NotFound`, `KeyUnusable` (not a signing key, disabled), `Unsupported` for a key with
    /// no SSH form — each naming the key.
    pub async fn new(provider: Arc<dyn Provider>, keys: &[String]) -> Result<Self> {
        let mut identities = Vec::with_capacity(keys.len());
        for k in keys {
            identities.push(identity(KeySigner::new(provider.clone(), k.as_str()).await?)?);
        }
        Ok(SshAgent { identities: Arc::new(identities) })
    }

    /// An agent serving every enabled signing key that has an SSH form; the others are
    /// skipped (and reported in the returned list of `(key, reason)`).
    ///
    /// # Errors
    /// Listing errors from the provider.
    pub async fn all_with_skipped(provider: Arc<dyn Provider>) -> Result<(Self, Vec<(String, String)>)> {
        let mut identities = Vec::new();
        let mut skipped = Vec::new();
        let keys = provider.list_all(ListKeys::new()).await?;
        for info in keys.into_iter().filter(|k| k.usage == KeyUsage::SignVerify) {
            match KeySigner::new(provider.clone(), info.name.as_str()).await.and_then(identity) {
                Ok(id) => identities.push(id),
                Err(e) => skipped.push((info.name.clone(), e.to_string())),
            }
        }
        Ok((SshAgent { identities: Arc::new(identities) }, skipped))
    }

    /// [`SshAgent::all_with_skipped`] without the report.
    ///
    /// # Errors
    /// Listing errors from the provider.
    pub async fn all(provider: Arc<dyn Provider>) -> Result<Self> {
        Ok(Self::all_with_skipped(provider).await?.0)
    }

    /// The served keys as OpenSSH public key lines.
    pub fn public_keys(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|i| {
                let name = get_string(&mut &i.blob[..]).map(String::from_utf8_lossy).unwrap_or_default();
                format!("{name} {} {}", base64::engine::general_purpose::STANDARD.encode(&i.blob), i.comment)
            })
            .collect()
    }

    /// Binds `path` (which must not exist), makes it private to this user (mode 0600: whoever
    /// can open the socket can sign with every served key), and serves until the task is
    /// dropped. Put the socket in a directory only this user can enter, as ssh-agent does.
    ///
    /// # Errors
    /// `Config` when the socket cannot be bound or its mode set.
    pub async fn bind_and_serve(self, path: &Path) -> Result<()> {
        let listener = bind_private(path)?;
        self.serve(listener).await;
        Ok(())
    }

    /// Serves connections from `listener`, each on its own task, until the task is dropped.
    pub async fn serve(self, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let agent = self.clone();
                    tokio::spawn(async move { agent.connection(stream).await });
                }
                Err(e) => {
                    tracing::warn!(target: "hsm::signers", error = %e, "ssh-agent accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(&self, mut stream: UnixStream) {
        loop {
            let mut len = [0u8; 4];
            if stream.read_exact(&mut len).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 || len > MAX_MESSAGE {
                return;
            }
            let mut msg = vec![0u8; len];
            if stream.read_exact(&mut msg).await.is_err() {
                return;
            }
            let reply = self.handle(&msg).await.unwrap_or_else(|| vec![SSH_AGENT_FAILURE]);
            let mut out = (reply.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    /// The reply to one request, or `None` for `SSH_AGENT_FAILURE`.
    async fn handle(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let (&kind, mut body) = msg.split_first()?;
        match kind {
            SSH_AGENTC_REQUEST_IDENTITIES => {
                let mut out = vec![SSH_AGENT_IDENTITIES_ANSWER];
                out.extend_from_slice(&(self.identities.len() as u32).to_be_bytes());
                for id in self.identities.iter() {
                    put_string(&mut out, &id.blob);
                    put_string(&mut out, id.comment.as_bytes());
                }
                Some(out)
            }
            SSH_AGENTC_SIGN_REQUEST => {
                let blob = get_string(&mut body)?;
                let data = get_string(&mut body)?;
                let flags = body.get(..4).map_or(0, |f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]));
                let id = self.identities.iter().find(|i| i.blob == blob)?;
                match sign(&id.signer, data, flags).await {
                    Ok(sig) => {
                        let mut out = vec![SSH_AGENT_SIGN_RESPONSE];
                        put_string(&mut out, &sig);
                        Some(out)
                    }
                    Err(e) => {
                        tracing::warn!(target: "hsm::signers", key = %id.signer.key_ref(), error = %e, "ssh-agent sign failed");
                        None
                    }
                }
            }
            _ => None,
        }
    }
}

/// A Unix listener on `path` with mode 0600 (see [`SshAgent::bind_and_serve`]).
///
/// # Errors
/// `Config` when the socket cannot be bound or its mode set.
pub fn bind_private(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::config("hsm", format!("cannot listen on {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        let _ = std::fs::remove_file(path);
        Error::config("hsm", format!("cannot make {} private (mode 0600): {e}", path.display()))
    })?;
    Ok(listener)
}

fn identity(signer: KeySigner) -> Result<Identity> {
    let pk = signer.public_key().clone();
    let pk = &pk;
    let (_, blob) = public_key_blob(pk)?;
    let signer = if pk.spec.family() == KeyFamily::Rsa {
        // SSH signs RSA with PKCS#1 v1.5 only: the key must be able to.
        signer.to_algorithm(SignatureAlgorithm::RsaPkcs1v15Sha512).or_else(|_| signer.to_algorithm(SignatureAlgorithm::RsaPkcs1v15Sha256)).map_err(|_| {
            unsupported(pk, "SSH signs with RSA PKCS#1 v1.5 (rsa-sha2-256/512) and the provider cannot sign this key that way")
        })?
    } else {
        signer
    };
    let comment = format!("{}@{}", pk.key, pk.version);
    Ok(Identity { signer, blob, comment })
}

/// An SSH signature (`string algorithm, string blob`) over `data` with `signer`.
///
/// # Errors
/// `Unsupported` for the SHA-1 `ssh-rsa` signature (flags without rsa-sha2-256/512) or an
/// RSA hash the provider cannot make; the provider's sign errors.
pub async fn sign(signer: &KeySigner, data: &[u8], flags: u32) -> Result<Vec<u8>> {
    let pk = signer.public_key();
    let mut out = Vec::new();
    match pk.spec {
        KeySpec::Ed25519 => {
            let sig = signer.sign(data).await?;
            put_string(&mut out, b"ssh-ed25519");
            put_string(&mut out, &sig);
        }
        s if s.family() == KeyFamily::Rsa => {
            let (name, alg) = if flags & SSH_AGENT_RSA_SHA2_512 != 0 {
                ("rsa-sha2-512", SignatureAlgorithm::RsaPkcs1v15Sha512)
            } else if flags & SSH_AGENT_RSA_SHA2_256 != 0 {
                ("rsa-sha2-256", SignatureAlgorithm::RsaPkcs1v15Sha256)
            } else {
                return Err(unsupported(
                    pk,
                    "the client asked for a SHA-1 ssh-rsa signature; use rsa-sha2-256 or rsa-sha2-512",
                ));
            };
            let sig = signer.to_algorithm(alg)?.sign(data).await?;
            put_string(&mut out, name.as_bytes());
            put_string(&mut out, &sig);
        }
        s => {
            let size =
                ec_field_len(s).ok_or_else(|| unsupported(pk, "SSH has no key type for this curve"))?;
            let (name, _) = public_key_blob(pk)?;
            let fixed = signer.sign_fixed(data).await?;
            let mut inner = Vec::new();
            put_mpint(&mut inner, &fixed[..size]);
            put_mpint(&mut inner, &fixed[size..]);
            put_string(&mut out, name.as_bytes());
            put_string(&mut out, &inner);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpints_follow_rfc4251() {
        let mut out = Vec::new();
        put_mpint(&mut out, &[0, 0]);
        put_mpint(&mut out, &[0x80]);
        put_mpint(&mut out, &[0, 0x12, 0x34]);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 2, 0, 0x80, 0, 0, 0, 2, 0x12, 0x34]);
    }

    #[test]
    fn short_strings_are_none() {
        assert!(get_string(&mut &[0u8, 0, 0, 9, 1][..]).is_none());
        assert!(get_string(&mut &[0u8, 0][..]).is_none());
    }
}
