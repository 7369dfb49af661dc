//! Helpers the cases share: assertions, error-kind checks, algorithm choice, test data,
//! and "artifacts" (a ciphertext, signature, wrapped key or MAC tag made by some key).

use std::fmt;

use hsm_core::{
    Capabilities, Ciphertext, DigestAlgorithm, EncryptionAlgorithm, Error, KeyFamily, KeyInfo, KeyRef,
    KeySpec, KeyUsage, MacAlgorithm, MacTag, Provider, SignInput, Signature, SignatureAlgorithm,
    UnusableReason, WrapAlgorithm, WrappedKey,
};
use sha2::Digest as _;

use crate::case::Failure;

pub(crate) type CaseResult = Result<(), Failure>;

/// Fails the case with a formatted message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::case::Failure::new(format!($($arg)+)));
        }
    };
}
pub(crate) use ensure;

/// Fails the case with a formatted message.
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::case::Failure::new(format!($($arg)+)))
    };
}
pub(crate) use fail;

/// Turns a provider error into a failure saying which call failed.
pub(crate) trait During<T> {
    fn during(self, what: impl fmt::Display) -> Result<T, Failure>;
}

impl<T> During<T> for Result<T, Error> {
    fn during(self, what: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(format!("{what} failed with {}: {e}", kind_name(&e))))
    }
}

/// The error variants the kit asserts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    NotFound,
    AlreadyExists,
    Unsupported,
    InvalidInput,
    KeyUnusable,
    DecryptionFailed,
}

impl Kind {
    fn of(e: &Error) -> Option<Kind> {
        Some(match e {
            Error::NotFound { .. } => Kind::NotFound,
            Error::AlreadyExists { .. } => Kind::AlreadyExists,
            Error::Unsupported { .. } => Kind::Unsupported,
            Error::InvalidInput { .. } => Kind::InvalidInput,
            Error::KeyUnusable { .. } => Kind::KeyUnusable,
            Error::DecryptionFailed { .. } => Kind::DecryptionFailed,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The variant name of any error, for messages.
pub(crate) fn kind_name(e: &Error) -> &'static str {
    match e {
        Error::NotFound { .. } => "NotFound",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::Unsupported { .. } => "Unsupported",
        Error::InvalidInput { .. } => "InvalidInput",
        Error::KeyUnusable { .. } => "KeyUnusable",
        Error::Unauthenticated { .. } => "Unauthenticated",
        Error::PermissionDenied { .. } => "PermissionDenied",
        Error::Throttled { .. } => "Throttled",
        Error::Timeout { .. } => "Timeout",
        Error::Unavailable { .. } => "Unavailable",
        Error::DecryptionFailed { .. } => "DecryptionFailed",
        Error::Config { .. } => "Config",
        Error::Provider { .. } => "Provider",
        _ => "an unknown variant",
    }
}

fn one_of(kinds: &[Kind]) -> String {
    let names: Vec<String> = kinds.iter().map(Kind::to_string).collect();
    names.join(" or ")
}

/// The call must fail with one of `kinds`; returns the error.
pub(crate) fn expect_err<T>(
    what: impl fmt::Display,
    r: Result<T, Error>,
    kinds: &[Kind],
) -> Result<Error, Failure> {
    match r {
        Ok(_) => fail!("{what}: expected {} but the call succeeded", one_of(kinds)),
        Err(e) => match Kind::of(&e) {
            Some(k) if kinds.contains(&k) => Ok(e),
            _ => fail!("{what}: expected {} but got {}: {e}", one_of(kinds), kind_name(&e)),
        },
    }
}

/// The call must fail with `KeyUnusable` for `reason` (`None`: any reason).
pub(crate) fn expect_unusable<T>(
    what: impl fmt::Display,
    r: Result<T, Error>,
    reason: Option<&UnusableReason>,
) -> CaseResult {
    let e = expect_err(&what, r, &[Kind::KeyUnusable])?;
    if let (Some(want), Error::KeyUnusable { reason: got, .. }) = (reason, &e) {
        ensure!(got == want, "{what}: expected KeyUnusable because {want}, but the reason given was: {got}");
    }
    Ok(())
}

/// A verification must answer `Ok(false)` (or fail with one of `kinds`, if any are allowed).
pub(crate) fn expect_rejected(what: impl fmt::Display, r: Result<bool, Error>, kinds: &[Kind]) -> CaseResult {
    match r {
        Ok(false) => Ok(()),
        Ok(true) => fail!("{what}: expected the check to fail but it passed"),
        Err(e) if Kind::of(&e).is_some_and(|k| kinds.contains(&k)) => Ok(()),
        Err(e) => {
            let also = if kinds.is_empty() { String::new() } else { format!(" (or {})", one_of(kinds)) };
            fail!("{what}: expected Ok(false){also} but got {}: {e}", kind_name(&e))
        }
    }
}

/// A verification must answer `Ok(true)`.
pub(crate) fn expect_true(what: impl fmt::Display, r: Result<bool, Error>) -> CaseResult {
    match r.during(&what)? {
        true => Ok(()),
        false => fail!("{what}: returned false for a value that should check"),
    }
}

/// Deterministic test data of `len` bytes, different for every `tag`.
pub(crate) fn data(tag: &str, len: usize) -> Vec<u8> {
    let seed = format!("hsm-conformance {tag} ");
    let block: Vec<u8> = seed
        .bytes()
        .cycle()
        .take(4096)
        .enumerate()
        .map(|(i, b)| b ^ ((i / seed.len()) as u8 & 0x1f))
        .collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let take = (len - out.len()).min(block.len());
        out.extend_from_slice(&block[..take]);
    }
    out
}

/// Whether `needle` occurs in `haystack` (an empty needle never does).
/// Needles longer than 64 bytes are searched by their first 64 bytes (enough to spot a
/// plaintext copied into a ciphertext, and fast for multi-megabyte inputs).
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let needle = &needle[..needle.len().min(64)];
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `bytes` with one byte (at `at`, clamped to the last) XOR-ed with 0x01.
pub(crate) fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(b) = out.get_mut(at.min(bytes.len().saturating_sub(1))) {
        *b ^= 0x01;
    }
    out
}

/// The hash `alg` over `msg`.
pub(crate) fn digest(alg: DigestAlgorithm, msg: &[u8]) -> Vec<u8> {
    match alg {
        DigestAlgorithm::Sha384 => sha2::Sha384::digest(msg).to_vec(),
        DigestAlgorithm::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        _ => sha2::Sha256::digest(msg).to_vec(),
    }
}

/// Specs in the order the kit prefers for cases that need "some key": fast key
/// generation first.
const CHEAP_ORDER: &[KeySpec] = &[
    KeySpec::Aes256,
    KeySpec::EcP256,
    KeySpec::HmacSha256,
    KeySpec::Ed25519,
    KeySpec::Aes128,
    KeySpec::Aes192,
    KeySpec::EcSecp256k1,
    KeySpec::EcP384,
    KeySpec::HmacSha384,
    KeySpec::HmacSha512,
    KeySpec::EcP521,
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::Rsa4096,
];

fn ordered_specs() -> impl Iterator<Item = KeySpec> {
    // Any spec added to the vocabulary later still gets tried, after the known ones.
    CHEAP_ORDER.iter().copied().chain(KeySpec::ALL.iter().copied().filter(|s| !CHEAP_ORDER.contains(s)))
}

/// The cheapest declared spec that can be created with `usage`.
pub(crate) fn cheapest(caps: &Capabilities, usage: KeyUsage) -> Option<KeySpec> {
    ordered_specs().find(|s| caps.supports_key(*s, usage) && first_alg(caps, *s, usage).is_some())
}

/// The cheapest declared (spec, usage), preferring encrypt, then sign, mac, wrap.
pub(crate) fn cheapest_any(caps: &Capabilities) -> Option<(KeySpec, KeyUsage)> {
    usages().find_map(|u| cheapest(caps, u).map(|s| (s, u)))
}

/// A declared (spec, usage) with a spec other than `not`, cheapest first.
pub(crate) fn second_spec(caps: &Capabilities, not: KeySpec) -> Option<(KeySpec, KeyUsage)> {
    ordered_specs().filter(|s| *s != not).find_map(|s| {
        usages().find(|u| caps.supports_key(s, *u) && first_alg(caps, s, *u).is_some()).map(|u| (s, u))
    })
}

fn usages() -> impl Iterator<Item = KeyUsage> {
    [KeyUsage::EncryptDecrypt, KeyUsage::SignVerify, KeyUsage::Mac, KeyUsage::WrapUnwrap].into_iter()
}

/// The algorithm the kit uses for a (spec, usage) when any will do: the spec's natural
/// one if declared, else the first declared one that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Enc(EncryptionAlgorithm),
    Sig(SignatureAlgorithm),
    Wrap(WrapAlgorithm),
    Mac(MacAlgorithm),
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alg::Enc(a) => a.fmt(f),
            Alg::Sig(a) => a.fmt(f),
            Alg::Wrap(a) => a.fmt(f),
            Alg::Mac(a) => a.fmt(f),
        }
    }
}

pub(crate) fn first_alg(caps: &Capabilities, spec: KeySpec, usage: KeyUsage) -> Option<Alg> {
    let c = caps.spec(spec)?;
    match usage {
        KeyUsage::EncryptDecrypt => spec
            .default_encryption_algorithm()
            .filter(|a| c.encryption.contains(a))
            .or_else(|| c.encryption.iter().copied().find(|a| a.fits(spec)))
            .map(Alg::Enc),
        KeyUsage::SignVerify => spec
            .default_signature_algorithm()
            .filter(|a| c.signature.contains(a))
            .or_else(|| c.signature.iter().copied().find(|a| a.fits(spec)))
            .map(Alg::Sig),
        KeyUsage::WrapUnwrap => spec
            .default_wrap_algorithm()
            .filter(|a| c.wrap.contains(a))
            .or_else(|| c.wrap.iter().copied().find(|a| a.fits(spec)))
            .map(Alg::Wrap),
        KeyUsage::Mac => spec
            .default_mac_algorithm()
            .filter(|a| c.mac.contains(a))
            .or_else(|| c.mac.iter().copied().find(|a| a.fits(spec)))
            .map(Alg::Mac),
        _ => None,
    }
}

/// The first declared algorithm for (spec, usage), or a failure saying there is none.
pub(crate) fn alg_for(caps: &Capabilities, spec: KeySpec, usage: KeyUsage) -> Result<Alg, Failure> {
    first_alg(caps, spec, usage)
        .ok_or_else(|| Failure::new(format!("capabilities declare no {usage} algorithm for {spec}")))
}

/// Whether a spec has a public half.
pub(crate) fn asymmetric(spec: KeySpec) -> bool {
    matches!(spec.family(), KeyFamily::Rsa | KeyFamily::Ec | KeyFamily::Ed25519)
}

/// Something one key made that the same key can later open or check.
#[derive(Debug, Clone)]
pub(crate) enum Artifact {
    Ciphertext(Ciphertext, Vec<u8>),
    Signature(Signature, Vec<u8>),
    Wrapped(WrappedKey, Vec<u8>),
    Tag(MacTag, Vec<u8>),
}

impl Artifact {
    /// Makes one with the key's usage and algorithm `alg` over 32 bytes of `tag` data.
    pub(crate) async fn make(p: &dyn Provider, key: &KeyRef, alg: Alg, tag: &str) -> Result<Artifact, Error> {
        let input = data(tag, 32);
        Ok(match alg {
            Alg::Enc(a) => Artifact::Ciphertext(p.encrypt(key, a, &input, None).await?, input),
            Alg::Sig(a) => Artifact::Signature(p.sign(key, a, SignInput::Message(&input)).await?, input),
            Alg::Wrap(a) => Artifact::Wrapped(p.wrap_key(key, a, &input).await?, input),
            Alg::Mac(a) => Artifact::Tag(p.mac(key, a, &input).await?, input),
        })
    }

    /// What kind of artifact, for messages.
    pub(crate) fn what(&self) -> &'static str {
        match self {
            Artifact::Ciphertext(..) => "ciphertext",
            Artifact::Signature(..) => "signature",
            Artifact::Wrapped(..) => "wrapped key",
            Artifact::Tag(..) => "MAC tag",
        }
    }

    /// The key version the artifact records.
    pub(crate) fn version(&self) -> &str {
        match self {
            Artifact::Ciphertext(c, _) => c.version(),
            Artifact::Signature(s, _) => s.version(),
            Artifact::Wrapped(w, _) => w.version(),
            Artifact::Tag(t, _) => t.version(),
        }
    }

    /// The key name the artifact records.
    pub(crate) fn key(&self) -> &str {
        match self {
            Artifact::Ciphertext(c, _) => c.key(),
            Artifact::Signature(s, _) => s.key(),
            Artifact::Wrapped(w, _) => w.key(),
            Artifact::Tag(t, _) => t.key(),
        }
    }

    /// Opens (decrypt, unwrap) or checks (verify) it through `key`, an unpinned reference:
    /// `Ok(true)` when it gives back the original input or verifies.
    pub(crate) async fn open(&self, p: &dyn Provider, key: &KeyRef) -> Result<bool, Error> {
        Ok(match self {
            Artifact::Ciphertext(c, input) => *p.decrypt(key, c, None).await? == *input,
            Artifact::Wrapped(w, input) => *p.unwrap_key(key, w).await? == *input,
            Artifact::Signature(s, input) => {
                p.verify(&s.key_ref(), s.algorithm(), SignInput::Message(input), s.as_bytes()).await?
            }
            Artifact::Tag(t, input) => p.verify_mac(&t.key_ref(), t.algorithm(), input, t.as_bytes()).await?,
        })
    }

    /// [`open`](Self::open) that must succeed.
    pub(crate) async fn expect_opens(&self, p: &dyn Provider, key: &KeyRef, when: &str) -> CaseResult {
        let ok = self.open(p, key).await.during(format!("opening the {} {when}", self.what()))?;
        ensure!(
            ok,
            "the {} made by {} version {} no longer opens {when}",
            self.what(),
            self.key(),
            self.version()
        );
        Ok(())
    }
}

/// Checks that a blob records the key's name, the expected version and algorithm.
pub(crate) fn check_record(
    what: &str,
    key: &str,
    version: &str,
    alg: &dyn fmt::Display,
    info: &KeyInfo,
    want_version: &str,
    want_alg: &dyn fmt::Display,
) -> CaseResult {
    ensure!(key == info.name, "the {what} records key '{key}' but was made by '{}'", info.name);
    ensure!(
        version == want_version,
        "the {what} records version '{version}' but the key's current version is '{want_version}'"
    );
    ensure!(
        alg.to_string() == want_alg.to_string(),
        "the {what} records algorithm {alg} but {want_alg} was asked for"
    );
    Ok(())
}

/// The forms in which `secret` would show up if printed: as text, hex or a Rust byte-slice
/// `Debug` (of its first 12 bytes, so a truncated dump counts), or base64. Returns the
/// form found in `text`, if any.
pub(crate) fn leaked_form(text: &str, secret: &[u8]) -> Option<&'static str> {
    let head = &secret[..secret.len().min(12)];
    let lower_hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
    let debug_list = format!("{head:?}");
    let debug_list = debug_list.trim_start_matches('[').trim_end_matches(']');
    let checks: [(&'static str, String); 5] = [
        ("as text", String::from_utf8_lossy(secret).into_owned()),
        ("as lower-case hex", lower_hex.clone()),
        ("as upper-case hex", lower_hex.to_ascii_uppercase()),
        ("as base64", base64(secret)),
        ("as a list of byte values", debug_list.to_owned()),
    ];
    checks.into_iter().find(|(_, form)| form.len() >= 8 && text.contains(form.as_str())).map(|(name, _)| name)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_detection_sees_every_printed_form() {
        let secret = b"hc-secret-0123456789";
        assert_eq!(leaked_form("x hc-secret-0123456789 y", secret), Some("as text"));
        assert_eq!(leaked_form(&format!("{:?}", secret.to_vec()), secret), Some("as a list of byte values"));
        assert_eq!(leaked_form("aGMtc2VjcmV0LTAxMjM0NTY3ODk=", secret), Some("as base64"));
        assert_eq!(leaked_form("x68632d7365637265742d3031", secret), Some("as lower-case hex"));
        assert_eq!(leaked_form("Ciphertext { len: 20 }", secret), None);
    }

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn data_differs_by_tag_and_has_the_asked_length() {
        assert_eq!(data("a", 100).len(), 100);
        assert_ne!(data("a", 40), data("b", 40));
        assert!(data("a", 0).is_empty());
        assert!(contains(b"abcdef", b"cde"));
        assert!(!contains(b"abcdef", b""));
        assert_eq!(flipped(b"ab", 9), b"ac");
    }
}
