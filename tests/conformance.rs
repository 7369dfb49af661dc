//! The conformance kit against the local provider: in memory, and as a keystore file in a
//! temporary directory both without a passphrase (random master key beside the file) and
//! with one. Every case must pass: the local provider declares everything, so nothing is
//! ignored.
//!
//! Each keystore starts with a key the kit did not create; after the run it must be the only
//! key left (the kit deletes every key it made, and nothing else).
//!
//! `cargo test -p hsm-tests --test conformance -- --list` lists the cases;
//! `cargo test -p hsm-tests --test conformance -- memory::errors::` runs one group on one store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use hsm_conformance::libtest_mimic::Arguments;
use hsm_conformance::{Options, Runner};
use hsm_core::{CreateKey, KeySpec, ListKeys, Provider as _, ProviderExt as _, Zeroizing};
use hsm_local::LocalProvider;

const PRECIOUS: &str = "precious-user-key";

fn passphrase() -> Option<Zeroizing<String>> {
    Some(Zeroizing::new("correct horse battery staple".to_owned()))
}

/// Creates the key the kit must leave alone.
async fn seed(path: &Path, passphrase: Option<Zeroizing<String>>) -> Result<(), String> {
    let store = LocalProvider::open(path, passphrase).map_err(|e| e.to_string())?;
    store.create_key(CreateKey::new(PRECIOUS, KeySpec::Aes256)).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The keys left in a keystore.
async fn left(path: &Path, passphrase: Option<Zeroizing<String>>) -> Result<Vec<String>, String> {
    let store = LocalProvider::open(path, passphrase).map_err(|e| e.to_string())?;
    let keys = store.list_all(ListKeys::new()).await.map_err(|e| e.to_string())?;
    Ok(keys.into_iter().map(|k| k.name).collect())
}

fn main() -> ExitCode {
    let setup = || -> Result<(tempfile::TempDir, tokio::runtime::Runtime), String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        Ok((dir, rt))
    };
    let (dir, rt) = match setup() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let plain: PathBuf = dir.path().join("plain.hsm");
    let locked: PathBuf = dir.path().join("locked.hsm");
    for (path, pass) in [(&plain, None), (&locked, passphrase())] {
        if let Err(e) = rt.block_on(seed(path, pass)) {
            eprintln!("cannot seed {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }

    let (p, l) = (plain.clone(), locked.clone());
    let conclusion = Runner::new()
        .provider("memory", || async { Arc::new(LocalProvider::in_memory()) }, Options::new())
        .provider("file", move || async move { LocalProvider::open(&p, None).map(Arc::new) }, Options::new())
        .provider(
            "file-passphrase",
            move || async move { LocalProvider::open(&l, passphrase()).map(Arc::new) },
            Options::new(),
        )
        .run_with_args(&Arguments::from_args());

    let mut ok = !conclusion.has_failed();
    for (path, pass) in [(&plain, None), (&locked, passphrase())] {
        match rt.block_on(left(path, pass)) {
            Ok(names) if names == [PRECIOUS] => {}
            Ok(names) => {
                eprintln!(
                    "after the run {} should hold only '{PRECIOUS}', but holds {names:?}",
                    path.display()
                );
                ok = false;
            }
            Err(e) => {
                eprintln!("cannot reopen {} after the run: {e}", path.display());
                ok = false;
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
