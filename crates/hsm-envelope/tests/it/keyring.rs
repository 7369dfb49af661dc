//! Keyrings (several recipients, min_recipients, hedged opening, k-of-n threshold) and
//! rewrapping, over switchable local providers.

use std::sync::Arc;
use std::time::Duration;

use hsm_core::{Error, KeyRef, Provider};
use hsm_envelope::{Context, Keyring, Opener, RecipientErrors, Rewrap, Sealer};

use crate::data;
use crate::switch::Switch;

/// Three providers, with keys "a", "b" and "c".
async fn three() -> [Arc<Switch>; 3] {
    [Switch::with_key("a").await, Switch::with_key("b").await, Switch::with_key("c").await]
}

fn ring(ps: &[Arc<Switch>; 3]) -> Keyring {
    Keyring::new()
        .recipient(ps[0].clone(), "a")
        .recipient(ps[1].clone(), "b")
        .recipient(ps[2].clone(), "c")
        .hedge_delay(Duration::from_millis(20))
}

fn failures(e: &Error) -> Vec<String> {
    let Error::Provider { source: Some(source), .. } = e else { panic!("not a keyring error: {e:?}") };
    let list = source.downcast_ref::<RecipientErrors>().expect("the source lists the recipients");
    list.0.iter().map(|f| format!("{} {}", f.key, f.error.kind_name())).collect()
}

trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for Error {
    fn kind_name(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "unavailable",
            Error::Timeout { .. } => "timeout",
            Error::DecryptionFailed { .. } => "decryption-failed",
            Error::NotFound { .. } => "not-found",
            Error::InvalidInput { .. } => "invalid-input",
            _ => "other",
        }
    }
}

#[tokio::test]
async fn every_recipient_opens_alone_and_the_keyring_opens_with_any_one_up() {
    let ps = three().await;
    let ring = ring(&ps);
    let plain = data(200_000);
    let (sealed, report) = Sealer::new().seal_to(&ring, &plain).await.unwrap();
    assert_eq!(report.recipients.len(), 3);
    assert!(report.failed.is_empty());
    assert_eq!(report.plaintext_len, plain.len() as u64);
    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
    let keys: Vec<String> = header.recipients.iter().map(|r| r.key().unwrap().name().to_owned()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    for p in &ps {
        assert_eq!(&Opener::new().open(&**p, &sealed).await.unwrap()[..], &plain[..]);
    }
    for up in 0..3 {
        for (i, p) in ps.iter().enumerate() {
            p.set_down(i != up);
        }
        let opened = Opener::new().open(&ring, &sealed).await.unwrap();
        assert_eq!(&opened[..], &plain[..], "with only recipient {up} up");
    }
    // All down: the error names each recipient with its typed error.
    for p in &ps {
        p.set_down(true);
    }
    let e = Opener::new().open(&ring, &sealed).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { code, .. } if code == "recipients"), "{e:?}");
    assert_eq!(failures(&e), ["a unavailable", "b unavailable", "c unavailable"]);
    assert!(e.to_string().contains("none of 3 recipients"), "{e}");
}

#[tokio::test]
async fn all_recipients_must_succeed_unless_min_recipients_allows_fewer() {
    let ps = three().await;
    ps[1].set_down(true);
    let e = Sealer::new().seal_to(&ring(&ps), b"x").await.unwrap_err();
    assert!(e.to_string().contains("2 of 3 recipients protected the data key, 3 required"), "{e}");
    assert_eq!(failures(&e), ["b unavailable"]);

    let (sealed, report) = Sealer::new().seal_to(&ring(&ps).min_recipients(2), b"x").await.unwrap();
    assert_eq!(report.recipients.len(), 2);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].key.name(), "b");
    assert!(matches!(report.failed[0].error, Error::Unavailable { .. }));
    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
    assert_eq!(header.recipients.len(), 2);
    ps[1].set_down(false);
    assert!(Opener::new().open(&*ps[1], &sealed).await.is_err(), "b was not a recipient");
    assert_eq!(&Opener::new().open(&*ps[2], &sealed).await.unwrap()[..], b"x");

    ps[0].set_down(true);
    ps[2].set_down(true);
    let e = Sealer::new().seal_to(&ring(&ps).min_recipients(2), b"x").await.unwrap_err();
    assert!(e.to_string().contains("1 of 3 recipients protected the data key, 2 required"), "{e}");
}

#[tokio::test]
async fn a_recipient_that_does_not_answer_in_time_is_a_timeout() {
    let ps = three().await;
    ps[2].set_latency(Duration::from_secs(5));
    let ring = ring(&ps).timeout(Duration::from_millis(100)).min_recipients(2);
    let started = std::time::Instant::now();
    let (_, report) = Sealer::new().seal_to(&ring, b"x").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(report.failed.len(), 1);
    assert!(matches!(report.failed[0].error, Error::Timeout { .. }), "{:?}", report.failed[0].error);
}

#[tokio::test(start_paused = true)]
async fn with_min_recipients_a_slow_recipient_gets_as_long_again_as_the_quorum_took() {
    let ps = three().await;
    ps[0].set_latency(Duration::from_millis(300));
    ps[1].set_latency(Duration::from_millis(300));
    ps[2].set_latency(Duration::from_secs(20));
    let two = ring(&ps).min_recipients(2);
    let started = tokio::time::Instant::now();
    let (_, report) = Sealer::new().seal_to(&two, b"x").await.unwrap();
    let took = started.elapsed();
    // Both fast recipients answer at 0.6 s (get_key, then the wrap), then 0.6 s more of grace.
    assert!(took >= Duration::from_millis(1200) && took < Duration::from_millis(1300), "{took:?}");
    assert_eq!(report.recipients.len(), 2);
    assert!(matches!(report.failed[0].error, Error::Timeout { .. }), "{:?}", report.failed[0].error);
    // A recipient that answers within the grace is kept.
    ps[2].set_latency(Duration::from_millis(500));
    let (_, report) = Sealer::new().seal_to(&two, b"x").await.unwrap();
    assert_eq!((report.recipients.len(), report.failed.len()), (3, 0));
    // Without min_recipients every recipient is waited for, up to its deadline.
    ps[2].set_latency(Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    let (_, report) = Sealer::new().seal_to(&ring(&ps), b"x").await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(10), "all three waited for");
    assert_eq!(report.recipients.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn opening_is_hedged_and_the_first_answer_wins() {
    let ps = three().await;
    let ring = ring(&ps).hedge_delay(Duration::from_millis(100));
    let (sealed, _) = Sealer::new().seal_to(&ring, b"hedged").await.unwrap();

    // The preferred recipient is slow: the second is asked after the hedge delay and wins.
    ps[0].set_latency(Duration::from_secs(10));
    let started = tokio::time::Instant::now();
    assert_eq!(&Opener::new().open(&ring, &sealed).await.unwrap()[..], b"hedged");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(150), "{took:?}");
    assert_eq!((ps[1].opens(), ps[2].opens()), (1, 0), "one hedge, not a fan-out");

    // A failing recipient hands over at once, without waiting for the hedge delay.
    ps[0].set_latency(Duration::ZERO);
    ps[0].set_down(true);
    let started = tokio::time::Instant::now();
    Opener::new().open(&ring, &sealed).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    assert_eq!(ps[1].opens(), 2);
}

#[tokio::test]
async fn two_of_three_opens_with_two_groups_and_is_refused_with_one() {
    let ps = three().await;
    let ring = ring(&ps).threshold(2);
    let plain = data(70_000);
    let (sealed, _) = Sealer::new().seal_to(&ring, &plain).await.unwrap();
    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
    let shares: Vec<_> = header.recipients.iter().map(|r| r.share.unwrap()).collect();
    assert_eq!(
        shares.iter().map(|s| (s.index, s.threshold, s.count)).collect::<Vec<_>>(),
        [(1, 2, 3), (2, 2, 3), (3, 2, 3)]
    );
    for down in 0..3 {
        for (i, p) in ps.iter().enumerate() {
            p.set_down(i == down);
        }
        assert_eq!(
            &Opener::new().open(&ring, &sealed).await.unwrap()[..],
            &plain[..],
            "recipient {down} down"
        );
    }
    for (i, p) in ps.iter().enumerate() {
        p.set_down(i != 1);
    }
    let e = Opener::new().open(&ring, &sealed).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { code, .. } if code == "threshold"), "{e:?}");
    assert!(
        e.to_string().contains("opened 1 of the 2 shares needed (the envelope has 3 recipient groups)"),
        "{e}"
    );
    assert_eq!(failures(&e), ["a unavailable", "c unavailable"]);

    // One provider alone cannot open a threshold envelope, and says how to.
    ps[1].set_down(false);
    let e = Opener::new().open(&*ps[1], &sealed).await.unwrap_err();
    assert!(e.to_string().contains("split 2-of-n"), "{e}");
}

#[tokio::test]
async fn a_group_is_reached_through_any_of_its_recipients() {
    let [a, b, c] = three().await;
    let ring = Keyring::new()
        .group_recipient(1, a.clone(), "a")
        .group_recipient(1, b.clone(), "b")
        .group_recipient(2, c.clone(), "c")
        .threshold(2)
        .hedge_delay(Duration::from_millis(10));
    let (sealed, report) = Sealer::new().seal_to(&ring, b"groups").await.unwrap();
    assert_eq!(report.recipients.iter().map(|r| r.share.unwrap().index).collect::<Vec<_>>(), [1, 1, 2]);
    a.set_down(true);
    assert_eq!(&Opener::new().open(&ring, &sealed).await.unwrap()[..], b"groups");
    b.set_down(true);
    let e = Opener::new().open(&ring, &sealed).await.unwrap_err();
    assert!(e.to_string().contains("opened 1 of the 2 shares"), "{e}");
}

#[tokio::test]
async fn keyring_mistakes_are_refused_before_any_provider_call() {
    let ps = three().await;
    let cases: [(Keyring, &str); 5] = [
        (Keyring::new(), "has no recipients"),
        (ring(&ps).min_recipients(0), "min_recipients is 0"),
        (ring(&ps).min_recipients(4), "min_recipients is 4"),
        (ring(&ps).threshold(4), "threshold 4 is out of range for 3 recipient groups"),
        (Keyring::new().group_recipient(2, ps[0].clone(), "a").threshold(2), "numbered 1, 2"),
    ];
    for (ring, expected) in cases {
        let e = Sealer::new().seal_to(&ring, b"x").await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }) && e.to_string().contains(expected), "{e}");
    }
    assert!(ps.iter().all(|p| p.protects() == 0));
}

#[tokio::test]
async fn a_keyring_that_reaches_no_stanza_says_which_keys_the_envelope_wants() {
    let ps = three().await;
    let sealed = Sealer::new().seal(&*ps[0], &KeyRef::new("a"), b"x").await.unwrap();
    let other = Keyring::new().recipient(ps[1].clone(), "b");
    let e = Opener::new().open(&other, &sealed).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    assert!(e.to_string().contains("local 'a'"), "{e}");
}

/// The body (everything after the header) of an envelope.
fn body(sealed: &[u8]) -> &[u8] {
    &sealed[hsm_envelope::inspect_bytes(sealed).unwrap().len..]
}

#[tokio::test]
async fn rewrap_moves_an_envelope_between_providers_without_touching_the_body() {
    let [a, b, c] = three().await;
    let ctx = Context::new().with("tenant", "acme");
    let plain = data(300_000);
    let sealed = Sealer::new().context(ctx.clone()).seal(&*a, &KeyRef::new("a"), &plain).await.unwrap();
    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();

    let opener = Opener::new().expect_context(ctx.clone());
    let from = Keyring::new().recipient(a.clone(), "a");
    let change = Rewrap::new().add(b.clone(), "b").add(c.clone(), "c").remove(Some("local"), "a");
    let (head, report) = change.header(&opener, &from, &header).await.unwrap();
    assert_eq!((report.added.len(), report.removed.len()), (2, 1));
    let moved = [&head[..], body(&sealed)].concat();
    assert_eq!(body(&moved), body(&sealed), "the body is unchanged byte for byte");

    // The original key deleted: the data still opens through the new recipients.
    a.schedule_deletion(&KeyRef::new("a"), None).await.unwrap();
    assert!(Opener::new().open(&*a, &moved).await.is_err());
    assert_eq!(&opener.open(&*b, &moved).await.unwrap()[..], &plain[..]);
    assert_eq!(&opener.open(&*c, &moved).await.unwrap()[..], &plain[..]);

    // The context is still required and still bound.
    let wrong = Opener::new().expect_context(Context::new().with("tenant", "globex"));
    assert!(wrong.open(&*b, &moved).await.is_err());
    let e =
        Rewrap::new().add(a.clone(), "a").header(&wrong, &Keyring::new().recipient(b, "b"), &header).await;
    assert!(matches!(e, Err(Error::InvalidInput { .. })), "{e:?}");
}

#[tokio::test]
async fn rewrap_refuses_changes_that_would_lose_the_data() {
    let [a, b, _] = three().await;
    let sealed = Sealer::new().seal(&*a, &KeyRef::new("a"), b"x").await.unwrap();
    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
    let from = Keyring::new().recipient(a.clone(), "a");
    let cases = [
        (Rewrap::new().remove(None, "a"), "without recipients"),
        (Rewrap::new().remove(None, "zzz"), "no recipient 'zzz' to remove"),
        (Rewrap::new().add_to_group(2, b.clone(), "b"), "threshold envelopes only"),
    ];
    for (change, expected) in cases {
        let e = change.header(&Opener::new(), &from, &header).await.unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
    }
    // Opening the data key needs a working recipient; with none, nothing is written.
    a.set_down(true);
    let e = Rewrap::new().add(b, "b").header(&Opener::new(), &from, &header).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
}

#[tokio::test]
async fn rewrap_to_current_versions_lets_old_versions_be_disabled() {
    let [a, b, _] = three().await;
    let ring = Keyring::new().recipient(a.clone(), "a").recipient(b.clone(), "b");
    let (sealed, _) = Sealer::new().seal_to(&ring, b"rotated").await.unwrap();
    let v1 = hsm_envelope::inspect_bytes(&sealed).unwrap().recipients[0].key().unwrap();
    let rotated = a.rotate_key(&KeyRef::new("a")).await.unwrap();
    assert_ne!(Some(rotated.version.as_str()), v1.version());

    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
    let (head, report) =
        Rewrap::new().to_current_versions(true).header(&Opener::new(), &ring, &header).await.unwrap();
    assert_eq!(report.rewrapped.len(), 2);
    let new = [&head[..], body(&sealed)].concat();
    let stanza = hsm_envelope::inspect_bytes(&new).unwrap().recipients[0].key().unwrap();
    assert_eq!(stanza.version(), Some(rotated.version.as_str()));
    assert_eq!(&Opener::new().open(&*a, &new).await.unwrap()[..], b"rotated");
}

#[tokio::test]
async fn rewrap_of_a_threshold_envelope_adds_a_group_from_the_shares_it_opened() {
    let [a, b, c] = three().await;
    let ring = Keyring::new().recipient(a.clone(), "a").recipient(b.clone(), "b").threshold(2);
    let (sealed, _) = Sealer::new().seal_to(&ring, b"k of n").await.unwrap();
    let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
    let (head, report) =
        Rewrap::new().add(c.clone(), "c").header(&Opener::new(), &ring, &header).await.unwrap();
    assert_eq!(report.added[0].share.map(|s| (s.index, s.count)), Some((3, 3)));
    let new = [&head[..], body(&sealed)].concat();
    // Now a 2-of-3: {a, c} and {b, c} open it too.
    let all = Keyring::new().recipient(a.clone(), "a").recipient(b.clone(), "b").recipient(c.clone(), "c");
    for down in [&a, &b] {
        down.set_down(true);
        assert_eq!(&Opener::new().open(&all, &new).await.unwrap()[..], b"k of n");
        down.set_down(false);
    }
    // Removing a group that leaves fewer than the threshold is refused.
    let three_groups = hsm_envelope::inspect_bytes(&new).unwrap();
    let e =
        Rewrap::new().remove(None, "a").remove(None, "b").header(&Opener::new(), &all, &three_groups).await;
    let e = e.unwrap_err().to_string();
    assert!(e.contains("leave 1 recipient groups, fewer than the 2 needed"), "{e}");
}

#[tokio::test]
async fn rewrap_file_replaces_only_the_header() {
    let [a, b, _] = three().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.hsm");
    let plain = data(1 << 20);
    let sealed = Sealer::new().seal(&*a, &KeyRef::new("a"), &plain).await.unwrap();
    std::fs::write(&path, &sealed).unwrap();
    let from = Keyring::new().recipient(a.clone(), "a");
    let report = Rewrap::new().add(b.clone(), "b").file(&Opener::new(), &from, &path).await.unwrap();
    assert_eq!(report.added.len(), 1);
    let new = std::fs::read(&path).unwrap();
    assert_eq!(body(&new), body(&sealed));
    assert_eq!(&Opener::new().open(&*b, &new).await.unwrap()[..], &plain[..]);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
}
