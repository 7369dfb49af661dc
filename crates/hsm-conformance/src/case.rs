//! A conformance case as data: a name, a capability requirement and an async body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hsm_core::{
    Capabilities, EncryptionAlgorithm, KeySpec, KeyUsage, MacAlgorithm, Provider, SignatureAlgorithm,
    WrapAlgorithm,
};

use crate::ctx::Ctx;

/// A boxed, `Send` future (what a case body returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type Body = Arc<dyn Fn(Arc<dyn Provider>, Ctx) -> BoxFuture<'static, Result<(), Failure>> + Send + Sync>;

/// Why a case failed: what was expected and what the provider did instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    message: String,
}

impl Failure {
    /// A failure with this explanation.
    pub fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into() }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure { message: message.to_owned() }
    }
}

/// What a provider must declare in its [`Capabilities`] for a case to run.
///
/// A case whose requirement is not met is reported as *ignored* with the reason
/// [`Requirement::check`] gives, never as passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// Always runs.
    Nothing,
    /// The spec is declared (with any usage).
    Spec(KeySpec),
    /// Keys of `spec` can be created with `usage`.
    Key {
        /// The key spec.
        spec: KeySpec,
        /// The usage.
        usage: KeyUsage,
    },
    /// `alg` encrypts under keys of `spec`.
    Encryption {
        /// The key spec.
        spec: KeySpec,
        /// The algorithm.
        alg: EncryptionAlgorithm,
    },
    /// `alg` signs with keys of `spec`.
    Signature {
        /// The key spec.
        spec: KeySpec,
        /// The algorithm.
        alg: SignatureAlgorithm,
    },
    /// `alg` signs caller-supplied digests with keys of `spec`.
    DigestSigning {
        /// The key spec.
        spec: KeySpec,
        /// The algorithm.
        alg: SignatureAlgorithm,
    },
    /// `alg` wraps under keys of `spec`.
    Wrap {
        /// The key spec.
        spec: KeySpec,
        /// The algorithm.
        alg: WrapAlgorithm,
    },
    /// `alg` computes MACs with keys of `spec`.
    Mac {
        /// The key spec.
        spec: KeySpec,
        /// The algorithm.
        alg: MacAlgorithm,
    },
    /// Keys of `spec` with `usage` can be created and rotated.
    Rotation {
        /// The key spec.
        spec: KeySpec,
        /// The usage.
        usage: KeyUsage,
    },
    /// Some declared spec can be created with this usage (`None`: with any usage).
    AnyKey(Option<KeyUsage>),
    /// Some key can be created and scheduled deletions can be cancelled.
    CancellableDeletion,
    /// Some key can be created and the deletion policy allows a zero window.
    ImmediateDeletion,
}

impl Requirement {
    /// `Ok` when `caps` meets the requirement, otherwise the reason the case is skipped,
    /// e.g. `"capabilities do not declare ecdsa-sha384 on ec-p384"`.
    ///
    /// # Errors
    /// The reason, as text.
    pub fn check(&self, caps: &Capabilities) -> Result<(), String> {
        fn key(caps: &Capabilities, spec: KeySpec, usage: KeyUsage) -> Result<(), String> {
            match caps.spec(spec) {
                None => Err(format!("capabilities do not declare {spec}")),
                Some(c) if !c.usages.contains(&usage) => {
                    Err(format!("capabilities do not declare usage '{usage}' for {spec}"))
                }
                Some(_) => Ok(()),
            }
        }
        fn declared(yes: bool, alg: &dyn fmt::Display, spec: KeySpec) -> Result<(), String> {
            if yes { Ok(()) } else { Err(format!("capabilities do not declare {alg} on {spec}")) }
        }
        fn any(caps: &Capabilities, usage: Option<KeyUsage>) -> Result<(), String> {
            let found = caps.specs.values().any(|c| usage.is_none_or(|u| c.usages.contains(&u)));
            match (found, usage) {
                (true, _) => Ok(()),
                (false, Some(u)) => Err(format!("capabilities declare no key spec with usage '{u}'")),
                (false, None) => Err("capabilities declare no key spec".to_owned()),
            }
        }
        match *self {
            Requirement::Nothing => Ok(()),
            Requirement::Spec(spec) => match caps.spec(spec) {
                Some(c) if !c.usages.is_empty() => Ok(()),
                _ => Err(format!("capabilities do not declare {spec}")),
            },
            Requirement::Key { spec, usage } => key(caps, spec, usage),
            Requirement::Encryption { spec, alg } => {
                key(caps, spec, KeyUsage::EncryptDecrypt)?;
                declared(caps.supports_encryption(spec, alg), &alg, spec)
            }
            Requirement::Signature { spec, alg } => {
                key(caps, spec, KeyUsage::SignVerify)?;
                declared(caps.supports_signature(spec, alg), &alg, spec)
            }
            Requirement::DigestSigning { spec, alg } => {
                Requirement::Signature { spec, alg }.check(caps)?;
                if caps.spec(spec).is_some_and(|c| c.sign_digest) {
                    Ok(())
                } else {
                    Err(format!("capabilities do not declare digest signing (sign_digest) for {spec}"))
                }
            }
            Requirement::Wrap { spec, alg } => {
                key(caps, spec, KeyUsage::WrapUnwrap)?;
                declared(caps.supports_wrap(spec, alg), &alg, spec)
            }
            Requirement::Mac { spec, alg } => {
                key(caps, spec, KeyUsage::Mac)?;
                declared(caps.supports_mac(spec, alg), &alg, spec)
            }
            Requirement::Rotation { spec, usage } => {
                key(caps, spec, usage)?;
                if caps.spec(spec).is_some_and(|c| c.rotation) {
                    Ok(())
                } else {
                    Err(format!("capabilities declare no rotation for {spec}"))
                }
            }
            Requirement::AnyKey(usage) => any(caps, usage),
            Requirement::CancellableDeletion => {
                any(caps, None)?;
                if caps.deletion.cancellable {
                    Ok(())
                } else {
                    Err("the deletion policy says scheduled deletions cannot be cancelled".to_owned())
                }
            }
            Requirement::ImmediateDeletion => {
                any(caps, None)?;
                if caps.deletion.min_window.is_zero() {
                    Ok(())
                } else {
                    Err(format!(
                        "the deletion policy's minimum window is {} s; immediate deletion is not offered",
                        caps.deletion.min_window.as_secs()
                    ))
                }
            }
        }
    }
}

/// One conformance case.
///
/// Names are `::`-separated paths whose first segment is the [group](crate::GROUPS), e.g.
/// `encrypt::roundtrip::aes-256::aes-gcm` or `errors::wrong-aad::aes-128::aes-gcm`.
#[derive(Clone)]
pub struct Case {
    /// The case's unique name.
    pub name: String,
    /// What the provider must declare for the case to run.
    pub requirement: Requirement,
    body: Body,
}

impl Case {
    /// A case from its parts.
    pub fn new<F, Fut>(name: impl Into<String>, requirement: Requirement, body: F) -> Self
    where
        F: Fn(Arc<dyn Provider>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Failure>> + Send + 'static,
    {
        Case { name: name.into(), requirement, body: Arc::new(move |p, c| Box::pin(body(p, c))) }
    }

    /// The group: the first segment of the name (`encrypt`, `errors`, ...).
    pub fn group(&self) -> &str {
        self.name.split("::").next().unwrap_or_default()
    }

    /// Why the case does not apply to a provider with these capabilities, if it does not.
    pub fn skip_reason(&self, caps: &Capabilities) -> Option<String> {
        self.requirement.check(caps).err()
    }

    /// Runs the body. The [`Ctx`] carries the run's key prefix and shared fixtures; use one
    /// `Ctx` per provider and call [`Ctx::cleanup`] when every case has finished.
    pub fn run(&self, provider: Arc<dyn Provider>, ctx: Ctx) -> BoxFuture<'static, Result<(), Failure>> {
        (self.body)(provider, ctx)
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("name", &self.name).field("requirement", &self.requirement).finish()
    }
}
