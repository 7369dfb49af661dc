"""Cryptography crosses clients: what hsm-azure made, the official Python SDK opens, and back.

Usage: cross_client.py URL CA_PEM_FILE IN_JSON

Run by crates/hsm-azure/tests/it/python.rs against an in-process `hsm-emulator azure`.
IN_JSON (written by the Rust test) holds what hsm-azure produced:
  rsa: {name, version, ciphertext (hex, RSA-OAEP-256), plaintext}
  ec:  {name, version, der (hex, ES256 over message), raw (hex), message}
  aes: {name, version, ciphertext (hex, iv||value||tag), aad, plaintext}   (Managed HSM only)
Every check is an assertion. On success the last stdout line is JSON with what Python made
for hsm-azure to open: rsa ciphertext (RSA-OAEP-256), ES256 raw signature over a message,
and (Managed HSM) an A256GCM iv||value||tag.
"""

import base64
import hashlib
import json
import sys
import time

from azure.core.credentials import AccessToken
from azure.core.rest import HttpRequest
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm, SignatureAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

URL, CA, IN = sys.argv[1], sys.argv[2], sys.argv[3]
CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(what)
    CHECKS += 1


class FixedToken:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("python-cross-client", int(time.time()) + 3600)


CRED = FixedToken()
KW = {"verify_challenge_resource": False, "connection_verify": CA}
client = KeyClient(URL, CRED, **KW)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def send(path, body):
    resp = client.send_request(HttpRequest("POST", f"{URL}{path}?api-version=7.6", json=body))
    check(resp.status_code == 200, f"POST {path} answered {resp.status_code}: {resp.text()}")
    return resp.json()


with open(IN) as f:
    made = json.load(f)
out = {}

# RSA: hsm-azure's ciphertext (as_bytes) is what Key Vault decrypts, with the recorded version.
rsa = made["rsa"]
key = client.get_key(rsa["name"], rsa["version"])
check(key.properties.version == rsa["version"], "the recorded version is a Key Vault version")
cc = CryptographyClient(key, CRED, **KW)
pt = cc.decrypt(EncryptionAlgorithm.rsa_oaep_256, bytes.fromhex(rsa["ciphertext"])).plaintext
check(pt == rsa["plaintext"].encode(), f"Python decrypted hsm-azure's RSA ciphertext to {pt!r}")
# And back: the SDK encrypts (locally, with the public key) for hsm-azure to decrypt.
ct = cc.encrypt(EncryptionAlgorithm.rsa_oaep_256, b"from python").ciphertext
out["rsa"] = {"version": key.properties.version, "ciphertext": ct.hex(), "plaintext": "from python"}

# EC: hsm-azure's DER signature verifies with `cryptography` over the JWK, its raw form with
# the SDK (which speaks raw r||s).
e = made["ec"]
key = client.get_key(e["name"], e["version"])
cc = CryptographyClient(key, CRED, **KW)
digest = hashlib.sha256(e["message"].encode()).digest()
res = cc.verify(SignatureAlgorithm.es256, digest, bytes.fromhex(e["raw"]))
check(res.is_valid, "the SDK verifies hsm-azure's raw ES256 signature")
pub = ec.EllipticCurvePublicNumbers(
    int.from_bytes(key.key.x, "big"), int.from_bytes(key.key.y, "big"), ec.SECP256R1()
).public_key()
pub.verify(bytes.fromhex(e["der"]), e["message"].encode(), ec.ECDSA(hashes.SHA256()))
check(True, "cryptography verifies hsm-azure's DER ES256 signature")
sig = cc.sign(SignatureAlgorithm.es256, hashlib.sha256(b"signed in python").digest()).signature
check(len(sig) == 64, f"Key Vault ES256 signatures are raw r||s, 64 bytes, not {len(sig)}")
out["ec"] = {"version": key.properties.version, "raw": sig.hex(), "message": "signed in python"}

# AES-GCM (Managed HSM): iv||value||tag as hsm-azure lays it out; through send_request, as
# CryptographyClient would use a local key for oct keys.
if "aes" in made:
    a = made["aes"]
    blob = bytes.fromhex(a["ciphertext"])
    iv, value, tag = blob[:12], blob[12:-16], blob[-16:]
    body = {"alg": "A256GCM", "value": b64(value), "iv": b64(iv), "tag": b64(tag), "aad": b64(a["aad"].encode())}
    got = unb64(send(f"/keys/{a['name']}/{a['version']}/decrypt", body)["value"])
    check(got == a["plaintext"].encode(), f"Key Vault decrypted hsm-azure's AES-GCM ciphertext to {got!r}")
    enc = send(f"/keys/{a['name']}/{a['version']}/encrypt",
               {"alg": "A256GCM", "value": b64(b"gcm from python"), "aad": b64(b"py-aad")})
    joined = unb64(enc["iv"]) + unb64(enc["value"]) + unb64(enc["tag"])
    out["aes"] = {"version": a["version"], "ciphertext": joined.hex(), "aad": "py-aad",
                  "plaintext": "gcm from python"}

print(f"{CHECKS} checks passed", file=sys.stderr)
print(json.dumps(out))
