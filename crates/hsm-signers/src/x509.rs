//! X.509 with provider keys, on rcgen: self-signed certificates (a CA whose key stays in the
//! KMS or HSM), certificate signing requests, and certificates issued from a CSR by such a CA.
//!
//! rcgen's `SigningKey` is synchronous. [`CertificateSigner`] implements it by waiting for the
//! provider with [`crate::blocking::block_on`]; the async functions here ([`self_signed`],
//! [`csr`], [`issue`]) run rcgen on tokio's blocking pool, so they never stall a runtime
//! worker. Use [`CertificateSigner`] with rcgen directly for anything these do not cover.
//!
//! Key types: ECDSA P-256, P-384 and P-521, Ed25519, and RSA with PKCS#1 v1.5 signatures
//! (create the [`KeySigner`] with `with_algorithm(RsaPkcs1v15Sha256)`). rcgen 0.14 has no
//! RSA-PSS signature algorithm and X.509 no secp256k1 profile: those keys are refused with
//! `Unsupported` naming why.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_core::{Error, KeyFamily, KeySpec, PublicKey, Result, SignatureAlgorithm};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SigningKey,
};
use tokio::runtime::Handle;

use crate::KeySigner;
use crate::blocking::{block_on, on_blocking_pool};

/// A provider key as an rcgen `SigningKey` + `PublicKeyData`.
///
/// `sign` waits for the provider (see [`crate::blocking`]): call it from a plain thread, from
/// `spawn_blocking`, or from a multi-thread runtime — never a current-thread runtime.
#[derive(Debug, Clone)]
pub struct CertificateSigner {
    signer: KeySigner,
    handle: Handle,
    key_bits: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
    /// The provider's error behind the last `rcgen::Error::RemoteKeyError` (rcgen's error
    /// has no source slot).
    failure: Arc<Mutex<Option<Error>>>,
}

impl CertificateSigner {
    /// Wraps `signer`; provider calls run on `handle`'s runtime.
    ///
    /// # Errors
    /// `Unsupported` for keys rcgen cannot put in a certificate (RSA-PSS, secp256k1),
    /// `InvalidInput` for a malformed public key.
    pub fn new(signer: KeySigner, handle: Handle) -> Result<Self> {
        use SignatureAlgorithm as S;
        let name = signer.provider().name();
        let algorithm = match (signer.spec(), signer.algorithm()) {
            (KeySpec::EcP256, S::EcdsaSha256) => &rcgen::PKCS_ECDSA_P256_SHA256,
            (KeySpec::EcP384, S::EcdsaSha384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            (KeySpec::EcP521, S::EcdsaSha512) => &rcgen::PKCS_ECDSA_P521_SHA512,
            (KeySpec::Ed25519, S::Ed25519) => &rcgen::PKCS_ED25519,
            (_, S::RsaPkcs1v15Sha256) => &rcgen::PKCS_RSA_SHA256,
            (_, S::RsaPkcs1v15Sha384) => &rcgen::PKCS_RSA_SHA384,
            (_, S::RsaPkcs1v15Sha512) => &rcgen::PKCS_RSA_SHA512,
            (spec, alg) => {
                let why = if spec == KeySpec::EcSecp256k1 {
                    "X.509 (RFC 5480) and rcgen have no secp256k1 profile; use a P-256 key".to_owned()
                } else {
                    format!(
                        "rcgen 0.14 cannot sign certificates with {alg}; use an RSA key that signs with \
                         rsa-pkcs1-sha256 (KeySigner::with_algorithm) or an ECDSA or Ed25519 key"
                    )
                };
                return Err(Error::unsupported(name, format!("X.509 with {spec} and {alg}"), why));
            }
        };
        let key_bits = crate::der::spki(&signer.public_key().spki_der)
            .ok_or_else(|| {
                Error::invalid_input(
                    name,
                    format!("the public key of '{}' is not a well-formed SPKI", signer.key_ref()),
                )
            })?
            .key
            .to_vec();
        Ok(CertificateSigner { signer, handle, key_bits, algorithm, failure: Arc::default() })
    }

    /// The async signer inside.
    pub fn inner(&self) -> &KeySigner {
        &self.signer
    }

    /// The provider's error behind the last `rcgen::Error::RemoteKeyError` this signer
    /// returned, taken (rcgen's error type cannot carry it).
    pub fn take_error(&self) -> Option<Error> {
        self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl PublicKeyData for CertificateSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }

    fn subject_public_key_info(&self) -> Vec<u8> {
        self.signer.public_key().spki_der.to_vec()
    }
}

impl SigningKey for CertificateSigner {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        block_on(&self.handle, self.signer.provider().name(), self.signer.sign(msg)).map_err(|e| {
            *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// What goes into a certificate or CSR besides the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertOptions {
    /// The subject, e.g. `CN=example.com,O=Example,C=DE` (see [`parse_dn`]).
    pub subject: String,
    /// Subject alternative names: `DNS:host`, `IP:addr` (or a bare name, taken as DNS).
    pub sans: Vec<String>,
    /// Validity from now (certificates only).
    pub validity: Duration,
    /// A CA certificate (basic constraints CA, key usage certSign and cRLSign).
    pub ca: bool,
}

impl CertOptions {
    /// A subject with no SANs, valid for 365 days, not a CA.
    pub fn new(subject: impl Into<String>) -> Self {
        CertOptions {
            subject: subject.into(),
            sans: Vec::new(),
            validity: Duration::from_secs(365 * 86_400),
            ca: false,
        }
    }

    /// Adds a SAN (`DNS:host` or `IP:addr`).
    #[must_use]
    pub fn san(mut self, san: impl Into<String>) -> Self {
        self.sans.push(san.into());
        self
    }

    /// Sets the validity.
    #[must_use]
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// Makes a CA certificate.
    #[must_use]
    pub fn ca(mut self, ca: bool) -> Self {
        self.ca = ca;
        self
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::invalid_input("hsm", message)
}

/// Parses a distinguished name written `CN=name,O=org,OU=unit,C=DE,ST=state,L=city`
/// (also with `/` separators as in `/CN=name/O=org`). Values cannot contain the separator.
///
/// # Errors
/// `InvalidInput` naming the attribute that is not understood.
pub fn parse_dn(dn: &str) -> Result<DistinguishedName> {
    let dn = dn.trim();
    let parts: Vec<&str> = if let Some(rest) = dn.strip_prefix('/') {
        rest.split('/').collect()
    } else {
        dn.split(',').collect()
    };
    let mut out = DistinguishedName::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(bad(format!("'{part}' in the subject is not ATTRIBUTE=value (e.g. CN=example.com)")));
        };
        let ty = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            other => {
                return Err(bad(format!(
                    "subject attribute '{other}' is not supported; use CN, O, OU, C, ST or L"
                )));
            }
        };
        out.push(ty, v.trim());
    }
    if out.iter().next().is_none() {
        return Err(bad("the subject is empty; give at least CN=name"));
    }
    Ok(out)
}

fn parse_san(san: &str) -> Result<SanType> {
    let (kind, value) = san.split_once(':').unwrap_or(("DNS", san));
    match kind.to_ascii_uppercase().as_str() {
        "DNS" => value
            .try_into()
            .map(SanType::DnsName)
            .map_err(|_| bad(format!("SAN 'DNS:{value}' is not an ASCII host name"))),
        "IP" => value
            .parse::<IpAddr>()
            .map(SanType::IpAddress)
            .map_err(|_| bad(format!("SAN 'IP:{value}' is not an IP address"))),
        other => Err(bad(format!("SAN kind '{other}' is not supported; use DNS:host or IP:address"))),
    }
}

fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::config("hsm", "the system random generator failed"))?;
    b[0] &= 0x7f; // positive
    Ok(SerialNumber::from_slice(&b))
}

fn params(opts: &CertOptions) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = parse_dn(&opts.subject)?;
    p.subject_alt_names = opts.sans.iter().map(|s| parse_san(s)).collect::<Result<_>>()?;
    apply_profile(&mut p, opts)?;
    Ok(p)
}

fn apply_profile(p: &mut CertificateParams, opts: &CertOptions) -> Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let secs = i64::try_from(opts.validity.as_secs()).map_err(|_| bad("the validity is too long"))?;
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now
        .checked_add(time::Duration::seconds(secs))
        .ok_or_else(|| bad("the validity reaches past year 9999"))?;
    p.serial_number = Some(random_serial()?);
    p.use_authority_key_identifier_extension = true;
    if opts.ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if p.extended_key_usages.is_empty() {
            p.extended_key_usages =
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    Ok(())
}

fn rcgen_error(key: &CertificateSigner, what: &str, e: rcgen::Error) -> Error {
    match (e, key.take_error()) {
        (rcgen::Error::RemoteKeyError, Some(provider_error)) => provider_error,
        (e, _) => bad(format!("{what}: {e}")),
    }
}

/// A self-signed certificate (PEM) for `signer`'s key: a root CA with `opts.ca`.
///
/// # Errors
/// `InvalidInput` for a bad subject or SAN, `Unsupported` for a key rcgen cannot use, the
/// provider's sign errors.
///
/// ```no_run
/// # async fn demo(signer: hsm_signers::KeySigner) -> hsm_core::Result<()> {
/// use hsm_signers::x509::{CertOptions, self_signed};
/// let pem = self_signed(&signer, &CertOptions::new("CN=Example Root CA,O=Example").ca(true)).await?;
/// # let _ = pem;
/// # Ok(())
/// # }
/// ```
pub async fn self_signed(signer: &KeySigner, opts: &CertOptions) -> Result<String> {
    let key = CertificateSigner::new(signer.clone(), Handle::current())?;
    let params = params(opts)?;
    on_blocking_pool(move || {
        params.self_signed(&key).map(|c| c.pem()).map_err(|e| rcgen_error(&key, "self-signed certificate", e))
    })
    .await
}

/// A PKCS#10 certificate signing request (PEM) for `signer`'s key (`opts.validity` and
/// `opts.ca` are the issuer's choice and not part of the request).
///
/// # Errors
/// As [`self_signed`].
pub async fn csr(signer: &KeySigner, opts: &CertOptions) -> Result<String> {
    let key = CertificateSigner::new(signer.clone(), Handle::current())?;
    let mut params = CertificateParams::default();
    params.distinguished_name = parse_dn(&opts.subject)?;
    params.subject_alt_names = opts.sans.iter().map(|s| parse_san(s)).collect::<Result<_>>()?;
    on_blocking_pool(move || {
        let req = params.serialize_request(&key).map_err(|e| rcgen_error(&key, "certificate request", e))?;
        req.pem().map_err(|e| rcgen_error(&key, "certificate request", e))
    })
    .await
}

/// A certificate (PEM) for the key and names in `csr_pem`, issued by `issuer` (whose
/// certificate is `issuer_cert_pem`) with `opts.validity` and `opts.ca`. The request's
/// signature is checked first; `opts.subject` and `opts.sans` are ignored (the request's
/// are used).
///
/// # Errors
/// `InvalidInput` for a request or issuer certificate that does not parse or a request
/// whose signature does not verify; otherwise as [`self_signed`].
pub async fn issue(
    issuer: &KeySigner,
    issuer_cert_pem: &str,
    csr_pem: &str,
    opts: &CertOptions,
) -> Result<String> {
    let key = CertificateSigner::new(issuer.clone(), Handle::current())?;
    let mut req = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => {
            bad("the certificate request's signature does not verify")
        }
        e => bad(format!("the certificate request does not parse: {e}")),
    })?;
    apply_profile(&mut req.params, opts)?;
    let issuer_pem = issuer_cert_pem.to_owned();
    on_blocking_pool(move || {
        let issuer = Issuer::from_ca_cert_pem(&issuer_pem, key.clone())
            .map_err(|e| bad(format!("the issuer certificate does not parse: {e}")))?;
        req.signed_by(&issuer).map(|c| c.pem()).map_err(|e| rcgen_error(&key, "issued certificate", e))
    })
    .await
}

/// A subject public key for [`certify`]: any provider key rcgen can name.
struct SubjectKey {
    spki: Vec<u8>,
    bits: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }

    fn subject_public_key_info(&self) -> Vec<u8> {
        self.spki.clone()
    }
}

/// A certificate (PEM) for any provider public key, issued by `issuer` (whose certificate is
/// `issuer_cert_pem`) with `opts`, without a CSR: for keys that cannot sign a request rcgen
/// can read (an RSA-PSS-only key, e.g. on Cloud KMS) or when the issuer already knows the key.
///
/// # Errors
/// `Unsupported` for a secp256k1 subject key or an issuer rcgen cannot use; `InvalidInput`
/// for a bad subject, SAN or issuer certificate; the issuer's sign errors.
pub async fn certify(
    issuer: &KeySigner,
    issuer_cert_pem: &str,
    subject: &PublicKey,
    opts: &CertOptions,
) -> Result<String> {
    let key = CertificateSigner::new(issuer.clone(), Handle::current())?;
    let algorithm = match subject.spec {
        KeySpec::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeySpec::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeySpec::EcP521 => &rcgen::PKCS_ECDSA_P521_SHA512,
        KeySpec::Ed25519 => &rcgen::PKCS_ED25519,
        s if s.family() == KeyFamily::Rsa => &rcgen::PKCS_RSA_SHA256,
        s => {
            return Err(Error::unsupported(
                "hsm",
                format!("a certificate for a {s} key"),
                "X.509 has no profile for it",
            ));
        }
    };
    let bits = crate::der::spki(&subject.spki_der)
        .ok_or_else(|| bad(format!("the public key of '{}' is not a well-formed SPKI", subject.key)))?
        .key
        .to_vec();
    let subject_key = SubjectKey { spki: subject.spki_der.to_vec(), bits, algorithm };
    let params = params(opts)?;
    let issuer_pem = issuer_cert_pem.to_owned();
    on_blocking_pool(move || {
        let issuer = Issuer::from_ca_cert_pem(&issuer_pem, key.clone())
            .map_err(|e| bad(format!("the issuer certificate does not parse: {e}")))?;
        params
            .signed_by(&subject_key, &issuer)
            .map(|c| c.pem())
            .map_err(|e| rcgen_error(&key, "certificate", e))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_in_both_forms_and_name_what_is_wrong() {
        let a = parse_dn("CN=example.com, O=Example, C=DE").unwrap();
        let b = parse_dn("/CN=example.com/O=Example/C=DE").unwrap();
        assert_eq!(a, b);
        assert!(parse_dn("XX=1").unwrap_err().to_string().contains("'XX'"));
        assert!(parse_dn("").is_err());
        assert!(parse_dn("CN").unwrap_err().to_string().contains("ATTRIBUTE=value"));
    }

    #[test]
    fn sans_are_dns_or_ip() {
        assert!(matches!(parse_san("DNS:a.example").unwrap(), SanType::DnsName(_)));
        assert!(matches!(parse_san("IP:127.0.0.1").unwrap(), SanType::IpAddress(_)));
        assert!(matches!(parse_san("b.example").unwrap(), SanType::DnsName(_)));
        assert!(parse_san("IP:nope").is_err());
        assert!(parse_san("URI:x").unwrap_err().to_string().contains("URI"));
    }
}
