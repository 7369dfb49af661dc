//! [`KeySigner`]: one provider key, its metadata and public key fetched once, signing with
//! one algorithm chosen from the key's spec.

use std::fmt;
use std::sync::Arc;

use hsm_core::{
    Error, KeyFamily, KeyRef, KeySpec, KeyState, KeyUsage, Provider, PublicKey, Result, SignInput,
    SignatureAlgorithm, UnusableReason,
};

use crate::der;

/// secp256k1's group order `n`, big-endian.
const SECP256K1_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba,
    0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// A signing key held by a provider, ready to sign with one algorithm.
///
/// [`KeySigner::new`] looks the key up and fetches its public key once; the signer is then
/// pinned to that key version, so every signature verifies under
/// [`public_key`](KeySigner::public_key) even after the key is rotated (make a new signer
/// to use the new version). Cloning is cheap (the provider is shared).
///
/// The algorithm follows the key spec: ECDSA with the curve's hash (P-256 and secp256k1 with
/// SHA-256, P-384 with SHA-384, P-521 with SHA-512), Ed25519, and for RSA the provider's
/// default for the spec when it supports it (RSASSA-PSS with SHA-256), else the one RSA
/// algorithm it declares (a Cloud KMS key has exactly one). Choose RSA PKCS#1 v1.5 or another
/// PSS hash explicitly with [`KeySigner::with_algorithm`].
///
/// secp256k1 signatures are normalised to low-S (BIP 62, as Ethereum and Bitcoin require).
///
/// ```no_run
/// # async fn demo() -> hsm_core::Result<()> {
/// use std::sync::Arc;
/// use hsm_core::{CreateKey, KeySpec, Provider};
/// use hsm_signers::KeySigner;
///
/// let provider: Arc<dyn Provider> = Arc::new(hsm_local::LocalProvider::in_memory());
/// provider.create_key(CreateKey::new("signing", KeySpec::EcP256)).await?;
/// let signer = KeySigner::new(provider, "signing").await?;
/// let sig = signer.sign(b"hello").await?;
/// assert_eq!(signer.algorithm(), hsm_core::SignatureAlgorithm::EcdsaSha256);
/// # let _ = sig;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KeySigner {
    provider: Arc<dyn Provider>,
    key: KeyRef,
    algorithm: SignatureAlgorithm,
    public_key: PublicKey,
}

impl fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySigner")
            .field("provider", &self.provider.name())
            .field("key", &self.key)
            .field("spec", &self.public_key.spec)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl KeySigner {
    /// A signer for `key` (the current version, unless `key` pins one) with the algorithm its
    /// spec implies (see the type docs).
    ///
    /// # Errors
    /// - `NotFound` when the key does not exist;
    /// - `KeyUnusable` when it cannot sign: its usage is not `sign` (an encryption or
    ///   wrapping key, a MAC key) or it is disabled or pending deletion;
    /// - `Unsupported` when the provider declares no signature algorithm for the key's spec;
    /// - transport errors from the two provider calls.
    pub async fn new(provider: Arc<dyn Provider>, key: impl Into<KeyRef>) -> Result<Self> {
        Self::build(provider, key.into(), None).await
    }

    /// A signer for `key` that signs with `algorithm`, e.g. `RsaPkcs1v15Sha256` for an RSA key.
    ///
    /// # Errors
    /// As [`KeySigner::new`], and `InvalidInput` when `algorithm` does not fit the key's spec
    /// (ECDSA's hash is bound to the curve) or `Unsupported` when the provider does not
    /// declare it for the spec.
    pub async fn with_algorithm(
        provider: Arc<dyn Provider>,
        key: impl Into<KeyRef>,
        algorithm: SignatureAlgorithm,
    ) -> Result<Self> {
        Self::build(provider, key.into(), Some(algorithm)).await
    }

    async fn build(
        provider: Arc<dyn Provider>,
        key: KeyRef,
        wanted: Option<SignatureAlgorithm>,
    ) -> Result<Self> {
        let name = provider.name();
        let info = provider.get_key(&key).await?;
        if info.usage != KeyUsage::SignVerify {
            return Err(Error::KeyUnusable {
                provider: name,
                key: key.to_string(),
                reason: UnusableReason::WrongUsage { has: info.usage, needs: KeyUsage::SignVerify },
            });
        }
        match info.state {
            KeyState::Enabled => {}
            KeyState::Disabled => {
                return Err(Error::KeyUnusable {
                    provider: name,
                    key: key.to_string(),
                    reason: UnusableReason::Disabled,
                });
            }
            _ => {
                return Err(Error::KeyUnusable {
                    provider: name,
                    key: key.to_string(),
                    reason: UnusableReason::PendingDeletion,
                });
            }
        }
        let algorithm = choose_algorithm(provider.as_ref(), &key, info.spec, wanted)?;
        let version = key.version().map_or_else(|| info.version.clone(), str::to_owned);
        let key = KeyRef::new(info.name.clone()).with_version(version);
        let public_key = provider.public_key(&key).await?;
        if public_key.spec != info.spec {
            return Err(Error::invalid_input(
                name,
                format!(
                    "key '{key}' is {} but its public key is {}; the provider's metadata is inconsistent",
                    info.spec, public_key.spec
                ),
            ));
        }
        Ok(KeySigner { provider, key, algorithm, public_key })
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The key, pinned to the version this signer signs with.
    pub fn key_ref(&self) -> &KeyRef {
        &self.key
    }

    /// The key's spec.
    pub fn spec(&self) -> KeySpec {
        self.public_key.spec
    }

    /// The algorithm every signature is made with.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The public key (SPKI DER), fetched once when the signer was made.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The same key with another algorithm (no provider call).
    ///
    /// # Errors
    /// `InvalidInput` when `algorithm` does not fit the key's spec, `Unsupported` when the
    /// provider does not declare it.
    pub fn to_algorithm(&self, algorithm: SignatureAlgorithm) -> Result<Self> {
        let algorithm = choose_algorithm(self.provider.as_ref(), &self.key, self.spec(), Some(algorithm))?;
        Ok(KeySigner { algorithm, ..self.clone() })
    }

    /// Signs `message` (the provider hashes it as the algorithm requires). The signature is
    /// in the provider's form: DER for ECDSA (low-S for secp256k1), raw for RSA and Ed25519.
    ///
    /// # Errors
    /// The provider's sign errors: `KeyUnusable` when the key was disabled since, transport
    /// errors, and `Provider` for an ECDSA signature that is not well-formed DER.
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self.provider.sign(&self.key, self.algorithm, SignInput::Message(message)).await?;
        self.normalise(sig.as_bytes())
    }

    /// Signs a digest computed with the algorithm's hash
    /// ([`SignatureAlgorithm::digest`]); not for Ed25519.
    ///
    /// # Errors
    /// As [`KeySigner::sign`], and `InvalidInput` for a digest of the wrong length or an
    /// Ed25519 key.
    pub async fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        let sig = self.provider.sign(&self.key, self.algorithm, SignInput::Digest(digest)).await?;
        self.normalise(sig.as_bytes())
    }

    /// Signs `message` and returns ECDSA signatures as fixed-size `r ‖ s` (each the curve's
    /// field size, as JOSE and PKCS#11 use); other algorithms' signatures are unchanged.
    ///
    /// # Errors
    /// As [`KeySigner::sign`].
    pub async fn sign_fixed(&self, message: &[u8]) -> Result<Vec<u8>> {
        let der = self.sign(message).await?;
        self.to_fixed(&der)
    }

    /// `r ‖ s` from a DER ECDSA signature of this key (other algorithms unchanged).
    pub(crate) fn to_fixed(&self, sig: &[u8]) -> Result<Vec<u8>> {
        let Some(size) = ec_field_len(self.spec()) else { return Ok(sig.to_vec()) };
        let (r, s) = der::ecdsa_parts(sig).ok_or_else(|| self.malformed())?;
        let mut out = der::pad(r, size).ok_or_else(|| self.malformed())?;
        out.extend_from_slice(&der::pad(s, size).ok_or_else(|| self.malformed())?);
        Ok(out)
    }

    /// Checks an ECDSA signature's DER and normalises secp256k1 to low-S.
    fn normalise(&self, sig: &[u8]) -> Result<Vec<u8>> {
        if self.spec().family() != KeyFamily::Ec {
            return Ok(sig.to_vec());
        }
        let (r, s) = der::ecdsa_parts(sig).ok_or_else(|| self.malformed())?;
        if self.spec() == KeySpec::EcSecp256k1 {
            let s32 = der::pad(s, 32).ok_or_else(|| self.malformed())?;
            if is_high_s(&s32) {
                let low = sub_be(&SECP256K1_N, &s32);
                return Ok(der::ecdsa_der(r, &low));
            }
        }
        Ok(sig.to_vec())
    }

    fn malformed(&self) -> Error {
        Error::Provider {
            provider: self.provider.name(),
            code: "MalformedSignature".into(),
            message: format!(
                "the {} signature returned for key '{}' is not well-formed DER",
                self.algorithm, self.key
            ),
            source: None,
        }
    }
}

/// The field size in bytes of an ECDSA curve (`r` and `s` in a fixed signature).
pub(crate) fn ec_field_len(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::EcP256 | KeySpec::EcSecp256k1 => Some(32),
        KeySpec::EcP384 => Some(48),
        KeySpec::EcP521 => Some(66),
        _ => None,
    }
}

fn choose_algorithm(
    provider: &dyn Provider,
    key: &KeyRef,
    spec: KeySpec,
    wanted: Option<SignatureAlgorithm>,
) -> Result<SignatureAlgorithm> {
    let name = provider.name();
    let declared = provider.capabilities().spec(spec).map(|c| c.signature.clone()).unwrap_or_default();
    if let Some(alg) = wanted {
        if !alg.fits(spec) {
            return Err(Error::invalid_input(
                name,
                format!("{alg} cannot sign with key '{key}', which is {spec}; use {}", list(spec, &declared)),
            ));
        }
        if !declared.contains(&alg) {
            return Err(Error::unsupported(
                name,
                format!("sign with {alg} on {spec}"),
                format!("this provider signs {spec} keys with {}", list(spec, &declared)),
            ));
        }
        return Ok(alg);
    }
    if let Some(default) = spec.default_signature_algorithm().filter(|a| declared.contains(a)) {
        return Ok(default);
    }
    declared.iter().copied().find(|a| a.fits(spec)).ok_or_else(|| {
        Error::unsupported(
            name,
            format!("sign with {spec} key '{key}'"),
            "the provider declares no signature algorithm for this spec",
        )
    })
}

fn list(spec: KeySpec, declared: &[SignatureAlgorithm]) -> String {
    let fitting: Vec<String> = declared.iter().filter(|a| a.fits(spec)).map(ToString::to_string).collect();
    if fitting.is_empty() {
        "no algorithm (none is declared for this spec)".into()
    } else {
        fitting.join(" or ")
    }
}

fn is_high_s(s: &[u8]) -> bool {
    // s > n/2  ⟺  2s > n; compare s with n >> 1.
    let mut half = [0u8; 32];
    let mut carry = 0u8;
    for (i, b) in SECP256K1_N.iter().enumerate() {
        half[i] = (b >> 1) | carry;
        carry = (b & 1) << 7;
    }
    s > &half[..]
}

/// `a - b` for equal-length big-endian numbers with `a >= b`.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_s_is_folded_to_n_minus_s() {
        let mut high = SECP256K1_N;
        high[31] -= 1; // n - 1: the highest s
        assert!(is_high_s(&high));
        assert_eq!(sub_be(&SECP256K1_N, &high), {
            let mut one = vec![0u8; 32];
            one[31] = 1;
            one
        });
        let mut low = [0u8; 32];
        low[0] = 0x7f;
        assert!(!is_high_s(&low));
    }
}
