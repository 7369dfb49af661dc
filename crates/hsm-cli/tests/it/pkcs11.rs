//! The CLI against a throwaway SoftHSM2 token, selected by a `pkcs11:` URI through
//! `HSM_PROVIDER` and `--provider`, and by a `[pkcs11]` TOML file. Without SoftHSM2 (or
//! OpenSC's `pkcs11-tool`, for the interop part) the test says it was skipped and returns,
//! unless `HSM_REQUIRE_SERVERS` is set (`cargo xtask ci`), in which case it fails.

use std::process::Command;

use hsm::pkcs11::softhsm::{MODULE, SoftHsm};

use crate::harness::{Hsm, have, provider_story};

#[test]
fn keys_encryption_and_signatures_through_a_pkcs11_uri() {
    if !have(SoftHsm::available(), "SoftHSM2 (apt-get install softhsm2)") {
        return;
    }
    let token = SoftHsm::new().unwrap();
    token.init_token("cli", "12345678", "1234").unwrap();
    let pin = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pin.path(), "1234\n").unwrap();
    let url = format!("pkcs11:token=cli?module-path={MODULE}&pin-source=file:{}", pin.path().display());
    let hsm = Hsm::new().env("SOFTHSM2_CONF", token.conf().to_str().unwrap()).env("HSM_PROVIDER", &url);

    provider_story(&hsm, &url);

    // A wrong PIN is refused with a clear message that does not contain the PIN.
    let bad = format!("pkcs11:token=cli?module-path={MODULE}&pin-value=99999");
    let r = hsm.run(&["--provider", &bad, "key", "list"], b"");
    assert_ne!(r.code, 0);
    let err = r.stderr;
    assert!(err.contains("CKR_PIN_INCORRECT") && !err.contains("99999"), "{err}");
}

/// A URI without a PIN source: HSM_PKCS11_PIN, else (stdin not a terminal, as here) a
/// one-line error naming every way to give the PIN. A `[pkcs11]` TOML file works too.
#[test]
fn pin_from_the_environment_or_a_clear_error() {
    if !have(SoftHsm::available(), "SoftHSM2 (apt-get install softhsm2)") {
        return;
    }
    let token = SoftHsm::new().unwrap();
    token.init_token("nopin", "12345678", "1234").unwrap();
    let url = format!("pkcs11:token=nopin?module-path={MODULE}");
    let hsm = Hsm::new().env("SOFTHSM2_CONF", token.conf().to_str().unwrap());
    let err = hsm.fails(5, &["--provider", &url, "key", "list"], b"");
    for needle in ["HSM_PKCS11_PIN", "pin-source=file:", "terminal"] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
    let with_env =
        Hsm::new().env("SOFTHSM2_CONF", token.conf().to_str().unwrap()).env("HSM_PKCS11_PIN", "1234");
    with_env.ok(&["--provider", &url, "key", "create", "from-env", "--spec", "aes-128"], b"");
    let wrong = Hsm::new().env("SOFTHSM2_CONF", token.conf().to_str().unwrap()).env("HSM_PKCS11_PIN", "4321");
    let err = wrong.fails(5, &["--provider", &url, "key", "list"], b"");
    assert!(err.contains("CKR_PIN_INCORRECT") && !err.contains("4321"), "{err}");

    // The same token through a TOML file with a relative pin_file.
    let pin = hsm.file("pin", b"1234\n");
    let toml = format!(
        "provider = \"pkcs11\"\n[pkcs11]\nmodule = \"{MODULE}\"\ntoken = \"nopin\"\npin_file = \"pin\"\n"
    );
    let file = hsm.file("hsm.toml", toml.as_bytes());
    let r = hsm.ok(&["--config", &file, "key", "list", "--output", "json"], b"");
    assert!(r.stdout_text().contains("from-env"), "{}", r.stdout_text());
    drop(pin);
}

fn tool(conf: &str, args: &[&str]) -> String {
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", conf)
        .args(["--module", MODULE, "--token-label", "tool", "--login", "--pin", "1234"])
        .args(args)
        .output()
        .expect("run pkcs11-tool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pkcs11-tool {args:?}: {text}");
    text
}

/// `hsm key list` shows a key `pkcs11-tool` made and `hsm sign` uses it; a key `hsm key
/// create` made signs in `pkcs11-tool` and `hsm verify` accepts the signature.
#[test]
fn keys_shared_with_pkcs11_tool() {
    if !have(SoftHsm::available(), "SoftHSM2 (apt-get install softhsm2)")
        || !have(
            Command::new("pkcs11-tool").arg("--help").output().is_ok(),
            "pkcs11-tool (apt-get install opensc)",
        )
        || !have(crate::harness::openssl(), "openssl")
    {
        return;
    }
    let token = SoftHsm::new().unwrap();
    token.init_token("tool", "12345678", "1234").unwrap();
    let conf = token.conf().to_str().unwrap().to_owned();
    let url = format!("pkcs11:token=tool?module-path={MODULE}&pin-value=1234");
    let hsm = Hsm::new().env("SOFTHSM2_CONF", &conf).env("HSM_PROVIDER", &url);

    tool(&conf, &["--keypairgen", "--key-type", "EC:prime256v1", "--label", "from-tool", "--id", "c0de"]);
    let r = hsm.ok(&["key", "list", "--output", "json"], b"");
    let keys = r.json();
    let k = keys.as_array().unwrap().iter().find(|k| k["name"] == "from-tool").expect("listed");
    assert_eq!(k["spec"], "ec-p256", "{k}");
    assert_eq!(k["version"], "c0de", "{k}");
    let data = hsm.file("data.txt", b"signed in hsm with a pkcs11-tool key");
    hsm.ok(&["sign", "--key", "from-tool", "-i", &data, "-o", "sig.bin"], b"");
    hsm.ok(&["verify", "--key", "from-tool", "--signature", "sig.bin", "-i", &data], b"");

    hsm.ok(&["key", "create", "from-hsm", "--spec", "ec-p256"], b"");
    let digest = hsm.file("digest", &sha256(b"signed in pkcs11-tool with an hsm key"));
    let msg = hsm.file("msg.txt", b"signed in pkcs11-tool with an hsm key");
    let sig = hsm.path("tool.sig");
    let id: String = b"from-hsm#1".iter().map(|b| format!("{b:02x}")).collect();
    tool(
        &conf,
        &[
            "--sign",
            "--id",
            &id,
            "-m",
            "ECDSA",
            "--input-file",
            &digest,
            "--output-file",
            sig.to_str().unwrap(),
            "--signature-format",
            "openssl",
        ],
    );
    hsm.ok(&["verify", "--key", "from-hsm", "--signature", "tool.sig", "-i", &msg], b"");
    let r = hsm.run(&["verify", "--key", "from-hsm", "--signature", "tool.sig"], b"another message");
    assert_eq!(r.code, 1, "a signature over another message is invalid");
    // The tool's view of the token is clean: hsm's metadata is a data object of application hsm.
    let out = tool(&conf, &["--list-objects", "--type", "data"]);
    assert!(out.contains("'from-hsm'") && out.contains("'hsm'"), "{out}");
}

fn sha256(data: &[u8]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().expect("stdin").write_all(data)?;
            c.wait_with_output()
        })
        .expect("openssl dgst");
    assert!(out.status.success() && out.stdout.len() == 32, "openssl dgst");
    out.stdout
}

/// On a terminal (a pseudo-terminal from util-linux `script`), with no PIN source and no
/// HSM_PKCS11_PIN, the CLI prompts, reads the PIN without echoing it, and connects.
#[test]
fn pin_prompt_on_a_terminal_without_echo() {
    use std::io::{Read as _, Write as _};
    use std::sync::mpsc;
    use std::time::Duration;

    if !have(SoftHsm::available(), "SoftHSM2 (apt-get install softhsm2)")
        || !have(Command::new("script").arg("--version").output().is_ok(), "script (util-linux)")
    {
        return;
    }
    let token = SoftHsm::new().unwrap();
    token.init_token("tty", "12345678", "1234").unwrap();
    let home = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} --provider 'pkcs11:token=tty?module-path={MODULE}' key create typed --spec aes-128",
        env!("CARGO_BIN_EXE_hsm")
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("SOFTHSM2_CONF", token.conf())
        .env("HSM_HOME", home.path())
        .env_remove("HSM_PKCS11_PIN")
        .env_remove("HSM_PROVIDER")
        .env_remove("HSM_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut stdin = child.stdin.take().unwrap();
    let mut sent = false;
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(chunk) => seen.extend(chunk),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("no progress; output so far: {}", String::from_utf8_lossy(&seen));
            }
        }
        if !sent && String::from_utf8_lossy(&seen).contains("PIN for the PKCS#11 token label 'tty'") {
            // Echo is off once the prompt is out (it is turned off before the prompt).
            stdin.write_all(b"1234\n").unwrap();
            sent = true;
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(sent, "no prompt: {text}");
    assert!(status.success(), "hsm on a terminal failed: {text}");
    assert!(!text.contains("1234"), "the PIN was echoed: {text:?}");
    let hsm = Hsm::new().env("SOFTHSM2_CONF", token.conf().to_str().unwrap());
    let url = format!("pkcs11:token=tty?module-path={MODULE}&pin-value=1234");
    let r = hsm.ok(&["--provider", &url, "key", "list"], b"");
    assert!(r.stdout_text().contains("typed"), "{}", r.stdout_text());
}
