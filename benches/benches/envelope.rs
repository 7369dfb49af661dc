//! Envelope encryption throughput of the library alone, against `openssl speed` on one core,
//! in the same run: 1 GiB sealed from memory into a sink and opened back into a sink, with
//! the default pipeline (one batch in flight per core) and on one core (`concurrency(0)`).
//!
//! Run with `cargo xtask bench envelope` (which also runs the CLI comparison with the AWS
//! Encryption SDK CLI, `benches/envelope_cli.py`) or `cargo bench -p hsm-benches --bench
//! envelope`. `HSM_BENCH_MIB` sets the size (default 1024).

use std::process::Command;
use std::time::Instant;

use hsm::envelope::{Opener, Sealer};
use hsm::local::LocalProvider;
use hsm_core::{CreateKey, KeyRef, KeySpec, KeyUsage, Provider};

const RUNS: usize = 3;

/// openssl's AES-256-GCM bytes/s on 16 KiB blocks, one process (one core).
fn openssl_speed() -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-mr", "-seconds", "3", "-evp", "aes-256-gcm", "-bytes", "16384"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find(|l| l.starts_with("+F:")).and_then(|l| l.split(':').nth(3)).and_then(|v| v.parse().ok())
}

fn main() {
    let mib: usize = std::env::var("HSM_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let p = LocalProvider::in_memory();
    let key = KeyRef::new("bench");
    rt.block_on(p.create_key(CreateKey::new("bench", KeySpec::Aes256).usage(KeyUsage::WrapUnwrap)))
        .expect("key");
    let plaintext: Vec<u8> = (0..mib << 20).map(|i| (i % 251) as u8).collect();
    let sealed = rt.block_on(Sealer::new().seal(&p, &key, &plaintext)).expect("seal");
    let bytes = plaintext.len() as f64;

    let openssl = openssl_speed();
    println!("envelope throughput, {mib} MiB from memory into a sink, best of {RUNS}");
    println!("| what | GB/s | vs openssl 1 core |");
    println!("|---|---|---|");
    let row = |what: &str, secs: f64| {
        let gbs = bytes / secs / 1e9;
        let ratio = openssl.map_or("n/a".to_owned(), |o| format!("{:.2}", bytes / secs / o));
        println!("| {what} | {gbs:.2} | {ratio} |");
    };
    if let Some(o) = openssl {
        println!("| openssl speed -evp aes-256-gcm -bytes 16384 (1 core) | {:.2} | 1.00 |", o / 1e9);
    }
    for (label, conc) in [("all cores", None), ("one core (concurrency 0)", Some(0))] {
        let sealer = conc.map_or_else(Sealer::new, |c| Sealer::new().concurrency(c));
        let opener = conc.map_or_else(Opener::new, |c| Opener::new().concurrency(c));
        let best = |f: &dyn Fn() -> u64| {
            (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    assert_eq!(f(), plaintext.len() as u64);
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let seal = best(&|| {
            rt.block_on(async {
                let mut input = &plaintext[..];
                sealer.seal_stream(&p, &key, &mut input, &mut tokio::io::sink()).await.expect("seal")
            })
        });
        row(&format!("seal_stream, {label}"), seal);
        let open = best(&|| {
            rt.block_on(async {
                let mut input = &sealed[..];
                opener.open_stream(&p, &mut input, &mut tokio::io::sink()).await.expect("open")
            })
        });
        row(&format!("open_stream, {label}"), open);
    }
}
