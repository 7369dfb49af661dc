"""Fidelity of `hsm-emulator gcp` as seen by the official Python client.

Usage: gcp_kms.py http://127.0.0.1:PORT

Runs google-cloud-kms's KeyManagementServiceClient over its REST transport against the
emulator: key rings and keys of every purpose, encryption with AAD and CRC32C, raw AES-GCM,
signatures checked locally with `cryptography` over the returned PEM, RSA-OAEP ciphertext made
locally and decrypted by the emulator, MACs, version states and rotation, labels, paging and
error statuses. Exits non-zero on the first failed check.
"""

import hashlib
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import kms
from google.protobuf import field_mask_pb2

CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(what)
    CHECKS += 1


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), computed here so the check does not trust the emulator."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def expect_error(fn, cls, status, what):
    """`fn()` must fail with exception class `cls` and google.rpc status `status`."""
    try:
        fn()
    except cls as e:
        body = e.response.json() if getattr(e, "response", None) is not None else {}
        got = body.get("error", {}).get("status")
        check(got == status, f"{what}: status {got}, want {status} ({e})")
        return e
    except exceptions.GoogleAPICallError as e:
        raise AssertionError(f"{what}: {type(e).__name__} {e}, want {cls.__name__}") from e
    raise AssertionError(f"{what}: succeeded, want {cls.__name__}")


def main(url):
    client = kms.KeyManagementServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=url),
    )
    loc = "projects/py-project/locations/europe-west1"
    P = kms.CryptoKey.CryptoKeyPurpose
    A = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm
    S = kms.CryptoKeyVersion.CryptoKeyVersionState

    # ---- key rings ----
    for rid in ["ring-a", "ring-b", "ring-c"]:
        r = client.create_key_ring(request={"parent": loc, "key_ring_id": rid, "key_ring": {}})
        check(r.name == f"{loc}/keyRings/{rid}", f"ring name {r.name}")
    ring = f"{loc}/keyRings/ring-a"
    check(client.get_key_ring(name=ring).create_time.year >= 2024, "ring create time")
    expect_error(
        lambda: client.create_key_ring(request={"parent": loc, "key_ring_id": "ring-a", "key_ring": {}}),
        exceptions.Conflict,
        "ALREADY_EXISTS",
        "duplicate ring",
    )
    expect_error(
        lambda: client.create_key_ring(request={"parent": loc, "key_ring_id": "bad/id", "key_ring": {}}),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "ring id with a slash",
    )
    expect_error(lambda: client.get_key_ring(name=f"{loc}/keyRings/none"), exceptions.NotFound, "NOT_FOUND", "missing ring")
    pager = client.list_key_rings(request={"parent": loc, "page_size": 1})
    pages = list(pager.pages)
    check(len(pages) == 3, f"3 pages of 1 ring, got {len(pages)}")
    check([r.name.rsplit("/", 1)[1] for p in pages for r in p.key_rings] == ["ring-a", "ring-b", "ring-c"], "ring order")
    check(pages[0].total_size == 3, "totalSize")

    def create(key_id, purpose, algorithm=None, labels=None, level=kms.ProtectionLevel.SOFTWARE, skip=False):
        key = {"purpose": purpose, "version_template": {"protection_level": level}}
        if algorithm is not None:
            key["version_template"]["algorithm"] = algorithm
        if labels:
            key["labels"] = labels
        return client.create_crypto_key(
            request={
                "parent": ring,
                "crypto_key_id": key_id,
                "crypto_key": key,
                "skip_initial_version_creation": skip,
            }
        )

    # ---- ENCRYPT_DECRYPT with AAD and CRC32C ----
    sym = create("sym", P.ENCRYPT_DECRYPT, labels={"env": "prod", "team": "core"})
    check(sym.purpose == P.ENCRYPT_DECRYPT, "purpose")
    check(sym.version_template.algorithm == A.GOOGLE_SYMMETRIC_ENCRYPTION, "default algorithm")
    check(sym.primary.name == f"{sym.name}/cryptoKeyVersions/1", f"primary {sym.primary.name}")
    check(sym.primary.state == S.ENABLED, "primary enabled")
    check(dict(sym.labels) == {"env": "prod", "team": "core"}, "labels")
    expect_error(lambda: create("sym", P.ENCRYPT_DECRYPT), exceptions.Conflict, "ALREADY_EXISTS", "duplicate key")
    expect_error(
        lambda: client.get_crypto_key(name=f"{ring}/cryptoKeys/none"), exceptions.NotFound, "NOT_FOUND", "missing key"
    )
    expect_error(
        lambda: create("wrong-alg", P.ENCRYPT_DECRYPT, A.EC_SIGN_P256_SHA256),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "algorithm of another purpose",
    )
    expect_error(
        lambda: create("bad-label", P.ENCRYPT_DECRYPT, labels={"Upper": "x"}),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "label key with an uppercase letter",
    )

    pt, aad = b"the quick brown fox", b"header"
    enc = client.encrypt(
        request={
            "name": sym.name,
            "plaintext": pt,
            "additional_authenticated_data": aad,
            "plaintext_crc32c": crc32c(pt),
            "additional_authenticated_data_crc32c": crc32c(aad),
        }
    )
    check(enc.name == f"{sym.name}/cryptoKeyVersions/1", f"encrypt used {enc.name}")
    check(enc.verified_plaintext_crc32c and enc.verified_additional_authenticated_data_crc32c, "verified flags")
    check(enc.ciphertext_crc32c == crc32c(enc.ciphertext), "ciphertext CRC32C")
    check(pt not in enc.ciphertext, "ciphertext hides the plaintext")
    check(enc.protection_level == kms.ProtectionLevel.SOFTWARE, "protection level")
    plain = client.encrypt(request={"name": sym.name, "plaintext": pt})
    check(not plain.verified_plaintext_crc32c, "verified only when the request carried a CRC")
    dec = client.decrypt(
        request={
            "name": sym.name,
            "ciphertext": enc.ciphertext,
            "additional_authenticated_data": aad,
            "ciphertext_crc32c": crc32c(enc.ciphertext),
        }
    )
    check(dec.plaintext == pt, "decrypt round trip")
    check(dec.plaintext_crc32c == crc32c(pt), "plaintext CRC32C")
    check(dec.used_primary, "usedPrimary")
    expect_error(
        lambda: client.decrypt(request={"name": sym.name, "ciphertext": enc.ciphertext, "additional_authenticated_data": b"x"}),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "decrypt with the wrong AAD",
    )
    expect_error(
        lambda: client.encrypt(request={"name": sym.name, "plaintext": pt, "plaintext_crc32c": crc32c(pt) ^ 1}),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "deliberately wrong plaintext CRC32C",
    )
    expect_error(
        lambda: client.decrypt(request={"name": sym.name, "ciphertext": enc.ciphertext, "ciphertext_crc32c": 7}),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "deliberately wrong ciphertext CRC32C",
    )
    expect_error(
        lambda: client.encrypt(request={"name": sym.name, "plaintext": b"x" * (64 * 1024 + 1)}),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "plaintext over 64 KiB",
    )

    # ---- versions: rotation, disable, destroy, restore ----
    v2 = client.create_crypto_key_version(request={"parent": sym.name, "crypto_key_version": {}})
    check(v2.name == f"{sym.name}/cryptoKeyVersions/2" and v2.state == S.ENABLED, f"new version {v2.name}")
    rotated = client.update_crypto_key_primary_version(request={"name": sym.name, "crypto_key_version_id": "2"})
    check(rotated.primary.name == v2.name, "primary rotated")
    enc2 = client.encrypt(request={"name": sym.name, "plaintext": pt})
    check(enc2.name == v2.name, "encrypt uses the new primary")
    old = client.decrypt(request={"name": sym.name, "ciphertext": enc.ciphertext, "additional_authenticated_data": aad})
    check(old.plaintext == pt and not old.used_primary, "old ciphertext decrypts with the old version")
    v1 = f"{sym.name}/cryptoKeyVersions/1"
    disabled = client.update_crypto_key_version(
        request={"crypto_key_version": {"name": v1, "state": S.DISABLED}, "update_mask": field_mask_pb2.FieldMask(paths=["state"])}
    )
    check(disabled.state == S.DISABLED, "disabled")
    expect_error(
        lambda: client.decrypt(request={"name": sym.name, "ciphertext": enc.ciphertext, "additional_authenticated_data": aad}),
        exceptions.BadRequest,
        "FAILED_PRECONDITION",
        "a disabled version refuses to decrypt",
    )
    e = expect_error(
        lambda: client.encrypt(request={"name": v1, "plaintext": pt}),
        exceptions.BadRequest,
        "FAILED_PRECONDITION",
        "a disabled version refuses to encrypt",
    )
    check(e.message.endswith(f": {v1} is not enabled, current state is: DISABLED."), f"message: {e.message}")
    check(any("KEY_DISABLED" in str(d) for d in e.details), f"PreconditionFailure detail: {e.details}")
    before = time.time()
    destroyed = client.destroy_crypto_key_version(name=v1)
    check(destroyed.state == S.DESTROY_SCHEDULED, "destroy schedules")
    delay = destroyed.destroy_time.timestamp() - before
    check(86_000 < delay < 86_500, f"destroyed in 24 h, got {delay} s")
    expect_error(lambda: client.destroy_crypto_key_version(name=v1), exceptions.BadRequest, "FAILED_PRECONDITION", "destroy twice")
    restored = client.restore_crypto_key_version(name=v1)
    check(restored.state == S.DISABLED and not restored.destroy_time, "restore gives DISABLED")
    client.update_crypto_key_version(
        request={"crypto_key_version": {"name": v1, "state": S.ENABLED}, "update_mask": {"paths": ["state"]}}
    )
    again = client.decrypt(request={"name": sym.name, "ciphertext": enc.ciphertext, "additional_authenticated_data": aad})
    check(again.plaintext == pt, "re-enabled version decrypts")
    versions = list(client.list_crypto_key_versions(request={"parent": sym.name, "page_size": 1}).pages)
    check(len(versions) == 2, f"two pages of versions, got {len(versions)}")
    enabled = list(client.list_crypto_key_versions(request={"parent": sym.name, "filter": "state=ENABLED"}))
    check(len(enabled) == 2, "filter by state")

    # ---- labels ----
    updated = client.update_crypto_key(
        request={
            "crypto_key": {"name": sym.name, "labels": {"env": "staging"}},
            "update_mask": field_mask_pb2.FieldMask(paths=["labels"]),
        }
    )
    check(dict(updated.labels) == {"env": "staging"}, f"labels replaced: {dict(updated.labels)}")
    check(dict(client.get_crypto_key(name=sym.name).labels) == {"env": "staging"}, "labels stored")

    # ---- RAW_ENCRYPT_DECRYPT ----
    for key_id, alg in [("raw128", A.AES_128_GCM), ("raw256", A.AES_256_GCM)]:
        k = create(key_id, P.RAW_ENCRYPT_DECRYPT, alg)
        v = f"{k.name}/cryptoKeyVersions/1"
        r = client.raw_encrypt(
            request={"name": v, "plaintext": pt, "additional_authenticated_data": aad, "plaintext_crc32c": crc32c(pt)}
        )
        check(r.tag_length == 16 and len(r.initialization_vector) == 12, "raw encrypt IV and tag length")
        check(r.ciphertext_crc32c == crc32c(r.ciphertext), "raw ciphertext CRC32C")
        check(r.initialization_vector_crc32c == crc32c(r.initialization_vector), "IV CRC32C")
        check(r.verified_plaintext_crc32c and not r.verified_additional_authenticated_data_crc32c, "raw verified flags")
        d = client.raw_decrypt(
            request={
                "name": v,
                "ciphertext": r.ciphertext,
                "additional_authenticated_data": aad,
                "initialization_vector": r.initialization_vector,
                "tag_length": r.tag_length,
                "ciphertext_crc32c": crc32c(r.ciphertext),
                "initialization_vector_crc32c": crc32c(r.initialization_vector),
            }
        )
        check(d.plaintext == pt and d.verified_ciphertext_crc32c and d.verified_initialization_vector_crc32c, "raw round trip")
        expect_error(
            lambda: client.raw_decrypt(
                request={"name": v, "ciphertext": r.ciphertext, "initialization_vector": r.initialization_vector}
            ),
            exceptions.BadRequest,
            "INVALID_ARGUMENT",
            "raw decrypt without the AAD",
        )
        expect_error(
            lambda: client.encrypt(request={"name": k.name, "plaintext": pt}),
            exceptions.BadRequest,
            "FAILED_PRECONDITION",
            "Encrypt on a RAW_ENCRYPT_DECRYPT key",
        )

    # ---- ASYMMETRIC_SIGN: verified locally over the PEM ----
    msg = b"sign this message"
    sign_algs = [
        (A.RSA_SIGN_PSS_2048_SHA256, "sha256", kms.ProtectionLevel.SOFTWARE),
        (A.RSA_SIGN_PKCS1_2048_SHA256, "sha256", kms.ProtectionLevel.SOFTWARE),
        (A.RSA_SIGN_PKCS1_3072_SHA256, "sha256", kms.ProtectionLevel.SOFTWARE),
        (A.RSA_SIGN_PSS_4096_SHA512, "sha512", kms.ProtectionLevel.SOFTWARE),
        (A.EC_SIGN_P256_SHA256, "sha256", kms.ProtectionLevel.SOFTWARE),
        (A.EC_SIGN_P384_SHA384, "sha384", kms.ProtectionLevel.SOFTWARE),
        (A.EC_SIGN_SECP256K1_SHA256, "sha256", kms.ProtectionLevel.HSM),
        (A.EC_SIGN_ED25519, None, kms.ProtectionLevel.SOFTWARE),
    ]
    hash_cls = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
    for alg, digest_name, level in sign_algs:
        key_id = "sign-" + alg.name.lower().replace("_", "-")
        k = create(key_id, P.ASYMMETRIC_SIGN, alg, level=level)
        v = f"{k.name}/cryptoKeyVersions/1"
        pk = client.get_public_key(name=v)
        check(pk.algorithm == alg and pk.name == v, f"{alg.name}: public key metadata")
        check(pk.pem_crc32c == crc32c(pk.pem.encode()), f"{alg.name}: PEM CRC32C")
        public = serialization.load_pem_public_key(pk.pem.encode())
        if digest_name is None:
            s = client.asymmetric_sign(request={"name": v, "data": msg, "data_crc32c": crc32c(msg)})
            check(s.verified_data_crc32c, "verified data CRC")
            public.verify(s.signature, msg)
        else:
            digest = hashlib.new(digest_name, msg).digest()
            s = client.asymmetric_sign(
                request={"name": v, "digest": {digest_name: digest}, "digest_crc32c": crc32c(digest)}
            )
            check(s.verified_digest_crc32c, "verified digest CRC")
            h = hash_cls[digest_name]()
            if alg.name.startswith("RSA_SIGN_PSS"):
                public.verify(s.signature, msg, padding.PSS(padding.MGF1(h), h.digest_size), h)
            elif alg.name.startswith("RSA_SIGN_PKCS1"):
                public.verify(s.signature, msg, padding.PKCS1v15(), h)
            else:
                public.verify(s.signature, msg, ec.ECDSA(h))
        check(s.signature_crc32c == crc32c(s.signature) and s.name == v, f"{alg.name}: signature metadata")
        try:
            if digest_name is None:
                public.verify(s.signature, b"tampered")
            elif alg.name.startswith("EC"):
                public.verify(s.signature, b"tampered", ec.ECDSA(hash_cls[digest_name]()))
            else:
                public.verify(s.signature, b"tampered", padding.PKCS1v15(), hash_cls[digest_name]())
            raise AssertionError(f"{alg.name}: a signature verified over other data")
        except InvalidSignature:
            check(True, "tampered data does not verify")
    expect_error(
        lambda: create("k1-soft", P.ASYMMETRIC_SIGN, A.EC_SIGN_SECP256K1_SHA256),
        exceptions.BadRequest,
        "INVALID_ARGUMENT",
        "secp256k1 needs HSM protection",
    )

    # ---- ASYMMETRIC_DECRYPT: OAEP ciphertext made locally ----
    for alg, h in [
        (A.RSA_DECRYPT_OAEP_2048_SHA256, hashes.SHA256),
        (A.RSA_DECRYPT_OAEP_3072_SHA1, hashes.SHA1),
        (A.RSA_DECRYPT_OAEP_4096_SHA256, hashes.SHA256),
    ]:
        key_id = "dec-" + alg.name.lower().replace("_", "-")
        k = create(key_id, P.ASYMMETRIC_DECRYPT, alg)
        v = f"{k.name}/cryptoKeyVersions/1"
        public = serialization.load_pem_public_key(client.get_public_key(name=v).pem.encode())
        secret = b"a wrapped data key"
        ct = public.encrypt(secret, padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None))
        d = client.asymmetric_decrypt(request={"name": v, "ciphertext": ct, "ciphertext_crc32c": crc32c(ct)})
        check(d.plaintext == secret and d.verified_ciphertext_crc32c, f"{alg.name}: OAEP decrypt")
        check(d.plaintext_crc32c == crc32c(secret), f"{alg.name}: plaintext CRC32C")
        expect_error(
            lambda: client.asymmetric_decrypt(request={"name": v, "ciphertext": ct[:-1] + bytes([ct[-1] ^ 1])}),
            exceptions.BadRequest,
            "INVALID_ARGUMENT",
            f"{alg.name}: tampered ciphertext",
        )
        expect_error(
            lambda: client.asymmetric_sign(request={"name": v, "digest": {"sha256": b"\0" * 32}}),
            exceptions.BadRequest,
            "FAILED_PRECONDITION",
            "sign with a decryption key",
        )

    # ---- MAC ----
    for alg in [A.HMAC_SHA256, A.HMAC_SHA384, A.HMAC_SHA512, A.HMAC_SHA1, A.HMAC_SHA224]:
        k = create("mac-" + alg.name.lower().replace("_", "-"), P.MAC, alg)
        v = f"{k.name}/cryptoKeyVersions/1"
        m = client.mac_sign(request={"name": v, "data": msg, "data_crc32c": crc32c(msg)})
        check(m.verified_data_crc32c and m.mac_crc32c == crc32c(m.mac), f"{alg.name}: MAC CRCs")
        ok = client.mac_verify(request={"name": v, "data": msg, "mac": m.mac, "mac_crc32c": crc32c(m.mac)})
        check(ok.success and ok.verified_success_integrity and ok.verified_mac_crc32c, f"{alg.name}: MAC verifies")
        bad = client.mac_verify(request={"name": v, "data": b"other", "mac": m.mac})
        check(not bad.success and not bad.verified_success_integrity, f"{alg.name}: MAC over other data fails")

    # ---- listing keys with small pages and a label filter ----
    all_keys = list(client.list_crypto_keys(request={"parent": ring, "page_size": 3}))
    pages = list(client.list_crypto_keys(request={"parent": ring, "page_size": 3}).pages)
    check(len(all_keys) == 1 + 2 + len(sign_algs) + 3 + 5, f"every key listed once, got {len(all_keys)}")
    check(len({k.name for k in all_keys}) == len(all_keys), "no duplicates across pages")
    check(len(pages) == -(-len(all_keys) // 3), f"pages of 3, got {len(pages)}")
    staging = list(client.list_crypto_keys(request={"parent": ring, "filter": "labels.env=staging"}))
    check([k.name for k in staging] == [sym.name], "filter by label")
    macs = list(client.list_crypto_keys(request={"parent": ring, "filter": "purpose=MAC"}))
    check(len(macs) == 5, f"filter by purpose, got {len(macs)}")

    # ---- a key created without versions ----
    empty = create("empty", P.ENCRYPT_DECRYPT, skip=True)
    check(not empty.primary.name, "no primary without versions")
    expect_error(
        lambda: client.encrypt(request={"name": empty.name, "plaintext": pt}),
        exceptions.BadRequest,
        "FAILED_PRECONDITION",
        "encrypt with no primary",
    )

    print(f"gcp_kms.py: all checks passed ({CHECKS} checks)")


if __name__ == "__main__":
    main(sys.argv[1])
