//! Interoperability with OpenSC's `pkcs11-tool`, run as a separate process on the same
//! token: keys it makes are listed and usable through hsm; keys hsm makes are usable with
//! it; hsm's metadata objects do not confuse it.

use std::path::Path;
use std::process::Command;

use hsm_core::{
    Ciphertext, CreateKey, EncryptionAlgorithm, Error, KeySpec, KeyUsage, ListKeys, Provider as _,
    ProviderExt as _, SignInput, SignatureAlgorithm,
};
use hsm_pkcs11::softhsm::MODULE;
use libtest_mimic::Failed;
use sha2::Digest as _;

use crate::{PIN, check, connect, rt};

/// The token these tests share (`pkcs11-tool` runs against it concurrently with nothing else).
pub(crate) const TOKEN: &str = "interop";

/// Whether `pkcs11-tool` can be run.
pub(crate) fn available() -> bool {
    Command::new("pkcs11-tool").arg("--help").output().is_ok()
}

/// Runs `pkcs11-tool` logged in to the interop token; `Err` with its output on failure.
fn tool(args: &[&str]) -> Result<String, Failed> {
    let out = Command::new("pkcs11-tool")
        .args(["--module", MODULE, "--token-label", TOKEN, "--login", "--pin", PIN])
        .args(args)
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(text) } else { Err(format!("pkcs11-tool {args:?} failed: {text}").into()) }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("UTF-8 temp path").to_owned()
}

/// Keys made with `pkcs11-tool --keypairgen`/`--keygen` (no hsm metadata, ids and labels
/// of the tool's choosing) are listed with their defaults and work for hsm's operations.
pub(crate) fn tool_keys_through_hsm() -> Result<(), Failed> {
    let rt = rt();
    let p = connect(TOKEN);
    tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "ext-ec",
        "--id",
        "0b0c",
        "--usage-sign",
    ])?;
    tool(&["--keypairgen", "--key-type", "rsa:2048", "--label", "ext-rsa", "--id", "01", "--usage-decrypt"])?;
    // No --id: CKA_ID is empty.
    tool(&["--keygen", "--key-type", "AES:32", "--label", "ext-aes"])?;
    // A label that is not a valid hsm key name: the key is named after its id.
    tool(&["--keypairgen", "--key-type", "EC:secp384r1", "--label", "my key", "--id", "a1b2"])?;
    tool(&["--keygen", "--key-type", "GENERIC:32", "--label", "ext-hmac", "--id", "77"])?;

    let keys = rt.block_on(p.list_all(ListKeys::new()))?;
    let find = |n: &str| keys.iter().find(|k| k.name == n).ok_or(format!("{n} not listed: {keys:?}"));
    let ec = find("ext-ec")?;
    check(ec.spec == KeySpec::EcP256 && ec.usage == KeyUsage::SignVerify, format!("{ec:?}"))?;
    check(ec.version == "0b0c" && ec.versions == ["0b0c"], format!("version: {ec:?}"))?;
    check(ec.native_id == "pkcs11:token=interop;object=ext-ec;id=%0B%0C", ec.native_id.clone())?;
    check(ec.description.is_empty() && ec.tags.is_empty(), "no metadata")?;
    check(ec.state == hsm_core::KeyState::Enabled, "enabled")?;
    // SoftHSM defaults CKA_SIGN and CKA_DECRYPT to true whatever --usage-* says: the key
    // is listed with the spec's default usage, and may be used for both.
    let rsa = find("ext-rsa")?;
    check(rsa.spec == KeySpec::Rsa2048 && rsa.usage == KeyUsage::EncryptDecrypt, format!("{rsa:?}"))?;
    let aes = find("ext-aes")?;
    check(aes.spec == KeySpec::Aes256 && aes.version == "0", format!("{aes:?}"))?;
    let odd = find("id-a1b2")?;
    check(odd.spec == KeySpec::EcP384 && odd.usage == KeyUsage::SignVerify, format!("{odd:?}"))?;
    let hmac = find("ext-hmac")?;
    check(hmac.spec == KeySpec::HmacSha256 && hmac.usage == KeyUsage::Mac, format!("{hmac:?}"))?;
    check(keys.windows(2).all(|w| w[0].name < w[1].name), "sorted by name")?;

    // Signatures by the tool's EC keys: verified by hsm and by pkcs11-tool itself.
    let dir = tempfile::tempdir()?;
    for (name, id, alg) in [
        ("ext-ec", "0b0c", SignatureAlgorithm::EcdsaSha256),
        ("id-a1b2", "a1b2", SignatureAlgorithm::EcdsaSha384),
    ] {
        let msg = format!("signed by {name}");
        let sig = rt.block_on(p.sign(&name.into(), alg, SignInput::Message(msg.as_bytes())))?;
        check(
            rt.block_on(p.verify(&name.into(), alg, SignInput::Message(msg.as_bytes()), sig.as_bytes()))?,
            "verify",
        )?;
        let digest: Vec<u8> = match alg {
            SignatureAlgorithm::EcdsaSha384 => sha2::Sha384::digest(msg.as_bytes()).to_vec(),
            _ => sha2::Sha256::digest(msg.as_bytes()).to_vec(),
        };
        std::fs::write(dir.path().join("digest"), &digest)?;
        std::fs::write(dir.path().join("sig"), sig.as_bytes())?;
        let (d, s) = (path(dir.path(), "digest"), path(dir.path(), "sig"));
        let out = tool(&[
            "--verify",
            "--id",
            id,
            "-m",
            "ECDSA",
            "--input-file",
            &d,
            "--signature-file",
            &s,
            "--signature-format",
            "openssl",
        ])?;
        check(out.contains("Signature is valid"), format!("pkcs11-tool: {out}"))?;
    }

    // RSA: hsm encrypts with the tool's public key object; the tool's private key decrypts
    // through hsm and through pkcs11-tool.
    let ct =
        rt.block_on(p.encrypt(&"ext-rsa".into(), EncryptionAlgorithm::RsaOaepSha1, b"to ext-rsa", None))?;
    check(ct.version() == "01", format!("version {}", ct.version()))?;
    check(&rt.block_on(p.decrypt(&"ext-rsa".into(), &ct, None))?[..] == b"to ext-rsa", "hsm decrypt")?;
    std::fs::write(dir.path().join("ct"), ct.as_bytes())?;
    let (c, o) = (path(dir.path(), "ct"), path(dir.path(), "pt"));
    tool(&[
        "--decrypt",
        "--id",
        "01",
        "-m",
        "RSA-PKCS-OAEP",
        "--hash-algorithm",
        "SHA-1",
        "--mgf",
        "MGF1-SHA1",
        "--input-file",
        &c,
        "--output-file",
        &o,
    ])?;
    check(std::fs::read(dir.path().join("pt"))? == b"to ext-rsa", "pkcs11-tool decrypt")?;
    let alg = SignatureAlgorithm::RsaPssSha256;
    let sig = rt.block_on(p.sign(&"ext-rsa".into(), alg, SignInput::Message(b"pss")))?;
    check(
        rt.block_on(p.verify(&"ext-rsa".into(), alg, SignInput::Message(b"pss"), sig.as_bytes()))?,
        "RSA sign",
    )?;

    // AES-GCM with the tool's AES key (empty CKA_ID, version "0").
    let ct =
        rt.block_on(p.encrypt(&"ext-aes".into(), EncryptionAlgorithm::AesGcm, b"secret", Some(b"aad")))?;
    check(&rt.block_on(p.decrypt(&"ext-aes".into(), &ct, Some(b"aad")))?[..] == b"secret", "AES round trip")?;
    let pinned = Ciphertext::new("ext-aes", "0", EncryptionAlgorithm::AesGcm, ct.as_bytes().to_vec());
    check(&rt.block_on(p.decrypt(&"ext-aes@0".parse()?, &pinned, Some(b"aad")))?[..] == b"secret", "pinned")?;

    // A 32-byte generic secret is an HMAC-SHA256 key.
    let alg = hsm_core::MacAlgorithm::HmacSha256;
    let tag = rt.block_on(p.mac(&"ext-hmac".into(), alg, b"m"))?;
    check(tag.as_bytes().len() == 32 && tag.version() == "77", "tag")?;
    check(rt.block_on(p.verify_mac(&"ext-hmac".into(), alg, b"m", tag.as_bytes()))?, "MAC verifies")?;
    check(!rt.block_on(p.verify_mac(&"ext-hmac".into(), alg, b"n", tag.as_bytes()))?, "other message")?;

    // hsm does not manage these keys: no rotation or states, and the names are taken.
    let e = rt.block_on(p.rotate_key(&"ext-ec".into())).unwrap_err();
    check(
        matches!(e, Error::InvalidInput { .. }) && e.to_string().contains("another PKCS#11 tool"),
        format!("{e}"),
    )?;
    let e = rt.block_on(p.set_key_state(&"ext-ec".into(), hsm_core::KeyState::Disabled)).unwrap_err();
    check(matches!(e, Error::InvalidInput { .. }), format!("{e}"))?;
    let e = rt.block_on(p.schedule_deletion(&"ext-ec".into(), None)).unwrap_err();
    check(matches!(e, Error::InvalidInput { .. }) && e.to_string().contains("0 days"), format!("{e}"))?;
    let e = rt.block_on(p.create_key(CreateKey::new("ext-ec", KeySpec::EcP256))).unwrap_err();
    check(matches!(e, Error::AlreadyExists { .. }), format!("{e}"))?;
    check(
        matches!(rt.block_on(p.get_key(&"ext-ec@99".parse()?)), Err(Error::NotFound { .. })),
        "no version 99",
    )?;

    // Immediate deletion destroys the tool's objects (private and public halves).
    for name in ["ext-ec", "id-a1b2", "ext-aes", "ext-hmac", "ext-rsa"] {
        let d = rt.block_on(p.schedule_deletion(&name.into(), Some(std::time::Duration::ZERO)))?;
        check(d.immediate, format!("{name} deleted"))?;
        check(
            matches!(rt.block_on(p.get_key(&name.into())), Err(Error::NotFound { .. })),
            format!("{name} gone"),
        )?;
    }
    let left = tool(&["--list-objects"])?;
    check(!left.contains("ext-ec") && !left.contains("my key") && !left.contains("ext-rsa"), left)
}

/// Keys made through hsm work with `pkcs11-tool --id <hex of name#v>` (and by label), and
/// hsm's metadata objects show as plain data objects.
pub(crate) fn hsm_keys_through_the_tool() -> Result<(), Failed> {
    let rt = rt();
    let p = connect(TOKEN);
    rt.block_on(p.create_key(CreateKey::new("hsm-ec", KeySpec::EcP256).description("made by hsm")))?;
    rt.block_on(p.create_key(CreateKey::new("hsm-rsa", KeySpec::Rsa2048).usage(KeyUsage::EncryptDecrypt)))?;
    let dir = tempfile::tempdir()?;
    let digest = sha2::Sha256::digest(b"signed by pkcs11-tool").to_vec();
    std::fs::write(dir.path().join("digest"), &digest)?;
    let (d, s) = (path(dir.path(), "digest"), path(dir.path(), "sig"));

    // pkcs11-tool signs with hsm's key, selected by id (pkcs11-tool 0.23 ignores --label
    // for --sign and takes the first private key); hsm verifies.
    let id = hex(b"hsm-ec#1");
    tool(&[
        "--sign",
        "--id",
        &id,
        "-m",
        "ECDSA",
        "--input-file",
        &d,
        "--output-file",
        &s,
        "--signature-format",
        "openssl",
    ])?;
    let sig = std::fs::read(dir.path().join("sig"))?;
    let ok = rt.block_on(p.verify(
        &"hsm-ec".into(),
        SignatureAlgorithm::EcdsaSha256,
        SignInput::Digest(&digest),
        &sig,
    ))?;
    check(ok, "hsm verifies pkcs11-tool's signature")?;
    // And pkcs11-tool verifies hsm's signature.
    let sig =
        rt.block_on(p.sign(&"hsm-ec".into(), SignatureAlgorithm::EcdsaSha256, SignInput::Digest(&digest)))?;
    std::fs::write(dir.path().join("sig"), sig.as_bytes())?;
    let out = tool(&[
        "--verify",
        "--id",
        &id,
        "-m",
        "ECDSA",
        "--input-file",
        &d,
        "--signature-file",
        &s,
        "--signature-format",
        "openssl",
    ])?;
    check(out.contains("Signature is valid"), format!("pkcs11-tool: {out}"))?;

    // hsm encrypts (RSA-OAEP SHA-1, the native ciphertext); pkcs11-tool decrypts.
    let ct =
        rt.block_on(p.encrypt(&"hsm-rsa".into(), EncryptionAlgorithm::RsaOaepSha1, b"for the tool", None))?;
    std::fs::write(dir.path().join("ct"), ct.as_bytes())?;
    let (c, o) = (path(dir.path(), "ct"), path(dir.path(), "pt"));
    tool(&[
        "--decrypt",
        "--id",
        &hex(b"hsm-rsa#1"),
        "-m",
        "RSA-PKCS-OAEP",
        "--hash-algorithm",
        "SHA-1",
        "--mgf",
        "MGF1-SHA1",
        "--input-file",
        &c,
        "--output-file",
        &o,
    ])?;
    check(std::fs::read(dir.path().join("pt"))? == b"for the tool", "pkcs11-tool decrypts hsm's ciphertext")?;

    // --list-objects: succeeds, shows the metadata as data objects of application "hsm"
    // (their value is private JSON the tool does not print), and hsm's keys with their ids.
    let out = tool(&["--list-objects"])?;
    // (The other interop test's secret keys make the tool warn that their value is
    // sensitive; nothing else may be reported.)
    let bad = out
        .lines()
        .find(|l| l.starts_with("error") || (l.contains("CKR_") && !l.contains("CKR_ATTRIBUTE_SENSITIVE")));
    check(bad.is_none(), format!("pkcs11-tool reported {bad:?} in: {out}"))?;
    let data = out.matches("Data object").count();
    check(data == 2, format!("{data} data objects in: {out}"))?;
    check(out.matches("application:    'hsm'").count() == 2, format!("application: {out}"))?;
    check(out.contains(&format!("ID:         {id}")), format!("key id {id} in: {out}"))?;
    check(!out.contains("made by hsm"), "metadata JSON printed")?;
    // ... and hsm's listing is unchanged by the tool having looked.
    let names: Vec<String> = rt.block_on(p.list_all(ListKeys::new()))?.into_iter().map(|k| k.name).collect();
    check(names.iter().filter(|n| n.starts_with("hsm-")).count() == 2, format!("{names:?}"))?;

    // Another process (pkcs11-tool) deletes the private key: hsm says NotFound, naming why.
    tool(&["--delete-object", "--type", "privkey", "--id", &id])?;
    let e = rt
        .block_on(p.sign(&"hsm-ec".into(), SignatureAlgorithm::EcdsaSha256, SignInput::Digest(&digest)))
        .unwrap_err();
    check(
        matches!(e, Error::NotFound { .. }) && e.to_string().contains("deleted by another tool"),
        format!("{e}"),
    )?;
    for name in ["hsm-ec", "hsm-rsa"] {
        rt.block_on(p.schedule_deletion(&name.into(), Some(std::time::Duration::ZERO)))?;
    }
    Ok(())
}
