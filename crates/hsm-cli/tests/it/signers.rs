//! `hsm key public --format`, `hsm x509`, `hsm jwt` and `hsm ssh-agent` end to end, on the
//! local keystore, a SoftHSM2 token and `hsm-emulator gcp`: certificates checked by
//! `openssl verify` / `openssl req -verify`, tokens by `hsm jwt verify`, agent signatures by
//! `ssh-keygen -Y verify`. Keys that cannot serve a request exit 4.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::harness::{Hsm, have, openssl, openssl_ok};

fn ssh_keygen() -> bool {
    Command::new("ssh-keygen").arg("-?").output().is_ok()
}

/// The whole story against the provider `hsm`'s environment selects.
fn story(hsm: &Hsm) {
    let dir = hsm.home.path();
    for (name, spec) in [("ca", "ec-p256"), ("leaf", "ec-p256"), ("k1", "ec-secp256k1"), ("enc", "aes-256")] {
        hsm.ok(&["key", "create", name, "--spec", spec], b"");
    }

    // Public keys in four formats.
    let pem = hsm.ok(&["key", "public", "ca"], b"").stdout_text();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    hsm.ok(&["key", "public", "ca", "--format", "der", "-o", "ca.der"], b"");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    assert_eq!(std::fs::read(dir.join("ca.der")).unwrap(), der, "DER is the PEM's body");
    let jwk = hsm.ok(&["key", "public", "ca", "--format", "jwk"], b"").json();
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("EC"), Some("P-256")), "{jwk}");
    assert!(jwk["kid"].as_str().is_some_and(|k| k.starts_with("ca@")), "{jwk}");
    assert_eq!((jwk["use"].as_str(), jwk["alg"].as_str()), (Some("sig"), Some("ES256")), "{jwk}");
    let ssh_line = hsm.ok(&["key", "public", "leaf", "--format", "ssh"], b"").stdout_text();
    assert!(ssh_line.starts_with("ecdsa-sha2-nistp256 "), "{ssh_line}");
    let msg = hsm.fails(4, &["key", "public", "k1", "--format", "ssh"], b"");
    assert!(msg.contains("SSH"), "{msg}");
    hsm.fails(4, &["key", "public", "enc", "--format", "jwk"], b"");

    // X.509: a CA in the provider, a CSR for another provider key, the leaf it issues.
    hsm.ok(
        &[
            "x509",
            "self-signed",
            "--key",
            "ca",
            "--subject",
            "CN=CLI test CA,O=hsm",
            "--ca",
            "--days",
            "30",
            "-o",
            "ca.pem",
        ],
        b"",
    );
    hsm.ok(
        &[
            "x509",
            "csr",
            "--key",
            "leaf",
            "--subject",
            "CN=leaf.example",
            "--san",
            "DNS:leaf.example",
            "--san",
            "IP:127.0.0.1",
            "-o",
            "leaf.csr",
        ],
        b"",
    );
    hsm.ok(
        &[
            "x509",
            "issue",
            "--issuer-key",
            "ca",
            "--issuer-cert",
            "ca.pem",
            "--csr",
            "leaf.csr",
            "--days",
            "7",
            "-o",
            "leaf.pem",
        ],
        b"",
    );
    if have(openssl(), "openssl") {
        assert!(openssl_ok(dir, &["verify", "-CAfile", "ca.pem", "leaf.pem"]), "openssl verify CA → leaf");
        assert!(openssl_ok(dir, &["req", "-verify", "-noout", "-in", "leaf.csr"]), "openssl req -verify");
    }
    let msg = hsm.fails(4, &["x509", "self-signed", "--key", "enc", "--subject", "CN=x", "-o", "x.pem"], b"");
    assert!(msg.contains("usage"), "{msg}");
    let msg = hsm.fails(4, &["x509", "self-signed", "--key", "k1", "--subject", "CN=x", "-o", "x.pem"], b"");
    assert!(msg.contains("secp256k1"), "{msg}");
    hsm.fails(4, &["x509", "csr", "--key", "leaf", "--subject", "XX=1", "-o", "x.csr"], b"");

    // JWT.
    let token = hsm
        .ok(&["jwt", "sign", "--key", "leaf", "--claims", r#"{"sub":"alice"}"#, "--expires-in", "1h"], b"")
        .stdout_text();
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
    hsm.file("token.txt", token.as_bytes());
    let r = hsm.ok(&["jwt", "verify", "--key", "leaf", "-i", "token.txt"], b"");
    assert!(
        r.stdout_text().starts_with("valid\n") && r.stdout_text().contains("alice"),
        "{}",
        r.stdout_text()
    );
    let r = hsm.run(&["jwt", "verify", "--key", "ca"], token.as_bytes());
    assert_eq!(r.code, 1, "another key's token: {}", r.stdout_text());
    let mut parts: Vec<String> = token.trim().split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
    let r = hsm.run(&["jwt", "verify", "--key", "leaf"], parts.join(".").as_bytes());
    assert_eq!(r.code, 1, "tampered: {}", r.stdout_text());
    assert!(r.stdout_text().starts_with("invalid"), "{}", r.stdout_text());
    hsm.file("claims.json", br#"{"sub":"bob","exp":1}"#);
    let expired = hsm.ok(&["jwt", "sign", "--key", "leaf", "--claims", "@claims.json"], b"").stdout_text();
    let r = hsm.run(&["jwt", "verify", "--key", "leaf"], expired.as_bytes());
    assert!(r.code == 1 && r.stdout_text().contains("expired"), "{}", r.stdout_text());
    hsm.fails(4, &["jwt", "sign", "--key", "enc", "--claims", "{}"], b"");
    hsm.fails(4, &["jwt", "sign", "--key", "leaf", "--algorithm", "RS256", "--claims", "{}"], b"");
    hsm.fails(4, &["jwt", "sign", "--key", "leaf", "--claims", "[1]"], b"");

    // The SSH agent, used by ssh-keygen -Y sign; ssh-keygen -Y verify accepts.
    if have(ssh_keygen(), "ssh-keygen (apt-get install openssh-client)") {
        ssh_agent(hsm, dir, ssh_line.trim());
    }
}

fn ssh_agent(hsm: &Hsm, dir: &Path, line: &str) {
    let sock = dir.join("agent.sock");
    let mut agent = hsm
        .command(&["ssh-agent", "--socket", sock.to_str().unwrap(), "--key", "leaf"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hsm ssh-agent");
    let start = Instant::now();
    while !sock.exists() {
        if let Ok(Some(status)) = agent.try_wait() {
            panic!("hsm ssh-agent exited early: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "hsm ssh-agent did not create its socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the agent socket is private to its user");
    std::fs::write(dir.join("leaf.pub"), format!("{line}\n")).unwrap();
    std::fs::write(dir.join("commit.txt"), b"tree 1234\n\nsigned commit\n").unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-f", "leaf.pub", "-n", "git", "commit.txt"])
        .current_dir(dir)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -Y sign: {}", String::from_utf8_lossy(&out.stderr));
    let mut kb = line.split(' ');
    std::fs::write(
        dir.join("allowed"),
        format!("dev@example {} {}\n", kb.next().unwrap(), kb.next().unwrap()),
    )
    .unwrap();
    let verify = |file: &str| {
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f", "allowed", "-I", "dev@example", "-n", "git", "-s", "commit.txt.sig"])
            .current_dir(dir)
            .stdin(std::fs::File::open(dir.join(file)).unwrap())
            .output()
            .unwrap()
    };
    let out = verify("commit.txt");
    assert!(
        out.status.success(),
        "ssh-keygen -Y verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("other.txt"), b"other\n").unwrap();
    assert!(!verify("other.txt").status.success(), "verified over other data");
    // git commit signing through the agent, and git's own verification.
    if have(Command::new("git").arg("--version").output().is_ok(), "git") {
        let repo = dir.join("repo");
        let git = |args: &[&str]| {
            Command::new("git")
                .args(["-c", "user.name=dev", "-c", "user.email=dev@example", "-c", "gpg.format=ssh"])
                .args([
                    "-c",
                    &format!("user.signingkey=key::{line}"),
                    "-c",
                    "gpg.ssh.allowedSignersFile=../allowed",
                ])
                .args(args)
                .current_dir(&repo)
                .env("SSH_AUTH_SOCK", &sock)
                .output()
                .unwrap()
        };
        std::fs::create_dir(&repo).unwrap();
        assert!(git(&["init", "-q"]).status.success());
        std::fs::write(repo.join("f"), b"signed by a provider key\n").unwrap();
        assert!(git(&["add", "f"]).status.success());
        let out = git(&["commit", "-q", "-S", "-m", "signed"]);
        assert!(out.status.success(), "git commit -S: {}", String::from_utf8_lossy(&out.stderr));
        let out = git(&["verify-commit", "HEAD"]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("Good \"git\" signature for dev@example"),
            "git verify-commit: {text}"
        );
    }
    // SIGTERM: the agent stops and removes its socket.
    let killed = Command::new("kill").arg(agent.id().to_string()).status().unwrap();
    assert!(killed.success());
    let out = agent.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SSH_AUTH_SOCK=") && stdout.contains(line), "{stdout}");
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn signers_on_the_local_keystore() {
    story(&Hsm::new());
}

#[test]
fn signers_on_a_softhsm_token() {
    use hsm::pkcs11::softhsm::{MODULE, SoftHsm};
    if !have(SoftHsm::available(), "SoftHSM2 (apt-get install softhsm2)") {
        return;
    }
    let token = SoftHsm::new().unwrap();
    token.init_token("signers", "12345678", "1234").unwrap();
    let url = format!("pkcs11:token=signers?module-path={MODULE}&pin-value=1234");
    story(&Hsm::new().env("SOFTHSM2_CONF", token.conf().to_str().unwrap()).env("HSM_PROVIDER", &url));
}

#[test]
fn signers_on_gcp_kms() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let emu = rt.block_on(hsm_emulator::gcp::start(hsm_emulator::gcp::Args { port: 0 })).unwrap();
    let url = format!(
        "gcp-kms://projects/cli/locations/global/keyRings/signers?endpoint={}&create_key_ring=true",
        emu.url()
    );
    story(&Hsm::new().env("HSM_PROVIDER", &url));
    drop(emu);
}
