//! `cargo xtask setup`: provisions what the tests need and says where it is.
//!
//! 1. System tools from apt (`openssl`, SoftHSM2, OpenSC's `pkcs11-tool`, OpenSSH's
//!    `ssh-keygen`/`ssh-add`, Python's `venv`, and `npm` when `.ci/node` exists): installed
//!    with `apt-get` when running as root; otherwise one line naming the exact command, and
//!    a failure.
//! 2. The Python venv from `.ci/requirements.txt` in `$HSM_VENV` (default
//!    `$HOME/.cache/hsm-venv`), rebuilt when that file changes (a copy of it in the venv
//!    records what was installed; it is written last, so an interrupted install is redone).
//! 3. When `.ci/node/package.json` exists: `npm ci` of it in `$HSM_NODE_DIR` (default
//!    `$HOME/.cache/hsm-node`), reinstalled when `.ci/node/package-lock.json` changes.
//! 4. For the fuzz smoke run: the nightly toolchain must exist (otherwise one line naming
//!    the `rustup` command, and a failure); `cargo-fuzz` is installed with
//!    `cargo install --locked cargo-fuzz` when missing.
//!
//! The result is the environment the test processes get ([`Provisioned::env`]); a variable
//! already set by the caller wins.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tool the tests run, and the apt package that provides it.
struct Tool {
    /// How to tell it is there: a command that must start (and, with `must_succeed`, exit
    /// successfully; usage messages of some tools exit nonzero).
    probe: &'static [&'static str],
    must_succeed: bool,
    package: &'static str,
    why: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        probe: &["openssl", "version"],
        must_succeed: false,
        package: "openssl",
        why: "independent signature checks",
    },
    Tool {
        probe: &["softhsm2-util", "--version"],
        must_succeed: false,
        package: "softhsm2",
        why: "the PKCS#11 token of the pkcs11 tests",
    },
    Tool {
        probe: &["pkcs11-tool", "--help"],
        must_succeed: false,
        package: "opensc",
        why: "PKCS#11 interop tests",
    },
    Tool {
        probe: &["ssh-keygen", "-?"],
        must_succeed: false,
        package: "openssh-client",
        why: "SSH signature checks",
    },
    Tool {
        probe: &["ssh-add", "-?"],
        must_succeed: false,
        package: "openssh-client",
        why: "SSH agent tests",
    },
    Tool {
        probe: &["python3", "-c", "import ensurepip, venv"],
        must_succeed: true,
        package: "python3-venv",
        why: "the venv of moto and the vendors' SDKs",
    },
];

/// `npm`, needed only when the repository has `.ci/node/package.json`.
const NPM: Tool =
    Tool { probe: &["npm", "--version"], must_succeed: false, package: "npm", why: "the Node SDK tests" };

/// Where provisioning put things.
pub(crate) struct Provisioned {
    venv: PathBuf,
    node_modules: Option<PathBuf>,
}

impl Provisioned {
    /// The variables the test processes get, minus those the caller already set.
    pub(crate) fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut vars: Vec<(&'static str, OsString)> = vec![
            ("HSM_PYTHON", self.venv.join("bin/python").into()),
            ("HSM_MOTO_SERVER", self.venv.join("bin/moto_server").into()),
            (crate::REQUIRE_SERVERS, "1".into()),
        ];
        if let Some(m) = &self.node_modules {
            vars.push(("HSM_NODE_MODULES", m.clone().into()));
        }
        vars.retain(|(k, _)| env::var_os(k).is_none_or(|v| v.is_empty()));
        vars
    }
}

/// The repository root (xtask lives in `<root>/xtask`). `cargo run` names the manifest
/// directory at run time; the compile-time one is only a fallback, since a build directory
/// shared between checkouts can run a binary built in another one.
pub(crate) fn root() -> PathBuf {
    let manifest = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().map_or_else(|| manifest.clone(), Path::to_path_buf)
}

fn cache_dir(var: &str, default: &str) -> Result<PathBuf, String> {
    if let Some(v) = env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    let home = env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("setup: neither {var} nor HOME is set; set {var} to a writable directory"))?;
    Ok(Path::new(&home).join(".cache").join(default))
}

impl Tool {
    fn present(&self) -> bool {
        Command::new(self.probe[0])
            .args(&self.probe[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success() || !self.must_succeed)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs the apt packages of the tools that are missing.
fn system_packages(need_npm: bool) -> Result<(), String> {
    let mut missing: Vec<&Tool> = TOOLS.iter().filter(|t| !t.present()).collect();
    if need_npm && !NPM.present() {
        missing.push(&NPM);
    }
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    for t in &missing {
        eprintln!("setup: `{}` is missing ({}; apt package {})", t.probe[0], t.why, t.package);
    }
    if !is_root() {
        return Err(format!(
            "setup: missing system packages; run: sudo apt-get update && sudo apt-get install -y {list}"
        ));
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    crate::step("apt-get update", apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&packages);
    crate::step("apt-get install", install)?;
    if let Some(t) = missing.iter().find(|t| !t.present()) {
        return Err(format!("setup: `{}` still does not run after installing {}", t.probe[0], t.package));
    }
    Ok(())
}

/// Whether `stamp` holds exactly the bytes of `source` (a missing stamp never matches).
fn up_to_date(source: &Path, stamp: &Path) -> Result<bool, String> {
    let want = fs::read(source).map_err(|e| format!("setup: cannot read {}: {e}", source.display()))?;
    match fs::read(stamp) {
        Ok(have) => Ok(have == want),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("setup: cannot read {}: {e}", stamp.display())),
    }
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("setup: cannot remove {}: {e}", dir.display())),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("setup: cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// The venv of `.ci/requirements.txt`, rebuilt from scratch when the file changed.
fn python_venv(root: &Path) -> Result<PathBuf, String> {
    let venv = cache_dir("HSM_VENV", "hsm-venv")?;
    let reqs = root.join(".ci/requirements.txt");
    let stamp = venv.join("requirements.txt");
    if up_to_date(&reqs, &stamp)? {
        eprintln!("setup: Python venv {} is current", venv.display());
        return Ok(venv);
    }
    eprintln!("setup: building the Python venv {} from {}", venv.display(), reqs.display());
    remove_dir(&venv)?;
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("setup: cannot create {}: {e}", parent.display()))?;
    }
    let mut mk = Command::new("python3");
    mk.arg("-m").arg("venv").arg(&venv);
    crate::step("python venv", mk)?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "-q", "--disable-pip-version-check", "-r"]).arg(&reqs);
    crate::step("pip install", pip)?;
    copy(&reqs, &stamp)?;
    Ok(venv)
}

/// `npm ci` of `.ci/node` into the cache, redone when the lockfile changed. `None` when the
/// repository has no `.ci/node/package.json`.
fn node_modules(root: &Path) -> Result<Option<PathBuf>, String> {
    let src = root.join(".ci/node");
    let package = src.join("package.json");
    if !package.exists() {
        return Ok(None);
    }
    let lock = src.join("package-lock.json");
    if !lock.exists() {
        return Err(format!("setup: {} has no package-lock.json beside it; commit one", package.display()));
    }
    let dir = cache_dir("HSM_NODE_DIR", "hsm-node")?;
    let modules = dir.join("node_modules");
    // Written after a successful `npm ci`: the lockfile that node_modules was installed from.
    let stamp = dir.join("installed-package-lock.json");
    if up_to_date(&lock, &stamp)? && up_to_date(&package, &dir.join("package.json"))? && modules.is_dir() {
        eprintln!("setup: Node packages in {} are current", modules.display());
        return Ok(Some(modules));
    }
    eprintln!("setup: installing the Node packages of {} into {}", src.display(), dir.display());
    remove_dir(&dir)?;
    fs::create_dir_all(&dir).map_err(|e| format!("setup: cannot create {}: {e}", dir.display()))?;
    copy(&package, &dir.join("package.json"))?;
    copy(&lock, &dir.join("package-lock.json"))?;
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&dir);
    crate::step("npm ci", npm)?;
    copy(&lock, &stamp)?;
    Ok(Some(modules))
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The nightly toolchain and cargo-fuzz, which `cargo xtask fuzz` needs.
pub(crate) fn fuzz_tools() -> Result<(), String> {
    if !runs("cargo", &["+nightly", "--version"]) {
        return Err("setup: the nightly toolchain is missing (cargo fuzz needs it); run: \
                    rustup toolchain install nightly --profile minimal"
            .to_owned());
    }
    if runs("cargo", &["+nightly", "fuzz", "--version"]) {
        return Ok(());
    }
    eprintln!("setup: cargo-fuzz is missing (the fuzz targets); installing it");
    let mut install = Command::new("cargo");
    install.args(["install", "--locked", "cargo-fuzz"]);
    crate::step("cargo install cargo-fuzz", install)
        .map_err(|e| format!("{e}; run: cargo install --locked cargo-fuzz"))?;
    if runs("cargo", &["+nightly", "fuzz", "--version"]) {
        Ok(())
    } else {
        Err("setup: `cargo fuzz` still does not run; run: cargo install --locked cargo-fuzz".to_owned())
    }
}

/// Provisions everything; see the module docs.
pub(crate) fn setup() -> Result<Provisioned, String> {
    let root = root();
    let need_npm = root.join(".ci/node/package.json").exists();
    system_packages(need_npm)?;
    fuzz_tools()?;
    let venv = python_venv(&root)?;
    let node_modules = node_modules(&root)?;
    Ok(Provisioned { venv, node_modules })
}
