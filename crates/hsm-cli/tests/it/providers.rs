//! Provider selection (flags, environment, default keystore), passphrases, completions.

use crate::harness::Hsm;

#[test]
fn the_default_is_a_keystore_under_hsm_home() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-128"], b"");
    assert!(hsm.path("keystore").is_file());
    assert!(hsm.path("keystore.key").is_file(), "no passphrase: master-key file beside the keystore");
    let json = hsm.ok(&["key", "show", "k", "--output", "json"], b"").json();
    let native = json["native_id"].as_str().unwrap();
    assert!(native.starts_with(hsm.path("keystore").to_str().unwrap()), "{native}");

    // HSM_HOME is created when missing.
    let nested = Hsm::new();
    let home = nested.path("a/b/hsm-home");
    let r =
        nested.command(&["key", "create", "k", "--spec", "aes-128"]).env("HSM_HOME", &home).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(home.join("keystore").is_file());
}

#[test]
fn provider_memory_keeps_nothing_between_runs() {
    let hsm = Hsm::new();
    let r = hsm
        .ok(&["--provider", "memory:", "key", "create", "k", "--spec", "aes-256", "--output", "json"], b"");
    assert_eq!(r.json()["native_id"], "local:k");
    assert_eq!(hsm.ok(&["key", "list", "--provider", "memory:"], b"").stdout_text(), "no keys\n");
    assert!(!hsm.path("keystore").exists(), "memory: writes nothing");
}

#[test]
fn provider_local_url_and_hsm_provider_use_that_keystore() {
    let hsm = Hsm::new();
    let ks = hsm.path("elsewhere/ks");
    std::fs::create_dir_all(ks.parent().unwrap()).unwrap();
    let url = format!("local://{}", ks.display());
    hsm.ok(&["--provider", &url, "key", "create", "k", "--spec", "aes-128"], b"");
    assert!(ks.is_file());
    assert!(!hsm.path("keystore").exists(), "the default keystore is not touched");

    let names = |r: crate::harness::Run| -> Vec<String> {
        r.json().as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(hsm.ok(&["--provider", &url, "key", "list", "--output", "json"], b"")), ["k"]);

    let via_env = Hsm::new().env("HSM_PROVIDER", &url);
    assert_eq!(names(via_env.ok(&["key", "list", "--output", "json"], b"")), ["k"]);
    // A relative local: URL is relative to the working directory (the test home).
    let relative = Hsm::new();
    relative.ok(&["--provider", "local:rel-ks", "key", "create", "r", "--spec", "aes-128"], b"");
    assert!(relative.path("rel-ks").is_file());
}

#[test]
fn config_files_from_the_flag_and_hsm_config() {
    let hsm = Hsm::new();
    let cfg = hsm.file("hsm.toml", b"provider = \"local\"\n[local]\npath = \"from-config\"\n");
    hsm.ok(&["--config", &cfg, "key", "create", "k", "--spec", "aes-128"], b"");
    assert!(hsm.path("from-config").is_file());

    let via_env = Hsm::new().env("HSM_CONFIG", &cfg);
    let r = via_env.ok(&["key", "list", "--output", "json"], b"").json();
    assert_eq!(r[0]["name"], "k");

    let bad = hsm.file("bad.toml", b"provider = \"local\"\n[local]\npth = \"x\"\n");
    let msg = hsm.fails(5, &["--config", &bad, "key", "list"], b"");
    assert!(msg.contains("unknown field `pth`") && msg.contains("line 3"), "{msg}");

    let r = hsm.run(&["--config", &cfg, "--provider", "memory:", "key", "list"], b"");
    assert_eq!(r.code, 2, "--config and --provider conflict");
}

#[test]
fn bad_provider_urls_are_configuration_errors() {
    let hsm = Hsm::new();
    let msg = hsm.fails(5, &["--provider", "s3://bucket", "key", "list"], b"");
    assert!(msg.contains("--provider") && msg.contains("unknown scheme 's3:'"), "{msg}");
    let msg = hsm.fails(5, &["--provider", "aws-kms://alias/x", "key", "list"], b"");
    assert!(msg.contains("aws-kms") && msg.contains("host or path"), "{msg}");
    let msg = Hsm::new().env("HSM_PROVIDER", "local://host/x").fails(5, &["key", "list"], b"");
    assert!(msg.contains("HSM_PROVIDER") && msg.contains("three slashes"), "{msg}");
    let msg = Hsm::new().env("HSM_PROVIDER", "memory:").env("HSM_CONFIG", "/x.toml").fails(
        5,
        &["key", "list"],
        b"",
    );
    assert!(msg.contains("both HSM_PROVIDER and HSM_CONFIG"), "{msg}");
}

#[test]
fn hsm_passphrase_protects_the_keystore() {
    let hsm = Hsm::new().env("HSM_PASSPHRASE", "correct horse battery staple");
    hsm.ok(&["key", "create", "k", "--spec", "aes-128"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "k"], b"data").stdout;
    assert!(!hsm.path("keystore.key").exists(), "a passphrase keystore needs no master-key file");

    let run_with = |pass: Option<&str>| {
        let mut cmd = hsm.command(&["key", "list"]);
        match pass {
            Some(p) => cmd.env("HSM_PASSPHRASE", p),
            None => cmd.env_remove("HSM_PASSPHRASE"),
        };
        cmd.output().unwrap()
    };
    let out = run_with(Some("xyzzy-not-it"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("HSM_PASSPHRASE"), "{stderr}");
    assert!(stderr.contains("passphrase") && stderr.lines().count() == 1, "{stderr}");
    assert!(!stderr.contains("xyzzy") && !stderr.contains("horse"), "{stderr}");

    let out = run_with(None);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("passphrase"), "{stderr}");

    let out = run_with(Some(""));
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HSM_PASSPHRASE is set but empty"));

    assert_eq!(hsm.ok(&["decrypt", "--key", "k"], &ct).stdout, b"data");
}

#[test]
fn completions_for_every_shell() {
    let hsm = Hsm::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = hsm.ok(&["completions", shell], b"").stdout_text();
        assert!(script.contains("hsm"), "{shell}");
        assert!(script.contains("mac-verify"), "{shell} completes subcommands");
    }
    let bash = hsm.ok(&["completions", "bash"], b"").stdout_text();
    assert!(bash.contains("rsa-2048"), "spec values are completed");
    assert_eq!(hsm.run(&["completions", "tcsh"], b"").code, 2);
    assert!(!hsm.path("keystore").exists(), "completions open no provider");
}

#[test]
fn help_and_version_exit_0() {
    let hsm = Hsm::new();
    let help = hsm.ok(&["--help"], b"").stdout_text();
    assert!(help.contains("Exit codes") && help.contains("HSM_PROVIDER"), "{help}");
    let version = hsm.ok(&["--version"], b"").stdout_text();
    assert!(version.starts_with("hsm "), "{version}");
    assert_eq!(hsm.run(&[], b"").code, 2);
}
