//! `Config`: every URL form, every error, TOML files, the environment, Debug redaction.

use std::collections::HashMap;
use std::path::Path;

use hsm::{Client, Config, CreateKey, Error, KeySpec};

/// The message of an `Error::Config` from "hsm"; panics (failing the test) on anything else.
fn config_error<T: std::fmt::Debug>(r: hsm::Result<T>) -> String {
    match r {
        Err(Error::Config { provider, message }) => {
            assert_eq!(provider, "hsm");
            message
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn memory_urls_select_the_in_memory_provider() {
    for url in ["memory:", "memory://", "MEMORY:", " memory: "] {
        let cfg = Config::from_url(url).unwrap();
        assert!(cfg.is_memory(), "{url}");
        assert_eq!(cfg.keystore_path(), None);
        assert_eq!(cfg.provider_name(), "local");
    }
}

#[test]
fn local_urls_give_the_keystore_path() {
    let cases = [
        ("local:///var/lib/hsm/keystore", "/var/lib/hsm/keystore"),
        ("local://localhost/var/lib/hsm/keystore", "/var/lib/hsm/keystore"),
        ("LOCAL:///abs", "/abs"),
        ("local:relative/path/ks", "relative/path/ks"),
        ("local:ks", "ks"),
        ("file:///abs/ks", "/abs/ks"),
        ("file:rel/ks", "rel/ks"),
        ("local:///tmp/my%20dir/ks%25", "/tmp/my dir/ks%"),
    ];
    for (url, path) in cases {
        let cfg = Config::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(!cfg.is_memory());
        assert_eq!(cfg.keystore_path(), Some(Path::new(path)), "{url}");
        assert!(!cfg.has_passphrase());
    }
}

#[test]
fn bad_urls_are_config_errors_that_say_how_to_fix_them() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["empty", "local:///"]),
        ("   ", &["empty"]),
        ("/var/lib/ks", &["no scheme", "local:///var/lib/ks"]),
        ("keystore", &["no scheme", "memory:"]),
        ("s3://bucket/ks", &["unknown scheme 's3:'", "local:///"]),
        ("local:", &["no keystore path"]),
        ("local://", &["no keystore path"]),
        ("local://server/ks", &["host 'server'", "three slashes"]),
        ("local:///ks?mode=ro", &["query"]),
        ("local:///ks%zz", &["%-escape", "%25"]),
        ("local:///ks%ff", &["not UTF-8"]),
        ("memory:/x", &["takes no path"]),
    ];
    for (url, needles) in cases {
        let msg = config_error(Config::from_url(url));
        for n in *needles {
            assert!(msg.contains(n), "{url:?}: {msg:?} should contain {n:?}");
        }
    }
}

#[test]
fn aws_kms_urls_select_aws_or_name_the_feature() {
    let r = Config::from_url("aws-kms://?region=eu-west-1&endpoint=http://127.0.0.1:4566");
    if cfg!(feature = "aws") {
        let cfg = r.unwrap();
        assert_eq!(cfg.provider_name(), "aws-kms");
        assert!(cfg.keystore_path().is_none());
        let msg = config_error(Config::from_url("aws-kms://alias/payments?region=eu-west-1"));
        assert!(msg.contains("host or path"), "{msg}");
        let msg = config_error(Config::from_url("aws-kms://?region=moon"));
        assert!(msg.contains("not an AWS region"), "{msg}");
    } else {
        assert!(config_error(r).contains("needs feature `aws`"));
    }
}

/// Regression (fuzz target `config`): errors quote the URL they refuse, and a mistyped
/// `pkcs11:` scheme put the inline PIN into the message (and so into logs).
#[test]
fn errors_that_quote_a_url_never_show_its_pin() {
    for url in [
        "pkcs1:token=app?module-path=/m.so&pin-value=s3cr3t-pin-1234",
        "pkcs11t+?module-path=/m.so&pin-value=s3cr3t-pin-1234",
        "/usr/lib/softhsm/libsofthsm2.so&pin-value=s3cr3t-pin-1234&pin-value=s3cr3t-pin-1234",
        "local:///ks?pin-value=s3cr3t-pin-1234",
    ] {
        let msg = config_error(Config::from_url(url));
        assert!(!msg.contains("s3cr3t"), "{msg}");
        assert!(msg.contains("pin-value=<redacted>"), "{msg}");
    }
    let toml = "provider = \"memory\"\nrecipient = pkcs11:token=a?pin-value=s3cr3t-pin-1234\n";
    let msg = config_error(Config::from_toml(toml));
    assert!(!msg.contains("s3cr3t"), "{msg}");
}

#[test]
fn pkcs11_uris_select_pkcs11_or_name_the_feature() {
    let r = Config::from_url("pkcs11:token=app?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234");
    if cfg!(feature = "pkcs11") {
        let cfg = r.unwrap();
        assert_eq!(cfg.provider_name(), "pkcs11");
        assert!(cfg.keystore_path().is_none());
        assert!(!format!("{cfg:?}").contains("1234"), "PIN in Debug");
        let msg = config_error(Config::from_url("pkcs11:token=app"));
        assert!(msg.contains("module-path"), "{msg}");
        let msg = config_error(Config::from_url("pkcs11:object=k?module-path=/m.so&pin-value=1"));
        assert!(msg.contains("'object' is not supported"), "{msg}");
    } else {
        assert!(config_error(r).contains("needs feature `pkcs11`"));
    }
}

#[cfg(feature = "pkcs11")]
#[test]
fn toml_pkcs11_table() {
    use hsm::pkcs11::{PIN_ENV, PinSource, TokenSelector};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hsm.toml");
    std::fs::write(
        &file,
        "provider = \"pkcs11\"\n[pkcs11]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken = \"app\"\n\
         pin_file = \"secrets/pin\"\n",
    )
    .unwrap();
    let mut cfg = Config::from_file(&file).unwrap();
    assert_eq!(cfg.provider_name(), "pkcs11");
    let p11 = cfg.pkcs11_mut().unwrap();
    assert_eq!(p11.token, TokenSelector::Label("app".into()));
    assert_eq!(p11.module, Path::new("/usr/lib/softhsm/libsofthsm2.so"));
    assert_eq!(p11.pin, PinSource::File(dir.path().join("secrets/pin")));

    let mut cfg =
        Config::from_toml("provider = \"pkcs11\"\n[pkcs11]\nmodule = \"/m.so\"\nslot = 3\n").unwrap();
    let p11 = cfg.pkcs11_mut().unwrap();
    assert_eq!(p11.token, TokenSelector::Slot(3));
    assert_eq!(p11.pin, PinSource::Env(PIN_ENV.into()), "no PIN source: HSM_PKCS11_PIN");
    let cfg = Config::from_toml(
        "provider = \"pkcs11\"\n[pkcs11]\nmodule = \"/m.so\"\nserial = \"9a\"\npin_env = \"P\"\n",
    );
    assert_eq!(cfg.unwrap().pkcs11_mut().unwrap().pin, PinSource::Env("P".into()));
    assert!(Config::memory().pkcs11_mut().is_none());

    let cases: &[(&str, &str)] = &[
        ("", "no [pkcs11] table"),
        ("[pkcs11]\ntoken = \"a\"\n", "pkcs11.module is missing"),
        ("[pkcs11]\nmodule = \"/m.so\"\n", "exactly one of token"),
        ("[pkcs11]\nmodule = \"/m.so\"\ntoken = \"a\"\nslot = 1\n", "exactly one of token"),
        (
            "[pkcs11]\nmodule = \"/m.so\"\ntoken = \"a\"\npin_file = \"/p\"\npin_env = \"V\"\n",
            "at most one of pin_file",
        ),
        ("[pkcs11]\nmodule = \"/m.so\"\ntoken = \"a\"\npin = \"1234\"\n", "unknown field `pin`"),
    ];
    for (table, needle) in cases {
        let msg = config_error(Config::from_toml(&format!("provider = \"pkcs11\"\n{table}")));
        assert!(msg.contains(needle), "{table:?}: {msg}");
        assert!(!msg.contains("1234"), "{msg}");
    }
}

#[test]
fn azure_keyvault_urls_select_azure_or_name_the_feature() {
    let r = Config::from_url("azure-keyvault://contoso.vault.azure.net");
    if cfg!(feature = "azure") {
        let cfg = r.unwrap();
        assert_eq!(cfg.provider_name(), "azure-keyvault");
        assert!(cfg.keystore_path().is_none());
        let cfg =
            Config::from_url("azure-keyvault://127.0.0.1:8443?ca=/tmp/ca.pem&kind=managed-hsm").unwrap();
        assert_eq!(cfg.provider_name(), "azure-keyvault");
        let msg = config_error(Config::from_url("azure-keyvault://vault.example/keys/k"));
        assert!(msg.contains("no path"), "{msg}");
        let msg = config_error(Config::from_url("azure-keyvault://vault.example"));
        assert!(msg.contains("?ca=/path/ca.pem"), "{msg}");
        let cfg = Config::from_toml(
            "provider = \"azure-keyvault\"\n[azure]\nurl = \"https://contoso.managedhsm.azure.net\"\nmax_retries = 0\n",
        )
        .unwrap();
        assert_eq!(cfg.provider_name(), "azure-keyvault");
        let msg = config_error(Config::from_toml("provider = \"azure-keyvault\"\n"));
        assert!(msg.contains("no [azure] table"), "{msg}");
        let msg = config_error(Config::from_toml(
            "provider = \"azure-keyvault\"\n[azure]\nurl = \"http://contoso.vault.azure.net\"\n",
        ));
        assert!(msg.contains("must be https://"), "{msg}");
        let msg = config_error(Config::from_toml(
            "provider = \"azure-keyvault\"\n[azure]\nurl = \"https://contoso.vault.azure.net\"\ncolour = \"blue\"\n",
        ));
        assert!(msg.contains("unknown parameter 'colour'"), "{msg}");
    } else {
        assert!(config_error(r).contains("needs feature `azure`"));
    }
}

#[test]
fn gcp_kms_urls_and_tables_select_google_cloud_kms_or_name_the_feature() {
    let url = "gcp-kms://projects/p/locations/global/keyRings/r?endpoint=http://127.0.0.1:8085";
    let toml = "provider = \"gcp-kms\"\n[gcp]\nproject = \"p\"\nlocation = \"global\"\nkey_ring = \"r\"\n\
                endpoint = \"http://127.0.0.1:8085\"\ncreate_key_ring = true\n";
    if cfg!(feature = "gcp") {
        for cfg in [Config::from_url(url).unwrap(), Config::from_toml(toml).unwrap()] {
            assert_eq!(cfg.provider_name(), "gcp-kms");
            assert!(format!("{cfg:?}").contains("keyRings") || format!("{cfg:?}").contains("key_ring"));
        }
        let msg = config_error(Config::from_url("gcp-kms://projects/p/locations/global"));
        assert!(msg.contains("does not name a key ring"), "{msg}");
        let msg = config_error(Config::from_toml("provider = \"gcp-kms\"\n[gcp]\nproject = \"p\"\n"));
        assert!(msg.contains("gcp.location"), "{msg}");
    } else {
        assert!(config_error(Config::from_url(url)).contains("needs feature `gcp`"));
        assert!(config_error(Config::from_toml(toml)).contains("needs feature `gcp`"));
    }
}

#[test]
fn toml_selects_memory_or_local() {
    let cfg = Config::from_toml("provider = \"memory\"\n").unwrap();
    assert!(cfg.is_memory());

    let cfg = Config::from_toml(
        "provider = \"local\"\n[local]\npath = \"/srv/ks\"\npassphrase_env = \"HSM_TEST_SURELY_UNSET_VAR_1\"\n",
    );
    let msg = config_error(cfg);
    assert!(msg.contains("HSM_TEST_SURELY_UNSET_VAR_1 is not set"), "{msg}");

    let cfg = Config::from_toml("provider = \"local\"\n[local]\npath = \"/srv/ks\"\n").unwrap();
    assert_eq!(cfg.keystore_path(), Some(Path::new("/srv/ks")));
    // Sections for the backends to come are accepted.
    let cfg = Config::from_toml("provider = \"memory\"\n[aws]\nregion = \"eu-west-1\"\n").unwrap();
    assert!(cfg.is_memory());
}

#[test]
fn every_bad_toml_names_the_field() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["no `provider`", "provider = \"local\""]),
        ("provider = \"vault\"", &["unknown provider \"vault\"", "local, memory"]),
        ("provider = 3", &["line 1"]),
        ("provider = \"local\"", &["no [local] table", "path ="]),
        ("provider = \"local\"\n[local]\n", &["local.path is missing"]),
        ("provider = \"local\"\n[local]\npath = \"\"\n", &["local.path is missing or empty"]),
        ("provider = \"local\"\n[local]\npth = \"/x\"\n", &["line 3", "unknown field `pth`", "path"]),
        (
            "provider = \"local\"\n[local]\npath = \"/x\"\npassphrase_env = \"\"\n",
            &["passphrase_env is empty"],
        ),
        ("provider = \"local\"\nsecret = 1\n", &["unknown field `secret`"]),
        ("provider = \"local\n", &["line 1"]),
        // With feature pkcs11: "no [pkcs11] table"; without: "needs feature `pkcs11`".
        ("provider = \"pkcs11\"", &["pkcs11"]),
    ];
    for (text, needles) in cases {
        let msg = config_error(Config::from_toml(text));
        assert!(!msg.contains('\n'), "one line: {msg:?}");
        for n in *needles {
            assert!(msg.contains(n), "{text:?}: {msg:?} should contain {n:?}");
        }
    }
}

#[cfg(feature = "aws")]
#[test]
fn aws_in_toml_takes_the_parameters_of_its_url() {
    let text = "provider = \"aws-kms\"\n[aws]\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:4566\"\n\
                timeout = 5\nmetadata_ttl = \"0\"\n";
    let from_toml = Config::from_toml(text).unwrap();
    let from_url = Config::from_url(
        "aws-kms://?region=eu-west-1&endpoint=http://127.0.0.1:4566&timeout=5&metadata_ttl=0",
    )
    .unwrap();
    assert_eq!(from_toml.provider_name(), "aws-kms");
    assert_eq!(format!("{from_toml:?}"), format!("{from_url:?}"));
    // Every setting is optional: the standard AWS chain fills in the rest.
    assert_eq!(Config::from_toml("provider = \"aws-kms\"\n").unwrap().provider_name(), "aws-kms");

    let cases: &[(&str, &[&str])] = &[
        ("provider = \"aws-kms\"\n[aws]\nregion = \"moon\"\n", &["[aws]", "moon"]),
        ("provider = \"aws-kms\"\n[aws]\nregoin = \"us-west-2\"\n", &["[aws]", "regoin", "known: region"]),
        ("provider = \"aws-kms\"\n[aws]\nregion = [\"us-west-2\"]\n", &["aws.region must be"]),
    ];
    for (text, needles) in cases {
        let msg = config_error(Config::from_toml(text));
        for n in *needles {
            assert!(msg.contains(n), "{text:?}: {msg:?} should contain {n:?}");
        }
    }
}

#[test]
fn toml_files_resolve_relative_paths_against_their_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hsm.toml");
    std::fs::write(&file, "provider = \"local\"\n[local]\npath = \"keys/store\"\n").unwrap();
    let cfg = Config::from_file(&file).unwrap();
    assert_eq!(cfg.keystore_path(), Some(dir.path().join("keys/store").as_path()));

    let missing = dir.path().join("nope.toml");
    let msg = config_error(Config::from_file(&missing));
    assert!(msg.contains("cannot read configuration file") && msg.contains("nope.toml"), "{msg}");

    std::fs::write(&file, "provider = \"local\"\n[local]\npath = 7\n").unwrap();
    let msg = config_error(Config::from_file(&file));
    assert!(msg.contains("hsm.toml") && msg.contains("line 3"), "{msg}");
}

#[test]
fn environment_selects_the_provider() {
    assert!(Config::from_vars(vars(&[])).unwrap().is_none());
    assert!(Config::from_vars(vars(&[("HSM_PROVIDER", ""), ("HSM_CONFIG", " ")])).unwrap().is_none());

    let cfg = Config::from_vars(vars(&[("HSM_PROVIDER", "memory:")])).unwrap().unwrap();
    assert!(cfg.is_memory());

    let cfg = Config::from_vars(vars(&[("HSM_PROVIDER", "local:///srv/ks")])).unwrap().unwrap();
    assert_eq!(cfg.keystore_path(), Some(Path::new("/srv/ks")));
    assert!(!cfg.has_passphrase());

    let cfg = Config::from_vars(vars(&[("HSM_PROVIDER", "local:///srv/ks"), ("HSM_PASSPHRASE", "pw")]))
        .unwrap()
        .unwrap();
    assert!(cfg.has_passphrase());
}

#[test]
fn environment_errors_name_the_variable() {
    let msg = config_error(Config::from_vars(vars(&[("HSM_PROVIDER", "nope")])));
    assert!(msg.starts_with("HSM_PROVIDER: "), "{msg}");

    let msg =
        config_error(Config::from_vars(vars(&[("HSM_PROVIDER", "memory:"), ("HSM_CONFIG", "/x.toml")])));
    assert!(msg.contains("both HSM_PROVIDER and HSM_CONFIG"), "{msg}");

    let msg =
        config_error(Config::from_vars(vars(&[("HSM_PROVIDER", "local:///srv/ks"), ("HSM_PASSPHRASE", "")])));
    assert!(msg.contains("HSM_PASSPHRASE is set but empty"), "{msg}");

    let msg = config_error(Config::from_vars(vars(&[("HSM_CONFIG", "/definitely/not/here.toml")])));
    assert!(msg.contains("/definitely/not/here.toml"), "{msg}");

    // from_env with nothing set says what to set (the test process never sets these).
    if std::env::var_os("HSM_PROVIDER").is_none() && std::env::var_os("HSM_CONFIG").is_none() {
        let msg = config_error(Config::from_env());
        assert!(msg.contains("set HSM_PROVIDER") && msg.contains("HSM_CONFIG"), "{msg}");
    }
}

#[test]
fn hsm_config_reads_the_file_and_its_passphrase_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hsm.toml");
    std::fs::write(&file, "provider = \"local\"\n[local]\npath = \"ks\"\npassphrase_env = \"APP_KS_PW\"\n")
        .unwrap();
    let f = file.to_str().unwrap();

    let cfg = Config::from_vars(vars(&[("HSM_CONFIG", f), ("APP_KS_PW", "pw")])).unwrap().unwrap();
    assert!(cfg.has_passphrase());
    assert_eq!(cfg.keystore_path(), Some(dir.path().join("ks").as_path()));

    let msg = config_error(Config::from_vars(vars(&[("HSM_CONFIG", f)])));
    assert!(msg.contains("APP_KS_PW is not set"), "{msg}");

    // Without passphrase_env, HSM_PASSPHRASE is used when set.
    std::fs::write(&file, "provider = \"local\"\n[local]\npath = \"ks\"\n").unwrap();
    let cfg = Config::from_vars(vars(&[("HSM_CONFIG", f)])).unwrap().unwrap();
    assert!(!cfg.has_passphrase());
    let cfg = Config::from_vars(vars(&[("HSM_CONFIG", f), ("HSM_PASSPHRASE", "pw")])).unwrap().unwrap();
    assert!(cfg.has_passphrase());
}

#[tokio::test]
async fn debug_never_shows_the_passphrase() {
    let secret = "hunter2-correct-horse";
    let cfg = Config::local("/srv/ks").with_passphrase(secret);
    let dbg = format!("{cfg:?} {cfg:#?}");
    assert!(!dbg.contains(secret), "{dbg}");
    assert!(dbg.contains("redacted") && dbg.contains("/srv/ks"), "{dbg}");

    let cfg = Config::from_vars(vars(&[("HSM_PROVIDER", "local:///srv/ks"), ("HSM_PASSPHRASE", secret)]))
        .unwrap()
        .unwrap();
    assert!(!format!("{cfg:?}").contains(secret));

    let dir = tempfile::tempdir().unwrap();
    let client = Client::connect(Config::local(dir.path().join("ks")).with_passphrase(secret)).await.unwrap();
    let dbg = format!("{client:?} {client:#?} {:?}", client.provider());
    assert!(!dbg.contains(secret), "{dbg}");
}

#[tokio::test]
async fn a_local_keystore_persists_and_checks_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("local://{}", dir.path().join("ks").display());
    let cfg = Config::from_url(&url).unwrap().with_passphrase("right");

    let client = Client::connect(cfg.clone()).await.unwrap();
    client.create_key(CreateKey::new("kept", KeySpec::Aes128)).await.unwrap();
    drop(client);

    let reopened = Client::connect(cfg).await.unwrap();
    assert_eq!(reopened.get_key("kept").await.unwrap().spec, KeySpec::Aes128);
    drop(reopened);

    let wrong = Client::connect(Config::from_url(&url).unwrap().with_passphrase("wrong")).await;
    assert!(matches!(wrong, Err(Error::Unauthenticated { .. })), "{wrong:?}");
}

#[tokio::test]
async fn without_a_passphrase_the_keystore_uses_a_master_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks");
    let client = Client::connect(Config::local(&path)).await.unwrap();
    client.create_key(CreateKey::new("k", KeySpec::HmacSha256)).await.unwrap();
    drop(client);
    let reopened = Client::connect(Config::local(&path)).await.unwrap();
    assert!(reopened.get_key("k").await.is_ok());
    assert!(dir.path().join("ks.key").exists());
}

#[test]
fn open_works_outside_a_tokio_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::local(dir.path().join("ks"));
    // A minimal executor: `open` must not need Tokio's blocking pool.
    let provider = futures_lite_block_on(cfg.open()).unwrap();
    assert_eq!(provider.name(), "local");
}

/// Polls a future to completion on this thread (no runtime).
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
