"""Cryptography crossing clients: hsm-gcp and the official Python client on one emulator.

Usage: cross.py http://127.0.0.1:PORT KEY_NAME CIPHERTEXT_B64 AAD_B64 RSA_VERSION_NAME SIGNATURE_B64 EC_VERSION_NAME

KEY_NAME is an ENCRYPT_DECRYPT crypto key; CIPHERTEXT_B64 is what hsm-gcp encrypted under it
(Ciphertext::as_bytes) with AAD_B64, and must decrypt here to b"from hsm-gcp". SIGNATURE_B64
is an hsm-gcp ECDSA-P256 signature over b"signed by hsm-gcp", checked with `cryptography`
over the PEM of EC_VERSION_NAME. Prints two base64 lines for the Rust side: a Cloud KMS
ciphertext of b"from python" (same AAD), and an RSA-OAEP-SHA256 ciphertext of b"oaep from
python" made locally with `cryptography` from RSA_VERSION_NAME's PEM.
"""

import base64
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import kms


def main():
    url, key, ct_b64, aad_b64, rsa_version, sig_b64, ec_version = sys.argv[1:8]
    client = kms.KeyManagementServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=url),
    )
    aad = base64.b64decode(aad_b64)
    out = client.decrypt(request={"name": key, "ciphertext": base64.b64decode(ct_b64),
                                  "additional_authenticated_data": aad})
    assert out.plaintext == b"from hsm-gcp", out.plaintext

    pem = client.get_public_key(request={"name": ec_version}).pem
    pub = serialization.load_pem_public_key(pem.encode())
    pub.verify(base64.b64decode(sig_b64), b"signed by hsm-gcp", ec.ECDSA(hashes.SHA256()))

    enc = client.encrypt(request={"name": key, "plaintext": b"from python",
                                  "additional_authenticated_data": aad})
    print(base64.b64encode(enc.ciphertext).decode())

    pem = client.get_public_key(request={"name": rsa_version}).pem
    rsa = serialization.load_pem_public_key(pem.encode())
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    print(base64.b64encode(rsa.encrypt(b"oaep from python", oaep)).decode())


if __name__ == "__main__":
    main()
