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
