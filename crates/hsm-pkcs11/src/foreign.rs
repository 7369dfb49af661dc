//! Keys made by other PKCS#11 tools (`pkcs11-tool`, vendor utilities): key objects with no
//! hsm metadata object. They are listed and usable; hsm does not manage them (no rotation,
//! states or scheduled deletion). See the crate docs for the defaults they get.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use hsm_core::{KeyInfo, KeySpec, KeyUsage, validate_key_name};

use crate::PROVIDER;
use crate::der;
use crate::session::{Ctx as _, Op, Tok};

type OpResult<T> = std::result::Result<T, Op>;

/// The version string of a key object with an empty `CKA_ID`.
pub(crate) const NO_ID_VERSION: &str = "0";

/// Prefix of the names given to foreign keys whose label is not a valid key name.
pub(crate) const ID_NAME_PREFIX: &str = "id-";

/// One key object (one `CKA_ID`) of a foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignVersion {
    /// Lower-case hex of `CKA_ID`, or [`NO_ID_VERSION`].
    pub(crate) version: String,
    pub(crate) id: Vec<u8>,
    pub(crate) spec: KeySpec,
    /// The usage listed (see [`classify`]).
    pub(crate) usage: KeyUsage,
    /// Every usage the object's attributes permit; operations of these are allowed.
    pub(crate) permits: Vec<KeyUsage>,
}

/// A foreign key: the key objects sharing a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Foreign {
    pub(crate) name: String,
    /// `CKA_LABEL` as found on the objects (possibly empty or not a valid key name).
    pub(crate) label: Vec<u8>,
    /// Sorted by version string; the last is the current one.
    pub(crate) versions: Vec<ForeignVersion>,
}

impl Foreign {
    /// The version asked for (`None`: the current one).
    pub(crate) fn version(&self, v: Option<&str>) -> Option<&ForeignVersion> {
        match v {
            None => self.versions.last(),
            Some(v) => self.versions.iter().find(|x| x.version == v),
        }
    }

    /// What `get_key` shows for version `v`.
    pub(crate) fn info(&self, v: &ForeignVersion, token: &str) -> KeyInfo {
        let current = self.versions.last().unwrap_or(v);
        let mut info = KeyInfo::new(&self.name, current.version.clone(), v.spec, v.usage);
        info.versions = self.versions.iter().map(|x| x.version.clone()).collect();
        // PKCS#11 records no creation time.
        info.created = UNIX_EPOCH;
        info.native_id =
            format!("pkcs11:token={};object={};id={}", pct(token.as_bytes()), pct(&self.label), pct(&v.id));
        info
    }
}

/// RFC 7512 percent-encoding: unreserved characters as they are, everything else `%XX`.
fn pct(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            out.push(char::from(*b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The hsm name of a key object: its label when that is a valid key name, else
/// `id-<hex CKA_ID>`; `None` when neither works (no usable label and no id).
pub(crate) fn name_of(label: &[u8], id: &[u8]) -> Option<String> {
    if let Ok(l) = std::str::from_utf8(label)
        && validate_key_name(PROVIDER, l).is_ok()
    {
        return Some(l.to_owned());
    }
    let n = format!("{ID_NAME_PREFIX}{}", hex(id));
    (!id.is_empty() && validate_key_name(PROVIDER, &n).is_ok()).then_some(n)
}

/// Whether the object is one of hsm's own key objects (`CKA_ID` = `<label>#<version>`),
/// possibly an orphan left by an interrupted creation.
pub(crate) fn is_ours(label: &[u8], id: &[u8]) -> bool {
    id.strip_prefix(label)
        .and_then(|r| r.strip_prefix(b"#"))
        .is_some_and(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
}

const ATTRS: [AttributeType; 11] = [
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::KeyType,
    AttributeType::ValueLen,
    AttributeType::Modulus,
    AttributeType::EcParams,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Sign,
    AttributeType::Wrap,
    AttributeType::Unwrap,
];

/// The spec, listed usage and permitted usages of a private or secret key object from its
/// attributes; `None` for key types and sizes hsm has no spec for.
fn classify(attrs: &[Attribute]) -> Option<(KeySpec, KeyUsage, Vec<KeyUsage>)> {
    let (mut kt, mut len, mut modulus, mut params) = (None, None, None, None);
    let (mut enc, mut sign, mut wrap) = (false, false, false);
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kt = Some(*k),
            Attribute::ValueLen(n) => len = Some(u64::from(*n)),
            Attribute::Modulus(m) => modulus = Some(m.as_slice()),
            Attribute::EcParams(p) => params = Some(p.as_slice()),
            Attribute::Encrypt(b) | Attribute::Decrypt(b) => enc |= *b,
            Attribute::Sign(b) => sign |= *b,
            Attribute::Wrap(b) | Attribute::Unwrap(b) => wrap |= *b,
            _ => {}
        }
    }
    let kt = kt?;
    let spec = if kt == KeyType::AES {
        match len? {
            16 => KeySpec::Aes128,
            24 => KeySpec::Aes192,
            32 => KeySpec::Aes256,
            _ => return None,
        }
    } else if [KeyType::GENERIC_SECRET, KeyType::SHA256_HMAC, KeyType::SHA384_HMAC, KeyType::SHA512_HMAC]
        .contains(&kt)
    {
        match len? {
            32 => KeySpec::HmacSha256,
            48 => KeySpec::HmacSha384,
            64 => KeySpec::HmacSha512,
            _ => return None,
        }
    } else if kt == KeyType::RSA {
        let m = modulus?;
        let m = &m[m.iter().take_while(|b| **b == 0).count()..];
        match m.len() * 8 {
            2048 => KeySpec::Rsa2048,
            3072 => KeySpec::Rsa3072,
            4096 => KeySpec::Rsa4096,
            _ => return None,
        }
    } else if kt == KeyType::EC || kt == KeyType::EC_EDWARDS {
        der::spec_of_ec_params(params?)?
    } else {
        return None;
    };
    // The object permits what its CKA_SIGN, CKA_ENCRYPT/DECRYPT and CKA_WRAP/UNWRAP say
    // (tokens default them to true, so most keys permit several). The usage listed is
    // the spec's default when permitted, else the first permitted, else the default (and
    // the token refuses the operations).
    let permits: Vec<KeyUsage> = [
        (KeyUsage::EncryptDecrypt, enc),
        (KeyUsage::SignVerify, sign),
        (KeyUsage::Mac, sign),
        (KeyUsage::WrapUnwrap, wrap),
    ]
    .into_iter()
    .filter(|(u, permitted)| *permitted && spec.allows_usage(*u))
    .map(|(u, _)| u)
    .collect();
    let default = spec.default_usage();
    let usage =
        if permits.contains(&default) { default } else { permits.first().copied().unwrap_or(default) };
    Some((spec, usage, permits))
}

/// The foreign key objects matching `filter` (private and secret keys), as
/// (name, label, version) triples. hsm's own objects and objects with no spec are skipped.
fn scan(s: &Tok<'_>, filter: &[Attribute]) -> OpResult<Vec<(String, Vec<u8>, ForeignVersion)>> {
    let mut out = Vec::new();
    for class in [ObjectClass::SECRET_KEY, ObjectClass::PRIVATE_KEY] {
        let mut t = vec![Attribute::Class(class)];
        t.extend_from_slice(filter);
        for h in s.find(&t).at("C_FindObjects (keys)")? {
            if let Some(found) = read_one(s, h)? {
                out.push(found);
            }
        }
    }
    Ok(out)
}

fn read_one(s: &Tok<'_>, h: ObjectHandle) -> OpResult<Option<(String, Vec<u8>, ForeignVersion)>> {
    let read = |types: &[AttributeType]| match s.get_attributes(h, types) {
        Ok(a) => Ok(Some(a)),
        // Destroyed between the search and the read.
        Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => Ok(None),
        Err(e) => Err(Op::Ck(e, "C_GetAttributeValue (key)".into())),
    };
    // Label and id first: most keys on a token hsm uses are hsm's own.
    let Some(ids) = read(&ATTRS[..2])? else { return Ok(None) };
    let (mut label, mut id) = (Vec::new(), Vec::new());
    for a in ids {
        match a {
            Attribute::Label(l) => label = l,
            Attribute::Id(i) => id = i,
            _ => {}
        }
    }
    if is_ours(&label, &id) {
        return Ok(None);
    }
    let Some(attrs) = read(&ATTRS[2..])? else { return Ok(None) };
    let (Some(name), Some((spec, usage, permits))) = (name_of(&label, &id), classify(&attrs)) else {
        return Ok(None);
    };
    let version = if id.is_empty() { NO_ID_VERSION.to_owned() } else { hex(&id) };
    Ok(Some((name, label, ForeignVersion { version, id, spec, usage, permits })))
}

/// Groups scanned objects by name (sorted), one version per distinct `CKA_ID`.
fn group(found: Vec<(String, Vec<u8>, ForeignVersion)>) -> Vec<Foreign> {
    let mut by_name: BTreeMap<String, Foreign> = BTreeMap::new();
    for (name, label, v) in found {
        let f = by_name.entry(name.clone()).or_insert_with(|| Foreign { name, label, versions: Vec::new() });
        if !f.versions.iter().any(|x| x.id == v.id) {
            f.versions.push(v);
        }
    }
    let mut out: Vec<Foreign> = by_name.into_values().collect();
    for f in &mut out {
        f.versions.sort_by(|a, b| a.version.cmp(&b.version));
    }
    out
}

/// Every foreign key on the token, sorted by name.
pub(crate) fn all(s: &Tok<'_>) -> OpResult<Vec<Foreign>> {
    Ok(group(scan(s, &[])?))
}

/// The foreign key called `name`, if any.
pub(crate) fn by_name(s: &Tok<'_>, name: &str) -> OpResult<Option<Foreign>> {
    let mut found = scan(s, &[Attribute::Label(name.as_bytes().to_vec())])?;
    found.retain(|(n, ..)| n == name);
    if found.is_empty()
        && let Some(id) = name.strip_prefix(ID_NAME_PREFIX).and_then(unhex)
    {
        found = scan(s, &[Attribute::Id(id)])?;
        found.retain(|(n, ..)| n == name);
    }
    Ok(group(found).into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_ownership() {
        assert_eq!(name_of(b"signer", &[1]).as_deref(), Some("signer"));
        assert_eq!(name_of(b"my key", &[0x0a, 0xff]).as_deref(), Some("id-0aff"));
        assert_eq!(name_of(b"", &[]), None);
        assert_eq!(name_of(b"my key", &[]), None);
        assert!(is_ours(b"k", b"k#12"));
        assert!(!is_ours(b"k", b"k#"));
        assert!(!is_ours(b"k", b"k#1a"));
        assert!(!is_ours(b"k", &[1]));
        assert_eq!(unhex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex("0af"), None);
        assert_eq!(pct(b"a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn usage_is_the_default_when_permitted() {
        let rsa = |enc: bool, sign: bool| {
            vec![
                Attribute::KeyType(KeyType::RSA),
                Attribute::Modulus(vec![0xc5; 256]),
                Attribute::Decrypt(enc),
                Attribute::Sign(sign),
            ]
        };
        use KeyUsage::{EncryptDecrypt as E, SignVerify as S, WrapUnwrap as W};
        assert_eq!(classify(&rsa(true, true)), Some((KeySpec::Rsa2048, E, vec![E, S])));
        assert_eq!(classify(&rsa(false, true)), Some((KeySpec::Rsa2048, S, vec![S])));
        assert_eq!(classify(&rsa(false, false)), Some((KeySpec::Rsa2048, E, vec![])));
        let aes = [
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(16u64.into()),
            Attribute::Wrap(true),
            Attribute::Encrypt(false),
        ];
        assert_eq!(classify(&aes), Some((KeySpec::Aes128, W, vec![W])));
        assert_eq!(classify(&[Attribute::KeyType(KeyType::DES3)]), None);
    }
}
