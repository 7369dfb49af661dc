"""Fidelity of `hsm-emulator azure` with the official Python SDK (azure-keyvault-keys).

Usage: azure_keyvault.py URL CA_PEM_FILE {vault|managed-hsm}

Run by crates/hsm-emulator/tests/it/azure.rs against an in-process emulator. Every check is an
assertion on what the SDK returned; cryptography is cross-checked with the `cryptography`
package (local RSA-OAEP encryption decrypted by the service, service signatures verified
locally). Exits non-zero on the first failure.
"""

import hashlib
import os
import sys
import time

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import KeyClient, KeyCurveName, KeyType
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

URL, CA, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
CHECKS = 0
POLL = {"_polling_interval": 0}


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(what)
    CHECKS += 1


class FixedToken:
    """A credential handing out one token (the emulator accepts any non-empty token)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("python-sdk-token", int(time.time()) + 3600)


CRED = FixedToken()
CLIENT_KW = {"verify_challenge_resource": False, "connection_verify": CA}
client = KeyClient(URL, CRED, **CLIENT_KW)


def crypto(key):
    return CryptographyClient(key, CRED, **CLIENT_KW)


def b64(data):
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(s):
    import base64

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def send(method, path, body=None):
    """A raw call through the SDK pipeline (auth, TLS), for what CryptographyClient does locally."""
    req = HttpRequest(method, f"{URL}{path}?api-version=7.6", json=body)
    resp = client.send_request(req)
    return resp.status_code, (resp.json() if resp.content else None)


HASHES = {"256": (hashlib.sha256, hashes.SHA256()), "384": (hashlib.sha384, hashes.SHA384()),
          "512": (hashlib.sha512, hashes.SHA512())}


def rsa_public(key):
    n = int.from_bytes(key.key.n, "big")
    e = int.from_bytes(key.key.e, "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def ec_public(key):
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(), "P-256K": ec.SECP256K1()}
    x = int.from_bytes(key.key.x, "big")
    y = int.from_bytes(key.key.y, "big")
    return ec.EllipticCurvePublicNumbers(x, y, curves[key.key.crv]).public_key()


def rsa_checks(key):
    cc = crypto(key)
    pub = rsa_public(key)
    # Encrypt locally in the SDK (it has the public key), decrypt in the service.
    for alg in (EncryptionAlgorithm.rsa_oaep, EncryptionAlgorithm.rsa_oaep_256, EncryptionAlgorithm.rsa1_5):
        enc = cc.encrypt(alg, b"plaintext")
        check(enc.key_id == key.id, f"encrypt kid {enc.key_id}")
        dec = cc.decrypt(alg, enc.ciphertext)
        check(dec.plaintext == b"plaintext", f"{alg} round trip")
    # Encrypted by `cryptography` itself, decrypted by the service.
    ct = pub.encrypt(b"from cryptography", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    check(cc.decrypt(EncryptionAlgorithm.rsa_oaep_256, ct).plaintext == b"from cryptography", "OAEP-256 interop")
    # Encrypted by the service (raw call), decrypted by the service through the SDK.
    status, body = send("POST", f"/keys/{key.name}/{key.properties.version}/encrypt",
                        {"alg": "RSA-OAEP", "value": b64(b"remote")})
    check(status == 200, f"remote encrypt {status} {body}")
    check(cc.decrypt(EncryptionAlgorithm.rsa_oaep, unb64(body["value"])).plaintext == b"remote", "remote encrypt")
    for alg in (KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa1_5):
        wrapped = cc.wrap_key(alg, b"k" * 32)
        check(cc.unwrap_key(alg, wrapped.encrypted_key).key == b"k" * 32, f"{alg} wrap round trip")
    # Sign in the service; verify in the SDK (locally), with `cryptography`, and in the service.
    for name in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        h, ch = HASHES[name[2:]]
        digest = h(b"message").digest()
        sig = cc.sign(SignatureAlgorithm(name), digest)
        check(sig.key_id == key.id and len(sig.signature) == key.key.n.__len__(), f"{name} signature")
        check(cc.verify(SignatureAlgorithm(name), digest, sig.signature).is_valid, f"{name} SDK verify")
        pad = padding.PKCS1v15() if name.startswith("RS") else padding.PSS(mgf=padding.MGF1(ch), salt_length=ch.digest_size)
        pub.verify(sig.signature, digest, pad, Prehashed(ch))  # raises if invalid
        check(True, f"{name} cryptography verify")
        status, body = send("POST", f"/keys/{key.name}/{key.properties.version}/verify",
                            {"alg": name, "digest": b64(digest), "value": b64(sig.signature)})
        check(status == 200 and body == {"value": True}, f"{name} remote verify {body}")
        bad = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
        status, body = send("POST", f"/keys/{key.name}/{key.properties.version}/verify",
                            {"alg": name, "digest": b64(digest), "value": b64(bad)})
        check(status == 200 and body == {"value": False}, f"{name} remote verify of a bad signature {body}")


def ec_checks(key, alg, hname):
    cc = crypto(key)
    pub = ec_public(key)
    h, ch = HASHES[hname]
    digest = h(b"message").digest()
    sig = cc.sign(alg, digest)
    size = len(key.key.x)
    check(len(sig.signature) == 2 * size, f"{alg} raw r||s length {len(sig.signature)}")
    check(cc.verify(alg, digest, sig.signature).is_valid, f"{alg} SDK verify")
    r = int.from_bytes(sig.signature[:size], "big")
    s = int.from_bytes(sig.signature[size:], "big")
    pub.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(ch)))
    check(True, f"{alg} cryptography verify")
    # The service's verify rejects the signature over another digest.
    status, body = send("POST", f"/keys/{key.name}/{key.properties.version}/verify",
                        {"alg": str(alg.value), "digest": b64(h(b"other").digest()), "value": b64(sig.signature)})
    check(status == 200 and body == {"value": False}, f"{alg} remote verify of another digest {body}")


def vault_mode():
    prefix = f"py{os.getpid()}"
    # Keys of every kind.
    rsa_keys = {}
    for size in (2048, 3072, 4096):
        k = client.create_rsa_key(f"{prefix}-rsa{size}", size=size)
        check(k.key_type == KeyType.rsa and len(k.key.n) == size // 8, f"RSA {size}")
        rsa_keys[size] = k
    hsm_rsa = client.create_rsa_key(f"{prefix}-rsahsm", size=2048, hardware_protected=True, tags={"t": "1"})
    check(hsm_rsa.key_type == KeyType.rsa_hsm and hsm_rsa.properties.tags == {"t": "1"}, "RSA-HSM")
    ec_keys = {}
    for crv, alg, hname, size in ((KeyCurveName.p_256, SignatureAlgorithm.es256, "256", 32),
                                  (KeyCurveName.p_384, SignatureAlgorithm.es384, "384", 48),
                                  (KeyCurveName.p_521, SignatureAlgorithm.es512, "512", 66),
                                  (KeyCurveName.p_256_k, SignatureAlgorithm.es256_k, "256", 32)):
        for hw in (False, True):
            k = client.create_ec_key(f"{prefix}-ec-{crv.value}-{int(hw)}".replace("P-", "p"), curve=crv,
                                     hardware_protected=hw)
            check(k.key.crv == crv and len(k.key.x) == size and len(k.key.y) == size, f"EC {crv} padded")
            check(k.key_type == (KeyType.ec_hsm if hw else KeyType.ec), f"EC {crv} type")
            ec_keys[(crv, hw)] = (k, alg, hname)
    # No AES in a vault.
    try:
        client.create_oct_key(f"{prefix}-aes", size=256, hardware_protected=True)
        check(False, "oct-HSM in a vault must fail")
    except HttpResponseError as e:
        check(e.status_code == 400 and "Managed HSM" in str(e), f"oct-HSM refused: {e}")

    # Get: latest and by version; missing keys and versions.
    k = client.get_key(rsa_keys[2048].name)
    check(k.id == rsa_keys[2048].id and k.properties.version == rsa_keys[2048].properties.version, "get latest")
    k = client.get_key(rsa_keys[2048].name, rsa_keys[2048].properties.version)
    check(k.id == rsa_keys[2048].id, "get version")
    check(k.properties.recovery_level == "Recoverable+Purgeable" and k.properties.recoverable_days == 90, "recovery")
    for args in ((f"{prefix}-missing",), (rsa_keys[2048].name, "0" * 32)):
        try:
            client.get_key(*args)
            check(False, "missing key must fail")
        except ResourceNotFoundError as e:
            check(e.status_code == 404 and e.error.code == "KeyNotFound", f"404 KeyNotFound: {e.error.code}")

    # Listing with paging: 12 keys so far, 4 per page.
    names = {p.name for p in client.list_properties_of_keys() if p.name.startswith(prefix)}
    check(len(names) == 12, f"listed {len(names)} keys: {sorted(names)}")
    pages = list(client.list_properties_of_keys(max_page_size=4).by_page())
    listed = [p.name for page in pages for p in page]
    check(len(pages) == 3 and len(listed) == 12 and set(listed) == names, f"{len(pages)} pages, {len(listed)} keys")
    for i in range(3):
        client.create_ec_key(f"{prefix}-page-{i}", curve=KeyCurveName.p_256)
    pages = list(client.list_properties_of_keys(max_page_size=5).by_page())
    check(len(pages) == 3 and sum(len(list(p)) for p in pages) == 15, "15 keys in 3 pages of 5")

    # Versions, rotation, tags.
    name = rsa_keys[2048].name
    old = rsa_keys[2048]
    rotated = client.rotate_key(name)
    check(rotated.properties.version != old.properties.version and rotated.name == name, "rotate adds a version")
    again = client.create_rsa_key(name, size=2048)
    versions = [p.version for p in client.list_properties_of_key_versions(name, max_page_size=1)]
    check(versions == [old.properties.version, rotated.properties.version, again.properties.version],
          f"versions {versions}")
    # Data encrypted under the old version still decrypts with it after rotation.
    enc = crypto(old).encrypt(EncryptionAlgorithm.rsa_oaep_256, b"before rotation")
    dec = crypto(client.get_key(name, old.properties.version)).decrypt(EncryptionAlgorithm.rsa_oaep_256, enc.ciphertext)
    check(dec.plaintext == b"before rotation", "old version decrypts after rotation")
    updated = client.update_key_properties(name, tags={"env": "test", "owner": "hsm"})
    check(updated.properties.tags == {"env": "test", "owner": "hsm"}
          and updated.properties.version == again.properties.version, "tags")
    check(client.get_key(name).properties.tags == {"env": "test", "owner": "hsm"}, "tags persisted")
    updated = client.update_key_properties(name, old.properties.version, enabled=False)
    check(updated.properties.enabled is False and updated.properties.version == old.properties.version,
          "disable one version")
    # A disabled key refuses service-side operations with 403.
    status, body = send("POST", f"/keys/{name}/{old.properties.version}/decrypt",
                        {"alg": "RSA-OAEP-256", "value": b64(enc.ciphertext)})
    check(status == 403 and body["error"]["code"] == "Forbidden", f"disabled key: {status} {body}")
    client.update_key_properties(name, old.properties.version, enabled=True)

    # Cryptography.
    for k in list(rsa_keys.values()) + [hsm_rsa]:
        rsa_checks(client.get_key(k.name))
    for k, alg, hname in ec_keys.values():
        ec_checks(k, alg, hname)

    # Soft delete, recover, purge.
    victim = ec_keys[(KeyCurveName.p_256, False)][0]
    deleted = client.begin_delete_key(victim.name, **POLL).result()
    check(deleted.name == victim.name and deleted.recovery_id.endswith(f"/deletedkeys/{victim.name}"), "deleted")
    check(deleted.deleted_date is not None and deleted.scheduled_purge_date is not None, "deletion dates")
    check((deleted.scheduled_purge_date - deleted.deleted_date).days == 90, "purge in 90 days")
    client.begin_delete_key(ec_keys[(KeyCurveName.p_384, False)][0].name, **POLL).wait()
    got = client.get_deleted_key(victim.name)
    check(got.id == victim.id, "get deleted key")
    deleted_names = {d.name for d in client.list_deleted_keys(max_page_size=1)}
    check(victim.name in deleted_names and len(deleted_names) == 2, f"deleted listing {deleted_names}")
    try:
        client.create_ec_key(victim.name, curve=KeyCurveName.p_256)
        check(False, "create over a deleted name must fail")
    except ResourceExistsError as e:
        check(e.status_code == 409, f"409 on a deleted name: {e}")
    recovered = client.begin_recover_deleted_key(victim.name, **POLL).result()
    check(recovered.id == victim.id, "recovered")
    check(client.get_key(victim.name).id == victim.id, "recovered key readable")
    client.begin_delete_key(victim.name, **POLL).wait()
    client.purge_deleted_key(victim.name)
    try:
        client.get_deleted_key(victim.name)
        check(False, "purged key must be gone")
    except ResourceNotFoundError:
        check(True, "purged")
    fresh = client.create_ec_key(victim.name, curve=KeyCurveName.p_256)
    check(fresh.id != victim.id, "name reusable after purge")


def managed_hsm_mode():
    prefix = f"py{os.getpid()}"
    try:
        client.create_rsa_key(f"{prefix}-soft", size=2048)
        check(False, "software RSA on Managed HSM must fail")
    except HttpResponseError as e:
        check(e.status_code == 400, f"software RSA refused: {e}")
    r = client.create_rsa_key(f"{prefix}-rsa", size=2048, hardware_protected=True)
    check(r.key_type == KeyType.rsa_hsm, "RSA-HSM")
    rsa_checks(r)
    e = client.create_ec_key(f"{prefix}-ec", curve=KeyCurveName.p_256, hardware_protected=True)
    ec_checks(e, SignatureAlgorithm.es256, "256")

    for bits in (128, 192, 256):
        k = client.create_oct_key(f"{prefix}-aes{bits}", size=bits, hardware_protected=True)
        check(k.key_type == KeyType.oct_hsm and k.key.k is None, f"oct-HSM {bits} without k")
        # AES-GCM goes to the service through CryptographyClient.
        cc = crypto(k)
        gcm = EncryptionAlgorithm(f"A{bits}GCM")
        enc = cc.encrypt(gcm, b"gcm plaintext", additional_authenticated_data=b"aad")
        check(len(enc.iv) == 12 and len(enc.tag) == 16 and len(enc.ciphertext) == 13, "GCM result shape")
        dec = cc.decrypt(gcm, enc.ciphertext, iv=enc.iv, authentication_tag=enc.tag,
                         additional_authenticated_data=b"aad")
        check(dec.plaintext == b"gcm plaintext", f"A{bits}GCM round trip")
        try:
            cc.decrypt(gcm, enc.ciphertext, iv=enc.iv, authentication_tag=enc.tag,
                       additional_authenticated_data=b"other")
            check(False, "wrong aad must fail")
        except HttpResponseError as err:
            check(err.status_code == 400, "wrong aad refused")
        # Key wrap and CBC through raw requests (the SDK would use a random local key).
        path = f"/keys/{k.name}/{k.properties.version}"
        for alg, data in ((f"A{bits}KW", b"\x11" * 32), ("CKM_AES_KEY_WRAP", b"\x22" * 24),
                          ("CKM_AES_KEY_WRAP_PAD", b"\x33" * 20)):
            status, w = send("POST", f"{path}/wrapkey", {"alg": alg, "value": b64(data)})
            check(status == 200 and len(unb64(w["value"])) == (len(data) + 7) // 8 * 8 + 8, f"{alg} wrap {w}")
            status, u = send("POST", f"{path}/unwrapkey", {"alg": alg, "value": w["value"]})
            check(status == 200 and unb64(u["value"]) == data, f"{alg} unwrap")
        iv = os.urandom(16)
        status, c = send("POST", f"{path}/encrypt", {"alg": f"A{bits}CBCPAD", "value": b64(b"cbc!"), "iv": b64(iv)})
        check(status == 200 and len(unb64(c["value"])) == 16, f"CBCPAD encrypt {c}")
        status, p = send("POST", f"{path}/decrypt", {"alg": f"A{bits}CBCPAD", "value": c["value"], "iv": b64(iv)})
        check(status == 200 and unb64(p["value"]) == b"cbc!", "CBCPAD decrypt")

    # AES key wrap interop: import a known key and compare with `cryptography`'s RFC 3394/5649.
    from azure.keyvault.keys import JsonWebKey
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap, aes_key_wrap_with_padding

    kek = os.urandom(32)
    imported = client.import_key(f"{prefix}-imported", JsonWebKey(kty=KeyType.oct_hsm, k=kek,
                                                                  key_ops=["wrapKey", "unwrapKey", "encrypt", "decrypt"]))
    check(imported.key_type == KeyType.oct_hsm and imported.key.k is None, "imported oct-HSM")
    path = f"/keys/{imported.name}/{imported.properties.version}"
    data = os.urandom(32)
    status, w = send("POST", f"{path}/wrapkey", {"alg": "A256KW", "value": b64(data)})
    check(status == 200 and unb64(w["value"]) == aes_key_wrap(kek, data), "A256KW matches RFC 3394")
    status, w = send("POST", f"{path}/wrapkey", {"alg": "CKM_AES_KEY_WRAP_PAD", "value": b64(data[:20])})
    check(status == 200 and unb64(w["value"]) == aes_key_wrap_with_padding(kek, data[:20]), "KWP matches RFC 5649")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    enc = crypto(imported).encrypt(EncryptionAlgorithm.a256_gcm, b"interop", additional_authenticated_data=b"x")
    check(AESGCM(kek).decrypt(enc.iv, enc.ciphertext + enc.tag, b"x") == b"interop", "GCM matches cryptography")

    rnd = client.get_random_bytes(32)
    check(len(rnd) == 32 and rnd != client.get_random_bytes(32), "random bytes")


def main():
    start = time.time()
    if MODE == "vault":
        vault_mode()
    elif MODE == "managed-hsm":
        managed_hsm_mode()
    else:
        raise SystemExit(f"unknown mode {MODE}")
    print(f"azure_keyvault.py {MODE}: {CHECKS} checks passed in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
