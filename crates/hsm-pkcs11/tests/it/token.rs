//! What the token does behind the provider's back (logouts, PIN changes), what it can do
//! (probed capabilities), and keys created extractable on request.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use hsm_core::{
    CreateKey, EncryptionAlgorithm, Error, KeySpec, KeyUsage, Provider as _, ProviderExt as _, SignInput,
    SignatureAlgorithm,
};
use libtest_mimic::Failed;

use crate::{PIN, check, connect, raw_session, rt};

/// The tokens the logout tests use, one each: a logout affects every session of the
/// process on that token.
pub(crate) const RELOGIN: &str = "relogin";
pub(crate) const REPIN: &str = "repin";

/// Another application (here: another cryptoki context in the same process, which shares
/// the login) logs the token out; the provider notices and logs in again, and keeps
/// working, including for lists, which a logged-out session would silently see empty.
pub(crate) fn relogin_after_logout() -> Result<(), Failed> {
    let rt = rt();
    let p = connect(RELOGIN);
    rt.block_on(p.create_key(CreateKey::new("relogin-ec", KeySpec::EcP256)))?;
    let other = raw_session(RELOGIN);
    for round in 0..3 {
        other.logout()?;
        let keys = rt.block_on(p.list_all(hsm_core::ListKeys::new()))?;
        check(keys.iter().any(|k| k.name == "relogin-ec"), format!("round {round}: listed after a logout"))?;
        other.logout()?;
        let sig = rt.block_on(p.sign_message(&"relogin-ec".into(), b"after logout"))?;
        other.logout()?;
        let ok = rt.block_on(p.verify(
            &"relogin-ec".into(),
            SignatureAlgorithm::EcdsaSha256,
            SignInput::Message(b"after logout"),
            sig.as_bytes(),
        ))?;
        check(ok, "signature verifies")?;
    }
    Ok(())
}

/// The PIN changes while we are logged out: the provider's one re-login attempt fails
/// with `Unauthenticated`, and it never tries the PIN again, even once the PIN would
/// work again; a new connection with the right PIN works.
pub(crate) fn refused_pin_is_not_retried() -> Result<(), Failed> {
    let rt = rt();
    let p = connect(REPIN);
    rt.block_on(p.create_key(CreateKey::new("relogin-pin", KeySpec::Aes128)))?;
    let other = raw_session(REPIN);
    // Change the PIN to 5678 and log out.
    other.set_pin(&AuthPin::from(PIN), &AuthPin::from("5678"))?;
    other.logout()?;
    let e = rt.block_on(p.encrypt_default(&"relogin-pin".into(), b"x", None)).unwrap_err();
    check(matches!(e, Error::Unauthenticated { .. }), format!("first call: {e}"))?;
    check(e.to_string().contains("CKR_PIN_INCORRECT"), format!("{e}"))?;
    check(!e.to_string().contains(PIN), "PIN in the error")?;
    // Put the PIN back and log out again: a re-login would now succeed, but the provider
    // must not try the PIN that was refused.
    other.login(UserType::User, Some(&AuthPin::from("5678")))?;
    other.set_pin(&AuthPin::from("5678"), &AuthPin::from(PIN))?;
    other.logout()?;
    let e = rt.block_on(p.encrypt_default(&"relogin-pin".into(), b"x", None)).unwrap_err();
    check(
        matches!(e, Error::Unauthenticated { .. }) && e.to_string().contains("not tried again"),
        format!("{e}"),
    )?;
    // A new connection logs in with the right PIN.
    let fresh = connect(REPIN);
    let ct = rt.block_on(fresh.encrypt_default(&"relogin-pin".into(), b"x", None))?;
    check(&rt.block_on(fresh.decrypt(&"relogin-pin".into(), &ct, None))?[..] == b"x", "fresh connection")
}

/// A key deleted by another application between two calls is `NotFound`, never a crash
/// or a stale handle.
pub(crate) fn deleted_between_calls() -> Result<(), Failed> {
    let rt = rt();
    let p = connect("main");
    rt.block_on(
        p.create_key(CreateKey::new("it-between", KeySpec::Rsa2048).usage(KeyUsage::EncryptDecrypt)),
    )?;
    let ct = rt.block_on(p.encrypt(&"it-between".into(), EncryptionAlgorithm::RsaOaepSha1, b"m", None))?;
    let s = raw_session("main");
    for h in s.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(b"it-between#1".to_vec()),
    ])? {
        s.destroy_object(h)?;
    }
    let e = rt.block_on(p.decrypt(&"it-between".into(), &ct, None)).unwrap_err();
    check(
        matches!(e, Error::NotFound { .. }) && e.to_string().contains("deleted by another tool"),
        format!("{e}"),
    )?;
    // The public half is still there: encryption still works.
    rt.block_on(p.encrypt(&"it-between".into(), EncryptionAlgorithm::RsaOaepSha1, b"m", None))?;
    rt.block_on(p.schedule_deletion(&"it-between".into(), Some(std::time::Duration::ZERO)))?;
    Ok(())
}

/// RSA-OAEP with SHA-256 is declared exactly when the token does it: the capability
/// (probed at connect) agrees with a direct attempt on a real key of the token.
pub(crate) fn oaep_sha256_declared_as_the_token_does_it() -> Result<(), Failed> {
    let rt = rt();
    let p = connect("main");
    rt.block_on(p.create_key(CreateKey::new("it-oaep", KeySpec::Rsa2048).usage(KeyUsage::EncryptDecrypt)))?;
    let s = raw_session("main");
    let pubkey = s
        .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(b"it-oaep#1".to_vec())])?
        .into_iter()
        .next()
        .ok_or("public key object")?;
    let params =
        PkcsOaepParams::new(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, PkcsOaepSource::empty());
    let direct = match s.encrypt(&Mechanism::RsaPkcsOaep(params), pubkey, b"m") {
        Ok(ct) => ct.len() == 256,
        Err(CkError::Pkcs11(
            RvError::ArgumentsBad | RvError::MechanismParamInvalid | RvError::MechanismInvalid,
            _,
        )) => false,
        Err(e) => return Err(format!("unexpected error from the direct attempt: {e}").into()),
    };
    let declared = p.capabilities().supports_encryption(KeySpec::Rsa2048, EncryptionAlgorithm::RsaOaepSha256);
    eprintln!("RSA-OAEP SHA-256: token {direct}, declared {declared}");
    check(declared == direct, format!("declared {declared}, token does it: {direct}"))?;
    check(p.capabilities().supports_encryption(KeySpec::Rsa2048, EncryptionAlgorithm::RsaOaepSha1), "SHA-1")?;
    let r = rt.block_on(p.encrypt(&"it-oaep".into(), EncryptionAlgorithm::RsaOaepSha256, b"m", None));
    if declared {
        let ct = r?;
        check(&rt.block_on(p.decrypt(&"it-oaep".into(), &ct, None))?[..] == b"m", "SHA-256 round trip")?;
    } else {
        let e = r.unwrap_err();
        check(
            matches!(e, Error::Unsupported { .. }) && e.to_string().contains("rsa-oaep-sha256"),
            format!("{e}"),
        )?;
    }
    rt.block_on(p.schedule_deletion(&"it-oaep".into(), Some(std::time::Duration::ZERO)))?;
    Ok(())
}

/// secp256k1 is declared exactly when the token generates keys on it; then keys sign and
/// verify, and the public key is the curve's.
pub(crate) fn secp256k1_as_the_token_does_it() -> Result<(), Failed> {
    let rt = rt();
    let p = connect("main");
    let s = raw_session("main");
    let public = [
        Attribute::Token(false),
        Attribute::EcParams(vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]),
        Attribute::Verify(true),
    ];
    let private = [Attribute::Token(false), Attribute::Sign(true)];
    let direct = s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).is_ok();
    let declared = p.capabilities().spec(KeySpec::EcSecp256k1).is_some();
    eprintln!("secp256k1: token {direct}, declared {declared}");
    check(declared == direct, format!("declared {declared}, token does it: {direct}"))?;
    let r = rt.block_on(p.create_key(CreateKey::new("it-k1", KeySpec::EcSecp256k1)));
    if !declared {
        return check(matches!(r, Err(Error::Unsupported { .. })), format!("{r:?}"));
    }
    r?;
    let sig = rt.block_on(p.sign_message(&"it-k1".into(), b"bitcoin"))?;
    check(sig.algorithm() == SignatureAlgorithm::EcdsaSha256, "ECDSA SHA-256")?;
    let ok = rt.block_on(p.verify(
        &"it-k1".into(),
        SignatureAlgorithm::EcdsaSha256,
        SignInput::Message(b"bitcoin"),
        sig.as_bytes(),
    ))?;
    check(ok, "verifies")?;
    let spki = rt.block_on(p.public_key(&"it-k1".into()))?;
    // SEQUENCE { SEQUENCE { id-ecPublicKey, secp256k1 }, BIT STRING (65-byte point) }
    let der = &spki.spki_der[..];
    check(der.windows(7).any(|w| w == [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]), "curve OID in the SPKI")?;
    check(der.len() == 88, format!("SPKI of {} bytes", der.len()))?;
    rt.block_on(p.schedule_deletion(&"it-k1".into(), Some(std::time::Duration::ZERO)))?;
    Ok(())
}

/// `create_extractable_key` makes sensitive but extractable key objects (for every
/// version), which another key on the token can wrap; `create_key` does not.
pub(crate) fn extractable_only_when_asked() -> Result<(), Failed> {
    let rt = rt();
    let p = connect("main");
    rt.block_on(p.create_extractable_key(CreateKey::new("it-extractable", KeySpec::Aes256)))?;
    rt.block_on(p.rotate_key(&"it-extractable".into()))?;
    rt.block_on(p.create_key(CreateKey::new("it-kek", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)))?;
    rt.block_on(p.create_key(CreateKey::new("it-fixed", KeySpec::Aes256)))?;
    let s = raw_session("main");
    let one = |id: &[u8]| -> Result<_, Failed> {
        Ok(s.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(id.to_vec())])?
            .into_iter()
            .next()
            .ok_or(format!("object {}", String::from_utf8_lossy(id)))?)
    };
    let attrs = |id: &[u8]| -> Result<Vec<Attribute>, Failed> {
        Ok(s.get_attributes(one(id)?, &[AttributeType::Sensitive, AttributeType::Extractable])?)
    };
    for v in [1, 2] {
        let a = attrs(format!("it-extractable#{v}").as_bytes())?;
        check(
            a.contains(&Attribute::Sensitive(true)) && a.contains(&Attribute::Extractable(true)),
            format!("v{v}: {a:?}"),
        )?;
    }
    let a = attrs(b"it-fixed#1")?;
    check(
        a.contains(&Attribute::Sensitive(true)) && a.contains(&Attribute::Extractable(false)),
        format!("{a:?}"),
    )?;
    // The token wraps the extractable key under the KEK, and refuses the other one.
    let kek = one(b"it-kek#1")?;
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrap, kek, one(b"it-extractable#2")?)?;
    check(wrapped.len() == 40, format!("wrapped {} bytes", wrapped.len()))?;
    let refused = s.wrap_key(&Mechanism::AesKeyWrap, kek, one(b"it-fixed#1")?);
    check(matches!(refused, Err(CkError::Pkcs11(RvError::KeyUnextractable, _))), format!("{refused:?}"))?;
    for name in ["it-extractable", "it-kek", "it-fixed"] {
        rt.block_on(p.schedule_deletion(&name.into(), Some(std::time::Duration::ZERO)))?;
    }
    Ok(())
}
