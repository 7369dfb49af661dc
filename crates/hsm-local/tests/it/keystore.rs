//! The encrypted keystore file: persistence, credentials, damage, concurrency, permissions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use hsm_core::{
    CreateKey, EncryptionAlgorithm, Error, KeyRef, KeySpec, KeyState, ListKeys, Provider, ProviderExt,
    SignInput, SignatureAlgorithm, Zeroizing,
};
use hsm_local::LocalProvider;

use crate::{assert_err, key};

fn pass(s: &str) -> Option<Zeroizing<String>> {
    Some(Zeroizing::new(s.to_owned()))
}

fn store(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("keys.hsm")
}

#[tokio::test]
async fn keys_survive_reopening_with_the_master_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    let p = LocalProvider::open(&path, None).unwrap();
    assert_eq!(p.path(), Some(path.as_path()));
    let info = p.create_key(CreateKey::new("persist", KeySpec::Aes256).tag("team", "a")).await.unwrap();
    assert_eq!(info.native_id, format!("{}#persist", path.display()));
    key(&p, "signer", KeySpec::EcSecp256k1, None).await;
    let ct = p.encrypt(&"persist".into(), EncryptionAlgorithm::AesGcm, b"kept", None).await.unwrap();
    let sig =
        p.sign(&"signer".into(), SignatureAlgorithm::EcdsaSha256, SignInput::Message(b"m")).await.unwrap();
    p.rotate_key(&"persist".into()).await.unwrap();
    p.set_key_state(&"signer".into(), KeyState::Disabled).await.unwrap();
    drop(p);

    assert!(path.with_extension("hsm.key").exists());
    let q = LocalProvider::open(&path, None).unwrap();
    let k = q.get_key(&"persist".into()).await.unwrap();
    assert_eq!((k.version.as_str(), k.tags.get("team").map(String::as_str)), ("2", Some("a")));
    assert_eq!(k.created, info.created, "timestamps survive exactly");
    assert_eq!(&q.decrypt_blob(&ct, None).await.unwrap()[..], b"kept");
    assert_eq!(q.get_key(&"signer".into()).await.unwrap().state, KeyState::Disabled);
    q.set_key_state(&"signer".into(), KeyState::Enabled).await.unwrap();
    assert!(q.verify_signature(&sig, b"m").await.unwrap());
}

#[tokio::test]
async fn a_passphrase_keystore_reopens_only_with_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    let p = LocalProvider::open(&path, pass("correct horse battery staple")).unwrap();
    key(&p, "k", KeySpec::HmacSha256, None).await;
    drop(p);
    assert!(!path.with_extension("hsm.key").exists(), "no key file for a passphrase keystore");
    let before = std::fs::read(&path).unwrap();

    let e = assert_err!(LocalProvider::open(&path, pass("wrong")), Error::Unauthenticated { .. });
    let msg = e.to_string();
    assert!(msg.contains("wrong passphrase") && msg.contains(&path.display().to_string()), "{msg}");
    let e = assert_err!(LocalProvider::open(&path, None), Error::Unauthenticated { .. });
    assert!(e.to_string().contains("protected by a passphrase"), "{e}");
    assert_err!(LocalProvider::open(&path, pass("")), Error::Config { .. });
    assert_eq!(std::fs::read(&path).unwrap(), before, "failed opens leave the file untouched");

    let q = LocalProvider::open(&path, pass("correct horse battery staple")).unwrap();
    assert!(q.key_exists("k").await.unwrap());
}

#[tokio::test]
async fn a_passphrase_for_a_key_file_keystore_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    drop(LocalProvider::open(&path, None).unwrap());
    let e = assert_err!(LocalProvider::open(&path, pass("anything")), Error::Config { .. });
    assert!(e.to_string().contains("created without a passphrase"), "{e}");

    // A missing or wrong master key file.
    let key_file = path.with_extension("hsm.key");
    let original = std::fs::read(&key_file).unwrap();
    std::fs::write(&key_file, [0u8; 32]).unwrap();
    assert_err!(LocalProvider::open(&path, None), Error::Unauthenticated { .. });
    std::fs::write(&key_file, [0u8; 5]).unwrap();
    assert_err!(LocalProvider::open(&path, None), Error::Config { .. });
    std::fs::remove_file(&key_file).unwrap();
    let e = assert_err!(LocalProvider::open(&path, None), Error::Config { .. });
    assert!(e.to_string().contains("master key file"), "{e}");
    std::fs::write(&key_file, original).unwrap();
    LocalProvider::open(&path, None).unwrap();
}

fn assert_refused_untouched(path: &Path, bytes: &[u8], why: &str) {
    std::fs::write(path, bytes).unwrap();
    let e = assert_err!(LocalProvider::open(path, None), Error::Config { .. });
    assert!(e.to_string().contains(&path.display().to_string()), "{why}: {e}");
    assert_eq!(std::fs::read(path).unwrap(), bytes, "{why}: file must be left byte-identical");
}

#[tokio::test]
async fn corrupt_or_truncated_keystores_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    let p = LocalProvider::open(&path, None).unwrap();
    key(&p, "k", KeySpec::Aes128, None).await;
    drop(p);
    let good = std::fs::read(&path).unwrap();

    assert_refused_untouched(&path, &[], "empty");
    assert_refused_untouched(&path, &good[..10], "truncated in the header");
    assert_refused_untouched(&path, &good[..70], "truncated after the header");
    assert_refused_untouched(&path, &good[..good.len() - 1], "truncated tag");
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x01;
    assert_refused_untouched(&path, &flipped, "flipped ciphertext byte");
    let mut nonce = good.clone();
    nonce[60] ^= 0x01;
    assert_refused_untouched(&path, &nonce, "flipped nonce");
    let mut version = good.clone();
    version[9] = 7;
    assert_refused_untouched(&path, &version, "future format");
    assert_refused_untouched(
        &path,
        b"{\"keys\": {}} this is not a keystore at all, just some text",
        "foreign file",
    );

    let e = assert_err!(LocalProvider::open(dir.path(), None), Error::Config { .. });
    assert!(e.to_string().contains("directory"), "{e}");

    std::fs::write(&path, &good).unwrap();
    let p = LocalProvider::open(&path, None).unwrap();
    assert!(p.key_exists("k").await.unwrap());
}

#[cfg(unix)]
#[tokio::test]
async fn keystore_key_and_lock_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/keys.hsm");
    let p = LocalProvider::open(&path, None).unwrap();
    key(&p, "k", KeySpec::Aes128, None).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&path.with_extension("hsm.key")), 0o600);
    assert_eq!(mode(&path.with_extension("hsm.lock")), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700, "created directories are private");
    // Still 0600 after a rewrite, and no temporary files are left behind.
    p.rotate_key(&"k".into()).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    let mut names: Vec<_> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["keys.hsm", "keys.hsm.key", "keys.hsm.lock"]);
}

#[tokio::test]
async fn every_mutation_is_on_disk_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    let p = LocalProvider::open(&path, None).unwrap();
    let fresh = || LocalProvider::open(&path, None).unwrap();
    key(&p, "k", KeySpec::Aes128, None).await;
    assert!(fresh().key_exists("k").await.unwrap());
    p.rotate_key(&"k".into()).await.unwrap();
    assert_eq!(fresh().get_key(&"k".into()).await.unwrap().version, "2");
    p.set_key_state(&"k".into(), KeyState::Disabled).await.unwrap();
    assert_eq!(fresh().get_key(&"k".into()).await.unwrap().state, KeyState::Disabled);
    p.schedule_deletion(&"k".into(), None).await.unwrap();
    assert_eq!(fresh().get_key(&"k".into()).await.unwrap().state, KeyState::PendingDeletion);
    p.cancel_deletion(&"k".into()).await.unwrap();
    assert_eq!(fresh().get_key(&"k".into()).await.unwrap().state, KeyState::Disabled);
    p.schedule_deletion(&"k".into(), Some(std::time::Duration::ZERO)).await.unwrap();
    assert!(!fresh().key_exists("k").await.unwrap());
    // A failed mutation writes nothing.
    let before = std::fs::read(&path).unwrap();
    key(&p, "dup", KeySpec::Aes128, None).await;
    let after_create = std::fs::read(&path).unwrap();
    assert_ne!(before, after_create);
    assert!(p.create_key(CreateKey::new("dup", KeySpec::Aes128)).await.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), after_create);
}

#[tokio::test]
async fn two_providers_on_one_file_see_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    let a = LocalProvider::open(&path, None).unwrap();
    let b = LocalProvider::open(&path, None).unwrap();
    key(&a, "from-a", KeySpec::Aes128, None).await;
    key(&b, "from-b", KeySpec::Aes128, None).await;
    // b re-read the file before writing, so a's key survived; a notices b's write on reading.
    let names: Vec<_> = a.list_all(ListKeys::new()).await.unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["from-a", "from-b"]);
    b.set_key_state(&"from-a".into(), KeyState::Disabled).await.unwrap();
    let e = assert_err!(
        a.encrypt(&"from-a".into(), EncryptionAlgorithm::AesGcm, b"x", None).await,
        Error::KeyUnusable { .. }
    );
    assert!(e.to_string().contains("disabled"), "{e}");
}

#[test]
fn two_writers_at_once_lose_nothing() {
    const WRITERS: usize = 4;
    const KEYS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    drop(LocalProvider::open(&path, None).unwrap());
    let start = Arc::new(Barrier::new(WRITERS));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (path, start) = (path.clone(), start.clone());
            // Separate OS threads, separate providers, separate runtimes: as two processes would.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let p = LocalProvider::open(&path, None).unwrap();
                    start.wait();
                    for i in 0..KEYS {
                        let name = format!("w{w}-k{i}");
                        p.create_key(CreateKey::new(name.as_str(), KeySpec::Aes128)).await.unwrap();
                        p.rotate_key(&KeyRef::new(name)).await.unwrap();
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let p = LocalProvider::open(&path, None).unwrap();
        let keys = p.list_all(ListKeys::new()).await.unwrap();
        assert_eq!(keys.len(), WRITERS * KEYS, "every writer's keys are present");
        assert!(keys.iter().all(|k| k.version == "2"), "and every rotation");
    });
}

#[tokio::test]
async fn key_material_never_appears_in_the_file_or_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    let p = LocalProvider::open(&path, None).unwrap();
    key(&p, "kek", KeySpec::Aes256, Some(hsm_core::KeyUsage::WrapUnwrap)).await;
    // Key material we know: a data key wrapped under the store's KEK. The store must not leak
    // its own keys, which we cannot see from outside, so check the next best things: the file
    // is not JSON, names and tags are not readable, and Debug shows no bytes.
    p.create_key(CreateKey::new("visible-name", KeySpec::Ed25519).tag("secret-tag", "tag-value"))
        .await
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for needle in [&b"visible-name"[..], b"tag-value", b"\"keys\"", b"material", b"MII"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{:?} in the file",
            String::from_utf8_lossy(needle)
        );
    }
    let debug = format!("{p:?}");
    assert!(debug.contains("keys: 2") && debug.contains("keys.hsm"), "{debug}");
    assert!(debug.len() < 300, "{debug}");
    let mem = format!("{:?}", LocalProvider::in_memory());
    assert_eq!(mem, "LocalProvider { store: \"memory\", keys: 0 }");
}

/// The temporary files of interrupted writes beside `path`.
fn temps(path: &Path) -> std::collections::BTreeSet<String> {
    let prefix = format!(".{}.", path.file_name().unwrap().to_str().unwrap());
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|f| f.starts_with(&prefix) && f.ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn temporary_files_of_interrupted_writes_are_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    let p = LocalProvider::open(&path, None).unwrap();
    // A process that has exited (and been reaped): its pid names no live process.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let stale = [
        format!(".keys.hsm.{gone_pid}.00000000000000aa.tmp"),
        format!(".keys.hsm.{}.00000000000000bb.tmp", std::process::id()),
    ];
    // Not this keystore's temporaries, or a live process's young one (a writer that might
    // not honour the lock): left alone.
    let kept = [
        ".other.hsm.1.00000000000000cc.tmp".to_owned(),
        ".keys.hsm.1.cc.tmp".to_owned(),
        "keys.hsm.notes".to_owned(),
        ".keys.hsm.1.00000000000000dd.tmp".to_owned(),
    ];
    for f in stale.iter().chain(&kept) {
        std::fs::write(dir.path().join(f), b"partial").unwrap();
    }
    key(&p, "k", KeySpec::Aes128, None).await;
    for f in &stale {
        assert!(!dir.path().join(f).exists(), "{f} is removed by the next write");
    }
    for f in &kept {
        assert!(dir.path().join(f).exists(), "{f} is kept");
    }
    let reopened = LocalProvider::open(&path, None).unwrap();
    assert_eq!(reopened.get_key(&"k".into()).await.unwrap().version, "1");
}

/// Environment of [`interrupted_write_child`]: the keystore and the key-name prefix.
const TORTURE_STORE: &str = "HSM_LOCAL_TORTURE_STORE";
const TORTURE_PREFIX: &str = "HSM_LOCAL_TORTURE_PREFIX";

/// The writer process of [`keystore_survives_writers_killed_mid_write`]: creates keys in a
/// loop and prints `ack <name>` once each `create_key` has returned. Does nothing without
/// its environment (so `cargo test -- --ignored` passes through it).
#[test]
#[ignore = "a helper process that keystore_survives_writers_killed_mid_write starts and kills"]
fn interrupted_write_child() {
    use std::io::Write as _;
    let (Some(path), Some(prefix)) = (std::env::var_os(TORTURE_STORE), std::env::var(TORTURE_PREFIX).ok())
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let p = LocalProvider::open(&path, None).unwrap();
        let mut out = std::io::stdout().lock();
        for i in 0..10_000 {
            let name = format!("{prefix}-{i}");
            p.create_key(CreateKey::new(name.as_str(), KeySpec::Aes128)).await.unwrap();
            writeln!(out, "ack {name}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Writers in other processes killed with SIGKILL at random points, 60 times: every key a
/// writer acknowledged is present, the store always opens, and the temporary files the
/// kills leave behind are removed by the next write (another process's).
#[cfg(unix)]
#[test]
fn keystore_survives_writers_killed_mid_write() {
    use std::collections::BTreeSet;
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    const ITERATIONS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let path = store(&dir);
    drop(LocalProvider::open(&path, None).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let exe = std::env::current_exe().unwrap();
    let started = std::time::Instant::now();
    let mut acked = BTreeSet::new();
    let (mut kills_leaving_temps, mut swept_by_next_writer) = (0, 0);
    for iter in 0..ITERATIONS {
        let before = temps(&path);
        let mut child = Command::new(&exe)
            .args(["--exact", "keystore::interrupted_write_child", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(TORTURE_STORE, &path)
            .env(TORTURE_PREFIX, format!("i{iter}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill somewhere in the first 150 ms: during start-up, opening, or (mostly) writing
        // (each create is a write and two fsyncs).
        let mut r = [0u8; 4];
        aws_lc_rs::rand::fill(&mut r).unwrap();
        std::thread::sleep(std::time::Duration::from_micros(u64::from(u32::from_le_bytes(r)) % 150_000));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        // Complete lines only; libtest prints "test <name> ... " before the first one.
        let mine: Vec<String> = out
            .split_inclusive('\n')
            .filter_map(|l| l.strip_suffix('\n')?.split("ack ").nth(1))
            .map(str::to_owned)
            .collect();
        let after = temps(&path);
        if !after.is_empty() {
            kills_leaving_temps += 1;
        }
        if !mine.is_empty() && !before.is_empty() {
            // The child completed a write after the earlier kill: that write removed its temp.
            assert!(before.is_disjoint(&after), "iteration {iter}: {before:?} survived a later write");
            swept_by_next_writer += 1;
        }
        acked.extend(mine);
        // The store always opens, and holds every acknowledged key.
        let present: BTreeSet<String> = rt.block_on(async {
            let p = LocalProvider::open(&path, None)
                .unwrap_or_else(|e| panic!("iteration {iter}: the keystore does not open: {e}"));
            p.list_all(ListKeys::new()).await.unwrap().into_iter().map(|k| k.name).collect()
        });
        let lost: Vec<_> = acked.difference(&present).collect();
        assert!(lost.is_empty(), "iteration {iter}: acknowledged keys lost: {lost:?}");
    }
    // One more write, by this process: no temporary file remains.
    rt.block_on(async {
        let p = LocalProvider::open(&path, None).unwrap();
        key(&p, "after-the-kills", KeySpec::Aes128, None).await;
    });
    assert_eq!(temps(&path), BTreeSet::new(), "the next write removes every stale temporary file");
    eprintln!(
        "{ITERATIONS} writers killed in {:.1} s: {} keys acknowledged, all present; {kills_leaving_temps} kills \
         left a temporary file, {swept_by_next_writer} times a later writer removed one",
        started.elapsed().as_secs_f64(),
        acked.len()
    );
    assert!(acked.len() >= ITERATIONS / 4, "the writers got to write ({} keys acknowledged)", acked.len());
}
