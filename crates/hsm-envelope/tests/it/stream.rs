//! Round trips: every size around segment and batch boundaries, streaming, ranges, rotation.

use std::io::Cursor;

use hsm_core::{KeyRef, Provider};
use hsm_envelope::{Context, Opener, SEGMENT_LEN, Sealer};
use proptest::prelude::*;

use crate::{data, provider};

#[tokio::test]
async fn round_trips_every_size_around_segment_boundaries_with_every_kind_of_key() {
    let p = provider().await;
    let s = SEGMENT_LEN;
    for len in [0, 1, s - 1, s, s + 1, 3 * s, 3 * s + 17] {
        for key in ["wrapper", "encrypter", "rsa-wrapper", "rsa-encrypter"] {
            let pt = data(len);
            let ctx = Context::new().with("len", len.to_string());
            let sealed = Sealer::new().context(ctx.clone()).seal(&p, &KeyRef::new(key), &pt).await.unwrap();
            let segments = len.div_ceil(s).max(1);
            let header = hsm_envelope::inspect_bytes(&sealed).unwrap();
            assert_eq!(sealed.len(), header.len + len + segments * 16, "{key} {len}: one tag per segment");
            let opened = Opener::new().expect_context(ctx).open(&p, &sealed).await.unwrap();
            assert_eq!(&opened[..], &pt[..], "{key} {len}");
        }
    }
}

#[tokio::test]
async fn many_batches_in_flight_come_back_in_order_at_every_concurrency() {
    let p = provider().await;
    // 1 KiB segments: a batch is 1,024 segments, so 3 MiB + 5 is four batches.
    let pt = data(3 * (1 << 20) + 5);
    for conc in [0, 1, 2, 7] {
        let sealer = Sealer::new().segment_size(1024).concurrency(conc);
        let sealed = sealer.seal(&p, &KeyRef::new("wrapper"), &pt).await.unwrap();
        for open_conc in [0, 3] {
            let opened = Opener::new().concurrency(open_conc).open(&p, &sealed).await.unwrap();
            assert!(opened[..] == pt[..], "seal {conc} open {open_conc}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_still_uses_the_blocking_pool() {
    let p = provider().await;
    let pt = data(5 << 20);
    let sealed = hsm_envelope::seal(&p, &KeyRef::new("encrypter"), &pt, &Context::new()).await.unwrap();
    let opened = hsm_envelope::open(&p, &sealed, &Context::new()).await.unwrap();
    assert!(opened[..] == pt[..]);
}

#[tokio::test]
async fn envelopes_sealed_before_a_rotation_still_open() {
    let p = provider().await;
    let pt = data(2 * SEGMENT_LEN + 3);
    for key in ["wrapper", "encrypter", "rsa-encrypter"] {
        let old = Sealer::new().seal(&p, &KeyRef::new(key), &pt).await.unwrap();
        p.rotate_key(&KeyRef::new(key)).await.unwrap();
        assert_eq!(&Opener::new().open(&p, &old).await.unwrap()[..], &pt[..], "{key}");
        let new = Sealer::new().seal(&p, &KeyRef::new(key), &pt).await.unwrap();
        let header = hsm_envelope::inspect_bytes(&new).unwrap();
        assert_eq!(
            header.recipients[0].key().unwrap().version(),
            Some("2"),
            "{key}: new data under the new version"
        );
    }
}

#[tokio::test]
async fn streaming_matches_in_memory_and_counts_plaintext_bytes() {
    let p = provider().await;
    let pt = data(200_000);
    let mut reader = &pt[..];
    let mut sealed = Vec::new();
    let n = Sealer::new().seal_stream(&p, &KeyRef::new("wrapper"), &mut reader, &mut sealed).await.unwrap();
    assert_eq!(n, pt.len() as u64);
    let mut out = Vec::new();
    let mut input = &sealed[..];
    assert_eq!(Opener::new().open_stream(&p, &mut input, &mut out).await.unwrap(), pt.len() as u64);
    assert_eq!(out, pt);
}

#[tokio::test]
async fn ranges_clip_to_the_message_and_reversed_ones_are_refused() {
    let p = provider().await;
    let pt = data(10_000);
    let sealed = Sealer::new().segment_size(1024).seal(&p, &KeyRef::new("wrapper"), &pt).await.unwrap();
    let range = |r: std::ops::Range<u64>| {
        let (p, sealed) = (&p, &sealed);
        async move {
            let mut out = Vec::new();
            Opener::new().open_range(p, &mut Cursor::new(sealed), r, &mut out).await.map(|n| (n, out))
        }
    };
    assert_eq!(range(9_990..20_000).await.unwrap(), (10, pt[9_990..].to_vec()));
    assert_eq!(range(20_000..30_000).await.unwrap(), (0, vec![]));
    assert_eq!(range(0..0).await.unwrap(), (0, vec![]));
    assert_eq!(range(1023..1025).await.unwrap(), (2, pt[1023..1025].to_vec()));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = range(5..4).await;
    assert!(matches!(reversed, Err(hsm_core::Error::InvalidInput { .. })));
}

#[tokio::test]
async fn a_range_reaching_the_end_detects_truncation_and_one_inside_reads_only_its_segments() {
    let p = provider().await;
    let pt = data(10 * 1024);
    let sealed = Sealer::new().segment_size(1024).seal(&p, &KeyRef::new("wrapper"), &pt).await.unwrap();
    // Drop the last segment: the one before it was not sealed as final.
    let cut = &sealed[..sealed.len() - (1024 + 16)];
    let mut out = Vec::new();
    let r = Opener::new().open_range(&p, &mut Cursor::new(cut), 0..u64::MAX, &mut out).await;
    assert!(matches!(r, Err(hsm_core::Error::DecryptionFailed { .. })), "{r:?}");
    // Corrupt segment 7: a range inside segments 0..=1 never reads it and opens.
    let mut bad = sealed.clone();
    let body = hsm_envelope::inspect_bytes(&sealed).unwrap().len;
    bad[body + 7 * 1040 + 3] ^= 1;
    let mut out = Vec::new();
    Opener::new().open_range(&p, &mut Cursor::new(&bad), 100..2000, &mut out).await.unwrap();
    assert_eq!(out, pt[100..2000]);
    let mut out = Vec::new();
    let r = Opener::new().open_range(&p, &mut Cursor::new(&bad), 7000..7500, &mut out).await;
    assert!(matches!(r, Err(hsm_core::Error::DecryptionFailed { .. })));
}

fn sizes() -> impl Strategy<Value = usize> {
    // Around the 1 KiB test segment and the 1 MiB batch, and anything in between.
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(1023),
        Just(1024),
        Just(1025),
        Just((1 << 20) - 1),
        Just(1 << 20),
        Just((1 << 20) + 1024 + 1),
        0usize..20_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_size_round_trips_and_any_range_matches_the_plaintext(
        len in sizes(),
        a in any::<u64>(),
        b in any::<u64>(),
        conc in 0usize..4,
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let p = provider().await;
            let pt = data(len);
            let sealed = Sealer::new().segment_size(1024).concurrency(conc).seal(&p, &KeyRef::new("wrapper"), &pt).await.unwrap();
            let opened = Opener::new().concurrency(conc).open(&p, &sealed).await.unwrap();
            prop_assert!(opened[..] == pt[..]);
            let span = len as u64 + 2000;
            let (x, y) = (a % span, b % span);
            let (start, end) = (x.min(y), x.max(y));
            let mut out = Vec::new();
            let n = Opener::new().open_range(&p, &mut Cursor::new(&sealed), start..end, &mut out).await.unwrap();
            let (s, e) = ((start as usize).min(len), (end as usize).min(len));
            prop_assert_eq!(n as usize, e - s);
            prop_assert!(out[..] == pt[s..e]);
            Ok(())
        })?;
    }
}

/// A file with these contents, and an empty one for the output.
fn files(dir: &tempfile::TempDir, contents: &[u8]) -> (std::fs::File, std::fs::File) {
    std::fs::write(dir.path().join("in"), contents).unwrap();
    let input = std::fs::File::open(dir.path().join("in")).unwrap();
    // The output starts longer than anything written, so a missing truncation shows.
    std::fs::write(dir.path().join("out"), vec![0xAA; 5 << 20]).unwrap();
    let output = std::fs::OpenOptions::new().read(true).write(true).open(dir.path().join("out")).unwrap();
    (input, output)
}

#[tokio::test]
async fn files_are_sealed_and_opened_on_every_core_and_interoperate_with_streams() {
    let p = provider().await;
    let key = KeyRef::new("wrapper");
    for len in [0usize, 1, 1024, 3 * (1 << 20) + 5] {
        let pt = data(len);
        for conc in [0, 1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let (input, output) = files(&dir, &pt);
            let sealer = Sealer::new().segment_size(1024).concurrency(conc);
            assert_eq!(sealer.seal_file(&p, &key, &input, &output).await.unwrap(), len as u64);
            let sealed = std::fs::read(dir.path().join("out")).unwrap();
            assert!(
                Opener::new().open(&p, &sealed).await.unwrap()[..] == pt[..],
                "{len} {conc}: file to bytes"
            );

            let in2 = std::fs::File::open(dir.path().join("out")).unwrap();
            std::fs::write(dir.path().join("back"), vec![0xAA; 6 << 20]).unwrap();
            let out2 = std::fs::OpenOptions::new().write(true).open(dir.path().join("back")).unwrap();
            assert_eq!(Opener::new().concurrency(conc).open_file(&p, &in2, &out2).await.unwrap(), len as u64);
            assert!(std::fs::read(dir.path().join("back")).unwrap() == pt, "{len} {conc}: file to file");
        }
        let streamed = Sealer::new().segment_size(1024).seal(&p, &key, &pt).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = files(&dir, &streamed);
        assert_eq!(Opener::new().open_file(&p, &input, &output).await.unwrap(), len as u64);
        assert!(std::fs::read(dir.path().join("out")).unwrap() == pt, "{len}: bytes to file");
    }
}

#[tokio::test]
async fn damaged_files_fail_opaquely_and_devices_are_refused() {
    let p = provider().await;
    let pt = data(5000);
    let sealed = Sealer::new().segment_size(1024).seal(&p, &KeyRef::new("wrapper"), &pt).await.unwrap();
    let body = hsm_envelope::inspect_bytes(&sealed).unwrap().len;
    let mut flipped = sealed.clone();
    flipped[body + 2000] ^= 1;
    for (what, bytes) in [
        ("flipped", flipped),
        ("cut at a boundary", sealed[..body + 4 * 1040].to_vec()),
        ("cut inside the tag", sealed[..sealed.len() - 3].to_vec()),
        ("header only", sealed[..body].to_vec()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = files(&dir, &bytes);
        let r = Opener::new().open_file(&p, &input, &output).await;
        assert!(matches!(r, Err(hsm_core::Error::DecryptionFailed { .. })), "{what}: {r:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, output) = files(&dir, b"");
    let null = std::fs::File::open("/dev/null").unwrap();
    let r = Sealer::new().seal_file(&p, &KeyRef::new("wrapper"), &null, &output).await;
    assert!(matches!(r, Err(hsm_core::Error::InvalidInput { .. })), "{r:?}");
}
