// hsm-aws and @aws-sdk/client-kms on the same `hsm-emulator aws`: each opens what the other made.
//
// Usage: HSM_NODE_MODULES=DIR node aws_interop.mjs URL KEY AAD_B64 CIPHERTEXT_B64 EC_KEY SIGNATURE_B64
//
// - CIPHERTEXT_B64 was made by hsm-aws under KEY (an alias) with AAD AAD_B64: the SDK decrypts it
//   with the encryption context hsm-aws documents, {"hsm:aad": base64(aad)}.
// - SIGNATURE_B64 is an hsm-aws ECDSA-SHA384 signature by EC_KEY over "signed by hsm-aws":
//   node:crypto verifies it over GetPublicKey's SubjectPublicKeyInfo.
// - The SDK then encrypts "made by node" under KEY with the same context and prints
//   "node-ciphertext: <base64>" for the Rust side to open through hsm-aws.

import { createRequire } from "node:module";
import { join } from "node:path";
import crypto from "node:crypto";
import assert from "node:assert/strict";

const require = createRequire(join(process.env.HSM_NODE_MODULES ?? ".", "noop.js"));
const { KMSClient, DecryptCommand, DescribeKeyCommand, GetPublicKeyCommand, EncryptCommand } = require("@aws-sdk/client-kms");

const [url, key, aadB64, ctB64, ecKey, sigB64] = process.argv.slice(2);
const kms = new KMSClient({
  endpoint: url,
  region: "us-east-1",
  credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  maxAttempts: 1,
});
const context = { "hsm:aad": aadB64 };

const out = await kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from(ctB64, "base64"), EncryptionContext: context }));
assert.equal(Buffer.from(out.Plaintext).toString(), "made by hsm-aws");
assert.equal(out.KeyId, (await kms.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata.Arn);
console.log("ok: the Node SDK decrypted the hsm-aws ciphertext");

const der = (await kms.send(new GetPublicKeyCommand({ KeyId: ecKey }))).PublicKey;
const pub = crypto.createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
assert.ok(crypto.verify("sha384", Buffer.from("signed by hsm-aws"), pub, Buffer.from(sigB64, "base64")));
assert.ok(!crypto.verify("sha384", Buffer.from("signed by someone else"), pub, Buffer.from(sigB64, "base64")));
console.log("ok: node:crypto verified the hsm-aws signature over GetPublicKey");

const blob = (await kms.send(new EncryptCommand({ KeyId: key, Plaintext: Buffer.from("made by node"), EncryptionContext: context }))).CiphertextBlob;
console.log("node-ciphertext: " + Buffer.from(blob).toString("base64"));
