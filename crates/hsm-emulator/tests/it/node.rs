//! Running the official Node.js SDK suites (`tests/node/*.mjs`).
//!
//! The packages are pinned in `.ci/node/package.json` + `package-lock.json` and installed by
//! `.ci/run` (`npm ci`) into a reused directory exported as `HSM_NODE_MODULES`; `HSM_NODE`
//! names the interpreter (default `node` on the `PATH`).

use std::path::PathBuf;
use std::process::Command;

/// `HSM_NODE_MODULES`, the `node_modules` directory holding the pinned SDKs; `None` (test
/// skipped, with the reason printed) when unset, a panic when `HSM_REQUIRE_SERVERS` is set.
pub(crate) fn modules() -> Option<PathBuf> {
    match std::env::var_os("HSM_NODE_MODULES").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let required = std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty());
            assert!(
                !required,
                "HSM_NODE_MODULES is not set but HSM_REQUIRE_SERVERS is: the Node.js SDK fidelity tests must run"
            );
            eprintln!(
                "skipped: HSM_NODE_MODULES is not set (the Node.js SDKs of .ci/node/package.json, installed by .ci/run)"
            );
            None
        }
    }
}

/// Runs `node tests/node/<script> <args>` with `HSM_NODE_MODULES` and `envs` set, off the async
/// executor; returns stdout, panics with the script's output when it fails.
pub(crate) async fn run(
    modules: PathBuf,
    script: &str,
    args: Vec<String>,
    envs: Vec<(String, String)>,
) -> String {
    let node = std::env::var_os("HSM_NODE").filter(|p| !p.is_empty()).unwrap_or_else(|| "node".into());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node").join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&node).arg(&path).args(&args).env("HSM_NODE_MODULES", &modules).envs(envs).output()
    })
    .await
    .expect("join")
    .expect("node (HSM_NODE or node on the PATH) runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
