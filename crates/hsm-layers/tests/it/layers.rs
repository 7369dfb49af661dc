//! The retry rule, budget, Retry-After, timeouts, cache and rate limits against a scripted
//! provider, on paused time where time matters.

use std::sync::Arc;
use std::time::Duration;

use hsm_core::{
    CreateKey, EncryptionAlgorithm, Error, KeyRef, KeySpec, KeyState, KeyUsage, Provider, SignInput,
    SignatureAlgorithm,
};
use hsm_layers::{
    BudgetConfig, Cache, CacheConfig, LayerConfig, QuotaClass, RateLimit, RateLimitConfig, Retry,
    RetryConfig, TimeoutConfig, layered,
};
use tokio::time::Instant;

use crate::flaky::{Flaky, throttled, unavailable};

fn fast_retry() -> RetryConfig {
    RetryConfig::default().with_backoff(Duration::from_millis(1), Duration::from_millis(10))
}

async fn aes_key(p: &Flaky, name: &str) -> KeyRef {
    p.create_key(CreateKey::new(name, KeySpec::Aes256)).await.unwrap();
    KeyRef::new(name)
}

fn retry(flaky: &Arc<Flaky>, config: RetryConfig) -> Retry {
    Retry::new(flaky.clone(), config)
}

#[tokio::test]
async fn a_non_retryable_error_costs_exactly_one_request() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    let p = retry(&flaky, fast_retry());
    let before = flaky.requests();
    flaky.fail_next(Error::invalid_input("flaky", "bad"));
    let e = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert_eq!(flaky.requests() - before, 1);
    // And through the whole default stack.
    let p = layered(flaky.clone(), &LayerConfig::default());
    let before = flaky.requests();
    flaky.fail_next(Error::DecryptionFailed { provider: "flaky" });
    let e = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    assert!(matches!(e, Error::DecryptionFailed { .. }), "{e}");
    assert_eq!(flaky.requests() - before, 1);
}

#[tokio::test]
async fn transient_errors_on_data_plane_calls_are_retried() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    let p = retry(&flaky, fast_retry());
    let before = flaky.requests();
    flaky.fail_next(unavailable());
    flaky.fail_next(throttled(None));
    flaky.fail_next(Error::Timeout { provider: "flaky", operation: "encrypt".into() });
    let ct = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    assert_eq!(flaky.requests() - before, 4);
    assert_eq!(&p.decrypt(&key, &ct, None).await.unwrap()[..], b"x");
    // max_attempts bounds them: 4 failures in a row surface the last.
    for _ in 0..4 {
        flaky.fail_next(unavailable());
    }
    let before = flaky.requests();
    let e = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    assert_eq!(flaky.requests() - before, 4);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    let p = retry(&flaky, fast_retry());
    flaky.fail_next(throttled(Some(Duration::from_secs(7))));
    let started = Instant::now();
    p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(7), "{waited:?}");
    assert!(waited < Duration::from_millis(7100), "{waited:?}");
    // A Retry-After beyond the deadline is not waited for: the throttle surfaces at once.
    let p = retry(&flaky, fast_retry().with_deadline(Some(Duration::from_secs(5))));
    flaky.fail_next(throttled(Some(Duration::from_secs(7))));
    let started = Instant::now();
    let e = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    assert!(matches!(e, Error::Throttled { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn key_changing_calls_are_retried_only_when_the_service_refused_them() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    let p = retry(&flaky, fast_retry());
    // Ambiguous: the change may have been made; one request, the error surfaces.
    let before = flaky.requests();
    flaky.fail_next(unavailable());
    let e = p.set_key_state(&key, KeyState::Disabled).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    assert_eq!(flaky.requests() - before, 1);
    let before = flaky.requests();
    flaky.fail_next(Error::Timeout { provider: "flaky", operation: "rotate_key".into() });
    assert!(p.rotate_key(&key).await.is_err());
    assert_eq!(flaky.requests() - before, 1);
    // Throttled: refused before processing, so sent again.
    let before = flaky.requests();
    flaky.fail_next(throttled(None));
    let info = p.set_key_state(&key, KeyState::Disabled).await.unwrap();
    assert_eq!(info.state, KeyState::Disabled);
    assert_eq!(flaky.requests() - before, 2);
}

#[tokio::test]
async fn a_create_interrupted_after_the_service_acted_returns_the_created_key() {
    let flaky = Flaky::new();
    let p = retry(&flaky, fast_retry());
    // The key is created, then the answer is lost (503): the retry meets AlreadyExists and
    // the layer returns the key it finds with the requested spec.
    flaky.fail_after_acting(unavailable());
    let before = flaky.requests();
    let info =
        p.create_key(CreateKey::new("made", KeySpec::EcP256).usage(KeyUsage::SignVerify)).await.unwrap();
    assert_eq!((info.name.as_str(), info.spec, info.usage), ("made", KeySpec::EcP256, KeyUsage::SignVerify));
    assert_eq!(flaky.requests() - before, 3, "create, create (AlreadyExists), get_key");
    // A key of another spec under that name is a real conflict.
    aes_key(&flaky, "taken").await;
    flaky.fail_after_acting(unavailable());
    let e = p.create_key(CreateKey::new("taken", KeySpec::EcP256)).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    // Without an ambiguous failure AlreadyExists is returned as is, in one request.
    let before = flaky.requests();
    let e = p.create_key(CreateKey::new("made", KeySpec::EcP256)).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(flaky.requests() - before, 1);
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_stops_retries_against_a_dead_endpoint() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    *flaky.always.lock().unwrap() = Some(unavailable);
    let config = fast_retry().with_budget(BudgetConfig::new(50, 5, 10));
    let p = retry(&flaky, config);
    let before = flaky.requests();
    for _ in 0..100 {
        assert!(p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.is_err());
    }
    // 100 first attempts and 50 / 5 = 10 retries; without the budget it would be 400.
    assert_eq!(flaky.requests() - before, 110);
    assert_eq!(p.budget().available(), 0);
    // Once the endpoint is back, successes refill the bucket.
    *flaky.always.lock().unwrap() = None;
    for _ in 0..10 {
        p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    }
    assert_eq!(p.budget().available(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_blackholed_endpoint_fails_with_timeout_within_the_deadline() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    flaky.blackhole.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut config = LayerConfig::default();
    config.timeout = TimeoutConfig::new(Some(Duration::from_millis(500)), Some(Duration::from_secs(2)));
    config.retry = Some(fast_retry());
    let p = layered(flaky.clone(), &config);
    let started = Instant::now();
    let e = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(took >= Duration::from_millis(1800) && took <= Duration::from_millis(2200), "{took:?}");
    // Attempts were bounded too: four 500 ms attempts fit in 2 s.
    assert!((2..=5).contains(&(flaky.requests() - 1)), "{}", flaky.requests());
}

#[tokio::test]
async fn the_cache_serves_metadata_once_single_flight_and_drops_it_on_change() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    let p = Arc::new(Cache::new(flaky.clone(), CacheConfig::default()));
    let before = flaky.requests();
    let gets: Vec<_> = (0..16)
        .map(|_| {
            let (p, key) = (p.clone(), key.clone());
            tokio::spawn(async move { p.get_key(&key).await.map(|i| i.state) })
        })
        .collect();
    for g in gets {
        assert_eq!(g.await.unwrap().unwrap(), KeyState::Enabled);
    }
    assert_eq!(flaky.requests() - before, 1, "16 concurrent misses, one request");
    // A change through the layer drops the entry.
    p.set_key_state(&key, KeyState::Disabled).await.unwrap();
    let before = flaky.requests();
    assert_eq!(p.get_key(&key).await.unwrap().state, KeyState::Disabled);
    assert_eq!(flaky.requests() - before, 1);
    // A change made elsewhere is seen after NotFound / KeyUnusable says the entry is stale.
    flaky.set_key_state(&key, KeyState::Enabled).await.unwrap();
    assert_eq!(p.get_key(&key).await.unwrap().state, KeyState::Disabled, "served from the cache");
    let e = p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await;
    assert!(e.is_ok());
    flaky.fail_next(Error::not_found("flaky", "k"));
    assert!(p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.is_err());
    assert_eq!(p.get_key(&key).await.unwrap().state, KeyState::Enabled, "refetched after NotFound");
}

#[tokio::test]
async fn verify_local_uses_the_cached_public_key() {
    let flaky = Flaky::new();
    flaky.create_key(CreateKey::new("s", KeySpec::EcP256).usage(KeyUsage::SignVerify)).await.unwrap();
    let key = KeyRef::new("s");
    let p = Cache::new(flaky.clone(), CacheConfig::default().with_verify_local(true));
    let alg = SignatureAlgorithm::EcdsaSha256;
    let sig = p.sign(&key, alg, SignInput::Message(b"hello")).await.unwrap();
    let pinned = KeyRef::new("s").with_version(sig.version());
    let before = flaky.requests();
    for _ in 0..10 {
        assert!(p.verify(&pinned, alg, SignInput::Message(b"hello"), sig.as_bytes()).await.unwrap());
    }
    assert!(!p.verify(&pinned, alg, SignInput::Message(b"other"), sig.as_bytes()).await.unwrap());
    assert_eq!(flaky.requests() - before, 2, "one get_key and one public_key for 11 verifications");
    // A disabled key (known to the cache through the layer) is refused like the service would.
    p.set_key_state(&key, KeyState::Disabled).await.unwrap();
    let e = p.verify(&pinned, alg, SignInput::Message(b"hello"), sig.as_bytes()).await.unwrap_err();
    assert!(matches!(e, Error::KeyUnusable { .. }), "{e}");
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_paces_requests_and_backs_off_on_throttling() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    let config = RateLimitConfig::unlimited().with_rate(QuotaClass::Symmetric, Some(100.0));
    let p = RateLimit::new(flaky.clone(), config);
    let started = Instant::now();
    for _ in 0..201 {
        p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1850) && took <= Duration::from_millis(2100), "{took:?}");
    // Metadata is not limited by that class.
    let started = Instant::now();
    for _ in 0..50 {
        p.get_key(&key).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(10));
    // Throttled after an idle second (no measured rate): cut to 70 % of the current rate,
    // then cubic regrowth: C (t − K)³ + W_max with K = ∛(100 × 0.3 / 0.4) ≈ 4.22 s.
    tokio::time::sleep(Duration::from_secs(1)).await;
    flaky.fail_next(throttled(None));
    assert!(p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.is_err());
    let cut = p.current_rate(QuotaClass::Symmetric).unwrap();
    assert!((cut - 70.0).abs() < 1e-6, "{cut}");
    // A second throttle within 500 ms (a request that was in flight) does not cut again.
    flaky.fail_next(throttled(None));
    assert!(p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.is_err());
    assert!((p.current_rate(QuotaClass::Symmetric).unwrap() - 70.0).abs() < 1e-6);
    let cubic = |t: f64| 0.4 * (t - 75f64.cbrt()).powi(3) + 100.0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    let one = p.current_rate(QuotaClass::Symmetric).unwrap();
    assert!((one - cubic(1.0)).abs() < 0.5, "{one} vs {}", cubic(1.0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    let four = p.current_rate(QuotaClass::Symmetric).unwrap();
    assert!(four > one && (four - cubic(4.0)).abs() < 0.5, "{four} vs {}", cubic(4.0));
    tokio::time::sleep(Duration::from_secs(6)).await;
    p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
    assert_eq!(p.current_rate(QuotaClass::Symmetric), Some(100.0), "never past the configured rate");
}

/// Under a steady stream, a throttle cuts to 70 % of the rate requests were succeeding at,
/// not of a configured rate far above it.
#[tokio::test(start_paused = true)]
async fn a_throttle_cuts_to_the_rate_the_service_accepted() {
    let flaky = Flaky::new();
    let key = aes_key(&flaky, "k").await;
    let config = RateLimitConfig::unlimited().with_rate(QuotaClass::Symmetric, Some(500.0));
    let p = RateLimit::new(flaky.clone(), config);
    // 50 requests a second for two seconds, far under the limit of 500.
    for _ in 0..100 {
        p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flaky.fail_next(throttled(None));
    assert!(p.encrypt(&key, EncryptionAlgorithm::AesGcm, b"x", None).await.is_err());
    let cut = p.current_rate(QuotaClass::Symmetric).unwrap();
    assert!((30.0..40.0).contains(&cut), "cut to 70 % of ~50/s, not of 500/s: {cut}");
}

#[test]
fn no_layers_means_the_provider_itself_and_defaults_follow_the_vendor() {
    let flaky: Arc<dyn Provider> = Flaky::new();
    assert!(Arc::ptr_eq(&layered(flaky.clone(), &LayerConfig::none()), &flaky));
    let aws = LayerConfig::for_provider("aws-kms");
    let rl = aws.rate_limit.clone().unwrap();
    assert_eq!(rl.rates, [Some(4400.0), Some(400.0), Some(240.0), Some(1600.0), Some(40.0)]);
    assert!(aws.retries());
    assert!(LayerConfig::for_provider("local").rate_limit.is_none());
}
