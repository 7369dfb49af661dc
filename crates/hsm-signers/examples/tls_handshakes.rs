//! TLS 1.3 handshakes per second, in memory on one thread: a server whose ECDSA P-256 key is
//! held by a provider (through `hsm_signers::tls::TlsSigningKey`) against a server whose
//! P-256 key is loaded directly into rustls (aws-lc-rs). The ratio is the overhead of the
//! bridge plus the provider's own signing path. SoftHSM2 is measured too when installed.
//!
//! ```text
//! cargo run --release -p hsm-signers --features full --example tls_handshakes [seconds per case]
//! ```
//!
//! The direct key is a fresh P-256 key (a provider never exports its keys); the cost of a
//! P-256 signature does not depend on the key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_core::{CreateKey, KeySpec, Provider, PublicKey, Zeroizing};
use hsm_signers::KeySigner;
use hsm_signers::tls::TlsSigningKey;
use hsm_signers::x509::{self, CertOptions};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> Result<(), BoxError> {
    let mut s = ServerConnection::new(server.clone())?;
    let mut c = ClientConnection::new(client.clone(), ServerName::try_from("localhost")?)?;
    let mut buf = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf)?;
        }
        let mut r = &buf[..];
        while !r.is_empty() {
            s.read_tls(&mut r)?;
        }
        s.process_new_packets()?;
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf)?;
        }
        let mut r = &buf[..];
        while !r.is_empty() {
            c.read_tls(&mut r)?;
        }
        c.process_new_packets()?;
    }
    Ok(())
}

fn rate(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>, secs: f64) -> Result<f64, BoxError> {
    for _ in 0..20 {
        handshake(server, client)?;
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        handshake(server, client)?;
        n += 1;
    }
    Ok(f64::from(n) / start.elapsed().as_secs_f64())
}

fn server(cert_pem: &str, key: Arc<dyn rustls::sign::SigningKey>) -> Result<Arc<ServerConfig>, BoxError> {
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes())?];
    let certified = rustls::sign::CertifiedKey::new(chain, key);
    Ok(Arc::new(
        ServerConfig::builder_with_provider(crypto())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified))),
    ))
}

/// Handshakes/s with `provider`'s P-256 key, and the CA used (for the direct case).
fn provider_rate(
    rt: &tokio::runtime::Runtime,
    provider: Arc<dyn Provider>,
    secs: f64,
) -> Result<(f64, KeySigner, String, Arc<ClientConfig>), BoxError> {
    let (ca, server_key) = rt.block_on(async {
        provider.create_key(CreateKey::new("bench-ca", KeySpec::EcP256)).await?;
        provider.create_key(CreateKey::new("bench-server", KeySpec::EcP256)).await?;
        Ok::<_, hsm_core::Error>((
            KeySigner::new(provider.clone(), "bench-ca").await?,
            KeySigner::new(provider.clone(), "bench-server").await?,
        ))
    })?;
    let (ca_pem, cert_pem) = rt.block_on(async {
        let ca_pem = x509::self_signed(&ca, &CertOptions::new("CN=bench CA").ca(true)).await?;
        let cert = x509::certify(
            &ca,
            &ca_pem,
            server_key.public_key(),
            &CertOptions::new("CN=localhost").san("DNS:localhost"),
        )
        .await?;
        Ok::<_, hsm_core::Error>((ca_pem, cert))
    })?;
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let client = Arc::new(
        ClientConfig::builder_with_provider(crypto())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let key = TlsSigningKey::new(server_key, rt.handle().clone())?;
    let r = rate(&server(&cert_pem, Arc::new(key))?, &client, secs)?;
    Ok((r, ca, ca_pem, client))
}

fn main() -> Result<(), BoxError> {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    // SoftHSM reads SOFTHSM2_CONF once: set it while the process is single-threaded.
    let softhsm = if hsm_pkcs11::softhsm::SoftHsm::available() {
        let hsm = hsm_pkcs11::softhsm::SoftHsm::new()?;
        hsm.init_token("bench", "12345678", "1234")?;
        // SAFETY: no other thread exists yet.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", hsm.conf());
        }
        Some(hsm)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;

    let local: Arc<dyn Provider> = Arc::new(hsm_local::LocalProvider::in_memory());
    let (via_local, ca, ca_pem, client) = provider_rate(&rt, local, secs)?;

    // The same kind of key, loaded directly into rustls.
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let pk =
        PublicKey::new("direct", "1", KeySpec::EcP256, rcgen::PublicKeyData::subject_public_key_info(&kp));
    let cert_pem = rt.block_on(x509::certify(
        &ca,
        &ca_pem,
        &pk,
        &CertOptions::new("CN=localhost").san("DNS:localhost"),
    ))?;
    let pkcs8 = Zeroizing::new(kp.serialize_der());
    let direct_key = crypto()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec())))?;
    let direct = rate(&server(&cert_pem, direct_key)?, &client, secs)?;

    println!(
        "TLS 1.3 handshakes/s, ECDSA P-256 server key, in memory, one client thread ({secs} s per case):"
    );
    println!("  rustls, key loaded directly      {direct:>8.0}");
    println!("  hsm-local via TlsSigningKey      {via_local:>8.0}   ({:.2}x of direct)", via_local / direct);
    if softhsm.is_some() {
        let cfg = hsm_pkcs11::Pkcs11Config::new(
            hsm_pkcs11::softhsm::MODULE,
            hsm_pkcs11::TokenSelector::Label("bench".into()),
            hsm_pkcs11::PinSource::Value(Zeroizing::new("1234".into())),
        );
        let p11: Arc<dyn Provider> = Arc::new(hsm_pkcs11::Pkcs11Provider::connect(&cfg)?);
        let (via_p11, ..) = provider_rate(&rt, p11, secs)?;
        println!("  SoftHSM2 via TlsSigningKey       {via_p11:>8.0}   ({:.2}x of direct)", via_p11 / direct);
    } else {
        println!("  SoftHSM2: not installed, skipped");
    }
    drop(softhsm);
    Ok(())
}
