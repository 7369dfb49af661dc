//! The encryption context: a small, sorted map of non-secret strings bound to a message.

use std::collections::BTreeMap;
use std::fmt;

use hsm_core::{Error, Result};

use crate::PROVIDER;

/// At most this many bytes of encoded context (AWS KMS allows 8,192 characters).
pub const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// A message's encryption context: string pairs that are stored in the header in the clear,
/// authenticated with every segment, and handed to the provider as AAD when it wraps the data
/// key (where its algorithm takes AAD). Use it for what the data *is* (`tenant=acme`,
/// `table=payments`), never for secrets: anyone holding the envelope can read it.
///
/// ```
/// use hsm_envelope::Context;
/// let ctx = Context::new().with("tenant", "acme").with("purpose", "backup");
/// assert_eq!(ctx.get("tenant"), Some("acme"));
/// let same: Context = [("purpose", "backup"), ("tenant", "acme")].into();
/// assert_eq!(ctx, same);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Context(BTreeMap<String, String>);

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// Adds (or replaces) one pair.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds (or replaces) one pair.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `KEY=VALUE` (the CLI's `--context`).
    ///
    /// # Errors
    /// `InvalidInput` when there is no `=` or the key is empty.
    pub fn parse_pair(text: &str) -> Result<(String, String)> {
        match text.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(Error::invalid_input(
                PROVIDER,
                format!("encryption context '{text}' is not KEY=VALUE with a non-empty KEY"),
            )),
        }
    }

    /// Checks that every pair of `self` is in `actual` with the same value.
    ///
    /// # Errors
    /// `InvalidInput` naming the first key that is missing or different.
    pub fn require_in(&self, actual: &Context) -> Result<()> {
        for (k, v) in self.iter() {
            if actual.get(k) != Some(v) {
                return Err(Error::invalid_input(
                    PROVIDER,
                    format!(
                        "the envelope's encryption context does not have {k}={v} as required \
                         (see `hsm envelope inspect` for the context it has)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The canonical encoding: `u16` count, then per pair in key order `u16` key length, key,
    /// `u16` value length, value (all big-endian).
    ///
    /// # Errors
    /// `InvalidInput` for an empty key or an encoding over [`MAX_CONTEXT_BYTES`].
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut out =
            Vec::with_capacity(2 + self.0.iter().map(|(k, v)| 4 + k.len() + v.len()).sum::<usize>());
        out.extend_from_slice(&(self.0.len() as u16).to_be_bytes());
        for (k, v) in &self.0 {
            if k.is_empty() {
                return Err(Error::invalid_input(PROVIDER, "an encryption context key must not be empty"));
            }
            for s in [k, v] {
                out.extend_from_slice(&(s.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            if out.len() > MAX_CONTEXT_BYTES {
                return Err(Error::invalid_input(
                    PROVIDER,
                    format!(
                        "the encryption context is over {MAX_CONTEXT_BYTES} bytes encoded; keep it to a few short pairs"
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// Decodes [`Context::encode`]'s form from the start of `bytes`, returning the context and
    /// the bytes it took. Keys must be strictly ascending (so an encoding is canonical).
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Context, usize)> {
        let bad = |what: &str| {
            Error::invalid_input(PROVIDER, format!("envelope header: encryption context {what}"))
        };
        let mut pos = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let end = pos.checked_add(n).filter(|&e| e <= bytes.len() && e <= MAX_CONTEXT_BYTES);
            let end = end.ok_or_else(|| bad("is truncated or too long"))?;
            let s = &bytes[pos..end];
            pos = end;
            Ok(s)
        };
        let count = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad("count"))?);
        let mut map = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let mut field = || -> Result<String> {
                let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad("length"))?);
                String::from_utf8(take(usize::from(len))?.to_vec()).map_err(|_| bad("is not UTF-8"))
            };
            let (k, v) = (field()?, field()?);
            if k.is_empty() || last.as_ref().is_some_and(|l| *l >= k) {
                return Err(bad("keys are empty, repeated or out of order"));
            }
            last = Some(k.clone());
            map.insert(k, v);
        }
        Ok((Context(map), pos))
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Context(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Context {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_canonical_and_round_trips() {
        let a: Context = [("b", "2"), ("a", "1")].into();
        let enc = a.encode().unwrap();
        assert_eq!(enc, b"\0\x02\0\x01a\0\x011\0\x01b\0\x012");
        let (back, used) = Context::decode(&enc).unwrap();
        assert_eq!((back, used), (a, enc.len()));
    }

    #[test]
    fn out_of_order_duplicate_empty_and_oversized_are_refused() {
        for bad in [
            &b"\0\x02\0\x01b\0\0\0\x01a\0\0"[..],
            b"\0\x02\0\x01a\0\0\0\x01a\0\0",
            b"\0\x01\0\0\0\0",
            b"\0\x01\xff\xff",
        ] {
            assert!(Context::decode(bad).is_err(), "{bad:?}");
        }
        let big = Context::new().with("k", "v".repeat(MAX_CONTEXT_BYTES));
        assert!(big.encode().is_err());
        assert!(Context::new().with("", "v").encode().is_err());
    }

    #[test]
    fn require_in_names_the_missing_pair() {
        let have: Context = [("tenant", "acme")].into();
        assert!(Context::new().require_in(&have).is_ok());
        assert!(have.require_in(&have).is_ok());
        let err = Context::from([("tenant", "other")]).require_in(&have).unwrap_err();
        assert!(err.to_string().contains("tenant=other"), "{err}");
    }
}
