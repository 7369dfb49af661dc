//! 64 tasks against `hsm-emulator aws --quota 500/s` for 30 s each: the raw `aws-sdk-kms`
//! client with its defaults (standard retries, 3 attempts, its retry token bucket) against
//! hsm-aws with hsm's layers (retries with backoff and a budget, the adaptive rate limit),
//! once with the defaults (the vendor's documented quotas, far above this emulator's) and once
//! told the quota (`rate_limit=500`).
//!
//! Each side gets a fresh emulator (a full quota bucket) with the server-side quota of
//! `--quota`, which answers over-quota requests with KMS's own `ThrottlingException` before
//! processing them; throttled responses are read from its statistics endpoint. The table
//! gives goodput (successful Encrypt calls per second, target ≥ 95 % of the quota),
//! throttled responses as a share of requests (target < 2 %), surfaced errors, and p50/p99
//! latency of the successful calls.
//!
//! Run with `cargo xtask bench quota`. `HSM_BENCH_SECONDS` (default 30), `HSM_BENCH_QUOTA`
//! (default 500) and `HSM_BENCH_TASKS` (default 64) change the run.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::{Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use hsm_aws::{AwsConfig, AwsKmsProvider, aws_config, aws_sdk_kms};
use hsm_core::{CreateKey, EncryptionAlgorithm, KeyRef, KeySpec, Provider};
use hsm_emulator::faults::{FaultArgs, STATS_PATH};
use hsm_layers::{LayerConfig, QuotaClass, RateLimitConfig, layered};

const PLAINTEXT: &[u8] = b"a 32-byte secret for the bench!!";

#[derive(Clone)]
enum Caller {
    Raw { client: aws_sdk_kms::Client, key_id: String },
    Hsm { provider: Arc<dyn Provider>, key: KeyRef },
}

impl Caller {
    async fn call(&self) -> bool {
        match self {
            Caller::Raw { client, key_id } => {
                client.encrypt().key_id(key_id).plaintext(Blob::new(PLAINTEXT)).send().await.is_ok()
            }
            Caller::Hsm { provider, key } => {
                provider.encrypt(key, EncryptionAlgorithm::AesGcm, PLAINTEXT, None).await.is_ok()
            }
        }
    }
}

/// The emulator's counters, read over HTTP from its statistics endpoint.
fn stats(url: &str) -> (u64, u64) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the emulator");
    write!(s, "GET {STATS_PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("ask");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the statistics");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let field = |name: &str| -> u64 {
        let at = body.find(&format!("\"{name}\":")).expect("field in the statistics");
        body[at + name.len() + 3..].split([',', '}']).next().and_then(|n| n.parse().ok()).expect("number")
    };
    (field("requests"), field("throttled"))
}

struct Row {
    name: &'static str,
    ok: u64,
    failed: u64,
    requests: u64,
    throttled: u64,
    wall: Duration,
    p50: Duration,
    p99: Duration,
}

async fn run(name: &'static str, caller: Caller, tasks: usize, seconds: u64, url: &str) -> Row {
    let (requests0, throttled0) = stats(url);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (caller, failed) = (caller.clone(), failed.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                if caller.call().await {
                    lat.push(t.elapsed());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.expect("bench task"));
    }
    let wall = started.elapsed();
    let (requests1, throttled1) = stats(url);
    lat.sort_unstable();
    let at =
        |q: f64| lat.get(((lat.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or_default();
    Row {
        name,
        ok: lat.len() as u64,
        failed: failed.load(Ordering::Relaxed),
        requests: requests1 - requests0,
        throttled: throttled1 - throttled0,
        wall,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn main() {
    // Criterion-style arguments (`--bench`, filters) are accepted and ignored.
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (seconds, quota, tasks) =
        (env("HSM_BENCH_SECONDS", 30), env("HSM_BENCH_QUOTA", 500), env("HSM_BENCH_TASKS", 64));
    // The emulators on a runtime of their own, so that their work is not scheduled among the
    // client's tasks.
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let emulator = || {
        let args = hsm_emulator::aws::Args {
            faults: FaultArgs { faults: None, quota: Some(format!("{quota}/s").parse().expect("quota")) },
            ..Default::default()
        };
        server_rt.block_on(hsm_emulator::aws::start(args)).expect("start hsm-emulator aws --quota")
    };
    let config = |url: &str, sdk_attempts: u32| {
        AwsConfig::new()
            .with_region(hsm_emulator::aws::DEFAULT_REGION)
            .with_endpoint(url)
            .static_credentials(
                hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID,
                hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY,
            )
            .max_attempts(sdk_attempts)
    };
    let mut rows = Vec::new();
    let sides: [(&'static str, Option<LayerConfig>); 3] = [
        ("raw aws-sdk-kms (its defaults)", None),
        ("hsm layers, defaults", Some(LayerConfig::for_provider("aws-kms"))),
        (
            "hsm layers, rate_limit=quota",
            Some({
                let mut c = LayerConfig::for_provider("aws-kms");
                c.rate_limit = Some(
                    RateLimitConfig::for_provider("aws-kms")
                        .with_rate(QuotaClass::Symmetric, Some(quota as f64)),
                );
                c
            }),
        ),
    ];
    for (name, layers) in sides {
        let running = emulator();
        let url = running.url();
        let provider = rt.block_on(AwsKmsProvider::connect(&config(&url, 1))).expect("connect");
        let info =
            rt.block_on(provider.create_key(CreateKey::new("quota", KeySpec::Aes256))).expect("create key");
        // Let the bucket refill after the set-up requests.
        std::thread::sleep(Duration::from_secs(2));
        let caller = match layers {
            None => {
                let sdk = rt.block_on(
                    aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .region(Region::new(hsm_emulator::aws::DEFAULT_REGION))
                        .endpoint_url(&url)
                        .credentials_provider(Credentials::new(
                            hsm_emulator::aws::DEFAULT_ACCESS_KEY_ID,
                            hsm_emulator::aws::DEFAULT_SECRET_ACCESS_KEY,
                            None,
                            None,
                            "bench",
                        ))
                        .load(),
                );
                Caller::Raw { client: aws_sdk_kms::Client::new(&sdk), key_id: info.native_id.clone() }
            }
            Some(layers) => {
                Caller::Hsm { provider: layered(Arc::new(provider), &layers), key: KeyRef::new("quota") }
            }
        };
        eprintln!("{name}: {tasks} tasks for {seconds} s against --quota {quota}/s");
        rows.push(rt.block_on(run(name, caller, tasks as usize, seconds, &url)));
        drop(running);
    }
    println!("\n{tasks} tasks, {seconds} s each, against hsm-emulator aws --quota {quota}/s (Encrypt)\n");
    println!(
        "| client | goodput (ok/s) | of quota | requests | throttled | throttled share | surfaced errors | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let goodput = r.ok as f64 / r.wall.as_secs_f64();
        println!(
            "| {} | {:.0} | {:.1} % | {} | {} | {:.2} % | {} | {:.0} ms | {:.0} ms |",
            r.name,
            goodput,
            100.0 * goodput / quota as f64,
            r.requests,
            r.throttled,
            100.0 * r.throttled as f64 / r.requests.max(1) as f64,
            r.failed,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
        );
    }
}
