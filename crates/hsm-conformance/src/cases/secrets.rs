//! `secrets::debug::<usage>`: plaintext, key material and messages never show up in the
//! `Debug` of the provider, the blobs it returns, or its errors.

use std::fmt::Debug;
use std::sync::Arc;

use hsm_core::{Capabilities, Ciphertext, KeyRef, KeyUsage, Provider, SignInput, WrappedKey};
use rand_core::RngCore as _;

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::support::{self, Alg, CaseResult, During as _, fail, flipped, leaked_form};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    for usage in KeyUsage::ALL.iter().copied() {
        out.push(Case::new(
            format!("secrets::debug::{usage}"),
            Requirement::AnyKey(Some(usage)),
            move |p, c| debug(p, c, usage),
        ));
    }
}

/// A 32-byte ASCII secret unique to this run, so it cannot appear by accident.
fn secret(what: &str) -> Vec<u8> {
    let mut out = format!("hc-{what}-{:016x}", rand_core::OsRng.next_u64()).into_bytes();
    out.resize(32, b'x');
    out
}

struct Scan {
    secret: Vec<u8>,
    seen: Vec<(String, String)>,
}

impl Scan {
    fn new(secret: &[u8]) -> Self {
        Scan { secret: secret.to_vec(), seen: Vec::new() }
    }

    fn debug(&mut self, what: &str, value: &dyn Debug) {
        self.seen.push((format!("Debug of {what}"), format!("{value:?}")));
        self.seen.push((format!("pretty Debug of {what}"), format!("{value:#?}")));
    }

    fn error<T>(&mut self, what: &str, r: Result<T, hsm_core::Error>) {
        if let Err(e) = r {
            self.debug(what, &e);
            self.seen.push((format!("Display of {what}"), e.to_string()));
        }
    }

    fn verdict(&self, secret_name: &str) -> CaseResult {
        for (place, text) in &self.seen {
            if let Some(form) = leaked_form(text, &self.secret) {
                fail!("the {secret_name} appears ({form}) in the {place}");
            }
        }
        Ok(())
    }
}

async fn debug(p: Arc<dyn Provider>, ctx: Ctx, usage: KeyUsage) -> CaseResult {
    let caps = ctx.capabilities();
    let spec = support::cheapest(caps, usage).ok_or("no declared spec")?;
    let alg = support::alg_for(caps, spec, usage)?;
    let key = ctx.fixture(spec, usage, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    let (name, mut scan) = match alg {
        Alg::Enc(a) => {
            let s = secret("plaintext");
            let mut scan = Scan::new(&s);
            let ct = p.encrypt(&r, a, &s, None).await.during("encrypt")?;
            let back = p.decrypt(&r, &ct, None).await.during("decrypt")?;
            drop(back);
            scan.debug("the ciphertext", &ct);
            let tampered = Ciphertext::new(ct.key(), ct.version(), a, flipped(ct.as_bytes(), 3));
            scan.error("a decryption error", p.decrypt(&r, &tampered, None).await);
            if let Some(max) = caps.max_plaintext_len(spec, a) {
                let long: Vec<u8> = s.iter().copied().cycle().take(max + 1).collect();
                scan.error("an oversized-plaintext error", p.encrypt(&r, a, &long, None).await);
            }
            scan.error(
                "a wrong-usage error",
                p.sign(&r, hsm_core::SignatureAlgorithm::Ed25519, SignInput::Message(&s)).await,
            );
            ("plaintext", scan)
        }
        Alg::Wrap(a) => {
            let s = secret("keymaterial");
            let mut scan = Scan::new(&s);
            let w = p.wrap_key(&r, a, &s).await.during("wrap_key")?;
            drop(p.unwrap_key(&r, &w).await.during("unwrap_key")?);
            scan.debug("the wrapped key", &w);
            let tampered = WrappedKey::new(w.key(), w.version(), a, flipped(w.as_bytes(), 3));
            scan.error("an unwrap error", p.unwrap_key(&r, &tampered).await);
            ("key material", scan)
        }
        Alg::Sig(a) => {
            let s = secret("message");
            let mut scan = Scan::new(&s);
            let sig = p.sign(&r, a, SignInput::Message(&s)).await.during("sign")?;
            p.verify(&r, a, SignInput::Message(&s), sig.as_bytes()).await.during("verify")?;
            scan.debug("the signature", &sig);
            scan.error("a digest-length error", p.sign(&r, a, SignInput::Digest(&s[..31])).await);
            ("signed message", scan)
        }
        Alg::Mac(a) => {
            let s = secret("message");
            let mut scan = Scan::new(&s);
            let tag = p.mac(&r, a, &s).await.during("mac")?;
            p.verify_mac(&r, a, &s, tag.as_bytes()).await.during("verify_mac")?;
            scan.debug("the MAC tag", &tag);
            scan.error(
                "a wrong-usage error",
                p.encrypt(&r, hsm_core::EncryptionAlgorithm::AesGcm, &s, None).await,
            );
            ("MAC'd message", scan)
        }
    };
    scan.debug("the provider", &*p);
    scan.debug("the key info", &p.get_key(&r).await.during("get_key")?);
    scan.verdict(name)
}
