//! The overhead of hsm-aws through `Arc<dyn Provider>` over calling `aws_sdk_kms::Client`
//! directly: the same Encrypt and Sign requests, against the same in-process
//! `hsm-emulator aws`, in the same run, with 1 and with 32 concurrent tasks.
//!
//! Each measurement alternates raw and hsm rounds so that drift (the emulator warming up,
//! other load on the machine) falls on both equally. The table gives p50 and p99 latency,
//! throughput, and the hsm/raw ratio (target: within 5 %).
//!
//! Run with `cargo xtask bench aws` (or `cargo bench -p hsm-benches --bench aws_overhead`).
//! `HSM_BENCH_OPS` sets the calls per round and task count (default 400).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{EncryptionAlgorithmSpec, MessageType, SigningAlgorithmSpec};
use hsm_aws::{AwsConfig, AwsKmsProvider, aws_sdk_kms};
use hsm_core::{CreateKey, EncryptionAlgorithm, KeyRef, KeySpec, Provider, SignInput, SignatureAlgorithm};

const ROUNDS: usize = 5;

#[derive(Clone, Copy)]
enum Op {
    Encrypt,
    Sign,
}

/// One side of the comparison: how to make one call.
#[derive(Clone)]
enum Caller {
    Raw { client: aws_sdk_kms::Client, key_id: String },
    Hsm { provider: Arc<dyn Provider>, key: KeyRef },
}

const PLAINTEXT: &[u8] = b"a 32-byte secret for the bench!!";

impl Caller {
    async fn call(&self, op: Op) {
        match (self, op) {
            (Caller::Raw { client, key_id }, Op::Encrypt) => {
                let out = client
                    .encrypt()
                    .key_id(key_id)
                    .plaintext(Blob::new(PLAINTEXT))
                    .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
                    .send()
                    .await
                    .expect("raw Encrypt");
                std::hint::black_box(out.ciphertext_blob().map(|b| b.as_ref().len()));
            }
            (Caller::Raw { client, key_id }, Op::Sign) => {
                let out = client
                    .sign()
                    .key_id(key_id)
                    .message(Blob::new(PLAINTEXT))
                    .message_type(MessageType::Raw)
                    .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                    .send()
                    .await
                    .expect("raw Sign");
                std::hint::black_box(out.signature().map(|b| b.as_ref().len()));
            }
            (Caller::Hsm { provider, key }, Op::Encrypt) => {
                let ct = provider
                    .encrypt(key, EncryptionAlgorithm::AesGcm, PLAINTEXT, None)
                    .await
                    .expect("hsm encrypt");
                std::hint::black_box(ct.as_bytes().len());
            }
            (Caller::Hsm { provider, key }, Op::Sign) => {
                let sig = provider
                    .sign(key, SignatureAlgorithm::EcdsaSha256, SignInput::Message(PLAINTEXT))
                    .await
                    .expect("hsm sign");
                std::hint::black_box(sig.as_bytes().len());
            }
        }
    }
}

/// Latencies of `ops` calls on each of `tasks` concurrent tasks, and the wall time.
async fn round(caller: &Caller, op: Op, tasks: usize, ops: usize) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let caller = caller.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(ops);
            for _ in 0..ops {
                let t = Instant::now();
                caller.call(op).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("bench task"));
    }
    (all, started.elapsed())
}

struct Stats {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Stats { p50: at(0.50), p99: at(0.99), per_sec: lat.len() as f64 / wall.as_secs_f64() }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    // Criterion-style arguments (`--bench`, filters) are accepted and ignored.
    let ops: usize = std::env::var("HSM_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    // The emulator on a runtime of its own, so that its work is not scheduled among the
    // client's tasks.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("emulator runtime");
    let emulator = server_rt
        .block_on(hsm_emulator::aws::start(hsm_emulator::aws::Args::default()))
        .expect("start hsm-emulator aws");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");

    let config = AwsConfig::new()
        .with_region(hsm_emulator::aws::DEFAULT_REGION)
        .with_endpoint(emulator.url())
        .static_credentials(
            hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID,
            hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY,
        );
    let provider = rt.block_on(AwsKmsProvider::connect(&config)).expect("connect");
    let client = provider.client().clone();
    let provider: Arc<dyn Provider> = Arc::new(provider);
    let mut rows = Vec::new();
    for (op, name, spec) in [(Op::Encrypt, "Encrypt", KeySpec::Aes256), (Op::Sign, "Sign", KeySpec::EcP256)] {
        let key_name = format!("bench-{}", name.to_lowercase());
        let info = rt.block_on(provider.create_key(CreateKey::new(&key_name, spec))).expect("create key");
        let raw = Caller::Raw { client: client.clone(), key_id: info.native_id.clone() };
        let hsm = Caller::Hsm { provider: provider.clone(), key: KeyRef::new(&key_name) };
        for tasks in [1usize, 32] {
            let per_task = (ops / tasks).max(20);
            // Warm-up: connections, the metadata cache, the emulator's key.
            rt.block_on(round(&raw, op, tasks, 10));
            rt.block_on(round(&hsm, op, tasks, 10));
            let (mut raw_lat, mut hsm_lat) = (Vec::new(), Vec::new());
            let (mut raw_wall, mut hsm_wall) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..ROUNDS {
                let (l, w) = rt.block_on(round(&raw, op, tasks, per_task));
                raw_lat.extend(l);
                raw_wall += w;
                let (l, w) = rt.block_on(round(&hsm, op, tasks, per_task));
                hsm_lat.extend(l);
                hsm_wall += w;
            }
            rows.push((name, tasks, stats(raw_lat, raw_wall), stats(hsm_lat, hsm_wall)));
        }
    }
    println!(
        "\n| op | tasks | raw p50 | hsm p50 | raw p99 | hsm p99 | raw ops/s | hsm ops/s | hsm/raw throughput |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, tasks, raw, hsm) in rows {
        println!(
            "| {name} | {tasks} | {} | {} | {} | {} | {:.0} | {:.0} | {:.3} |",
            us(raw.p50),
            us(hsm.p50),
            us(raw.p99),
            us(hsm.p99),
            raw.per_sec,
            hsm.per_sec,
            hsm.per_sec / raw.per_sec
        );
    }
    drop(emulator);
}
