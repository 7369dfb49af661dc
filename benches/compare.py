#!/usr/bin/env python3
"""Compare the criterion results of benches/local.rs with `openssl speed` on this machine.

Run after `cargo bench -p hsm-benches --bench local` (or just `cargo xtask bench`). Reads
criterion's estimates from $CARGO_TARGET_DIR/criterion (default target/criterion), runs
`openssl speed` for the same primitives now, and prints one row per primitive with the
ratio hsm ops/s : openssl ops/s (>= 1.00 means hsm is at least as fast).

`openssl speed` counts user CPU time by default while criterion measures wall-clock time;
the two agree on an idle machine. On a shared, loaded one set OPENSSL_SPEED_ELAPSED=1 so
openssl measures wall-clock time too (`openssl speed -elapsed`).
"""
import json
import os
import subprocess
import sys

SECONDS = os.environ.get("OPENSSL_SPEED_SECONDS", "3")
ELAPSED = ["-elapsed"] if os.environ.get("OPENSSL_SPEED_ELAPSED") else []
ROWS = [
    # criterion id, label, openssl args, how to read the result
    ("aes256gcm_encrypt_1k", "AES-256-GCM encrypt 1 KiB", ["-evp", "aes-256-gcm", "-bytes", "1024"], ("cipher", 1024)),
    ("aes256gcm_encrypt_64k", "AES-256-GCM encrypt 64 KiB", ["-evp", "aes-256-gcm", "-bytes", "65536"], ("cipher", 65536)),
    ("rsa2048_pkcs1_sha256_sign", "RSA-2048 PKCS#1 v1.5 sign", ["rsa2048"], ("F2", 3)),
    ("rsa2048_pss_sha256_sign", "RSA-2048 PSS sign", ["rsa2048"], ("F2", 3)),
    ("ecdsa_p256_sha256_sign", "ECDSA P-256 sign", ["ecdsap256"], ("F4", 3)),
    ("ed25519_sign", "Ed25519 sign", ["ed25519"], ("F6", 4)),
]


def criterion_ns(bench_id):
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    path = os.path.join(target, "criterion", "local", bench_id, "new", "estimates.json")
    try:
        with open(path) as f:
            est = json.load(f)
    except OSError:
        return None
    # The slope (per-iteration time from a linear fit) is what criterion prints; fall back to the mean.
    return (est.get("slope") or est["mean"])["point_estimate"]


def openssl_ops(args, how):
    out = subprocess.run(["openssl", "speed", "-mr", *ELAPSED, "-seconds", SECONDS, *args],
                         capture_output=True, text=True, check=True).stdout
    kind, arg = how
    for line in out.splitlines():
        if kind == "cipher" and line.startswith("+F:"):
            bytes_per_s = float(line.split(":")[3])
            return bytes_per_s / arg
        if line.startswith("+" + kind + ":"):
            return float(line.split(":")[arg])
    raise RuntimeError("no result in openssl output: " + out)


def main():
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    clock = "wall-clock" if ELAPSED else "CPU"
    print(f"reference: {version}, {SECONDS} s of {clock} time per primitive; ratio = hsm ops/s / openssl ops/s")
    print(f"| {'primitive':28} | {'hsm-local ops/s':>15} | {'openssl ops/s':>13} | {'ratio':>5} |")
    print(f"|{'-' * 30}|{'-' * 17}|{'-' * 15}|{'-' * 7}|")
    cache = {}
    for bench_id, label, args, how in ROWS:
        ns = criterion_ns(bench_id)
        key = tuple(args)
        if key not in cache:
            cache[key] = openssl_ops(args, how)
        ref = cache[key]
        if ns is None:
            print(f"| {label:28} | {'(not run)':>15} | {ref:13.0f} | {'-':>5} |")
            continue
        ours = 1e9 / ns
        ratio = ours / ref
        raw = criterion_ns("raw_" + bench_id)
        note = f"  (aws-lc-rs alone: {1e9 / raw:.0f} ops/s)" if raw else ""
        print(f"| {label:28} | {ours:15.0f} | {ref:13.0f} | {ratio:5.2f} |{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
