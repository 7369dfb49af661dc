//! The one place AWS KMS errors become [`hsm_core::Error`]s.
//!
//! Service errors are mapped on their error code ([`ProvideErrorMetadata::code`]), never on
//! message text. Transport failures (cannot connect, timed out, no credentials) are mapped on
//! the kind of [`SdkError`].

use std::error::Error as StdError;

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use hsm_core::{Error, UnusableReason};

use crate::PROVIDER;

/// Maps an AWS KMS error code (e.g. `"NotFoundException"`) and message to an [`Error`].
///
/// `key` names the key the call was about, for `NotFound`/`AlreadyExists`/`KeyUnusable`.
/// `KMSInvalidSignatureException` and `KMSInvalidMacException` are answered `Ok(false)` by
/// `verify`/`verify_mac` before they get here; anywhere else they are `InvalidInput`.
///
/// | code | error |
/// |---|---|
/// | `NotFoundException` | `NotFound` |
/// | `AlreadyExistsException` | `AlreadyExists` |
/// | `InvalidCiphertextException`, `IncorrectKeyException` | `DecryptionFailed` (opaque) |
/// | `DisabledException` | `KeyUnusable` (disabled) |
/// | `KMSInvalidStateException` | `KeyUnusable` (pending deletion: the state hsm does not check for is a race with a deletion) |
/// | `KeyUnavailableException`, `DependencyTimeoutException`, `KMSInternalException`, `InternalFailure`, `ServiceUnavailable` | `Unavailable` (retryable) |
/// | `ThrottlingException`, `LimitExceededException`, `RequestLimitExceeded` | `Throttled` |
/// | `AccessDeniedException` | `PermissionDenied` |
/// | `UnrecognizedClientException`, `InvalidSignatureException`, `IncompleteSignature`, `MissingAuthenticationToken`, `ExpiredTokenException`, `InvalidClientTokenId`, `SignatureDoesNotMatch` | `Unauthenticated` |
/// | `ValidationException`, `InvalidKeyUsageException`, `InvalidAliasNameException`, `InvalidArnException`, `InvalidMarkerException`, `InvalidGrantTokenException`, `TagException`, `KMSInvalidSignatureException`, `KMSInvalidMacException` | `InvalidInput` |
/// | `UnsupportedOperationException` | `Unsupported` |
/// | anything else | `Provider` with the code |
///
/// ```
/// use hsm_core::Error;
/// let e = hsm_aws::error::from_code("NotFoundException", "Alias alias/x is not found.", Some("x"));
/// assert!(matches!(e, Error::NotFound { ref key, .. } if key == "x"));
/// assert!(hsm_aws::error::from_code("ThrottlingException", "slow down", None).is_retryable());
/// ```
pub fn from_code(code: &str, message: &str, key: Option<&str>) -> Error {
    let key_name = || key.unwrap_or("(unknown)").to_owned();
    let msg = || if message.is_empty() { code.to_owned() } else { format!("{message} ({code})") };
    match code {
        "NotFoundException" => Error::not_found(PROVIDER, key_name()),
        "AlreadyExistsException" => Error::AlreadyExists { provider: PROVIDER, key: key_name() },
        "InvalidCiphertextException" | "IncorrectKeyException" => {
            Error::DecryptionFailed { provider: PROVIDER }
        }
        "DisabledException" => {
            Error::KeyUnusable { provider: PROVIDER, key: key_name(), reason: UnusableReason::Disabled }
        }
        "KMSInvalidStateException" => Error::KeyUnusable {
            provider: PROVIDER,
            key: key_name(),
            reason: UnusableReason::PendingDeletion,
        },
        "KeyUnavailableException"
        | "DependencyTimeoutException"
        | "KMSInternalException"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => {
            Error::Unavailable { provider: PROVIDER, message: msg(), retry_after: None }
        }
        "ThrottlingException"
        | "LimitExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => Error::Throttled { provider: PROVIDER, retry_after: None },
        "AccessDeniedException" => Error::PermissionDenied { provider: PROVIDER, message: msg() },
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch" => Error::Unauthenticated {
            provider: PROVIDER,
            message: format!("AWS rejected the credentials: {}", msg()),
        },
        "ValidationException"
        | "InvalidKeyUsageException"
        | "InvalidAliasNameException"
        | "InvalidArnException"
        | "InvalidMarkerException"
        | "InvalidGrantTokenException"
        | "TagException"
        | "KMSInvalidSignatureException"
        | "KMSInvalidMacException" => Error::invalid_input(PROVIDER, msg()),
        "UnsupportedOperationException" => {
            Error::unsupported(PROVIDER, "this request", format!("AWS KMS refused it: {}", msg()))
        }
        _ => Error::Provider {
            provider: PROVIDER,
            code: code.to_owned(),
            message: message.to_owned(),
            source: None,
        },
    }
}

/// True when `err` or one of its sources is a credentials-loading failure.
fn is_credentials_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>().is_some() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The service error code of an SDK error, if the service answered.
pub(crate) fn code_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// Maps any SDK error of operation `op` (on key `key`) to an [`Error`].
pub(crate) fn from_sdk<E, R>(op: &str, key: Option<&str>, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            match e.code() {
                Some(code) => from_code(code, e.message().unwrap_or_default(), key),
                None => Error::Provider {
                    provider: PROVIDER,
                    code: "unknown".into(),
                    message: format!("{op}: {detail}"),
                    source: Some(Box::new(err)),
                },
            }
        }
        _ if is_credentials_failure(&err) => Error::Unauthenticated {
            provider: PROVIDER,
            message: format!(
                "no usable AWS credentials for {op}: {detail}. The chain looked at AWS_ACCESS_KEY_ID/\
                 AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/credentials, SSO, web identity, the ECS \
                 container and EC2 instance metadata services"
            ),
        },
        SdkError::TimeoutError(_) => Error::Timeout { provider: PROVIDER, operation: op.to_owned() },
        SdkError::DispatchFailure(d) if d.is_timeout() => Error::Unavailable {
            provider: PROVIDER,
            message: format!("{op}: could not connect in time: {detail}"),
            retry_after: None,
        },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Error::Unavailable {
            provider: PROVIDER,
            message: format!("{op}: cannot reach AWS KMS: {detail}"),
            retry_after: None,
        },
        _ => Error::Provider {
            provider: PROVIDER,
            code: "request".into(),
            message: format!("{op}: {detail}"),
            source: Some(Box::new(err)),
        },
    }
}
