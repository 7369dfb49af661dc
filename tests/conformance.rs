//! The conformance kit against the local provider: in memory, and as a keystore file in a
//! temporary directory both without a passphrase (random master key beside the file) and
//! with one. Every case must pass: the local provider declares everything, so nothing is
//! ignored.
//!
//! Each keystore starts with a key the kit did not create; after the run it must be the only
//! key left (the kit deletes every key it made, and nothing else).
//!
//! The `pkcs11` entry runs the kit against a throwaway SoftHSM2 token on tmpfs, created here
//! with `softhsm2-util` (`cargo xtask setup` installs the `softhsm2` package). Every case SoftHSM
//! supports is declared and must pass; what it lacks is undeclared and shows as ignored
//! with the reason. Without `softhsm2-util` the entry is left out, loudly.
//!
//! The `aws-moto` entry runs the kit against AWS KMS as emulated by moto: the moto server
//! named by `HSM_MOTO_SERVER` (set by `cargo xtask ci`) is started on a free port for the run and
//! killed afterwards. Cases that hit moto's known gaps are ignored with the gap as reason;
//! without `HSM_MOTO_SERVER` every aws-moto case is ignored (never passed).
//!
//! The `aws-emulator` entry runs the kit against `hsm-emulator aws`, started in-process on a
//! runtime of its own for the whole run: a faithful AWS KMS, so every case hsm-aws declares
//! must pass; only the AWS limits the aws-moto entry also names are ignored.
//!
//! The `azure-vault` and `azure-mhsm` entries run the kit against hsm-azure talking to the
//! in-process Key Vault emulator (`hsm_emulator::azure`, TLS with a generated CA) in vault
//! and in Managed HSM mode; each emulator is started on the runner's runtime and lives
//! until the run ends. Nothing is ignored: what Key Vault lacks (Ed25519, HMAC, AES in a
//! standard vault, deletion windows other than the vault's retention) is undeclared.
//!
//! The `gcp-emulator` entry runs the kit against Google Cloud KMS as served by the in-process
//! `hsm-emulator gcp` (started on the runner's runtime on a free port, stopped after the run),
//! through hsm-gcp and the official google-cloud-kms-v1 client. Cloud KMS fixes one algorithm
//! per key, so the provider declares one per spec (see hsm_gcp's crate docs); the others show
//! as ignored, undeclared. `gcp-emulator-alt` runs the kit again with the other configurable
//! choices (RSA PKCS#1 signing, RSA-OAEP-SHA1 encryption, raw AES-256-GCM keys).
//!
//! The `*-layered` entries (`memory-layered`, `pkcs11-layered`, `aws-emulator-layered`,
//! `azure-mhsm-layered`, `gcp-emulator-layered`) run the kit again with the provider under
//! hsm's resilience layers (retries, timeouts, the concurrency bound, the metadata and
//! public-key cache, observability; the SDK's own retries off): the layers must change no
//! answer.
//!
//! `cargo test -p hsm-tests --test conformance -- --list` lists the cases;
//! `cargo test -p hsm-tests --test conformance -- memory::errors::` runs one group on one store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use hsm_conformance::libtest_mimic::Arguments;
use hsm_conformance::{Options, Runner};
use hsm_core::{CreateKey, KeySpec, ListKeys, Provider as _, ProviderExt as _, Zeroizing};
use hsm_emulator::server::Running;
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

/// moto signs RSASSA-PSS with the maximum salt length; a strict local verifier refuses it.
const MOTO_PSS_SALT: &str =
    "moto gap: RSASSA_PSS uses the maximum salt length, not the digest length as AWS does";

/// The known gaps of moto's KMS emulation, each ignored with the gap as its reason.
fn aws_moto_options(moto_found: bool) -> Options {
    let options = Options::new().key_prefix("aws");
    if !moto_found {
        return options.ignore("*", hsm_aws::moto::MOTO_MISSING);
    }
    const FAKE_RSA: &str = "moto gap: RSAES_OAEP encryption is fake (moto returns its symmetric format)";
    const DIGEST: &str = "moto gap: Sign/Verify with MessageType DIGEST hashes again (signs H(H(m)))";
    aws_limits(options)
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
        .ignore("rotate::sign::rsa-*", MOTO_PSS_SALT)
        .ignore("*ed25519*", "moto gap: no ECC_NIST_EDWARDS25519 keys")
}

/// Limits of AWS KMS itself (not of an emulator), ignored on every AWS entry.
fn aws_limits(options: Options) -> Options {
    options
        .ignore(
            "encrypt::empty::rsa-*",
            "AWS limit: KMS cannot RSA-encrypt an empty plaintext (1-byte minimum)",
        )
        .ignore("mac::roundtrip::*", "AWS limit: GenerateMac takes 1 to 4096 bytes; the case MACs 0 and 5000")
        .ignore(
            "sign::independent::ed25519::*",
            "AWS limit: Ed25519 signs RAW messages of 1 to 4096 bytes; the case signs 0 and more than 4096",
        )
}

/// Only the cases that verify signatures.
fn verify_cases(options: Options) -> Options {
    options
        .only("sign::*")
        .only("rotate::sign::*")
        .only("errors::verify-modified::*")
        .only("errors::signature-length::*")
}

/// `hsm-emulator aws` on a runtime of its own that lives as long as the returned values.
fn aws_emulator() -> Result<(tokio::runtime::Runtime, hsm_emulator::server::Running), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime for hsm-emulator: {e}"))?;
    let running = rt
        .block_on(hsm_emulator::aws::start(hsm_emulator::aws::Args::default()))
        .map_err(|e| format!("cannot start hsm-emulator aws: {e}"))?;
    Ok((rt, running))
}

/// Running Key Vault emulators and their CA files, kept until the run ends.
type Emulators = Arc<std::sync::Mutex<Vec<(hsm_emulator::server::Running, tempfile::NamedTempFile)>>>;

/// Adds an entry running the kit against hsm-azure and an in-process Key Vault emulator
/// (Managed HSM mode when `managed_hsm`), started by the factory on the runner's runtime.
fn azure_entry(
    runner: Runner,
    label: &'static str,
    managed_hsm: bool,
    layers: bool,
    keep: Emulators,
) -> Runner {
    let factory = move || async move {
        let fail = |e: std::io::Error| hsm_core::Error::config("azure-keyvault", format!("emulator: {e}"));
        let args = hsm_emulator::azure::Args { managed_hsm, ..Default::default() };
        let (running, pem) = hsm_emulator::azure::start_with_ca(args).await.map_err(fail)?;
        let ca = tempfile::NamedTempFile::new().map_err(fail)?;
        std::fs::write(ca.path(), pem).map_err(fail)?;
        let kind = if managed_hsm { hsm_azure::VaultKind::ManagedHsm } else { hsm_azure::VaultKind::Vault };
        let config = hsm_azure::AzureConfig::custom(&running.url(), kind)?
            .with_ca_file(ca.path())
            .with_token("conformance");
        let provider = hsm_azure::AzureKeyVaultProvider::connect(&config)?;
        keep.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((running, ca));
        Ok::<_, hsm_core::Error>(with_layers(Arc::new(provider), layers))
    };
    let prefix = match (managed_hsm, layers) {
        (true, false) => "mhsm",
        (true, true) => "mhsml",
        (false, _) => "kv",
    };
    runner.provider(label, factory, Options::new().key_prefix(prefix))
}

/// The gcp-emulator entry: the emulator is started by the factory, on the runner's runtime,
/// and kept in `slot` until the run ends.
fn gcp_entry(
    runner: Runner,
    label: &str,
    alternatives: bool,
    layers: bool,
    slot: Arc<std::sync::Mutex<Vec<Running>>>,
) -> Runner {
    let factory = move || async move {
        let emu = hsm_emulator::gcp::start(hsm_emulator::gcp::Args { port: 0 })
            .await
            .map_err(|e| hsm_core::Error::config("gcp-kms", format!("cannot start hsm-emulator gcp: {e}")))?;
        let cfg = hsm_gcp::GcpConfig::new("conformance", "global", "kit")
            .with_endpoint(emu.url())
            .with_credentials(hsm_gcp::Credentials::Anonymous)
            .create_key_ring(true)
            .max_attempts(1)
            // The emulator generates RSA-4096 keys inside CreateCryptoKey, which can take many
            // seconds on a loaded 2-core machine (Cloud KMS itself answers at once).
            .attempt_timeout(std::time::Duration::from_secs(120))
            .operation_timeout(std::time::Duration::from_secs(120));
        let cfg = if alternatives {
            cfg.with_rsa_signature(hsm_core::SignatureAlgorithm::RsaPkcs1v15Sha256)?
                .with_rsa_encryption(hsm_core::EncryptionAlgorithm::RsaOaepSha1)?
                .raw_aes256(true)
        } else {
            cfg
        };
        slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(emu);
        let provider = hsm_gcp::GcpKmsProvider::connect(&cfg).await?;
        Ok::<_, hsm_core::Error>(with_layers(Arc::new(provider), layers))
    };
    let prefix = match (alternatives, layers) {
        (true, _) => "gcpalt",
        (false, false) => "gcp",
        (false, true) => "gcpl",
    };
    runner.provider(label, factory, Options::new().key_prefix(prefix))
}

/// A throwaway SoftHSM2 token; `None` when SoftHSM is not installed. Sets `SOFTHSM2_CONF`,
/// so it must run before any other thread starts.
fn softhsm_token() -> Result<Option<(SoftHsm, Pkcs11Config)>, String> {
    if !SoftHsm::available() {
        // HSM_REQUIRE_SERVERS (set by `cargo xtask ci`): fail rather than skip.
        if std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty()) {
            return Err(
                "SoftHSM2 is not installed (apt-get install softhsm2; `cargo xtask setup` installs it), \
                        and HSM_REQUIRE_SERVERS is set"
                    .into(),
            );
        }
        eprintln!(
            "\n*** hsm-tests: SoftHSM2 is not installed: the pkcs11 conformance entry is SKIPPED \
             (apt-get install softhsm2; `cargo xtask setup` installs it) ***\n"
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
    let layered = cfg.clone();
    runner
        .provider(
            "pkcs11",
            move || async move { Pkcs11Provider::connect(&cfg).map(Arc::new) },
            Options::new().key_prefix("p11"),
        )
        .provider(
            "pkcs11-layered",
            move || async move { Pkcs11Provider::connect(&layered).map(|p| with_layers(Arc::new(p), true)) },
            Options::new().key_prefix("p11l"),
        )
}

/// The `*-layered` entries: the provider under every layer `hsm::Config` applies to cloud
/// and PKCS#11 providers (retries, timeouts, concurrency bound, metadata and public-key
/// cache, observability) must answer exactly as the provider alone. Rate limits, which
/// only pace requests, are left out so the kit runs at full speed.
fn with_layers(p: Arc<dyn hsm_core::Provider>, on: bool) -> Arc<dyn hsm_core::Provider> {
    if !on {
        return p;
    }
    let mut config = hsm_layers::LayerConfig::for_provider(p.name());
    config.rate_limit = None;
    config.cache = Some(config.cache.unwrap_or_default());
    config.concurrency = Some(config.concurrency.unwrap_or(16));
    hsm_layers::layered(p, &config)
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

    let (emulator_rt, emulator) = match aws_emulator() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let emulator_config = hsm_aws::AwsConfig::new()
        .with_region(hsm_emulator::aws::DEFAULT_REGION)
        .with_endpoint(emulator.url())
        .static_credentials(
            hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID,
            hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY,
        )
        .operation_timeout(std::time::Duration::from_secs(60));
    let emulator_local_config = emulator_config.clone();
    let emulator_layered_config = emulator_config.clone();

    let (p, l) = (plain.clone(), locked.clone());
    let emulators = Emulators::default();
    let gcp_emulators = Arc::new(std::sync::Mutex::new(Vec::new()));
    let runner = pkcs11_entry(Runner::new(), softhsm.as_ref().map(|(_, cfg)| cfg.clone()));
    let runner = azure_entry(runner, "azure-vault", false, false, emulators.clone());
    let runner = azure_entry(runner, "azure-mhsm", true, false, emulators.clone());
    let runner = azure_entry(runner, "azure-mhsm-layered", true, true, emulators.clone());
    let runner = gcp_entry(runner, "gcp-emulator", false, false, gcp_emulators.clone());
    let runner = gcp_entry(runner, "gcp-emulator-alt", true, false, gcp_emulators.clone());
    let runner = gcp_entry(runner, "gcp-emulator-layered", false, true, gcp_emulators.clone());
    let conclusion = runner
        .provider("memory", || async { Arc::new(LocalProvider::in_memory()) }, Options::new())
        .provider(
            "memory-layered",
            || async { with_layers(Arc::new(LocalProvider::in_memory()), true) },
            Options::new(),
        )
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
        .provider(
            "aws-emulator",
            move || async move { hsm_aws::AwsKmsProvider::connect(&emulator_config).await.map(Arc::new) },
            aws_limits(Options::new().key_prefix("aws")),
        )
        .provider(
            "aws-emulator-layered",
            move || async move {
                let cfg = emulator_layered_config.max_attempts(1);
                hsm_aws::AwsKmsProvider::connect(&cfg).await.map(|p| with_layers(Arc::new(p), true))
            },
            aws_limits(Options::new().key_prefix("awsl")),
        )
        // Signatures checked locally with the cached public key must get the service's answers.
        .provider(
            "aws-emulator-local-verify",
            move || async move {
                let cfg = emulator_local_config.verification(hsm_aws::Verification::Local);
                hsm_aws::AwsKmsProvider::connect(&cfg).await.map(Arc::new)
            },
            verify_cases(aws_limits(Options::new().key_prefix("awslv"))),
        )
        .run_with_args(&Arguments::from_args());

    drop(moto);
    drop(emulator);
    drop(emulator_rt);
    drop(emulators);
    drop(gcp_emulators);
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
