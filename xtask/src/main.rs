//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: the README's test command and what CI runs: `setup`, then `cargo fmt --check`,
//!   `cargo clippy -D warnings` over every target, then every test (unit, integration,
//!   conformance, CLI end-to-end, doc tests) with the provisioned paths (`HSM_PYTHON`,
//!   `HSM_MOTO_SERVER`, `HSM_NODE_MODULES`) and `HSM_REQUIRE_SERVERS=1`, so that a test whose
//!   server or SDK is missing fails instead of skipping. Variables already set win.
//!   After the tests, the fuzz smoke run (`fuzz --smoke`: every fuzz target for 10 s).
//! - `setup`: provisions what the tests need when it is missing (see `setup.rs`): apt packages
//!   when run as root (else the exact command to run, and a failure), the Python venv of
//!   `.ci/requirements.txt` in `$HSM_VENV` (default `~/.cache/hsm-venv`), `npm ci` of
//!   `.ci/node` in `$HSM_NODE_DIR` (default `~/.cache/hsm-node`) when that directory exists,
//!   cargo-fuzz when missing, and a check that the nightly toolchain exists.
//! - `fuzz [--smoke] [TARGET] [SECONDS]`: the cargo-fuzz targets of `fuzz/` on nightly (see
//!   `fuzz.rs`): one target or all, 600 s each (10 s with `--smoke`).
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
use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::time::Instant;

mod fuzz;
mod setup;

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

/// Runs every test with `env` added (in CI: the provisioned paths and `HSM_REQUIRE_SERVERS=1`,
/// so tests that need an external server or SDK fail when it is missing instead of skipping).
fn test(env: &[(&'static str, OsString)]) -> Result<(), String> {
    let mut t = cargo();
    t.args(["test", "--workspace", "--locked"]);
    for (k, v) in env {
        eprintln!("xtask: {k}={}", v.to_string_lossy());
        t.env(k, v);
    }
    step("test", t)
}

/// `setup`, lint, the tests in the provisioned environment, then the fuzz smoke run.
fn ci() -> Result<(), String> {
    let provisioned = setup::setup()?;
    lint()?;
    test(&provisioned.env())?;
    fuzz::fuzz(&["--smoke".to_owned()])
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
    // Every path below (.ci/, benches/, the workspace) is relative to the repository root.
    if let Err(e) = env::set_current_dir(setup::root()) {
        eprintln!("xtask: cannot enter the repository root: {e}");
        return ExitCode::FAILURE;
    }
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("setup") => setup::setup().map(|p| {
            for (k, v) in p.env() {
                println!("export {k}='{}'", v.to_string_lossy());
            }
        }),
        Some("test") => test(&[]),
        Some("lint") => lint(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|setup|test|lint|bench [aws | envelope | keyring | criterion args]\
                 |fuzz [--smoke] [TARGET] [SECONDS]>"
            );
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
