//! What every layer knows about a call: the operation, its quota class, the key name; and the
//! macro that implements [`Provider`](hsm_core::Provider) for a layer from one `around` method.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use hsm_core::{EncryptionAlgorithm, Result, SignatureAlgorithm, WrapAlgorithm};

/// A boxed, sendable provider future.
pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The sixteen operations of [`Provider`](hsm_core::Provider), as metric and span labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `create_key`
    CreateKey,
    /// `get_key`
    GetKey,
    /// `list_keys`
    ListKeys,
    /// `rotate_key`
    RotateKey,
    /// `set_key_state`
    SetKeyState,
    /// `schedule_deletion`
    ScheduleDeletion,
    /// `cancel_deletion`
    CancelDeletion,
    /// `public_key`
    PublicKey,
    /// `encrypt`
    Encrypt,
    /// `decrypt`
    Decrypt,
    /// `sign`
    Sign,
    /// `verify`
    Verify,
    /// `wrap_key`
    WrapKey,
    /// `unwrap_key`
    UnwrapKey,
    /// `mac`
    Mac,
    /// `verify_mac`
    VerifyMac,
}

impl Op {
    /// The method name, e.g. `"encrypt"` (the `operation` label of every metric).
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::CreateKey => "create_key",
            Op::GetKey => "get_key",
            Op::ListKeys => "list_keys",
            Op::RotateKey => "rotate_key",
            Op::SetKeyState => "set_key_state",
            Op::ScheduleDeletion => "schedule_deletion",
            Op::CancelDeletion => "cancel_deletion",
            Op::PublicKey => "public_key",
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::WrapKey => "wrap_key",
            Op::UnwrapKey => "unwrap_key",
            Op::Mac => "mac",
            Op::VerifyMac => "verify_mac",
        }
    }

    /// True for operations that change nothing at the service (data plane and reads): sending
    /// them twice has the effect of sending them once, so they are always safe to retry.
    pub const fn is_idempotent(self) -> bool {
        !matches!(
            self,
            Op::CreateKey | Op::RotateKey | Op::SetKeyState | Op::ScheduleDeletion | Op::CancelDeletion
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which vendor quota an operation counts against (see [`RateLimitConfig`](crate::RateLimitConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaClass {
    /// Symmetric cryptography (AES, HMAC): AWS's shared symmetric quota.
    Symmetric,
    /// RSA private- and public-key operations.
    Rsa,
    /// ECDSA and Ed25519 operations.
    Ecc,
    /// Reads of key metadata and public keys (`get_key`, `list_keys`, `public_key`).
    Metadata,
    /// Key-changing operations (create, rotate, state, deletion).
    Control,
}

impl QuotaClass {
    /// The class name (`"symmetric"`, `"rsa"`, `"ecc"`, `"metadata"`, `"control"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            QuotaClass::Symmetric => "symmetric",
            QuotaClass::Rsa => "rsa",
            QuotaClass::Ecc => "ecc",
            QuotaClass::Metadata => "metadata",
            QuotaClass::Control => "control",
        }
    }

    pub(crate) const ALL: [QuotaClass; 5] =
        [QuotaClass::Symmetric, QuotaClass::Rsa, QuotaClass::Ecc, QuotaClass::Metadata, QuotaClass::Control];

    pub(crate) const fn index(self) -> usize {
        match self {
            QuotaClass::Symmetric => 0,
            QuotaClass::Rsa => 1,
            QuotaClass::Ecc => 2,
            QuotaClass::Metadata => 3,
            QuotaClass::Control => 4,
        }
    }

    pub(crate) const fn of_encryption(alg: EncryptionAlgorithm) -> Self {
        match alg {
            EncryptionAlgorithm::AesGcm => QuotaClass::Symmetric,
            _ => QuotaClass::Rsa,
        }
    }

    pub(crate) const fn of_signature(alg: SignatureAlgorithm) -> Self {
        match alg {
            SignatureAlgorithm::RsaPkcs1v15Sha256
            | SignatureAlgorithm::RsaPkcs1v15Sha384
            | SignatureAlgorithm::RsaPkcs1v15Sha512
            | SignatureAlgorithm::RsaPssSha256
            | SignatureAlgorithm::RsaPssSha384
            | SignatureAlgorithm::RsaPssSha512 => QuotaClass::Rsa,
            _ => QuotaClass::Ecc,
        }
    }

    pub(crate) const fn of_wrap(alg: WrapAlgorithm) -> Self {
        match alg {
            WrapAlgorithm::RsaOaepSha256 => QuotaClass::Rsa,
            _ => QuotaClass::Symmetric,
        }
    }
}

/// One call as the layers see it: never any data, only names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) op: Op,
    pub(crate) class: QuotaClass,
    pub(crate) key: &'a str,
}

impl<'a> Call<'a> {
    pub(crate) const fn new(op: Op, class: QuotaClass, key: &'a str) -> Self {
        Call { op, class, key }
    }
}

/// A layer that runs every call of its inner provider through one `around` method.
pub(crate) trait Around: Send + Sync {
    /// Runs `f` (which makes one request to the inner provider each time it is called) under
    /// the layer's policy.
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        f: impl FnMut() -> BoxFut<'a, T> + Send + 'a,
    ) -> BoxFut<'a, T>;
}

/// Implements `Provider` for `$ty` (which has a field `inner: Arc<dyn Provider>` and
/// implements `Around`) by sending every method through `around`; `create_key`, `get_key`,
/// `public_key` and `verify` go through the inherent `create`, `get`, `public` and
/// `check_signature`, which the type defines (`plain_create!` and `plain_reads!` define them
/// as plain `around` calls).
macro_rules! provider_via_around {
    ($ty:ty) => {
        #[::async_trait::async_trait]
        impl ::hsm_core::Provider for $ty {
            fn name(&self) -> &'static str {
                self.inner.name()
            }

            fn capabilities(&self) -> &::hsm_core::Capabilities {
                self.inner.capabilities()
            }

            async fn create_key(
                &self,
                req: ::hsm_core::CreateKey,
            ) -> ::hsm_core::Result<::hsm_core::KeyInfo> {
                self.create(req).await
            }

            async fn get_key(&self, key: &::hsm_core::KeyRef) -> ::hsm_core::Result<::hsm_core::KeyInfo> {
                self.get(key).await
            }

            async fn list_keys(&self, req: ::hsm_core::ListKeys) -> ::hsm_core::Result<::hsm_core::KeyPage> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::ListKeys, QuotaClass::Metadata, ""), move || {
                    self.inner.list_keys(req.clone())
                })
                .await
            }

            async fn rotate_key(&self, key: &::hsm_core::KeyRef) -> ::hsm_core::Result<::hsm_core::KeyInfo> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::RotateKey, QuotaClass::Control, key.name()), || {
                    self.inner.rotate_key(key)
                })
                .await
            }

            async fn set_key_state(
                &self,
                key: &::hsm_core::KeyRef,
                state: ::hsm_core::KeyState,
            ) -> ::hsm_core::Result<::hsm_core::KeyInfo> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::SetKeyState, QuotaClass::Control, key.name()), || {
                    self.inner.set_key_state(key, state)
                })
                .await
            }

            async fn schedule_deletion(
                &self,
                key: &::hsm_core::KeyRef,
                after: Option<::std::time::Duration>,
            ) -> ::hsm_core::Result<::hsm_core::Deletion> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::ScheduleDeletion, QuotaClass::Control, key.name()), || {
                    self.inner.schedule_deletion(key, after)
                })
                .await
            }

            async fn cancel_deletion(
                &self,
                key: &::hsm_core::KeyRef,
            ) -> ::hsm_core::Result<::hsm_core::KeyInfo> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::CancelDeletion, QuotaClass::Control, key.name()), || {
                    self.inner.cancel_deletion(key)
                })
                .await
            }

            async fn public_key(
                &self,
                key: &::hsm_core::KeyRef,
            ) -> ::hsm_core::Result<::hsm_core::PublicKey> {
                self.public(key).await
            }

            async fn encrypt(
                &self,
                key: &::hsm_core::KeyRef,
                alg: ::hsm_core::EncryptionAlgorithm,
                plaintext: &[u8],
                aad: Option<&[u8]>,
            ) -> ::hsm_core::Result<::hsm_core::Ciphertext> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::Encrypt, QuotaClass::of_encryption(alg), key.name()), || {
                    self.inner.encrypt(key, alg, plaintext, aad)
                })
                .await
            }

            async fn decrypt(
                &self,
                key: &::hsm_core::KeyRef,
                ciphertext: &::hsm_core::Ciphertext,
                aad: Option<&[u8]>,
            ) -> ::hsm_core::Result<::hsm_core::Zeroizing<Vec<u8>>> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                let class = QuotaClass::of_encryption(ciphertext.algorithm());
                self.around(Call::new(Op::Decrypt, class, key.name()), || {
                    self.inner.decrypt(key, ciphertext, aad)
                })
                .await
            }

            async fn sign(
                &self,
                key: &::hsm_core::KeyRef,
                alg: ::hsm_core::SignatureAlgorithm,
                input: ::hsm_core::SignInput<'_>,
            ) -> ::hsm_core::Result<::hsm_core::Signature> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::Sign, QuotaClass::of_signature(alg), key.name()), || {
                    self.inner.sign(key, alg, input)
                })
                .await
            }

            async fn verify(
                &self,
                key: &::hsm_core::KeyRef,
                alg: ::hsm_core::SignatureAlgorithm,
                input: ::hsm_core::SignInput<'_>,
                signature: &[u8],
            ) -> ::hsm_core::Result<bool> {
                self.check_signature(key, alg, input, signature).await
            }

            async fn wrap_key(
                &self,
                key: &::hsm_core::KeyRef,
                alg: ::hsm_core::WrapAlgorithm,
                key_material: &[u8],
            ) -> ::hsm_core::Result<::hsm_core::WrappedKey> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::WrapKey, QuotaClass::of_wrap(alg), key.name()), || {
                    self.inner.wrap_key(key, alg, key_material)
                })
                .await
            }

            async fn unwrap_key(
                &self,
                key: &::hsm_core::KeyRef,
                wrapped: &::hsm_core::WrappedKey,
            ) -> ::hsm_core::Result<::hsm_core::Zeroizing<Vec<u8>>> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                let class = QuotaClass::of_wrap(wrapped.algorithm());
                self.around(Call::new(Op::UnwrapKey, class, key.name()), || {
                    self.inner.unwrap_key(key, wrapped)
                })
                .await
            }

            async fn mac(
                &self,
                key: &::hsm_core::KeyRef,
                alg: ::hsm_core::MacAlgorithm,
                message: &[u8],
            ) -> ::hsm_core::Result<::hsm_core::MacTag> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::Mac, QuotaClass::Symmetric, key.name()), || {
                    self.inner.mac(key, alg, message)
                })
                .await
            }

            async fn verify_mac(
                &self,
                key: &::hsm_core::KeyRef,
                alg: ::hsm_core::MacAlgorithm,
                message: &[u8],
                tag: &[u8],
            ) -> ::hsm_core::Result<bool> {
                use $crate::call::{Around as _, Call, Op, QuotaClass};
                self.around(Call::new(Op::VerifyMac, QuotaClass::Symmetric, key.name()), || {
                    self.inner.verify_mac(key, alg, message, tag)
                })
                .await
            }
        }
    };
}

pub(crate) use provider_via_around;

/// `create` for layers with no special create rule: one `around` call, the request cloned
/// per attempt.
macro_rules! plain_create {
    () => {
        async fn create(&self, req: ::hsm_core::CreateKey) -> ::hsm_core::Result<::hsm_core::KeyInfo> {
            use $crate::call::{Around as _, Call, Op, QuotaClass};
            let name = req.name.clone();
            self.around(Call::new(Op::CreateKey, QuotaClass::Control, &name), move || {
                self.inner.create_key(req.clone())
            })
            .await
        }
    };
}

pub(crate) use plain_create;

/// `get`, `public` and `check_signature` as plain `around` calls.
macro_rules! plain_reads {
    () => {
        async fn get(&self, key: &::hsm_core::KeyRef) -> ::hsm_core::Result<::hsm_core::KeyInfo> {
            use $crate::call::{Around as _, Call, Op, QuotaClass};
            self.around(Call::new(Op::GetKey, QuotaClass::Metadata, key.name()), || self.inner.get_key(key))
                .await
        }

        async fn public(&self, key: &::hsm_core::KeyRef) -> ::hsm_core::Result<::hsm_core::PublicKey> {
            use $crate::call::{Around as _, Call, Op, QuotaClass};
            self.around(Call::new(Op::PublicKey, QuotaClass::Metadata, key.name()), || {
                self.inner.public_key(key)
            })
            .await
        }

        async fn check_signature(
            &self,
            key: &::hsm_core::KeyRef,
            alg: ::hsm_core::SignatureAlgorithm,
            input: ::hsm_core::SignInput<'_>,
            signature: &[u8],
        ) -> ::hsm_core::Result<bool> {
            use $crate::call::{Around as _, Call, Op, QuotaClass};
            self.around(Call::new(Op::Verify, QuotaClass::of_signature(alg), key.name()), || {
                self.inner.verify(key, alg, input, signature)
            })
            .await
        }
    };
}

pub(crate) use plain_reads;
