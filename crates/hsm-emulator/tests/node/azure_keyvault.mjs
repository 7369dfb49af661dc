// Fidelity of `hsm-emulator azure` with the official Node.js SDK (@azure/keyvault-keys).
//
// Usage: HSM_NODE_MODULES=DIR NODE_EXTRA_CA_CERTS=CA_PEM node azure_keyvault.mjs URL {vault|managed-hsm}
//
// Mirrors tests/py/azure_keyvault.py with a second official client: a static token credential,
// challenge resource verification off (the emulator's host is not *.vault.azure.net), the
// emulator's CA trusted through NODE_EXTRA_CA_CERTS. Key lifecycle, paging, versions, tags,
// soft delete, every cryptographic operation of each key type, cross-checked with node:crypto.
// Exits non-zero on the first failure.

import { createRequire } from "node:module";
import { join } from "node:path";
import crypto from "node:crypto";
import assert from "node:assert/strict";

const require = createRequire(join(process.env.HSM_NODE_MODULES ?? ".", "noop.js"));
const { KeyClient, CryptographyClient } = require("@azure/keyvault-keys");

const [URL, MODE] = process.argv.slice(2);
let checks = 0;
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  checks++;
}

/** A credential handing out one token (the emulator accepts any non-empty token). */
const credential = {
  async getToken() {
    return { token: "node-sdk-token", expiresOnTimestamp: Date.now() + 3600_000 };
  },
};
const OPTIONS = { disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } };
const client = new KeyClient(URL, credential, OPTIONS);
const cryptoClient = (key) => new CryptographyClient(key, credential, OPTIONS);
const POLL = { updateIntervalInMs: 0 };

const b64 = (b) => Buffer.from(b).toString("base64url");
const unb64 = (s) => Buffer.from(s, "base64url");
const eq = (a, b) => Buffer.from(a).equals(Buffer.from(b));

/** A raw call with the same bearer token, for what CryptographyClient would do locally. */
async function send(method, path, body) {
  const resp = await fetch(`${URL}${path}?api-version=7.6`, {
    method,
    headers: { authorization: "Bearer node-sdk-token", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return [resp.status, text ? JSON.parse(text) : null];
}

/** `promise` must be refused with HTTP `status` (and Key Vault error `code` when given). */
async function refused(promise, status, code, what) {
  try {
    await promise;
  } catch (e) {
    check(e.statusCode === status, `${what}: HTTP ${e.statusCode}, want ${status} (${e.message})`);
    if (code) check(e.code === code, `${what}: code ${e.code}, want ${code}`);
    return e;
  }
  throw new Error(`${what}: succeeded, want HTTP ${status}`);
}

const HASH = { 256: "sha256", 384: "sha384", 512: "sha512" };
const digestOf = (bits, data) => crypto.createHash(HASH[bits]).update(data).digest();

function rsaPublic(key) {
  return crypto.createPublicKey({ key: { kty: "RSA", n: b64(key.key.n), e: b64(key.key.e) }, format: "jwk" });
}

function ecPublic(key) {
  const crv = { "P-256": "P-256", "P-384": "P-384", "P-521": "P-521", "P-256K": "secp256k1" }[key.key.crv];
  return crypto.createPublicKey({ key: { kty: "EC", crv, x: b64(key.key.x), y: b64(key.key.y) }, format: "jwk" });
}

async function rsaChecks(key) {
  const cc = cryptoClient(key);
  const pub = rsaPublic(key);
  for (const alg of ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"]) {
    const enc = await cc.encrypt({ algorithm: alg, plaintext: Buffer.from("plaintext") });
    check(enc.keyID === key.id, `encrypt kid ${enc.keyID}`);
    const dec = await cc.decrypt({ algorithm: alg, ciphertext: enc.result });
    check(eq(dec.result, Buffer.from("plaintext")), `${alg} round trip`);
  }
  // Encrypted by node:crypto, decrypted by the service.
  const ct = crypto.publicEncrypt(
    { key: pub, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    Buffer.from("from node:crypto"),
  );
  check(eq((await cc.decrypt({ algorithm: "RSA-OAEP-256", ciphertext: ct })).result, Buffer.from("from node:crypto")), "OAEP-256 interop");
  // Encrypted by the service (raw call), decrypted through the SDK.
  const [status, body] = await send("POST", `/keys/${key.name}/${key.properties.version}/encrypt`, { alg: "RSA-OAEP", value: b64(Buffer.from("remote")) });
  check(status === 200, `remote encrypt ${status} ${JSON.stringify(body)}`);
  check(eq((await cc.decrypt({ algorithm: "RSA-OAEP", ciphertext: unb64(body.value) })).result, Buffer.from("remote")), "remote encrypt");
  for (const alg of ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"]) {
    const wrapped = await cc.wrapKey(alg, Buffer.alloc(32, "k"));
    check(eq((await cc.unwrapKey(alg, wrapped.result)).result, Buffer.alloc(32, "k")), `${alg} wrap round trip`);
  }
  for (const name of ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]) {
    const bits = name.slice(2);
    const digest = digestOf(bits, "message");
    const sig = await cc.sign(name, digest);
    check(sig.keyID === key.id && sig.result.length === key.key.n.length, `${name} signature`);
    check((await cc.verify(name, digest, sig.result)).result === true, `${name} SDK verify`);
    const padding = name.startsWith("RS")
      ? { key: pub, padding: crypto.constants.RSA_PKCS1_PADDING }
      : { key: pub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST };
    check(crypto.verify(HASH[bits], Buffer.from("message"), padding, Buffer.from(sig.result)), `${name} node:crypto verify`);
    // signData hashes locally and signs in the service.
    const signData = await cc.signData(name, Buffer.from("message"));
    check(crypto.verify(HASH[bits], Buffer.from("message"), padding, Buffer.from(signData.result)), `${name} signData`);
    if (name.startsWith("RS")) {
      // verifyData runs locally in the SDK; its local check of PS* uses PKCS#1 v1.5 padding
      // (createVerify without PSS options: an SDK limitation, the same against Key Vault), so
      // only RS* is checked with it.
      check((await cc.verifyData(name, Buffer.from("message"), signData.result)).result === true, `${name} verifyData`);
    }
    let [s, b] = await send("POST", `/keys/${key.name}/${key.properties.version}/verify`, { alg: name, digest: b64(digest), value: b64(sig.result) });
    check(s === 200 && b.value === true, `${name} remote verify ${JSON.stringify(b)}`);
    const bad = Buffer.from(sig.result);
    bad[0] ^= 1;
    [s, b] = await send("POST", `/keys/${key.name}/${key.properties.version}/verify`, { alg: name, digest: b64(digest), value: b64(bad) });
    check(s === 200 && b.value === false, `${name} remote verify of a bad signature ${JSON.stringify(b)}`);
  }
}

async function ecChecks(key, alg, bits) {
  const cc = cryptoClient(key);
  const pub = ecPublic(key);
  const digest = digestOf(bits, "message");
  const sig = await cc.sign(alg, digest);
  const size = key.key.x.length;
  check(sig.result.length === 2 * size, `${alg} raw r||s length ${sig.result.length}`);
  check((await cc.verify(alg, digest, sig.result)).result === true, `${alg} SDK verify`);
  // node:crypto reads the JOSE form (r||s) with dsaEncoding ieee-p1363.
  check(crypto.verify(HASH[bits], Buffer.from("message"), { key: pub, dsaEncoding: "ieee-p1363" }, Buffer.from(sig.result)), `${alg} node:crypto verify`);
  const [s, b] = await send("POST", `/keys/${key.name}/${key.properties.version}/verify`, {
    alg,
    digest: b64(digestOf(bits, "other")),
    value: b64(sig.result),
  });
  check(s === 200 && b.value === false, `${alg} remote verify of another digest ${JSON.stringify(b)}`);
}

async function collect(iter) {
  const out = [];
  for await (const x of iter) out.push(x);
  return out;
}

async function vaultMode() {
  const prefix = `node${process.pid}`;
  const rsaKeys = {};
  for (const size of [2048, 3072, 4096]) {
    const k = await client.createRsaKey(`${prefix}-rsa${size}`, { keySize: size });
    check(k.keyType === "RSA" && k.key.n.length === size / 8, `RSA ${size}`);
    rsaKeys[size] = k;
  }
  const hsmRsa = await client.createRsaKey(`${prefix}-rsahsm`, { keySize: 2048, hsm: true, tags: { t: "1" } });
  check(hsmRsa.keyType === "RSA-HSM" && hsmRsa.properties.tags?.t === "1", "RSA-HSM");
  const ecKeys = [];
  for (const [crv, alg, bits, size] of [
    ["P-256", "ES256", "256", 32],
    ["P-384", "ES384", "384", 48],
    ["P-521", "ES512", "512", 66],
    ["P-256K", "ES256K", "256", 32],
  ]) {
    for (const hw of [false, true]) {
      const k = await client.createEcKey(`${prefix}-ec-${crv.replace("P-", "p")}-${hw ? 1 : 0}`, { curve: crv, hsm: hw });
      check(k.key.crv === crv && k.key.x.length === size && k.key.y.length === size, `EC ${crv} padded`);
      check(k.keyType === (hw ? "EC-HSM" : "EC"), `EC ${crv} type`);
      ecKeys.push([k, alg, bits, crv, hw]);
    }
  }
  const e = await refused(client.createOctKey(`${prefix}-aes`, { keySize: 256, hsm: true }), 400, undefined, "oct-HSM in a vault");
  check(e.message.includes("Managed HSM"), `oct-HSM refusal names Managed HSM: ${e.message}`);

  let k = await client.getKey(rsaKeys[2048].name);
  check(k.id === rsaKeys[2048].id && k.properties.version === rsaKeys[2048].properties.version, "get latest");
  k = await client.getKey(rsaKeys[2048].name, { version: rsaKeys[2048].properties.version });
  check(k.id === rsaKeys[2048].id, "get version");
  check(k.properties.recoveryLevel === "Recoverable+Purgeable" && k.properties.recoverableDays === 90, "recovery");
  await refused(client.getKey(`${prefix}-missing`), 404, "KeyNotFound", "missing key");
  await refused(client.getKey(rsaKeys[2048].name, { version: "0".repeat(32) }), 404, "KeyNotFound", "missing version");

  const mine = (p) => p.name.startsWith(prefix);
  const names = new Set((await collect(client.listPropertiesOfKeys())).filter(mine).map((p) => p.name));
  check(names.size === 12, `listed ${names.size} keys`);
  let pages = await collect(client.listPropertiesOfKeys().byPage({ maxPageSize: 4 }));
  const listed = pages.flat().map((p) => p.name);
  check(pages.length === 3 && listed.length === 12 && listed.every((n) => names.has(n)), `${pages.length} pages, ${listed.length} keys`);
  for (let i = 0; i < 3; i++) await client.createEcKey(`${prefix}-page-${i}`, { curve: "P-256" });
  pages = await collect(client.listPropertiesOfKeys().byPage({ maxPageSize: 5 }));
  check(pages.length === 3 && pages.flat().length === 15, "15 keys in 3 pages of 5");

  const name = rsaKeys[2048].name;
  const old = rsaKeys[2048];
  const rotated = await client.rotateKey(name);
  check(rotated.properties.version !== old.properties.version && rotated.name === name, "rotate adds a version");
  const again = await client.createRsaKey(name, { keySize: 2048 });
  const versions = (await collect(client.listPropertiesOfKeyVersions(name).byPage({ maxPageSize: 1 }))).flat().map((p) => p.version);
  check(
    versions.join() === [old.properties.version, rotated.properties.version, again.properties.version].join(),
    `versions ${versions}`,
  );
  const enc = await cryptoClient(old).encrypt({ algorithm: "RSA-OAEP-256", plaintext: Buffer.from("before rotation") });
  const dec = await cryptoClient(await client.getKey(name, { version: old.properties.version })).decrypt({ algorithm: "RSA-OAEP-256", ciphertext: enc.result });
  check(eq(dec.result, Buffer.from("before rotation")), "old version decrypts after rotation");
  let updated = await client.updateKeyProperties(name, { tags: { env: "test", owner: "hsm" } });
  check(updated.properties.tags?.env === "test" && updated.properties.version === again.properties.version, "tags");
  check((await client.getKey(name)).properties.tags?.owner === "hsm", "tags persisted");
  updated = await client.updateKeyProperties(name, old.properties.version, { enabled: false });
  check(updated.properties.enabled === false && updated.properties.version === old.properties.version, "disable one version");
  const [status, body] = await send("POST", `/keys/${name}/${old.properties.version}/decrypt`, { alg: "RSA-OAEP-256", value: b64(enc.result) });
  check(status === 403 && body.error.code === "Forbidden", `disabled key: ${status} ${JSON.stringify(body)}`);
  await refused(
    cryptoClient(`${URL}/keys/${name}/${old.properties.version}`).decrypt({ algorithm: "RSA-OAEP-256", ciphertext: enc.result }),
    403,
    "Forbidden",
    "the SDK sees the disabled version refuse",
  );
  await client.updateKeyProperties(name, old.properties.version, { enabled: true });

  for (const key of [...Object.values(rsaKeys), hsmRsa]) await rsaChecks(await client.getKey(key.name));
  for (const [key, alg, bits] of ecKeys) await ecChecks(key, alg, bits);

  const victim = ecKeys[0][0];
  const deleted = await (await client.beginDeleteKey(victim.name, POLL)).pollUntilDone();
  check(deleted.name === victim.name && deleted.properties.recoveryId.endsWith(`/deletedkeys/${victim.name}`), "deleted");
  const { deletedOn, scheduledPurgeDate } = deleted.properties;
  check(deletedOn instanceof Date && scheduledPurgeDate instanceof Date, "deletion dates");
  check(Math.round((scheduledPurgeDate - deletedOn) / 86_400_000) === 90, "purge in 90 days");
  await (await client.beginDeleteKey(ecKeys[2][0].name, POLL)).pollUntilDone();
  check((await client.getDeletedKey(victim.name)).id === victim.id, "get deleted key");
  const deletedNames = new Set((await collect(client.listDeletedKeys().byPage({ maxPageSize: 1 }))).flat().map((d) => d.name));
  check(deletedNames.has(victim.name) && deletedNames.size === 2, `deleted listing ${[...deletedNames]}`);
  await refused(client.createEcKey(victim.name, { curve: "P-256" }), 409, undefined, "create over a deleted name");
  const recovered = await (await client.beginRecoverDeletedKey(victim.name, POLL)).pollUntilDone();
  check(recovered.id === victim.id, "recovered");
  check((await client.getKey(victim.name)).id === victim.id, "recovered key readable");
  await (await client.beginDeleteKey(victim.name, POLL)).pollUntilDone();
  await client.purgeDeletedKey(victim.name);
  await refused(client.getDeletedKey(victim.name), 404, undefined, "purged key is gone");
  const fresh = await client.createEcKey(victim.name, { curve: "P-256" });
  check(fresh.id !== victim.id, "name reusable after purge");
}

async function managedHsmMode() {
  const prefix = `node${process.pid}`;
  await refused(client.createRsaKey(`${prefix}-soft`, { keySize: 2048 }), 400, undefined, "software RSA on Managed HSM");
  const r = await client.createRsaKey(`${prefix}-rsa`, { keySize: 2048, hsm: true });
  check(r.keyType === "RSA-HSM", "RSA-HSM");
  await rsaChecks(r);
  const ec = await client.createEcKey(`${prefix}-ec`, { curve: "P-256", hsm: true });
  await ecChecks(ec, "ES256", "256");

  for (const bits of [128, 192, 256]) {
    const k = await client.createOctKey(`${prefix}-aes${bits}`, { keySize: bits, hsm: true });
    check(k.keyType === "oct-HSM" && k.key.k === undefined, `oct-HSM ${bits} without k`);
    const cc = cryptoClient(k);
    const gcm = `A${bits}GCM`;
    const aad = Buffer.from("aad");
    const enc = await cc.encrypt({ algorithm: gcm, plaintext: Buffer.from("gcm plaintext"), additionalAuthenticatedData: aad });
    check(enc.iv.length === 12 && enc.authenticationTag.length === 16 && enc.result.length === 13, "GCM result shape");
    const dec = await cc.decrypt({ algorithm: gcm, ciphertext: enc.result, iv: enc.iv, authenticationTag: enc.authenticationTag, additionalAuthenticatedData: aad });
    check(eq(dec.result, Buffer.from("gcm plaintext")), `${gcm} round trip`);
    await refused(
      cc.decrypt({ algorithm: gcm, ciphertext: enc.result, iv: enc.iv, authenticationTag: enc.authenticationTag, additionalAuthenticatedData: Buffer.from("other") }),
      400,
      undefined,
      "wrong aad",
    );
    // Key wrap through the SDK (the key has no local material, so the service wraps).
    const kw = `A${bits}KW`;
    const wrapped = await cc.wrapKey(kw, Buffer.alloc(32, 0x11));
    check(wrapped.result.length === 40, `${kw} wrap length`);
    check(eq((await cc.unwrapKey(kw, wrapped.result)).result, Buffer.alloc(32, 0x11)), `${kw} unwrap`);
    const path = `/keys/${k.name}/${k.properties.version}`;
    for (const [alg, data] of [["CKM_AES_KEY_WRAP", Buffer.alloc(24, 0x22)], ["CKM_AES_KEY_WRAP_PAD", Buffer.alloc(20, 0x33)]]) {
      const [s, w] = await send("POST", `${path}/wrapkey`, { alg, value: b64(data) });
      check(s === 200 && unb64(w.value).length === Math.ceil(data.length / 8) * 8 + 8, `${alg} wrap`);
      const [s2, u] = await send("POST", `${path}/unwrapkey`, { alg, value: w.value });
      check(s2 === 200 && eq(unb64(u.value), data), `${alg} unwrap`);
    }
    const iv = crypto.randomBytes(16);
    const cbc = await cc.encrypt({ algorithm: `A${bits}CBCPAD`, plaintext: Buffer.from("cbc!"), iv });
    check(cbc.result.length === 16, `CBCPAD encrypt ${cbc.result.length}`);
    check(eq((await cc.decrypt({ algorithm: `A${bits}CBCPAD`, ciphertext: cbc.result, iv })).result, Buffer.from("cbc!")), "CBCPAD decrypt");
  }

  // AES interop: import a known key and compare with node:crypto's RFC 3394/5649 and GCM.
  const kek = crypto.randomBytes(32);
  const imported = await client.importKey(`${prefix}-imported`, { kty: "oct-HSM", k: kek, keyOps: ["wrapKey", "unwrapKey", "encrypt", "decrypt"] });
  check(imported.keyType === "oct-HSM" && imported.key.k === undefined, "imported oct-HSM");
  const data = crypto.randomBytes(32);
  const kw = crypto.createCipheriv("id-aes256-wrap", kek, Buffer.from("A6A6A6A6A6A6A6A6", "hex"));
  const expected = Buffer.concat([kw.update(data), kw.final()]);
  const w = await cryptoClient(imported).wrapKey("A256KW", data);
  check(eq(w.result, expected), "A256KW matches RFC 3394 (node:crypto)");
  const kwp = crypto.createCipheriv("id-aes256-wrap-pad", kek, Buffer.from("A65959A6", "hex"));
  const expectedPad = Buffer.concat([kwp.update(data.subarray(0, 20)), kwp.final()]);
  const [s, wp] = await send("POST", `/keys/${imported.name}/${imported.properties.version}/wrapkey`, { alg: "CKM_AES_KEY_WRAP_PAD", value: b64(data.subarray(0, 20)) });
  check(s === 200 && eq(unb64(wp.value), expectedPad), "KWP matches RFC 5649 (node:crypto)");
  const enc = await cryptoClient(imported).encrypt({ algorithm: "A256GCM", plaintext: Buffer.from("interop"), additionalAuthenticatedData: Buffer.from("x") });
  const d = crypto.createDecipheriv("aes-256-gcm", kek, enc.iv);
  d.setAAD(Buffer.from("x"));
  d.setAuthTag(enc.authenticationTag);
  check(Buffer.concat([d.update(enc.result), d.final()]).toString() === "interop", "GCM matches node:crypto");

  const rnd = await client.getRandomBytes(32);
  check(rnd.length === 32 && !eq(rnd, await client.getRandomBytes(32)), "random bytes");
}

const start = Date.now();
if (MODE === "vault") await vaultMode();
else if (MODE === "managed-hsm") await managedHsmMode();
else throw new Error(`unknown mode ${MODE}`);
console.log(`azure_keyvault.mjs ${MODE}: ${checks} checks passed in ${((Date.now() - start) / 1000).toFixed(1)}s`);
