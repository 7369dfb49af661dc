//! `cargo xtask fuzz [--smoke] [TARGET] [SECONDS]`: the cargo-fuzz targets of `fuzz/`.
//!
//! - Without `--smoke`: one target (or every target in turn) for `SECONDS` (default 600)
//!   each, growing a working corpus in `fuzz/corpus-run/TARGET` (not committed) from the
//!   committed seeds in `fuzz/corpus/TARGET`.
//! - `--smoke` (what `cargo xtask ci` runs): every target (or one) for `SECONDS` (default
//!   10) each from the committed seeds, writing nothing into the repository but crash
//!   artifacts (`fuzz/artifacts/TARGET/`, not committed).
//!
//! Builds use the nightly toolchain (`cargo +nightly fuzz`) and AddressSanitizer, into
//! `$HSM_FUZZ_TARGET_DIR`, else `$CARGO_TARGET_DIR/fuzz`, else `fuzz/target`: kept apart from
//! the stable builds so neither invalidates the other. Long runs build optimized with debug
//! assertions (`-O -a`); the smoke run builds the dev profile (`--dev`, debug assertions on),
//! which compiles the cloud SDKs that `config` and `der_jwk` pull in about a third faster
//! cold (19 against 29 minutes on the 2-core CI machine), and 10 s need no optimizer.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// Every target in `fuzz/Cargo.toml`, in the order runs take them.
pub(crate) const TARGETS: &[&str] =
    &["blob", "envelope_header", "config", "der_jwk", "emulator_aws", "emulator_azure", "emulator_gcp"];

const SMOKE_SECONDS: u64 = 10;
const RUN_SECONDS: u64 = 600;

fn target_dir() -> PathBuf {
    if let Some(d) = env::var_os("HSM_FUZZ_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("fuzz"),
        None => PathBuf::from("fuzz/target"),
    }
}

fn cargo_fuzz(sub: &str, smoke: bool) -> Command {
    // rustup's `cargo` proxy picks the toolchain from `+nightly`; CARGO (set by `cargo run`)
    // names the stable binary itself, so it is not used here.
    let mut c = Command::new("cargo");
    c.args(["+nightly", "fuzz", sub, "--fuzz-dir", "fuzz"]);
    c.args(if smoke { &["--dev"][..] } else { &["-O", "-a"][..] });
    c.arg("--target-dir").arg(target_dir());
    c
}

/// Parses `[--smoke] [TARGET] [SECONDS]` and runs.
pub(crate) fn fuzz(args: &[String]) -> Result<(), String> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut targets: Vec<&str> = TARGETS.to_vec();
    let mut seconds = if smoke { SMOKE_SECONDS } else { RUN_SECONDS };
    for a in args.iter().filter(|a| *a != "--smoke") {
        if let Ok(n) = a.parse::<u64>() {
            seconds = n;
        } else if let Some(t) = TARGETS.iter().find(|t| **t == a) {
            targets = vec![t];
        } else {
            return Err(format!("fuzz: unknown target or seconds '{a}'; targets: {}", TARGETS.join(", ")));
        }
    }
    crate::setup::fuzz_tools()?;
    // One build of every target (they share the dependency graph); each run then starts at once.
    crate::step("fuzz build", cargo_fuzz("build", smoke))?;
    for target in targets {
        let seeds = PathBuf::from("fuzz/corpus").join(target);
        let mut run = cargo_fuzz("run", smoke);
        run.arg(target);
        if smoke {
            // The working corpus (where libFuzzer adds what it finds) is thrown away.
            let scratch = target_dir().join("smoke-corpus").join(target);
            let _ = fs::remove_dir_all(&scratch);
            fs::create_dir_all(&scratch)
                .map_err(|e| format!("fuzz: cannot create {}: {e}", scratch.display()))?;
            run.arg(&scratch);
        } else {
            let work = PathBuf::from("fuzz/corpus-run").join(target);
            fs::create_dir_all(&work).map_err(|e| format!("fuzz: cannot create {}: {e}", work.display()))?;
            run.arg(&work);
        }
        run.arg(&seeds).arg("--").args([
            format!("-max_total_time={seconds}"),
            // RSA key generation in the emulators takes seconds under ASan; anything slower hangs.
            "-timeout=60".to_owned(),
            "-print_final_stats=1".to_owned(),
        ]);
        crate::step(&format!("fuzz {target} ({seconds} s)"), run)?;
    }
    Ok(())
}
