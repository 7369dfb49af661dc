//! A provider from outside hsm, registered by scheme, is configured exactly like the built-in
//! ones: by URL, by TOML file, through `HSM_PROVIDER` and `HSM_CONFIG`, and in an
//! application's own `hsm` command line (`hsm_cli::run` after `hsm::register_scheme`).
//!
//! The provider, "acme", keeps its keys in `DIR/acme.ks`, a keystore of the local provider:
//! its URL is `acme:/DIR`, its table `[acme]` with `dir = "DIR"` (relative to the file).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use hsm::registry::{OpenOptions, ProviderSettings, Scheme};
use hsm::settings::Section;
use hsm::{Client, Config, CreateKey, Error, KeySpec, Provider, Result};

use crate::harness::{CLI_ARGS, Hsm};

/// How many times this process opened an acme provider.
static OPENS: AtomicUsize = AtomicUsize::new(0);

struct Acme;

#[derive(Debug, Clone, PartialEq)]
struct AcmeSettings {
    dir: PathBuf,
}

impl AcmeSettings {
    fn keystore(dir: &Path) -> PathBuf {
        dir.join("acme.ks")
    }
}

#[hsm::async_trait]
impl ProviderSettings for AcmeSettings {
    fn provider_name(&self) -> &'static str {
        "acme"
    }

    async fn open(&self, _: &OpenOptions) -> Result<Arc<dyn Provider>> {
        OPENS.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(hsm::local::LocalProvider::open(Self::keystore(&self.dir), None)?))
    }
}

impl Scheme for Acme {
    fn provider(&self) -> &'static str {
        "acme"
    }

    fn url_schemes(&self) -> &[&'static str] {
        &["acme"]
    }

    fn section(&self) -> Option<&'static str> {
        Some("acme")
    }

    fn url_form(&self) -> &'static str {
        "acme:/DIR"
    }

    fn parse_url(&self, url: &str) -> Result<Box<dyn ProviderSettings>> {
        match url.split_once(':') {
            Some((_, dir)) if dir.starts_with('/') => Ok(Box::new(AcmeSettings { dir: dir.into() })),
            _ => Err(Error::config("acme", format!("'{url}' is not acme:/DIR; name an absolute directory"))),
        }
    }

    fn parse_section(&self, section: &mut Section<'_>) -> Result<Box<dyn ProviderSettings>> {
        if !section.is_present() {
            return Err(section.missing("dir = \"/path/to/dir\""));
        }
        section.finish(&["dir"])?;
        let dir = section
            .take_path("dir")?
            .ok_or_else(|| section.error("acme.dir is missing; set dir = \"DIR\""))?;
        Ok(Box::new(AcmeSettings { dir }))
    }
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| hsm::register_scheme(Acme).expect("acme is registered once"));
}

fn config_message<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Config { provider: "hsm", message }) => message,
        other => panic!("expected a configuration error from hsm, got {other:?}"),
    }
}

/// The keys in an acme directory, read without acme: straight from its keystore file.
async fn keys_in(dir: &Path) -> Vec<String> {
    let store = hsm::local::LocalProvider::open(AcmeSettings::keystore(dir), None).unwrap();
    let keys = hsm::ProviderExt::list_all(&store, hsm::ListKeys::default()).await.unwrap();
    keys.into_iter().map(|k| k.name).collect()
}

#[tokio::test]
async fn a_registered_scheme_is_configured_by_url_with_hsms_layer_parameters() {
    register();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("acme:{}?retries=2", dir.path().display());
    let config = Config::from_url(&url).unwrap();
    assert_eq!(config.provider_name(), "acme");
    assert_eq!(config.settings_as::<AcmeSettings>(), Some(&AcmeSettings { dir: dir.path().into() }));
    assert_eq!(config.layers().retries, Some(2), "hsm takes its layer parameters off the URL");

    let before = OPENS.load(Ordering::SeqCst);
    let client = Client::connect(config).await.unwrap();
    assert!(OPENS.load(Ordering::SeqCst) > before, "opened through acme's settings");
    client.create_key(CreateKey::new("from-url", KeySpec::Aes256)).await.unwrap();
    drop(client);
    assert_eq!(keys_in(dir.path()).await, ["from-url"]);

    let msg = config_message(Config::from_url("acme:relative/dir"));
    assert!(msg.contains("acme:/DIR") && msg.contains("absolute directory"), "{msg}");
    let msg = config_message(Config::from_url("acme2:/x"));
    assert!(
        msg.contains("unknown scheme 'acme2:'") && msg.contains("acme:/DIR"),
        "the forms list acme: {msg}"
    );
}

#[tokio::test]
async fn a_registered_scheme_is_configured_by_a_toml_file_with_its_own_table() {
    register();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hsm.toml");
    std::fs::write(
        &file,
        "provider = \"acme\"\n\n[acme]\ndir = \"keys\"\nretries = 1\n\n[timeout]\noperation = \"9s\"\n",
    )
    .unwrap();
    let config = Config::from_file(&file).unwrap();
    assert_eq!(
        config.settings_as::<AcmeSettings>().unwrap().dir,
        dir.path().join("keys"),
        "relative to the file"
    );
    assert_eq!(config.layers().retries, Some(1));
    assert_eq!(config.layers().timeout, Some(std::time::Duration::from_secs(9)));
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let client = Client::connect(config).await.unwrap();
    client.create_key(CreateKey::new("from-toml", KeySpec::HmacSha256)).await.unwrap();
    drop(client);
    assert_eq!(keys_in(&dir.path().join("keys")).await, ["from-toml"]);

    let cases: &[(&str, &[&str])] = &[
        ("provider = \"acme\"\n", &["no [acme] table", "dir = "]),
        (
            "provider = \"acme\"\n[acme]\ndir = \"/d\"\ncolour = \"blue\"\n",
            &["line 4", "unknown field `colour`", "`dir`"],
        ),
        ("provider = \"acme\"\n[acme]\ndir = 7\n", &["line 3", "acme.dir must be a string"]),
        ("provider = \"acme\"\n[acme]\ndir = \"/d\"\nretries = 99\n", &["retries=99"]),
        ("provider = \"acmee\"\n", &["unknown provider \"acmee\"", "acme"]),
    ];
    for (text, needles) in cases {
        let msg = config_message(Config::from_toml(text));
        for n in *needles {
            assert!(msg.contains(n), "{text:?}: {msg:?} should contain {n:?}");
        }
    }
    // Another provider's file may keep an [acme] table, as it may keep [aws].
    assert!(Config::from_toml("provider = \"memory\"\n[acme]\ndir = \"/d\"\n").unwrap().is_memory());
}

#[test]
fn hsm_provider_and_hsm_config_select_a_registered_scheme() {
    register();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("acme:{}", dir.path().display());
    let vars = |pairs: Vec<(&'static str, String)>| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    };

    let config = Config::from_vars(vars(vec![("HSM_PROVIDER", url.clone())])).unwrap().unwrap();
    assert_eq!(config.settings_as::<AcmeSettings>().unwrap().dir, dir.path());

    let file = dir.path().join("hsm.toml");
    std::fs::write(&file, format!("provider = \"acme\"\n[acme]\ndir = \"{}\"\n", dir.path().display()))
        .unwrap();
    let config = Config::from_vars(vars(vec![("HSM_CONFIG", file.display().to_string())])).unwrap().unwrap();
    assert_eq!(config.provider_name(), "acme");

    let msg = config_message(Config::from_vars(vars(vec![("HSM_PROVIDER", "acme:nope".into())])));
    assert!(msg.starts_with("HSM_PROVIDER: ") && msg.contains("acme:/DIR"), "{msg}");
}

/// The application's own `hsm` binary: registers acme, then runs the command line. Only
/// does anything when re-executed by [`Hsm::application`].
#[test]
fn acme_hsm_binary() {
    let Some(args) = std::env::var_os(CLI_ARGS) else { return };
    register();
    let args = args.into_string().expect("UTF-8 arguments");
    let code = hsm_cli::run(std::iter::once("hsm").chain(args.split('\u{1f}')));
    std::process::exit(i32::from(code));
}

#[tokio::test]
async fn an_applications_own_cli_runs_commands_on_a_registered_scheme() {
    let hsm = Hsm::new().application("third_party::acme_hsm_binary");
    let dir = hsm.path("acme");
    std::fs::create_dir(&dir).unwrap();
    let url = format!("acme:{}", dir.display());
    let toml = hsm.file("acme.toml", b"provider = \"acme\"\n[acme]\ndir = \"acme\"\n");
    let plain = hsm.file("plain.txt", b"quarterly numbers");

    // --provider URL
    hsm.ok(&["--provider", &url, "key", "create", "ledger", "--spec", "aes-256"], b"");
    // --config FILE
    hsm.ok(&["--config", &toml, "encrypt", "--key", "ledger", "-i", &plain, "-o", "ledger.ct"], b"");
    // HSM_PROVIDER
    let by_env = Hsm::new().application("third_party::acme_hsm_binary").env("HSM_PROVIDER", &url);
    let ct = hsm.path("ledger.ct");
    let out = hsm.path("ledger.txt");
    by_env.ok(&["decrypt", "--key", "ledger", "-i", ct.to_str().unwrap(), "-o", out.to_str().unwrap()], b"");
    assert_eq!(std::fs::read(&out).unwrap(), b"quarterly numbers");
    // HSM_CONFIG
    let by_file = Hsm::new().application("third_party::acme_hsm_binary").env("HSM_CONFIG", &toml);
    let listed = by_file.ok(&["key", "list", "--output", "json"], b"").stdout_text();
    assert!(listed.contains("\"ledger\""), "{listed}");

    assert_eq!(keys_in(&dir).await, ["ledger"], "the keys are in acme's keystore");
    let msg = hsm.fails(5, &["--provider", "acme:relative", "key", "list"], b"");
    assert!(msg.contains("acme:/DIR"), "{msg}");
    // hsm's own binary has no acme.
    let msg = Hsm::new().fails(5, &["--provider", &url, "key", "list"], b"");
    assert!(msg.contains("unknown scheme 'acme:'"), "{msg}");
}
