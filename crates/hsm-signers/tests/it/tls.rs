//! rustls with provider-held keys: real TLS 1.3 and 1.2 handshakes, in memory (rustls client
//! and server) and over TCP through tokio-rustls (rustls client and `openssl s_client`).

use std::io::Write as _;
use std::sync::Arc;

use hsm_core::{Error, KeySpec, SignatureAlgorithm};
use hsm_signers::KeySigner;
use hsm_signers::tls::TlsSigningKey;
use hsm_signers::x509::{self, CertOptions};
use libtest_mimic::{Completion, Failed};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection,
};

use crate::signer::signer_for;
use crate::x509::openssl;
use crate::{Backend, Case, Outcome, check, rt};

pub(crate) const CASES: &[(&str, Case)] = &[
    ("tls_p256", |b, k| tls(b, k, KeySpec::EcP256, None)),
    ("tls_rsa_pss", |b, k| tls(b, k, KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPssSha256))),
    ("tls_ed25519", |b, k| tls(b, k, KeySpec::Ed25519, None)),
    ("tls_refusals", refusals),
    ("tls_mtls_client", mtls_client),
];

pub(crate) fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A CA (P-256, in the provider) and a certificate for `server`'s key signed by it.
pub(crate) fn chain(
    b: &Backend,
    key: &str,
    server: &KeySigner,
) -> Result<Result<(String, String), Completion>, Failed> {
    let ca = match signer_for(b, &format!("{key}-ca"), KeySpec::EcP256, None)? {
        Ok(s) => s,
        Err(skip) => return Ok(Err(skip)),
    };
    let ca_pem = rt()
        .block_on(x509::self_signed(&ca, &CertOptions::new("CN=hsm tls test CA").ca(true)))
        .map_err(|e| format!("CA: {e}"))?;
    let opts = CertOptions::new("CN=localhost").san("DNS:localhost").san("IP:127.0.0.1");
    let cert = rt()
        .block_on(x509::certify(&ca, &ca_pem, server.public_key(), &opts))
        .map_err(|e| format!("server certificate: {e}"))?;
    Ok(Ok((ca_pem, cert)))
}

pub(crate) fn server_config(
    key: TlsSigningKey,
    cert_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, Failed> {
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes())?];
    let certified = rustls::sign::CertifiedKey::new(chain, Arc::new(key));
    let cfg = ServerConfig::builder_with_provider(crypto())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    Ok(Arc::new(cfg))
}

pub(crate) fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, Failed> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let cfg = ClientConfig::builder_with_provider(crypto())
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// One handshake in memory, on this thread (outside the runtime); returns the version.
pub(crate) fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
) -> Result<ProtocolVersion, rustls::Error> {
    handshake_peer(server, client).map(|(v, _)| v)
}

/// [`handshake`], also returning the client certificate chain the server accepted.
pub(crate) fn handshake_peer(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
) -> Result<(ProtocolVersion, Vec<CertificateDer<'static>>), rustls::Error> {
    let mut s = ServerConnection::new(server.clone())?;
    let mut c = ClientConnection::new(
        client.clone(),
        ServerName::try_from("localhost").map_err(|e| rustls::Error::General(e.to_string()))?,
    )?;
    let mut buf = Vec::new();
    for _ in 0..20 {
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        let mut r = &buf[..];
        while !r.is_empty() {
            s.read_tls(&mut r).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        s.process_new_packets()?;
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        let mut r = &buf[..];
        while !r.is_empty() {
            c.read_tls(&mut r).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        c.process_new_packets()?;
    }
    s.writer().write_all(b"hi").map_err(|e| rustls::Error::General(e.to_string()))?;
    let peer =
        s.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect()).unwrap_or_default();
    let v = c.protocol_version().ok_or_else(|| rustls::Error::General("handshake did not finish".into()))?;
    Ok((v, peer))
}

/// A TCP server on the test runtime (tokio-rustls: `sign` runs on a runtime worker); each
/// connection gets "hello\n". Returns the port.
fn tcp_server(config: Arc<ServerConfig>) -> Result<u16, Failed> {
    let listener = rt().block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    rt().spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"hello\n").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Ok(port)
}

fn tls(b: &Backend, key: &str, spec: KeySpec, alg: Option<SignatureAlgorithm>) -> Outcome {
    let server = match signer_for(b, key, spec, alg)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let (ca_pem, cert_pem) = match chain(b, key, &server)? {
        Ok(c) => c,
        Err(skip) => return Ok(skip),
    };
    let tls_key = TlsSigningKey::new(server.clone(), rt().handle().clone()).map_err(|e| e.to_string())?;
    tls_key.check_tls13().map_err(|e| e.to_string())?;
    let both = [&rustls::version::TLS13, &rustls::version::TLS12];
    // In memory: this thread is outside the runtime.
    for (v, want) in [
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let got =
            handshake(&server_config(tls_key.clone(), &cert_pem, &both)?, &client_config(&ca_pem, &[v])?)
                .map_err(|e| format!("{want:?} handshake: {e}"))?;
        check(got == want, format!("{got:?} instead of {want:?}"))?;
    }
    // Over TCP through tokio-rustls: the signature is made on a runtime worker.
    let port = tcp_server(server_config(tls_key, &cert_pem, &both)?)?;
    for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let connector = tokio_rustls::TlsConnector::from(client_config(&ca_pem, &[v])?);
        let line = rt().block_on(async {
            use tokio::io::AsyncReadExt as _;
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let mut tls = connector
                .connect(ServerName::try_from("localhost").map_err(std::io::Error::other)?, tcp)
                .await?;
            let mut s = String::new();
            tls.read_to_string(&mut s).await?;
            Ok::<_, std::io::Error>(s)
        });
        check(
            line.as_ref().is_ok_and(|l| l == "hello\n"),
            format!("tokio-rustls client {:?}: {line:?}", v.version),
        )?;
    }
    // openssl s_client, TLS 1.3 and 1.2, verifying the chain.
    let dir = tempfile::tempdir()?;
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca_pem)?;
    for (flag, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let ca = ca_path.to_string_lossy().into_owned();
        let connect = format!("127.0.0.1:{port}");
        let out = match openssl(&[
            "s_client",
            "-connect",
            &connect,
            flag,
            "-CAfile",
            &ca,
            "-servername",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
        ])? {
            Ok(o) => o,
            Err(skip) => return Ok(skip),
        };
        check(out.contains("Verify return code: 0 (ok)"), format!("s_client {flag}: {out}"))?;
        check(out.contains(name), format!("s_client {flag} did not negotiate {name}: {out}"))?;
        check(out.contains("hello"), format!("s_client {flag} got no data: {out}"))?;
    }
    Ok(Completion::Completed)
}

fn refusals(b: &Backend, key: &str) -> Outcome {
    if let Ok(k) = signer_for(b, &format!("{key}-k"), KeySpec::EcSecp256k1, None)? {
        let e = TlsSigningKey::new(k, rt().handle().clone()).unwrap_err();
        check(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("secp256k1"), e.to_string())?;
    }
    // An RSA key that signs only with PKCS#1 v1.5: TLS 1.2 works, TLS 1.3 is refused up front
    // and the handshake fails.
    let r = match signer_for(
        b,
        &format!("{key}-r"),
        KeySpec::Rsa2048,
        Some(SignatureAlgorithm::RsaPkcs1v15Sha256),
    )? {
        Ok(r) => r,
        Err(skip) => return Ok(skip),
    };
    let (ca_pem, cert_pem) = match chain(b, key, &r)? {
        Ok(c) => c,
        Err(skip) => return Ok(skip),
    };
    let only = TlsSigningKey::only(r, rt().handle().clone()).map_err(|e| e.to_string())?;
    check(
        only.schemes() == vec![rustls::SignatureScheme::RSA_PKCS1_SHA256],
        format!("{:?}", only.schemes()),
    )?;
    let e = only.check_tls13().unwrap_err();
    check(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("RSA-PSS"), e.to_string())?;
    let both = [&rustls::version::TLS13, &rustls::version::TLS12];
    let server = server_config(only, &cert_pem, &both)?;
    check(
        handshake(&server, &client_config(&ca_pem, &[&rustls::version::TLS13])?).is_err(),
        "TLS 1.3 with PKCS#1 only",
    )?;
    let v = handshake(&server, &client_config(&ca_pem, &[&rustls::version::TLS12])?)
        .map_err(|e| e.to_string())?;
    check(v == ProtocolVersion::TLSv1_2, format!("{v:?}"))?;
    Ok(Completion::Completed)
}

/// mTLS: the client's key is a provider key too, its certificate issued by the provider-held
/// CA; the server requires and verifies it (TLS 1.3 and 1.2).
fn mtls_client(b: &Backend, key: &str) -> Outcome {
    let server = match signer_for(b, key, KeySpec::EcP256, None)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let client_key = match signer_for(b, &format!("{key}-cl"), KeySpec::EcP256, None)? {
        Ok(s) => s,
        Err(skip) => return Ok(skip),
    };
    let (ca_pem, cert_pem) = match chain(b, key, &server)? {
        Ok(c) => c,
        Err(skip) => return Ok(skip),
    };
    let ca =
        rt().block_on(KeySigner::new(b.provider.clone(), format!("{key}-ca"))).map_err(|e| e.to_string())?;
    let client_cert = rt()
        .block_on(x509::certify(
            &ca,
            &ca_pem,
            client_key.public_key(),
            &CertOptions::new("CN=client.example").san("DNS:client.example"),
        ))
        .map_err(|e| format!("client certificate: {e}"))?;
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto()).build()?;
    let both = [&rustls::version::TLS13, &rustls::version::TLS12];
    let server_key = TlsSigningKey::new(server, rt().handle().clone()).map_err(|e| e.to_string())?;
    let certified = rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from_pem_slice(cert_pem.as_bytes())?],
        Arc::new(server_key),
    );
    let server_cfg = Arc::new(
        ServerConfig::builder_with_provider(crypto())
            .with_protocol_versions(&both)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified))),
    );
    let client_chain = vec![CertificateDer::from_pem_slice(client_cert.as_bytes())?];
    let client_tls_key = TlsSigningKey::new(client_key, rt().handle().clone()).map_err(|e| e.to_string())?;
    let client_certified = rustls::sign::CertifiedKey::new(client_chain.clone(), Arc::new(client_tls_key));
    for v in both {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
        let client_cfg = Arc::new(
            ClientConfig::builder_with_provider(crypto())
                .with_protocol_versions(&[v])?
                .with_root_certificates(roots)
                .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                    client_certified.clone(),
                ))),
        );
        let (_, peer) =
            handshake_peer(&server_cfg, &client_cfg).map_err(|e| format!("mTLS {:?}: {e}", v.version))?;
        check(peer == client_chain, format!("the server saw the client certificate ({:?})", v.version))?;
        // Without a client certificate the server refuses.
        let anonymous = client_config(&ca_pem, &[v])?;
        check(handshake(&server_cfg, &anonymous).is_err(), "anonymous client accepted")?;
    }
    Ok(Completion::Completed)
}
