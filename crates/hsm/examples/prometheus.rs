//! hsm's layer metrics exported to Prometheus.
//!
//! Every call through hsm's layers records the `hsm_*` metrics through the `metrics` facade
//! (names and labels in `hsm::layers::metrics_names`; labels are provider, operation,
//! outcome, reason, class and kind, never key names or data). This example installs the
//! `metrics-exporter-prometheus` recorder with its scrape endpoint, runs a few operations and
//! prints what Prometheus would scrape:
//!
//! ```text
//! cargo run -p hsm --example prometheus                           # the in-memory provider
//! HSM_PROVIDER='aws-kms://?region=eu-west-1' cargo run -p hsm --example prometheus
//! HSM_PROMETHEUS_HOLD=60s cargo run -p hsm --example prometheus   # keep serving /metrics
//! ```
//!
//! The endpoint is `http://127.0.0.1:9898/metrics` (`HSM_PROMETHEUS_ADDR` to change it);
//! point a Prometheus `scrape_config` at it. Cloud and PKCS#11 providers add attempts,
//! retries, throttles, cache hits and rate-limiter waits to what the in-memory provider
//! records (requests and latency).

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use hsm::{Client, Config, CreateKey, KeySpec};
use metrics_exporter_prometheus::PrometheusBuilder;

/// A few operations on a fresh key: what the metrics will count.
pub async fn workload(hsm: &Client) -> Result<(), Box<dyn StdError>> {
    let name = format!("prometheus-example-{}", std::process::id());
    hsm.create_key(CreateKey::new(&name, KeySpec::Aes256).description("Prometheus example")).await?;
    for i in 0..3 {
        let ct = hsm.encrypt(name.as_str(), format!("message {i}").as_bytes(), None).await?;
        hsm.decrypt(&ct).await?;
    }
    // A refusal is counted under its outcome (`not_found`), not hidden.
    let _ = hsm.encrypt("no-such-key", b"x", None).await;
    hsm.schedule_key_deletion(name.as_str(), None).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let addr: SocketAddr = std::env::var("HSM_PROMETHEUS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9898".into())
        .parse()
        .map_err(|e| format!("HSM_PROMETHEUS_ADDR: {e}"))?;
    let (recorder, exporter) = PrometheusBuilder::new().with_http_listener(addr).build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("a metrics recorder is already set: {e}"))?;
    tokio::spawn(exporter);
    let hsm = Client::connect(Config::try_from_env()?.unwrap_or_else(Config::memory)).await?;
    workload(&hsm).await?;
    print!("{}", handle.render());
    if let Ok(hold) = std::env::var("HSM_PROMETHEUS_HOLD") {
        let secs: u64 =
            hold.trim_end_matches('s').parse().map_err(|e| format!("HSM_PROMETHEUS_HOLD: {e}"))?;
        eprintln!("serving http://{addr}/metrics for {secs} s");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    Ok(())
}
