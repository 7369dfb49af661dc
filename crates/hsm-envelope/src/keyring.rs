//! Keyrings: one envelope's data key protected under several recipients (any provider and
//! key, in any mix), optionally split k-of-n with Shamir's scheme across recipient groups.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hsm_core::{Error, KeyRef, Provider, ProviderExt, Result};
use zeroize::Zeroizing;

use crate::PROVIDER;
use crate::cache::DataKeyCache;
use crate::context::Context;
use crate::header::{Header, Protection, Recipient, Share, VERSION_1};
use crate::schedule::DATA_KEY_LEN;
use crate::seal::{protect, provider_aad};
use crate::shamir::{self, Piece};

/// Default deadline of each recipient's provider call.
pub const DEFAULT_RECIPIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default delay before a hedged decrypt asks the next recipient while the first is slow.
pub const DEFAULT_HEDGE_DELAY: Duration = Duration::from_millis(250);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// One keyring recipient: a key held by a provider.
#[derive(Clone)]
pub struct Member {
    provider: Arc<dyn Provider>,
    key: KeyRef,
    group: u8,
}

impl Member {
    /// The provider that holds the key.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The key (a version, when one is pinned).
    pub fn key(&self) -> &KeyRef {
        &self.key
    }

    /// The recipient group (1-based) of a threshold keyring.
    pub fn group(&self) -> u8 {
        self.group
    }

    /// Whether `stanza` was made by this member's provider kind and key name.
    pub(crate) fn matches(&self, stanza: &Recipient) -> bool {
        let same_provider = stanza.provider.as_deref().is_none_or(|p| p == self.provider.name());
        same_provider && stanza.key().is_some_and(|k| k.name() == self.key.name())
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.provider.name(), self.key)
    }
}

/// A recipient that could not protect or open the data key, with its typed error.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecipientFailure {
    /// The provider kind (`aws-kms`, `local`, …).
    pub provider: String,
    /// The key.
    pub key: KeyRef,
    /// What went wrong.
    pub error: Error,
}

impl fmt::Display for RecipientFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}': {}", self.provider, self.key, self.error)
    }
}

/// Every recipient's failure, the `source` of a keyring error (downcast the
/// [`Error::Provider`] source to this type to handle each one).
#[derive(Debug)]
pub struct RecipientErrors(pub Vec<RecipientFailure>);

impl fmt::Display for RecipientErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RecipientErrors {}

/// The keyring error: `code` names the case (`recipients`: too few recipients;
/// `threshold`: too few shares), the message lists each recipient's error.
fn keyring_error(code: &str, summary: String, failures: Vec<RecipientFailure>) -> Error {
    let list = RecipientErrors(failures);
    let message = if list.0.is_empty() { summary } else { format!("{summary}: {list}") };
    Error::Provider { provider: PROVIDER, code: code.to_owned(), message, source: Some(Box::new(list)) }
}

/// Several recipients for one envelope.
///
/// - **Any mix of providers.** Each recipient is a provider (`local`, `aws-kms`,
///   `azure-keyvault`, `gcp-kms`, `pkcs11`, or your own `Arc<dyn Provider>`) and a key.
/// - **Sealing** protects the data key under every recipient concurrently, each with its own
///   deadline ([`timeout`](Keyring::timeout)). All must succeed unless
///   [`min_recipients`](Keyring::min_recipients) allows fewer; the recipients that failed
///   are reported in [`SealReport::failed`](crate::SealReport::failed).
/// - **Opening** is hedged: the first matching recipient in keyring order is asked, the next
///   one after [`hedge_delay`](Keyring::hedge_delay) or as soon as the first fails; the
///   first success wins and the calls still running are cancelled. When every recipient
///   fails, the error lists each with its typed error.
/// - **Threshold** ([`threshold`](Keyring::threshold)): the data key is split with Shamir's
///   scheme into one share per recipient group; any `k` groups open it.
///
/// ```
/// # #[tokio::main] async fn main() -> hsm_core::Result<()> {
/// use std::sync::Arc;
/// use hsm_core::{CreateKey, KeySpec, KeyUsage, Provider};
/// use hsm_envelope::{Keyring, Opener, Sealer};
///
/// let (a, b): (Arc<dyn Provider>, Arc<dyn Provider>) =
///     (Arc::new(hsm_local::LocalProvider::in_memory()), Arc::new(hsm_local::LocalProvider::in_memory()));
/// for p in [&a, &b] {
///     p.create_key(CreateKey::new("backups", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await?;
/// }
/// let ring = Keyring::new().recipient(a.clone(), "backups").recipient(b.clone(), "backups");
/// let (sealed, report) = Sealer::new().seal_to(&ring, b"data").await?;
/// assert_eq!(report.recipients.len(), 2);
///
/// // Either provider alone opens it.
/// assert_eq!(&Opener::new().open(&*b, &sealed).await?[..], b"data");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Keyring {
    id: u64,
    members: Vec<Member>,
    threshold: Option<u8>,
    min_recipients: Option<usize>,
    timeout: Duration,
    hedge_delay: Duration,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("members", &self.members)
            .field("threshold", &self.threshold)
            .field("min_recipients", &self.min_recipients)
            .field("timeout", &self.timeout)
            .field("hedge_delay", &self.hedge_delay)
            .finish()
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring {
            id: next_id(),
            members: Vec::new(),
            threshold: None,
            min_recipients: None,
            timeout: DEFAULT_RECIPIENT_TIMEOUT,
            hedge_delay: DEFAULT_HEDGE_DELAY,
        }
    }
}

impl Keyring {
    /// An empty keyring: all recipients must succeed, 30 s per recipient, 250 ms hedge.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Every change makes a new keyring as far as a [`DataKeyCache`] is concerned.
    fn changed(mut self) -> Self {
        self.id = next_id();
        self
    }

    /// Adds a recipient: `key` in `provider`, in a recipient group of its own (for a
    /// threshold keyring).
    #[must_use]
    pub fn recipient(self, provider: Arc<dyn Provider>, key: impl Into<KeyRef>) -> Self {
        let group = self.members.iter().map(|m| m.group).max().unwrap_or(0).saturating_add(1);
        self.group_recipient(group, provider, key)
    }

    /// Adds a recipient to recipient group `group` (1-based) of a threshold keyring: every
    /// recipient of a group protects the same share.
    #[must_use]
    pub fn group_recipient(mut self, group: u8, provider: Arc<dyn Provider>, key: impl Into<KeyRef>) -> Self {
        self.members.push(Member { provider, key: key.into(), group });
        self.changed()
    }

    /// Splits the data key with Shamir's scheme into one share per recipient group; any
    /// `k` groups open the envelope (SOPS key groups). `k` is 2 ..= the number of groups.
    #[must_use]
    pub fn threshold(mut self, k: u8) -> Self {
        self.threshold = Some(k);
        self.changed()
    }

    /// Seal once `n` recipients have protected the data key (default: all of them). The
    /// recipients still working then get as long again as those `n` took (at least
    /// 100 ms), so a slow but healthy one is kept while a hung one does not hold the seal
    /// for its whole deadline; the others are reported as failed.
    #[must_use]
    pub fn min_recipients(mut self, n: usize) -> Self {
        self.min_recipients = Some(n);
        self.changed()
    }

    /// The deadline of each recipient's provider call (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a decrypt waits for one recipient before also asking the next (default
    /// 250 ms); a failure starts the next one at once.
    #[must_use]
    pub fn hedge_delay(mut self, delay: Duration) -> Self {
        self.hedge_delay = delay;
        self
    }

    /// The recipients, in keyring order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The number of distinct recipient groups.
    fn groups(&self) -> usize {
        let mut groups: Vec<u8> = self.members.iter().map(|m| m.group).collect();
        groups.sort_unstable();
        groups.dedup();
        groups.len()
    }

    /// Checks the keyring before any provider call.
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_input(PROVIDER, m));
        let n = self.members.len();
        if n == 0 {
            return bad("the keyring has no recipients; add one with Keyring::recipient".to_owned());
        }
        if n > usize::from(u16::MAX) {
            return bad(format!("the keyring has {n} recipients, more than an envelope holds (65535)"));
        }
        if let Some(m) = self.min_recipients
            && (m == 0 || m > n)
        {
            return bad(format!("min_recipients is {m}; choose 1 ..= {n}, the number of recipients"));
        }
        if let Some(k) = self.threshold {
            let groups = self.groups();
            if groups > 255 {
                return bad(format!("a threshold keyring has at most 255 groups, this one {groups}"));
            }
            let contiguous = (1..=groups).all(|g| self.members.iter().any(|m| usize::from(m.group) == g));
            if !contiguous {
                return bad("recipient groups must be numbered 1, 2, … without gaps".to_owned());
            }
            if k < 2 || usize::from(k) > groups {
                return bad(format!(
                    "threshold {k} is out of range for {groups} recipient groups; choose 2 ..= {groups}"
                ));
            }
        }
        Ok(())
    }

    /// Checks that there is someone to ask (for opening, where the sealing policy does not
    /// matter).
    pub(crate) fn check_members(&self) -> Result<()> {
        if self.members.is_empty() {
            return Err(Error::invalid_input(
                PROVIDER,
                "the keyring has no recipients; add one with Keyring::recipient",
            ));
        }
        Ok(())
    }

    /// Protects `data_key` under every recipient concurrently (each share under its
    /// group's recipients for a threshold keyring) and applies the policy.
    pub(crate) async fn protect(
        &self,
        data_key: &[u8; DATA_KEY_LEN],
        context: &Context,
        context_aad: &[u8],
    ) -> Result<(Vec<Recipient>, Vec<RecipientFailure>)> {
        let pieces = match self.threshold {
            Some(k) => Some(shamir::split(data_key, k, self.groups() as u8)?),
            None => None,
        };
        let needed = self.min_recipients.unwrap_or(self.members.len());
        let mut running: FuturesUnordered<_> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (secret, share) = match (&pieces, self.threshold) {
                    (Some(p), Some(k)) => {
                        let piece = &p[usize::from(m.group) - 1];
                        let share = Share { index: piece.index, threshold: k, count: p.len() as u8 };
                        (&piece.value[..], Some(share))
                    }
                    _ => (&data_key[..], None),
                };
                async move {
                    let call = protect(&*m.provider, &m.key, secret, context, context_aad);
                    let got = match tokio::time::timeout(self.timeout, call).await {
                        Ok(r) => r,
                        Err(_) => Err(timed_out(m, self.timeout)),
                    };
                    let got = got.map(|mut r| {
                        r.share = share;
                        r
                    });
                    (i, got)
                }
            })
            .collect();
        // Once the policy is met, the recipients still working get as long again as the
        // quorum took (at least 100 ms), then the seal proceeds without them.
        let started = tokio::time::Instant::now();
        let mut results: Vec<Option<Result<Recipient>>> = self.members.iter().map(|_| None).collect();
        let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            let done = tokio::select! {
                done = running.next() => done,
                () = async { if let Some(g) = grace.as_mut() { g.await } }, if grace.is_some() => None,
            };
            let Some((i, r)) = done else { break };
            results[i] = Some(r);
            if grace.is_none() && needed < self.members.len() && self.quorum(&results, needed) {
                let wait = started.elapsed().max(Duration::from_millis(100));
                grace = Some(Box::pin(tokio::time::sleep(wait)));
            }
        }
        drop(running);
        let (mut made, mut failed) = (Vec::new(), Vec::new());
        let mut groups_made = Vec::new();
        for (m, r) in self.members.iter().zip(results) {
            match r {
                Some(Ok(r)) => {
                    groups_made.push(m.group);
                    made.push(r);
                }
                Some(Err(error)) => failed.push(failure(m, error)),
                None => failed.push(failure(
                    m,
                    Error::Timeout {
                        provider: m.provider.name(),
                        operation: format!(
                            "the data key with '{}' (still working when the other recipients were done)",
                            m.key
                        ),
                    },
                )),
            }
        }
        if made.len() < needed {
            if self.members.len() == 1 && failed.len() == 1 {
                return Err(failed.remove(0).error);
            }
            let summary = format!(
                "{} of {} recipients protected the data key, {needed} required",
                made.len(),
                self.members.len()
            );
            return Err(keyring_error("recipients", summary, failed));
        }
        if let Some(k) = self.threshold {
            groups_made.sort_unstable();
            groups_made.dedup();
            if groups_made.len() < usize::from(k) {
                let summary = format!(
                    "shares were protected for {} of {} recipient groups, {k} are needed to open the envelope",
                    groups_made.len(),
                    self.groups()
                );
                return Err(keyring_error("threshold", summary, failed));
            }
        }
        Ok((made, failed))
    }

    /// Whether the seal policy is met by the results so far: `needed` stanzas, and for a
    /// threshold keyring `k` distinct groups.
    fn quorum(&self, results: &[Option<Result<Recipient>>], needed: usize) -> bool {
        let ok: Vec<u8> = self
            .members
            .iter()
            .zip(results)
            .filter(|(_, r)| matches!(r, Some(Ok(_))))
            .map(|(m, _)| m.group)
            .collect();
        let mut groups = ok.clone();
        groups.sort_unstable();
        groups.dedup();
        ok.len() >= needed && self.threshold.is_none_or(|k| groups.len() >= usize::from(k))
    }

    /// Recovers the data key of `header` from the first recipients that answer (hedged),
    /// combining shares for a threshold envelope.
    pub(crate) async fn recover(
        &self,
        header: &Header,
        cache: Option<&DataKeyCache>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let context_aad = header.context.encode()?;
        let cache_key = cache.map(|c| c.decrypt_key(self.id, &context_aad, &header.recipients));
        if let (Some(c), Some(k)) = (cache, &cache_key)
            && let Some(dk) = c.get_decrypted(k)
        {
            return Ok(dk);
        }
        let (dk, _) = self.recover_uncached(header, &context_aad).await?;
        if let (Some(c), Some(k)) = (cache, cache_key) {
            c.put_decrypted(k, &dk);
        }
        Ok(dk)
    }

    /// The data key and, for a threshold envelope, the shares it was combined from.
    pub(crate) async fn recover_uncached<'h>(
        &'h self,
        header: &'h Header,
        context_aad: &'h [u8],
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<Piece>)> {
        // Every (member, stanza) pair that may open, in keyring order.
        let mut attempts: VecDeque<Attempt<'h>> = VecDeque::new();
        for m in &self.members {
            for r in header.recipients.iter().filter(|r| !matches!(r.protection, Protection::Unknown { .. }))
            {
                if m.matches(r) {
                    attempts.push_back((m, r));
                }
            }
        }
        if attempts.is_empty() {
            return Err(not_in_keyring(header, self));
        }
        let threshold =
            header.recipients.iter().find_map(|r| r.share).map_or(1, |s| usize::from(s.threshold));

        let mut running = FuturesUnordered::new();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut failures = Vec::new();
        let mut active: Vec<u8> = Vec::new(); // share groups with a call in flight
        let next = next_attempt;
        let call = |(m, r): Attempt<'h>| attempt(m.clone(), r, header, context_aad, self.timeout);
        // A threshold envelope needs k groups anyway: ask k distinct groups at once.
        while running.len() < threshold {
            let Some(a) = next(&mut attempts, &pieces, &active) else { break };
            active.push(group_of(a.1));
            running.push(call(a));
        }
        loop {
            if running.is_empty() {
                let Some(a) = next(&mut attempts, &pieces, &active) else { break };
                active.push(group_of(a.1));
                running.push(call(a));
            }
            let hedge = tokio::time::sleep(self.hedge_delay);
            let done = tokio::select! {
                done = running.next() => done,
                () = hedge, if !attempts.is_empty() => None,
            };
            let Some((m, r, got)) = done else {
                // The hedge delay passed with calls still running: ask one more recipient.
                if let Some(a) = next(&mut attempts, &pieces, &active) {
                    active.push(group_of(a.1));
                    running.push(call(a));
                }
                continue;
            };
            let g = group_of(r);
            if let Some(i) = active.iter().position(|a| *a == g) {
                active.swap_remove(i);
            }
            match (got, r.share) {
                (Ok(secret), None) => return Ok((secret, Vec::new())),
                (Ok(secret), Some(share)) if secret.len() == DATA_KEY_LEN => {
                    if !pieces.iter().any(|p| p.index == share.index) {
                        let mut value = Zeroizing::new([0u8; DATA_KEY_LEN]);
                        value.copy_from_slice(&secret);
                        pieces.push(Piece { index: share.index, value });
                    }
                    if pieces.len() >= threshold {
                        let key = shamir::evaluate(&pieces, 0)?;
                        return Ok((Zeroizing::new(key.to_vec()), pieces));
                    }
                }
                (Ok(_), Some(_)) => failures.push(failure(&m, crate::opaque())),
                (Err(error), _) => failures.push(failure(&m, error)),
            }
            // Keep as many calls in flight as shares are still needed (a failure is replaced
            // at once).
            while running.len() < threshold.saturating_sub(pieces.len()) {
                let Some(a) = next(&mut attempts, &pieces, &active) else { break };
                active.push(group_of(a.1));
                running.push(call(a));
            }
        }
        if threshold > 1 {
            let count = header.recipients.iter().find_map(|r| r.share).map_or(0, |s| s.count);
            let summary = format!(
                "opened {} of the {threshold} shares needed (the envelope has {count} recipient groups)",
                pieces.len()
            );
            return Err(keyring_error("threshold", summary, failures));
        }
        if failures.len() == 1 {
            return Err(failures.remove(0).error);
        }
        let summary = format!("none of {} recipients could open the data key", failures.len());
        Err(keyring_error("recipients", summary, failures))
    }
}

/// A keyring member and a stanza it may open.
type Attempt<'a> = (&'a Member, &'a Recipient);

/// The share group of a stanza: 0 for a plain stanza, which yields the whole data key.
fn group_of(r: &Recipient) -> u8 {
    r.share.map_or(0, |s| s.index)
}

/// The next attempt: one for a group not yet opened, preferring a group with no call in
/// flight.
fn next_attempt<'a>(
    attempts: &mut VecDeque<Attempt<'a>>,
    pieces: &[Piece],
    active: &[u8],
) -> Option<Attempt<'a>> {
    let open = |g: u8| g != 0 && pieces.iter().any(|p| p.index == g);
    let pos = attempts
        .iter()
        .position(|(_, r)| !open(group_of(r)) && !active.contains(&group_of(r)))
        .or_else(|| attempts.iter().position(|(_, r)| !open(group_of(r))))?;
    attempts.remove(pos)
}

/// One stanza opened by one member, within its deadline.
async fn attempt<'a>(
    m: Member,
    r: &'a Recipient,
    header: &'a Header,
    context_aad: &'a [u8],
    timeout: Duration,
) -> (Member, &'a Recipient, Result<Zeroizing<Vec<u8>>>) {
    let got = match tokio::time::timeout(timeout, unprotect(&*m.provider, header, r, context_aad)).await {
        Ok(got) => got,
        Err(_) => Err(timed_out(&m, timeout)),
    };
    (m, r, got)
}

fn failure(m: &Member, error: Error) -> RecipientFailure {
    RecipientFailure { provider: m.provider.name().to_owned(), key: m.key.clone(), error }
}

fn timed_out(m: &Member, after: Duration) -> Error {
    Error::Timeout {
        provider: m.provider.name(),
        operation: format!("the data key with '{}' (deadline {after:?})", m.key),
    }
}

fn not_in_keyring(header: &Header, ring: &Keyring) -> Error {
    let stanzas: Vec<String> = header
        .recipients
        .iter()
        .filter_map(|r| r.key().map(|k| format!("{} '{}'", r.provider.as_deref().unwrap_or("?"), k.name())))
        .collect();
    Error::invalid_input(
        PROVIDER,
        format!(
            "none of the envelope's recipients ({}) is in the keyring ({:?}); add one of them",
            stanzas.join(", "),
            ring.members
        ),
    )
}

/// Opens one stanza with `provider`: unwrap or decrypt (with the context as AAD where it
/// was given when sealing).
pub(crate) async fn unprotect(
    provider: &(impl Provider + ?Sized),
    header: &Header,
    r: &Recipient,
    context_aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    match &r.protection {
        Protection::Wrapped(w) => provider.unwrap_blob(w).await,
        Protection::Encrypted(c) => {
            let aad = if header.version == VERSION_1 {
                None
            } else {
                provider_aad(c.algorithm(), &header.context, context_aad)
            };
            provider.decrypt_blob(c, aad).await
        }
        Protection::Unknown { .. } => Err(Error::invalid_input(PROVIDER, "unknown stanza kind")),
    }
}

/// The future of [`Unlock::data_key`].
pub type DataKeyFuture<'a> = Pin<Box<dyn Future<Output = Result<Zeroizing<Vec<u8>>>> + Send + 'a>>;

/// What can recover an envelope's data key: a provider (tries the stanzas it made first),
/// or a [`Keyring`] (hedged over its recipients). Implemented for every [`Provider`] and
/// for [`Keyring`]; not meant to be implemented elsewhere.
pub trait Unlock: Send + Sync {
    /// Recovers the data key of `header` (before the commitment check).
    #[doc(hidden)]
    fn data_key<'a>(&'a self, header: &'a Header, cache: Option<&'a DataKeyCache>) -> DataKeyFuture<'a>;
}

impl<P: Provider + ?Sized> Unlock for P {
    fn data_key<'a>(&'a self, header: &'a Header, _cache: Option<&'a DataKeyCache>) -> DataKeyFuture<'a> {
        Box::pin(single_provider_key(self, header))
    }
}

impl Unlock for Keyring {
    fn data_key<'a>(&'a self, header: &'a Header, cache: Option<&'a DataKeyCache>) -> DataKeyFuture<'a> {
        Box::pin(self.recover(header, cache))
    }
}

/// The data key from the first stanza `provider` can open: stanzas it made first, in header
/// order, then the others. The first error is returned when none opens. Share stanzas need
/// a [`Keyring`] with the other groups.
async fn single_provider_key<P: Provider + ?Sized>(
    provider: &P,
    header: &Header,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut order: Vec<_> = header
        .recipients
        .iter()
        .filter(|r| !matches!(r.protection, Protection::Unknown { .. }) && r.share.is_none())
        .collect();
    if order.is_empty() && header.recipients.iter().any(|r| r.share.is_some()) {
        let k = header.recipients.iter().find_map(|r| r.share).map_or(0, |s| s.threshold);
        return Err(Error::invalid_input(
            PROVIDER,
            format!(
                "this envelope's data key is split {k}-of-n across recipient groups; open it with a Keyring \
                 that reaches {k} groups"
            ),
        ));
    }
    order.sort_by_key(|r| r.provider.as_deref().is_some_and(|n| n != provider.name()));
    let context_aad = header.context.encode()?;
    let mut first_error = None;
    for r in order {
        match unprotect(provider, header, r, &context_aad).await {
            Ok(dk) => return Ok(dk),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        Error::invalid_input(
            PROVIDER,
            "the envelope lists no recipient this version of hsm can open; upgrade hsm",
        )
    }))
}
