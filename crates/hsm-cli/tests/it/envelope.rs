//! `hsm encrypt --envelope`, `hsm decrypt` of envelopes and `hsm envelope inspect`: streamed
//! through files and pipes, contexts, ranges, and nothing left behind on failure.

use std::process::Command;

use crate::harness::Hsm;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8 ^ (i >> 16) as u8).collect()
}

fn keys() -> Hsm {
    let hsm = Hsm::new();
    hsm.ok(&["key", "create", "w", "--spec", "aes-256", "--usage", "wrap"], b"");
    hsm.ok(&["key", "create", "r", "--spec", "rsa-2048"], b"");
    hsm
}

#[test]
fn envelopes_round_trip_through_files_and_pipes_under_wrap_and_encrypt_keys() {
    let hsm = keys();
    let big = data(300_000);
    let input = hsm.file("big.bin", &big);
    for key in ["w", "r"] {
        // File to file, silent on stderr (not a terminal).
        hsm.ok(
            &[
                "encrypt",
                "--key",
                key,
                "--envelope",
                "--context",
                "tenant=acme",
                "-i",
                &input,
                "-o",
                "big.hsm",
            ],
            b"",
        );
        let sealed = std::fs::read(hsm.path("big.hsm")).unwrap();
        assert!(sealed.starts_with(b"hsmE\x02"), "{key}: a version-2 envelope");
        hsm.ok(&["decrypt", "--key", key, "--context", "tenant=acme", "-i", "big.hsm", "-o", "big.out"], b"");
        assert_eq!(std::fs::read(hsm.path("big.out")).unwrap(), big, "{key}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |f: &str| std::fs::metadata(hsm.path(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!((mode("big.hsm"), mode("big.out")), (0o644, 0o600), "{key}");
        }
        // Pipe to pipe.
        let sealed = hsm.ok(&["encrypt", "--key", key, "--envelope"], &big).stdout;
        let opened = hsm.ok(&["decrypt", "--key", key], &sealed).stdout;
        assert!(opened == big, "{key}: through pipes");
        // base64 armour builds the envelope in memory and still round-trips.
        let b64 = hsm.ok(&["encrypt", "--key", key, "--envelope", "--base64"], b"small").stdout;
        assert_eq!(hsm.ok(&["decrypt", "--key", key, "--base64"], &b64).stdout, b"small");
    }
    let other = hsm.fails(4, &["decrypt", "--key", "w", "-i", "big.hsm"], b"");
    assert!(other.contains("protected by 'r', not 'w'; pass --key r"), "{other}");
    // RSA-OAEP alone cannot take 300 kB: the error points at envelope encryption.
    let direct = hsm.fails(4, &["encrypt", "--key", "r", "-i", &input], b"");
    assert!(direct.contains("envelope"), "{direct}");
}

#[test]
fn a_failed_decrypt_leaves_no_output_and_keeps_an_existing_file() {
    let hsm = keys();
    let sealed =
        hsm.ok(&["encrypt", "--key", "w", "--envelope", "--context", "tenant=acme"], &data(200_000)).stdout;
    let mut bad = sealed.clone();
    let n = bad.len();
    bad[n - 100] ^= 1;
    hsm.file("bad.hsm", &bad);
    let msg = hsm.fails(4, &["decrypt", "--key", "w", "-i", "bad.hsm", "-o", "fresh.out"], b"");
    assert!(msg.contains("decryption failed"), "{msg}");
    assert!(!hsm.path("fresh.out").exists(), "no output file after a failure");
    hsm.file("kept.out", b"precious");
    hsm.fails(4, &["decrypt", "--key", "w", "-i", "bad.hsm", "-o", "kept.out"], b"");
    assert_eq!(std::fs::read(hsm.path("kept.out")).unwrap(), b"precious");
    // Truncated at a segment boundary, and a context the envelope does not have.
    hsm.file("cut.hsm", &sealed[..sealed.len() - (200_000 % 65_536) - 16]);
    hsm.fails(4, &["decrypt", "--key", "w", "-i", "cut.hsm", "-o", "cut.out"], b"");
    assert!(!hsm.path("cut.out").exists());
    hsm.file("good.hsm", &sealed);
    let msg = hsm.fails(
        4,
        &["decrypt", "--key", "w", "--context", "tenant=globex", "-i", "good.hsm", "-o", "x"],
        b"",
    );
    assert!(msg.contains("tenant=globex"), "{msg}");
    assert!(
        !std::fs::read_dir(hsm.home.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
}

#[test]
fn inspect_shows_the_header_without_a_provider() {
    let hsm = keys();
    hsm.ok(
        &["encrypt", "--key", "r", "--envelope", "--context", "b=2", "--context", "a=1", "-o", "m.hsm"],
        b"hello",
    );
    // A provider URL that cannot work proves inspect makes no provider call.
    let text = hsm
        .ok(
            &[
                "--provider",
                "aws-kms://?region=nowhere-1&endpoint=http://127.0.0.1:9",
                "envelope",
                "inspect",
                "m.hsm",
            ],
            b"",
        )
        .stdout_text();
    for want in [
        "version       2",
        "aes-256-gcm-hkdf-sha512-committing",
        "segment size  65536 bytes",
        "context       a=1",
        "              b=2",
        "recipients    1",
        "local",
        "r@1",
        "rsa-oaep-sha256",
        "encrypted",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let json = hsm
        .ok(&["envelope", "inspect", "--output", "json", "-"], &std::fs::read(hsm.path("m.hsm")).unwrap())
        .json();
    assert_eq!(json["version"], 2);
    assert_eq!(json["context"]["a"], "1");
    assert_eq!(json["recipients"][0]["key"], "r");
    assert_eq!(json["recipients"][0]["version"], "1");
    assert_eq!(json["recipients"][0]["protection"], "encrypted");
    assert_eq!(json["message_id"].as_str().unwrap().len(), 64);
    let msg = hsm.fails(4, &["envelope", "inspect", "-"], b"not an envelope");
    assert!(msg.contains("not an hsm envelope"), "{msg}");
}

#[test]
fn range_decrypts_a_slice_of_a_file() {
    let hsm = keys();
    let big = data(1_000_000);
    let input = hsm.file("big.bin", &big);
    hsm.ok(&["encrypt", "--key", "w", "--envelope", "-i", &input, "-o", "big.hsm"], b"");
    let out = hsm.ok(&["decrypt", "--key", "w", "-i", "big.hsm", "--range", "131000:5000"], b"").stdout;
    assert_eq!(out, big[131_000..136_000]);
    let tail = hsm.ok(&["decrypt", "--key", "w", "-i", "big.hsm", "--range", "999990:100"], b"").stdout;
    assert_eq!(tail, big[999_990..]);
    let msg = hsm.fails(
        4,
        &["decrypt", "--key", "w", "--range", "0:10"],
        &std::fs::read(hsm.path("big.hsm")).unwrap(),
    );
    assert!(msg.contains("needs the envelope in a file"), "{msg}");
    let usage = hsm.run(&["decrypt", "--key", "w", "-i", "big.hsm", "--range", "ten:5"], b"");
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    // --aad is for single-call ciphertexts; envelopes take --context.
    let usage = hsm.run(&["encrypt", "--key", "w", "--envelope", "--aad", "x"], b"");
    assert_eq!(usage.code, 2, "{}", usage.stderr);
}

/// On a terminal (a pseudo-terminal from util-linux `script`, `TERM=xterm`), encrypting a file
/// of known size draws a progress bar on stderr; the output is the same envelope format.
#[test]
fn a_progress_bar_is_drawn_only_on_a_terminal() {
    if !crate::harness::have(Command::new("script").arg("--version").output().is_ok(), "script (util-linux)")
    {
        return;
    }
    let hsm = keys();
    let input = hsm.file("big.bin", &data(64 << 20));
    let cmd = format!("{} encrypt --key w --envelope -i '{input}' -o big.hsm", env!("CARGO_BIN_EXE_hsm"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(hsm.home.path())
        // A terminal that can draw: without TERM (a bare `env -i`, many CI runners) indicatif
        // treats the pseudo-terminal as dumb and rightly draws nothing.
        .env("TERM", "xterm")
        .env("HSM_HOME", hsm.home.path())
        .env_remove("HSM_PROVIDER")
        .env_remove("HSM_CONFIG")
        .env_remove("HSM_PASSPHRASE")
        .output()
        .expect("run script");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("encrypting") && shown.contains("MiB"),
        "no progress bar on the terminal: {shown:?}"
    );
    let opened = hsm.ok(&["decrypt", "--key", "w", "-i", "big.hsm", "-o", "big.out"], b"");
    assert!(opened.stderr.is_empty());
    assert_eq!(std::fs::metadata(hsm.path("big.out")).unwrap().len(), 64 << 20);
}

/// `-o /dev/null` (any existing non-regular file) is written in place, never replaced by a
/// renamed temporary file, which as root would swap the device node for a regular file.
#[cfg(unix)]
#[test]
fn special_files_are_written_in_place() {
    use std::os::unix::fs::FileTypeExt as _;
    let hsm = keys();
    hsm.ok(&["encrypt", "--key", "w", "--envelope", "-o", "/dev/null"], b"gone");
    let sealed = hsm.ok(&["encrypt", "--key", "w", "--envelope"], b"gone").stdout;
    hsm.file("m.hsm", &sealed);
    hsm.ok(&["decrypt", "--key", "w", "-i", "m.hsm", "-o", "/dev/null"], b"");
    hsm.ok(&["encrypt", "--key", "r", "-o", "/dev/null"], b"single call");
    assert!(
        std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(),
        "/dev/null is still a device"
    );
}
