//! encrypt/decrypt, sign/verify, wrap/unwrap, mac/mac-verify, with files, pipes and base64.

use crate::harness::{Hsm, openssl, openssl_ok};

#[test]
fn encrypt_and_decrypt_through_stdin_and_stdout() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-256"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "k"], b"piped plaintext").stdout;
    assert!(ct.starts_with(b"hsm\x01C"), "stdout is the hsm ciphertext blob");
    let blob = hsm::Ciphertext::from_bytes(&ct).unwrap();
    assert_eq!((blob.key(), blob.version(), blob.algorithm().as_str()), ("k", "1", "aes-gcm"));
    // '-' means stdin/stdout too.
    let plain = hsm.ok(&["decrypt", "--key", "k", "-i", "-", "-o", "-"], &ct).stdout;
    assert_eq!(plain, b"piped plaintext");
}

#[test]
fn encrypt_and_decrypt_files_and_base64() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-128"], b"");
    hsm.ok(&["key", "create", "r", "--spec", "rsa-2048"], b"");
    let input = hsm.file("plain.txt", b"file plaintext");

    hsm.ok(&["encrypt", "--key", "k", "-i", &input, "-o", "ct.bin"], b"");
    assert!(std::fs::read(hsm.path("ct.bin")).unwrap().starts_with(b"hsm\x01C"));
    hsm.ok(&["decrypt", "--key", "k", "-i", "ct.bin", "-o", "out.txt"], b"");
    assert_eq!(std::fs::read(hsm.path("out.txt")).unwrap(), b"file plaintext");

    let b64 = hsm.ok(&["encrypt", "--key", "k", "--base64", "-i", &input], b"").stdout_text();
    assert!(
        b64.ends_with('\n') && b64.trim().chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
    );
    assert_eq!(hsm.ok(&["decrypt", "--key", "k", "--base64"], b64.as_bytes()).stdout, b"file plaintext");

    // Original upper-case algorithm names, and RSA with an explicit algorithm.
    let ct = hsm.ok(&["encrypt", "--key", "k", "--algorithm", "AES_GCM"], b"x").stdout;
    assert_eq!(hsm.ok(&["decrypt", "--key", "k"], &ct).stdout, b"x");
    let ct = hsm.ok(&["encrypt", "--key", "r"], b"rsa default").stdout;
    assert_eq!(hsm::Ciphertext::from_bytes(&ct).unwrap().algorithm().as_str(), "rsa-oaep-sha256");
    assert_eq!(hsm.ok(&["decrypt", "--key", "r"], &ct).stdout, b"rsa default");
    let ct = hsm.ok(&["encrypt", "--key", "r", "--algorithm", "RSA_OAEP", "--base64"], b"sha1").stdout;
    assert_eq!(hsm.ok(&["decrypt", "--key", "r", "--base64"], &ct).stdout, b"sha1");
    let ct = hsm.ok(&["encrypt", "--key", "r", "--algorithm", "rsa-pkcs1v15"], b"legacy").stdout;
    assert_eq!(hsm.ok(&["decrypt", "--key", "r"], &ct).stdout, b"legacy");

    let msg = hsm.fails(4, &["encrypt", "--key", "r"], &[0u8; 300]);
    assert!(msg.contains("invalid input"), "{msg}");
}

#[test]
fn aad_must_match_and_failures_are_opaque() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-256"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "k", "--aad", "invoice-42"], b"the amount is 1000").stdout;
    assert_eq!(hsm.ok(&["decrypt", "--key", "k", "--aad", "invoice-42"], &ct).stdout, b"the amount is 1000");

    let msg = hsm.fails(4, &["decrypt", "--key", "k", "--aad", "invoice-43"], &ct);
    assert!(msg.contains("decryption failed") && msg.contains("--aad"), "{msg}");
    assert!(!msg.contains("amount"), "{msg}");
    hsm.fails(4, &["decrypt", "--key", "k"], &ct);

    let mut tampered = ct.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let msg = hsm.fails(4, &["decrypt", "--key", "k", "--aad", "invoice-42"], &tampered);
    assert!(msg.contains("decryption failed"), "{msg}");
}

#[test]
fn decrypt_checks_the_key_and_the_blob() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "a", "--spec", "aes-256"], b"");
    hsm.ok(&["key", "create", "b", "--spec", "aes-256"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "a"], b"data").stdout;

    let msg = hsm.fails(4, &["decrypt", "--key", "b"], &ct);
    assert!(msg.contains("made with key 'a', not 'b'") && msg.contains("--key a"), "{msg}");

    let msg = hsm.fails(4, &["decrypt", "--key", "a"], &ct[..ct.len() - 3]);
    assert!(msg.contains("truncated"), "{msg}");
    let msg = hsm.fails(4, &["decrypt", "--key", "a"], b"definitely not a ciphertext");
    assert!(msg.contains("not an hsm ciphertext") && msg.contains("--base64"), "{msg}");
    let b64 = hsm.ok(&["encrypt", "--key", "a", "--base64"], b"data").stdout;
    let msg = hsm.fails(4, &["decrypt", "--key", "a"], &b64);
    assert!(msg.contains("add --base64"), "{msg}");
    let msg = hsm.fails(4, &["decrypt", "--key", "a", "--base64"], b"!!!not base64!!!");
    assert!(msg.contains("not valid base64"), "{msg}");
    let sig_blob = hsm::Signature::new("a", "1", hsm::SignatureAlgorithm::Ed25519, vec![0u8; 64]).to_bytes();
    let msg = hsm.fails(4, &["decrypt", "--key", "a"], &sig_blob);
    assert!(msg.contains("found a signature"), "{msg}");
}

#[test]
fn failed_commands_leave_no_output_file_behind() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "k", "--spec", "aes-256"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "k", "--aad", "right"], b"data").stdout;

    // A new file is not created...
    hsm.fails(4, &["decrypt", "--key", "k", "--aad", "wrong", "-o", "new.txt"], &ct);
    assert!(!hsm.path("new.txt").exists());
    // ...and an existing one is left as it was.
    hsm.file("existing.txt", b"previous contents");
    hsm.fails(4, &["decrypt", "--key", "k", "--aad", "wrong", "-o", "existing.txt"], &ct);
    assert_eq!(std::fs::read(hsm.path("existing.txt")).unwrap(), b"previous contents");
    // A successful write replaces it whole.
    hsm.ok(&["decrypt", "--key", "k", "--aad", "right", "-o", "existing.txt"], &ct);
    assert_eq!(std::fs::read(hsm.path("existing.txt")).unwrap(), b"data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(hsm.path("existing.txt")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "decrypted data is private");
    }
    // No temporary files are left over.
    let leftovers: Vec<_> = std::fs::read_dir(hsm.home.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let msg = hsm.fails(6, &["encrypt", "--key", "k", "-o", "no/such/dir/out.bin"], b"data");
    assert!(msg.contains("cannot write 'no/such/dir/out.bin'"), "{msg}");
    let msg = hsm.fails(6, &["encrypt", "--key", "k", "-i", "missing.txt"], b"");
    assert!(msg.contains("cannot read 'missing.txt'"), "{msg}");
}

#[test]
fn sign_and_verify_exit_0_for_valid_and_1_for_invalid() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "rsa", "--spec", "rsa-2048", "--usage", "sign"], b"");
    let data = hsm.file("data.txt", b"Data to sign");
    let tampered = hsm.file("tampered.txt", b"Data to sign!");

    for alg in ["RSASSA_PKCS1_V1_5_SHA_256", "rsa-pkcs1-sha512", "rsa-pss-sha384"] {
        hsm.ok(&["sign", "--key", "rsa", "--algorithm", alg, "-i", &data, "-o", "sig.bin"], b"");
        assert_eq!(std::fs::read(hsm.path("sig.bin")).unwrap().len(), 256, "raw RSA signature");

        let r = hsm
            .ok(&["verify", "--key", "rsa", "--algorithm", alg, "--signature", "sig.bin", "-i", &data], b"");
        assert_eq!(r.stdout_text(), "valid\n");
        let r = hsm.run(
            &["verify", "--key", "rsa", "--algorithm", alg, "--signature", "sig.bin", "-i", &tampered],
            b"",
        );
        assert_eq!((r.code, r.stdout_text().as_str(), r.stderr.as_str()), (1, "invalid\n", ""), "{alg}");
        // Data from stdin.
        let r = hsm
            .ok(&["verify", "--key", "rsa", "--algorithm", alg, "--signature", "sig.bin"], b"Data to sign");
        assert_eq!(r.stdout_text(), "valid\n");
    }

    // Default algorithms, base64 armour, and every asymmetric family.
    for (name, spec) in [("p256", "ec-p256"), ("p521", "ec-p521"), ("k1", "ec-secp256k1"), ("ed", "ed25519")]
    {
        hsm.ok(&["key", "create", name, "--spec", spec], b"");
        let sig = hsm.ok(&["sign", "--key", name, "--base64"], b"message").stdout;
        let sig_file = hsm.file(&format!("{name}.sig.b64"), &sig);
        let r = hsm.ok(&["verify", "--key", name, "--base64", "--signature", &sig_file], b"message");
        assert_eq!(r.stdout_text(), "valid\n", "{spec}");
        let r = hsm.run(&["verify", "--key", name, "--base64", "--signature", &sig_file], b"massage");
        assert_eq!(r.code, 1, "{spec}");
    }

    // A signature of impossible length is an error, not "invalid".
    let short = hsm.file("short.sig", &[1u8; 10]);
    let msg = hsm.fails(4, &["verify", "--key", "ed", "--signature", &short], b"message");
    assert!(msg.contains("invalid input"), "{msg}");
    let msg = hsm.fails(4, &["verify", "--key", "ed", "--signature", "-"], b"message");
    assert!(msg.contains("only one of -i and --signature"), "{msg}");
}

#[test]
fn rotated_signing_keys_verify_old_signatures_with_a_pinned_version() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "ed", "--spec", "ed25519"], b"");
    hsm.ok(&["sign", "--key", "ed", "-o", "v1.sig"], b"release");
    hsm.ok(&["key", "rotate", "ed"], b"");
    assert_eq!(hsm.run(&["verify", "--key", "ed", "--signature", "v1.sig"], b"release").code, 1);
    let r = hsm.ok(&["verify", "--key", "ed@1", "--signature", "v1.sig"], b"release");
    assert_eq!(r.stdout_text(), "valid\n");
}

#[test]
fn openssl_verifies_cli_signatures_over_the_public_pem() {
    if !openssl() {
        eprintln!("skipping the openssl cross-check: openssl is not on PATH");
        return;
    }
    let hsm = Hsm::new();
    let dir = hsm.home.path();
    hsm.file("data.bin", b"interop with openssl");
    hsm.ok(&["key", "create", "rsa", "--spec", "rsa-2048", "--usage", "sign"], b"");
    hsm.ok(&["key", "create", "ec", "--spec", "ec-p256"], b"");
    hsm.ok(&["key", "create", "ec384", "--spec", "ec-p384"], b"");
    hsm.ok(&["key", "create", "ed", "--spec", "ed25519"], b"");
    for k in ["rsa", "ec", "ec384", "ed"] {
        hsm.ok(&["key", "public", k, "-o", &format!("{k}.pem")], b"");
    }

    hsm.ok(
        &["sign", "--key", "rsa", "--algorithm", "rsa-pkcs1-sha256", "-i", "data.bin", "-o", "rsa.sig"],
        b"",
    );
    assert!(openssl_ok(dir, &["dgst", "-sha256", "-verify", "rsa.pem", "-signature", "rsa.sig", "data.bin"]));

    // The default RSA algorithm is PSS with SHA-256 and a 32-byte salt.
    hsm.ok(&["sign", "--key", "rsa", "-i", "data.bin", "-o", "pss.sig"], b"");
    assert!(openssl_ok(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-verify",
            "rsa.pem",
            "-signature",
            "pss.sig",
            "data.bin",
        ]
    ));

    hsm.ok(&["sign", "--key", "ec", "--algorithm", "ECDSA_SHA_256", "-i", "data.bin", "-o", "ec.sig"], b"");
    assert!(openssl_ok(dir, &["dgst", "-sha256", "-verify", "ec.pem", "-signature", "ec.sig", "data.bin"]));
    hsm.ok(&["sign", "--key", "ec384", "-i", "data.bin", "-o", "ec384.sig"], b"");
    assert!(openssl_ok(
        dir,
        &["dgst", "-sha384", "-verify", "ec384.pem", "-signature", "ec384.sig", "data.bin"]
    ));

    hsm.ok(&["sign", "--key", "ed", "-i", "data.bin", "-o", "ed.sig"], b"");
    assert!(openssl_ok(
        dir,
        &[
            "pkeyutl", "-verify", "-pubin", "-inkey", "ed.pem", "-rawin", "-in", "data.bin", "-sigfile",
            "ed.sig"
        ]
    ));

    // And openssl rejects a signature over other data.
    hsm.file("other.bin", b"something else");
    assert!(!openssl_ok(dir, &["dgst", "-sha256", "-verify", "ec.pem", "-signature", "ec.sig", "other.bin"]));
}

#[test]
fn wrap_and_unwrap_key_material() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "kek", "--spec", "aes-256", "--usage", "wrap"], b"");
    hsm.ok(&["key", "create", "rkek", "--spec", "rsa-2048", "--usage", "wrap"], b"");
    let material: Vec<u8> = (0u8..32).collect();
    hsm.file("dek.bin", &material);

    hsm.ok(
        &["wrap", "--key", "kek", "--algorithm", "aes-key-wrap", "-i", "dek.bin", "-o", "dek.wrapped"],
        b"",
    );
    let wrapped = hsm::WrappedKey::from_bytes(&std::fs::read(hsm.path("dek.wrapped")).unwrap()).unwrap();
    assert_eq!(wrapped.algorithm().as_str(), "aes-key-wrap");
    assert_eq!(wrapped.as_bytes().len(), 40);
    hsm.ok(&["unwrap", "--key", "kek", "-i", "dek.wrapped", "-o", "dek.out"], b"");
    assert_eq!(std::fs::read(hsm.path("dek.out")).unwrap(), material);

    for (key, alg) in
        [("kek", None), ("kek", Some("AES_KEY_WRAP_PAD")), ("kek", Some("aes-gcm")), ("rkek", None)]
    {
        let mut args = vec!["wrap", "--key", key, "-i", "dek.bin", "--base64"];
        if let Some(a) = alg {
            args.extend(["--algorithm", a]);
        }
        let b64 = hsm.ok(&args, b"").stdout;
        assert_eq!(hsm.ok(&["unwrap", "--key", key, "--base64"], &b64).stdout, material, "{key} {alg:?}");
    }

    let msg = hsm.fails(4, &["unwrap", "--key", "rkek"], &std::fs::read(hsm.path("dek.wrapped")).unwrap());
    assert!(msg.contains("made with key 'kek', not 'rkek'"), "{msg}");
    let msg = hsm.fails(4, &["wrap", "--key", "kek", "--algorithm", "aes-key-wrap"], &[1u8; 13]);
    assert!(msg.contains("invalid input"), "{msg}");
    hsm.ok(&["key", "create", "enc", "--spec", "aes-256"], b"");
    let msg = hsm.fails(4, &["wrap", "--key", "enc"], &material);
    assert!(msg.contains("usage"), "{msg}");
}

#[test]
fn mac_and_mac_verify() {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "h", "--spec", "hmac-sha512"], b"");
    hsm.ok(&["mac", "--key", "h", "-o", "tag.bin"], b"authenticated message");
    assert_eq!(std::fs::read(hsm.path("tag.bin")).unwrap().len(), 64);
    let r = hsm.ok(&["mac-verify", "--key", "h", "--tag", "tag.bin"], b"authenticated message");
    assert_eq!(r.stdout_text(), "valid\n");
    let r = hsm.run(&["mac-verify", "--key", "h", "--tag", "tag.bin"], b"authenticated massage");
    assert_eq!((r.code, r.stdout_text().as_str()), (1, "invalid\n"));

    let tag = hsm.ok(&["mac", "--key", "h", "--base64"], b"m").stdout;
    hsm.file("tag.b64", &tag);
    hsm.ok(&["mac-verify", "--key", "h", "--tag", "tag.b64", "--base64"], b"m");

    hsm.ok(&["key", "create", "aes", "--spec", "aes-128"], b"");
    let msg = hsm.fails(4, &["mac", "--key", "aes"], b"m");
    assert!(msg.contains("not an HMAC key"), "{msg}");
}
