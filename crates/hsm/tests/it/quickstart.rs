//! The quickstart example runs the original client's story to the end.

#[allow(dead_code, unreachable_pub)] // `main` is the example's own entry point.
#[path = "../../examples/quickstart.rs"]
mod example;

#[tokio::test]
async fn quickstart_story_succeeds_on_the_in_memory_provider() {
    example::run(hsm::Config::memory()).await.expect("the quickstart story completes");
}

#[tokio::test]
async fn quickstart_story_succeeds_on_a_keystore_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = hsm::Config::local(dir.path().join("keystore")).with_passphrase("quickstart");
    example::run(config).await.expect("the quickstart story completes");
}

#[allow(dead_code, unreachable_pub)] // `main` is the example's own entry point.
#[path = "../../examples/prometheus.rs"]
mod prometheus;

/// The Prometheus example's workload, recorded by the exporter (a recorder local to this
/// test's thread): the documented names with provider, operation and outcome labels, and
/// neither key names nor data in the exposition.
#[tokio::test]
async fn prometheus_example_exports_the_documented_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let client = hsm::Client::connect(hsm::Config::memory()).await.unwrap();
    prometheus::workload(&client).await.unwrap();
    let text = handle.render();
    let requests = hsm::layers::metrics_names::REQUESTS;
    let line = |op: &str, outcome: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(requests)
                    && l.contains(&format!("operation=\"{op}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_owned())
    };
    assert_eq!(line("encrypt", "ok").as_deref(), Some("3"), "{text}");
    assert_eq!(line("decrypt", "ok").as_deref(), Some("3"), "{text}");
    // The client looks the missing key up first (to pick the algorithm): one not_found.
    let refused: Vec<&str> =
        text.lines().filter(|l| l.starts_with(requests) && l.contains("outcome=\"not_found\"")).collect();
    assert!(refused.len() == 1 && refused[0].ends_with(" 1"), "{text}");
    assert!(text.contains(hsm::layers::metrics_names::REQUEST_DURATION), "{text}");
    assert!(
        !text.contains("prometheus-example") && !text.contains("no-such-key"),
        "key names stay out: {text}"
    );
    assert!(!text.contains("message 0"), "{text}");
}
