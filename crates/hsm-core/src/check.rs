//! Request checks every provider runs before doing any work (or any network call),
//! so the same bad request gets the same typed error on every backend.
//!
//! The order is fixed: key state, then usage, then whether the algorithm fits the key's
//! spec (`InvalidInput`), then whether the provider declares it (`Unsupported`), then sizes.

use std::time::Duration;

use crate::capabilities::{Capabilities, DeletionPolicy};
use crate::error::{Error, Result, UnusableReason};
use crate::key::{CreateKey, KeyInfo, KeyRef};
use crate::provider::SignInput;
use crate::vocab::{
    EncryptionAlgorithm, KeyState, KeyUsage, MacAlgorithm, SignatureAlgorithm, WrapAlgorithm,
};

/// Checks a creation request: the portable parts ([`CreateKey::validate`]), then that the
/// provider declares the spec with that usage.
///
/// # Errors
/// `InvalidInput` for a bad name, usage, description or tags; `Unsupported` for an
/// undeclared spec or usage.
pub fn create_key(provider: &'static str, caps: &Capabilities, req: &CreateKey) -> Result<()> {
    req.validate(provider)?;
    let (spec, usage) = (req.spec, req.effective_usage());
    if !caps.supports_key(spec, usage) {
        return Err(Error::unsupported(
            provider,
            format!("creating a {spec} key with usage '{usage}'"),
            format!("the {provider} provider does not offer it; see its capabilities()"),
        ));
    }
    Ok(())
}

fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(86_400) { format!("{} days", secs / 86_400) } else { format!("{secs} seconds") }
}

/// The deletion window to use: `after`, or the policy's default, which must lie within the
/// policy's range.
///
/// # Errors
/// `InvalidInput` naming the accepted range.
pub fn deletion_window(
    provider: &'static str,
    policy: &DeletionPolicy,
    after: Option<Duration>,
) -> Result<Duration> {
    let window = after.unwrap_or(policy.default_window);
    if window < policy.min_window || window > policy.max_window {
        return Err(Error::invalid_input(
            provider,
            format!(
                "a deletion window of {} is outside the {provider} provider's range of {} to {}",
                human(window),
                human(policy.min_window),
                human(policy.max_window)
            ),
        ));
    }
    Ok(window)
}

/// The key must be enabled and have usage `needs`.
///
/// # Errors
/// [`Error::KeyUnusable`] saying why not.
pub fn usable(provider: &'static str, key: &KeyInfo, needs: KeyUsage) -> Result<()> {
    let reason = match key.state {
        KeyState::Disabled => Some(UnusableReason::Disabled),
        KeyState::PendingDeletion => Some(UnusableReason::PendingDeletion),
        _ if key.usage != needs => Some(UnusableReason::WrongUsage { has: key.usage, needs }),
        _ => None,
    };
    match reason {
        Some(reason) => Err(Error::KeyUnusable { provider, key: key.name.clone(), reason }),
        None => Ok(()),
    }
}

fn doesnt_fit(
    provider: &'static str,
    alg: &dyn std::fmt::Display,
    key: &KeyInfo,
    hint: Option<String>,
) -> Error {
    let hint = hint.map(|h| format!("; use {h}")).unwrap_or_default();
    Error::invalid_input(
        provider,
        format!("{alg} cannot be used with key '{}' ({}){hint}", key.name, key.spec),
    )
}

fn undeclared(provider: &'static str, what: &str, alg: &dyn std::fmt::Display, key: &KeyInfo) -> Error {
    Error::unsupported(
        provider,
        format!("{what} with {alg} on an {} key", key.spec),
        format!("the {provider} provider does not offer it; see its capabilities()"),
    )
}

/// Checks an encryption request.
///
/// # Errors
/// `KeyUnusable`, `InvalidInput` (algorithm does not fit, plaintext too long, AAD on RSA),
/// `Unsupported`.
pub fn encrypt(
    provider: &'static str,
    caps: &Capabilities,
    key: &KeyInfo,
    alg: EncryptionAlgorithm,
    plaintext_len: usize,
    aad: Option<&[u8]>,
) -> Result<()> {
    decrypt(provider, caps, key, alg, aad)?;
    if let Some(max) = caps.max_plaintext_len(key.spec, alg)
        && plaintext_len > max
    {
        return Err(Error::invalid_input(
            provider,
            format!(
                "plaintext is {plaintext_len} bytes; {alg} with an {} key takes at most {max}; \
                 use envelope encryption for larger data",
                key.spec
            ),
        ));
    }
    Ok(())
}

/// Checks a decryption request (everything [`encrypt`] checks except the size).
///
/// # Errors
/// `KeyUnusable`, `InvalidInput`, `Unsupported`.
pub fn decrypt(
    provider: &'static str,
    caps: &Capabilities,
    key: &KeyInfo,
    alg: EncryptionAlgorithm,
    aad: Option<&[u8]>,
) -> Result<()> {
    usable(provider, key, KeyUsage::EncryptDecrypt)?;
    if !alg.fits(key.spec) {
        let hint = key.spec.default_encryption_algorithm().map(|a| a.to_string());
        return Err(doesnt_fit(provider, &alg, key, hint));
    }
    if !caps.supports_encryption(key.spec, alg) {
        return Err(undeclared(provider, "encryption", &alg, key));
    }
    if aad.is_some() && alg != EncryptionAlgorithm::AesGcm {
        return Err(Error::invalid_input(
            provider,
            format!("{alg} cannot authenticate additional data (AAD); drop the AAD or use aes-gcm"),
        ));
    }
    Ok(())
}

/// Checks a signing or verification request.
///
/// # Errors
/// `KeyUnusable`, `InvalidInput` (algorithm does not fit, digest of the wrong length,
/// digest with Ed25519), `Unsupported`.
pub fn sign(
    provider: &'static str,
    caps: &Capabilities,
    key: &KeyInfo,
    alg: SignatureAlgorithm,
    input: &SignInput<'_>,
) -> Result<()> {
    usable(provider, key, KeyUsage::SignVerify)?;
    if !alg.fits(key.spec) {
        let hint = key.spec.default_signature_algorithm().map(|a| a.to_string());
        return Err(doesnt_fit(provider, &alg, key, hint));
    }
    if !caps.supports_signature(key.spec, alg) {
        return Err(undeclared(provider, "signing", &alg, key));
    }
    if let SignInput::Digest(d) = input {
        let Some(digest) = alg.digest() else {
            return Err(Error::invalid_input(
                provider,
                format!("{alg} signs messages, not digests; pass the message"),
            ));
        };
        if d.len() != digest.output_len() {
            return Err(Error::invalid_input(
                provider,
                format!(
                    "digest is {} bytes; {alg} needs a {}-byte {digest} digest",
                    d.len(),
                    digest.output_len()
                ),
            ));
        }
        if !caps.spec(key.spec).is_some_and(|c| c.sign_digest) {
            return Err(undeclared(provider, "signing a precomputed digest", &alg, key));
        }
    }
    Ok(())
}

/// Checks a signature's length where the algorithm fixes it.
///
/// # Errors
/// `InvalidInput` for a signature of impossible length.
pub fn signature_len(
    provider: &'static str,
    key: &KeyInfo,
    alg: SignatureAlgorithm,
    len: usize,
) -> Result<()> {
    match alg.fixed_signature_len(key.spec) {
        Some(n) if n != len => Err(Error::invalid_input(
            provider,
            format!("signature is {len} bytes; {alg} signatures from an {} key are {n} bytes", key.spec),
        )),
        _ if len == 0 => Err(Error::invalid_input(provider, "signature is empty")),
        _ => Ok(()),
    }
}

/// Checks a wrap or unwrap request; `material_len` is checked when given (wrap).
///
/// # Errors
/// `KeyUnusable`, `InvalidInput` (algorithm does not fit, material of a length the
/// algorithm cannot wrap), `Unsupported`.
pub fn wrap(
    provider: &'static str,
    caps: &Capabilities,
    key: &KeyInfo,
    alg: WrapAlgorithm,
    material_len: Option<usize>,
) -> Result<()> {
    usable(provider, key, KeyUsage::WrapUnwrap)?;
    if !alg.fits(key.spec) {
        let hint = key.spec.default_wrap_algorithm().map(|a| a.to_string());
        return Err(doesnt_fit(provider, &alg, key, hint));
    }
    if !caps.supports_wrap(key.spec, alg) {
        return Err(undeclared(provider, "key wrapping", &alg, key));
    }
    let Some(n) = material_len else { return Ok(()) };
    let problem = match alg {
        _ if n == 0 => Some("key material is empty".to_owned()),
        WrapAlgorithm::AesKeyWrap if n < 16 || n % 8 != 0 => Some(format!(
            "aes-key-wrap takes key material of 16 bytes or more in multiples of 8, not {n}; use aes-key-wrap-pad"
        )),
        WrapAlgorithm::RsaOaepSha256 => {
            EncryptionAlgorithm::RsaOaepSha256.max_plaintext_len(key.spec).filter(|max| n > *max).map(|max| {
                format!(
                    "key material is {n} bytes; rsa-oaep-sha256 with an {} key wraps at most {max}",
                    key.spec
                )
            })
        }
        _ if n > 64 * 1024 => Some(format!("key material is {n} bytes; the limit is 65536")),
        _ => None,
    };
    match problem {
        Some(m) => Err(Error::invalid_input(provider, m)),
        None => Ok(()),
    }
}

/// Checks a MAC request.
///
/// # Errors
/// `KeyUnusable`, `InvalidInput`, `Unsupported`.
pub fn mac(provider: &'static str, caps: &Capabilities, key: &KeyInfo, alg: MacAlgorithm) -> Result<()> {
    usable(provider, key, KeyUsage::Mac)?;
    if !alg.fits(key.spec) {
        let hint = key.spec.default_mac_algorithm().map(|a| a.to_string());
        return Err(doesnt_fit(provider, &alg, key, hint));
    }
    if !caps.supports_mac(key.spec, alg) {
        return Err(undeclared(provider, "MAC", &alg, key));
    }
    Ok(())
}

/// A blob made under one key must not be opened with a reference to another.
///
/// # Errors
/// `InvalidInput` naming both keys.
pub fn same_key(provider: &'static str, key: &KeyRef, blob_key: &str, what: &str) -> Result<()> {
    if key.name() == blob_key {
        Ok(())
    } else {
        Err(Error::invalid_input(
            provider,
            format!("this {what} was made with key '{blob_key}', not '{}'", key.name()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::SpecCapabilities;
    use crate::vocab::KeySpec;

    fn caps() -> Capabilities {
        Capabilities::new()
            .with_spec(
                KeySpec::Rsa2048,
                SpecCapabilities::new()
                    .with_usages([KeyUsage::EncryptDecrypt])
                    .with_encryption([EncryptionAlgorithm::RsaOaepSha256]),
            )
            .with_spec(
                KeySpec::EcP256,
                SpecCapabilities::new()
                    .with_usages([KeyUsage::SignVerify])
                    .with_signature([SignatureAlgorithm::EcdsaSha256]),
            )
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let mut k = KeyInfo::new("r", "1", KeySpec::Rsa2048, KeyUsage::EncryptDecrypt);
        k.state = KeyState::Disabled;
        assert!(matches!(
            encrypt("t", &caps(), &k, EncryptionAlgorithm::AesGcm, 1, None),
            Err(Error::KeyUnusable { reason: UnusableReason::Disabled, .. })
        ));
        k.state = KeyState::Enabled;
        assert!(matches!(
            encrypt("t", &caps(), &k, EncryptionAlgorithm::AesGcm, 1, None),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            encrypt("t", &caps(), &k, EncryptionAlgorithm::RsaOaepSha1, 1, None),
            Err(Error::Unsupported { .. })
        ));
        let too_long = encrypt("t", &caps(), &k, EncryptionAlgorithm::RsaOaepSha256, 191, None).unwrap_err();
        assert!(too_long.to_string().contains("at most 190"), "{too_long}");
        assert!(encrypt("t", &caps(), &k, EncryptionAlgorithm::RsaOaepSha256, 190, None).is_ok());
    }

    #[test]
    fn deletion_windows_outside_the_policy_name_the_range() {
        let day = Duration::from_secs(86_400);
        let policy = DeletionPolicy::new(7 * day, 30 * day, 30 * day, true);
        assert_eq!(deletion_window("t", &policy, None).unwrap(), 30 * day);
        assert_eq!(deletion_window("t", &policy, Some(7 * day)).unwrap(), 7 * day);
        let err = deletion_window("t", &policy, Some(day)).unwrap_err().to_string();
        assert!(err.contains("1 days is outside the t provider's range of 7 days to 30 days"), "{err}");
        let err = deletion_window("t", &policy, Some(Duration::from_secs(90))).unwrap_err().to_string();
        assert!(err.contains("90 seconds"), "{err}");
    }

    #[test]
    fn creation_needs_a_declared_spec_and_usage() {
        let req = CreateKey::new("k", KeySpec::Rsa2048).usage(KeyUsage::SignVerify);
        assert!(matches!(create_key("t", &caps(), &req), Err(Error::Unsupported { .. })));
        assert!(create_key("t", &caps(), &CreateKey::new("k", KeySpec::Rsa2048)).is_ok());
        assert!(matches!(
            create_key("t", &caps(), &CreateKey::new("", KeySpec::Rsa2048)),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn digests_must_have_the_algorithms_length() {
        let k = KeyInfo::new("e", "1", KeySpec::EcP256, KeyUsage::SignVerify);
        let err = sign("t", &caps(), &k, SignatureAlgorithm::EcdsaSha256, &SignInput::Digest(&[0; 31]))
            .unwrap_err();
        assert!(err.to_string().contains("31 bytes"), "{err}");
        // The provider did not declare digest signing.
        assert!(matches!(
            sign("t", &caps(), &k, SignatureAlgorithm::EcdsaSha256, &SignInput::Digest(&[0; 32])),
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(
            sign("t", &caps(), &k, SignatureAlgorithm::EcdsaSha384, &SignInput::Message(b"m")),
            Err(Error::InvalidInput { .. })
        ));
    }
}
