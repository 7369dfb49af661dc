//! `--faults` and `--quota` on the command line: the vendor's own throttle answers, the
//! server-side quota, and the statistics endpoint, driven through the binary.

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Child, Command, Stdio};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::ProvideErrorMetadata as _;

/// The binary in `mode` with `args`, and the URL it listens on; killed on drop.
struct Emulator {
    child: Child,
    url: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn emulator(mode: &str, args: &[&str]) -> Emulator {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
        .arg(mode)
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    Emulator { child, url }
}

/// One plain HTTP/1.1 request; the status code and body.
fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

fn stats(url: &str) -> serde_json::Value {
    let (status, body) = http(url, "GET", hsm_emulator::faults::STATS_PATH, "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn faults_answer_in_googles_format_with_retry_info_and_are_counted() {
    let emu = emulator("gcp", &["--faults", "throttle=100%,retry_after=2s"]);
    let (status, body) = http(&emu.url, "GET", "/v1/projects/p/locations/global/keyRings/r", "");
    assert_eq!(status, 429, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(v["error"]["details"][0]["@type"], "type.googleapis.com/google.rpc.RetryInfo");
    assert_eq!(v["error"]["details"][0]["retryDelay"], "2.000s");
    let s = stats(&emu.url);
    assert_eq!((s["requests"].as_u64(), s["throttled"].as_u64()), (Some(1), Some(1)), "{s}");
}

#[test]
fn bad_fault_and_quota_specs_are_usage_errors_that_say_why() {
    for (flag, value, says) in [
        ("--faults", "throttle=200%", "percentage"),
        ("--quota", "fast", "500/s"),
        ("--quota", "5/h", "unit"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hsm-emulator"))
            .args(["aws", "--port", "0", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

/// `--quota 5/s`: a burst of one second's worth passes, the rest get KMS's own
/// `ThrottlingException` (which the SDK recognises), and a second later requests pass again.
#[tokio::test]
async fn a_quota_throttles_like_kms_and_refills() {
    let emu = emulator("aws", &["--quota", "5/s"]);
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(hsm_emulator::aws::DEFAULT_REGION))
        .endpoint_url(&emu.url)
        .credentials_provider(Credentials::new(
            hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID,
            hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    let kms = aws_sdk_kms::Client::from_conf(conf);
    let (mut ok, mut throttled) = (0, 0);
    for _ in 0..20 {
        match kms.list_keys().send().await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
                throttled += 1;
            }
        }
    }
    // The burst is 5; a request or two more may pass as the bucket refills during the loop.
    assert!((5..=7).contains(&ok), "{ok} passed, {throttled} throttled");
    let s = stats(&emu.url);
    assert_eq!(s["requests"].as_u64(), Some(20), "{s}");
    assert_eq!(s["over_quota"].as_u64(), Some(throttled), "{s}");
    assert_eq!(s["throttled"].as_u64(), Some(throttled), "{s}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    kms.list_keys().send().await.expect("the quota refills");
}
