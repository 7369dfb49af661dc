//! Envelope recipients from configuration: `[[envelope.recipients]]` in TOML and
//! `PROVIDER_URL#KEY` on the command line, opened into an [`envelope::Keyring`](crate::envelope::Keyring).

use std::sync::Arc;
use std::time::Duration;

use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, EncryptionAlgorithm, Error, KeyInfo, KeyPage, KeyRef,
    KeyState, ListKeys, MacAlgorithm, MacTag, Provider, PublicKey, Result, SignInput, Signature,
    SignatureAlgorithm, WrapAlgorithm, WrappedKey, Zeroizing, async_trait,
};
use hsm_envelope::Keyring;
use serde::Deserialize;

use crate::Config;

const HSM: &str = "hsm";

/// One envelope recipient from configuration: a provider URL and a key name. `Debug` shows
/// the URL's scheme only (a URL may carry a PIN or credentials).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecipientConfig {
    /// The provider URL (any form [`Config::from_url`] takes).
    pub provider: String,
    /// The key name in that provider.
    pub key: String,
    /// The recipient group of a threshold keyring (1-based); `None`: a group of its own.
    pub group: Option<u8>,
}

impl std::fmt::Debug for RecipientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.provider.split_once(':').map_or("?", |(s, _)| s);
        f.debug_struct("RecipientConfig")
            .field("provider", &format_args!("{scheme}:…"))
            .field("key", &self.key)
            .field("group", &self.group)
            .finish()
    }
}

impl RecipientConfig {
    /// A recipient: `key` in the provider at `url`.
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        RecipientConfig { provider: url.into(), key: key.into(), group: None }
    }

    /// Parses `PROVIDER_URL#KEY` (split at the last `#`), as `hsm --recipient` takes it.
    ///
    /// # Errors
    /// [`Error::Config`] when there is no `#`, or the URL or the key is empty, or the URL
    /// is not one [`Config::from_url`] takes.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((url, key)) = text.rsplit_once('#') else {
            return Err(Error::config(
                HSM,
                format!(
                    "recipient '{text}' has no key; write PROVIDER_URL#KEY, e.g. aws-kms://?region=eu-west-1#backups"
                ),
            ));
        };
        if url.trim().is_empty() || key.trim().is_empty() {
            return Err(Error::config(
                HSM,
                format!("recipient '{text}' needs both a provider URL and a key name: PROVIDER_URL#KEY"),
            ));
        }
        Config::from_url(url)?;
        Ok(RecipientConfig::new(url.trim(), key.trim()))
    }
}

/// The `[envelope]` table of a TOML configuration: more recipients for envelopes and the
/// keyring's policy.
///
/// ```toml
/// [envelope]
/// min_recipients = 2     # seal when 2 recipients have protected the data key (default: all)
/// threshold = 2          # optional: split the data key 2-of-n across recipient groups
/// timeout = "10s"        # each recipient's deadline
///
/// [[envelope.recipients]]
/// provider = "aws-kms://?region=eu-west-1"
/// key = "backups"
///
/// [[envelope.recipients]]
/// provider = "gcp-kms://projects/p/locations/europe-west1/keyRings/r"
/// key = "backups"
/// group = 2              # threshold keyrings: the recipient group, 1-based
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvelopeConfig {
    /// Recipients besides the configured provider's key.
    pub recipients: Vec<RecipientConfig>,
    /// Seal once this many recipients have protected the data key (default: all).
    pub min_recipients: Option<usize>,
    /// Split the data key k-of-n across recipient groups.
    pub threshold: Option<u8>,
    /// Each recipient's deadline (default 30 s).
    pub timeout: Option<Duration>,
}

/// `[envelope]` as written in TOML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvelopeSection {
    #[serde(default)]
    recipients: Vec<RecipientSection>,
    min_recipients: Option<usize>,
    threshold: Option<u8>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientSection {
    provider: Option<String>,
    key: Option<String>,
    group: Option<u8>,
}

impl EnvelopeConfig {
    pub(crate) fn from_section(origin: &str, section: EnvelopeSection) -> Result<Self> {
        let mut recipients = Vec::new();
        for (i, r) in section.recipients.into_iter().enumerate() {
            let at = format!("{origin}: envelope.recipients[{i}]");
            let provider = r.provider.filter(|p| !p.trim().is_empty()).ok_or_else(|| {
                Error::config(HSM, format!("{at} has no provider; set provider = \"aws-kms://?region=…\""))
            })?;
            let key = r
                .key
                .filter(|k| !k.trim().is_empty())
                .ok_or_else(|| Error::config(HSM, format!("{at} has no key; set key = \"NAME\"")))?;
            Config::from_url(&provider).map_err(|e| Error::config(HSM, format!("{at}: {e}")))?;
            recipients.push(RecipientConfig { provider, key, group: r.group });
        }
        let timeout = match section.timeout {
            Some(t) => Some(hsm_core::settings::parse_duration(
                HSM,
                "envelope.timeout",
                &t,
                Duration::from_secs(3600),
            )?),
            None => None,
        };
        Ok(EnvelopeConfig {
            recipients,
            min_recipients: section.min_recipients,
            threshold: section.threshold,
            timeout,
        })
    }

    /// Opens every recipient's provider and builds the keyring: `first` (the configured
    /// provider's key, when given) and then the recipients in order, with the policy. A
    /// recipient whose provider cannot be opened (its configuration is wrong, or a service it
    /// needs to start is down) stays in the keyring as one that fails every call with that
    /// error, so the keyring's policy decides, as for a recipient that fails later.
    ///
    /// # Errors
    /// None for unreachable providers (see above); the keyring's own checks run when it is
    /// used.
    pub async fn keyring(&self, first: Option<(Arc<dyn Provider>, KeyRef)>) -> Result<Keyring> {
        let mut ring = Keyring::new();
        let mut group = 0u8;
        if let Some((p, key)) = first {
            group += 1;
            ring = ring.group_recipient(group, p, key);
        }
        for r in &self.recipients {
            let provider: Arc<dyn Provider> = match Config::from_url(&r.provider) {
                Ok(config) => match config.open().await {
                    Ok(p) => p,
                    Err(e) => Arc::new(Unreachable { name: config.provider_name(), message: e.to_string() }),
                },
                Err(e) => return Err(e),
            };
            let g = match r.group {
                Some(g) => g,
                None => {
                    group = group.saturating_add(1);
                    group
                }
            };
            group = group.max(g);
            ring = ring.group_recipient(g, provider, KeyRef::new(&r.key));
        }
        if let Some(k) = self.threshold {
            ring = ring.threshold(k);
        }
        if let Some(n) = self.min_recipients {
            ring = ring.min_recipients(n);
        }
        if let Some(t) = self.timeout {
            ring = ring.timeout(t);
        }
        Ok(ring)
    }
}

/// A recipient whose provider could not be opened: every call fails with that error.
#[derive(Debug)]
struct Unreachable {
    name: &'static str,
    message: String,
}

impl Unreachable {
    fn fail<T>(&self) -> Result<T> {
        Err(Error::Unavailable {
            provider: self.name,
            message: format!("the provider could not be opened: {}", self.message),
            retry_after: None,
        })
    }
}

static NO_CAPABILITIES: std::sync::LazyLock<Capabilities> = std::sync::LazyLock::new(Capabilities::default);

#[async_trait]
impl Provider for Unreachable {
    fn name(&self) -> &'static str {
        self.name
    }
    fn capabilities(&self) -> &Capabilities {
        &NO_CAPABILITIES
    }
    async fn create_key(&self, _: CreateKey) -> Result<KeyInfo> {
        self.fail()
    }
    async fn get_key(&self, _: &KeyRef) -> Result<KeyInfo> {
        self.fail()
    }
    async fn list_keys(&self, _: ListKeys) -> Result<KeyPage> {
        self.fail()
    }
    async fn rotate_key(&self, _: &KeyRef) -> Result<KeyInfo> {
        self.fail()
    }
    async fn set_key_state(&self, _: &KeyRef, _: KeyState) -> Result<KeyInfo> {
        self.fail()
    }
    async fn schedule_deletion(&self, _: &KeyRef, _: Option<Duration>) -> Result<Deletion> {
        self.fail()
    }
    async fn cancel_deletion(&self, _: &KeyRef) -> Result<KeyInfo> {
        self.fail()
    }
    async fn public_key(&self, _: &KeyRef) -> Result<PublicKey> {
        self.fail()
    }
    async fn encrypt(
        &self,
        _: &KeyRef,
        _: EncryptionAlgorithm,
        _: &[u8],
        _: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        self.fail()
    }
    async fn decrypt(&self, _: &KeyRef, _: &Ciphertext, _: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>> {
        self.fail()
    }
    async fn sign(&self, _: &KeyRef, _: SignatureAlgorithm, _: SignInput<'_>) -> Result<Signature> {
        self.fail()
    }
    async fn verify(&self, _: &KeyRef, _: SignatureAlgorithm, _: SignInput<'_>, _: &[u8]) -> Result<bool> {
        self.fail()
    }
    async fn wrap_key(&self, _: &KeyRef, _: WrapAlgorithm, _: &[u8]) -> Result<WrappedKey> {
        self.fail()
    }
    async fn unwrap_key(&self, _: &KeyRef, _: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        self.fail()
    }
    async fn mac(&self, _: &KeyRef, _: MacAlgorithm, _: &[u8]) -> Result<MacTag> {
        self.fail()
    }
    async fn verify_mac(&self, _: &KeyRef, _: MacAlgorithm, _: &[u8], _: &[u8]) -> Result<bool> {
        self.fail()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_url() {
        let r = RecipientConfig::new("pkcs11:token=t?pin-value=1234", "k");
        let shown = format!("{r:?}");
        assert!(shown.contains("pkcs11:") && !shown.contains("1234"), "{shown}");
    }

    #[test]
    fn recipients_parse_at_the_last_hash() {
        let r = RecipientConfig::parse("memory:#backups").unwrap();
        assert_eq!((r.provider.as_str(), r.key.as_str()), ("memory:", "backups"));
        for bad in ["memory:", "#k", "memory:#", "nope://x#k"] {
            assert!(matches!(RecipientConfig::parse(bad), Err(Error::Config { .. })), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_unopenable_provider_is_a_recipient_that_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let cfg = EnvelopeConfig {
            recipients: vec![RecipientConfig::new(format!("local://{}/ks", file.display()), "k")],
            ..EnvelopeConfig::default()
        };
        let ring = cfg.keyring(None).await.unwrap();
        let member = &ring.members()[0];
        let e = member.provider().get_key(member.key()).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert!(e.to_string().contains("could not be opened"), "{e}");
    }
}
