//! The registry: a `Registry` value parses with its own schemes only, and names, URL
//! schemes and tables cannot be taken twice. (A registered provider used from a URL, a TOML
//! file, the environment and the CLI: `hsm-cli`'s `third_party` tests.)

use std::sync::Arc;

use hsm::registry::{OpenOptions, ProviderSettings, Scheme};
use hsm::{Config, Error, Provider, Registry, Result};

/// A provider that is the in-memory local one under another name and scheme.
struct Tiny {
    name: &'static str,
    schemes: &'static [&'static str],
    section: Option<&'static str>,
}

const TINY: Tiny = Tiny { name: "tiny", schemes: &["tiny"], section: Some("tiny") };

#[derive(Debug, Clone)]
struct TinySettings;

#[hsm::async_trait]
impl ProviderSettings for TinySettings {
    fn provider_name(&self) -> &'static str {
        "tiny"
    }
    async fn open(&self, _: &OpenOptions) -> Result<Arc<dyn Provider>> {
        Ok(Arc::new(hsm::local::LocalProvider::in_memory()))
    }
}

impl Scheme for Tiny {
    fn provider(&self) -> &'static str {
        self.name
    }
    fn url_schemes(&self) -> &[&'static str] {
        self.schemes
    }
    fn section(&self) -> Option<&'static str> {
        self.section
    }
    fn url_form(&self) -> &'static str {
        "tiny:"
    }
    fn parse_url(&self, _: &str) -> Result<Box<dyn ProviderSettings>> {
        Ok(Box::new(TinySettings))
    }
}

fn config_message<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Config { provider: "hsm", message }) => message,
        other => panic!("expected a configuration error from hsm, got {other:?}"),
    }
}

#[tokio::test]
async fn a_registry_value_parses_with_its_own_schemes_and_leaves_the_process_wide_one_alone() {
    let mut registry = Registry::builtin();
    registry.register(TINY).unwrap();
    assert!(registry.providers().contains(&"tiny") && registry.providers().contains(&"memory"));
    let config = registry.config_from_url("tiny:").unwrap();
    assert_eq!(config.provider_name(), "tiny");
    let provider = config.open().await.unwrap();
    assert_eq!(provider.name(), "local", "the layers wrap what TinySettings opened");
    assert!(registry.config_from_url("memory:").unwrap().is_memory(), "built-ins are still there");
    let vars = |k: &str| (k == "HSM_PROVIDER").then(|| "tiny:".to_owned());
    assert_eq!(registry.config_from_vars(vars).unwrap().unwrap().provider_name(), "tiny");

    let msg = config_message(Config::from_url("tiny:"));
    assert!(msg.contains("unknown scheme 'tiny:'"), "{msg}");
}

#[test]
fn a_provider_without_a_table_says_to_use_its_url() {
    let mut registry = Registry::builtin();
    registry.register(Tiny { section: None, ..TINY }).unwrap();
    let msg = config_message(registry.config_from_toml("provider = \"tiny\"\n"));
    assert!(msg.contains("cannot be configured in a file") && msg.contains("tiny:"), "{msg}");
}

#[test]
fn names_url_schemes_and_tables_cannot_be_taken_twice() {
    let mut registry = Registry::builtin();
    registry.register(TINY).unwrap();
    let cases: &[(Tiny, &str)] = &[
        (Tiny { ..TINY }, "name 'tiny'"),
        (Tiny { name: "other", ..TINY }, "URL scheme 'tiny'"),
        (Tiny { name: "other", schemes: &["other"], ..TINY }, "table 'tiny'"),
        (Tiny { name: "aws-kms", schemes: &["x"], section: None }, "name 'aws-kms'"),
        (Tiny { name: "x", schemes: &["file"], section: None }, "URL scheme 'file'"),
        (Tiny { name: "x", schemes: &["x"], section: Some("retry") }, "table 'retry'"),
        (Tiny { name: "x", schemes: &["Bad_scheme"], section: None }, "not a URL scheme"),
    ];
    for (scheme, needle) in cases {
        let scheme = Tiny { name: scheme.name, schemes: scheme.schemes, section: scheme.section };
        let msg = config_message(registry.register(scheme));
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }
}
