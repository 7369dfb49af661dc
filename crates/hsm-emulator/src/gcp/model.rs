//! Cloud KMS enums (numbers and names from googleapis `google/cloud/kms/v1/resources.proto`)
//! and what the emulator knows about each algorithm.

/// `CryptoKey.CryptoKeyPurpose`.
pub(crate) const PURPOSES: &[(i32, &str)] = &[
    (1, "ENCRYPT_DECRYPT"),
    (5, "ASYMMETRIC_SIGN"),
    (6, "ASYMMETRIC_DECRYPT"),
    (7, "RAW_ENCRYPT_DECRYPT"),
    (9, "MAC"),
];
pub(crate) const ENCRYPT_DECRYPT: i32 = 1;
pub(crate) const ASYMMETRIC_SIGN: i32 = 5;
pub(crate) const ASYMMETRIC_DECRYPT: i32 = 6;
pub(crate) const RAW_ENCRYPT_DECRYPT: i32 = 7;
pub(crate) const MAC: i32 = 9;

/// `ProtectionLevel`.
pub(crate) const PROTECTION_LEVELS: &[(i32, &str)] =
    &[(1, "SOFTWARE"), (2, "HSM"), (3, "EXTERNAL"), (4, "EXTERNAL_VPC")];
pub(crate) const SOFTWARE: i32 = 1;
pub(crate) const HSM: i32 = 2;

/// `CryptoKeyVersion.CryptoKeyVersionState`.
pub(crate) const STATES: &[(i32, &str)] = &[
    (5, "PENDING_GENERATION"),
    (1, "ENABLED"),
    (2, "DISABLED"),
    (3, "DESTROYED"),
    (4, "DESTROY_SCHEDULED"),
    (6, "PENDING_IMPORT"),
    (7, "IMPORT_FAILED"),
    (8, "GENERATION_FAILED"),
    (9, "PENDING_EXTERNAL_DESTRUCTION"),
    (10, "EXTERNAL_DESTRUCTION_FAILED"),
];
pub(crate) const ENABLED: i32 = 1;
pub(crate) const DISABLED: i32 = 2;
pub(crate) const DESTROYED: i32 = 3;
pub(crate) const DESTROY_SCHEDULED: i32 = 4;

/// `PublicKey.PublicKeyFormat`.
pub(crate) const PUBLIC_KEY_FORMATS: &[(i32, &str)] = &[(1, "PEM"), (3, "NIST_PQC")];
pub(crate) const PEM: i32 = 1;

/// `CryptoKeyVersion.CryptoKeyVersionView`.
pub(crate) const VERSION_VIEWS: &[(i32, &str)] = &[(1, "FULL")];

/// Digest algorithms named in algorithm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The `Digest` oneof field carrying a digest of this hash.
    pub(crate) fn digest_field(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
            Hash::Sha1 => "sha1",
            Hash::Sha224 => "sha224",
        }
    }
}

/// Elliptic curves of `EC_SIGN_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    Secp256k1,
}

/// What an algorithm needs from the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// GOOGLE_SYMMETRIC_ENCRYPTION: AES-256-GCM under an opaque ciphertext envelope.
    GoogleSymmetric,
    /// Raw AES-GCM with the key size in bytes.
    AesGcm(usize),
    /// RSA signing: modulus bits, PSS (else PKCS#1 v1.5), digest.
    RsaSign { bits: u32, pss: bool, hash: Hash },
    /// RSA-OAEP decryption: modulus bits, OAEP and MGF1 hash.
    RsaDecrypt { bits: u32, hash: Hash },
    /// ECDSA with a DER signature over a digest.
    Ec { curve: Curve, hash: Hash },
    /// Pure Ed25519 over data.
    Ed25519,
    /// HMAC with the key length in bytes.
    Hmac { hash: Hash, key_len: usize },
    /// Listed in resources.proto but not emulated (AES-CBC/CTR, raw PKCS#1, external, PQC).
    NotEmulated,
}

/// One `CryptoKeyVersionAlgorithm` value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Algorithm {
    pub(crate) number: i32,
    pub(crate) name: &'static str,
    pub(crate) purpose: i32,
    pub(crate) kind: Kind,
}

const fn alg(number: i32, name: &'static str, purpose: i32, kind: Kind) -> Algorithm {
    Algorithm { number, name, purpose, kind }
}

/// The full `CryptoKeyVersionAlgorithm` table of resources.proto.
pub(crate) const ALGORITHMS: &[Algorithm] = &[
    alg(1, "GOOGLE_SYMMETRIC_ENCRYPTION", ENCRYPT_DECRYPT, Kind::GoogleSymmetric),
    alg(41, "AES_128_GCM", RAW_ENCRYPT_DECRYPT, Kind::AesGcm(16)),
    alg(19, "AES_256_GCM", RAW_ENCRYPT_DECRYPT, Kind::AesGcm(32)),
    alg(42, "AES_128_CBC", RAW_ENCRYPT_DECRYPT, Kind::NotEmulated),
    alg(43, "AES_256_CBC", RAW_ENCRYPT_DECRYPT, Kind::NotEmulated),
    alg(44, "AES_128_CTR", RAW_ENCRYPT_DECRYPT, Kind::NotEmulated),
    alg(45, "AES_256_CTR", RAW_ENCRYPT_DECRYPT, Kind::NotEmulated),
    alg(2, "RSA_SIGN_PSS_2048_SHA256", ASYMMETRIC_SIGN, rsa_sign(2048, true, Hash::Sha256)),
    alg(3, "RSA_SIGN_PSS_3072_SHA256", ASYMMETRIC_SIGN, rsa_sign(3072, true, Hash::Sha256)),
    alg(4, "RSA_SIGN_PSS_4096_SHA256", ASYMMETRIC_SIGN, rsa_sign(4096, true, Hash::Sha256)),
    alg(15, "RSA_SIGN_PSS_4096_SHA512", ASYMMETRIC_SIGN, rsa_sign(4096, true, Hash::Sha512)),
    alg(5, "RSA_SIGN_PKCS1_2048_SHA256", ASYMMETRIC_SIGN, rsa_sign(2048, false, Hash::Sha256)),
    alg(6, "RSA_SIGN_PKCS1_3072_SHA256", ASYMMETRIC_SIGN, rsa_sign(3072, false, Hash::Sha256)),
    alg(7, "RSA_SIGN_PKCS1_4096_SHA256", ASYMMETRIC_SIGN, rsa_sign(4096, false, Hash::Sha256)),
    alg(16, "RSA_SIGN_PKCS1_4096_SHA512", ASYMMETRIC_SIGN, rsa_sign(4096, false, Hash::Sha512)),
    alg(28, "RSA_SIGN_RAW_PKCS1_2048", ASYMMETRIC_SIGN, Kind::NotEmulated),
    alg(29, "RSA_SIGN_RAW_PKCS1_3072", ASYMMETRIC_SIGN, Kind::NotEmulated),
    alg(30, "RSA_SIGN_RAW_PKCS1_4096", ASYMMETRIC_SIGN, Kind::NotEmulated),
    alg(8, "RSA_DECRYPT_OAEP_2048_SHA256", ASYMMETRIC_DECRYPT, rsa_decrypt(2048, Hash::Sha256)),
    alg(9, "RSA_DECRYPT_OAEP_3072_SHA256", ASYMMETRIC_DECRYPT, rsa_decrypt(3072, Hash::Sha256)),
    alg(10, "RSA_DECRYPT_OAEP_4096_SHA256", ASYMMETRIC_DECRYPT, rsa_decrypt(4096, Hash::Sha256)),
    alg(17, "RSA_DECRYPT_OAEP_4096_SHA512", ASYMMETRIC_DECRYPT, rsa_decrypt(4096, Hash::Sha512)),
    alg(37, "RSA_DECRYPT_OAEP_2048_SHA1", ASYMMETRIC_DECRYPT, rsa_decrypt(2048, Hash::Sha1)),
    alg(38, "RSA_DECRYPT_OAEP_3072_SHA1", ASYMMETRIC_DECRYPT, rsa_decrypt(3072, Hash::Sha1)),
    alg(39, "RSA_DECRYPT_OAEP_4096_SHA1", ASYMMETRIC_DECRYPT, rsa_decrypt(4096, Hash::Sha1)),
    alg(12, "EC_SIGN_P256_SHA256", ASYMMETRIC_SIGN, Kind::Ec { curve: Curve::P256, hash: Hash::Sha256 }),
    alg(13, "EC_SIGN_P384_SHA384", ASYMMETRIC_SIGN, Kind::Ec { curve: Curve::P384, hash: Hash::Sha384 }),
    alg(
        31,
        "EC_SIGN_SECP256K1_SHA256",
        ASYMMETRIC_SIGN,
        Kind::Ec { curve: Curve::Secp256k1, hash: Hash::Sha256 },
    ),
    alg(40, "EC_SIGN_ED25519", ASYMMETRIC_SIGN, Kind::Ed25519),
    alg(32, "HMAC_SHA256", MAC, Kind::Hmac { hash: Hash::Sha256, key_len: 32 }),
    alg(33, "HMAC_SHA1", MAC, Kind::Hmac { hash: Hash::Sha1, key_len: 20 }),
    alg(34, "HMAC_SHA384", MAC, Kind::Hmac { hash: Hash::Sha384, key_len: 48 }),
    alg(35, "HMAC_SHA512", MAC, Kind::Hmac { hash: Hash::Sha512, key_len: 64 }),
    alg(36, "HMAC_SHA224", MAC, Kind::Hmac { hash: Hash::Sha224, key_len: 28 }),
    alg(18, "EXTERNAL_SYMMETRIC_ENCRYPTION", ENCRYPT_DECRYPT, Kind::NotEmulated),
    alg(56, "PQ_SIGN_ML_DSA_65", ASYMMETRIC_SIGN, Kind::NotEmulated),
    alg(57, "PQ_SIGN_SLH_DSA_SHA2_128S", ASYMMETRIC_SIGN, Kind::NotEmulated),
];

const fn rsa_sign(bits: u32, pss: bool, hash: Hash) -> Kind {
    Kind::RsaSign { bits, pss, hash }
}

const fn rsa_decrypt(bits: u32, hash: Hash) -> Kind {
    Kind::RsaDecrypt { bits, hash }
}

/// (number, name) pairs of [`ALGORITHMS`] for the generic enum helpers.
pub(crate) fn algorithm_table() -> &'static [(i32, &'static str)] {
    static TABLE: std::sync::OnceLock<Vec<(i32, &'static str)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| ALGORITHMS.iter().map(|a| (a.number, a.name)).collect())
}

/// The algorithm numbered `n`.
pub(crate) fn algorithm(n: i32) -> Option<&'static Algorithm> {
    ALGORITHMS.iter().find(|a| a.number == n)
}

/// Key ring, crypto key and import job ids: `[a-zA-Z0-9_-]{1,63}`.
pub(crate) fn valid_id(id: &str) -> bool {
    (1..=63).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Google's label rules: keys start with a lowercase letter; keys and values use lowercase
/// letters, digits, `_` and `-` (international lowercase letters too), at most 63 characters;
/// values may be empty; at most 64 labels.
pub(crate) fn label_problem(labels: &[(String, String)]) -> Option<String> {
    if labels.len() > 64 {
        return Some(format!("a key has at most 64 labels; {} were given", labels.len()));
    }
    let ok_char = |c: char| c.is_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    for (k, v) in labels {
        let first_ok = k.chars().next().is_some_and(|c| c.is_lowercase());
        if !first_ok || k.chars().count() > 63 || !k.chars().all(ok_char) {
            return Some(format!(
                "label key {k:?} breaks the label rules: 1-63 characters, starting with a lowercase letter, \
                 then lowercase letters, digits, '_' or '-'"
            ));
        }
        if v.chars().count() > 63 || !v.chars().all(ok_char) {
            return Some(format!(
                "the value of label {k:?} breaks the label rules: at most 63 lowercase letters, digits, '_' or '-'"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_algorithm_table_has_unique_numbers_and_names() {
        for (i, a) in ALGORITHMS.iter().enumerate() {
            for b in &ALGORITHMS[i + 1..] {
                assert_ne!(a.number, b.number, "{}", a.name);
                assert_ne!(a.name, b.name);
            }
        }
        assert_eq!(algorithm(40).unwrap().name, "EC_SIGN_ED25519");
        assert_eq!(algorithm(19).unwrap().kind, Kind::AesGcm(32));
    }

    #[test]
    fn ids_and_labels() {
        assert!(valid_id("a-b_C9"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(64)));
        assert!(!valid_id("a.b"));
        assert!(label_problem(&[("env".into(), "prod-1".into())]).is_none());
        assert!(label_problem(&[("Env".into(), "x".into())]).is_some());
        assert!(label_problem(&[("env".into(), "X".into())]).is_some());
        assert!(label_problem(&[("1env".into(), String::new())]).is_some());
    }
}
