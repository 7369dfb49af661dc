// Fidelity of `hsm-emulator gcp` as seen by the official Node.js client (@google-cloud/kms).
//
// Usage: HSM_NODE_MODULES=DIR node gcp_kms.mjs http://127.0.0.1:PORT
//
// Runs KeyManagementServiceClient over its REST fallback (`fallback: true`, plain http, no
// credentials) against the emulator. Mirrors tests/py/gcp_kms.py: key rings created the
// documented way (`createKeyRing({parent, keyRingId})`, whose body is an empty message), keys of
// every purpose, encryption with AAD and CRC32C, raw AES-GCM, signatures verified with
// node:crypto over the returned PEM, RSA-OAEP made by node:crypto, MACs, version states and
// rotation, labels, paging and error statuses. Exits non-zero on the first failed check.

import { createRequire } from "node:module";
import { join } from "node:path";
import crypto from "node:crypto";

const require = createRequire(join(process.env.HSM_NODE_MODULES ?? ".", "noop.js"));
const { KeyManagementServiceClient } = require("@google-cloud/kms");
const { PassThroughClient } = require("google-auth-library");

const url = new URL(process.argv[2]);
const client = new KeyManagementServiceClient({
  fallback: true,
  protocol: url.protocol.replace(":", ""),
  apiEndpoint: url.hostname,
  port: Number(url.port),
  authClient: new PassThroughClient(),
});

let checks = 0;
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  checks++;
}

// CRC32C (Castagnoli), computed here so the check does not trust the emulator.
const TABLE = Array.from({ length: 256 }, (_, i) => {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});
function crc32c(data) {
  let c = 0xffffffff;
  for (const b of Buffer.from(data)) c = TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
check(crc32c(Buffer.from("123456789")) === 0xe3069283, "the standard CRC32C check value");
const crcOf = (wrapper) => (wrapper == null ? undefined : Number(wrapper.value ?? wrapper));
const eq = (a, b) => Buffer.from(a).equals(Buffer.from(b));

// google.rpc codes as gax's GoogleError reports them.
const CODE = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, FAILED_PRECONDITION: 9 };
const HTTP = { INVALID_ARGUMENT: 400, NOT_FOUND: 404, ALREADY_EXISTS: 409, FAILED_PRECONDITION: 400 };

/** The google.rpc status name of a failed call. Over the REST fallback the auth client's
 * fetch (gaxios) throws a GaxiosError for a non-2xx answer before gax decodes it, as it does
 * against Cloud KMS: its message is the error body. */
function statusOf(e) {
  if (e.response !== undefined || e.name === "GaxiosError") {
    const body = JSON.parse(e.message);
    check(e.status === body.error.code, `HTTP status ${e.status} matches error.code ${body.error.code}`);
    check(HTTP[body.error.status] === e.status, `HTTP ${e.status} fits ${body.error.status}`);
    return body.error.status;
  }
  return Object.keys(CODE).find((k) => CODE[k] === e.code) ?? `code ${e.code}`;
}

/** `promise` must fail with google.rpc status `status`. */
async function expectError(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    const got = statusOf(e);
    check(got === status, `${what}: ${got}, want ${status} (${e.message})`);
    return e;
  }
  throw new Error(`${what}: succeeded, want ${status}`);
}

const loc = "projects/node-project/locations/europe-west1";

// ---- key rings, created as the documentation shows (no keyRing field: an empty body) ----
for (const id of ["ring-a", "ring-b", "ring-c"]) {
  const [r] = await client.createKeyRing({ parent: loc, keyRingId: id });
  check(r.name === `${loc}/keyRings/${id}`, `ring name ${r.name}`);
}
const ring = `${loc}/keyRings/ring-a`;
const [gotRing] = await client.getKeyRing({ name: ring });
check(Number(gotRing.createTime.seconds) > 1_700_000_000, "ring create time");
await expectError(client.createKeyRing({ parent: loc, keyRingId: "ring-a", keyRing: {} }), "ALREADY_EXISTS", "duplicate ring");
await expectError(client.createKeyRing({ parent: loc, keyRingId: "bad/id" }), "INVALID_ARGUMENT", "ring id with a slash");
await expectError(client.getKeyRing({ name: `${loc}/keyRings/none` }), "NOT_FOUND", "missing ring");

/** Every page of a list call, following nextPageToken by hand. */
async function pages(method, request) {
  const out = [];
  let req = request;
  for (;;) {
    const [items, next, raw] = await client[method](req, { autoPaginate: false });
    out.push({ items, raw });
    if (!next) return out;
    req = next;
  }
}
const ringPages = await pages("listKeyRings", { parent: loc, pageSize: 1 });
check(ringPages.length === 3, `3 pages of 1 ring, got ${ringPages.length}`);
check(ringPages.flatMap((p) => p.items.map((r) => r.name.split("/").pop())).join() === "ring-a,ring-b,ring-c", "ring order");
check(ringPages[0].raw.totalSize === 3, `totalSize ${ringPages[0].raw.totalSize}`);

async function create(id, purpose, { algorithm, labels, level = "SOFTWARE", skip = false } = {}) {
  const cryptoKey = { purpose, versionTemplate: { protectionLevel: level } };
  if (algorithm) cryptoKey.versionTemplate.algorithm = algorithm;
  if (labels) cryptoKey.labels = labels;
  const [k] = await client.createCryptoKey({ parent: ring, cryptoKeyId: id, cryptoKey, skipInitialVersionCreation: skip });
  return k;
}

// ---- ENCRYPT_DECRYPT with AAD and CRC32C ----
const sym = await create("sym", "ENCRYPT_DECRYPT", { labels: { env: "prod", team: "core" } });
check(sym.purpose === "ENCRYPT_DECRYPT", `purpose ${sym.purpose}`);
check(sym.versionTemplate.algorithm === "GOOGLE_SYMMETRIC_ENCRYPTION", "default algorithm");
check(sym.primary.name === `${sym.name}/cryptoKeyVersions/1`, `primary ${sym.primary.name}`);
check(sym.primary.state === "ENABLED", "primary enabled");
check(sym.labels.env === "prod" && sym.labels.team === "core", "labels");
await expectError(create("sym", "ENCRYPT_DECRYPT"), "ALREADY_EXISTS", "duplicate key");
await expectError(client.getCryptoKey({ name: `${ring}/cryptoKeys/none` }), "NOT_FOUND", "missing key");
await expectError(create("wrong-alg", "ENCRYPT_DECRYPT", { algorithm: "EC_SIGN_P256_SHA256" }), "INVALID_ARGUMENT", "algorithm of another purpose");
await expectError(create("bad-label", "ENCRYPT_DECRYPT", { labels: { Upper: "x" } }), "INVALID_ARGUMENT", "label key with an uppercase letter");

const pt = Buffer.from("the quick brown fox");
const aad = Buffer.from("header");
const [enc] = await client.encrypt({
  name: sym.name,
  plaintext: pt,
  additionalAuthenticatedData: aad,
  plaintextCrc32c: { value: crc32c(pt) },
  additionalAuthenticatedDataCrc32c: { value: crc32c(aad) },
});
check(enc.name === `${sym.name}/cryptoKeyVersions/1`, `encrypt used ${enc.name}`);
check(enc.verifiedPlaintextCrc32c && enc.verifiedAdditionalAuthenticatedDataCrc32c, "verified flags");
check(crcOf(enc.ciphertextCrc32c) === crc32c(enc.ciphertext), "ciphertext CRC32C");
check(!Buffer.from(enc.ciphertext).includes(pt), "ciphertext hides the plaintext");
check(enc.protectionLevel === "SOFTWARE", "protection level");
const [plainEnc] = await client.encrypt({ name: sym.name, plaintext: pt });
check(!plainEnc.verifiedPlaintextCrc32c, "verified only when the request carried a CRC");
const [dec] = await client.decrypt({
  name: sym.name,
  ciphertext: enc.ciphertext,
  additionalAuthenticatedData: aad,
  ciphertextCrc32c: { value: crc32c(enc.ciphertext) },
});
check(eq(dec.plaintext, pt), "decrypt round trip");
check(crcOf(dec.plaintextCrc32c) === crc32c(pt), "plaintext CRC32C");
check(dec.usedPrimary, "usedPrimary");
await expectError(client.decrypt({ name: sym.name, ciphertext: enc.ciphertext, additionalAuthenticatedData: Buffer.from("x") }), "INVALID_ARGUMENT", "wrong AAD");
await expectError(client.encrypt({ name: sym.name, plaintext: pt, plaintextCrc32c: { value: crc32c(pt) ^ 1 } }), "INVALID_ARGUMENT", "wrong plaintext CRC32C");
await expectError(client.decrypt({ name: sym.name, ciphertext: enc.ciphertext, ciphertextCrc32c: { value: 7 } }), "INVALID_ARGUMENT", "wrong ciphertext CRC32C");
await expectError(client.encrypt({ name: sym.name, plaintext: Buffer.alloc(64 * 1024 + 1, "x") }), "INVALID_ARGUMENT", "plaintext over 64 KiB");

// ---- versions: rotation (an empty version: an empty body), disable, destroy, restore ----
const [v2] = await client.createCryptoKeyVersion({ parent: sym.name });
check(v2.name === `${sym.name}/cryptoKeyVersions/2` && v2.state === "ENABLED", `new version ${v2.name}`);
const [v3] = await client.createCryptoKeyVersion({ parent: sym.name, cryptoKeyVersion: {} });
check(v3.name === `${sym.name}/cryptoKeyVersions/3`, `new version ${v3.name}`);
const [rotated] = await client.updateCryptoKeyPrimaryVersion({ name: sym.name, cryptoKeyVersionId: "2" });
check(rotated.primary.name === v2.name, "primary rotated");
const [enc2] = await client.encrypt({ name: sym.name, plaintext: pt });
check(enc2.name === v2.name, "encrypt uses the new primary");
const [old] = await client.decrypt({ name: sym.name, ciphertext: enc.ciphertext, additionalAuthenticatedData: aad });
check(eq(old.plaintext, pt) && !old.usedPrimary, "old ciphertext decrypts with the old version");
const v1 = `${sym.name}/cryptoKeyVersions/1`;
const [disabled] = await client.updateCryptoKeyVersion({ cryptoKeyVersion: { name: v1, state: "DISABLED" }, updateMask: { paths: ["state"] } });
check(disabled.state === "DISABLED", "disabled");
await expectError(client.decrypt({ name: sym.name, ciphertext: enc.ciphertext, additionalAuthenticatedData: aad }), "FAILED_PRECONDITION", "a disabled version refuses to decrypt");
const e = await expectError(client.encrypt({ name: v1, plaintext: pt }), "FAILED_PRECONDITION", "a disabled version refuses to encrypt");
check(e.message.includes(`${v1} is not enabled, current state is: DISABLED.`), `message: ${e.message}`);
const before = Date.now() / 1000;
const [destroyed] = await client.destroyCryptoKeyVersion({ name: v1 });
check(destroyed.state === "DESTROY_SCHEDULED", "destroy schedules");
const delay = Number(destroyed.destroyTime.seconds) - before;
check(delay > 86_000 && delay < 86_500, `destroyed in 24 h, got ${delay} s`);
await expectError(client.destroyCryptoKeyVersion({ name: v1 }), "FAILED_PRECONDITION", "destroy twice");
const [restored] = await client.restoreCryptoKeyVersion({ name: v1 });
check(restored.state === "DISABLED" && !restored.destroyTime, "restore gives DISABLED");
await client.updateCryptoKeyVersion({ cryptoKeyVersion: { name: v1, state: "ENABLED" }, updateMask: { paths: ["state"] } });
const [again] = await client.decrypt({ name: sym.name, ciphertext: enc.ciphertext, additionalAuthenticatedData: aad });
check(eq(again.plaintext, pt), "re-enabled version decrypts");
const versionPages = await pages("listCryptoKeyVersions", { parent: sym.name, pageSize: 1 });
check(versionPages.length === 3, `three pages of versions, got ${versionPages.length}`);
const [enabled] = await client.listCryptoKeyVersions({ parent: sym.name, filter: "state=ENABLED" });
check(enabled.length === 3, `filter by state, got ${enabled.length}`);

// ---- labels ----
const [updated] = await client.updateCryptoKey({ cryptoKey: { name: sym.name, labels: { env: "staging" } }, updateMask: { paths: ["labels"] } });
check(JSON.stringify(updated.labels) === '{"env":"staging"}', `labels replaced: ${JSON.stringify(updated.labels)}`);
check(JSON.stringify((await client.getCryptoKey({ name: sym.name }))[0].labels) === '{"env":"staging"}', "labels stored");

// ---- RAW_ENCRYPT_DECRYPT ----
for (const [id, alg] of [["raw128", "AES_128_GCM"], ["raw256", "AES_256_GCM"]]) {
  const k = await create(id, "RAW_ENCRYPT_DECRYPT", { algorithm: alg });
  const v = `${k.name}/cryptoKeyVersions/1`;
  const [r] = await client.rawEncrypt({ name: v, plaintext: pt, additionalAuthenticatedData: aad, plaintextCrc32c: { value: crc32c(pt) } });
  check(r.tagLength === 16 && r.initializationVector.length === 12, "raw encrypt IV and tag length");
  check(crcOf(r.ciphertextCrc32c) === crc32c(r.ciphertext), "raw ciphertext CRC32C");
  check(crcOf(r.initializationVectorCrc32c) === crc32c(r.initializationVector), "IV CRC32C");
  check(r.verifiedPlaintextCrc32c && !r.verifiedAdditionalAuthenticatedDataCrc32c, "raw verified flags");
  const [d] = await client.rawDecrypt({
    name: v,
    ciphertext: r.ciphertext,
    additionalAuthenticatedData: aad,
    initializationVector: r.initializationVector,
    tagLength: r.tagLength,
    ciphertextCrc32c: { value: crc32c(r.ciphertext) },
    initializationVectorCrc32c: { value: crc32c(r.initializationVector) },
  });
  check(eq(d.plaintext, pt) && d.verifiedCiphertextCrc32c && d.verifiedInitializationVectorCrc32c, "raw round trip");
  await expectError(client.rawDecrypt({ name: v, ciphertext: r.ciphertext, initializationVector: r.initializationVector }), "INVALID_ARGUMENT", "raw decrypt without the AAD");
  await expectError(client.encrypt({ name: k.name, plaintext: pt }), "FAILED_PRECONDITION", "Encrypt on a RAW_ENCRYPT_DECRYPT key");
}

// ---- ASYMMETRIC_SIGN: verified with node:crypto over the PEM ----
const msg = Buffer.from("sign this message");
const signAlgs = [
  ["RSA_SIGN_PSS_2048_SHA256", "sha256", "SOFTWARE"],
  ["RSA_SIGN_PKCS1_2048_SHA256", "sha256", "SOFTWARE"],
  ["RSA_SIGN_PKCS1_3072_SHA256", "sha256", "SOFTWARE"],
  ["RSA_SIGN_PSS_4096_SHA512", "sha512", "SOFTWARE"],
  ["EC_SIGN_P256_SHA256", "sha256", "SOFTWARE"],
  ["EC_SIGN_P384_SHA384", "sha384", "SOFTWARE"],
  ["EC_SIGN_SECP256K1_SHA256", "sha256", "HSM"],
  ["EC_SIGN_ED25519", null, "SOFTWARE"],
];
for (const [alg, hash, level] of signAlgs) {
  const k = await create("sign-" + alg.toLowerCase().replaceAll("_", "-"), "ASYMMETRIC_SIGN", { algorithm: alg, level });
  const v = `${k.name}/cryptoKeyVersions/1`;
  const [pk] = await client.getPublicKey({ name: v });
  check(pk.algorithm === alg && pk.name === v, `${alg}: public key metadata`);
  check(crcOf(pk.pemCrc32c) === crc32c(Buffer.from(pk.pem)), `${alg}: PEM CRC32C`);
  const pub = crypto.createPublicKey(pk.pem);
  let s;
  let key = pub;
  if (hash === null) {
    [s] = await client.asymmetricSign({ name: v, data: msg, dataCrc32c: { value: crc32c(msg) } });
    check(s.verifiedDataCrc32c, "verified data CRC");
  } else {
    const digest = crypto.createHash(hash).update(msg).digest();
    [s] = await client.asymmetricSign({ name: v, digest: { [hash]: digest }, digestCrc32c: { value: crc32c(digest) } });
    check(s.verifiedDigestCrc32c, "verified digest CRC");
    if (alg.startsWith("RSA_SIGN_PSS")) {
      key = { key: pub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST };
    } else if (alg.startsWith("RSA_SIGN_PKCS1")) {
      key = { key: pub, padding: crypto.constants.RSA_PKCS1_PADDING };
    }
  }
  check(crypto.verify(hash, msg, key, Buffer.from(s.signature)), `${alg}: node:crypto verifies`);
  check(!crypto.verify(hash, Buffer.from("tampered"), key, Buffer.from(s.signature)), `${alg}: tampered data does not verify`);
  check(crcOf(s.signatureCrc32c) === crc32c(s.signature) && s.name === v, `${alg}: signature metadata`);
}
await expectError(create("k1-soft", "ASYMMETRIC_SIGN", { algorithm: "EC_SIGN_SECP256K1_SHA256" }), "INVALID_ARGUMENT", "secp256k1 needs HSM protection");

// ---- ASYMMETRIC_DECRYPT: OAEP ciphertext made by node:crypto ----
for (const [alg, hash] of [["RSA_DECRYPT_OAEP_2048_SHA256", "sha256"], ["RSA_DECRYPT_OAEP_3072_SHA1", "sha1"], ["RSA_DECRYPT_OAEP_4096_SHA256", "sha256"]]) {
  const k = await create("dec-" + alg.toLowerCase().replaceAll("_", "-"), "ASYMMETRIC_DECRYPT", { algorithm: alg });
  const v = `${k.name}/cryptoKeyVersions/1`;
  const [pk] = await client.getPublicKey({ name: v });
  const secret = Buffer.from("a wrapped data key");
  const ct = crypto.publicEncrypt({ key: crypto.createPublicKey(pk.pem), padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, secret);
  const [d] = await client.asymmetricDecrypt({ name: v, ciphertext: ct, ciphertextCrc32c: { value: crc32c(ct) } });
  check(eq(d.plaintext, secret) && d.verifiedCiphertextCrc32c, `${alg}: OAEP decrypt`);
  check(crcOf(d.plaintextCrc32c) === crc32c(secret), `${alg}: plaintext CRC32C`);
  const bad = Buffer.from(ct);
  bad[bad.length - 1] ^= 1;
  await expectError(client.asymmetricDecrypt({ name: v, ciphertext: bad }), "INVALID_ARGUMENT", `${alg}: tampered ciphertext`);
  await expectError(client.asymmetricSign({ name: v, digest: { sha256: Buffer.alloc(32) } }), "FAILED_PRECONDITION", "sign with a decryption key");
}

// ---- MAC ----
for (const alg of ["HMAC_SHA256", "HMAC_SHA384", "HMAC_SHA512", "HMAC_SHA1", "HMAC_SHA224"]) {
  const k = await create("mac-" + alg.toLowerCase().replaceAll("_", "-"), "MAC", { algorithm: alg });
  const v = `${k.name}/cryptoKeyVersions/1`;
  const [m] = await client.macSign({ name: v, data: msg, dataCrc32c: { value: crc32c(msg) } });
  check(m.verifiedDataCrc32c && crcOf(m.macCrc32c) === crc32c(m.mac), `${alg}: MAC CRCs`);
  const [good] = await client.macVerify({ name: v, data: msg, mac: m.mac, macCrc32c: { value: crc32c(m.mac) } });
  check(good.success && good.verifiedSuccessIntegrity && good.verifiedMacCrc32c, `${alg}: MAC verifies`);
  const [bad] = await client.macVerify({ name: v, data: Buffer.from("other"), mac: m.mac });
  check(!bad.success && !bad.verifiedSuccessIntegrity, `${alg}: MAC over other data fails`);
}

// ---- listing keys with small pages and filters ----
const [allKeys] = await client.listCryptoKeys({ parent: ring });
const keyPages = await pages("listCryptoKeys", { parent: ring, pageSize: 3 });
const expected = 1 + 2 + signAlgs.length + 3 + 5;
check(allKeys.length === expected, `every key listed once (autoPaginate), got ${allKeys.length}`);
check(new Set(allKeys.map((k) => k.name)).size === allKeys.length, "no duplicates across pages");
check(keyPages.length === Math.ceil(expected / 3), `pages of 3, got ${keyPages.length}`);
const [staging] = await client.listCryptoKeys({ parent: ring, filter: "labels.env=staging" });
check(staging.map((k) => k.name).join() === sym.name, "filter by label");
const [macs] = await client.listCryptoKeys({ parent: ring, filter: "purpose=MAC" });
check(macs.length === 5, `filter by purpose, got ${macs.length}`);
const iterated = [];
for await (const k of client.listCryptoKeysAsync({ parent: ring, pageSize: 4 })) iterated.push(k.name);
check(iterated.length === expected, `async iteration, got ${iterated.length}`);

// ---- a key created without versions ----
const empty = await create("empty", "ENCRYPT_DECRYPT", { skip: true });
check(!empty.primary?.name, "no primary without versions");
await expectError(client.encrypt({ name: empty.name, plaintext: pt }), "FAILED_PRECONDITION", "encrypt with no primary");

await client.close();
console.log(`gcp_kms.mjs: all checks passed (${checks} checks)`);
