//! The state one run shares between its cases: the unique key-name prefix, the keys the
//! run created (and only those are ever deleted), and lazily created shared keys.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hsm_core::{
    Capabilities, CreateKey, Error, KeyInfo, KeyRef, KeySpec, KeyState, KeyUsage, Provider, validate_key_name,
};
use rand_core::RngCore as _;
use tokio::sync::OnceCell;

use crate::case::Failure;
use crate::options::Options;

/// Which of the shared keys of one (spec, usage) a case wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    /// The key most cases use.
    Primary,
    /// A second key of the same spec and usage ("another key").
    Secondary,
}

type Cell<T> = Arc<OnceCell<Result<T, String>>>;

struct Inner {
    provider: Arc<dyn Provider>,
    caps: Capabilities,
    prefix: String,
    counter: AtomicU64,
    created: Mutex<BTreeSet<String>>,
    fixtures: Mutex<HashMap<(KeySpec, KeyUsage, Slot), Cell<KeyInfo>>>,
    list_set: OnceCell<Result<Vec<KeyInfo>, String>>,
}

/// What the cases of one run share: the provider, its capabilities, the run's unique
/// key-name prefix, the names of every key the run created, and shared keys created on
/// first use. Cheap to clone.
///
/// The kit only ever deletes keys recorded here, that is keys this run created.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<Inner>,
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("provider", &self.inner.provider.name())
            .field("prefix", &self.inner.prefix)
            .field("created", &self.created_keys().len())
            .finish()
    }
}

impl Ctx {
    /// A context for one run against `provider`, with the key prefix of `options`
    /// followed by a random run id (`hc-1f2e3d4c`).
    ///
    /// # Errors
    /// A [`Failure`] when the prefix in `options` would not make portable key names.
    pub fn new(provider: Arc<dyn Provider>, options: &Options) -> Result<Ctx, Failure> {
        let base = options.prefix();
        if base.len() > 16 {
            return Err(Failure::new(format!(
                "key prefix '{base}' is {} characters long; use at most 16",
                base.len()
            )));
        }
        validate_key_name("hsm-conformance", base)
            .map_err(|e| Failure::new(format!("key prefix '{base}' is not usable: {e}")))?;
        let prefix = format!("{base}-{:08x}", rand_core::OsRng.next_u32());
        let caps = provider.capabilities().clone();
        Ok(Ctx {
            inner: Arc::new(Inner {
                provider,
                caps,
                prefix,
                counter: AtomicU64::new(0),
                created: Mutex::new(BTreeSet::new()),
                fixtures: Mutex::new(HashMap::new()),
                list_set: OnceCell::new(),
            }),
        })
    }

    /// The provider under test.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.inner.provider
    }

    /// The provider's capabilities, as read when the run started.
    pub fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    /// The run's unique prefix; every key the run creates has a name starting with it.
    pub fn run_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// A fresh key name `<run prefix>-<tag>-<n>` (tags are short: `rot`, `dis`, ...).
    pub fn unique_name(&self, tag: &str) -> String {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{tag}-{n}", self.inner.prefix)
    }

    /// Names of the keys this run created, in name order.
    pub fn created_keys(&self) -> Vec<String> {
        self.inner.created.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Creates a key and records it for [`cleanup`](Self::cleanup).
    ///
    /// # Errors
    /// Whatever the provider returns; `InvalidInput` (without calling the provider) for a
    /// name outside the run's prefix, so the kit can never touch keys it did not create.
    pub async fn create_key(&self, req: CreateKey) -> hsm_core::Result<KeyInfo> {
        if !req.name.starts_with(&format!("{}-", self.inner.prefix)) {
            return Err(Error::invalid_input(
                "hsm-conformance",
                format!("kit bug: key '{}' is outside the run prefix '{}'", req.name, self.inner.prefix),
            ));
        }
        let name = req.name.clone();
        let newly_tracked = self.track(&name);
        let result = self.inner.provider.create_key(req).await;
        if newly_tracked && matches!(result, Err(Error::AlreadyExists { .. })) {
            // Someone else's key with our name (not possible with a random run id, but the
            // rule is absolute): forget it so cleanup never touches it.
            self.inner.created.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
        }
        result
    }

    fn track(&self, name: &str) -> bool {
        self.inner.created.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned())
    }

    /// The shared key of `spec` and `usage` in `slot`, created on first use. Cases that use
    /// it must not change it (no rotation, state changes or deletion).
    pub(crate) async fn fixture(
        &self,
        spec: KeySpec,
        usage: KeyUsage,
        slot: Slot,
    ) -> Result<KeyInfo, Failure> {
        let cell = {
            let mut map = self.inner.fixtures.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry((spec, usage, slot)).or_default().clone()
        };
        let created = cell
            .get_or_init(|| async {
                let suffix = match slot {
                    Slot::Primary => "a",
                    Slot::Secondary => "b",
                };
                let name = format!("{}-{spec}-{usage}-{suffix}", self.inner.prefix);
                let req = CreateKey::new(name, spec)
                    .usage(usage)
                    .description("hsm-conformance shared key")
                    .tag("hsm-conformance", self.inner.prefix.to_ascii_lowercase());
                self.create_key(req).await.map_err(|e| format!("creating the shared {spec} {usage} key: {e}"))
            })
            .await;
        created.clone().map_err(Failure::new)
    }

    /// Six keys named `<run prefix>-ls-0` .. `-ls-5` for the listing cases: the first five
    /// of the cheapest declared spec, the last of another declared spec when there is one.
    pub(crate) async fn list_set(&self) -> Result<Vec<KeyInfo>, Failure> {
        let created = self
            .inner
            .list_set
            .get_or_init(|| async {
                let (a, ua) = crate::support::cheapest_any(&self.inner.caps)
                    .ok_or_else(|| "capabilities declare no key spec".to_owned())?;
                let (b, ub) = crate::support::second_spec(&self.inner.caps, a).unwrap_or((a, ua));
                let mut keys = Vec::new();
                for i in 0..6 {
                    let (spec, usage) = if i == 5 { (b, ub) } else { (a, ua) };
                    let name = format!("{}-ls-{i}", self.inner.prefix);
                    let req = CreateKey::new(name, spec).usage(usage).tag("hc-list", format!("k{i}"));
                    keys.push(
                        self.create_key(req).await.map_err(|e| format!("creating listing key {i}: {e}"))?,
                    );
                }
                Ok(keys)
            })
            .await;
        created.clone().map_err(Failure::new)
    }

    /// Schedules deletion, with the provider's shortest window, of every key this run
    /// created and nothing else. Keys already gone are skipped; a key already pending
    /// deletion with a longer window is cancelled and rescheduled when the policy allows.
    /// Returns the problems met (empty when all went well).
    pub async fn cleanup(&self) -> Vec<String> {
        let names: Vec<String> =
            std::mem::take(&mut *self.inner.created.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        let mut set = tokio::task::JoinSet::new();
        let mut problems = Vec::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(8));
        for name in names {
            let p = self.inner.provider.clone();
            let policy = self.inner.caps.deletion;
            let limit = limit.clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                delete_own_key(&*p, &name, policy).await.err().map(|e| format!("{name}: {e}"))
            });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Some(problem)) => problems.push(problem),
                Ok(None) => {}
                Err(e) => problems.push(format!("a cleanup task failed: {e}")),
            }
        }
        problems.sort();
        problems
    }
}

async fn delete_own_key(p: &dyn Provider, name: &str, policy: hsm_core::DeletionPolicy) -> Result<(), Error> {
    let key = KeyRef::new(name);
    let info = match p.get_key(&key).await {
        Ok(info) => info,
        Err(Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    if info.state == KeyState::PendingDeletion {
        let soon = SystemTime::now() + policy.min_window + Duration::from_secs(3600);
        if info.deletion_date.is_none_or(|d| d <= soon) || !policy.cancellable {
            return Ok(());
        }
        p.cancel_deletion(&key).await?;
    }
    match p.schedule_deletion(&key, Some(policy.min_window)).await {
        Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
