//! The conformance kit against the local provider: in memory, and as a keystore file in a
//! temporary directory both without a passphrase (random master key beside the file) and
//! with one. Every case must pass: the local provider declares everything, so nothing is
//! ignored.
//!
//! Each keystore starts with a key the kit did not create; after the run it must be the only
//! key left (the kit deletes every key it made, and nothing else).
//!
//! The `pkcs11` entry runs the kit against a throwaway SoftHSM2 token on tmpfs, created here
//! with `softhsm2-util` (`.ci/run` installs the `softhsm2` package). Every case SoftHSM
//! supports is declared and must pass; what it lacks is undeclared and shows as ignored
//! with the reason. Without `softhsm2-util` the entry is left out, loudly.
//!
//! The `aws-moto` entry runs the kit against AWS KMS as emulated by moto: the moto server
//! named by `HSM_MOTO_SERVER` (set by `.ci/run`) is started on a free port for the run and
//! killed afterwards. Cases that hit moto's known gaps are ignored with the gap as reason;
//! without `HSM_MOTO_SERVER` every aws-moto case is ignored (never passed).
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
use hsm_pkcs11::softhsm::SoftHsm;
use hsm_pkcs11::{PinSource, Pkcs11Config, Pkcs11Provider, TokenSelector};

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

/// The known gaps of moto's KMS emulation, each ignored with the gap as its reason.
fn aws_moto_options(moto_found: bool) -> Options {
    let options = Options::new().key_prefix("aws");
    if !moto_found {
        return options.ignore("*", hsm_aws::moto::MOTO_MISSING);
    }
    const FAKE_RSA: &str = "moto gap: RSAES_OAEP encryption is fake (moto returns its symmetric format)";
    const DIGEST: &str = "moto gap: Sign/Verify with MessageType DIGEST hashes again (signs H(H(m)))";
    options
        .ignore("encrypt::independent::rsa-*", FAKE_RSA)
        .ignore("wrap::independent::rsa-*", FAKE_RSA)
        .ignore("errors::tampered::rsa-*", FAKE_RSA)
        .ignore("errors::tampered-wrap::rsa-*", FAKE_RSA)
        .ignore("errors::foreign-ciphertext::rsa-*", FAKE_RSA)
        .ignore(
            "errors::tampered::aes-256::*",
            "moto gap: a changed ciphertext byte gets AccessDeniedException, not InvalidCiphertextException",
        )
        .ignore(
            "errors::tampered-wrap::aes-256::*",
            "moto gap: a changed ciphertext byte gets AccessDeniedException, not InvalidCiphertextException",
        )
        .ignore(
            "errors::foreign-ciphertext::aes-256::*",
            "moto gap: another key's ciphertext gets AccessDeniedException, not IncorrectKeyException",
        )
        .ignore("sign::digest::*", DIGEST)
        // Messages of 0 and of more than 4096 bytes are hashed locally and sent as DIGEST.
        .ignore("sign::independent::*", DIGEST)
        .ignore(
            "rotate::sign::rsa-*",
            "moto gap: RSASSA_PSS uses the maximum salt length, not the digest length as AWS does",
        )
        .ignore(
            "encrypt::empty::rsa-*",
            "AWS limit: KMS cannot RSA-encrypt an empty plaintext (1-byte minimum)",
        )
        .ignore("mac::roundtrip::*", "AWS limit: GenerateMac takes 1 to 4096 bytes; the case MACs 0 and 5000")
}

/// A throwaway SoftHSM2 token; `None` when SoftHSM is not installed. Sets `SOFTHSM2_CONF`,
/// so it must run before any other thread starts.
fn softhsm_token() -> Result<Option<(SoftHsm, Pkcs11Config)>, String> {
    if !SoftHsm::available() {
        // HSM_REQUIRE_SERVERS (set by `cargo xtask ci`): fail rather than skip.
        if std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty()) {
            return Err("SoftHSM2 is not installed (apt-get install softhsm2; .ci/run installs it), \
                        and HSM_REQUIRE_SERVERS is set"
                .into());
        }
        eprintln!(
            "\n*** hsm-tests: SoftHSM2 is not installed: the pkcs11 conformance entry is SKIPPED \
             (apt-get install softhsm2; .ci/run installs it) ***\n"
        );
        return Ok(None);
    }
    let hsm = SoftHsm::new().map_err(|e| format!("cannot create a SoftHSM token directory: {e}"))?;
    hsm.init_token("conformance", "12345678", "1234").map_err(|e| e.to_string())?;
    // SAFETY: called first thing in `main`, while the process has a single thread.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    }
    let pin = PinSource::Value(Zeroizing::new("1234".to_owned()));
    let cfg = Pkcs11Config::new(hsm_pkcs11::softhsm::MODULE, TokenSelector::Label("conformance".into()), pin);
    Ok(Some((hsm, cfg)))
}

/// Adds the pkcs11 entry when there is a SoftHSM token.
fn pkcs11_entry(runner: Runner, cfg: Option<Pkcs11Config>) -> Runner {
    let Some(cfg) = cfg else { return runner };
    let options = Options::new().key_prefix("p11");
    runner.provider("pkcs11", move || async move { Pkcs11Provider::connect(&cfg).map(Arc::new) }, options)
}

fn main() -> ExitCode {
    let softhsm = match softhsm_token() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
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

    let moto = match hsm_aws::moto::MotoServer::from_env() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot start moto_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let aws_options = aws_moto_options(moto.is_some());
    let aws_config = match &moto {
        Some(m) => m.config(),
        // Never contacted: every case is ignored.
        None => hsm_aws::AwsConfig::new()
            .with_region("us-east-1")
            .with_endpoint("http://127.0.0.1:9")
            .static_credentials("unused", "unused"),
    };

    let (p, l) = (plain.clone(), locked.clone());
    let conclusion = pkcs11_entry(Runner::new(), softhsm.as_ref().map(|(_, cfg)| cfg.clone()))
        .provider("memory", || async { Arc::new(LocalProvider::in_memory()) }, Options::new())
        .provider("file", move || async move { LocalProvider::open(&p, None).map(Arc::new) }, Options::new())
        .provider(
            "file-passphrase",
            move || async move { LocalProvider::open(&l, passphrase()).map(Arc::new) },
            Options::new(),
        )
        .provider(
            "aws-moto",
            move || async move { hsm_aws::AwsKmsProvider::connect(&aws_config).await.map(Arc::new) },
            aws_options,
        )
        .run_with_args(&Arguments::from_args());

    drop(moto);
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
