//! [`Pkcs11Provider`]: the [`Provider`] implementation over a PKCS#11 token.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use hsm_core::{
    Capabilities, Ciphertext, CreateKey, Deletion, DigestAlgorithm, EncryptionAlgorithm, Error, KeyFamily,
    KeyInfo, KeyPage, KeyRef, KeySpec, KeyState, KeyUsage, ListKeys, MacAlgorithm, MacTag, Provider,
    PublicKey, Result, SignInput, Signature, SignatureAlgorithm, UnusableReason, WrapAlgorithm, WrappedKey,
    Zeroizing, async_trait, check, paging::NamePaging, validate_key_name,
};
use sha2::Digest as _;

use crate::PROVIDER;
use crate::capabilities::{self, MAX_PAGE_SIZE};
use crate::config::Pkcs11Config;
use crate::der;
use crate::foreign;
use crate::meta::{APPLICATION, Meta, object_id, unix};
use crate::session::{Ctx as _, Module, Op, Pool, Tok};

type OpResult<T> = std::result::Result<T, Op>;

/// A [`Provider`] over one PKCS#11 token. Cheap to clone (clones share the sessions).
///
/// See the [crate docs](crate) for the object layout and what each token supports.
#[derive(Clone)]
pub struct Pkcs11Provider {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    token: String,
    module_path: std::path::PathBuf,
    caps: Capabilities,
    /// Serializes this process's metadata changes.
    writer: Mutex<()>,
    /// Names being created by this process (between the uniqueness check and the metadata write).
    creating: Mutex<HashSet<String>>,
}

impl fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("module", &self.inner.module_path)
            .field("token", &self.inner.token)
            .field("slot", &self.inner.pool.slot.id())
            .finish_non_exhaustive()
    }
}

fn internal(message: impl Into<String>) -> Error {
    Error::Provider { provider: PROVIDER, code: "internal".into(), message: message.into(), source: None }
}

fn not_found(name: &str, version: Option<&str>) -> Error {
    match version {
        Some(v) => Error::not_found(PROVIDER, format!("{name}@{v}")),
        None => Error::not_found(PROVIDER, name),
    }
}

fn pending(name: &str) -> Error {
    Error::KeyUnusable { provider: PROVIDER, key: name.to_owned(), reason: UnusableReason::PendingDeletion }
}

// ---------------------------------------------------------------------------------------
// Blocking helpers: every one runs on a pooled session inside `spawn_blocking`.

fn meta_template(name: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(APPLICATION.to_vec()),
        Attribute::Label(name.as_bytes().to_vec()),
    ]
}

/// The metadata objects of `name` (normally one), highest `seq` first.
fn read_metas(s: &Tok<'_>, template: &[Attribute]) -> OpResult<Vec<(ObjectHandle, String, Meta)>> {
    let mut out = Vec::new();
    for h in s.find(template).at("C_FindObjects (metadata)")? {
        let attrs = match s.get_attributes(h, &[AttributeType::Label, AttributeType::Value]) {
            Ok(a) => a,
            // Deleted between find and read by a concurrent replacement.
            Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => continue,
            Err(e) => return Err(Op::Ck(e, "C_GetAttributeValue (metadata)".into())),
        };
        let (mut label, mut value) = (None, None);
        for a in attrs {
            match a {
                Attribute::Label(l) => label = String::from_utf8(l).ok(),
                Attribute::Value(v) => value = Some(v),
                _ => {}
            }
        }
        // Objects that are not ours (or from a future layout) are skipped, not fatal.
        if let (Some(label), Some(meta)) =
            (label, value.and_then(|v| serde_json::from_slice::<Meta>(&v).ok()))
            && meta.format == 1
            && validate_key_name(PROVIDER, &label).is_ok()
        {
            out.push((h, label, meta));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.seq.cmp(&a.2.seq)));
    Ok(out)
}

fn find_meta(s: &Tok<'_>, name: &str) -> OpResult<Option<(ObjectHandle, Meta)>> {
    Ok(read_metas(s, &meta_template(name))?.into_iter().next().map(|(h, _, m)| (h, m)))
}

fn write_meta(s: &Tok<'_>, name: &str, meta: &Meta) -> OpResult<ObjectHandle> {
    let value = serde_json::to_vec(meta).map_err(|e| internal(format!("metadata serialization: {e}")))?;
    let mut t = meta_template(name);
    t.extend([Attribute::Token(true), Attribute::Private(true), Attribute::Value(value)]);
    s.create_retrying(|s| s.create_object(&t)).at("C_CreateObject (metadata)")
}

/// Replaces the metadata object (its value is read-only once created): writes the new one
/// with a higher `seq`, then destroys every older one.
fn replace_meta(s: &Tok<'_>, name: &str, meta: &mut Meta) -> OpResult<()> {
    meta.seq += 1;
    let new = write_meta(s, name, meta)?;
    for h in s.find(&meta_template(name)).at("C_FindObjects (metadata)")? {
        if h != new {
            match s.exclusive(|s| s.destroy_object(h)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                Err(e) => return Err(Op::Ck(e, "C_DestroyObject (metadata)".into())),
            }
        }
    }
    Ok(())
}

/// Destroys every object of key `name`: each version's key objects and the metadata.
fn purge(s: &Tok<'_>, name: &str, meta: &Meta) -> OpResult<()> {
    for v in &meta.versions {
        for h in s.find(&[Attribute::Id(object_id(name, *v))]).at("C_FindObjects")? {
            match s.exclusive(|s| s.destroy_object(h)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                Err(e) => return Err(Op::Ck(e, "C_DestroyObject".into())),
            }
        }
    }
    for h in s.find(&meta_template(name)).at("C_FindObjects (metadata)")? {
        match s.exclusive(|s| s.destroy_object(h)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
            Err(e) => return Err(Op::Ck(e, "C_DestroyObject (metadata)".into())),
        }
    }
    Ok(())
}

/// The live metadata of `name`, purging the key if its deletion date has passed.
fn live_meta(s: &Tok<'_>, name: &str) -> OpResult<Meta> {
    let (_, meta) = find_meta(s, name)?.ok_or_else(|| not_found(name, None))?;
    if meta.expired(SystemTime::now()) {
        purge(s, name, &meta)?;
        return Err(not_found(name, None).into());
    }
    Ok(meta)
}

/// Parses a version string to one the key has.
fn version_of(meta: &Meta, name: &str, v: Option<&str>) -> Result<u32> {
    match v {
        None => Ok(meta.current),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| meta.versions.contains(n) && n.to_string() == text)
            .ok_or_else(|| not_found(name, Some(text))),
    }
}

/// Where the key objects of one version of a key are.
#[derive(Clone)]
struct Target {
    name: String,
    /// `CKA_LABEL` (the name, for hsm's keys).
    label: Vec<u8>,
    /// `CKA_ID` (`<name>#<v>`, for hsm's keys).
    id: Vec<u8>,
    version: String,
}

/// A key reference resolved on the token.
struct Resolved {
    info: KeyInfo,
    /// `None` for a key made by another tool.
    meta: Option<Meta>,
    target: Target,
    /// For a key made by another tool: the usages its object permits (empty for hsm's).
    permits: Vec<KeyUsage>,
}

impl Resolved {
    /// The key as the checks for an operation of `usage` see it: a key made by another
    /// tool may be used for anything its object permits, whatever usage it is listed with.
    fn for_usage(self, usage: KeyUsage) -> (KeyInfo, Target) {
        let mut info = self.info;
        if self.permits.contains(&usage) {
            info.usage = usage;
        }
        (info, self.target)
    }
}

/// Resolves `name` (and `version`): hsm's metadata first, then keys made by other tools.
fn resolve_in(s: &Tok<'_>, token: &str, name: &str, version: Option<&str>) -> OpResult<Resolved> {
    if let Some((_, meta)) = find_meta(s, name)? {
        if meta.expired(SystemTime::now()) {
            purge(s, name, &meta)?;
            return Err(not_found(name, None).into());
        }
        let v = version_of(&meta, name, version)?;
        let target = Target {
            name: name.to_owned(),
            label: name.as_bytes().to_vec(),
            id: object_id(name, v),
            version: v.to_string(),
        };
        return Ok(Resolved { info: meta.info(name, token), meta: Some(meta), target, permits: Vec::new() });
    }
    let f = foreign::by_name(s, name)?.ok_or_else(|| not_found(name, None))?;
    let fv = f.version(version).ok_or_else(|| not_found(name, version))?;
    let target = Target {
        name: name.to_owned(),
        label: f.label.clone(),
        id: fv.id.clone(),
        version: fv.version.clone(),
    };
    Ok(Resolved { info: f.info(fv, token), meta: None, target, permits: fv.permits.clone() })
}

/// The refusal for changes hsm cannot make to keys other tools made.
fn unmanaged(name: &str, what: &str) -> Error {
    Error::invalid_input(
        PROVIDER,
        format!(
            "key '{name}' was made by another PKCS#11 tool (it has no hsm metadata object): hsm \
             uses it but cannot {what}; use the tool that made it, or delete it now (0 days)"
        ),
    )
}

/// Like [`live_meta`], but a key made by another tool is refused with [`unmanaged`].
fn managed_meta(s: &Tok<'_>, name: &str, what: &str) -> OpResult<Meta> {
    match live_meta(s, name) {
        Err(Op::Hsm(Error::NotFound { .. })) if foreign::by_name(s, name)?.is_some() => {
            Err(unmanaged(name, what).into())
        }
        other => other,
    }
}

/// The key object of class `class` of `t`.
fn key_object(s: &Tok<'_>, t: &Target, class: ObjectClass) -> OpResult<ObjectHandle> {
    let found = s
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(t.label.clone()),
            Attribute::Id(t.id.clone()),
        ])
        .at("C_FindObjects (key)")?;
    found.into_iter().next().ok_or_else(|| {
        Error::not_found(
            PROVIDER,
            format!(
                "{}@{} (its key object is missing from the token: deleted by another tool?)",
                t.name, t.version
            ),
        )
        .into()
    })
}

/// Destroys the key objects of a key made by another tool (immediate deletion).
fn destroy_foreign(s: &Tok<'_>, f: &foreign::Foreign) -> OpResult<()> {
    for v in &f.versions {
        for class in [ObjectClass::SECRET_KEY, ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            let t = [Attribute::Class(class), Attribute::Label(f.label.clone()), Attribute::Id(v.id.clone())];
            for h in s.find(&t).at("C_FindObjects")? {
                match s.exclusive(|s| s.destroy_object(h)) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                    Err(e) => return Err(Op::Ck(e, "C_DestroyObject".into())),
                }
            }
        }
    }
    Ok(())
}

fn ulong(n: usize) -> cryptoki::types::Ulong {
    cryptoki::types::Ulong::from(n as u64)
}

/// Generates the key objects of version `v` of `name`: as session objects (the slow part,
/// concurrently with anything), then copied onto the token under the object lock.
fn generate(
    s: &Tok<'_>,
    name: &str,
    v: u32,
    spec: KeySpec,
    usage: KeyUsage,
    extractable: bool,
) -> OpResult<()> {
    let made = generate_session_objects(s, name, v, spec, usage, extractable)?;
    let copied = made
        .iter()
        .try_for_each(|h| s.create_retrying(|s| s.copy_object(*h, &[Attribute::Token(true)])).map(drop));
    for h in made {
        let _ = s.destroy_object(h);
    }
    copied.at("C_CopyObject (onto the token)")?;
    Ok(())
}

fn generate_session_objects(
    s: &Tok<'_>,
    name: &str,
    v: u32,
    spec: KeySpec,
    usage: KeyUsage,
    extractable: bool,
) -> OpResult<Vec<ObjectHandle>> {
    let id = object_id(name, v);
    let common = |private: bool| {
        vec![
            Attribute::Token(false),
            Attribute::Private(private),
            Attribute::Label(name.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ]
    };
    let (enc, sign, wrap) =
        (usage == KeyUsage::EncryptDecrypt, usage == KeyUsage::SignVerify, usage == KeyUsage::WrapUnwrap);
    let secret = |kt: KeyType, len: usize, extra: Vec<Attribute>| {
        let mut t = common(true);
        t.extend([
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(kt),
            Attribute::ValueLen(ulong(len)),
            Attribute::Sensitive(true),
            Attribute::Extractable(extractable),
        ]);
        t.extend(extra);
        t
    };
    let private = |extra: Vec<Attribute>| {
        let mut t = common(true);
        t.extend([Attribute::Sensitive(true), Attribute::Extractable(extractable)]);
        t.extend(extra);
        t
    };
    match spec.family() {
        KeyFamily::Aes => {
            let t = secret(
                KeyType::AES,
                spec.bits() as usize / 8,
                vec![
                    Attribute::Encrypt(enc),
                    Attribute::Decrypt(enc),
                    Attribute::Wrap(wrap),
                    Attribute::Unwrap(wrap),
                ],
            );
            Ok(vec![s.generate_key(&Mechanism::AesKeyGen, &t).at("C_GenerateKey (AES)")?])
        }
        KeyFamily::Hmac => {
            let t = secret(
                KeyType::GENERIC_SECRET,
                spec.bits() as usize / 8,
                vec![Attribute::Sign(true), Attribute::Verify(true)],
            );
            Ok(vec![s.generate_key(&Mechanism::GenericSecretKeyGen, &t).at("C_GenerateKey (HMAC)")?])
        }
        KeyFamily::Rsa => {
            let mut public = common(false);
            public.extend([
                Attribute::ModulusBits(ulong(spec.bits() as usize)),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(enc),
                Attribute::Verify(sign),
                Attribute::Wrap(wrap),
            ]);
            let private =
                private(vec![Attribute::Decrypt(enc), Attribute::Sign(sign), Attribute::Unwrap(wrap)]);
            let (a, b) = s
                .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
                .at("C_GenerateKeyPair (RSA)")?;
            Ok(vec![a, b])
        }
        KeyFamily::Ec | KeyFamily::Ed25519 => {
            let params = der::ec_params(spec).ok_or_else(|| internal(format!("no curve for {spec}")))?;
            let mut public = common(false);
            public.extend([Attribute::EcParams(params.to_vec()), Attribute::Verify(true)]);
            let private = private(vec![Attribute::Sign(true)]);
            let mech = if spec == KeySpec::Ed25519 {
                Mechanism::EccEdwardsKeyPairGen
            } else {
                Mechanism::EccKeyPairGen
            };
            let (a, b) = s.generate_key_pair(&mech, &public, &private).at("C_GenerateKeyPair (EC)")?;
            Ok(vec![a, b])
        }
        _ => Err(internal(format!("cannot generate {spec}")).into()),
    }
}

/// Destroys the key objects of one version (cleanup after a failed create or rotate).
fn destroy_version(s: &Tok<'_>, name: &str, v: u32) {
    if let Ok(hs) = s.find(&[Attribute::Id(object_id(name, v))]) {
        for h in hs {
            let _ = s.exclusive(|s| s.destroy_object(h));
        }
    }
}

fn digest(alg: DigestAlgorithm, msg: &[u8]) -> Vec<u8> {
    match alg {
        DigestAlgorithm::Sha384 => sha2::Sha384::digest(msg).to_vec(),
        DigestAlgorithm::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        _ => sha2::Sha256::digest(msg).to_vec(),
    }
}

/// The DER DigestInfo prefix PKCS#1 v1.5 signatures put before the digest.
fn digest_info(alg: DigestAlgorithm) -> &'static [u8] {
    match alg {
        DigestAlgorithm::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
            0x00, 0x04, 0x30,
        ],
        DigestAlgorithm::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
            0x00, 0x04, 0x40,
        ],
        _ => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
            0x00, 0x04, 0x20,
        ],
    }
}

fn pss_params(alg: DigestAlgorithm) -> PkcsPssParams {
    let (hash_alg, mgf) = match alg {
        DigestAlgorithm::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        DigestAlgorithm::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
        _ => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
    };
    PkcsPssParams { hash_alg, mgf, s_len: ulong(alg.output_len()) }
}

fn is_pss(alg: SignatureAlgorithm) -> bool {
    matches!(
        alg,
        SignatureAlgorithm::RsaPssSha256
            | SignatureAlgorithm::RsaPssSha384
            | SignatureAlgorithm::RsaPssSha512
    )
}

/// What the token signs for `alg`: the DigestInfo‖digest, the digest, or the message.
fn to_be_signed(alg: SignatureAlgorithm, input: &SignInput<'_>) -> Vec<u8> {
    let Some(d) = alg.digest() else { return input.bytes().to_vec() };
    let hashed = match input {
        SignInput::Digest(x) => x.to_vec(),
        _ => digest(d, input.bytes()),
    };
    if alg.fits(KeySpec::Rsa2048) && !is_pss(alg) {
        let mut out = digest_info(d).to_vec();
        out.extend(hashed);
        out
    } else {
        hashed
    }
}

fn hmac_mechanism(alg: MacAlgorithm) -> Mechanism<'static> {
    match alg {
        MacAlgorithm::HmacSha384 => Mechanism::Sha384Hmac,
        MacAlgorithm::HmacSha512 => Mechanism::Sha512Hmac,
        _ => Mechanism::Sha256Hmac,
    }
}

/// A session object holding caller bytes as a generic secret, so the token can wrap them.
fn secret_object(s: &Tok<'_>, material: &[u8]) -> OpResult<ObjectHandle> {
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Value(material.to_vec()),
    ])
    .at("C_CreateObject (material to wrap)")
}

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

// ---------------------------------------------------------------------------------------

impl Pkcs11Provider {
    /// Loads the module, finds the token, logs in and reads the token's mechanism list.
    /// Blocking (module loading, login): call it before entering, or with `spawn_blocking`
    /// from, an async context. The PIN is tried once; a wrong PIN is never retried.
    ///
    /// # Errors
    /// `Config` for a module that does not exist or is not a PKCS#11 library, a token
    /// selector that matches no token or several, an unreadable PIN source;
    /// `Unauthenticated` for a wrong or locked PIN.
    pub fn connect(config: &Pkcs11Config) -> Result<Self> {
        let pin = config.pin.read()?;
        let module = Module::load(&config.module)?;
        let (slot, token) = module.find_slot(&config.token)?;
        let mechanisms = module.mechanisms(slot)?;
        let pool = Pool::open(module, slot, pin)?;
        let probed = pool.run(&|s| Ok(capabilities::probe(s, &mechanisms)))?;
        Ok(Pkcs11Provider {
            inner: Arc::new(Inner {
                pool,
                token,
                module_path: config.module.clone(),
                caps: capabilities::from_mechanisms(&mechanisms, probed),
                writer: Mutex::new(()),
                creating: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.inner.token
    }

    /// Like [`Provider::create_key`], but the key objects (of this version and of every
    /// later rotation) get `CKA_EXTRACTABLE = true`: other keys on the token (or other
    /// PKCS#11 applications) can then wrap them with `C_WrapKey`, for backup or transfer.
    /// They are still sensitive (`CKA_SENSITIVE = true`): the value is never readable in
    /// the clear. `create_key` makes non-extractable keys; use this only for keys that
    /// must be exportable wrapped. A PKCS#11-only option, so it is an inherent method
    /// rather than a field of [`CreateKey`]; the metadata records it (`"extractable":true`).
    ///
    /// # Errors
    /// As [`Provider::create_key`].
    pub async fn create_extractable_key(&self, req: CreateKey) -> Result<KeyInfo> {
        self.create(req, true).await
    }

    async fn create(&self, req: CreateKey, extractable: bool) -> Result<KeyInfo> {
        check::create_key(PROVIDER, &self.inner.caps, &req)?;
        let (spec, usage) = (req.spec, req.effective_usage());
        let name = req.name.clone();
        self.run(move |inner, s| {
            {
                let _w = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((_, m)) = find_meta(s, &name)? {
                    if !m.expired(SystemTime::now()) {
                        return Err(Error::AlreadyExists { provider: PROVIDER, key: name.clone() }.into());
                    }
                    purge(s, &name, &m)?;
                }
                // A key another tool made under this label holds the name too.
                if foreign::by_name(s, &name)?.is_some() {
                    return Err(Error::AlreadyExists { provider: PROVIDER, key: name.clone() }.into());
                }
                if !inner.creating.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone()) {
                    return Err(Error::AlreadyExists { provider: PROVIDER, key: name.clone() }.into());
                }
            }
            let done = |inner: &Inner| {
                inner.creating.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
            };
            // Leftover key objects of a crashed earlier attempt would make ids ambiguous.
            destroy_version(s, &name, 1);
            let made = generate(s, &name, 1, spec, usage, extractable).and_then(|()| {
                let _w = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
                let mut meta = Meta::new(spec, usage, req.description.clone(), req.tags.clone());
                meta.extractable = extractable;
                write_meta(s, &name, &meta)?;
                Ok(meta.info(&name, &inner.token))
            });
            if made.is_err() {
                destroy_version(s, &name, 1);
            }
            done(inner);
            made
        })
        .await
    }

    /// Runs `f` on a pooled, logged-in session on the blocking thread pool.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: Fn(&Inner, &Tok<'_>) -> OpResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.pool.run(&|s| f(&inner, s)))
            .await
            .map_err(|e| internal(format!("background task failed: {e}")))?
    }

    /// The key `key` names, and where the objects of the version asked for are.
    async fn resolve(&self, key: &KeyRef) -> Result<Resolved> {
        validate_key_name(PROVIDER, key.name())?;
        let (name, version) = (key.name().to_owned(), key.version().map(str::to_owned));
        self.run(move |inner, s| resolve_in(s, &inner.token, &name, version.as_deref())).await
    }

    /// Applies `f` to the live metadata of `key` under the writer lock and stores it.
    async fn mutate<F>(&self, key: &KeyRef, what: &'static str, f: F) -> Result<KeyInfo>
    where
        F: Fn(&mut Meta) -> Result<()> + Send + 'static,
    {
        validate_key_name(PROVIDER, key.name())?;
        let (name, version) = (key.name().to_owned(), key.version().map(str::to_owned));
        self.run(move |inner, s| {
            let _w = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let mut meta = managed_meta(s, &name, what)?;
            version_of(&meta, &name, version.as_deref())?;
            f(&mut meta)?;
            replace_meta(s, &name, &mut meta)?;
            Ok(meta.info(&name, &inner.token))
        })
        .await
    }
}

#[async_trait]
impl Provider for Pkcs11Provider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    async fn create_key(&self, req: CreateKey) -> Result<KeyInfo> {
        self.create(req, false).await
    }

    async fn get_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        Ok(self.resolve(key).await?.info)
    }

    async fn list_keys(&self, req: ListKeys) -> Result<KeyPage> {
        let paging = NamePaging::new(PROVIDER, &req, MAX_PAGE_SIZE)?;
        let all = self
            .run(|inner, s| {
                let t = [Attribute::Class(ObjectClass::DATA), Attribute::Application(APPLICATION.to_vec())];
                let now = SystemTime::now();
                let mut out: Vec<KeyInfo> = Vec::new();
                for (_, name, meta) in read_metas(s, &t)? {
                    if out.last().is_some_and(|k| k.name == name) || meta.expired(now) {
                        continue;
                    }
                    out.push(meta.info(&name, &inner.token));
                }
                // Keys other tools made, unless hsm has a key of that name.
                let ours: HashSet<String> = out.iter().map(|k| k.name.clone()).collect();
                for f in foreign::all(s)? {
                    if !ours.contains(&f.name)
                        && let Some(v) = f.version(None)
                    {
                        out.push(f.info(v, &inner.token));
                    }
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            })
            .await?;
        Ok(paging.page(&req, all))
    }

    async fn rotate_key(&self, key: &KeyRef) -> Result<KeyInfo> {
        let Resolved { info, meta, .. } = self.resolve(key).await?;
        let Some(meta) = meta else { return Err(unmanaged(&info.name, "rotate it")) };
        if info.state == KeyState::PendingDeletion {
            return Err(pending(&info.name));
        }
        let next = meta.versions.iter().max().copied().unwrap_or(0).saturating_add(1);
        let (name, spec, usage, extractable) = (info.name.clone(), info.spec, info.usage, meta.extractable);
        self.run(move |inner, s| {
            destroy_version(s, &name, next);
            generate(s, &name, next, spec, usage, extractable)?;
            let _w = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let commit = (|| {
                let mut meta = live_meta(s, &name)?;
                if meta.state == KeyState::PendingDeletion {
                    return Err(pending(&name).into());
                }
                if meta.versions.iter().any(|v| *v >= next) {
                    return Err(Error::Unavailable {
                        provider: PROVIDER,
                        message: format!("key '{name}' was rotated by someone else meanwhile; retry"),
                        retry_after: None,
                    }
                    .into());
                }
                meta.versions.push(next);
                meta.current = next;
                replace_meta(s, &name, &mut meta)?;
                Ok(meta.info(&name, &inner.token))
            })();
            if commit.is_err() {
                destroy_version(s, &name, next);
            }
            commit
        })
        .await
    }

    async fn set_key_state(&self, key: &KeyRef, new_state: KeyState) -> Result<KeyInfo> {
        if !matches!(new_state, KeyState::Enabled | KeyState::Disabled) {
            return Err(Error::invalid_input(
                PROVIDER,
                "a key cannot be set to pending-deletion directly; use schedule_deletion",
            ));
        }
        let name = key.name().to_owned();
        self.mutate(key, "change its state", move |m| {
            if m.state == KeyState::PendingDeletion {
                return Err(pending(&name));
            }
            m.state = new_state;
            Ok(())
        })
        .await
    }

    async fn schedule_deletion(&self, key: &KeyRef, after: Option<Duration>) -> Result<Deletion> {
        let window = check::deletion_window(PROVIDER, &self.inner.caps.deletion, after)?;
        validate_key_name(PROVIDER, key.name())?;
        let (name, version) = (key.name().to_owned(), key.version().map(str::to_owned));
        self.run(move |inner, s| {
            let _w = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if window.is_zero()
                && find_meta(s, &name)?.is_none()
                && let Some(f) = foreign::by_name(s, &name)?
            {
                if version.as_deref().is_some_and(|v| f.version(Some(v)).is_none()) {
                    return Err(not_found(&name, version.as_deref()).into());
                }
                destroy_foreign(s, &f)?;
                return Ok(Deletion::new(name.clone(), SystemTime::now(), true));
            }
            let mut meta = managed_meta(s, &name, "schedule its deletion")?;
            version_of(&meta, &name, version.as_deref())?;
            let now = SystemTime::now();
            if window.is_zero() {
                purge(s, &name, &meta)?;
                return Ok(Deletion::new(name.clone(), now, true));
            }
            let date = now
                .checked_add(window)
                .ok_or_else(|| Error::invalid_input(PROVIDER, "the deletion date is out of range"))?;
            meta.state = KeyState::PendingDeletion;
            meta.deletion = Some(unix(date));
            replace_meta(s, &name, &mut meta)?;
            Ok(Deletion::new(name.clone(), crate::meta::from_unix(unix(date)), false))
        })
        .await
    }

    async fn cancel_deletion(&self, key: &KeyRef) -> Result<KeyInfo> {
        let name = key.name().to_owned();
        self.mutate(key, "cancel a deletion", move |m| {
            if m.state != KeyState::PendingDeletion {
                return Err(Error::invalid_input(
                    PROVIDER,
                    format!("key '{name}' is not scheduled for deletion; there is nothing to cancel"),
                ));
            }
            m.state = KeyState::Disabled;
            m.deletion = None;
            Ok(())
        })
        .await
    }

    async fn public_key(&self, key: &KeyRef) -> Result<PublicKey> {
        let Resolved { info, target, .. } = self.resolve(key).await?;
        if info.spec.is_symmetric() {
            return Err(Error::invalid_input(
                PROVIDER,
                format!("key '{}' is a {} key, which has no public key", info.name, info.spec),
            ));
        }
        let (t, spec) = (target.clone(), info.spec);
        let spki = self
            .run(move |_, s| {
                let h = key_object(s, &t, ObjectClass::PUBLIC_KEY)?;
                let want = if spec.family() == KeyFamily::Rsa {
                    vec![AttributeType::Modulus, AttributeType::PublicExponent]
                } else {
                    vec![AttributeType::EcPoint]
                };
                let (mut n, mut e, mut point) = (None, None, None);
                for a in s.get_attributes(h, &want).at("C_GetAttributeValue (public key)")? {
                    match a {
                        Attribute::Modulus(x) => n = Some(x),
                        Attribute::PublicExponent(x) => e = Some(x),
                        Attribute::EcPoint(x) => point = Some(x),
                        _ => {}
                    }
                }
                let spki = match (n, e, point) {
                    (Some(n), Some(e), _) => Some(der::rsa_spki(&n, &e)),
                    (_, _, Some(p)) => der::ec_spki(spec, der::strip_octet_string(&p)),
                    _ => None,
                };
                spki.ok_or_else(|| internal("the token did not return the public key's attributes").into())
            })
            .await?;
        Ok(PublicKey::new(info.name, target.version.clone(), info.spec, spki))
    }

    async fn encrypt(
        &self,
        key: &KeyRef,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Ciphertext> {
        let (info, target) = self.resolve(key).await?.for_usage(KeyUsage::EncryptDecrypt);
        check::encrypt(PROVIDER, &self.inner.caps, &info, alg, plaintext.len(), aad)?;
        let (t, pt, aad) =
            (target.clone(), Zeroizing::new(plaintext.to_vec()), aad.unwrap_or_default().to_vec());
        let payload = self
            .run(move |_, s| match alg {
                EncryptionAlgorithm::AesGcm => {
                    let h = key_object(s, &t, ObjectClass::SECRET_KEY)?;
                    let iv = s.generate_random_vec(IV_LEN as u32).at("C_GenerateRandom")?;
                    if iv.len() != IV_LEN || iv.iter().all(|b| *b == 0) {
                        return Err(internal("the token's RNG returned an unusable IV").into());
                    }
                    let mut iv_buf = iv.clone();
                    let params = GcmParams::new(&mut iv_buf, &aad, ulong(TAG_LEN * 8))
                        .map_err(|e| internal(format!("GCM parameters: {e}")))?;
                    let ct =
                        s.encrypt(&Mechanism::AesGcm(params), h, &pt).at("C_Encrypt with CKM_AES_GCM")?;
                    let mut out = iv;
                    out.extend(ct);
                    Ok(out)
                }
                _ => {
                    let h = key_object(s, &t, ObjectClass::PUBLIC_KEY)?;
                    s.encrypt(&rsa_mechanism(alg), h, &pt).at("C_Encrypt (RSA)")
                }
            })
            .await?;
        Ok(Ciphertext::new(info.name, target.version.clone(), alg, payload))
    }

    async fn decrypt(
        &self,
        key: &KeyRef,
        ciphertext: &Ciphertext,
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, ciphertext.key(), "ciphertext")?;
        let pinned = KeyRef::new(key.name()).with_version(ciphertext.version());
        let (info, target) = self.resolve(&pinned).await?.for_usage(KeyUsage::EncryptDecrypt);
        let alg = ciphertext.algorithm();
        check::decrypt(PROVIDER, &self.inner.caps, &info, alg, aad)?;
        let (t, payload, aad) =
            (target.clone(), ciphertext.as_bytes().to_vec(), aad.unwrap_or_default().to_vec());
        let failed = || Op::Hsm(Error::DecryptionFailed { provider: PROVIDER });
        self.run(move |_, s| {
            let out = match alg {
                EncryptionAlgorithm::AesGcm => {
                    let h = key_object(s, &t, ObjectClass::SECRET_KEY)?;
                    if payload.len() < IV_LEN + TAG_LEN {
                        return Err(failed());
                    }
                    let (iv, ct) = payload.split_at(IV_LEN);
                    let mut iv = iv.to_vec();
                    let params = GcmParams::new(&mut iv, &aad, ulong(TAG_LEN * 8))
                        .map_err(|e| internal(format!("GCM parameters: {e}")))?;
                    s.decrypt(&Mechanism::AesGcm(params), h, ct)
                }
                _ => {
                    let h = key_object(s, &t, ObjectClass::PRIVATE_KEY)?;
                    s.decrypt(&rsa_mechanism(alg), h, &payload)
                }
            };
            out.map(Zeroizing::new).map_err(|e| opaque(e, "C_Decrypt"))
        })
        .await
    }

    async fn sign(&self, key: &KeyRef, alg: SignatureAlgorithm, input: SignInput<'_>) -> Result<Signature> {
        let (info, target) = self.resolve(key).await?.for_usage(KeyUsage::SignVerify);
        check::sign(PROVIDER, &self.inner.caps, &info, alg, &input)?;
        let (t, spec, tbs) = (target.clone(), info.spec, Zeroizing::new(to_be_signed(alg, &input)));
        let sig = self
            .run(move |_, s| {
                let h = key_object(s, &t, ObjectClass::PRIVATE_KEY)?;
                let raw = s.sign(&sign_mechanism(alg, &spec), h, &tbs).at("C_Sign")?;
                Ok(if spec.family() == KeyFamily::Ec { der::ecdsa_to_der(&raw) } else { raw })
            })
            .await?;
        Ok(Signature::new(info.name, target.version.clone(), alg, sig))
    }

    async fn verify(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        let (info, target) = self.resolve(key).await?.for_usage(KeyUsage::SignVerify);
        check::sign(PROVIDER, &self.inner.caps, &info, alg, &input)?;
        check::signature_len(PROVIDER, &info, alg, signature.len())?;
        let raw = if info.spec.family() == KeyFamily::Ec {
            match der::ecdsa_from_der(signature, der::ecdsa_half(info.spec)) {
                Some(r) => r,
                None => return Ok(false),
            }
        } else {
            signature.to_vec()
        };
        let (t, spec, tbs) = (target.clone(), info.spec, to_be_signed(alg, &input));
        self.run(move |_, s| {
            let h = key_object(s, &t, ObjectClass::PUBLIC_KEY)?;
            match s.verify(&sign_mechanism(alg, &spec), h, &tbs, &raw) {
                Ok(()) => Ok(true),
                Err(CkError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => Ok(false),
                Err(e) => Err(Op::Ck(e, "C_Verify".into())),
            }
        })
        .await
    }

    async fn wrap_key(&self, key: &KeyRef, alg: WrapAlgorithm, key_material: &[u8]) -> Result<WrappedKey> {
        let (info, target) = self.resolve(key).await?.for_usage(KeyUsage::WrapUnwrap);
        check::wrap(PROVIDER, &self.inner.caps, &info, alg, Some(key_material.len()))?;
        let (t, material) = (target.clone(), Zeroizing::new(key_material.to_vec()));
        let payload = self
            .run(move |_, s| {
                let kek = key_object(s, &t, ObjectClass::SECRET_KEY)?;
                let obj = secret_object(s, &material)?;
                let wrapped = s.wrap_key(&wrap_mechanism(alg), kek, obj).at("C_WrapKey");
                let _ = s.destroy_object(obj);
                let wrapped = wrapped?;
                Ok(match alg {
                    // SoftHSM zero-pads the value to a multiple of 8 before wrapping: record how
                    // many bytes of padding to drop after unwrapping.
                    WrapAlgorithm::AesKeyWrapPad => {
                        let mut out = vec![(material.len().next_multiple_of(8) - material.len()) as u8];
                        out.extend(wrapped);
                        out
                    }
                    _ => wrapped,
                })
            })
            .await?;
        Ok(WrappedKey::new(info.name, target.version.clone(), alg, payload))
    }

    async fn unwrap_key(&self, key: &KeyRef, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
        check::same_key(PROVIDER, key, wrapped.key(), "wrapped key")?;
        let pinned = KeyRef::new(key.name()).with_version(wrapped.version());
        let (info, target) = self.resolve(&pinned).await?.for_usage(KeyUsage::WrapUnwrap);
        let alg = wrapped.algorithm();
        check::wrap(PROVIDER, &self.inner.caps, &info, alg, None)?;
        let (t, payload) = (target.clone(), wrapped.as_bytes().to_vec());
        let failed = || Op::Hsm(Error::DecryptionFailed { provider: PROVIDER });
        self.run(move |_, s| {
            let kek = key_object(s, &t, ObjectClass::SECRET_KEY)?;
            let (pad, body) = match alg {
                WrapAlgorithm::AesKeyWrapPad => match payload.split_first() {
                    Some((p, rest)) if *p < 8 => (usize::from(*p), rest),
                    _ => return Err(failed()),
                },
                _ => (0, &payload[..]),
            };
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ];
            let obj = s
                .unwrap_key(&wrap_mechanism(alg), kek, body, &template)
                .map_err(|e| opaque(e, "C_UnwrapKey"))?;
            let value = s.get_attributes(obj, &[AttributeType::Value]).at("C_GetAttributeValue (unwrapped)");
            let _ = s.destroy_object(obj);
            let mut value = match value?.into_iter().next() {
                Some(Attribute::Value(v)) => Zeroizing::new(v),
                _ => return Err(internal("the token did not return the unwrapped value").into()),
            };
            // A token that zero-padded the material before wrapping (SoftHSM 2.6) returns
            // it padded: drop the recorded padding. A token that implements RFC 5649 exactly
            // returns the true length, which is not a multiple of 8 when there was padding.
            if pad > 0 && value.len() % 8 == 0 {
                if value.len() < pad || value[value.len() - pad..].iter().any(|b| *b != 0) {
                    return Err(failed());
                }
                let keep = value.len() - pad;
                value.truncate(keep);
            } else if pad > 0 && (value.len() + pad) % 8 != 0 {
                return Err(failed());
            }
            if value.is_empty() {
                return Err(failed());
            }
            Ok(value)
        })
        .await
    }

    async fn mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8]) -> Result<MacTag> {
        let (info, target) = self.resolve(key).await?.for_usage(KeyUsage::Mac);
        check::mac(PROVIDER, &self.inner.caps, &info, alg)?;
        let (t, msg) = (target.clone(), Zeroizing::new(message.to_vec()));
        let tag = self
            .run(move |_, s| {
                let h = key_object(s, &t, ObjectClass::SECRET_KEY)?;
                s.sign(&hmac_mechanism(alg), h, &msg).at("C_Sign (HMAC)")
            })
            .await?;
        Ok(MacTag::new(info.name, target.version.clone(), alg, tag))
    }

    async fn verify_mac(&self, key: &KeyRef, alg: MacAlgorithm, message: &[u8], tag: &[u8]) -> Result<bool> {
        let (info, target) = self.resolve(key).await?.for_usage(KeyUsage::Mac);
        check::mac(PROVIDER, &self.inner.caps, &info, alg)?;
        if tag.len() != alg.tag_len() {
            return Ok(false);
        }
        let (t, msg, tag) = (target.clone(), Zeroizing::new(message.to_vec()), tag.to_vec());
        self.run(move |_, s| {
            let h = key_object(s, &t, ObjectClass::SECRET_KEY)?;
            // C_Verify compares inside the token.
            match s.verify(&hmac_mechanism(alg), h, &msg, &tag) {
                Ok(()) => Ok(true),
                Err(CkError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => Ok(false),
                Err(e) => Err(Op::Ck(e, "C_Verify (HMAC)".into())),
            }
        })
        .await
    }
}

/// Decryption and unwrapping failures are opaque, except for the token being unreachable
/// or logged out (which the caller can fix) and a key object gone.
fn opaque(e: CkError, what: &str) -> Op {
    match crate::error::ck(e, what) {
        e @ (Error::Unavailable { .. } | Error::Unauthenticated { .. } | Error::NotFound { .. }) => {
            Op::Hsm(e)
        }
        _ => Op::Hsm(Error::DecryptionFailed { provider: PROVIDER }),
    }
}

pub(crate) fn rsa_mechanism(alg: EncryptionAlgorithm) -> Mechanism<'static> {
    match alg {
        EncryptionAlgorithm::RsaOaepSha256 => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        )),
        EncryptionAlgorithm::RsaOaepSha1 => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        )),
        _ => Mechanism::RsaPkcs,
    }
}

fn sign_mechanism(alg: SignatureAlgorithm, spec: &KeySpec) -> Mechanism<'static> {
    match (spec.family(), alg.digest()) {
        (KeyFamily::Ed25519, _) => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
        (KeyFamily::Ec, _) => Mechanism::Ecdsa,
        (_, Some(d)) if is_pss(alg) => Mechanism::RsaPkcsPss(pss_params(d)),
        _ => Mechanism::RsaPkcs,
    }
}

fn wrap_mechanism(alg: WrapAlgorithm) -> Mechanism<'static> {
    match alg {
        WrapAlgorithm::AesKeyWrapPad => Mechanism::AesKeyWrapPad,
        _ => Mechanism::AesKeyWrap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_signs_digest_info_and_pss_the_bare_digest() {
        let d = [7u8; 32];
        let p1 = to_be_signed(SignatureAlgorithm::RsaPkcs1v15Sha256, &SignInput::Digest(&d));
        assert_eq!(p1.len(), 19 + 32);
        assert_eq!(&p1[19..], &d);
        assert_eq!(to_be_signed(SignatureAlgorithm::RsaPssSha256, &SignInput::Digest(&d)), d);
        assert_eq!(to_be_signed(SignatureAlgorithm::EcdsaSha256, &SignInput::Digest(&d)), d);
        assert_eq!(to_be_signed(SignatureAlgorithm::Ed25519, &SignInput::Message(b"m")), b"m");
        assert_eq!(to_be_signed(SignatureAlgorithm::EcdsaSha384, &SignInput::Message(b"m")).len(), 48);
    }
}
