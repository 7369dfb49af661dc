"""hsm-aws and boto3 on the same `hsm-emulator aws`: each opens what the other made.

Usage: aws_interop.py URL KEY AAD_B64 CIPHERTEXT_B64 EC_KEY SIGNATURE_B64

- CIPHERTEXT_B64 was made by hsm-aws under KEY (an alias) with AAD AAD_B64: boto3 decrypts
  it with the encryption context hsm-aws documents, {"hsm:aad": base64(aad)}.
- SIGNATURE_B64 is an hsm-aws ECDSA-SHA384 signature by EC_KEY over b"signed by hsm-aws":
  `cryptography` verifies it over GetPublicKey's SubjectPublicKeyInfo.
- boto3 then encrypts b"made by boto3" under KEY with the same context and prints
  "boto3-ciphertext: <base64>" for the Rust side to open through hsm-aws.
"""

import base64
import sys

import boto3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

url, key, aad_b64, ct_b64, ec_key, sig_b64 = sys.argv[1:7]
kms = boto3.client(
    "kms",
    endpoint_url=url,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
context = {"hsm:aad": aad_b64}

out = kms.decrypt(CiphertextBlob=base64.b64decode(ct_b64), EncryptionContext=context)
assert out["Plaintext"] == b"made by hsm-aws", out["Plaintext"]
assert out["KeyId"] == kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
print("ok: boto3 decrypted the hsm-aws ciphertext")

public = serialization.load_der_public_key(kms.get_public_key(KeyId=ec_key)["PublicKey"])
public.verify(base64.b64decode(sig_b64), b"signed by hsm-aws", ec.ECDSA(hashes.SHA384()))
print("ok: cryptography verified the hsm-aws signature over GetPublicKey")

blob = kms.encrypt(KeyId=key, Plaintext=b"made by boto3", EncryptionContext=context)["CiphertextBlob"]
print("boto3-ciphertext: " + base64.b64encode(blob).decode())
