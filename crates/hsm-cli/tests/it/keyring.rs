//! Envelopes under several providers at once, through the CLI: the local keystore,
//! `hsm-emulator aws`, `hsm-emulator gcp` and a SoftHSM2 token as recipients, with the
//! emulators stopped (connections refused) and restarted on the same port with their keys
//! while `hsm` processes encrypt, decrypt and rewrap.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm::pkcs11::softhsm::{MODULE, SoftHsm};
use hsm_emulator::server::{Handler, Running, serve_http};

use crate::harness::{Hsm, have};

/// An in-process emulator that can be stopped and started again with the same keys.
struct Emulator {
    rt: tokio::runtime::Runtime,
    handler: Arc<dyn Handler>,
    port: u16,
    running: Option<Running>,
}

impl Emulator {
    fn new(handler: Arc<dyn Handler>) -> Emulator {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let running = rt.block_on(serve_http(0, handler.clone())).unwrap();
        Emulator { rt, handler, port: running.port(), running: Some(running) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it and waits until connections are refused.
    fn stop(&mut self) {
        self.running = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the emulator on {} did not stop", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Serves the same state on the same port again.
    fn start(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.rt.block_on(serve_http(self.port, self.handler.clone())) {
                Ok(r) => {
                    self.running = Some(r);
                    return;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot restart on {}: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

struct Clouds {
    aws: Emulator,
    gcp: Emulator,
    aws_url: String,
    gcp_url: String,
}

fn clouds() -> Clouds {
    let aws = Emulator::new(hsm_emulator::aws::handler(hsm_emulator::aws::Args::default()).unwrap());
    let gcp = Emulator::new(hsm_emulator::gcp::handler());
    let aws_url = format!("aws-kms://?region={}&endpoint={}", hsm_emulator::aws::DEFAULT_REGION, aws.url());
    let gcp_url = format!(
        "gcp-kms://projects/ring/locations/global/keyRings/ring?endpoint={}&create_key_ring=true",
        gcp.url()
    );
    Clouds { aws, gcp, aws_url, gcp_url }
}

fn hsm() -> Hsm {
    Hsm::new()
        .env("AWS_ACCESS_KEY_ID", hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

/// The body of an envelope: everything after its header.
fn body(sealed: &[u8]) -> &[u8] {
    &sealed[hsm::envelope::inspect_bytes(sealed).unwrap().len..]
}

#[test]
fn three_providers_any_one_opens_two_of_three_needs_two_and_min_recipients_records_failures() {
    let mut c = clouds();
    let hsm = hsm();
    // The same key name in each provider: "ring".
    hsm.ok(&["key", "create", "ring", "--spec", "aes-256"], b"");
    hsm.ok(&["--provider", &c.aws_url, "key", "create", "ring", "--spec", "aes-256"], b"");
    hsm.ok(&["--provider", &c.gcp_url, "key", "create", "ring", "--spec", "aes-256"], b"");
    let aws = format!("{}#ring", c.aws_url);
    let gcp = format!("{}#ring", c.gcp_url);
    let plain = data(300_000);
    let input = hsm.file("plain", &plain);
    let recipients = ["--recipient", &aws, "--recipient", &gcp];
    let enc = |out: &str, extra: &[&str]| {
        let mut args = vec!["encrypt", "--envelope", "--key", "ring", "-i", &input, "-o", out];
        args.extend_from_slice(&recipients);
        args.extend_from_slice(extra);
        hsm.run(&args, b"")
    };
    assert_eq!(enc("flat.hsm", &[]).code, 0);
    assert_eq!(enc("split.hsm", &["--threshold", "2"]).code, 0);
    let shown = hsm.ok(&["envelope", "inspect", "split.hsm", "--output", "json"], b"").json();
    let providers: Vec<&str> =
        shown["recipients"].as_array().unwrap().iter().map(|r| r["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["local", "aws-kms", "gcp-kms"]);
    assert_eq!(shown["recipients"][2]["share"], "3 of 3 (any 2 open)");

    // "Local down": a home without the keystore that holds `ring`.
    let elsewhere = tempfile::tempdir().unwrap();
    let dec = |env_home: Option<&str>, file: &str| {
        let mut args = vec!["decrypt", "--key", "ring", "-i", file, "-o", "-"];
        args.extend_from_slice(&recipients);
        let mut cmd = hsm.command(&args);
        if let Some(h) = env_home {
            cmd.env("HSM_HOME", h);
        }
        let out = cmd.output().unwrap();
        (out.status.code().unwrap(), out.stdout, String::from_utf8(out.stderr).unwrap())
    };
    let home = elsewhere.path().to_str().unwrap();

    // Every provider up, then each one alone.
    assert_eq!(dec(None, "flat.hsm").1, plain);
    c.gcp.stop();
    assert_eq!(dec(Some(home), "flat.hsm").1, plain, "only aws-kms up");
    c.gcp.start();
    c.aws.stop();
    assert_eq!(dec(Some(home), "flat.hsm").1, plain, "only gcp-kms up");
    c.gcp.stop();
    assert_eq!(dec(None, "flat.hsm").1, plain, "only the local keystore up");
    let (code, _, err) = dec(Some(home), "flat.hsm");
    assert_ne!(code, 0, "nothing up");
    for who in ["local 'ring'", "aws-kms 'ring'", "gcp-kms 'ring'"] {
        assert!(err.contains(who), "the error names {who}: {err}");
    }
    assert_eq!(err.lines().count(), 1, "{err}");

    // 2-of-3: two up open it, one up is refused saying how many were reached.
    c.aws.start();
    assert_eq!(dec(None, "split.hsm").1, plain, "local + aws-kms");
    let (code, out, err) = dec(Some(home), "split.hsm");
    assert!(code != 0 && out.is_empty(), "only aws-kms up must not open a 2-of-3");
    assert!(err.contains("opened 1 of the 2 shares needed"), "{err}");
    c.gcp.start();
    assert_eq!(dec(Some(home), "split.hsm").1, plain, "aws-kms + gcp-kms");

    // min_recipients = 2 with gcp down: sealed, and the warning names gcp-kms.
    c.gcp.stop();
    let r = enc("degraded.hsm", &["--min-recipients", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning: recipient gcp-kms 'ring' did not protect the data key"),
        "{}",
        r.stderr
    );
    let shown = hsm.ok(&["envelope", "inspect", "degraded.hsm", "--output", "json"], b"").json();
    assert_eq!(shown["recipients"].as_array().unwrap().len(), 2);
    let r = enc("refused.hsm", &[]);
    assert_ne!(r.code, 0, "all must succeed by default");
    assert!(r.stderr.contains("2 of 3 recipients protected the data key, 3 required"), "{}", r.stderr);
    assert!(!hsm.path("refused.hsm").exists(), "a refused encrypt leaves no output");
    c.gcp.start();
    assert_eq!(dec(None, "degraded.hsm").1, plain);
}

#[test]
fn rewrap_moves_an_envelope_to_other_providers_and_the_original_key_can_go() {
    if !have(SoftHsm::available(), "SoftHSM2 (apt-get install softhsm2)") {
        return;
    }
    let mut c = clouds();
    let token = SoftHsm::new().unwrap();
    token.init_token("ring", "12345678", "1234").unwrap();
    let p11 = format!("pkcs11:token=ring?module-path={MODULE}&pin-value=1234");
    let hsm = hsm().env("SOFTHSM2_CONF", token.conf().to_str().unwrap());
    hsm.ok(&["key", "create", "original", "--spec", "aes-256"], b"");
    hsm.ok(&["--provider", &c.aws_url, "key", "create", "moved", "--spec", "aes-256"], b"");
    hsm.ok(&["--provider", &p11, "key", "create", "moved", "--spec", "aes-256"], b"");
    let plain = data(1 << 20);
    let input = hsm.file("plain", &plain);
    hsm.ok(
        &["encrypt", "--envelope", "--key", "original", "--context", "app=x", "-i", &input, "-o", "data.hsm"],
        b"",
    );
    let before = std::fs::read(hsm.path("data.hsm")).unwrap();

    let aws = format!("{}#moved", c.aws_url);
    let pkcs11 = format!("{p11}#moved");
    let r = hsm.run(
        &[
            "envelope",
            "rewrap",
            "data.hsm",
            "--key",
            "original",
            "--context",
            "app=x",
            "--add-recipient",
            &aws,
            "--add-recipient",
            &pkcs11,
            "--remove-recipient",
            "original",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("the encrypted body is unchanged"), "{}", r.stderr);
    let after = std::fs::read(hsm.path("data.hsm")).unwrap();
    assert_eq!(body(&after), body(&before), "the body is unchanged byte for byte");
    let shown = hsm.ok(&["envelope", "inspect", "data.hsm", "--output", "json"], b"").json();
    let providers: Vec<&str> =
        shown["recipients"].as_array().unwrap().iter().map(|r| r["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["aws-kms", "pkcs11"]);

    // The original key is scheduled for deletion: the data still opens, through either new
    // recipient, even with the other one down.
    hsm.ok(&["key", "delete", "original", "--days", "7"], b"");
    let dec = |extra: &[&str]| {
        let mut args =
            vec!["decrypt", "--key", "original", "--context", "app=x", "-i", "data.hsm", "-o", "-"];
        args.extend_from_slice(extra);
        hsm.run(&args, b"")
    };
    let r = dec(&["--recipient", &aws, "--recipient", &pkcs11]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, plain);
    c.aws.stop();
    assert_eq!(dec(&["--recipient", &aws, "--recipient", &pkcs11]).stdout, plain, "aws-kms down");
    c.aws.start();
    assert_eq!(dec(&["--recipient", &aws]).stdout, plain, "aws-kms alone");
    // Without a recipient that can open it, it is refused.
    assert_ne!(dec(&[]).code, 0);
}

#[test]
fn recipients_from_a_toml_file_and_to_current_versions_after_a_rotation() {
    let c = clouds();
    let hsm = hsm();
    hsm.ok(&["--provider", &c.aws_url, "key", "create", "rotating", "--spec", "aes-256"], b"");
    hsm.ok(&["key", "create", "local", "--spec", "aes-256"], b"");
    let toml = format!(
        "provider = \"local\"\n[local]\npath = \"{}\"\n[envelope]\nmin_recipients = 1\n\
         [[envelope.recipients]]\nprovider = \"{}\"\nkey = \"rotating\"\n",
        hsm.path("keystore").display(),
        c.aws_url
    );
    let config = hsm.file("hsm.toml", toml.as_bytes());
    let input = hsm.file("plain", b"rotate me");
    hsm.ok(
        &["--config", &config, "encrypt", "--envelope", "--key", "local", "-i", &input, "-o", "r.hsm"],
        b"",
    );
    let version = |hsm: &Hsm| {
        let shown = hsm.ok(&["envelope", "inspect", "r.hsm", "--output", "json"], b"").json();
        shown["recipients"][1]["version"].as_str().unwrap().to_owned()
    };
    let v1 = version(&hsm);
    hsm.ok(&["--provider", &c.aws_url, "key", "rotate", "rotating"], b"");
    let r = hsm.run(
        &["--config", &config, "envelope", "rewrap", "r.hsm", "--key", "local", "--to-current-versions"],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("rewrapped"), "{}", r.stderr);
    let v2 = version(&hsm);
    assert_ne!(v1, v2, "the aws-kms stanza now names the current version");
    let r = hsm.run(&["--config", &config, "decrypt", "--key", "local", "-i", "r.hsm", "-o", "-"], b"");
    assert_eq!((r.code, &r.stdout[..]), (0, &b"rotate me"[..]), "{}", r.stderr);

    // Bad recipients are refused before any provider call, naming the fix.
    let err = hsm.fails(2, &["encrypt", "--envelope", "--key", "local", "--recipient", "aws-kms://x"], b"");
    assert!(err.contains("PROVIDER_URL#KEY"), "{err}");
    let err = hsm.fails(4, &["encrypt", "--envelope", "--key", "local", "--min-recipients", "2"], b"x");
    assert!(err.contains("--recipient"), "{err}");
}
