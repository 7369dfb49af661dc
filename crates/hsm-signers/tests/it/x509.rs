//! X.509 with provider keys: a CA whose key is in the provider, a CSR made by another
//! provider key, a leaf issued from it; checked by `openssl verify` and `openssl req -verify`.

use std::path::Path;
use std::process::Command;

use hsm_core::{Error, KeySpec, SignatureAlgorithm};
use hsm_signers::x509::{self, CertOptions, CertificateSigner};
use libtest_mimic::{Completion, Failed};

use crate::signer::signer_for;
use crate::{Backend, Case, Outcome, check, rt, servers_required};

pub(crate) const CASES: &[(&str, Case)] = &[
    ("x509_p384_ca_p256_leaf", |b, k| chain(b, k, (KeySpec::EcP384, None), (KeySpec::EcP256, None))),
    ("x509_ed25519_chain", |b, k| chain(b, k, (KeySpec::Ed25519, None), (KeySpec::Ed25519, None))),
    ("x509_rsa_ca_p256_leaf", |b, k| {
        chain(b, k, (KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPkcs1v15Sha256)), (KeySpec::EcP256, None))
    }),
    ("x509_refuses_k256_and_pss", refuses),
    ("x509cert_p256", |b, k| x509_cert_builder(b, k, KeySpec::EcP256, None, "ecdsa-with-SHA256")),
    ("x509cert_p384", |b, k| x509_cert_builder(b, k, KeySpec::EcP384, None, "ecdsa-with-SHA384")),
    ("x509cert_ed25519", |b, k| x509_cert_builder(b, k, KeySpec::Ed25519, None, "ED25519")),
    ("x509cert_rsa_pss", |b, k| {
        x509_cert_builder(b, k, KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPssSha256), "rsassaPss")
    }),
    ("x509cert_rsa_pkcs1", |b, k| {
        x509_cert_builder(
            b,
            k,
            KeySpec::Rsa2048,
            Some(SignatureAlgorithm::RsaPkcs1v15Sha384),
            "sha384WithRSAEncryption",
        )
    }),
];

/// `openssl` with `args`, or why it cannot run (a failure under `HSM_REQUIRE_SERVERS`).
pub(crate) fn openssl(args: &[&str]) -> Result<Result<String, Completion>, Failed> {
    match Command::new("openssl").args(args).output() {
        Ok(out) if out.status.success() => {
            Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)))
        }
        Ok(out) => Err(format!(
            "openssl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
        Err(e) if servers_required() => {
            Err(format!("openssl cannot run ({e}) and HSM_REQUIRE_SERVERS is set").into())
        }
        Err(e) => Ok(Err(Completion::ignored_with(format!("openssl cannot run: {e}")))),
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

fn chain(
    b: &Backend,
    key: &str,
    (ca_spec, ca_alg): (KeySpec, Option<SignatureAlgorithm>),
    (leaf_spec, leaf_alg): (KeySpec, Option<SignatureAlgorithm>),
) -> Outcome {
    let ca = match signer_for(b, &format!("{key}-ca"), ca_spec, ca_alg)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let leaf = match signer_for(b, &format!("{key}-leaf"), leaf_spec, leaf_alg)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let ca_pem = rt()
        .block_on(x509::self_signed(&ca, &CertOptions::new("CN=hsm test root,O=hsm").ca(true)))
        .map_err(|e| format!("CA certificate: {e}"))?;
    let opts = CertOptions::new("CN=leaf.example,O=hsm").san("DNS:leaf.example").san("IP:127.0.0.1");
    let csr_pem = rt().block_on(x509::csr(&leaf, &opts)).map_err(|e| format!("CSR: {e}"))?;
    let leaf_pem = rt()
        .block_on(x509::issue(
            &ca,
            &ca_pem,
            &csr_pem,
            &CertOptions::new("ignored").validity(std::time::Duration::from_secs(86_400)),
        ))
        .map_err(|e| format!("issue: {e}"))?;

    let dir = tempfile::tempdir()?;
    for (name, pem) in [("ca.pem", &ca_pem), ("csr.pem", &csr_pem), ("leaf.pem", &leaf_pem)] {
        std::fs::write(dir.path().join(name), pem)?;
    }
    let out = match openssl(&["req", "-verify", "-noout", "-in", &path(dir.path(), "csr.pem")])? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    check(
        out.contains("verify OK") || out.contains("Certificate request self-signature verify OK"),
        format!("req -verify: {out}"),
    )?;
    let out =
        match openssl(&["verify", "-CAfile", &path(dir.path(), "ca.pem"), &path(dir.path(), "leaf.pem")])? {
            Ok(o) => o,
            Err(skip) => return Ok(skip),
        };
    check(out.contains("leaf.pem: OK"), format!("openssl verify: {out}"))?;
    let text = match openssl(&["x509", "-noout", "-text", "-in", &path(dir.path(), "leaf.pem")])? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    for needle in [
        "DNS:leaf.example",
        "IP Address:127.0.0.1",
        "Subject: CN = leaf.example",
        "Issuer: CN = hsm test root",
        "CA:FALSE",
    ] {
        check(text.contains(needle), format!("{needle} missing from the leaf:\n{text}"))?;
    }
    // The leaf carries the leaf key, not the CA's.
    let pubkey = match openssl(&["x509", "-noout", "-pubkey", "-in", &path(dir.path(), "leaf.pem")])? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    check(pubkey.trim() == leaf.public_key().to_pem().trim(), "leaf public key")?;
    // A tampered CSR is refused before anything is signed.
    let mut bad_csr = csr_pem.clone().into_bytes();
    let mid = bad_csr.len() / 2;
    bad_csr[mid] = if bad_csr[mid] == b'A' { b'B' } else { b'A' };
    let e = rt()
        .block_on(x509::issue(&ca, &ca_pem, &String::from_utf8_lossy(&bad_csr), &CertOptions::new("x")))
        .unwrap_err();
    check(matches!(e, Error::InvalidInput { .. }), format!("tampered CSR: {e}"))?;
    Ok(Completion::Completed)
}

fn refuses(b: &Backend, key: &str) -> Outcome {
    if let Ok(k) = signer_for(b, &format!("{key}-k"), KeySpec::EcSecp256k1, None)? {
        let e = CertificateSigner::new(k, rt().handle().clone()).unwrap_err();
        check(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("secp256k1"), e.to_string())?;
    }
    match signer_for(b, &format!("{key}-r"), KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPssSha256))? {
        Ok(r) => {
            let e = CertificateSigner::new(r, rt().handle().clone()).unwrap_err();
            check(
                matches!(e, Error::Unsupported { .. }) && e.to_string().contains("rsa-pkcs1-sha256"),
                e.to_string(),
            )?;
        }
        Err(skip) => return Ok(skip),
    }
    Ok(Completion::Completed)
}

/// The async X.509 functions work on a current-thread runtime (as the CLI uses): rcgen runs
/// on the blocking pool, which may wait for the provider.
pub(crate) fn on_current_thread_runtime() -> Result<(), Failed> {
    let provider: std::sync::Arc<dyn hsm_core::Provider> =
        std::sync::Arc::new(hsm_local::LocalProvider::in_memory());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let pem = rt.block_on(async {
        provider.create_key(hsm_core::CreateKey::new("ct-ca", KeySpec::EcP256)).await?;
        let ca = hsm_signers::KeySigner::new(provider.clone(), "ct-ca").await?;
        x509::self_signed(&ca, &CertOptions::new("CN=current thread").ca(true)).await
    })?;
    check(pem.starts_with("-----BEGIN CERTIFICATE-----"), pem)
}

/// x509-cert 0.3's async builder with a provider key: a self-signed CA (CA/B Forum root
/// profile) and a CSR, accepted by `openssl verify` and `openssl req -verify`; RSA-PSS too,
/// which rcgen cannot do.
fn x509_cert_builder(
    b: &Backend,
    key: &str,
    spec: KeySpec,
    alg: Option<SignatureAlgorithm>,
    openssl_name: &str,
) -> Outcome {
    use std::str::FromStr as _;

    use hsm_signers::DerSignature;
    use hsm_signers::signature::Keypair as _;
    use hsm_signers::x509_cert::builder::profile::cabf::Root;
    use hsm_signers::x509_cert::builder::{AsyncBuilder as _, CertificateBuilder, RequestBuilder};
    use hsm_signers::x509_cert::der::{EncodePem as _, pem::LineEnding};
    use hsm_signers::x509_cert::name::Name;
    use hsm_signers::x509_cert::serial_number::SerialNumber;
    use hsm_signers::x509_cert::spki::SubjectPublicKeyInfoOwned;
    use hsm_signers::x509_cert::time::Validity;

    let signer = match signer_for(b, key, spec, alg)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let spki = SubjectPublicKeyInfoOwned::from_key(&signer.verifying_key()).map_err(|e| e.to_string())?;
    let subject = Name::from_str("CN=x509-cert root,O=hsm,C=DE").map_err(|e| e.to_string())?;
    let builder = CertificateBuilder::new(
        Root::new(false, subject.clone()).map_err(|e| e.to_string())?,
        SerialNumber::new(&[0x01, 0x23, 0x45]).map_err(|e| e.to_string())?,
        Validity::from_now(std::time::Duration::from_secs(86_400)).map_err(|e| e.to_string())?,
        spki,
    )
    .map_err(|e| e.to_string())?;
    let cert = rt()
        .block_on(builder.build_async::<_, DerSignature>(&signer))
        .map_err(|e| format!("build_async: {e}"))?;
    let cert_pem = cert.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let req = RequestBuilder::new(subject).map_err(|e| e.to_string())?;
    let csr = rt()
        .block_on(req.build_async::<_, DerSignature>(&signer))
        .map_err(|e| format!("CSR build_async: {e}"))?;
    let csr_pem = csr.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("root.pem"), &cert_pem)?;
    std::fs::write(dir.path().join("req.pem"), &csr_pem)?;
    let root = path(dir.path(), "root.pem");
    let out = match openssl(&["verify", "-CAfile", &root, &root])? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    check(out.contains("root.pem: OK"), format!("openssl verify: {out}"))?;
    let out = match openssl(&["req", "-verify", "-noout", "-in", &path(dir.path(), "req.pem")])? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    check(out.contains("verify OK"), format!("req -verify: {out}"))?;
    let text = match openssl(&["x509", "-noout", "-text", "-in", &root])? {
        Ok(o) => o,
        Err(skip) => return Ok(skip),
    };
    check(
        text.contains(&format!("Signature Algorithm: {openssl_name}")),
        format!("{openssl_name} not in:\n{text}"),
    )?;
    check(text.contains("CA:TRUE"), "a CA certificate")?;
    Ok(Completion::Completed)
}
