//! The CLI against a throwaway SoftHSM2 token, selected by a `pkcs11:` URI through
//! `HSM_PROVIDER` and `--provider`. Without SoftHSM2 the test says it was skipped and returns
//! (`.ci/run` installs it, so CI never skips).

use hsm::pkcs11::softhsm::{MODULE, SoftHsm};

use crate::harness::{Hsm, provider_story};

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

    provider_story(&hsm, &url);

    // A wrong PIN is refused with a clear message that does not contain the PIN.
    let bad = format!("pkcs11:token=cli?module-path={MODULE}&pin-value=99999");
    let r = hsm.run(&["--provider", &bad, "key", "list"], b"");
    assert_ne!(r.code, 0);
    let err = r.stderr;
    assert!(err.contains("CKR_PIN_INCORRECT") && !err.contains("99999"), "{err}");
}
