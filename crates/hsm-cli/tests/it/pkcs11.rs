//! The CLI against a throwaway SoftHSM2 token, selected by a `pkcs11:` URI through
//! `HSM_PROVIDER` and `--provider`. Without SoftHSM2 the test says it was skipped and returns
//! (`.ci/run` installs it, so CI never skips).

use hsm::pkcs11::softhsm::{MODULE, SoftHsm};

use crate::harness::Hsm;

#[test]
fn keys_encryption_and_signatures_through_a_pkcs11_uri() {
    if !SoftHsm::available() {
        eprintln!("skipped: SoftHSM2 is not installed (apt-get install softhsm2)");
        return;
    }
    let token = SoftHsm::new().unwrap();
    token.init_token("cli", "12345678", "1234").unwrap();
    let pin = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pin.path(), "1234\n").unwrap();
    let url = format!("pkcs11:token=cli?module-path={MODULE}&pin-source=file:{}", pin.path().display());
    let hsm = Hsm::new().env("SOFTHSM2_CONF", token.conf().to_str().unwrap()).env("HSM_PROVIDER", &url);

    hsm.ok(&["key", "create", "orders", "--spec", "aes-256", "--tag", "team=payments"], b"");
    let ct = hsm.ok(&["encrypt", "--key", "orders"], b"card number").stdout;
    let blob = hsm::Ciphertext::from_bytes(&ct).unwrap();
    assert_eq!((blob.key(), blob.version()), ("orders", "1"));
    assert_eq!(hsm.ok(&["decrypt", "--key", "orders"], &ct).stdout, b"card number");

    // --provider works the same, and the name is taken.
    let msg = hsm.fails(4, &["--provider", &url, "key", "create", "orders", "--spec", "aes-256"], b"");
    assert!(msg.contains("already exists"), "{msg}");

    hsm.ok(&["key", "create", "signer", "--spec", "ec-p256"], b"");
    let data = hsm.file("data.txt", b"Data to sign");
    hsm.ok(&["sign", "--key", "signer", "-i", &data, "-o", "sig.bin"], b"");
    let r = hsm.ok(&["verify", "--key", "signer", "--signature", "sig.bin", "-i", &data], b"");
    assert_eq!(r.stdout_text(), "valid\n");
    let r = hsm.run(&["verify", "--key", "signer", "--signature", "sig.bin"], b"other data");
    assert_eq!((r.code, r.stdout_text().as_str()), (1, "invalid\n"));

    let listed = hsm.ok(&["key", "list", "--output", "json"], b"").json();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["orders", "signer"]);

    // A wrong PIN is refused with a clear message that does not contain the PIN.
    let bad = format!("pkcs11:token=cli?module-path={MODULE}&pin-value=99999");
    let r = hsm.run(&["--provider", &bad, "key", "list"], b"");
    assert_ne!(r.code, 0);
    let err = r.stderr;
    assert!(err.contains("CKR_PIN_INCORRECT") && !err.contains("99999"), "{err}");
}
