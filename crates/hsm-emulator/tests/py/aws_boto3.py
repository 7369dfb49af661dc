"""boto3 (the official AWS SDK for Python) against `hsm-emulator aws`.

Usage: aws_boto3.py URL

Credentials testing/testing, region us-east-1 (the emulator's defaults). Every check
asserts something about the wire behaviour a real AWS KMS has; signatures and RSA-OAEP
ciphertexts are checked with the independent `cryptography` package over GetPublicKey.
Exits non-zero (with a traceback) on the first failed check.
"""

import base64
import hashlib
import sys

import boto3
import botocore.config
import botocore.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

URL = sys.argv[1]
REGION = "us-east-1"
CONFIG = botocore.config.Config(retries={"max_attempts": 1})


def client(secret="testing", key_id="testing", region=REGION):
    return boto3.client(
        "kms",
        endpoint_url=URL,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=CONFIG,
    )


kms = client()


def fails(code, fn, *args, **kwargs):
    """Calls fn and asserts it fails with the AWS error `code` and HTTP 400."""
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 400, f"{code} came with HTTP {status}"
        return e
    raise AssertionError(f"expected {code}, but the call succeeded")


def check(name):
    print(f"ok: {name}", flush=True)


# ---- authentication ----
fails("InvalidSignatureException", client(secret="wrong").list_keys)
fails("UnrecognizedClientException", client(key_id="AKIDUNKNOWN").list_keys)
fails("InvalidSignatureException", client(region="eu-west-1").list_keys)
check("SigV4: wrong secret, unknown key id and wrong region are refused")

# ---- create, describe, aliases, tags ----
meta = kms.create_key(
    Description="boto3 fidelity",
    Tags=[{"TagKey": "team", "TagValue": "blue"}, {"TagKey": "env", "TagValue": "test"}],
)["KeyMetadata"]
key_id, arn = meta["KeyId"], meta["Arn"]
assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyUsage"] == "ENCRYPT_DECRYPT", meta
assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True, meta
assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"], meta
assert arn == f"arn:aws:kms:{REGION}:{meta['AWSAccountId']}:key/{key_id}", arn
assert meta["CreationDate"].year >= 2024, meta["CreationDate"]
kms.create_alias(AliasName="alias/boto3-sym", TargetKeyId=key_id)
alias_arn = f"arn:aws:kms:{REGION}:{meta['AWSAccountId']}:alias/boto3-sym"
for ref in (key_id, arn, "alias/boto3-sym", alias_arn):
    assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == key_id, ref
fails("NotFoundException", kms.describe_key, KeyId="alias/no-such-alias")
fails("NotFoundException", kms.describe_key, KeyId="00000000-0000-4000-8000-000000000000")
fails("AlreadyExistsException", kms.create_alias, AliasName="alias/boto3-sym", TargetKeyId=key_id)
fails("InvalidAliasNameException", kms.create_alias, AliasName="alias/aws/mine", TargetKeyId=key_id)
check("CreateKey / DescribeKey by id, ARN, alias and alias ARN / CreateAlias errors")

tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
assert tags == {"team": "blue", "env": "test"}, tags
kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "red"}])
kms.untag_resource(KeyId=key_id, TagKeys=["env"])
tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
assert tags == {"team": "red"}, tags
fails("TagException", kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "aws:x", "TagValue": "y"}])
kms.update_key_description(KeyId=key_id, Description="changed")
assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "changed"
check("tags and description")

# ---- symmetric encryption with context ----
ctx = {"purpose": "test", "a": "1"}
enc = kms.encrypt(KeyId="alias/boto3-sym", Plaintext=b"attack at dawn", EncryptionContext=ctx)
assert enc["KeyId"] == arn and enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", enc
blob = enc["CiphertextBlob"]
dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "1", "purpose": "test"})
assert dec["Plaintext"] == b"attack at dawn" and dec["KeyId"] == arn, dec
assert kms.decrypt(CiphertextBlob=blob, KeyId=key_id, EncryptionContext=ctx)["Plaintext"] == b"attack at dawn"
fails("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob)
fails("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob, EncryptionContext={"purpose": "other", "a": "1"})
tampered = bytearray(blob)
tampered[-1] ^= 1
fails("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(tampered), EncryptionContext=ctx)
other = kms.create_key()["KeyMetadata"]["KeyId"]
fails("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=other, EncryptionContext=ctx)
fails("ValidationException", kms.encrypt, KeyId=key_id, Plaintext=b"x" * 4097)
re = kms.re_encrypt(
    CiphertextBlob=blob, SourceEncryptionContext=ctx, DestinationKeyId=other, DestinationEncryptionContext={"b": "2"}
)
assert re["SourceKeyId"] == arn, re
assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext={"b": "2"})["Plaintext"] == b"attack at dawn"
dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=ctx)
assert len(dk["Plaintext"]) == 32
assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
dk = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=24)
assert "Plaintext" not in dk and len(kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"]) == 24
fails("ValidationException", kms.generate_data_key, KeyId=key_id)
r1, r2 = kms.generate_random(NumberOfBytes=64)["Plaintext"], kms.generate_random(NumberOfBytes=64)["Plaintext"]
assert len(r1) == 64 and r1 != r2
check("Encrypt/Decrypt with context, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom")

# ---- rotation ----
before = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
kms.rotate_key_on_demand(KeyId=key_id)
after = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
assert before != after
assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"attack at dawn"
new = kms.encrypt(KeyId=key_id, Plaintext=b"new")
assert kms.decrypt(CiphertextBlob=new["CiphertextBlob"])["KeyMaterialId"] == after
rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"], rotations
assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
status = kms.get_key_rotation_status(KeyId=key_id)
assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180, status
check("RotateKeyOnDemand keeps old ciphertexts decrypting; rotation status")

# ---- RSA encryption: local RSA-OAEP over GetPublicKey, decrypted by KMS ----
rsa_meta = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
assert rsa_meta["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"], rsa_meta
pub = kms.get_public_key(KeyId=rsa_meta["KeyId"])
assert pub["KeySpec"] == "RSA_2048" and pub["KeyUsage"] == "ENCRYPT_DECRYPT", pub
public_key = serialization.load_der_public_key(pub["PublicKey"])
for alg, h in (("RSAES_OAEP_SHA_256", hashes.SHA256()), ("RSAES_OAEP_SHA_1", hashes.SHA1())):
    ct = public_key.encrypt(b"rsa secret", padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
    out = kms.decrypt(CiphertextBlob=ct, KeyId=rsa_meta["KeyId"], EncryptionAlgorithm=alg)
    assert out["Plaintext"] == b"rsa secret" and out["EncryptionAlgorithm"] == alg, out
fails("InvalidKeyUsageException", kms.encrypt, KeyId=rsa_meta["KeyId"], Plaintext=b"x")
fails("ValidationException", kms.encrypt, KeyId=rsa_meta["KeyId"], Plaintext=b"x" * 191, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
fails("UnsupportedOperationException", kms.get_public_key, KeyId=key_id)
fails("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=rsa_meta["KeyId"])
check("RSA-OAEP SHA-1/SHA-256 made by `cryptography` decrypts through KMS")

# ---- signing: RAW and DIGEST, checked with `cryptography` ----
message = b"the quick brown fox"
HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
PY_HASH = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
rsa_sign = kms.create_key(KeySpec="RSA_3072", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
rsa_pub = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa_sign["KeyId"])["PublicKey"])
for alg in rsa_sign["SigningAlgorithms"]:
    bits = alg[-3:]
    h = HASHES[bits]
    pad = (
        padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.DIGEST_LENGTH)
        if "PSS" in alg
        else padding.PKCS1v15()
    )
    for mtype, msg in (("RAW", message), ("DIGEST", PY_HASH[bits](message).digest())):
        sig = kms.sign(KeyId=rsa_sign["KeyId"], Message=msg, MessageType=mtype, SigningAlgorithm=alg)["Signature"]
        # Both kinds are signatures over `message`: DIGEST is not hashed again.
        rsa_pub.verify(sig, message, pad, h)
        ok = kms.verify(KeyId=rsa_sign["KeyId"], Message=message, Signature=sig, SigningAlgorithm=alg)
        assert ok["SignatureValid"] is True
    fails(
        "KMSInvalidSignatureException",
        kms.verify,
        KeyId=rsa_sign["KeyId"],
        Message=b"another message",
        Signature=sig,
        SigningAlgorithm=alg,
    )
# PSS salt is the digest length: verification with another salt length fails.
sig = kms.sign(KeyId=rsa_sign["KeyId"], Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
try:
    rsa_pub.verify(sig, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256())
    raise AssertionError("a PSS signature verified with a 20-byte salt")
except InvalidSignature:
    pass

for spec, alg, bits in (
    ("ECC_NIST_P256", "ECDSA_SHA_256", "256"),
    ("ECC_NIST_P384", "ECDSA_SHA_384", "384"),
    ("ECC_NIST_P521", "ECDSA_SHA_512", "512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256", "256"),
):
    m = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert m["SigningAlgorithms"] == [alg], m
    pub = kms.get_public_key(KeyId=m["KeyId"])
    assert pub["SigningAlgorithms"] == [alg] and pub["KeySpec"] == spec, pub
    ec_pub = serialization.load_der_public_key(pub["PublicKey"])
    raw = kms.sign(KeyId=m["KeyId"], Message=message, SigningAlgorithm=alg)["Signature"]
    ec_pub.verify(raw, message, ec.ECDSA(HASHES[bits]))  # DER-encoded ECDSA
    d = PY_HASH[bits](message).digest()
    dig = kms.sign(KeyId=m["KeyId"], Message=d, MessageType="DIGEST", SigningAlgorithm=alg)["Signature"]
    ec_pub.verify(dig, d, ec.ECDSA(utils.Prehashed(HASHES[bits])))
    fails("ValidationException", kms.sign, KeyId=m["KeyId"], Message=d[:-1], MessageType="DIGEST", SigningAlgorithm=alg)
    fails("InvalidKeyUsageException", kms.sign, KeyId=m["KeyId"], Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")
fails("InvalidKeyUsageException", kms.sign, KeyId=key_id, Message=message, SigningAlgorithm="ECDSA_SHA_256")
check("Sign RAW and DIGEST (RSA PKCS#1/PSS, ECDSA P-256/384/521/secp256k1) verify with `cryptography`")

# ---- HMAC ----
h = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
assert h["MacAlgorithms"] == ["HMAC_SHA_256"], h
mac = kms.generate_mac(KeyId=h["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
assert len(mac) == 32
assert kms.verify_mac(KeyId=h["KeyId"], Message=message, Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"] is True
fails("KMSInvalidMacException", kms.verify_mac, KeyId=h["KeyId"], Message=b"other", Mac=mac, MacAlgorithm="HMAC_SHA_256")
fails("InvalidKeyUsageException", kms.generate_mac, KeyId=h["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_512")
check("GenerateMac / VerifyMac")

# ---- key states ----
kms.disable_key(KeyId=key_id)
assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
fails("DisabledException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
fails("DisabledException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
kms.enable_key(KeyId=key_id)
sched = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
assert sched["KeyState"] == "PendingDeletion" and sched["PendingWindowInDays"] == 7, sched
m = kms.describe_key(KeyId=key_id)["KeyMetadata"]
assert m["KeyState"] == "PendingDeletion" and m["Enabled"] is False and "DeletionDate" in m, m
fails("KMSInvalidStateException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
fails("KMSInvalidStateException", kms.enable_key, KeyId=key_id)
fails("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=key_id)
kms.cancel_key_deletion(KeyId=key_id)
assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
fails("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=key_id)
fails("ValidationException", kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=6)
kms.enable_key(KeyId=key_id)
assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"attack at dawn"
check("Disable/Enable, ScheduleKeyDeletion/CancelKeyDeletion (-> Disabled) with AWS's state errors")

# ---- pagination (boto3's own paginators follow NextMarker) ----
for i in range(5):
    kms.create_alias(AliasName=f"alias/boto3-page-{i}", TargetKeyId=other)
page = kms.list_aliases(Limit=2)
assert len(page["Aliases"]) == 2 and page["Truncated"] is True and "NextMarker" in page, page
names = [
    a["AliasName"] for p in kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 2}) for a in p["Aliases"]
]
assert names == sorted(set(names)) and len(names) == 6, names
filtered = kms.list_aliases(KeyId=other)["Aliases"]
assert sorted(a["AliasName"] for a in filtered) == [f"alias/boto3-page-{i}" for i in range(5)], filtered
keys = [k["KeyId"] for p in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 3}) for k in p["Keys"]]
assert len(keys) == len(set(keys)) and key_id in keys and other in keys, keys
fails("InvalidMarkerException", kms.list_keys, Marker="not-a-marker")
kms.update_alias(AliasName="alias/boto3-page-0", TargetKeyId=key_id)
assert kms.describe_key(KeyId="alias/boto3-page-0")["KeyMetadata"]["KeyId"] == key_id
kms.delete_alias(AliasName="alias/boto3-page-0")
fails("NotFoundException", kms.delete_alias, AliasName="alias/boto3-page-0")
check("ListAliases / ListKeys pagination, KeyId filter, UpdateAlias, DeleteAlias")

print("all boto3 checks passed")
