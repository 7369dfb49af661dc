//! The DER and JWK helpers that read what a provider or a peer hands back: SPKI parsing for
//! JWK and OpenSSH export (hsm-signers), public-key import for local verification
//! (hsm-crypto, used by hsm-aws and hsm-gcp), Key Vault's JWK → SPKI and ECDSA raw ↔ DER
//! conversions (hsm-azure), and compact JWS verification (hsm-signers `jose`).
//!
//! First byte: which helper. Invariants: refusals are typed (`None` or `InvalidInput` /
//! `Unsupported`); an SPKI that becomes a JWK survives JWK → SPKI (hsm-azure) → JWK unchanged;
//! a Key Vault JWK that becomes an SPKI reads back with the same numbers; ECDSA raw ↔ DER
//! round-trips; a fuzzed JWS never verifies and never errors.
#![no_main]

use std::sync::{Arc, OnceLock};

use hsm_azure::azure_security_keyvault_keys::models::JsonWebKey;
use hsm_azure::fuzzing::{spec_of, spki_der};
use hsm_azure::{ecdsa_der_to_raw, ecdsa_raw_to_der};
use hsm_core::{
    CreateKey, Error, KeyFamily, KeyRef, KeySpec, KeyUsage, Provider, PublicKey, SignatureAlgorithm,
};
use hsm_signers::{jose, ssh};
use libfuzzer_sys::fuzz_target;

const COORDINATES: [usize; 3] = [32, 48, 66];

fn strip_zeros(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

/// An SPKI claimed to be of `spec`.
fn spki(spec: KeySpec, der: &[u8]) {
    let pk = PublicKey::new("k", "1", spec, der.to_vec());
    match jose::jwk(&pk, None) {
        Ok(jwk) => {
            let via_azure: JsonWebKey =
                serde_json::from_value(jwk.clone()).expect("Key Vault's JWK type reads our JWK");
            if spec != KeySpec::EcSecp256k1 && spec.family() != KeyFamily::Ed25519 {
                // JWK (ours) → SPKI (Key Vault mapping) → JWK (ours): nothing lost.
                let again = spki_der(&via_azure, spec).expect("a JWK we wrote converts to an SPKI");
                let jwk2 = jose::jwk(&PublicKey::new("k", "1", spec, again), None).expect("that SPKI parses");
                if spec.family() == KeyFamily::Ec {
                    assert_eq!(jwk2, jwk);
                } else {
                    let back: JsonWebKey = serde_json::from_value(jwk2).unwrap();
                    assert_eq!(
                        strip_zeros(back.n.as_deref().unwrap()),
                        strip_zeros(via_azure.n.as_deref().unwrap())
                    );
                    assert_eq!(
                        strip_zeros(back.e.as_deref().unwrap()),
                        strip_zeros(via_azure.e.as_deref().unwrap())
                    );
                }
            }
        }
        Err(e) => assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
    }
    match ssh::openssh_public_key(&pk, Some("fuzz")) {
        Ok(line) => assert!(line.ends_with(" fuzz")),
        Err(e) => assert!(matches!(e, Error::InvalidInput { .. } | Error::Unsupported { .. }), "{e:?}"),
    }
    for &alg in SignatureAlgorithm::ALL {
        if let Ok(key) = hsm_crypto::verifier(spec, alg, der) {
            assert!(!hsm_crypto::verify_with(&key, alg, hsm_core::SignInput::Message(b"m"), der));
        }
    }
}

/// A Key Vault JWK (a `GET /keys/{name}` answer's `key`).
fn azure_jwk(json: &[u8]) {
    let Ok(jwk) = serde_json::from_slice::<JsonWebKey>(json) else { return };
    let Some(spec) = spec_of(&jwk, None) else { return };
    let Some(der) = spki_der(&jwk, spec) else { return };
    if spec.family() != KeyFamily::Rsa && spec.family() != KeyFamily::Ec {
        return;
    }
    let out = jose::jwk(&PublicKey::new("k", "1", spec, der), None).expect("the SPKI made from a JWK parses");
    let out: JsonWebKey = serde_json::from_value(out).unwrap();
    match spec.family() {
        KeyFamily::Rsa => {
            assert_eq!(strip_zeros(out.n.as_deref().unwrap()), strip_zeros(jwk.n.as_deref().unwrap()));
            assert_eq!(strip_zeros(out.e.as_deref().unwrap()), strip_zeros(jwk.e.as_deref().unwrap()));
        }
        _ => {
            assert_eq!(strip_zeros(out.x.as_deref().unwrap()), strip_zeros(jwk.x.as_deref().unwrap()));
            assert_eq!(strip_zeros(out.y.as_deref().unwrap()), strip_zeros(jwk.y.as_deref().unwrap()));
        }
    }
}

fn ecdsa_der(n: usize, der: &[u8]) {
    if let Some(raw) = ecdsa_der_to_raw(der, n) {
        assert_eq!(raw.len(), 2 * n);
        let der2 = ecdsa_raw_to_der(&raw).expect("raw of even length converts");
        assert_eq!(ecdsa_der_to_raw(&der2, n).as_deref(), Some(&raw[..]));
    }
}

fn ecdsa_raw(raw: &[u8]) {
    if raw.len() > 2 * 1024 {
        return;
    }
    match ecdsa_raw_to_der(raw) {
        Some(der) => assert_eq!(ecdsa_der_to_raw(&der, raw.len() / 2).as_deref(), Some(raw)),
        None => assert!(raw.is_empty() || raw.len() % 2 == 1),
    }
}

struct Jws {
    runtime: tokio::runtime::Runtime,
    provider: Arc<dyn Provider>,
}

/// A local provider holding one signing key of each family, made once.
fn jws() -> &'static Jws {
    static JWS: OnceLock<Jws> = OnceLock::new();
    JWS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let provider: Arc<dyn Provider> = Arc::new(hsm_local::LocalProvider::in_memory());
        for (name, spec) in [("ec", KeySpec::EcP256), ("ed", KeySpec::Ed25519), ("rsasig", KeySpec::Rsa2048)]
        {
            runtime
                .block_on(provider.create_key(CreateKey::new(name, spec).usage(KeyUsage::SignVerify)))
                .unwrap();
        }
        Jws { runtime, provider }
    })
}

fn jws_compact(which: u8, token: &[u8]) {
    let Ok(token) = std::str::from_utf8(token) else { return };
    let j = jws();
    let key = KeyRef::new(["ec", "ed", "rsasig"][usize::from(which) % 3]);
    let verdict = j.runtime.block_on(jose::verify_compact(&*j.provider, &key, token));
    match verdict {
        Ok(v) => assert!(!v.is_valid(), "a fuzzed token verified: {v:?}"),
        Err(e) => panic!("a malformed token is an Err, not Invalid: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, sel, rest @ ..] = data else { return };
    match mode % 5 {
        0 => spki(KeySpec::ALL[usize::from(*sel) % KeySpec::ALL.len()], rest),
        1 => azure_jwk(rest),
        2 => ecdsa_der(COORDINATES[usize::from(*sel) % 3], rest),
        3 => ecdsa_raw(rest),
        _ => jws_compact(*sel, rest),
    }
});
