//! Name-ordered pagination for providers whose keys can be listed in name order.
//!
//! A page token is the last name of the previous page, tagged with the provider that issued
//! it, in URL-safe base64; the next page starts after that name. Tokens therefore stay
//! valid while keys are created or deleted between pages: nothing is listed twice, and no key
//! that existed throughout is skipped.
//!
//! ```
//! use hsm_core::{KeyInfo, KeySpec, KeyUsage, ListKeys, paging::NamePaging};
//! let keys: Vec<KeyInfo> = ["a", "b", "c"]
//!     .iter()
//!     .map(|n| KeyInfo::new(*n, "1", KeySpec::Aes256, KeyUsage::EncryptDecrypt))
//!     .collect();
//! let req = ListKeys::new().page_size(2);
//! let first = NamePaging::new("demo", &req, 100)?.page(&req, keys.clone());
//! assert_eq!(first.keys.len(), 2);
//! let req = req.page_token(first.next_page_token.unwrap());
//! let second = NamePaging::new("demo", &req, 100)?.page(&req, keys);
//! assert_eq!(second.keys[0].name, "c");
//! assert!(second.next_page_token.is_none());
//! # Ok::<(), hsm_core::Error>(())
//! ```

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::key::{KeyInfo, KeyPage, ListKeys, validate_key_name};

const TOKEN_TAG: &str = "hsm-page-v1";

/// One `list_keys` request's position and page size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePaging {
    provider: &'static str,
    after: Option<String>,
    size: usize,
}

impl NamePaging {
    /// Reads `req`'s page token and page size (none or zero means `max_page_size`; larger
    /// sizes are capped at it).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a token this provider did not issue.
    pub fn new(provider: &'static str, req: &ListKeys, max_page_size: u32) -> Result<Self> {
        let after = req.page_token.as_deref().map(|t| decode(provider, t)).transpose()?;
        let max = max_page_size.max(1);
        let size = req.page_size.filter(|n| *n > 0).unwrap_or(max).min(max) as usize;
        Ok(NamePaging { provider, after, size })
    }

    /// The last name of the previous page: list only names greater than this.
    pub fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }

    /// Keys per page.
    pub fn size(&self) -> usize {
        self.size
    }

    /// True when `name` belongs after the previous page.
    pub fn is_after(&self, name: &str) -> bool {
        self.after.as_deref().is_none_or(|a| name > a)
    }

    /// The token that continues after `last_name`.
    pub fn token_after(&self, last_name: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{TOKEN_TAG}:{}:{last_name}", self.provider))
    }

    /// Builds the page from `keys` in ascending name order: skips names up to the token,
    /// keeps those matching `req`'s filters, takes one page, and issues a next token only
    /// when another matching key follows.
    pub fn page(&self, req: &ListKeys, keys: impl IntoIterator<Item = KeyInfo>) -> KeyPage {
        let mut matching = keys.into_iter().filter(|k| self.is_after(&k.name) && req.matches(k));
        let page: Vec<KeyInfo> = matching.by_ref().take(self.size).collect();
        let next = match (matching.next(), page.last()) {
            (Some(_), Some(last)) => Some(self.token_after(&last.name)),
            _ => None,
        };
        KeyPage::new(page, next)
    }
}

fn decode(provider: &'static str, token: &str) -> Result<String> {
    let bad = || {
        Error::invalid_input(
            provider,
            format!(
                "page token was not issued by the {provider} provider; pass the previous page's \
                 next_page_token, or none for the first page"
            ),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let name = text
        .strip_prefix(TOKEN_TAG)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.strip_prefix(provider))
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(bad)?;
    validate_key_name(provider, name).map_err(|_| bad())?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeySpec, KeyUsage};

    fn keys(names: &[&str]) -> Vec<KeyInfo> {
        names.iter().map(|n| KeyInfo::new(*n, "1", KeySpec::Aes256, KeyUsage::EncryptDecrypt)).collect()
    }

    #[test]
    fn pages_cover_every_key_once_and_the_last_page_has_no_token() {
        let all = keys(&["a", "b", "c", "d", "e"]);
        let mut req = ListKeys::new().page_size(2);
        let mut seen = Vec::new();
        loop {
            let page = NamePaging::new("t", &req, 100).unwrap().page(&req, all.clone());
            seen.extend(page.keys.iter().map(|k| k.name.clone()));
            match page.next_page_token {
                Some(t) => req = req.page_token(t),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn foreign_or_garbled_tokens_are_invalid_input() {
        let other = NamePaging::new("other", &ListKeys::new(), 10).unwrap().token_after("a");
        for t in [other.as_str(), "garbage", "", "aHNtLXBhZ2UtdjE6dDo"] {
            let err = NamePaging::new("t", &ListKeys::new().page_token(t), 10).unwrap_err();
            assert!(err.to_string().contains("not issued by the t provider"), "{err}");
        }
    }

    #[test]
    fn page_size_zero_or_none_means_the_maximum_and_larger_is_capped() {
        assert_eq!(NamePaging::new("t", &ListKeys::new(), 7).unwrap().size(), 7);
        assert_eq!(NamePaging::new("t", &ListKeys::new().page_size(0), 7).unwrap().size(), 7);
        assert_eq!(NamePaging::new("t", &ListKeys::new().page_size(9), 7).unwrap().size(), 7);
        assert_eq!(NamePaging::new("t", &ListKeys::new().page_size(3), 7).unwrap().size(), 3);
    }
}
