//! The one place `CKR_*` codes become [`hsm_core::Error`]s.

use cryptoki::error::{Error as CkError, RvError};
use hsm_core::Error;

use crate::PROVIDER;

/// Maps a cryptoki error from `what` (e.g. `"C_Sign with CKM_ECDSA"`) to an hsm error.
///
/// | `CKR_*` | hsm error |
/// |---|---|
/// | `PIN_INCORRECT`, `PIN_INVALID`, `PIN_LEN_RANGE`, `PIN_EXPIRED`, `PIN_LOCKED`, `USER_NOT_LOGGED_IN`, `USER_PIN_NOT_INITIALIZED` | `Unauthenticated` |
/// | `OBJECT_HANDLE_INVALID`, `KEY_HANDLE_INVALID` | `NotFound` (the key object was deleted behind our back) |
/// | `MECHANISM_INVALID`, `MECHANISM_PARAM_INVALID` | `Unsupported` naming the call |
/// | `ARGUMENTS_BAD`, `DATA_INVALID`, `DATA_LEN_RANGE`, `KEY_SIZE_RANGE`, `TEMPLATE_*`, `ATTRIBUTE_*` | `InvalidInput` |
/// | `KEY_FUNCTION_NOT_PERMITTED`, `KEY_TYPE_INCONSISTENT`, `KEY_UNEXTRACTABLE`, `KEY_NOT_WRAPPABLE` | `PermissionDenied` |
/// | `ENCRYPTED_DATA_*`, `WRAPPED_KEY_*` | `DecryptionFailed` |
/// | `DEVICE_*`, `TOKEN_NOT_PRESENT`, `TOKEN_NOT_RECOGNIZED`, `SESSION_*`, `CRYPTOKI_NOT_INITIALIZED`, `FUNCTION_FAILED` | `Unavailable` (retryable) |
/// | library loading failures | `Config` |
/// | anything else (`GENERAL_ERROR`, …) | `Provider` with the code and `what` |
pub(crate) fn ck(e: CkError, what: &str) -> Error {
    let rv = match e {
        CkError::Pkcs11(rv, _) => rv,
        CkError::LibraryLoading(err) => {
            return Error::config(
                PROVIDER,
                format!("{what}: cannot load the PKCS#11 module: {err}; check module-path"),
            );
        }
        CkError::NullFunctionPointer | CkError::MissingSymbol(_) => {
            return Error::config(
                PROVIDER,
                format!("{what}: the module is not a PKCS#11 library ({e}); check module-path"),
            );
        }
        other => {
            return Error::Provider {
                provider: PROVIDER,
                code: "cryptoki".into(),
                message: format!("{what}: {other}"),
                source: None,
            };
        }
    };
    let code = format!("{rv:?}");
    let msg = format!("{what}: CKR_{}", snake(&code));
    use RvError as R;
    match rv {
        R::PinIncorrect | R::PinInvalid | R::PinLenRange | R::PinExpired => Error::Unauthenticated {
            provider: PROVIDER,
            message: format!("{msg}: the user PIN was refused; check the PIN source (not retried)"),
        },
        R::PinLocked => Error::Unauthenticated {
            provider: PROVIDER,
            message: format!("{msg}: the user PIN is locked; the security officer must reset it"),
        },
        R::UserNotLoggedIn | R::UserPinNotInitialized => {
            Error::Unauthenticated { provider: PROVIDER, message: msg }
        }
        R::ObjectHandleInvalid | R::KeyHandleInvalid => Error::not_found(PROVIDER, msg),
        R::MechanismInvalid | R::MechanismParamInvalid => {
            Error::unsupported(PROVIDER, what.to_owned(), format!("the token refuses it ({msg})"))
        }
        R::ArgumentsBad
        | R::DataInvalid
        | R::DataLenRange
        | R::KeySizeRange
        | R::TemplateIncomplete
        | R::TemplateInconsistent
        | R::AttributeValueInvalid
        | R::AttributeTypeInvalid
        | R::AttributeReadOnly
        | R::SignatureLenRange => Error::invalid_input(PROVIDER, msg),
        R::KeyFunctionNotPermitted
        | R::KeyTypeInconsistent
        | R::KeyUnextractable
        | R::KeyNotWrappable
        | R::AttributeSensitive => Error::PermissionDenied { provider: PROVIDER, message: msg },
        R::EncryptedDataInvalid
        | R::EncryptedDataLenRange
        | R::WrappedKeyInvalid
        | R::WrappedKeyLenRange
        | R::UnwrappingKeyHandleInvalid => Error::DecryptionFailed { provider: PROVIDER },
        R::DeviceError
        | R::DeviceMemory
        | R::DeviceRemoved
        | R::HostMemory
        | R::TokenNotPresent
        | R::TokenNotRecognized
        | R::SessionClosed
        | R::SessionHandleInvalid
        | R::SessionCount
        | R::CryptokiNotInitialized
        | R::FunctionFailed
        | R::FunctionCanceled => Error::Unavailable { provider: PROVIDER, message: msg, retry_after: None },
        _ => Error::Provider {
            provider: PROVIDER,
            code: format!("CKR_{}", snake(&code)),
            message: msg,
            source: None,
        },
    }
}

/// `PinIncorrect` → `PIN_INCORRECT`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Whether the token logged us out (so a re-login and one retry may help).
pub(crate) fn logged_out(e: &CkError) -> bool {
    matches!(e, CkError::Pkcs11(RvError::UserNotLoggedIn, _))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn codes_map_to_the_documented_variants() {
        let m = |rv| ck(CkError::Pkcs11(rv, Function::Sign), "C_Sign");
        assert!(matches!(m(RvError::PinIncorrect), Error::Unauthenticated { .. }));
        assert!(matches!(m(RvError::ObjectHandleInvalid), Error::NotFound { .. }));
        assert!(matches!(m(RvError::MechanismInvalid), Error::Unsupported { .. }));
        assert!(matches!(m(RvError::ArgumentsBad), Error::InvalidInput { .. }));
        assert!(matches!(m(RvError::KeyFunctionNotPermitted), Error::PermissionDenied { .. }));
        assert!(matches!(m(RvError::DeviceRemoved), Error::Unavailable { .. }));
        assert!(matches!(m(RvError::EncryptedDataInvalid), Error::DecryptionFailed { .. }));
        let g = m(RvError::GeneralError);
        assert!(g.to_string().contains("CKR_GENERAL_ERROR"), "{g}");
        assert!(g.to_string().contains("C_Sign"), "{g}");
        assert!(m(RvError::PinIncorrect).to_string().contains("CKR_PIN_INCORRECT"));
    }
}
