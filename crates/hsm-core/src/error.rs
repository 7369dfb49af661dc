//! The one error type every provider returns.
//!
//! Each variant names the provider that produced it. Errors never carry key material or
//! plaintext: messages are written by providers from metadata (names, sizes, algorithms)
//! and from the service's own error code.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::vocab::KeyUsage;

/// Result alias used across hsm.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed underlying error kept for diagnostics.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a key exists but cannot be used for the requested operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnusableReason {
    /// The key is disabled; enable it first.
    Disabled,
    /// The key is scheduled for deletion; cancel the deletion first.
    PendingDeletion,
    /// The key's usage does not allow this operation.
    WrongUsage {
        /// The usage the key has.
        has: KeyUsage,
        /// The usage the operation needs.
        needs: KeyUsage,
    },
    /// The requested key version does not exist or cannot be used.
    Version(String),
}

impl fmt::Display for UnusableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnusableReason::Disabled => f.write_str("it is disabled (enable it with `key enable`)"),
            UnusableReason::PendingDeletion => {
                f.write_str("it is pending deletion (cancel the deletion to use it again)")
            }
            UnusableReason::WrongUsage { has, needs } => {
                write!(f, "its usage is '{has}' but this operation needs a key created with usage '{needs}'")
            }
            UnusableReason::Version(v) => write!(f, "version {v} cannot be used"),
        }
    }
}

/// Every error an hsm provider can return.
///
/// Match on the variant to decide what to do; use [`Error::is_retryable`] and
/// [`Error::retry_after`] for retry decisions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key (or key version) does not exist.
    #[error("{provider}: key '{key}' not found")]
    NotFound {
        /// Provider name.
        provider: &'static str,
        /// The key name (and version, if one was asked for).
        key: String,
    },
    /// A key with this name already exists.
    #[error("{provider}: key '{key}' already exists; choose another name or rotate the existing key")]
    AlreadyExists {
        /// Provider name.
        provider: &'static str,
        /// The key name.
        key: String,
    },
    /// The provider cannot do this (see its [`Capabilities`](crate::Capabilities)).
    #[error("{provider}: {operation} is not supported: {detail}")]
    Unsupported {
        /// Provider name.
        provider: &'static str,
        /// The operation, e.g. `"encrypt with aes-gcm on rsa-2048"`.
        operation: String,
        /// Why, and what to do instead.
        detail: String,
    },
    /// The request itself is wrong (bad name, algorithm that does not fit the key, input too
    /// long, malformed blob). Fix the request; retrying will not help.
    #[error("{provider}: invalid input: {message}")]
    InvalidInput {
        /// Provider name.
        provider: &'static str,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// The key exists but cannot be used for this operation now.
    #[error("{provider}: key '{key}' cannot be used: {reason}")]
    KeyUnusable {
        /// Provider name.
        provider: &'static str,
        /// The key name.
        key: String,
        /// Why.
        reason: UnusableReason,
    },
    /// Credentials are missing, expired or wrong (including a wrong keystore passphrase).
    #[error("{provider}: not authenticated: {message}")]
    Unauthenticated {
        /// Provider name.
        provider: &'static str,
        /// Where credentials were looked for and what failed.
        message: String,
    },
    /// Authenticated, but not allowed to do this.
    #[error("{provider}: permission denied: {message}")]
    PermissionDenied {
        /// Provider name.
        provider: &'static str,
        /// What was refused.
        message: String,
    },
    /// The service asked us to slow down.
    #[error("{provider}: throttled{}", fmt_retry(*retry_after))]
    Throttled {
        /// Provider name.
        provider: &'static str,
        /// How long the service asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The operation did not finish in time.
    #[error("{provider}: {operation} timed out")]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// The operation that timed out.
        operation: String,
    },
    /// The service or device cannot be reached or is failing; retrying later may help.
    #[error("{provider}: unavailable: {message}")]
    Unavailable {
        /// Provider name.
        provider: &'static str,
        /// What failed.
        message: String,
        /// How long the service asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Decryption or unwrapping failed. Deliberately opaque: it does not say whether the
    /// ciphertext, the tag, the padding, the AAD or the key was wrong.
    #[error("{provider}: decryption failed")]
    DecryptionFailed {
        /// Provider name.
        provider: &'static str,
    },
    /// The configuration is wrong or incomplete.
    #[error("{provider}: configuration error: {message}")]
    Config {
        /// Provider name (or `"hsm"` for umbrella configuration).
        provider: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Any other service error, with the service's own error code.
    #[error("{provider}: {code}: {message}")]
    Provider {
        /// Provider name.
        provider: &'static str,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

fn fmt_retry(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {} ms)", d.as_millis()),
        None => String::new(),
    }
}

impl Error {
    /// The name of the provider that produced this error.
    pub fn provider(&self) -> &'static str {
        match self {
            Error::NotFound { provider, .. }
            | Error::AlreadyExists { provider, .. }
            | Error::Unsupported { provider, .. }
            | Error::InvalidInput { provider, .. }
            | Error::KeyUnusable { provider, .. }
            | Error::Unauthenticated { provider, .. }
            | Error::PermissionDenied { provider, .. }
            | Error::Throttled { provider, .. }
            | Error::Timeout { provider, .. }
            | Error::Unavailable { provider, .. }
            | Error::DecryptionFailed { provider }
            | Error::Config { provider, .. }
            | Error::Provider { provider, .. } => provider,
        }
    }

    /// A short stable name for the variant (`"not_found"`, `"decryption_failed"`, …), for
    /// metrics and audit logs; it carries no detail.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::Unsupported { .. } => "unsupported",
            Error::InvalidInput { .. } => "invalid_input",
            Error::KeyUnusable { .. } => "key_unusable",
            Error::Unauthenticated { .. } => "unauthenticated",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::Throttled { .. } => "throttled",
            Error::Timeout { .. } => "timeout",
            Error::Unavailable { .. } => "unavailable",
            Error::DecryptionFailed { .. } => "decryption_failed",
            Error::Config { .. } => "config",
            Error::Provider { .. } => "provider",
        }
    }

    /// True when the same request may succeed if sent again later
    /// (throttling, timeouts, unavailability).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Throttled { .. } | Error::Timeout { .. } | Error::Unavailable { .. })
    }

    /// How long the service asked the caller to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after, .. } | Error::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid_input(provider: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidInput { provider, message: message.into() }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(
        provider: &'static str,
        operation: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Unsupported { provider, operation: operation.into(), detail: detail.into() }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(provider: &'static str, key: impl Into<String>) -> Self {
        Error::NotFound { provider, key: key.into() }
    }

    /// Shorthand for [`Error::Config`].
    pub fn config(provider: &'static str, message: impl Into<String>) -> Self {
        Error::Config { provider, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        let t = Error::Throttled { provider: "x", retry_after: Some(Duration::from_secs(2)) };
        assert!(t.is_retryable());
        assert_eq!(t.retry_after(), Some(Duration::from_secs(2)));
        assert!(!Error::DecryptionFailed { provider: "x" }.is_retryable());
        assert!(!Error::not_found("x", "k").is_retryable());
        assert!(Error::Timeout { provider: "x", operation: "sign".into() }.is_retryable());
    }

    #[test]
    fn messages_name_the_provider_and_the_fix() {
        let e = Error::KeyUnusable { provider: "local", key: "k".into(), reason: UnusableReason::Disabled };
        assert_eq!(
            e.to_string(),
            "local: key 'k' cannot be used: it is disabled (enable it with `key enable`)"
        );
        assert_eq!(Error::DecryptionFailed { provider: "local" }.to_string(), "local: decryption failed");
    }
}
