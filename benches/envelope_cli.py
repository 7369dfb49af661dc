#!/usr/bin/env python3
"""`hsm encrypt --envelope` / `hsm decrypt` against the AWS Encryption SDK CLI, side by side.

Both use the same AES-256 key in one `hsm-emulator aws` on loopback, files on tmpfs
(/dev/shm), and are measured with /usr/bin/time -v (wall seconds, max RSS). Installs
`aws-encryption-sdk-cli` into the test venv when it is missing. Run by
`cargo xtask bench envelope` after it builds the release binaries; arguments: the hsm and
hsm-emulator binaries. HSM_BENCH_SIZES (GiB, default "1 4") chooses the inputs; the ESDK
runs on the first size only (it buffers whole messages on decrypt).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HSM, EMULATOR = sys.argv[1], sys.argv[2]
VENV = os.environ.get("HSM_VENV", os.path.expanduser("~/.cache/hsm-venv"))
SIZES = [int(s) for s in os.environ.get("HSM_BENCH_SIZES", "1 4").split()]
ESDK = os.path.join(VENV, "bin", "aws-encryption-cli")


def need_esdk():
    if not os.path.exists(ESDK):
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                        "aws-encryption-sdk-cli==4.3.0"], check=True)


def timed(cmd, env):
    """Runs cmd under /usr/bin/time -v; returns (seconds, max RSS in MiB)."""
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return secs, rss_kb / 1024


def main():
    need_esdk()
    emu = subprocess.Popen([EMULATOR, "aws", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = emu.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL=url, AWS_ENDPOINT_URL_KMS=url, HSM_HOME=tempfile.mkdtemp())
        provider = f"aws-kms://?region=us-east-1&endpoint={url}"
        hsm = [HSM, "--provider", provider]
        subprocess.run([*hsm, "key", "create", "bench", "--spec", "aes-256"], env=env, check=True,
                       capture_output=True)
        info = json.loads(subprocess.run([*hsm, "key", "show", "bench", "--output", "json"], env=env,
                                         check=True, capture_output=True, text=True).stdout)
        arn = info["native_id"]
        work = tempfile.mkdtemp(dir="/dev/shm", prefix="hsm-bench-")
        rows = []
        try:
            for gib in SIZES:
                src = os.path.join(work, f"in-{gib}g")
                with open(src, "wb") as f:
                    for _ in range(gib * 64):
                        f.write(os.urandom(16 << 20))
                mb = gib * (1 << 30) / 1e6
                enc = os.path.join(work, "out.hsm")
                dec = "/dev/null" if gib > 1 else os.path.join(work, "dec")
                s, rss = timed([*hsm, "encrypt", "--envelope", "--key", "bench", "-i", src, "-o", enc], env)
                rows.append((f"hsm encrypt --envelope, {gib} GiB", s, mb / s, rss))
                s, rss = timed([*hsm, "decrypt", "--key", "bench", "-i", enc, "-o", dec], env)
                rows.append((f"hsm decrypt, {gib} GiB", s, mb / s, rss))
                if dec != "/dev/null":
                    assert subprocess.run(["cmp", src, dec]).returncode == 0, "hsm round trip differs"
                    os.remove(dec)
                os.remove(enc)
                if gib == SIZES[0]:
                    esdk_out = os.path.join(work, "out.esdk")
                    s, rss = timed([ESDK, "--encrypt", "-i", src, "-o", esdk_out, "-S",
                                    "--wrapping-keys", f"key={arn}"], env)
                    rows.append((f"aws-encryption-cli --encrypt, {gib} GiB", s, mb / s, rss))
                    s, rss = timed([ESDK, "--decrypt", "-i", esdk_out, "-o", os.path.join(work, "dec"), "-S",
                                    "--buffer", "--wrapping-keys", f"key={arn}"], env)
                    rows.append((f"aws-encryption-cli --decrypt --buffer, {gib} GiB", s, mb / s, rss))
                    assert subprocess.run(["cmp", src, os.path.join(work, "dec")]).returncode == 0
                    os.remove(esdk_out)
                    os.remove(os.path.join(work, "dec"))
                os.remove(src)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        emu.terminate()
        emu.wait()

    print("| run | seconds | MB/s | max RSS MiB |")
    print("|---|---|---|---|")
    for name, s, rate, rss in rows:
        print(f"| {name} | {s:.2f} | {rate:.0f} | {rss:.0f} |")
    by = {name: s for name, s, _, _ in rows}
    g = SIZES[0]
    for verb, esdk in (("encrypt --envelope", f"aws-encryption-cli --encrypt, {g} GiB"),
                       ("decrypt", f"aws-encryption-cli --decrypt --buffer, {g} GiB")):
        mine = by[f"hsm {verb}, {g} GiB"]
        print(f"hsm {verb} is {by[esdk] / mine:.1f}x the ESDK CLI's speed ({g} GiB)")


if __name__ == "__main__":
    main()
