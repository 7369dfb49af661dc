//! The one place Key Vault errors become [`hsm_core::Error`]s.
//!
//! Service errors are mapped on the HTTP status and the Key Vault error code
//! (`{"error":{"code":"KeyNotFound",…}}`), never on message text; transport failures on the
//! kind of `azure_core::Error`.

use std::error::Error as StdError;
use std::time::Duration;

use azure_core::error::{ErrorKind, ErrorResponse};
use azure_core::http::headers::RETRY_AFTER;
use hsm_core::Error;

use crate::PROVIDER;

/// Maps a Key Vault error response to an [`Error`].
///
/// `key` names the key the call was about (for `NotFound`/`AlreadyExists`); `retry_after`
/// is the response's `Retry-After`, if any.
///
/// | status | code | error |
/// |---|---|---|
/// | 400 | `BadParameter` and any other | `InvalidInput` |
/// | 401 | any | `Unauthenticated` |
/// | 403 | any (`Forbidden`, `ForbiddenByPolicy`, `ForbiddenByRbac`, `AccessDenied`) | `PermissionDenied` |
/// | 404 | `KeyNotFound` and any other | `NotFound` |
/// | 409 | `Conflict`, `ObjectIsDeletedButRecoverable`, `ObjectIsBeingDeleted` and any other | `AlreadyExists` |
/// | 429 | any (`Throttled`) | `Throttled` with `Retry-After` |
/// | 408, 500–599 | any | `Unavailable` (with `Retry-After` when given) |
/// | other | any | `Provider` with the code |
///
/// `decrypt` and `unwrap_key` turn every 400 into the opaque `DecryptionFailed` before they
/// get here, so a malformed or tampered ciphertext says nothing more.
///
/// ```
/// use hsm_core::Error;
/// let e = hsm_azure::error::from_status(404, Some("KeyNotFound"), "A key with (name/id) x was not found", None, Some("x"));
/// assert!(matches!(e, Error::NotFound { ref key, .. } if key == "x"));
/// let t = hsm_azure::error::from_status(429, Some("Throttled"), "", Some(std::time::Duration::from_secs(3)), None);
/// assert_eq!(t.retry_after(), Some(std::time::Duration::from_secs(3)));
/// ```
pub fn from_status(
    status: u16,
    code: Option<&str>,
    message: &str,
    retry_after: Option<Duration>,
    key: Option<&str>,
) -> Error {
    let key_name = || key.unwrap_or("(unknown)").to_owned();
    let code_text = code.unwrap_or("");
    let msg = || match (message.is_empty(), code_text.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (true, false) => format!("{code_text} (HTTP {status})"),
        (false, true) => format!("{message} (HTTP {status})"),
        (false, false) => format!("{message} ({code_text}, HTTP {status})"),
    };
    match status {
        400 => Error::invalid_input(PROVIDER, format!("Key Vault refused the request: {}", msg())),
        401 => Error::Unauthenticated {
            provider: PROVIDER,
            message: format!("Key Vault rejected the bearer token: {}", msg()),
        },
        403 => Error::PermissionDenied { provider: PROVIDER, message: msg() },
        404 => Error::not_found(PROVIDER, key_name()),
        409 => Error::AlreadyExists { provider: PROVIDER, key: key_name() },
        429 => Error::Throttled { provider: PROVIDER, retry_after },
        408 | 500..=599 => Error::Unavailable {
            provider: PROVIDER,
            message: format!("Key Vault is failing: {}", msg()),
            retry_after,
        },
        _ => Error::Provider {
            provider: PROVIDER,
            code: if code_text.is_empty() { format!("HTTP {status}") } else { code_text.to_owned() },
            message: message.to_owned(),
            source: None,
        },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Key Vault).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The whole chain of an error's sources, for messages about transport failures.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// The HTTP status of an SDK error, if the service answered.
pub(crate) fn status_of(err: &azure_core::Error) -> Option<u16> {
    err.http_status().map(u16::from)
}

/// Maps any SDK error of operation `op` (on key `key`) to an [`Error`].
pub(crate) fn from_azure(op: &str, key: Option<&str>, err: azure_core::Error) -> Error {
    match err.kind() {
        ErrorKind::HttpResponse { status, error_code, raw_response } => {
            let status = u16::from(*status);
            let (mut code, mut message, mut retry_after) = (error_code.clone(), String::new(), None);
            if let Some(raw) = raw_response {
                retry_after = raw.headers().get_optional_str(&RETRY_AFTER).and_then(parse_retry_after);
                if let Ok(body) = raw.body().json::<ErrorResponse>()
                    && let Some(detail) = body.error
                {
                    code = detail.code.or(code);
                    message = detail.message.unwrap_or_default();
                }
            }
            from_status(status, code.as_deref(), &message, retry_after, key)
        }
        ErrorKind::Credential => Error::Unauthenticated {
            provider: PROVIDER,
            message: format!("{op}: could not get an Entra ID token: {}", chain(&err)),
        },
        ErrorKind::Connection | ErrorKind::Io => {
            let detail = chain(&err);
            let hint = if detail.contains("certificate") || detail.contains("UnknownIssuer") {
                "; the server's TLS certificate is not trusted (for an emulator pass its CA with ca=/path/ca.pem)"
            } else {
                ""
            };
            Error::Unavailable {
                provider: PROVIDER,
                message: format!("{op}: cannot reach Key Vault: {detail}{hint}"),
                retry_after: None,
            }
        }
        _ => Error::Provider {
            provider: PROVIDER,
            code: "request".into(),
            message: format!("{op}: {}", chain(&err)),
            source: Some(Box::new(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_maps() {
        let e = |s, c: &str| from_status(s, Some(c), "m", None, Some("k"));
        assert!(matches!(e(400, "BadParameter"), Error::InvalidInput { .. }));
        assert!(matches!(e(401, "Unauthorized"), Error::Unauthenticated { .. }));
        assert!(matches!(e(403, "Forbidden"), Error::PermissionDenied { .. }));
        assert!(matches!(e(404, "KeyNotFound"), Error::NotFound { .. }));
        assert!(matches!(e(409, "ObjectIsDeletedButRecoverable"), Error::AlreadyExists { .. }));
        assert!(matches!(e(409, "Conflict"), Error::AlreadyExists { .. }));
        assert!(matches!(e(429, "Throttled"), Error::Throttled { .. }));
        assert!(matches!(e(503, "ServiceUnavailable"), Error::Unavailable { .. }));
        assert!(e(500, "InternalError").is_retryable());
        assert!(matches!(e(418, "Teapot"), Error::Provider { ref code, .. } if code == "Teapot"));
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
