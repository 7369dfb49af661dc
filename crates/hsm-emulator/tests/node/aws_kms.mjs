// @aws-sdk/client-kms (the official AWS SDK for JavaScript v3) against `hsm-emulator aws`.
//
// Usage: HSM_NODE_MODULES=DIR node aws_kms.mjs URL
//
// Credentials testing/testing, region us-east-1 (the emulator's defaults). Mirrors
// tests/py/aws_boto3.py with a second official client: SigV4 refusals, key lifecycle, aliases
// and tags, encryption with context, data keys, rotation, RSA-OAEP made by node:crypto over
// GetPublicKey, RAW and DIGEST signatures verified by node:crypto, HMAC, key-state errors and
// the SDK's own paginators. Exits non-zero on the first failed check.

import { createRequire } from "node:module";
import { join } from "node:path";
import crypto from "node:crypto";
import assert from "node:assert/strict";

const require = createRequire(join(process.env.HSM_NODE_MODULES ?? ".", "noop.js"));
const sdk = require("@aws-sdk/client-kms");
const {
  KMSClient, CreateKeyCommand, DescribeKeyCommand, CreateAliasCommand, ListResourceTagsCommand,
  TagResourceCommand, UntagResourceCommand, UpdateKeyDescriptionCommand, EncryptCommand,
  DecryptCommand, ReEncryptCommand, GenerateDataKeyCommand, GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand, RotateKeyOnDemandCommand, ListKeyRotationsCommand, GetKeyRotationStatusCommand,
  EnableKeyRotationCommand, GetPublicKeyCommand, SignCommand, VerifyCommand, GenerateMacCommand,
  VerifyMacCommand, DisableKeyCommand, EnableKeyCommand, ScheduleKeyDeletionCommand,
  CancelKeyDeletionCommand, ListAliasesCommand, ListKeysCommand, UpdateAliasCommand, DeleteAliasCommand,
  paginateListAliases, paginateListKeys,
} = sdk;

const URL = process.argv[2];
const REGION = "us-east-1";
let checks = 0;

function client({ secret = "testing", keyId = "testing", region = REGION } = {}) {
  return new KMSClient({
    endpoint: URL,
    region,
    credentials: { accessKeyId: keyId, secretAccessKey: secret },
    maxAttempts: 1,
  });
}

const kms = client();
const send = (cmd, c = kms) => c.send(cmd);

/** The call must fail with AWS error `code` and HTTP 400. */
async function fails(code, promise) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.name, code, `expected ${code}, got ${e.name}: ${e.message}`);
    assert.equal(e.$metadata?.httpStatusCode, 400, `${code} came with HTTP ${e.$metadata?.httpStatusCode}`);
    checks++;
    return e;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}

function ok(name) {
  console.log(`ok: ${name}`);
}

const te = new TextEncoder();
const bytes = (s) => te.encode(s);
const eq = (a, b) => Buffer.from(a).equals(Buffer.from(b));

// ---- authentication ----
await fails("InvalidSignatureException", send(new ListKeysCommand({}), client({ secret: "wrong" })));
await fails("UnrecognizedClientException", send(new ListKeysCommand({}), client({ keyId: "AKIDUNKNOWN" })));
await fails("InvalidSignatureException", send(new ListKeysCommand({}), client({ region: "eu-west-1" })));
ok("SigV4: wrong secret, unknown key id and wrong region are refused");

// ---- create, describe, aliases, tags ----
const meta = (
  await send(
    new CreateKeyCommand({
      Description: "node fidelity",
      Tags: [{ TagKey: "team", TagValue: "blue" }, { TagKey: "env", TagValue: "test" }],
    }),
  )
).KeyMetadata;
const keyId = meta.KeyId;
const arn = meta.Arn;
assert.equal(meta.KeySpec, "SYMMETRIC_DEFAULT");
assert.equal(meta.KeyUsage, "ENCRYPT_DECRYPT");
assert.equal(meta.KeyState, "Enabled");
assert.equal(meta.Enabled, true);
assert.deepEqual(meta.EncryptionAlgorithms, ["SYMMETRIC_DEFAULT"]);
assert.equal(arn, `arn:aws:kms:${REGION}:${meta.AWSAccountId}:key/${keyId}`);
assert.ok(meta.CreationDate instanceof Date && meta.CreationDate.getUTCFullYear() >= 2024, `${meta.CreationDate}`);
await send(new CreateAliasCommand({ AliasName: "alias/node-sym", TargetKeyId: keyId }));
const aliasArn = `arn:aws:kms:${REGION}:${meta.AWSAccountId}:alias/node-sym`;
for (const ref of [keyId, arn, "alias/node-sym", aliasArn]) {
  assert.equal((await send(new DescribeKeyCommand({ KeyId: ref }))).KeyMetadata.KeyId, keyId, ref);
}
await fails("NotFoundException", send(new DescribeKeyCommand({ KeyId: "alias/no-such-alias" })));
await fails("NotFoundException", send(new DescribeKeyCommand({ KeyId: "00000000-0000-4000-8000-000000000000" })));
await fails("AlreadyExistsException", send(new CreateAliasCommand({ AliasName: "alias/node-sym", TargetKeyId: keyId })));
await fails("InvalidAliasNameException", send(new CreateAliasCommand({ AliasName: "alias/aws/mine", TargetKeyId: keyId })));
ok("CreateKey / DescribeKey by id, ARN, alias and alias ARN / CreateAlias errors");

const tagMap = async (id) =>
  Object.fromEntries((await send(new ListResourceTagsCommand({ KeyId: id }))).Tags.map((t) => [t.TagKey, t.TagValue]));
assert.deepEqual(await tagMap(keyId), { team: "blue", env: "test" });
await send(new TagResourceCommand({ KeyId: keyId, Tags: [{ TagKey: "team", TagValue: "red" }] }));
await send(new UntagResourceCommand({ KeyId: keyId, TagKeys: ["env"] }));
assert.deepEqual(await tagMap(keyId), { team: "red" });
await fails("TagException", send(new TagResourceCommand({ KeyId: keyId, Tags: [{ TagKey: "aws:x", TagValue: "y" }] })));
await send(new UpdateKeyDescriptionCommand({ KeyId: keyId, Description: "changed" }));
assert.equal((await send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata.Description, "changed");
ok("tags and description");

// ---- symmetric encryption with context ----
const ctx = { purpose: "test", a: "1" };
const enc = await send(new EncryptCommand({ KeyId: "alias/node-sym", Plaintext: bytes("attack at dawn"), EncryptionContext: ctx }));
assert.equal(enc.KeyId, arn);
assert.equal(enc.EncryptionAlgorithm, "SYMMETRIC_DEFAULT");
const blob = enc.CiphertextBlob;
const dec = await send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { a: "1", purpose: "test" } }));
assert.ok(eq(dec.Plaintext, bytes("attack at dawn")));
assert.equal(dec.KeyId, arn);
assert.ok(eq((await send(new DecryptCommand({ CiphertextBlob: blob, KeyId: keyId, EncryptionContext: ctx }))).Plaintext, bytes("attack at dawn")));
await fails("InvalidCiphertextException", send(new DecryptCommand({ CiphertextBlob: blob })));
await fails("InvalidCiphertextException", send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { purpose: "other", a: "1" } })));
const tampered = Uint8Array.from(blob);
tampered[tampered.length - 1] ^= 1;
await fails("InvalidCiphertextException", send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: ctx })));
const other = (await send(new CreateKeyCommand({}))).KeyMetadata.KeyId;
await fails("IncorrectKeyException", send(new DecryptCommand({ CiphertextBlob: blob, KeyId: other, EncryptionContext: ctx })));
await fails("ValidationException", send(new EncryptCommand({ KeyId: keyId, Plaintext: new Uint8Array(4097) })));
const re = await send(
  new ReEncryptCommand({ CiphertextBlob: blob, SourceEncryptionContext: ctx, DestinationKeyId: other, DestinationEncryptionContext: { b: "2" } }),
);
assert.equal(re.SourceKeyId, arn);
assert.ok(eq((await send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { b: "2" } }))).Plaintext, bytes("attack at dawn")));
let dk = await send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_256", EncryptionContext: ctx }));
assert.equal(dk.Plaintext.length, 32);
assert.ok(eq((await send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctx }))).Plaintext, dk.Plaintext));
dk = await send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, NumberOfBytes: 24 }));
assert.equal(dk.Plaintext, undefined);
assert.equal((await send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob }))).Plaintext.length, 24);
await fails("ValidationException", send(new GenerateDataKeyCommand({ KeyId: keyId })));
const r1 = (await send(new GenerateRandomCommand({ NumberOfBytes: 64 }))).Plaintext;
const r2 = (await send(new GenerateRandomCommand({ NumberOfBytes: 64 }))).Plaintext;
assert.ok(r1.length === 64 && !eq(r1, r2));
ok("Encrypt/Decrypt with context, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom");

// ---- rotation ----
const before = (await send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata.CurrentKeyMaterialId;
await send(new RotateKeyOnDemandCommand({ KeyId: keyId }));
const after = (await send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata.CurrentKeyMaterialId;
assert.ok(before && after && before !== after, `${before} -> ${after}`);
assert.ok(eq((await send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx }))).Plaintext, bytes("attack at dawn")));
const fresh = await send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes("new") }));
assert.equal((await send(new DecryptCommand({ CiphertextBlob: fresh.CiphertextBlob }))).KeyMaterialId, after);
const rotations = (await send(new ListKeyRotationsCommand({ KeyId: keyId }))).Rotations;
assert.deepEqual(rotations.map((r) => r.RotationType), ["ON_DEMAND"]);
assert.equal((await send(new GetKeyRotationStatusCommand({ KeyId: keyId }))).KeyRotationEnabled, false);
await send(new EnableKeyRotationCommand({ KeyId: keyId, RotationPeriodInDays: 180 }));
const status = await send(new GetKeyRotationStatusCommand({ KeyId: keyId }));
assert.equal(status.KeyRotationEnabled, true);
assert.equal(status.RotationPeriodInDays, 180);
ok("RotateKeyOnDemand keeps old ciphertexts decrypting; rotation status");

// ---- RSA encryption: RSA-OAEP made by node:crypto over GetPublicKey, decrypted by KMS ----
const spki = (der) => crypto.createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
const rsaMeta = (await send(new CreateKeyCommand({ KeySpec: "RSA_2048", KeyUsage: "ENCRYPT_DECRYPT" }))).KeyMetadata;
assert.deepEqual(rsaMeta.EncryptionAlgorithms, ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]);
const rsaPub = await send(new GetPublicKeyCommand({ KeyId: rsaMeta.KeyId }));
assert.equal(rsaPub.KeySpec, "RSA_2048");
assert.equal(rsaPub.KeyUsage, "ENCRYPT_DECRYPT");
for (const [alg, hash] of [["RSAES_OAEP_SHA_256", "sha256"], ["RSAES_OAEP_SHA_1", "sha1"]]) {
  const ct = crypto.publicEncrypt(
    { key: spki(rsaPub.PublicKey), padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
    Buffer.from("rsa secret"),
  );
  const out = await send(new DecryptCommand({ CiphertextBlob: ct, KeyId: rsaMeta.KeyId, EncryptionAlgorithm: alg }));
  assert.ok(eq(out.Plaintext, bytes("rsa secret")));
  assert.equal(out.EncryptionAlgorithm, alg);
}
await fails("InvalidKeyUsageException", send(new EncryptCommand({ KeyId: rsaMeta.KeyId, Plaintext: bytes("x") })));
await fails(
  "ValidationException",
  send(new EncryptCommand({ KeyId: rsaMeta.KeyId, Plaintext: new Uint8Array(191), EncryptionAlgorithm: "RSAES_OAEP_SHA_256" })),
);
await fails("UnsupportedOperationException", send(new GetPublicKeyCommand({ KeyId: keyId })));
await fails("UnsupportedOperationException", send(new RotateKeyOnDemandCommand({ KeyId: rsaMeta.KeyId })));
ok("RSA-OAEP SHA-1/SHA-256 made by node:crypto decrypts through KMS");

// ---- signing: RAW and DIGEST, checked with node:crypto ----
const message = Buffer.from("the quick brown fox");
const sha = (bits, data) => crypto.createHash(`sha${bits}`).update(data).digest();
const rsaSign = (await send(new CreateKeyCommand({ KeySpec: "RSA_3072", KeyUsage: "SIGN_VERIFY" }))).KeyMetadata;
const rsaSignPub = spki((await send(new GetPublicKeyCommand({ KeyId: rsaSign.KeyId }))).PublicKey);
let lastSig;
for (const alg of rsaSign.SigningAlgorithms) {
  const bits = alg.slice(-3);
  const pss = alg.includes("PSS");
  const key = pss
    ? { key: rsaSignPub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }
    : { key: rsaSignPub, padding: crypto.constants.RSA_PKCS1_PADDING };
  for (const [type, msg] of [["RAW", message], ["DIGEST", sha(bits, message)]]) {
    const sig = (await send(new SignCommand({ KeyId: rsaSign.KeyId, Message: msg, MessageType: type, SigningAlgorithm: alg }))).Signature;
    // Both kinds are signatures over `message`: DIGEST is not hashed again.
    assert.ok(crypto.verify(`sha${bits}`, message, key, Buffer.from(sig)), `${alg} ${type} verifies`);
    const v = await send(new VerifyCommand({ KeyId: rsaSign.KeyId, Message: message, Signature: sig, SigningAlgorithm: alg }));
    assert.equal(v.SignatureValid, true);
    checks++;
    lastSig = sig;
  }
  await fails(
    "KMSInvalidSignatureException",
    send(new VerifyCommand({ KeyId: rsaSign.KeyId, Message: bytes("another message"), Signature: lastSig, SigningAlgorithm: alg })),
  );
}
// PSS salt is the digest length: verification with a 20-byte salt fails.
const pssSig = (await send(new SignCommand({ KeyId: rsaSign.KeyId, Message: message, SigningAlgorithm: "RSASSA_PSS_SHA_256" }))).Signature;
assert.equal(
  crypto.verify("sha256", message, { key: rsaSignPub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 }, Buffer.from(pssSig)),
  false,
);
for (const [spec, alg, bits] of [
  ["ECC_NIST_P256", "ECDSA_SHA_256", "256"],
  ["ECC_NIST_P384", "ECDSA_SHA_384", "384"],
  ["ECC_NIST_P521", "ECDSA_SHA_512", "512"],
  ["ECC_SECG_P256K1", "ECDSA_SHA_256", "256"],
]) {
  const m = (await send(new CreateKeyCommand({ KeySpec: spec, KeyUsage: "SIGN_VERIFY" }))).KeyMetadata;
  assert.deepEqual(m.SigningAlgorithms, [alg]);
  const pub = await send(new GetPublicKeyCommand({ KeyId: m.KeyId }));
  assert.deepEqual(pub.SigningAlgorithms, [alg]);
  assert.equal(pub.KeySpec, spec);
  const ecPub = spki(pub.PublicKey);
  const raw = (await send(new SignCommand({ KeyId: m.KeyId, Message: message, SigningAlgorithm: alg }))).Signature;
  assert.ok(crypto.verify(`sha${bits}`, message, ecPub, Buffer.from(raw)), `${spec} RAW (DER ECDSA) verifies`);
  const d = sha(bits, message);
  const dig = (await send(new SignCommand({ KeyId: m.KeyId, Message: d, MessageType: "DIGEST", SigningAlgorithm: alg }))).Signature;
  // DIGEST signs the digest as given: it verifies over the original message.
  assert.ok(crypto.verify(`sha${bits}`, message, ecPub, Buffer.from(dig)), `${spec} DIGEST verifies`);
  checks += 2;
  await fails("ValidationException", send(new SignCommand({ KeyId: m.KeyId, Message: d.subarray(1), MessageType: "DIGEST", SigningAlgorithm: alg })));
  await fails("InvalidKeyUsageException", send(new SignCommand({ KeyId: m.KeyId, Message: message, SigningAlgorithm: "RSASSA_PSS_SHA_256" })));
}
await fails("InvalidKeyUsageException", send(new SignCommand({ KeyId: keyId, Message: message, SigningAlgorithm: "ECDSA_SHA_256" })));
ok("Sign RAW and DIGEST (RSA PKCS#1/PSS, ECDSA P-256/384/521/secp256k1) verify with node:crypto");

// ---- HMAC ----
const h = (await send(new CreateKeyCommand({ KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC" }))).KeyMetadata;
assert.deepEqual(h.MacAlgorithms, ["HMAC_SHA_256"]);
const mac = (await send(new GenerateMacCommand({ KeyId: h.KeyId, Message: message, MacAlgorithm: "HMAC_SHA_256" }))).Mac;
assert.equal(mac.length, 32);
assert.equal((await send(new VerifyMacCommand({ KeyId: h.KeyId, Message: message, Mac: mac, MacAlgorithm: "HMAC_SHA_256" }))).MacValid, true);
await fails("KMSInvalidMacException", send(new VerifyMacCommand({ KeyId: h.KeyId, Message: bytes("other"), Mac: mac, MacAlgorithm: "HMAC_SHA_256" })));
await fails("InvalidKeyUsageException", send(new GenerateMacCommand({ KeyId: h.KeyId, Message: message, MacAlgorithm: "HMAC_SHA_512" })));
ok("GenerateMac / VerifyMac");

// ---- key states ----
const state = async (id) => (await send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata;
await send(new DisableKeyCommand({ KeyId: keyId }));
assert.equal((await state(keyId)).KeyState, "Disabled");
await fails("DisabledException", send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes("x") })));
await fails("DisabledException", send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })));
await send(new EnableKeyCommand({ KeyId: keyId }));
const sched = await send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
assert.equal(sched.KeyState, "PendingDeletion");
assert.equal(sched.PendingWindowInDays, 7);
const pending = await state(keyId);
assert.equal(pending.KeyState, "PendingDeletion");
assert.equal(pending.Enabled, false);
assert.ok(pending.DeletionDate instanceof Date);
await fails("KMSInvalidStateException", send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes("x") })));
await fails("KMSInvalidStateException", send(new EnableKeyCommand({ KeyId: keyId })));
await fails("KMSInvalidStateException", send(new ScheduleKeyDeletionCommand({ KeyId: keyId })));
await send(new CancelKeyDeletionCommand({ KeyId: keyId }));
assert.equal((await state(keyId)).KeyState, "Disabled");
await fails("KMSInvalidStateException", send(new CancelKeyDeletionCommand({ KeyId: keyId })));
await fails("ValidationException", send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 6 })));
await send(new EnableKeyCommand({ KeyId: keyId }));
assert.ok(eq((await send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx }))).Plaintext, bytes("attack at dawn")));
ok("Disable/Enable, ScheduleKeyDeletion/CancelKeyDeletion (-> Disabled) with AWS's state errors");

// ---- pagination (the SDK's paginators follow NextMarker) ----
for (let i = 0; i < 5; i++) {
  await send(new CreateAliasCommand({ AliasName: `alias/node-page-${i}`, TargetKeyId: other }));
}
const page = await send(new ListAliasesCommand({ Limit: 2 }));
assert.equal(page.Aliases.length, 2);
assert.equal(page.Truncated, true);
assert.ok(page.NextMarker);
const names = [];
let pages = 0;
for await (const p of paginateListAliases({ client: kms, pageSize: 2 }, {})) {
  pages++;
  names.push(...p.Aliases.map((a) => a.AliasName));
}
assert.equal(names.length, 6, `${names}`);
assert.deepEqual(names, [...new Set(names)].sort());
assert.equal(pages, 3);
const filtered = (await send(new ListAliasesCommand({ KeyId: other }))).Aliases.map((a) => a.AliasName).sort();
assert.deepEqual(filtered, [0, 1, 2, 3, 4].map((i) => `alias/node-page-${i}`));
const keys = [];
for await (const p of paginateListKeys({ client: kms, pageSize: 3 }, {})) keys.push(...p.Keys.map((k) => k.KeyId));
assert.equal(keys.length, new Set(keys).size);
assert.ok(keys.includes(keyId) && keys.includes(other));
await fails("InvalidMarkerException", send(new ListKeysCommand({ Marker: "not-a-marker" })));
await send(new UpdateAliasCommand({ AliasName: "alias/node-page-0", TargetKeyId: keyId }));
assert.equal((await state("alias/node-page-0")).KeyId, keyId);
await send(new DeleteAliasCommand({ AliasName: "alias/node-page-0" }));
await fails("NotFoundException", send(new DeleteAliasCommand({ AliasName: "alias/node-page-0" })));
ok("ListAliases / ListKeys pagination, KeyId filter, UpdateAlias, DeleteAlias");

console.log(`aws_kms.mjs: all checks passed (${checks} error and verification checks)`);
