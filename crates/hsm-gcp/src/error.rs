//! The one place Cloud KMS errors become [`hsm_core::Error`]s.
//!
//! Service errors are mapped on their `google.rpc` status code ([`from_status`]), never on
//! message text. Transport failures (nothing listening, timed out, no credentials) are mapped
//! on the kind of [`google_cloud_gax::error::Error`] ([`from_gax`]).

use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use hsm_core::{Error, UnusableReason};

use crate::PROVIDER;

/// Maps a `google.rpc` status code and message to an [`Error`].
///
/// `key` names the key the call was about. Decrypt calls turn `INVALID_ARGUMENT` into the
/// opaque `DecryptionFailed` before they get here (Cloud KMS answers a tampered or foreign
/// ciphertext with it).
///
/// | code | error |
/// |---|---|
/// | `NOT_FOUND` | `NotFound` |
/// | `ALREADY_EXISTS` | `AlreadyExists` |
/// | `INVALID_ARGUMENT`, `OUT_OF_RANGE` | `InvalidInput` |
/// | `FAILED_PRECONDITION` | `KeyUnusable` (a disabled, destroyed or not yet generated version) |
/// | `PERMISSION_DENIED` | `PermissionDenied` |
/// | `UNAUTHENTICATED` | `Unauthenticated` |
/// | `RESOURCE_EXHAUSTED` | `Throttled` |
/// | `DEADLINE_EXCEEDED` | `Timeout` |
/// | `UNAVAILABLE`, `INTERNAL`, `ABORTED`, `UNKNOWN` | `Unavailable` (retryable) |
/// | `UNIMPLEMENTED` | `Unsupported` |
/// | anything else | `Provider` with the code's name |
///
/// ```
/// use google_cloud_gax::error::rpc::Code;
/// use hsm_core::Error;
/// let e = hsm_gcp::error::from_status(Code::NotFound, "CryptoKey not found", Some("k"));
/// assert!(matches!(e, Error::NotFound { ref key, .. } if key == "k"));
/// assert!(hsm_gcp::error::from_status(Code::ResourceExhausted, "quota", None).is_retryable());
/// ```
pub fn from_status(code: Code, message: &str, key: Option<&str>) -> Error {
    let key_name = || key.unwrap_or("(unknown)").to_owned();
    let msg = || {
        if message.is_empty() { code.name().to_owned() } else { format!("{message} ({})", code.name()) }
    };
    match code {
        Code::NotFound => Error::not_found(PROVIDER, key_name()),
        Code::AlreadyExists => Error::AlreadyExists { provider: PROVIDER, key: key_name() },
        Code::InvalidArgument | Code::OutOfRange => Error::invalid_input(PROVIDER, msg()),
        Code::FailedPrecondition => match key {
            Some(k) => Error::KeyUnusable {
                provider: PROVIDER,
                key: k.to_owned(),
                reason: UnusableReason::Version(format!("(Cloud KMS: {})", msg())),
            },
            None => Error::invalid_input(PROVIDER, msg()),
        },
        Code::PermissionDenied => Error::PermissionDenied { provider: PROVIDER, message: msg() },
        Code::Unauthenticated => Error::Unauthenticated {
            provider: PROVIDER,
            message: format!("Cloud KMS rejected the credentials: {}", msg()),
        },
        Code::ResourceExhausted => Error::Throttled { provider: PROVIDER, retry_after: None },
        Code::DeadlineExceeded => Error::Timeout { provider: PROVIDER, operation: msg() },
        Code::Unavailable | Code::Internal | Code::Aborted | Code::Unknown => {
            Error::Unavailable { provider: PROVIDER, message: msg(), retry_after: None }
        }
        Code::Unimplemented => {
            Error::unsupported(PROVIDER, "this request", format!("Cloud KMS refused it: {}", msg()))
        }
        _ => Error::Provider {
            provider: PROVIDER,
            code: code.name().to_owned(),
            message: message.to_owned(),
            source: None,
        },
    }
}

/// Maps a client error of the RPC `op` about `key`.
///
/// Service answers go through [`from_status`]; an endpoint that cannot be reached is
/// `Unavailable`, a client-side timeout `Timeout`, missing or unusable credentials
/// `Unauthenticated`.
pub fn from_gax(op: &str, key: Option<&str>, err: GaxError) -> Error {
    if let Some(status) = err.status() {
        return with_retry_info(from_status(status.code, &status.message, key), status);
    }
    if err.is_authentication() {
        return Error::Unauthenticated {
            provider: PROVIDER,
            message: format!(
                "no usable Google credentials for {op}: {err}; set GOOGLE_APPLICATION_CREDENTIALS, run \
                 `gcloud auth application-default login`, or use credentials=anonymous for an emulator"
            ),
        };
    }
    if err.is_timeout() {
        return Error::Timeout { provider: PROVIDER, operation: op.to_owned() };
    }
    if err.is_connect() || err.is_io() || err.is_transport() || err.is_transient_and_before_rpc() {
        return Error::Unavailable {
            provider: PROVIDER,
            message: format!("{op}: cannot reach Cloud KMS: {err}"),
            retry_after: None,
        };
    }
    if let Some(http) = err.http_status_code() {
        let code = match http {
            400 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            409 => Code::AlreadyExists,
            412 => Code::FailedPrecondition,
            429 => Code::ResourceExhausted,
            501 => Code::Unimplemented,
            503 => Code::Unavailable,
            504 => Code::DeadlineExceeded,
            500..=599 => Code::Internal,
            _ => Code::Unknown,
        };
        return from_status(code, &format!("{op} answered HTTP {http}"), key);
    }
    Error::Provider {
        provider: PROVIDER,
        code: op.to_owned(),
        message: err.to_string(),
        source: Some(Box::new(err)),
    }
}

/// Carries the delay of a `google.rpc.RetryInfo` detail into a throttled or unavailable
/// error's `retry_after`, which hsm's retry layer honours (as `Retry-After` elsewhere).
/// [`from_gax`] applies it to every service answer.
pub fn with_retry_info(e: Error, status: &google_cloud_gax::error::rpc::Status) -> Error {
    use google_cloud_gax::error::rpc::StatusDetails;
    let delay = status.details.iter().find_map(|d| match d {
        StatusDetails::RetryInfo(info) => {
            info.retry_delay.and_then(|d| std::time::Duration::try_from(d).ok())
        }
        _ => None,
    });
    match (e, delay) {
        (Error::Throttled { provider, .. }, Some(d)) => Error::Throttled { provider, retry_after: Some(d) },
        (Error::Unavailable { provider, message, .. }, Some(d)) => {
            Error::Unavailable { provider, message, retry_after: Some(d) }
        }
        (e, _) => e,
    }
}

/// A response that failed its CRC32C check: retryable, and the data is discarded.
pub(crate) fn integrity(op: &str, field: &str) -> Error {
    Error::Unavailable {
        provider: PROVIDER,
        message: format!(
            "{op}: the response failed its CRC32C integrity check ({field}); the data was discarded, retry the call"
        ),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_documented_variants() {
        assert!(matches!(from_status(Code::AlreadyExists, "", Some("k")), Error::AlreadyExists { .. }));
        assert!(matches!(from_status(Code::InvalidArgument, "bad", None), Error::InvalidInput { .. }));
        assert!(matches!(
            from_status(Code::FailedPrecondition, "version disabled", Some("k")),
            Error::KeyUnusable { reason: UnusableReason::Version(_), .. }
        ));
        assert!(matches!(from_status(Code::PermissionDenied, "", None), Error::PermissionDenied { .. }));
        assert!(matches!(from_status(Code::Unauthenticated, "", None), Error::Unauthenticated { .. }));
        assert!(from_status(Code::Unavailable, "", None).is_retryable());
        assert!(from_status(Code::Internal, "", None).is_retryable());
        assert!(from_status(Code::DeadlineExceeded, "", None).is_retryable());
        assert!(matches!(from_status(Code::Unimplemented, "", None), Error::Unsupported { .. }));
        assert!(integrity("Encrypt", "ciphertext_crc32c").is_retryable());
    }
}
