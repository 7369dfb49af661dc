//! The vocabulary every provider speaks: key specs, usages, states and algorithms.
//!
//! Each enum prints (`Display`) in a short kebab form (`rsa-pss-sha256`) and parses
//! (`FromStr`) that form, the upper-case names users of the original Python client know
//! (`RSASSA_PSS_SHA_256`, `AES_GCM`), and where one exists the JOSE name (`PS256`).
//! Parsing ignores ASCII case and treats `_` and `-` alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string did not name any member of a vocabulary enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{input}'; expected one of: {expected}")]
pub struct ParseNameError {
    /// What was being parsed, e.g. `"key spec"`.
    pub kind: &'static str,
    /// The input that did not parse (vocabulary names are never secret).
    pub input: String,
    /// The accepted short names, comma separated.
    pub expected: String,
}

fn normalize(s: &str) -> String {
    s.trim().chars().map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() }).collect()
}

macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $short:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The short kebab-case name, stable across releases (used in blob encodings).
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $short, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseNameError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let n = normalize(s);
                $(
                    if n == $short $(|| n == normalize($alias))* {
                        return Ok($name::$variant);
                    }
                )+
                Err(ParseNameError {
                    kind: $kind,
                    input: s.to_owned(),
                    expected: [$($short),+].join(", "),
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary! {
    /// The type and size of a key.
    KeySpec, "key spec" {
        /// AES with a 128-bit key.
        Aes128 => "aes-128" | "AES_128" | "AES128",
        /// AES with a 192-bit key.
        Aes192 => "aes-192" | "AES_192" | "AES192",
        /// AES with a 256-bit key.
        Aes256 => "aes-256" | "AES_256" | "AES256" | "SYMMETRIC_DEFAULT",
        /// RSA with a 2048-bit modulus.
        Rsa2048 => "rsa-2048" | "RSA_2048" | "RSA2048",
        /// RSA with a 3072-bit modulus.
        Rsa3072 => "rsa-3072" | "RSA_3072" | "RSA3072",
        /// RSA with a 4096-bit modulus.
        Rsa4096 => "rsa-4096" | "RSA_4096" | "RSA4096",
        /// ECDSA over NIST P-256 (secp256r1).
        EcP256 => "ec-p256" | "ECC_NIST_P256" | "EC_P256" | "P-256" | "P256" | "secp256r1",
        /// ECDSA over NIST P-384 (secp384r1).
        EcP384 => "ec-p384" | "ECC_NIST_P384" | "EC_P384" | "P-384" | "P384" | "secp384r1",
        /// ECDSA over NIST P-521 (secp521r1).
        EcP521 => "ec-p521" | "ECC_NIST_P521" | "EC_P521" | "P-521" | "P521" | "secp521r1",
        /// ECDSA over secp256k1.
        EcSecp256k1 => "ec-secp256k1" | "ECC_SECG_P256K1" | "EC_SECP256K1" | "P-256K" | "secp256k1",
        /// Ed25519 (EdDSA over Curve25519).
        Ed25519 => "ed25519" | "ECC_NIST_EDWARDS25519" | "EDDSA",
        /// HMAC key for SHA-256 (256 bits).
        HmacSha256 => "hmac-sha256" | "HMAC_256" | "HMAC_SHA256" | "HMAC_SHA_256",
        /// HMAC key for SHA-384 (384 bits).
        HmacSha384 => "hmac-sha384" | "HMAC_384" | "HMAC_SHA384" | "HMAC_SHA_384",
        /// HMAC key for SHA-512 (512 bits).
        HmacSha512 => "hmac-sha512" | "HMAC_512" | "HMAC_SHA512" | "HMAC_SHA_512",
    }
}

/// The family a [`KeySpec`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFamily {
    /// AES symmetric keys.
    Aes,
    /// RSA key pairs.
    Rsa,
    /// ECDSA key pairs (any curve).
    Ec,
    /// Ed25519 key pairs.
    Ed25519,
    /// HMAC secret keys.
    Hmac,
}

impl KeySpec {
    /// The family this spec belongs to.
    pub const fn family(self) -> KeyFamily {
        match self {
            KeySpec::Aes128 | KeySpec::Aes192 | KeySpec::Aes256 => KeyFamily::Aes,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => KeyFamily::Rsa,
            KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcP521 | KeySpec::EcSecp256k1 => KeyFamily::Ec,
            KeySpec::Ed25519 => KeyFamily::Ed25519,
            KeySpec::HmacSha256 | KeySpec::HmacSha384 | KeySpec::HmacSha512 => KeyFamily::Hmac,
        }
    }

    /// Key size in bits (modulus size for RSA, curve size for EC, key length otherwise).
    pub const fn bits(self) -> u32 {
        match self {
            KeySpec::Aes128 => 128,
            KeySpec::Aes192 => 192,
            KeySpec::Aes256 | KeySpec::EcP256 | KeySpec::EcSecp256k1 | KeySpec::Ed25519 => 256,
            KeySpec::HmacSha256 => 256,
            KeySpec::Rsa2048 => 2048,
            KeySpec::Rsa3072 => 3072,
            KeySpec::Rsa4096 => 4096,
            KeySpec::EcP384 | KeySpec::HmacSha384 => 384,
            KeySpec::EcP521 => 521,
            KeySpec::HmacSha512 => 512,
        }
    }

    /// True for secret (symmetric) keys, which have no public half.
    pub const fn is_symmetric(self) -> bool {
        matches!(self.family(), KeyFamily::Aes | KeyFamily::Hmac)
    }

    /// The spec for an original-client `(key_type, key_size)` pair such as `("AES", 256)`,
    /// `("RSA", 2048)`, `("EC", 256)` or `("ED25519", 0)`.
    ///
    /// # Errors
    /// [`ParseNameError`] when the pair names no supported spec.
    pub fn from_type_and_size(key_type: &str, size: u32) -> Result<Self, ParseNameError> {
        let t = normalize(key_type);
        let spec = match (t.as_str(), size) {
            ("aes", 128) => Some(KeySpec::Aes128),
            ("aes", 192) => Some(KeySpec::Aes192),
            ("aes", 256) => Some(KeySpec::Aes256),
            ("rsa", 2048) => Some(KeySpec::Rsa2048),
            ("rsa", 3072) => Some(KeySpec::Rsa3072),
            ("rsa", 4096) => Some(KeySpec::Rsa4096),
            ("ec" | "ecc" | "ecdsa", 256) => Some(KeySpec::EcP256),
            ("ec" | "ecc" | "ecdsa", 384) => Some(KeySpec::EcP384),
            ("ec" | "ecc" | "ecdsa", 521) => Some(KeySpec::EcP521),
            ("ed25519" | "eddsa", _) => Some(KeySpec::Ed25519),
            ("hmac", 256) => Some(KeySpec::HmacSha256),
            ("hmac", 384) => Some(KeySpec::HmacSha384),
            ("hmac", 512) => Some(KeySpec::HmacSha512),
            _ => None,
        };
        spec.ok_or_else(|| ParseNameError {
            kind: "key type and size",
            input: format!("{key_type} {size}"),
            expected: "AES 128/192/256, RSA 2048/3072/4096, EC 256/384/521, ED25519, HMAC 256/384/512"
                .to_owned(),
        })
    }

    /// The usage a key of this spec gets when none is given: encrypt for AES and RSA,
    /// sign for EC and Ed25519, mac for HMAC.
    pub const fn default_usage(self) -> KeyUsage {
        match self.family() {
            KeyFamily::Aes | KeyFamily::Rsa => KeyUsage::EncryptDecrypt,
            KeyFamily::Ec | KeyFamily::Ed25519 => KeyUsage::SignVerify,
            KeyFamily::Hmac => KeyUsage::Mac,
        }
    }

    /// Whether a key of this spec can meaningfully have `usage` (independent of provider).
    pub const fn allows_usage(self, usage: KeyUsage) -> bool {
        matches!(
            (self.family(), usage),
            (KeyFamily::Aes, KeyUsage::EncryptDecrypt | KeyUsage::WrapUnwrap)
                | (KeyFamily::Rsa, KeyUsage::EncryptDecrypt | KeyUsage::SignVerify | KeyUsage::WrapUnwrap)
                | (KeyFamily::Ec | KeyFamily::Ed25519, KeyUsage::SignVerify)
                | (KeyFamily::Hmac, KeyUsage::Mac)
        )
    }

    /// The natural encryption algorithm for this spec, if it encrypts.
    pub const fn default_encryption_algorithm(self) -> Option<EncryptionAlgorithm> {
        match self.family() {
            KeyFamily::Aes => Some(EncryptionAlgorithm::AesGcm),
            KeyFamily::Rsa => Some(EncryptionAlgorithm::RsaOaepSha256),
            _ => None,
        }
    }

    /// The natural signature algorithm for this spec, if it signs.
    pub const fn default_signature_algorithm(self) -> Option<SignatureAlgorithm> {
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => Some(SignatureAlgorithm::RsaPssSha256),
            KeySpec::EcP256 | KeySpec::EcSecp256k1 => Some(SignatureAlgorithm::EcdsaSha256),
            KeySpec::EcP384 => Some(SignatureAlgorithm::EcdsaSha384),
            KeySpec::EcP521 => Some(SignatureAlgorithm::EcdsaSha512),
            KeySpec::Ed25519 => Some(SignatureAlgorithm::Ed25519),
            _ => None,
        }
    }

    /// The natural wrapping algorithm for this spec, if it wraps.
    pub const fn default_wrap_algorithm(self) -> Option<WrapAlgorithm> {
        match self.family() {
            KeyFamily::Aes => Some(WrapAlgorithm::AesKeyWrapPad),
            KeyFamily::Rsa => Some(WrapAlgorithm::RsaOaepSha256),
            _ => None,
        }
    }

    /// The MAC algorithm of an HMAC spec.
    pub const fn default_mac_algorithm(self) -> Option<MacAlgorithm> {
        match self {
            KeySpec::HmacSha256 => Some(MacAlgorithm::HmacSha256),
            KeySpec::HmacSha384 => Some(MacAlgorithm::HmacSha384),
            KeySpec::HmacSha512 => Some(MacAlgorithm::HmacSha512),
            _ => None,
        }
    }

    /// RSA modulus length in bytes, for RSA specs.
    pub const fn rsa_modulus_bytes(self) -> Option<usize> {
        match self {
            KeySpec::Rsa2048 => Some(256),
            KeySpec::Rsa3072 => Some(384),
            KeySpec::Rsa4096 => Some(512),
            _ => None,
        }
    }
}

vocabulary! {
    /// What a key may be used for. A key has exactly one usage.
    KeyUsage, "key usage" {
        /// Encrypt and decrypt data.
        EncryptDecrypt => "encrypt" | "ENCRYPT_DECRYPT" | "encryption" | "encrypt-decrypt",
        /// Sign and verify.
        SignVerify => "sign" | "SIGN_VERIFY" | "signing" | "sign-verify",
        /// Wrap and unwrap other keys.
        WrapUnwrap => "wrap" | "WRAP_UNWRAP" | "wrapping" | "key-wrapping" | "wrap-unwrap",
        /// Compute and verify MACs.
        Mac => "mac" | "GENERATE_VERIFY_MAC" | "hmac",
    }
}

vocabulary! {
    /// The lifecycle state of a key.
    KeyState, "key state" {
        /// Usable.
        Enabled => "enabled" | "ENABLED",
        /// Exists but refuses every cryptographic operation until enabled again.
        Disabled => "disabled" | "DISABLED",
        /// Scheduled for deletion; refuses use; can be cancelled until the deletion date.
        PendingDeletion => "pending-deletion" | "PENDING_DELETION",
    }
}

vocabulary! {
    /// Hash functions used by signatures and MACs.
    DigestAlgorithm, "digest algorithm" {
        /// SHA-256 (32 bytes).
        Sha256 => "sha256" | "SHA_256" | "SHA-256",
        /// SHA-384 (48 bytes).
        Sha384 => "sha384" | "SHA_384" | "SHA-384",
        /// SHA-512 (64 bytes).
        Sha512 => "sha512" | "SHA_512" | "SHA-512",
    }
}

impl DigestAlgorithm {
    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }
}

vocabulary! {
    /// Data encryption algorithms.
    EncryptionAlgorithm, "encryption algorithm" {
        /// AES in Galois/Counter Mode with a random 96-bit nonce and a 128-bit tag.
        AesGcm => "aes-gcm" | "AES_GCM" | "A256GCM" | "SYMMETRIC_DEFAULT",
        /// RSAES-OAEP with SHA-1 and MGF1-SHA-1.
        RsaOaepSha1 => "rsa-oaep-sha1" | "RSA_OAEP" | "RSAES_OAEP_SHA_1" | "RSA_OAEP_SHA1",
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
        RsaOaepSha256 => "rsa-oaep-sha256" | "RSA_OAEP_SHA256" | "RSAES_OAEP_SHA_256" | "RSA_OAEP_256" | "RSA-OAEP-256",
        /// RSAES-PKCS1-v1_5 (legacy; prefer OAEP).
        RsaPkcs1v15 => "rsa-pkcs1v15" | "RSA_PKCS1V15" | "RSA1_5" | "RSA_PKCS1_V1_5" | "RSAES_PKCS1_V1_5",
    }
}

impl EncryptionAlgorithm {
    /// Whether this algorithm can be used with keys of `spec`.
    pub const fn fits(self, spec: KeySpec) -> bool {
        match self {
            EncryptionAlgorithm::AesGcm => matches!(spec.family(), KeyFamily::Aes),
            _ => matches!(spec.family(), KeyFamily::Rsa),
        }
    }

    /// The largest plaintext the algorithm itself allows for `spec`, if bounded
    /// (RSA: `k - 2·hLen - 2` for OAEP, `k - 11` for PKCS#1 v1.5).
    /// Providers may declare smaller limits in their [`Capabilities`](crate::Capabilities).
    pub const fn max_plaintext_len(self, spec: KeySpec) -> Option<usize> {
        match (self, spec.rsa_modulus_bytes()) {
            (EncryptionAlgorithm::RsaOaepSha1, Some(k)) => Some(k - 2 * 20 - 2),
            (EncryptionAlgorithm::RsaOaepSha256, Some(k)) => Some(k - 2 * 32 - 2),
            (EncryptionAlgorithm::RsaPkcs1v15, Some(k)) => Some(k - 11),
            _ => None,
        }
    }
}

vocabulary! {
    /// Signature algorithms.
    SignatureAlgorithm, "signature algorithm" {
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RsaPkcs1v15Sha256 => "rsa-pkcs1-sha256" | "RSASSA_PKCS1_V1_5_SHA_256" | "RS256" | "rsa-pkcs1v15-sha256",
        /// RSASSA-PKCS1-v1_5 with SHA-384.
        RsaPkcs1v15Sha384 => "rsa-pkcs1-sha384" | "RSASSA_PKCS1_V1_5_SHA_384" | "RS384" | "rsa-pkcs1v15-sha384",
        /// RSASSA-PKCS1-v1_5 with SHA-512.
        RsaPkcs1v15Sha512 => "rsa-pkcs1-sha512" | "RSASSA_PKCS1_V1_5_SHA_512" | "RS512" | "rsa-pkcs1v15-sha512",
        /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
        RsaPssSha256 => "rsa-pss-sha256" | "RSASSA_PSS_SHA_256" | "PS256",
        /// RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt.
        RsaPssSha384 => "rsa-pss-sha384" | "RSASSA_PSS_SHA_384" | "PS384",
        /// RSASSA-PSS with SHA-512, MGF1-SHA-512 and a 64-byte salt.
        RsaPssSha512 => "rsa-pss-sha512" | "RSASSA_PSS_SHA_512" | "PS512",
        /// ECDSA with SHA-256, DER-encoded signature.
        EcdsaSha256 => "ecdsa-sha256" | "ECDSA_SHA_256" | "ES256" | "ES256K",
        /// ECDSA with SHA-384, DER-encoded signature.
        EcdsaSha384 => "ecdsa-sha384" | "ECDSA_SHA_384" | "ES384",
        /// ECDSA with SHA-512, DER-encoded signature.
        EcdsaSha512 => "ecdsa-sha512" | "ECDSA_SHA_512" | "ES512",
        /// Pure Ed25519 (RFC 8032) over the whole message.
        Ed25519 => "ed25519" | "ED25519" | "EdDSA" | "ED25519_SHA_512",
    }
}

impl SignatureAlgorithm {
    /// The hash this algorithm signs, or `None` for pure Ed25519 (which signs the message).
    pub const fn digest(self) -> Option<DigestAlgorithm> {
        match self {
            SignatureAlgorithm::RsaPkcs1v15Sha256
            | SignatureAlgorithm::RsaPssSha256
            | SignatureAlgorithm::EcdsaSha256 => Some(DigestAlgorithm::Sha256),
            SignatureAlgorithm::RsaPkcs1v15Sha384
            | SignatureAlgorithm::RsaPssSha384
            | SignatureAlgorithm::EcdsaSha384 => Some(DigestAlgorithm::Sha384),
            SignatureAlgorithm::RsaPkcs1v15Sha512
            | SignatureAlgorithm::RsaPssSha512
            | SignatureAlgorithm::EcdsaSha512 => Some(DigestAlgorithm::Sha512),
            SignatureAlgorithm::Ed25519 => None,
        }
    }

    /// Whether this algorithm can be used with keys of `spec`.
    ///
    /// ECDSA is bound to the hash that matches the curve (P-256 and secp256k1 with SHA-256,
    /// P-384 with SHA-384, P-521 with SHA-512), as AWS KMS, Key Vault and Cloud KMS require.
    pub const fn fits(self, spec: KeySpec) -> bool {
        match self {
            SignatureAlgorithm::RsaPkcs1v15Sha256
            | SignatureAlgorithm::RsaPkcs1v15Sha384
            | SignatureAlgorithm::RsaPkcs1v15Sha512
            | SignatureAlgorithm::RsaPssSha256
            | SignatureAlgorithm::RsaPssSha384
            | SignatureAlgorithm::RsaPssSha512 => matches!(spec.family(), KeyFamily::Rsa),
            SignatureAlgorithm::EcdsaSha256 => {
                matches!(spec, KeySpec::EcP256 | KeySpec::EcSecp256k1)
            }
            SignatureAlgorithm::EcdsaSha384 => matches!(spec, KeySpec::EcP384),
            SignatureAlgorithm::EcdsaSha512 => matches!(spec, KeySpec::EcP521),
            SignatureAlgorithm::Ed25519 => matches!(spec, KeySpec::Ed25519),
        }
    }

    /// The fixed signature length for `spec`, where signatures have one (RSA, Ed25519).
    /// ECDSA signatures are DER-encoded and vary in length.
    pub const fn fixed_signature_len(self, spec: KeySpec) -> Option<usize> {
        match (self, spec.rsa_modulus_bytes()) {
            (SignatureAlgorithm::Ed25519, _) => Some(64),
            (
                SignatureAlgorithm::EcdsaSha256
                | SignatureAlgorithm::EcdsaSha384
                | SignatureAlgorithm::EcdsaSha512,
                _,
            ) => None,
            (_, k) => k,
        }
    }
}

vocabulary! {
    /// Key wrapping algorithms.
    WrapAlgorithm, "wrap algorithm" {
        /// AES Key Wrap (RFC 3394): key material a multiple of 8 bytes, at least 16.
        AesKeyWrap => "aes-key-wrap" | "AES_KEY_WRAP" | "A256KW" | "aes-kw",
        /// AES Key Wrap with Padding (RFC 5649): any non-empty key material.
        AesKeyWrapPad => "aes-key-wrap-pad" | "AES_KEY_WRAP_PAD" | "aes-kwp" | "AES_KEY_WRAP_PADDING",
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
        RsaOaepSha256 => "rsa-oaep-sha256" | "RSA_OAEP_SHA256" | "RSAES_OAEP_SHA_256" | "RSA_OAEP_256",
        /// AES-GCM with a random 96-bit nonce.
        AesGcm => "aes-gcm" | "AES_GCM",
    }
}

impl WrapAlgorithm {
    /// Whether this algorithm can be used with keys of `spec`.
    pub const fn fits(self, spec: KeySpec) -> bool {
        match self {
            WrapAlgorithm::RsaOaepSha256 => matches!(spec.family(), KeyFamily::Rsa),
            _ => matches!(spec.family(), KeyFamily::Aes),
        }
    }
}

vocabulary! {
    /// Message authentication code algorithms.
    MacAlgorithm, "MAC algorithm" {
        /// HMAC with SHA-256 (32-byte tag).
        HmacSha256 => "hmac-sha256" | "HMAC_SHA_256" | "HS256",
        /// HMAC with SHA-384 (48-byte tag).
        HmacSha384 => "hmac-sha384" | "HMAC_SHA_384" | "HS384",
        /// HMAC with SHA-512 (64-byte tag).
        HmacSha512 => "hmac-sha512" | "HMAC_SHA_512" | "HS512",
    }
}

impl MacAlgorithm {
    /// Whether this algorithm can be used with keys of `spec`.
    pub const fn fits(self, spec: KeySpec) -> bool {
        matches!(
            (self, spec),
            (MacAlgorithm::HmacSha256, KeySpec::HmacSha256)
                | (MacAlgorithm::HmacSha384, KeySpec::HmacSha384)
                | (MacAlgorithm::HmacSha512, KeySpec::HmacSha512)
        )
    }

    /// Tag length in bytes.
    pub const fn tag_len(self) -> usize {
        match self {
            MacAlgorithm::HmacSha256 => 32,
            MacAlgorithm::HmacSha384 => 48,
            MacAlgorithm::HmacSha512 => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_client_names_parse() {
        let cases: &[(&str, SignatureAlgorithm)] = &[
            ("RSASSA_PKCS1_V1_5_SHA_256", SignatureAlgorithm::RsaPkcs1v15Sha256),
            ("RSASSA_PSS_SHA_384", SignatureAlgorithm::RsaPssSha384),
            ("ECDSA_SHA_256", SignatureAlgorithm::EcdsaSha256),
            ("ED25519", SignatureAlgorithm::Ed25519),
            ("rsa-pss-sha256", SignatureAlgorithm::RsaPssSha256),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<SignatureAlgorithm>().unwrap(), *want, "{s}");
        }
        assert_eq!("AES_GCM".parse::<EncryptionAlgorithm>().unwrap(), EncryptionAlgorithm::AesGcm);
        assert_eq!("RSA_OAEP".parse::<EncryptionAlgorithm>().unwrap(), EncryptionAlgorithm::RsaOaepSha1);
        assert_eq!(
            "RSA_OAEP_SHA256".parse::<EncryptionAlgorithm>().unwrap(),
            EncryptionAlgorithm::RsaOaepSha256
        );
        assert_eq!("RSA_PKCS1V15".parse::<EncryptionAlgorithm>().unwrap(), EncryptionAlgorithm::RsaPkcs1v15);
        assert_eq!("AES_KEY_WRAP".parse::<WrapAlgorithm>().unwrap(), WrapAlgorithm::AesKeyWrap);
        assert_eq!("AES_KEY_WRAP_PAD".parse::<WrapAlgorithm>().unwrap(), WrapAlgorithm::AesKeyWrapPad);
        assert_eq!("AES_GCM".parse::<WrapAlgorithm>().unwrap(), WrapAlgorithm::AesGcm);
    }

    #[test]
    fn display_round_trips_through_from_str_for_every_member() {
        fn check<T: fmt::Display + FromStr + PartialEq + fmt::Debug + Copy>(all: &[T])
        where
            T::Err: fmt::Debug,
        {
            for v in all {
                assert_eq!(v.to_string().parse::<T>().unwrap(), *v);
            }
        }
        check(KeySpec::ALL);
        check(KeyUsage::ALL);
        check(KeyState::ALL);
        check(EncryptionAlgorithm::ALL);
        check(SignatureAlgorithm::ALL);
        check(WrapAlgorithm::ALL);
        check(MacAlgorithm::ALL);
        check(DigestAlgorithm::ALL);
    }

    #[test]
    fn unknown_name_error_lists_the_accepted_names() {
        let err = "rsa-1024".parse::<KeySpec>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown key spec 'rsa-1024'"), "{msg}");
        assert!(msg.contains("rsa-2048"), "{msg}");
    }

    #[test]
    fn ecdsa_hash_is_bound_to_the_curve() {
        assert!(SignatureAlgorithm::EcdsaSha256.fits(KeySpec::EcP256));
        assert!(!SignatureAlgorithm::EcdsaSha384.fits(KeySpec::EcP256));
        assert!(SignatureAlgorithm::EcdsaSha512.fits(KeySpec::EcP521));
        assert!(!EncryptionAlgorithm::RsaOaepSha256.fits(KeySpec::EcP256));
        assert!(!WrapAlgorithm::AesKeyWrap.fits(KeySpec::Rsa2048));
    }

    #[test]
    fn rsa_oaep_limits_follow_the_modulus() {
        assert_eq!(EncryptionAlgorithm::RsaOaepSha256.max_plaintext_len(KeySpec::Rsa2048), Some(190));
        assert_eq!(EncryptionAlgorithm::RsaOaepSha1.max_plaintext_len(KeySpec::Rsa2048), Some(214));
        assert_eq!(EncryptionAlgorithm::RsaPkcs1v15.max_plaintext_len(KeySpec::Rsa4096), Some(501));
        assert_eq!(EncryptionAlgorithm::AesGcm.max_plaintext_len(KeySpec::Aes256), None);
    }

    #[test]
    fn original_type_and_size_pairs_map_to_specs() {
        assert_eq!(KeySpec::from_type_and_size("AES", 256).unwrap(), KeySpec::Aes256);
        assert_eq!(KeySpec::from_type_and_size("RSA", 3072).unwrap(), KeySpec::Rsa3072);
        assert_eq!(KeySpec::from_type_and_size("EC", 384).unwrap(), KeySpec::EcP384);
        assert!(KeySpec::from_type_and_size("RSA", 1024).is_err());
    }
}
