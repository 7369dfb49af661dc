//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: what CI runs: `cargo fmt --check`, `cargo clippy -D warnings` over every target,
//!   then every test (unit, integration, conformance, CLI end-to-end, doc tests), with
//!   `HSM_REQUIRE_SERVERS=1` so that a test whose server or SDK is missing fails instead of
//!   skipping (`.ci/run` provides them all).
//! - `test`: only the tests.
//! - `lint`: only fmt and clippy.
//! - `bench`: the criterion benchmarks of hsm-local, then `openssl speed` on the same machine
//!   and a table of the ratios (`benches/compare.py`).
//! - `bench envelope`: envelope encryption of 1 GiB by the library against `openssl speed`
//!   (one core), then `hsm encrypt --envelope` / `hsm decrypt` against the AWS Encryption
//!   SDK CLI with the same `hsm-emulator aws` key, 1 and 4 GiB on tmpfs: seconds, MB/s, max
//!   RSS (`benches/envelope_cli.py`).
//! - `bench aws`: hsm-aws through `Arc<dyn Provider>` against the raw `aws-sdk-kms` client,
//!   same in-process emulator: p50/p99 latency and throughput with 1 and 32 tasks.
//!
//! Builds go to `$CARGO_TARGET_DIR` when set; CI points it outside the clone so repeat runs
//! on the same machine are warm. Dependencies: std only.

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn step(name: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("\n==> {name}: {cmd:?}");
    let started = Instant::now();
    let status = cmd.status().map_err(|e| format!("{name}: could not start: {e}"))?;
    eprintln!("<== {name}: {status} in {:.1} s", started.elapsed().as_secs_f64());
    if status.success() { Ok(()) } else { Err(format!("{name} failed ({status})")) }
}

fn lint() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("fmt", fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]);
    step("clippy", clippy)
}

/// Runs every test. In CI (`require_servers`), tests that need an external server (moto,
/// SoftHSM2, the venv's Python SDKs) fail when it is missing instead of skipping.
fn test(require_servers: bool) -> Result<(), String> {
    let mut t = cargo();
    t.args(["test", "--workspace", "--locked"]);
    if require_servers {
        t.env(REQUIRE_SERVERS, "1");
    }
    step("test", t)
}

/// The variable that turns "server missing: skipped" into a failure.
const REQUIRE_SERVERS: &str = "HSM_REQUIRE_SERVERS";

fn bench(extra: &[String]) -> Result<(), String> {
    if extra.first().map(String::as_str) == Some("envelope") {
        let mut build = cargo();
        build.args(["build", "--release", "--locked", "-p", "hsm-cli", "-p", "hsm-emulator"]);
        step("release binaries", build)?;
        let mut lib = cargo();
        lib.args(["bench", "-p", "hsm-benches", "--bench", "envelope"]);
        step("envelope library vs openssl speed", lib)?;
        let target = env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        let bin = |name: &str| format!("{target}/release/{name}");
        let mut cli = Command::new("python3");
        cli.args(["benches/envelope_cli.py", &bin("hsm"), &bin("hsm-emulator")]);
        return step("hsm CLI vs the AWS Encryption SDK CLI", cli);
    }
    if extra.first().map(String::as_str) == Some("keyring") {
        let mut b = cargo();
        b.args(["bench", "-p", "hsm-benches", "--bench", "keyring"]);
        return step("keyrings and the data-key cache against hsm-emulator aws", b);
    }
    if extra.first().map(String::as_str) == Some("aws") {
        let mut b = cargo();
        b.args(["bench", "-p", "hsm-benches", "--bench", "aws_overhead"]);
        return step("hsm-aws overhead over the raw SDK", b);
    }
    let mut b = cargo();
    b.args(["bench", "-p", "hsm-benches", "--bench", "local", "--"]).args(extra);
    step("criterion", b)?;
    let mut cmp = Command::new("python3");
    cmp.arg("benches/compare.py");
    step("compare with openssl speed", cmp)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => lint().and_then(|()| test(true)),
        Some("test") => test(false),
        Some("lint") => lint(),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <ci|test|lint|bench [aws | envelope | keyring | criterion args]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
