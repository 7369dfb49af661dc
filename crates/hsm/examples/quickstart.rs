//! The original `CloudHSMClient` usage story, on the embedded local provider.
//!
//! ```text
//! cargo run -p hsm --example quickstart
//! ```
//!
//! Uses a throw-away in-memory store; set `HSM_PROVIDER=local:///path/to/keystore` to run
//! it against a keystore file instead (it needs the key names below to be free).

use std::error::Error as StdError;

use hsm::{
    Client, Config, CreateKey, EncryptionAlgorithm, Error, KeySpec, KeyUsage, SignatureAlgorithm,
    WrapAlgorithm, Zeroizing,
};
use rand_core::{OsRng, RngCore as _};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn short_hex(bytes: &[u8]) -> String {
    let h = hex(bytes);
    if h.len() > 48 { format!("{}… ({} bytes)", &h[..48], bytes.len()) } else { h }
}

fn check(ok: bool, what: &str) -> Result<(), Box<dyn StdError>> {
    if ok { Ok(()) } else { Err(format!("unexpected result: {what}").into()) }
}

/// The whole story on the provider `config` selects; `main` runs it, and the hsm
/// integration tests run it too.
pub async fn run(config: Config) -> Result<(), Box<dyn StdError>> {
    // Initialization: the original built a client from a config dict and called connect().
    let hsm = Client::connect(config).await?;
    println!("Connected to the '{}' provider", hsm.provider().name());

    // Creating keys: an AES-256 key with a description and tags.
    let key = hsm
        .create_key(
            CreateKey::new("my-encryption-key", KeySpec::from_type_and_size("AES", 256)?)
                .description("Key for encrypting sensitive data")
                .tag("environment", "production")
                .tag("owner", "security-team"),
        )
        .await?;
    println!("Created key: {} ({}, version {})", key.key_id(), key.spec, key.version);

    // Encrypt and decrypt. The ciphertext records key, version and algorithm.
    let plaintext = b"Sensitive data to encrypt";
    let result = hsm.encrypt(&key, plaintext, Some("AES_GCM".parse::<EncryptionAlgorithm>()?)).await?;
    println!(
        "Encrypted data ({}, key version {}): {}",
        result.algorithm(),
        result.version(),
        short_hex(result.as_bytes())
    );
    let decrypted = hsm.decrypt(&result).await?;
    println!("Decrypted data: {}", String::from_utf8_lossy(&decrypted));
    check(&decrypted[..] == plaintext, "decrypt returns the plaintext")?;

    // Signing keys: RSA (purpose "signing") and EC P-256.
    hsm.create_key(
        CreateKey::new("my-signing-key", KeySpec::Rsa2048)
            .usage(KeyUsage::SignVerify)
            .description("Key for signing API requests"),
    )
    .await?;
    hsm.create_key(CreateKey::new("my-ec-key", KeySpec::EcP256).description("EC key for signing")).await?;

    let data = b"Data to sign";
    let rsa_alg: SignatureAlgorithm = "RSASSA_PKCS1_V1_5_SHA_256".parse()?;
    let signature = hsm.sign("my-signing-key", data, Some(rsa_alg)).await?;
    let is_valid = hsm.verify("my-signing-key", data, signature.as_bytes(), Some(rsa_alg)).await?;
    println!(
        "RSA signature ({rsa_alg}, {} bytes) is {}",
        signature.as_bytes().len(),
        if is_valid { "valid" } else { "invalid" }
    );
    check(is_valid, "the RSA signature verifies")?;

    let ec_alg: SignatureAlgorithm = "ECDSA_SHA_256".parse()?;
    let ec_sig = hsm.sign("my-ec-key", data, Some(ec_alg)).await?;
    let ec_valid = hsm.verify("my-ec-key", data, ec_sig.as_bytes(), Some(ec_alg)).await?;
    let tampered = hsm.verify("my-ec-key", b"Data to sigN", ec_sig.as_bytes(), Some(ec_alg)).await?;
    println!(
        "ECDSA signature is {}; over altered data it is {}",
        if ec_valid { "valid" } else { "invalid" },
        if tampered { "valid" } else { "invalid" }
    );
    check(ec_valid && !tampered, "the ECDSA signature verifies, and only over the signed data")?;
    let pem = hsm.public_key("my-ec-key").await?.to_pem();
    println!("EC public key (for openssl):\n{}", pem.trim_end());

    // Key wrapping: wrap a random local 256-bit key under an HSM wrapping key.
    hsm.create_key(CreateKey::new("my-wrapping-key", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)).await?;
    let mut local_key = Zeroizing::new(vec![0u8; 32]);
    OsRng.fill_bytes(&mut local_key);
    let wrapped = hsm.wrap_key("my-wrapping-key", &local_key, Some(WrapAlgorithm::AesKeyWrap)).await?;
    println!("Wrapped a 32-byte key: {}", short_hex(wrapped.as_bytes()));
    let unwrapped = hsm.unwrap_key(&wrapped).await?;
    println!("Unwrapped key matches the original: {}", unwrapped == local_key);
    check(unwrapped == local_key, "unwrap returns the wrapped key")?;

    // Listing keys: all of them, and filtered by tag (the original's filter_func).
    let all = hsm.list_keys().await?;
    println!("All keys:");
    for k in &all {
        println!("  Key ID: {}, Type: {}, Size: {}", k.key_id(), k.spec, k.spec.bits());
    }
    let production =
        hsm.list_keys_where(|k| k.tags.get("environment").is_some_and(|v| v == "production")).await?;
    let names: Vec<&str> = production.iter().map(|k| k.key_id()).collect();
    println!("Production keys: {names:?}");
    check(names == ["my-encryption-key"], "only the AES key is tagged production")?;

    // Rotating keys: a new version; the old ciphertext still decrypts with version 1.
    let rotated = hsm.rotate_key("my-encryption-key").await?;
    println!("Rotated key. New version: {} (versions {:?})", rotated.version, rotated.versions);
    let fresh = hsm.encrypt("my-encryption-key", plaintext, None).await?;
    let old = hsm.decrypt(&result).await?;
    println!(
        "Old ciphertext (version {}) still decrypts: {}; new ciphertexts use version {}",
        result.version(),
        String::from_utf8_lossy(&old),
        fresh.version()
    );
    check(&old[..] == plaintext && fresh.version() != result.version(), "rotation keeps old versions")?;

    // Error handling: typed errors instead of a bare Exception.
    match hsm.create_key(CreateKey::new("my-encryption-key", KeySpec::Rsa2048)).await {
        Err(Error::AlreadyExists { key, .. }) => {
            println!("Error creating key: '{key}' is already in use (Error::AlreadyExists)");
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("creating a duplicate key unexpectedly succeeded".into()),
    }
    hsm.disable_key("my-encryption-key").await?;
    match hsm.decrypt(&result).await {
        Err(e @ Error::KeyUnusable { .. }) => println!("Decrypting with a disabled key: {e}"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a disabled key unexpectedly decrypted".into()),
    }
    hsm.enable_key("my-encryption-key").await?;

    println!("Done.");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    run(Config::try_from_env()?.unwrap_or_else(Config::memory)).await
}
