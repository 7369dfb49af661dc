//! Runs the built `hsm` binary in a private HSM_HOME.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A private home directory and the environment every child process gets.
pub(crate) struct Hsm {
    pub(crate) home: tempfile::TempDir,
    vars: Vec<(String, String)>,
    /// Instead of the `hsm` binary, this test of the test binary itself, which runs
    /// `hsm_cli::run` on the arguments in `HSM_TEST_CLI_ARGS` (an application's own `hsm`).
    child_test: Option<&'static str>,
}

/// The variable a [`Hsm::application`] child test reads its command line from,
/// arguments separated by U+001F.
pub(crate) const CLI_ARGS: &str = "HSM_TEST_CLI_ARGS";

/// What a finished process left behind.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&self.stdout)))
    }
}

impl Hsm {
    pub(crate) fn new() -> Self {
        Hsm { home: tempfile::tempdir().expect("temp dir"), vars: Vec::new(), child_test: None }
    }

    /// Runs an application's own `hsm` instead of ours: the test `child_test` of this test
    /// binary, which calls `hsm_cli::run` with the arguments in [`CLI_ARGS`] (libtest adds
    /// its "running 1 test" lines to stdout).
    pub(crate) fn application(mut self, child_test: &'static str) -> Self {
        self.child_test = Some(child_test);
        self
    }

    /// Sets a variable for every later child process.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub(crate) fn file(&self, name: &str, contents: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, contents).expect("write test file");
        p.to_str().expect("UTF-8 temp path").to_owned()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match self.child_test {
            None => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm"));
                cmd.args(args);
                cmd
            }
            Some(test) => {
                let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
                cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
                    .env(CLI_ARGS, args.join("\u{1f}"));
                cmd
            }
        };
        cmd.current_dir(self.home.path())
            .env("HSM_HOME", self.home.path())
            .env_remove("HSM_PROVIDER")
            .env_remove("HSM_CONFIG")
            .env_remove("HSM_PASSPHRASE");
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `hsm args...` with `stdin` piped in.
    pub(crate) fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hsm");
        let mut input = child.stdin.take().expect("stdin pipe");
        let data = stdin.to_vec();
        // A command that does not read stdin may close it early: ignore EPIPE.
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let Output { status, stdout, stderr } = child.wait_with_output().expect("wait for hsm");
        let _ = writer.join();
        let stderr = String::from_utf8(stderr).expect("stderr is UTF-8");
        assert!(!stderr.contains("panicked"), "hsm {args:?} panicked: {stderr}");
        let mut stdout = stdout;
        if let Some(test) = self.child_test {
            // What libtest prints before the child test runs the CLI.
            let banner = format!("\nrunning 1 test\ntest {test} ... ");
            if stdout.starts_with(banner.as_bytes()) {
                stdout.drain(..banner.len());
            }
        }
        Run { code: status.code().expect("hsm exited normally, not by a signal"), stdout, stderr }
    }

    /// Runs and asserts exit 0 with nothing on stderr.
    pub(crate) fn ok(&self, args: &[&str], stdin: &[u8]) -> Run {
        let r = self.run(args, stdin);
        assert_eq!(r.code, 0, "hsm {args:?} failed: {}", r.stderr);
        assert!(r.stderr.is_empty(), "hsm {args:?} wrote to stderr: {}", r.stderr);
        r
    }

    /// Runs and asserts exit `code` with exactly one `error: ...` line on stderr; returns it.
    pub(crate) fn fails(&self, code: i32, args: &[&str], stdin: &[u8]) -> String {
        let r = self.run(args, stdin);
        assert_eq!(r.code, code, "hsm {args:?}: stderr {:?}, stdout {:?}", r.stderr, r.stdout_text());
        assert!(r.stderr.starts_with("error: "), "hsm {args:?}: {:?}", r.stderr);
        if code != 2 {
            assert_eq!(r.stderr.lines().count(), 1, "one line: {:?}", r.stderr);
            assert!(r.stdout.is_empty(), "hsm {args:?} wrote to stdout on error");
        }
        r.stderr
    }
}

/// Whether `HSM_REQUIRE_SERVERS` asks for failures instead of skips (the same check as
/// `hsm_aws::moto::servers_required`).
fn servers_required() -> bool {
    std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty())
}

/// `false` (after saying so) when `what` is missing and skipping is allowed.
pub(crate) fn have(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!servers_required(), "{what} is missing and HSM_REQUIRE_SERVERS is set");
        eprintln!("skipped: {what} is missing");
    }
    ok
}

/// Whether `openssl` can be run.
pub(crate) fn openssl() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

/// Runs openssl in `dir`; true when it exits 0.
pub(crate) fn openssl_ok(dir: &Path, args: &[&str]) -> bool {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    if !out.status.success() {
        eprintln!(
            "openssl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

/// The same story against any provider selected by `url` (already in `hsm`'s `HSM_PROVIDER`):
/// create with tags, encrypt and decrypt, a duplicate name through `--provider`, sign and
/// verify with exit codes, and a JSON listing.
pub(crate) fn provider_story(hsm: &Hsm, url: &str) {
    hsm.ok(&["key", "create", "orders", "--spec", "aes-256", "--tag", "team=payments"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "orders"], b"card number").stdout;
    let blob = hsm::Ciphertext::from_bytes(&ct).unwrap();
    assert_eq!((blob.key(), blob.version()), ("orders", "1"));
    assert_eq!(hsm.ok(&["decrypt", "--key", "orders"], &ct).stdout, b"card number");

    // --native writes the provider's own ciphertext (no hsm header), which decrypt --native
    // opens with the key named; an hsm decrypt of it says what it is not.
    let native = hsm.ok(&["encrypt", "--key", "orders", "--native", "--aad", "ctx"], b"card number").stdout;
    assert!(hsm::Ciphertext::from_bytes(&native).is_err());
    let opened = hsm.ok(&["decrypt", "--key", "orders", "--native", "--aad", "ctx"], &native).stdout;
    assert_eq!(opened, b"card number");
    let msg = hsm.fails(4, &["decrypt", "--key", "orders"], &native);
    assert!(msg.contains("not an hsm ciphertext") && msg.contains("--native"), "{msg}");
    let msg = hsm.fails(4, &["decrypt", "--key", "orders@1", "--native", "--key-version", "2"], &native);
    assert!(msg.contains("--key-version"), "{msg}");

    // --provider works the same, and the name is taken.
    let msg = hsm.fails(4, &["--provider", url, "key", "create", "orders", "--spec", "aes-256"], b"");
    assert!(msg.contains("already exists"), "{msg}");

    hsm.ok(&["key", "create", "signer", "--spec", "ec-p256"], b"");
    let data = hsm.file("data.txt", b"Data to sign");
    hsm.ok(&["sign", "--key", "signer", "-i", &data, "-o", "sig.bin"], b"");
    let r = hsm.ok(&["verify", "--key", "signer", "--signature", "sig.bin", "-i", &data], b"");
    assert_eq!(r.stdout_text(), "valid\n");
    let r = hsm.run(&["verify", "--key", "signer", "--signature", "sig.bin"], b"other data");
    assert_eq!((r.code, r.stdout_text().as_str()), (1, "invalid\n"));

    let listed = hsm.ok(&["key", "list", "--output", "json"], b"").json();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["orders", "signer"]);
}
