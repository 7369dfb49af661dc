//! The data-key cache: limits honoured exactly, single-flight, partitions, decrypt side.

use std::sync::Arc;
use std::time::Duration;

use hsm_envelope::{Context, DataKeyCache, Keyring, Opener, Sealer};

use crate::switch::Switch;

async fn one() -> (Arc<Switch>, Keyring) {
    let p = Switch::with_key("k").await;
    let ring = Keyring::new().recipient(p.clone(), "k");
    (p, ring)
}

fn message_id(sealed: &[u8]) -> [u8; 32] {
    hsm_envelope::inspect_bytes(sealed).unwrap().message_id.unwrap()
}

#[tokio::test]
async fn max_messages_is_exact_and_every_message_has_its_own_id() {
    let (p, ring) = one().await;
    let sealer = Sealer::new().cache(DataKeyCache::new(10).max_messages(3));
    let mut ids = Vec::new();
    for i in 0..7 {
        let (sealed, _) = sealer.seal_to(&ring, b"row").await.unwrap();
        ids.push(message_id(&sealed));
        assert_eq!(p.protects(), i / 3 + 1, "after message {}", i + 1);
        assert_eq!(&Opener::new().open(&*p, &sealed).await.unwrap()[..], b"row");
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7, "message ids (hence payload keys and commitments) are never reused");
    let stats = sealer.cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses, stats.provider_calls_saved), (4, 3, 4));
}

#[tokio::test]
async fn max_bytes_is_exact_and_a_larger_message_bypasses_the_cache() {
    let (p, ring) = one().await;
    let sealer = Sealer::new().cache(DataKeyCache::new(10).max_bytes(100));
    sealer.seal_to(&ring, &[0; 60]).await.unwrap();
    sealer.seal_to(&ring, &[0; 40]).await.unwrap(); // exactly 100 bytes: reused
    assert_eq!(p.protects(), 1);
    sealer.seal_to(&ring, &[0; 1]).await.unwrap(); // 101: a new data key
    assert_eq!(p.protects(), 2);
    sealer.seal_to(&ring, &[0; 101]).await.unwrap(); // larger than max_bytes: not cached
    sealer.seal_to(&ring, &[0; 99]).await.unwrap(); // still fits the second key's 1 + 99
    assert_eq!(p.protects(), 3);
}

#[tokio::test(start_paused = true)]
async fn max_age_is_exact_in_paused_time() {
    let (p, ring) = one().await;
    let sealer = Sealer::new().cache(DataKeyCache::new(10).max_age(Duration::from_secs(60)));
    sealer.seal_to(&ring, b"x").await.unwrap();
    tokio::time::advance(Duration::from_millis(59_999)).await;
    sealer.seal_to(&ring, b"x").await.unwrap();
    assert_eq!(p.protects(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    sealer.seal_to(&ring, b"x").await.unwrap();
    assert_eq!(p.protects(), 2, "a key is used for less than max_age");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_provider_call() {
    let (p, ring) = one().await;
    p.set_latency(Duration::from_millis(50));
    let sealer = Sealer::new().cache(DataKeyCache::new(10));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (sealer, ring) = (sealer.clone(), ring.clone());
            tokio::spawn(async move { sealer.seal_to(&ring, b"burst").await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(p.protects(), 1, "single-flight: one wrap for 32 concurrent misses");
    assert_eq!(sealer.cache_stats().unwrap().provider_calls_saved, 31);
}

#[tokio::test]
async fn keys_are_never_shared_across_contexts_or_keyrings() {
    let (p, ring) = one().await;
    let cache = DataKeyCache::new(10);
    let for_ctx = |t: &str| Sealer::new().cache(cache.clone()).context(Context::new().with("tenant", t));
    let (a1, _) = for_ctx("a").seal_to(&ring, b"x").await.unwrap();
    let (b1, _) = for_ctx("b").seal_to(&ring, b"x").await.unwrap();
    assert_eq!(p.protects(), 2);
    let (a2, _) = for_ctx("a").seal_to(&ring, b"x").await.unwrap();
    assert_eq!(p.protects(), 2);
    let stanza = |s: &[u8]| hsm_envelope::inspect_bytes(s).unwrap().recipients;
    assert_eq!(stanza(&a1), stanza(&a2), "the same partition reuses the protected key");
    assert_ne!(stanza(&a1), stanza(&b1));
    // Another keyring over the same provider and key is another partition.
    let other = Keyring::new().recipient(p.clone(), "k");
    for_ctx("a").seal_to(&other, b"x").await.unwrap();
    assert_eq!(p.protects(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_decrypt_side_caches_unwrapped_keys_for_max_age() {
    let (p, ring) = one().await;
    let cache = DataKeyCache::new(10).max_age(Duration::from_secs(10));
    let sealer = Sealer::new().cache(cache.clone());
    let opener = Opener::new().cache(cache.clone());
    let (m1, _) = sealer.seal_to(&ring, b"one").await.unwrap();
    let (m2, _) = sealer.seal_to(&ring, b"two").await.unwrap();
    assert_eq!(&opener.open(&ring, &m1).await.unwrap()[..], b"one");
    assert_eq!(&opener.open(&ring, &m2).await.unwrap()[..], b"two");
    assert_eq!(p.opens(), 1, "the second message reuses the unwrapped key");
    tokio::time::advance(Duration::from_secs(10)).await;
    opener.open(&ring, &m2).await.unwrap();
    assert_eq!(p.opens(), 2, "expired after max_age");
    // Tampering is still caught: the cached key does not skip the commitment or the tags.
    let mut bad = m2.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(opener.open(&ring, &bad).await.is_err());
}

#[tokio::test]
async fn a_degraded_seal_is_not_cached() {
    let a = Switch::with_key("a").await;
    let b = Switch::with_key("b").await;
    let ring = Keyring::new().recipient(a.clone(), "a").recipient(b.clone(), "b").min_recipients(1);
    let sealer = Sealer::new().cache(DataKeyCache::new(10));
    b.set_down(true);
    let (_, r1) = sealer.seal_to(&ring, b"x").await.unwrap();
    assert_eq!(r1.failed.len(), 1);
    b.set_down(false);
    let (sealed, r2) = sealer.seal_to(&ring, b"x").await.unwrap();
    assert!(r2.failed.is_empty());
    assert_eq!(hsm_envelope::inspect_bytes(&sealed).unwrap().recipients.len(), 2, "b is tried again");
    assert_eq!(a.protects(), 2);
}

#[test]
fn the_cache_debug_shows_limits_not_keys() {
    let shown = format!("{:?}", DataKeyCache::new(3).max_messages(7));
    assert!(shown.contains("max_messages: 7"), "{shown}");
    assert!(!shown.contains("data_key"), "{shown}");
}

#[tokio::test]
async fn capacity_evicts_the_least_recently_used_partition() {
    let (p, ring) = one().await;
    let cache = DataKeyCache::new(2);
    let seal = |t: &'static str| {
        let sealer = Sealer::new().cache(cache.clone()).context(Context::new().with("t", t));
        let ring = ring.clone();
        async move { sealer.seal_to(&ring, b"x").await.unwrap() }
    };
    seal("a").await;
    seal("b").await;
    seal("a").await; // a is now the most recently used
    assert_eq!(p.protects(), 2);
    seal("c").await; // evicts b
    assert_eq!(p.protects(), 3);
    seal("a").await;
    assert_eq!(p.protects(), 3, "a survived");
    seal("b").await;
    assert_eq!(p.protects(), 4, "b was evicted");
}
