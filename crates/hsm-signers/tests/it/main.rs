//! hsm-signers against three providers: hsm-local in memory, a throwaway SoftHSM2 token
//! (hsm-pkcs11) and `hsm-emulator gcp` in-process (hsm-gcp; twice: RSA keys signing with PSS,
//! and in another key ring with PKCS#1 v1.5). Every test runs once per
//! provider, named `<provider>::<test>`; a spec the provider does not declare shows as
//! ignored with the reason.
//!
//! `harness = false`: SoftHSM reads `SOFTHSM2_CONF` when the module is initialized, so
//! `main` sets it while the process is still single-threaded. Without SoftHSM2 the pkcs11
//! tests are skipped with a message, unless `HSM_REQUIRE_SERVERS` is set (`cargo xtask ci`
//! sets it), in which case they fail.

mod jose;
mod signer;
mod ssh;
mod tls;
mod x509;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use hsm_core::{CreateKey, KeySpec, KeyUsage, Provider, Zeroizing};
use hsm_pkcs11::softhsm::{MODULE, SoftHsm};
use hsm_pkcs11::{PinSource, Pkcs11Config, Pkcs11Provider, TokenSelector};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// One provider under test.
#[derive(Clone)]
pub(crate) struct Backend {
    pub(crate) label: &'static str,
    pub(crate) provider: Arc<dyn Provider>,
}

pub(crate) type Outcome = Result<Completion, Failed>;

/// A test body, run once per backend.
pub(crate) type Case = fn(&Backend, &str) -> Outcome;

pub(crate) fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

pub(crate) fn check(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond { Ok(()) } else { Err(msg.into().into()) }
}

/// Creates `name` (spec, usage) or says why this provider cannot have such a key.
pub(crate) fn create(
    b: &Backend,
    name: &str,
    spec: KeySpec,
    usage: KeyUsage,
) -> Result<Option<String>, Failed> {
    if !b.provider.capabilities().supports_key(spec, usage) {
        return Ok(Some(format!("{} does not declare {spec} keys for {usage}", b.label)));
    }
    rt().block_on(b.provider.create_key(CreateKey::new(name, spec).usage(usage)))
        .map_err(|e| format!("create {name} ({spec}, {usage}) on {}: {e}", b.label))?;
    Ok(None)
}

pub(crate) fn servers_required() -> bool {
    std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty())
}

/// A SoftHSM2 token and its configuration, or why there is none.
fn softhsm() -> Result<Option<(SoftHsm, Pkcs11Config)>, String> {
    if !SoftHsm::available() {
        if servers_required() {
            return Err(
                "SoftHSM2 is not installed (apt-get install softhsm2) and HSM_REQUIRE_SERVERS is set".into(),
            );
        }
        eprintln!(
            "\n*** hsm-signers: SoftHSM2 is not installed: the pkcs11 tests are SKIPPED (apt-get install softhsm2) ***\n"
        );
        return Ok(None);
    }
    let hsm = SoftHsm::new().map_err(|e| format!("SoftHSM token directory: {e}"))?;
    hsm.init_token("signers", "12345678", "1234").map_err(|e| e.to_string())?;
    // SAFETY: called first thing in `main`, while the process has a single thread.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    }
    let pin = PinSource::Value(Zeroizing::new("1234".to_owned()));
    Ok(Some((hsm, Pkcs11Config::new(MODULE, TokenSelector::Label("signers".into()), pin))))
}

fn main() -> ExitCode {
    let token = match softhsm() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let args = Arguments::from_args();
    let mut backends =
        vec![Backend { label: "local", provider: Arc::new(hsm_local::LocalProvider::in_memory()) }];
    if let Some((_, cfg)) = &token {
        match Pkcs11Provider::connect(cfg) {
            Ok(p) => backends.push(Backend { label: "pkcs11", provider: Arc::new(p) }),
            Err(e) => {
                eprintln!("cannot open the SoftHSM2 token: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Cloud KMS fixes one algorithm per key: `gcp` signs RSA with PSS (the default),
    // `gcp-pkcs1` (another key ring) with PKCS#1 v1.5 SHA-256.
    let gcp = rt().block_on(async {
        let emu = hsm_emulator::gcp::start(hsm_emulator::gcp::Args { port: 0 }).await?;
        let cfg = |ring: &str| {
            hsm_gcp::GcpConfig::new("signers", "global", ring)
                .with_endpoint(emu.url())
                .with_credentials(hsm_gcp::Credentials::Anonymous)
                .create_key_ring(true)
                .max_attempts(1)
                .attempt_timeout(std::time::Duration::from_secs(120))
                .operation_timeout(std::time::Duration::from_secs(120))
        };
        let p = hsm_gcp::GcpKmsProvider::connect(&cfg("it")).await?;
        let pkcs1 = cfg("it-pkcs1").with_rsa_signature(hsm_core::SignatureAlgorithm::RsaPkcs1v15Sha256)?;
        let alt = hsm_gcp::GcpKmsProvider::connect(&pkcs1).await?;
        Ok::<_, Box<dyn std::error::Error>>((emu, p, alt))
    });
    let _gcp_emulator = match gcp {
        Ok((emu, p, alt)) => {
            backends.push(Backend { label: "gcp", provider: Arc::new(p) });
            backends.push(Backend { label: "gcp-pkcs1", provider: Arc::new(alt) });
            emu
        }
        Err(e) => {
            eprintln!("cannot start hsm-emulator gcp: {e}");
            return ExitCode::FAILURE;
        }
    };

    let cases: Vec<(&str, Case)> = signer::CASES
        .iter()
        .chain(jose::CASES)
        .chain(x509::CASES)
        .chain(tls::CASES)
        .chain(ssh::CASES)
        .copied()
        .collect();
    let mut trials = Vec::new();
    for b in &backends {
        for (name, case) in &cases {
            let b = b.clone();
            let case = *case;
            // Key names: unique per test and provider, portable everywhere.
            let key = format!("{}-{}", b.label, name.replace(['_', ':'], "-"));
            let key: String = key.chars().take(63).collect();
            trials.push(Trial::ignorable_test(format!("{}::{name}", b.label), move || case(&b, &key)));
        }
    }
    for t in signer::standalone() {
        trials.push(t);
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(backends);
    drop(token);
    conclusion.exit_code()
}
