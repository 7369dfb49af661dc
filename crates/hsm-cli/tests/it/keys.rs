//! `hsm key ...`: create, list, show, rotate, enable/disable, delete, public.

use crate::harness::Hsm;

#[test]
fn create_then_show_prints_every_field_as_text_and_json() {
    let hsm = Hsm::new();
    let r = hsm.ok(
        &[
            "key",
            "create",
            "payments",
            "--spec",
            "aes-256",
            "--description",
            "Payment records",
            "--tag",
            "env=prod",
            "--tag",
            "owner=security-team",
        ],
        b"",
    );
    let line = r.stdout_text();
    assert!(line.contains("created key 'payments'") && line.contains("aes-256"), "{line}");

    let json = hsm.ok(&["key", "show", "payments", "--output", "json"], b"").json();
    assert_eq!(json["name"], "payments");
    assert_eq!(json["version"], "1");
    assert_eq!(json["spec"], "aes-256");
    assert_eq!(json["usage"], "encrypt");
    assert_eq!(json["state"], "enabled");
    assert_eq!(json["description"], "Payment records");
    assert_eq!(json["tags"]["env"], "prod");
    assert_eq!(json["tags"]["owner"], "security-team");
    assert!(json["created"].as_str().is_some_and(|c| c.ends_with('Z')), "{json}");
    assert!(json["native_id"].as_str().is_some_and(|id| id.ends_with("#payments")), "{json}");

    let text = hsm.ok(&["key", "show", "payments"], b"").stdout_text();
    for field in
        ["name:", "version:", "spec:", "usage:", "state:", "description:", "tags:", "created:", "native_id:"]
    {
        assert!(text.contains(field), "{field} missing from {text}");
    }
    assert!(text.contains("env=prod,owner=security-team"), "{text}");
    assert!(text.contains(json["created"].as_str().unwrap()), "{text}");
}

#[test]
fn usage_defaults_from_the_spec_and_original_names_are_accepted() {
    let hsm = Hsm::new();
    let cases = [
        (vec!["key", "create", "e", "--spec", "ec-p256"], "ec-p256", "sign"),
        (vec!["key", "create", "h", "--spec", "hmac-sha256"], "hmac-sha256", "mac"),
        (vec!["key", "create", "r", "--spec", "RSA_2048", "--usage", "SIGN_VERIFY"], "rsa-2048", "sign"),
        (vec!["key", "create", "w", "--spec", "AES_128", "--usage", "wrap"], "aes-128", "wrap"),
        (vec!["key", "create", "d", "--spec", "ed25519", "--output", "json"], "ed25519", "sign"),
    ];
    for (args, spec, usage) in cases {
        hsm.ok(&args, b"");
        let json = hsm.ok(&["key", "show", args[2], "--output", "json"], b"").json();
        assert_eq!(json["spec"], spec, "{args:?}");
        assert_eq!(json["usage"], usage, "{args:?}");
    }
    let msg = hsm.fails(4, &["key", "create", "bad", "--spec", "ec-p256", "--usage", "encrypt"], b"");
    assert!(msg.contains("cannot have usage 'encrypt'"), "{msg}");
}

#[test]
fn list_filters_by_tag_and_prints_a_table_or_json() {
    let hsm = Hsm::new();
    assert_eq!(hsm.ok(&["key", "list"], b"").stdout_text(), "no keys\n");
    assert_eq!(hsm.ok(&["key", "list", "--output", "json"], b"").json(), serde_json::json!([]));

    hsm.ok(&["key", "create", "alpha", "--spec", "aes-128", "--tag", "env=prod", "--tag", "team=a"], b"");
    hsm.ok(&["key", "create", "beta", "--spec", "hmac-sha256", "--tag", "env=dev"], b"");
    hsm.ok(&["key", "create", "gamma", "--spec", "aes-256", "--tag", "env=prod", "--tag", "team=b"], b"");

    let table = hsm.ok(&["key", "list"], b"").stdout_text();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for col in ["NAME", "VERSION", "SPEC", "USAGE", "STATE", "CREATED", "TAGS"] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(lines[1].starts_with("alpha ") && lines[1].contains("env=prod,team=a"), "{table}");

    let prod = hsm.ok(&["key", "list", "--tag", "env=prod", "--output", "json"], b"").json();
    let names: Vec<&str> = prod.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "gamma"]);

    let both =
        hsm.ok(&["key", "list", "--tag", "env=prod", "--tag", "team=b", "--output", "json"], b"").json();
    assert_eq!(both.as_array().unwrap().len(), 1);
    assert_eq!(both[0]["name"], "gamma");

    let none = hsm.ok(&["key", "list", "--tag", "env=nowhere"], b"").stdout_text();
    assert_eq!(none, "no keys\n");
}

#[test]
fn rotate_makes_a_new_version_and_old_ciphertexts_still_decrypt() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-256"], b"");
    let old = hsm.ok(&["encrypt", "--key", "k"], b"written under version 1").stdout;

    let json = hsm.ok(&["key", "rotate", "k", "--output", "json"], b"").json();
    assert_eq!(json["version"], "2");
    assert_eq!(json["versions"], serde_json::json!(["1", "2"]));
    let text = hsm.ok(&["key", "rotate", "k"], b"").stdout_text();
    assert!(text.contains("version 3 is now current"), "{text}");

    let plain = hsm.ok(&["decrypt", "--key", "k"], &old).stdout;
    assert_eq!(plain, b"written under version 1");
    let new = hsm.ok(&["encrypt", "--key", "k"], b"v3").stdout;
    assert_eq!(hsm::Ciphertext::from_bytes(&old).unwrap().version(), "1");
    assert_eq!(hsm::Ciphertext::from_bytes(&new).unwrap().version(), "3");
    assert_eq!(hsm.ok(&["decrypt", "--key", "k"], &new).stdout, b"v3");
    // A pinned version that does not match the ciphertext is refused clearly.
    let msg = hsm.fails(4, &["decrypt", "--key", "k@3"], &old);
    assert!(msg.contains("version 1 of key 'k', not version 3"), "{msg}");
}

#[test]
fn disabled_keys_refuse_use_with_a_clear_message_until_enabled() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-128"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "k"], b"top secret plaintext").stdout;

    let json = hsm.ok(&["key", "disable", "k", "--output", "json"], b"").json();
    assert_eq!(json["state"], "disabled");
    let msg = hsm.fails(4, &["decrypt", "--key", "k"], &ct);
    assert!(msg.contains("key 'k' cannot be used") && msg.contains("disabled"), "{msg}");
    assert!(msg.contains("enable"), "{msg}");
    let msg = hsm.fails(4, &["encrypt", "--key", "k"], b"top secret plaintext");
    assert!(!msg.contains("top secret"), "plaintext leaked into the error: {msg}");

    let text = hsm.ok(&["key", "enable", "k"], b"").stdout_text();
    assert_eq!(text, "key 'k' is now enabled\n");
    assert_eq!(hsm.ok(&["decrypt", "--key", "k"], &ct).stdout, b"top secret plaintext");
}

#[test]
fn delete_schedules_cancels_and_deletes_now() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-128"], b"");

    let json = hsm.ok(&["key", "delete", "k", "--days", "7", "--output", "json"], b"").json();
    assert_eq!(json["key"], "k");
    assert_eq!(json["immediate"], false);
    assert!(json["deletion_date"].as_str().is_some(), "{json}");
    let show = hsm.ok(&["key", "show", "k", "--output", "json"], b"").json();
    assert_eq!(show["state"], "pending-deletion");
    assert_eq!(show["deletion_date"], json["deletion_date"]);
    let msg = hsm.fails(4, &["encrypt", "--key", "k"], b"x");
    assert!(msg.contains("pending deletion") && msg.contains("cancel-delete"), "{msg}");

    let text = hsm.ok(&["key", "cancel-delete", "k"], b"").stdout_text();
    assert!(text.contains("cancelled") && text.contains("disabled"), "{text}");
    hsm.ok(&["key", "enable", "k"], b"");

    let text = hsm.ok(&["key", "delete", "k"], b"").stdout_text();
    assert!(text.contains("will be deleted at") && text.contains("cancel-delete"), "{text}");
    hsm.ok(&["key", "cancel-delete", "k"], b"");

    let msg = hsm.fails(4, &["key", "delete", "k", "--days", "400"], b"");
    assert!(msg.contains("invalid input"), "{msg}");

    assert_eq!(hsm.ok(&["key", "delete", "k", "--days", "0"], b"").stdout_text(), "key 'k' deleted\n");
    let msg = hsm.fails(3, &["key", "show", "k"], b"");
    assert!(msg.contains("key 'k' not found") && msg.contains("hsm key list"), "{msg}");
}

#[test]
fn public_prints_pem_for_asymmetric_keys_only() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "ec", "--spec", "ec-p384"], b"");
    hsm.ok(&["key", "create", "aes", "--spec", "aes-128"], b"");
    let pem = hsm.ok(&["key", "public", "ec"], b"").stdout_text();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n"));
    let out = hsm.path("ec.pem");
    hsm.ok(&["key", "public", "ec", "-o", out.to_str().unwrap()], b"");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), pem);
    hsm.fails(4, &["key", "public", "aes"], b"");
}

#[test]
fn missing_keys_exit_3_with_one_line() {
    let hsm = Hsm::new();
    for args in [
        &["key", "show", "ghost"][..],
        &["key", "rotate", "ghost"],
        &["key", "disable", "ghost"],
        &["key", "public", "ghost"],
        &["encrypt", "--key", "ghost"],
        &["sign", "--key", "ghost"],
        &["mac", "--key", "ghost"],
    ] {
        let msg = hsm.fails(3, args, b"data");
        assert!(msg.contains("'ghost' not found"), "{args:?}: {msg}");
    }
}

#[test]
fn duplicate_and_invalid_names_are_refused() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-128"], b"");
    let msg = hsm.fails(4, &["key", "create", "k", "--spec", "aes-256"], b"");
    assert!(msg.contains("already exists"), "{msg}");
    let msg = hsm.fails(4, &["key", "create", "a/b", "--spec", "aes-256"], b"");
    assert!(msg.contains("'/'"), "{msg}");
}

#[test]
fn bad_spec_usage_and_algorithm_names_are_usage_errors_listing_the_choices() {
    let hsm = Hsm::new();
    let r = hsm.run(&["key", "create", "k", "--spec", "rsa-1024"], b"");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown key spec 'rsa-1024'") && r.stderr.contains("rsa-2048"),
        "{}",
        r.stderr
    );

    let r = hsm.run(&["key", "create", "k", "--spec", "aes-128", "--usage", "decrypt"], b"");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown key usage 'decrypt'") && r.stderr.contains("wrap"), "{}", r.stderr);

    let r = hsm.run(&["encrypt", "--key", "k", "--algorithm", "rot13"], b"");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown encryption algorithm 'rot13'") && r.stderr.contains("aes-gcm"));

    let r = hsm.run(&["sign", "--key", "k", "--algorithm", "md5"], b"");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown signature algorithm 'md5'") && r.stderr.contains("ecdsa-sha256"));

    let r = hsm.run(&["wrap", "--key", "k", "--algorithm", "xor"], b"");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown wrap algorithm 'xor'"));

    let r = hsm.run(&["key", "create", "k", "--spec", "aes-128", "--tag", "novalue"], b"");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("KEY=VALUE"));

    let r = hsm.run(&["key", "frobnicate"], b"");
    assert_eq!(r.code, 2);
    // Nothing was created by any of these.
    assert_eq!(hsm.ok(&["key", "list"], b"").stdout_text(), "no keys\n");
}

#[test]
fn an_algorithm_that_does_not_fit_the_key_is_refused() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "aes", "--spec", "aes-128"], b"");
    hsm.ok(&["key", "create", "ec", "--spec", "ec-p256"], b"");
    let msg = hsm.fails(4, &["encrypt", "--key", "aes", "--algorithm", "rsa-oaep-sha256"], b"x");
    assert!(msg.contains("rsa-oaep-sha256 cannot be used with key 'aes'"), "{msg}");
    let msg = hsm.fails(4, &["sign", "--key", "ec", "--algorithm", "ecdsa-sha384"], b"x");
    assert!(msg.contains("ecdsa-sha384"), "{msg}");
    let msg = hsm.fails(4, &["encrypt", "--key", "ec"], b"x");
    assert!(msg.contains("does not encrypt"), "{msg}");
}
