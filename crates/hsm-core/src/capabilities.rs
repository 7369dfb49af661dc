//! What a provider can do, as data.
//!
//! The conformance kit runs every declared case and expects every undeclared one to fail
//! with [`Error::Unsupported`](crate::Error::Unsupported).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::vocab::{EncryptionAlgorithm, KeySpec, KeyUsage, MacAlgorithm, SignatureAlgorithm, WrapAlgorithm};

/// What a provider supports for one key spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecCapabilities {
    /// Usages a key of this spec may be created with.
    pub usages: Vec<KeyUsage>,
    /// Encryption algorithms (for keys with usage encrypt).
    pub encryption: Vec<EncryptionAlgorithm>,
    /// Signature algorithms (for keys with usage sign).
    pub signature: Vec<SignatureAlgorithm>,
    /// Wrapping algorithms (for keys with usage wrap).
    pub wrap: Vec<WrapAlgorithm>,
    /// MAC algorithms (for keys with usage mac).
    pub mac: Vec<MacAlgorithm>,
    /// Whether `rotate_key` works for this spec.
    pub rotation: bool,
    /// The largest plaintext `encrypt` takes for symmetric encryption, if limited.
    /// RSA limits follow from [`EncryptionAlgorithm::max_plaintext_len`].
    pub max_plaintext_len: Option<usize>,
    /// Whether signing a caller-supplied digest ([`SignInput::Digest`](crate::SignInput::Digest)) works.
    pub sign_digest: bool,
}

impl SpecCapabilities {
    /// Nothing supported yet; add with the `with_*` methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds usages.
    #[must_use]
    pub fn with_usages(mut self, u: impl IntoIterator<Item = KeyUsage>) -> Self {
        self.usages.extend(u);
        self
    }

    /// Adds encryption algorithms.
    #[must_use]
    pub fn with_encryption(mut self, a: impl IntoIterator<Item = EncryptionAlgorithm>) -> Self {
        self.encryption.extend(a);
        self
    }

    /// Adds signature algorithms.
    #[must_use]
    pub fn with_signature(mut self, a: impl IntoIterator<Item = SignatureAlgorithm>) -> Self {
        self.signature.extend(a);
        self
    }

    /// Adds wrapping algorithms.
    #[must_use]
    pub fn with_wrap(mut self, a: impl IntoIterator<Item = WrapAlgorithm>) -> Self {
        self.wrap.extend(a);
        self
    }

    /// Adds MAC algorithms.
    #[must_use]
    pub fn with_mac(mut self, a: impl IntoIterator<Item = MacAlgorithm>) -> Self {
        self.mac.extend(a);
        self
    }

    /// Declares whether rotation works.
    #[must_use]
    pub fn with_rotation(mut self, yes: bool) -> Self {
        self.rotation = yes;
        self
    }

    /// Declares a symmetric plaintext limit.
    #[must_use]
    pub fn with_max_plaintext_len(mut self, n: usize) -> Self {
        self.max_plaintext_len = Some(n);
        self
    }

    /// Declares whether digests can be signed.
    #[must_use]
    pub fn with_sign_digest(mut self, yes: bool) -> Self {
        self.sign_digest = yes;
        self
    }
}

/// How deletion works on a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeletionPolicy {
    /// Shortest pending window accepted (zero means immediate deletion is allowed).
    pub min_window: Duration,
    /// Longest pending window accepted.
    pub max_window: Duration,
    /// The window used when the caller gives none.
    pub default_window: Duration,
    /// Whether a scheduled deletion can be cancelled.
    pub cancellable: bool,
}

impl DeletionPolicy {
    /// A policy.
    pub const fn new(
        min_window: Duration,
        max_window: Duration,
        default_window: Duration,
        cancellable: bool,
    ) -> Self {
        DeletionPolicy { min_window, max_window, default_window, cancellable }
    }
}

impl Default for DeletionPolicy {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        DeletionPolicy::new(
            Duration::from_secs(7 * DAY),
            Duration::from_secs(30 * DAY),
            Duration::from_secs(30 * DAY),
            true,
        )
    }
}

/// Everything a provider declares it supports. Computed once; no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Per-spec support; a spec that is absent cannot be created.
    pub specs: BTreeMap<KeySpec, SpecCapabilities>,
    /// Deletion windows.
    pub deletion: DeletionPolicy,
    /// Largest page `list_keys` returns.
    pub max_page_size: u32,
}

impl Capabilities {
    /// No specs yet; add them with [`with_spec`](Self::with_spec).
    pub fn new() -> Self {
        Capabilities { specs: BTreeMap::new(), deletion: DeletionPolicy::default(), max_page_size: 100 }
    }

    /// Declares support for `spec`.
    #[must_use]
    pub fn with_spec(mut self, spec: KeySpec, caps: SpecCapabilities) -> Self {
        self.specs.insert(spec, caps);
        self
    }

    /// Sets the deletion policy.
    #[must_use]
    pub fn with_deletion(mut self, d: DeletionPolicy) -> Self {
        self.deletion = d;
        self
    }

    /// Sets the largest page size.
    #[must_use]
    pub fn with_max_page_size(mut self, n: u32) -> Self {
        self.max_page_size = n;
        self
    }

    /// Support for `spec`, if any.
    pub fn spec(&self, spec: KeySpec) -> Option<&SpecCapabilities> {
        self.specs.get(&spec)
    }

    /// Whether keys of `spec` with `usage` can be created.
    pub fn supports_key(&self, spec: KeySpec, usage: KeyUsage) -> bool {
        self.spec(spec).is_some_and(|c| c.usages.contains(&usage))
    }

    /// Whether `alg` encrypts under keys of `spec`.
    pub fn supports_encryption(&self, spec: KeySpec, alg: EncryptionAlgorithm) -> bool {
        self.spec(spec).is_some_and(|c| c.encryption.contains(&alg))
    }

    /// Whether `alg` signs with keys of `spec`.
    pub fn supports_signature(&self, spec: KeySpec, alg: SignatureAlgorithm) -> bool {
        self.spec(spec).is_some_and(|c| c.signature.contains(&alg))
    }

    /// Whether `alg` wraps under keys of `spec`.
    pub fn supports_wrap(&self, spec: KeySpec, alg: WrapAlgorithm) -> bool {
        self.spec(spec).is_some_and(|c| c.wrap.contains(&alg))
    }

    /// Whether `alg` computes MACs with keys of `spec`.
    pub fn supports_mac(&self, spec: KeySpec, alg: MacAlgorithm) -> bool {
        self.spec(spec).is_some_and(|c| c.mac.contains(&alg))
    }

    /// The largest plaintext `encrypt` accepts for `spec` and `alg`: the algorithm's own
    /// bound for RSA, the declared limit for symmetric keys, `None` when unbounded.
    pub fn max_plaintext_len(&self, spec: KeySpec, alg: EncryptionAlgorithm) -> Option<usize> {
        alg.max_plaintext_len(spec).or_else(|| self.spec(spec).and_then(|c| c.max_plaintext_len))
    }
}
