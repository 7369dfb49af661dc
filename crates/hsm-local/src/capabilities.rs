//! What the local provider declares: every spec, every algorithm, rotation everywhere.

use std::time::Duration;

use hsm_core::{
    Capabilities, DeletionPolicy, EncryptionAlgorithm as E, KeyFamily, KeySpec, KeyUsage,
    SignatureAlgorithm as S, SpecCapabilities, WrapAlgorithm as W,
};

/// Largest AES-GCM plaintext `encrypt` accepts (and key material `wrap_key` takes with
/// AES-GCM is bounded by `hsm_core::check::wrap`). The local provider is meant for keys and
/// small secrets; use envelope encryption for bulk data.
pub(crate) const MAX_AES_PLAINTEXT: usize = 64 * 1024 * 1024;

/// Largest page `list_keys` returns (and the default page size).
pub(crate) const MAX_PAGE_SIZE: u32 = 100;

const DAY: u64 = 86_400;

/// Deletion windows: immediate deletion allowed, at most 365 days, 30 by default, cancellable.
pub(crate) const DELETION: DeletionPolicy =
    DeletionPolicy::new(Duration::ZERO, Duration::from_secs(365 * DAY), Duration::from_secs(30 * DAY), true);

fn spec_caps(spec: KeySpec) -> Option<SpecCapabilities> {
    let base = SpecCapabilities::new().with_rotation(true);
    Some(match spec.family() {
        KeyFamily::Aes => base
            .with_usages([KeyUsage::EncryptDecrypt, KeyUsage::WrapUnwrap])
            .with_encryption([E::AesGcm])
            .with_wrap([W::AesKeyWrap, W::AesKeyWrapPad, W::AesGcm])
            .with_max_plaintext_len(MAX_AES_PLAINTEXT),
        KeyFamily::Rsa => base
            .with_usages([KeyUsage::EncryptDecrypt, KeyUsage::SignVerify, KeyUsage::WrapUnwrap])
            .with_encryption([E::RsaOaepSha1, E::RsaOaepSha256, E::RsaPkcs1v15])
            .with_signature([
                S::RsaPkcs1v15Sha256,
                S::RsaPkcs1v15Sha384,
                S::RsaPkcs1v15Sha512,
                S::RsaPssSha256,
                S::RsaPssSha384,
                S::RsaPssSha512,
            ])
            .with_wrap([W::RsaOaepSha256])
            .with_sign_digest(true),
        KeyFamily::Ec => base
            .with_usages([KeyUsage::SignVerify])
            .with_signature(spec.default_signature_algorithm())
            .with_sign_digest(true),
        KeyFamily::Ed25519 => base.with_usages([KeyUsage::SignVerify]).with_signature([S::Ed25519]),
        KeyFamily::Hmac => base.with_usages([KeyUsage::Mac]).with_mac(spec.default_mac_algorithm()),
        _ => return None,
    })
}

/// The local provider's capabilities.
pub(crate) fn capabilities() -> Capabilities {
    KeySpec::ALL
        .iter()
        .filter_map(|&s| spec_caps(s).map(|c| (s, c)))
        .fold(Capabilities::new(), |caps, (s, c)| caps.with_spec(s, c))
        .with_deletion(DELETION)
        .with_max_page_size(MAX_PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_core::MacAlgorithm;

    #[test]
    fn every_spec_and_every_fitting_algorithm_is_declared() {
        let caps = capabilities();
        for &spec in KeySpec::ALL {
            for &u in KeyUsage::ALL {
                assert_eq!(caps.supports_key(spec, u), spec.allows_usage(u), "{spec} {u}");
            }
            for &a in E::ALL {
                assert_eq!(caps.supports_encryption(spec, a), a.fits(spec), "{spec} {a}");
            }
            for &a in S::ALL {
                assert_eq!(caps.supports_signature(spec, a), a.fits(spec), "{spec} {a}");
            }
            for &a in W::ALL {
                assert_eq!(caps.supports_wrap(spec, a), a.fits(spec), "{spec} {a}");
            }
            for &a in MacAlgorithm::ALL {
                assert_eq!(caps.supports_mac(spec, a), a.fits(spec), "{spec} {a}");
            }
            let c = caps.spec(spec).unwrap();
            assert!(c.rotation);
            assert_eq!(c.sign_digest, matches!(spec.family(), KeyFamily::Rsa | KeyFamily::Ec));
        }
        assert_eq!(caps.max_page_size, 100);
        assert_eq!(caps.deletion.min_window, Duration::ZERO);
    }
}
