//! Changing an envelope's recipients by rewriting its header alone: the body's bytes stay
//! as they are, because the segments authenticate the header without its recipients.

use std::path::Path;
use std::sync::Arc;

use hsm_core::{Error, KeyRef, Provider, Result};
use zeroize::Zeroizing;

use crate::header::{self, Header, Protection, Recipient, Share, VERSION_2};
use crate::keyring::{Keyring, Member};
use crate::seal::protect;
use crate::shamir;
use crate::{Opener, PROVIDER, io_error};

/// A change to an envelope's recipients: add, remove, re-protect under the current key
/// versions. Opening the data key needs one working recipient (`k` groups for a threshold
/// envelope); nothing else is read or written but the header.
///
/// ```
/// # #[tokio::main] async fn main() -> hsm_core::Result<()> {
/// use std::sync::Arc;
/// use hsm_core::{CreateKey, KeySpec, Provider};
/// use hsm_envelope::{Keyring, Opener, Rewrap, Sealer};
/// let (old, new): (Arc<dyn Provider>, Arc<dyn Provider>) =
///     (Arc::new(hsm_local::LocalProvider::in_memory()), Arc::new(hsm_local::LocalProvider::in_memory()));
/// old.create_key(CreateKey::new("k", KeySpec::Aes256)).await?;
/// new.create_key(CreateKey::new("k2", KeySpec::Aes256)).await?;
/// let sealed = Sealer::new().seal(&*old, &"k".into(), b"data").await?;
///
/// // Move the envelope from `old` to `new` without touching the data.
/// let header = hsm_envelope::inspect_bytes(&sealed)?;
/// let change = Rewrap::new().add(new.clone(), "k2").remove(None, "k");
/// let (head, report) = change.header(&Opener::new(), &Keyring::new().recipient(old, "k"), &header).await?;
/// assert_eq!(report.added.len(), 1);
/// let moved = [&head[..], &sealed[header.len..]].concat();
/// assert_eq!(&Opener::new().open(&*new, &moved).await?[..], b"data");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Rewrap {
    add: Vec<Member>,
    remove: Vec<(Option<String>, String)>,
    to_current_versions: bool,
}

/// What a rewrap changed.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RewrapReport {
    /// Stanzas added for new recipients.
    pub added: Vec<Recipient>,
    /// Stanzas removed.
    pub removed: Vec<Recipient>,
    /// Stanzas re-protected under their key's current version (the new stanzas).
    pub rewrapped: Vec<Recipient>,
    /// Stanzas kept as they were because no keyring member reaches their provider (with
    /// [`to_current_versions`](Rewrap::to_current_versions)).
    pub not_rewrapped: Vec<Recipient>,
    /// Bytes of the old and the new header.
    pub header_len: (usize, usize),
}

impl Rewrap {
    /// No change yet.
    pub fn new() -> Self {
        Rewrap::default()
    }

    /// Adds a recipient: `key` (its current version) in `provider`. For a threshold envelope
    /// this starts a new recipient group; use [`add_to_group`](Rewrap::add_to_group) to join one.
    #[must_use]
    pub fn add(self, provider: Arc<dyn Provider>, key: impl Into<KeyRef>) -> Self {
        self.add_to_group(0, provider, key)
    }

    /// Adds a recipient to recipient group `group` (1-based) of a threshold envelope: it
    /// protects that group's share.
    #[must_use]
    pub fn add_to_group(mut self, group: u8, provider: Arc<dyn Provider>, key: impl Into<KeyRef>) -> Self {
        let ring = Keyring::new().group_recipient(group, provider, key);
        self.add.extend(ring.members().iter().cloned());
        self
    }

    /// Removes every stanza of key `key_name` (of provider kind `provider`, e.g. `aws-kms`,
    /// when given).
    #[must_use]
    pub fn remove(mut self, provider: Option<&str>, key_name: &str) -> Self {
        self.remove.push((provider.map(str::to_owned), key_name.to_owned()));
        self
    }

    /// Re-protects every remaining stanza whose provider and key a member of the keyring (or
    /// an added recipient) reaches under that key's current version, so old key versions can
    /// be disabled after a rotation.
    #[must_use]
    pub fn to_current_versions(mut self, yes: bool) -> Self {
        self.to_current_versions = yes;
        self
    }

    /// The new header for `header` (read with [`inspect`](crate::inspect)): the data key is
    /// opened through `keyring` with `opener`'s expected context, its commitment checked,
    /// and the recipients changed. The body that followed `header` follows the new header
    /// unchanged.
    ///
    /// # Errors
    /// `InvalidInput` for a format-1 envelope, stanzas written by a newer hsm, a removal that
    /// matches no stanza or leaves none (or fewer groups than the threshold), a group out of
    /// range, more recipients than `opener` allows; the keyring's errors when the data key
    /// cannot be opened; the providers' errors for the new stanzas.
    pub async fn header(
        &self,
        opener: &Opener,
        keyring: &Keyring,
        header: &Header,
    ) -> Result<(Vec<u8>, RewrapReport)> {
        let bad = |m: String| Err(Error::invalid_input(PROVIDER, m));
        if header.version != VERSION_2 {
            return bad(
                "only format-2 envelopes can be rewrapped; decrypt and encrypt this one again".to_owned()
            );
        }
        if header.recipients.iter().any(|r| matches!(r.protection, Protection::Unknown { .. })) {
            return bad(
                "the envelope has recipients written by a newer hsm; rewrap it with that version".to_owned()
            );
        }
        let (data_key, pieces) = opener.recover(keyring, header).await?;
        let shared = header.recipients.iter().find_map(|r| r.share);
        let mut report = RewrapReport::default();

        // Removals.
        let mut kept = Vec::new();
        let mut matched = vec![false; self.remove.len()];
        for r in &header.recipients {
            let hit = self.remove.iter().position(|(p, k)| {
                p.as_deref().is_none_or(|p| r.provider.as_deref() == Some(p))
                    && r.key().is_some_and(|rk| rk.name() == k)
            });
            match hit {
                Some(i) => {
                    matched[i] = true;
                    report.removed.push(r.clone());
                }
                None => kept.push(r.clone()),
            }
        }
        if let Some(i) = matched.iter().position(|m| !m) {
            let (p, k) = &self.remove[i];
            let who = p.as_ref().map_or_else(|| format!("'{k}'"), |p| format!("{p} '{k}'"));
            return bad(format!("the envelope has no recipient {who} to remove; see `hsm envelope inspect`"));
        }

        // The secret each stanza protects: the data key, or share `index`.
        let secret_for = |share: Option<Share>| -> Result<Zeroizing<Vec<u8>>> {
            match share {
                None => Ok(Zeroizing::new(data_key.to_vec())),
                Some(s) => Ok(Zeroizing::new(shamir::evaluate(&pieces, s.index)?.to_vec())),
            }
        };
        let context_aad = header.context.encode()?;

        // Re-protection under current versions.
        if self.to_current_versions {
            let members: Vec<&Member> = keyring.members().iter().chain(&self.add).collect();
            for r in &mut kept {
                let Some(m) = members.iter().find(|m| m.matches(r)) else {
                    report.not_rewrapped.push(r.clone());
                    continue;
                };
                let current = KeyRef::new(m.key().name());
                let secret = secret_for(r.share)?;
                let mut fresh =
                    protect(&**m.provider(), &current, &secret, &header.context, &context_aad).await?;
                fresh.share = r.share;
                report.rewrapped.push(fresh.clone());
                *r = fresh;
            }
        }

        // Additions.
        let mut count = shared.map_or(0, |s| s.count);
        for m in &self.add {
            let share = match shared {
                None if m.group() == 0 => None,
                None => {
                    return bad(
                        "recipient groups apply to threshold envelopes only; use Rewrap::add".to_owned()
                    );
                }
                Some(s) => {
                    let index = if m.group() == 0 { count.checked_add(1) } else { Some(m.group()) };
                    let Some(index) = index else {
                        return bad("a threshold envelope has at most 255 recipient groups".to_owned());
                    };
                    count = count.max(index);
                    Some(Share { index, threshold: s.threshold, count })
                }
            };
            if kept.iter().any(|r| m.matches(r) && r.share.map(|s| s.index) == share.map(|s| s.index)) {
                continue; // already a recipient
            }
            let secret = secret_for(share)?;
            let current = KeyRef::new(m.key().name());
            let mut fresh =
                protect(&**m.provider(), &current, &secret, &header.context, &context_aad).await?;
            fresh.share = share;
            report.added.push(fresh.clone());
            kept.push(fresh);
        }
        // New groups raise every stanza's share count.
        for r in &mut kept {
            if let Some(s) = r.share.as_mut() {
                s.count = count;
            }
        }

        if kept.is_empty() {
            return bad("the change would leave the envelope without recipients; add one first".to_owned());
        }
        if let Some(s) = shared {
            let mut groups: Vec<u8> = kept.iter().filter_map(|r| r.share.map(|s| s.index)).collect();
            groups.sort_unstable();
            groups.dedup();
            if groups.len() < usize::from(s.threshold) {
                return bad(format!(
                    "the change would leave {} recipient groups, fewer than the {} needed to open the envelope",
                    groups.len(),
                    s.threshold
                ));
            }
        }
        if kept.len() > opener.recipients_cap() {
            return bad(format!(
                "the change would leave {} recipients, more than the {} an opener allows by default",
                kept.len(),
                opener.recipients_cap()
            ));
        }
        let mut head = header.authenticated.clone();
        head.extend_from_slice(&header::encode_recipients(&kept));
        report.header_len = (header.len, head.len());
        Ok((head, report))
    }

    /// Rewrites the envelope file at `path` with the new header: a new file with the new
    /// header and the body's bytes copied unchanged is written next to it, synced and renamed
    /// over it (same permissions), so a failure leaves the original as it was.
    ///
    /// # Errors
    /// As [`header`](Rewrap::header); `Provider { code: "io" }` for I/O failures.
    pub async fn file(&self, opener: &Opener, keyring: &Keyring, path: &Path) -> Result<RewrapReport> {
        let mut input = tokio::fs::File::open(path).await.map_err(|e| io_error("read", e))?;
        let header = header::read(&mut input, opener.recipients_cap()).await?;
        let (head, report) = self.header(opener, keyring, &header).await?;
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || replace_header(&path, header.len as u64, &head))
            .await
            .map_err(|e| io_error("write", std::io::Error::other(e)))??;
        Ok(report)
    }
}

/// Writes `head` followed by the bytes of `path` after `old_len` to a temporary file beside
/// it and renames that over `path`.
fn replace_header(path: &Path, old_len: u64, head: &[u8]) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tag = [0u8; 8];
    aws_lc_rs::rand::fill(&mut tag).map_err(|_| io_error("write", std::io::Error::other("no randomness")))?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let temp = dir.join(format!(".{name}.rewrap-{tag}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut src = std::fs::File::open(path)?;
        let perms = src.metadata()?.permissions();
        let mut dst = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        dst.set_permissions(perms)?;
        dst.write_all(head)?;
        src.seek(SeekFrom::Start(old_len))?;
        std::io::copy(&mut src, &mut dst)?;
        dst.sync_all()?;
        std::fs::rename(&temp, path)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io_error("write", e)
    })
}

/// The futures are `Send`, so a multi-threaded runtime can run them.
#[allow(dead_code)]
fn assert_send(r: &Rewrap, o: &Opener, k: &Keyring, h: &Header, p: &Path) {
    fn send<T: Send>(_: T) {}
    send(r.header(o, k, h));
    send(r.file(o, k, p));
}
