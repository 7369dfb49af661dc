//! hsm-local through `Arc<dyn Provider>`: the cost a user pays per call, including the
//! trait object, the key lookup, request checks and the self-describing result blob.
//!
//! Run with `cargo xtask bench`, which also runs `openssl speed` for the same primitives
//! and prints the ratios (`benches/compare.py`).

#![allow(missing_docs)] // criterion_group! generates undocumented public functions.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hsm::local::LocalProvider;
use hsm::{
    CreateKey, EncryptionAlgorithm, KeyRef, KeySpec, KeyUsage, Provider, SignInput, SignatureAlgorithm,
};

fn bench_local(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let p: Arc<dyn Provider> = Arc::new(LocalProvider::in_memory());
    let create = |name: &str, spec: KeySpec, usage: KeyUsage| {
        rt.block_on(p.create_key(CreateKey::new(name, spec).usage(usage))).expect("create key");
        KeyRef::new(name)
    };
    let aes = create("aes", KeySpec::Aes256, KeyUsage::EncryptDecrypt);
    let rsa = create("rsa", KeySpec::Rsa2048, KeyUsage::SignVerify);
    let ec = create("ec", KeySpec::EcP256, KeyUsage::SignVerify);
    let ed = create("ed", KeySpec::Ed25519, KeyUsage::SignVerify);

    let mut g = c.benchmark_group("local");
    for (id, len) in [("aes256gcm_encrypt_1k", 1024usize), ("aes256gcm_encrypt_64k", 64 * 1024)] {
        let data = vec![0x5a; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(id, |b| {
            b.iter(|| {
                rt.block_on(p.encrypt(&aes, EncryptionAlgorithm::AesGcm, black_box(&data), None))
                    .expect("encrypt")
            })
        });
    }
    // The primitive alone (aws-lc-rs, no hsm): separates library speed from hsm's overhead.
    let raw = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).expect("aes key"),
    );
    for (id, len) in [("raw_aes256gcm_encrypt_1k", 1024usize), ("raw_aes256gcm_encrypt_64k", 64 * 1024)] {
        let mut buf = vec![0x5a; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(id, |b| {
            b.iter(|| {
                let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key([1u8; 12]);
                raw.seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::empty(), black_box(&mut buf[..]))
                    .expect("seal")
            })
        });
    }
    let msg = b"the quick brown fox jumps over the lazy dog";
    g.throughput(Throughput::Elements(1));
    let signs = [
        ("rsa2048_pkcs1_sha256_sign", &rsa, SignatureAlgorithm::RsaPkcs1v15Sha256),
        ("rsa2048_pss_sha256_sign", &rsa, SignatureAlgorithm::RsaPssSha256),
        ("ecdsa_p256_sha256_sign", &ec, SignatureAlgorithm::EcdsaSha256),
        ("ed25519_sign", &ed, SignatureAlgorithm::Ed25519),
    ];
    for (id, key, alg) in signs {
        g.bench_function(id, |b| {
            b.iter(|| rt.block_on(p.sign(key, alg, SignInput::Message(black_box(msg)))).expect("sign"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_local);
criterion_main!(benches);
