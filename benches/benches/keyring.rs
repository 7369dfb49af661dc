//! Keyrings and the data-key cache against `hsm-emulator aws`, requests counted at the
//! emulator:
//!
//! 1. 100,000 messages of 1 KiB sealed through one hsm-aws key with and without the
//!    data-key cache (max_messages 1,000): requests that reached the emulator and wall time.
//! 2. Seal and open latency of a 1 KiB message with 3 recipients (three emulators) against 1;
//!    opening is hedged, so with every recipient up it costs about one round trip.
//!
//! Run with `cargo xtask bench keyring` or `cargo bench -p hsm-benches --bench keyring`.
//! `HSM_BENCH_MESSAGES` sets the message count (default 100000).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hsm::envelope::{DataKeyCache, Keyring, Opener, Sealer};
use hsm_aws::{AwsConfig, AwsKmsProvider};
use hsm_core::{CreateKey, KeySpec, Provider};
use hsm_emulator::server::{Handler, HandlerFuture, Request, Running, serve_http};

/// Counts the requests that reach the emulator.
struct Counting {
    inner: Arc<dyn Handler>,
    requests: Arc<AtomicU64>,
}

impl Handler for Counting {
    fn handle(self: Arc<Self>, req: Request) -> HandlerFuture {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.clone().handle(req)
    }
}

struct Emulator {
    _rt: tokio::runtime::Runtime,
    _running: Running,
    url: String,
    requests: Arc<AtomicU64>,
}

fn emulator() -> Emulator {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let requests = Arc::new(AtomicU64::new(0));
    let inner = hsm_emulator::aws::handler(hsm_emulator::aws::Args::default()).expect("handler");
    let handler = Arc::new(Counting { inner, requests: requests.clone() });
    let running = rt.block_on(serve_http(0, handler)).expect("serve");
    let url = running.url();
    Emulator { _rt: rt, _running: running, url, requests }
}

async fn provider(e: &Emulator) -> Arc<dyn Provider> {
    let config = AwsConfig::new()
        .with_region(hsm_emulator::aws::DEFAULT_REGION)
        .with_endpoint(&e.url)
        .static_credentials(
            hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID,
            hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY,
        );
    let p: Arc<dyn Provider> = Arc::new(AwsKmsProvider::connect(&config).await.expect("connect"));
    p.create_key(CreateKey::new("bench", KeySpec::Aes256)).await.expect("key");
    p
}

/// Seals `n` messages of 1 KiB from 8 tasks; returns the wall time.
async fn seal_many(sealer: &Sealer, ring: &Keyring, n: usize) -> Duration {
    let started = Instant::now();
    let tasks = 8;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (sealer, ring) = (sealer.clone(), ring.clone());
            tokio::spawn(async move {
                let msg = vec![t as u8; 1024];
                for _ in (t..n).step_by(tasks) {
                    sealer.seal_to(&ring, &msg).await.expect("seal");
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("HSM_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let e = emulator();
    let p = rt.block_on(provider(&e));
    let ring = Keyring::new().recipient(p.clone(), "bench");

    println!("{n} messages of 1 KiB through one hsm-emulator aws key, 8 tasks");
    println!("| data-key cache | requests to KMS | wall time | messages/s |");
    println!("|---|---|---|---|");
    let mut results = Vec::new();
    for cached in [false, true] {
        let sealer = if cached {
            Sealer::new().cache(DataKeyCache::new(16).max_messages(1_000))
        } else {
            Sealer::new()
        };
        // Warm-up: connections and hsm-aws's metadata cache.
        rt.block_on(sealer.seal_to(&ring, b"warm-up")).expect("warm-up");
        let before = e.requests.load(Ordering::Relaxed);
        let took = rt.block_on(seal_many(&sealer, &ring, n));
        let requests = e.requests.load(Ordering::Relaxed) - before;
        let label = if cached { "on (max_messages 1,000)" } else { "off" };
        println!(
            "| {label} | {requests} | {:.2} s | {:.0} |",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
        results.push((requests, took));
    }
    let (off, on) = (results[0], results[1]);
    println!(
        "\ncache: {:.0}x fewer requests, {:.1}x faster (targets: >= 50x fewer, >= 20x faster)",
        off.0 as f64 / on.0.max(1) as f64,
        off.1.as_secs_f64() / on.1.as_secs_f64()
    );

    // Latency: 1 recipient against 3 (three emulators), 1 KiB, sequential, median of 300.
    let others = [emulator(), emulator()];
    let ps: Vec<Arc<dyn Provider>> = others.iter().map(|o| rt.block_on(provider(o))).collect();
    let three = Keyring::new()
        .recipient(p.clone(), "bench")
        .recipient(ps[0].clone(), "bench")
        .recipient(ps[1].clone(), "bench");
    println!("\n1 KiB message, median of 300 sequential calls");
    println!("| recipients | seal | open (hedged) | requests per open |");
    println!("|---|---|---|---|");
    for (label, ring) in [("1", &ring), ("3", &three)] {
        let sealer = Sealer::new();
        let msg = vec![1u8; 1024];
        let (sealed, _) = rt.block_on(sealer.seal_to(ring, &msg)).expect("seal");
        rt.block_on(Opener::new().open(ring, &sealed)).expect("warm-up");
        let seals: Vec<Duration> = (0..300)
            .map(|_| {
                let t = Instant::now();
                rt.block_on(sealer.seal_to(ring, &msg)).expect("seal");
                t.elapsed()
            })
            .collect();
        let all = || {
            e.requests.load(Ordering::Relaxed)
                + others.iter().map(|o| o.requests.load(Ordering::Relaxed)).sum::<u64>()
        };
        let before = all();
        let opens: Vec<Duration> = (0..300)
            .map(|_| {
                let t = Instant::now();
                rt.block_on(Opener::new().open(ring, &sealed)).expect("open");
                t.elapsed()
            })
            .collect();
        let per_open = (all() - before) as f64 / 300.0;
        println!(
            "| {label} | {:.0} µs | {:.0} µs | {per_open:.2} |",
            median(seals).as_secs_f64() * 1e6,
            median(opens).as_secs_f64() * 1e6
        );
    }
}
