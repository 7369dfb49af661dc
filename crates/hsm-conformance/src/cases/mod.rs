//! Every conformance case, generated from the vocabulary and the provider's capabilities.

use hsm_core::{
    Capabilities, EncryptionAlgorithm, KeySpec, KeyUsage, MacAlgorithm, SignatureAlgorithm, WrapAlgorithm,
};

use crate::case::Case;

mod capabilities;
mod concurrency;
mod encrypt;
mod envelope;
mod errors;
mod keys;
mod lifecycle;
mod mac;
mod rotate;
mod secrets;
mod sign;
mod wrap;

/// The case groups, in the order the kit lists them. Every case name starts with one
/// (`encrypt::…`); the [`conformance_tests!`](crate::conformance_tests) macro makes one
/// test per group.
pub const GROUPS: &[&str] = &[
    "capabilities",
    "keys",
    "encrypt",
    "sign",
    "wrap",
    "mac",
    "envelope",
    "rotate",
    "lifecycle",
    "errors",
    "concurrency",
    "secrets",
];

/// Every case for a provider with these capabilities.
///
/// Positive cases are generated for every (spec, algorithm) pair of the vocabulary that
/// fits together, declared or not: the undeclared ones report as ignored with the reason
/// ([`Case::skip_reason`]). Negative cases that only make sense for what a provider does
/// *not* declare (an undeclared algorithm must fail with `Unsupported`) are generated only
/// for those gaps.
pub fn cases(caps: &Capabilities) -> Vec<Case> {
    let mut out = Vec::new();
    capabilities::add(&mut out, caps);
    keys::add(&mut out, caps);
    encrypt::add(&mut out, caps);
    sign::add(&mut out, caps);
    wrap::add(&mut out, caps);
    mac::add(&mut out, caps);
    envelope::add(&mut out, caps);
    rotate::add(&mut out, caps);
    lifecycle::add(&mut out, caps);
    errors::add(&mut out, caps);
    concurrency::add(&mut out, caps);
    secrets::add(&mut out, caps);
    out
}

/// Every (spec, algorithm) of the vocabulary that fits together.
pub(crate) fn encryption_pairs() -> impl Iterator<Item = (KeySpec, EncryptionAlgorithm)> {
    KeySpec::ALL
        .iter()
        .flat_map(|s| EncryptionAlgorithm::ALL.iter().map(move |a| (*s, *a)))
        .filter(|(s, a)| a.fits(*s))
}

pub(crate) fn signature_pairs() -> impl Iterator<Item = (KeySpec, SignatureAlgorithm)> {
    KeySpec::ALL
        .iter()
        .flat_map(|s| SignatureAlgorithm::ALL.iter().map(move |a| (*s, *a)))
        .filter(|(s, a)| a.fits(*s))
}

pub(crate) fn wrap_pairs() -> impl Iterator<Item = (KeySpec, WrapAlgorithm)> {
    KeySpec::ALL
        .iter()
        .flat_map(|s| WrapAlgorithm::ALL.iter().map(move |a| (*s, *a)))
        .filter(|(s, a)| a.fits(*s))
}

pub(crate) fn mac_pairs() -> impl Iterator<Item = (KeySpec, MacAlgorithm)> {
    KeySpec::ALL
        .iter()
        .flat_map(|s| MacAlgorithm::ALL.iter().map(move |a| (*s, *a)))
        .filter(|(s, a)| a.fits(*s))
}

/// Every (spec, usage) a key can meaningfully have.
pub(crate) fn key_pairs() -> impl Iterator<Item = (KeySpec, KeyUsage)> {
    KeySpec::ALL
        .iter()
        .flat_map(|s| KeyUsage::ALL.iter().map(move |u| (*s, *u)))
        .filter(|(s, u)| s.allows_usage(*u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn everything() -> Capabilities {
        let mut caps = Capabilities::new().with_deletion(hsm_core::DeletionPolicy::new(
            std::time::Duration::ZERO,
            std::time::Duration::from_secs(86_400),
            std::time::Duration::from_secs(3600),
            true,
        ));
        for (spec, usage) in key_pairs() {
            let c = caps.specs.entry(spec).or_default();
            c.usages.push(usage);
            c.rotation = true;
            c.sign_digest = spec.family() != hsm_core::KeyFamily::Ed25519;
        }
        for (s, a) in encryption_pairs() {
            caps.specs.entry(s).or_default().encryption.push(a);
        }
        for (s, a) in signature_pairs() {
            caps.specs.entry(s).or_default().signature.push(a);
        }
        for (s, a) in wrap_pairs() {
            caps.specs.entry(s).or_default().wrap.push(a);
        }
        for (s, a) in mac_pairs() {
            caps.specs.entry(s).or_default().mac.push(a);
        }
        caps
    }

    #[test]
    fn names_are_unique_and_every_case_belongs_to_a_group() {
        for caps in [Capabilities::new(), everything()] {
            let all = cases(&caps);
            let names: BTreeSet<&str> = all.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names.len(), all.len(), "duplicate case names");
            for c in &all {
                assert!(GROUPS.contains(&c.group()), "{} is in no group", c.name);
            }
        }
    }

    #[test]
    fn a_provider_declaring_everything_skips_nothing() {
        let caps = everything();
        let skipped: Vec<String> = cases(&caps)
            .iter()
            .filter_map(|c| c.skip_reason(&caps).map(|r| format!("{}: {r}", c.name)))
            .collect();
        assert!(skipped.is_empty(), "{skipped:#?}");
    }

    #[test]
    fn undeclared_cases_are_listed_as_skipped_with_the_reason() {
        let caps = Capabilities::new().with_spec(
            KeySpec::EcP384,
            hsm_core::SpecCapabilities::new().with_usages([KeyUsage::SignVerify]),
        );
        let all = cases(&caps);
        let case = all.iter().find(|c| c.name == "sign::roundtrip::ec-p384::ecdsa-sha384").unwrap();
        assert_eq!(case.skip_reason(&caps).unwrap(), "capabilities do not declare ecdsa-sha384 on ec-p384");
        let case = all.iter().find(|c| c.name == "rotate::sign::ec-p384").unwrap();
        assert_eq!(case.skip_reason(&caps).unwrap(), "capabilities declare no rotation for ec-p384");
        let case = all.iter().find(|c| c.name == "encrypt::roundtrip::rsa-2048::rsa-oaep-sha256").unwrap();
        assert_eq!(case.skip_reason(&caps).unwrap(), "capabilities do not declare rsa-2048");
        // The gap itself is checked: creating an undeclared key must be Unsupported.
        assert!(all.iter().any(|c| c.name == "errors::undeclared-key::rsa-2048::encrypt"));
        assert!(all.iter().any(|c| c.name == "errors::undeclared::ec-p384::ecdsa-sha384"));
    }
}
