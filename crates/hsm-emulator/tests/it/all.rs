//! `hsm-emulator all`: one process serving the three protocols, the environment printed for
//! `eval` and written to the ready file, the three official Python clients at once, a clean
//! exit on SIGTERM.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::state::TempDir;

/// The `export NAME='value'` lines parsed (values without quotes).
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// Starts `hsm-emulator all` with `extra` arguments; returns the child, its stdout up to the
/// ready line, and the ready file's content.
fn start_all(dir: &TempDir, extra: &[&str]) -> (std::process::Child, String, String) {
    let ready = dir.join("ready");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
        .arg("all")
        .arg("--ready-file")
        .arg(&ready)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("hsm-emulator all exited: {out}\n{}", String::from_utf8_lossy(&o.stderr));
        }
        out.push_str(&line);
        if line.trim() == "# hsm-emulator all: ready" {
            break;
        }
    }
    let file = std::fs::read_to_string(&ready).expect("the ready file exists once the ready line is printed");
    (child, out, file)
}

fn sigterm_and_wait(mut child: std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("hsm-emulator all did not exit within 5 s of SIGTERM");
}

#[test]
fn prints_an_evaluable_environment_and_stops_on_sigterm() {
    let dir = TempDir::new("all-env");
    let state = dir.join("state").display().to_string();
    let (child, out, file) = start_all(&dir, &["--state", &state]);
    let env = parse_env(&out);
    assert_eq!(parse_env(&file), env, "the ready file holds the same environment");
    assert!(env["AWS_ENDPOINT_URL_KMS"].starts_with("http://127.0.0.1:"), "{out}");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "testing");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert!(env["AZURE_KEYVAULT_URL"].starts_with("https://127.0.0.1:"), "{out}");
    assert_eq!(env["HSM_EMULATOR_AZURE_CA"], format!("{state}.azure-ca.pem"));
    assert_eq!(env["NODE_EXTRA_CA_CERTS"], env["HSM_EMULATOR_AZURE_CA"]);
    assert!(
        std::fs::read_to_string(&env["HSM_EMULATOR_AZURE_CA"])
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(env["HSM_EMULATOR_GCP_URL"].starts_with("http://127.0.0.1:"), "{out}");
    assert_eq!(env["CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS"], format!("{}/", env["HSM_EMULATOR_GCP_URL"]));
    // A POSIX shell evaluates it as printed.
    let script = format!("{out}\nprintf '%s|%s' \"$AWS_ENDPOINT_URL_KMS\" \"$HSM_EMULATOR_GCP_URL\"");
    let sh = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sh.stdout),
        format!("{}|{}", env["AWS_ENDPOINT_URL_KMS"], env["HSM_EMULATOR_GCP_URL"])
    );
    let status = sigterm_and_wait(child);
    assert!(status.success(), "{status}");
    // The listeners are gone.
    let addr = env["HSM_EMULATOR_GCP_URL"].trim_start_matches("http://").to_owned();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// The three official Python clients (boto3, azure-keyvault-keys, google-cloud-kms) run their
/// fidelity suites against one `hsm-emulator all` process at the same time.
#[test]
fn answers_the_three_official_python_clients_at_once() {
    let python = match std::env::var_os("HSM_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => p,
        None => {
            let required = std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty());
            assert!(
                !required,
                "HSM_PYTHON is not set but HSM_REQUIRE_SERVERS is: the all-mode test must run"
            );
            eprintln!("skipped: HSM_PYTHON is not set (the venv of .ci/requirements.txt)");
            return;
        }
    };
    let dir = TempDir::new("all-py");
    let (child, out, _) = start_all(&dir, &[]);
    let env = parse_env(&out);
    let py = |script: &str, args: Vec<String>| {
        let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
        Command::new(&python)
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = vec![
        ("aws_boto3.py", py("aws_boto3.py", vec![env["AWS_ENDPOINT_URL_KMS"].clone()])),
        (
            "azure_keyvault.py",
            py(
                "azure_keyvault.py",
                vec![env["AZURE_KEYVAULT_URL"].clone(), env["HSM_EMULATOR_AZURE_CA"].clone(), "vault".into()],
            ),
        ),
        ("gcp_kms.py", py("gcp_kms.py", vec![env["HSM_EMULATOR_GCP_URL"].clone()])),
    ];
    for (script, run) in runs {
        let o = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{script} against hsm-emulator all failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains("passed"), "{script}: {stdout}");
        eprintln!("{script}: {}", stdout.lines().last().unwrap_or_default());
    }
    assert!(sigterm_and_wait(child).success());
    let _ = std::fs::remove_file(&env["HSM_EMULATOR_AZURE_CA"]);
}
