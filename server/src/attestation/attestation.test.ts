/**
 * Issue 14, the attestation challenge routes and their bounds, with TPM
 * structures a real swtpm made (@latchkey/tpm/testing): the EK certificate
 * chain to swtpm_localca from attestation.ekRootsDir, the challenge stored
 * with its secret only as a hash, the per-token limit and pruning, body
 * limits, and the refusals (token, EK certificate for another key, an AK
 * that is not one, a renewal challenge of a software device, a CSR
 * attestation that is not JSON or names an unknown challenge). The whole
 * exchange against swtpm is in test/src/attestation-server.test.ts. Both engines.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { createCsr, nodeSigner, pemDecode } from '@latchkey/pki';
import { ATTEST_PATHS, ATTESTATION_ATTRIBUTE_OID, type AttestChallenge } from '@latchkey/protocol';
import { ekHash, parsePublic2B, publicKeySpki } from '@latchkey/tpm';
import { AK_2B, ECC_EK_2B, EK_CERT_NOT_BEFORE, EK_CERT_PEM, EK_ISSUER_PEM, EK_ROOT_PEM, RSA_EK_2B } from '@latchkey/tpm/testing';
import { loadConfig, validateConfig } from '../config/config-load.js';
import { CLIENT_CERT_HEADER, ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, type Harness } from '../testing/harness.js';
import { EK_ROOTS_LIMITS, EkRootsError, loadEkRoots } from './ek-roots.js';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const errorOf = (body: string): { code: string; message: string } => (JSON.parse(body) as { error: { code: string; message: string } }).error;
const EK_CERT_DER = pemDecode(EK_CERT_PEM, 'CERTIFICATE');
const NOW = new Date(EK_CERT_NOT_BEFORE.getTime() + 86_400_000);

function rootsDir(t: TestContext, files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-ekroots-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body);
  return dir;
}

const body = (o: Record<string, unknown> = {}): Record<string, unknown> => ({ ekPublic: b64(RSA_EK_2B), ekCertificate: b64(EK_CERT_DER), akPublic: b64(AK_2B), ...o });

function challenge(h: Harness, token: string | undefined, payload: unknown) {
  return h.app.inject({
    method: 'POST',
    url: ATTEST_PATHS.enrollChallenge,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

describe('attestation.ekRootsDir: the TPM manufacturer CAs, read once and bounded', () => {
  test('PEM and DER files; self-signed ones are roots, the others intermediates', (t) => {
    const dir = rootsDir(t, { 'root.pem': EK_ROOT_PEM, 'issuer.der': pemDecode(EK_ISSUER_PEM, 'CERTIFICATE'), '.hidden': 'ignored' });
    const r = loadEkRoots(dir);
    assert.equal(r.roots.length, 1);
    assert.equal(r.intermediates.length, 1);
    assert.deepEqual(loadEkRoots(undefined), { roots: [], intermediates: [] });
  });

  test('a file that is not a certificate, one over 64 KiB, and a missing directory are each named in the error', (t) => {
    const bad = rootsDir(t, { 'root.pem': EK_ROOT_PEM, 'notes.txt': 'hello' });
    assert.throws(() => loadEkRoots(bad), (e) => e instanceof EkRootsError && e.message.includes(join(bad, 'notes.txt')) && /is not a certificate/.test(e.message));
    const big = rootsDir(t, { 'big.pem': Buffer.alloc(EK_ROOTS_LIMITS.maxFileBytes + 1, 0x41) });
    assert.throws(() => loadEkRoots(big), (e) => e instanceof EkRootsError && e.message.includes(join(big, 'big.pem')) && /over the 65536/.test(e.message));
    assert.throws(() => loadEkRoots(join(bad, 'nope')), (e) => e instanceof EkRootsError && /cannot be read \(ENOENT\)/.test(e.message));
  });

  test('config: attestation takes its defaults (300 s, 5 open challenges); unknown keys are refused', () => {
    const base = { org: 'Example', url: 'https://x.example:8443', listen: '127.0.0.1:8443', trustDomain: 'example.com', certLifetimeSeconds: 3600, maxCertLifetimeSeconds: 86400, recoveryGraceSeconds: 0, crlValiditySeconds: 3600, approvalRetrySeconds: 10, agentHeartbeatSeconds: 30, maxAgentConnections: 0, maxCertificatesPerDevice: 4, supersededOverlapSeconds: 300, reenrollRateLimitPerMinute: 30, maxAgentConnectionsPerDevice: 2, tlsHandshakeTimeoutSeconds: 10, requestHeadersTimeoutSeconds: 10, requestTimeoutSeconds: 30, keepAliveTimeoutSeconds: 30, maxIdleConnections: 0, bodyLimitBytes: 65536, enrollRateLimitPerMinute: 600, logLevel: 'info' };
    const c = validateConfig({ ...base, attestation: { ekRootsDir: '/etc/latchkey/tpm-roots' } }, 'test');
    assert.deepEqual(c.attestation, { ekRootsDir: '/etc/latchkey/tpm-roots', challengeTtlSeconds: 300, maxOpenChallenges: 5 });
    assert.throws(() => validateConfig({ ...base, attestation: { maxOpenChallenge: 3 } }, 'test'), /attestation/);
  });

  test('config.json: a relative attestation.ekRootsDir is taken relative to the data dir', (t) => {
    const dir = rootsDir(t, { 'config.json': JSON.stringify({ org: 'Example', url: 'https://x.example:8443', listen: '127.0.0.1:8443', trustDomain: 'example.com', attestation: { ekRootsDir: 'tpm-roots' } }) });
    assert.equal(loadConfig(dir, {}).attestation?.ekRootsDir, join(dir, 'tpm-roots'));
  });
});

for (const engine of ENGINES) {
  describe(`attestation challenges on ${engine}`, () => {
    async function setup(t: TestContext, opts: { roots?: boolean; maxOpen?: number } = {}): Promise<Harness | undefined> {
      const dir = opts.roots === false ? undefined : rootsDir(t, { 'root.pem': EK_ROOT_PEM, 'issuer.pem': EK_ISSUER_PEM });
      return harness(t, engine, { now: NOW, config: { attestation: { ...(dir ? { ekRootsDir: dir } : {}), challengeTtlSeconds: 300, maxOpenChallenges: opts.maxOpen ?? 5 } } });
    }

    test('TCG EK credential profile: an EK certificate chaining to the configured CA gets a challenge; only the secret\'s hash is stored', async (t) => {
      const h = await setup(t);
      if (!h) return;
      const token = await createToken(h);
      const r = await challenge(h, token, body());
      assert.equal(r.statusCode, 200, r.body);
      const c = JSON.parse(r.body) as AttestChallenge;
      assert.equal(c.expiresAt, new Date(NOW.getTime() + 300_000).toISOString());
      // TPM2B_ID_OBJECT: size, TPM2B_DIGEST(HMAC-SHA256), then the encrypted TPM2B_DIGEST(32-byte secret).
      const blob = Buffer.from(c.credentialBlob, 'base64');
      assert.equal(blob.readUInt16BE(0), blob.length - 2);
      assert.equal(blob.length, 2 + 2 + 32 + 2 + 32);
      assert.equal(Buffer.from(c.encryptedSecret, 'base64').length, 2 + 256, 'RSA-2048 OAEP of the seed');
      const row = await h.db.kysely.selectFrom('attestation_challenges').selectAll().where('id', '=', c.challengeId).executeTakeFirstOrThrow();
      assert.equal(row.ek_trust, 'certificate');
      assert.equal(row.manufacturer, 'id:00001014');
      assert.match(row.secret_hash, /^[0-9a-f]{64}$/);
      assert.equal(row.used_at, null);
      assert.ok(row.token_id);
      assert.equal(row.ek_public, b64(RSA_EK_2B));
    });

    test('refused: no or an unknown or revoked token; an EK certificate for another key; an AK that is not a restricted signing key; without roots, an unregistered EK', async (t) => {
      const h = await setup(t);
      if (!h) return;
      assert.equal((await challenge(h, undefined, body())).statusCode, 401);
      assert.equal(errorOf((await challenge(h, 'not-a-token', body())).body).code, 'TOKEN_INVALID');
      const token = await createToken(h);
      const other = await challenge(h, token, body({ ekPublic: b64(ECC_EK_2B) }));
      assert.equal(other.statusCode, 403);
      assert.match(errorOf(other.body).message, /the EK certificate is for another key than ekPublic/);
      const notAk = await challenge(h, token, body({ akPublic: b64(RSA_EK_2B) }));
      assert.equal(notAk.statusCode, 403);
      assert.equal(errorOf(notAk.body).code, 'ATTESTATION_INVALID');
      assert.match(errorOf(notAk.body).message, /akPublic is not usable as an attestation key: .*decrypt is set/);
      const list = await adminCall<{ items: { id: string }[] }>(h, 'GET', '/v1/admin/tokens');
      for (const tk of list.json.items) await adminCall(h, 'DELETE', `/v1/admin/tokens/${tk.id}`);
      assert.equal(errorOf((await challenge(h, token, body())).body).code, 'TOKEN_REVOKED');
    });

    test('without attestation.ekRootsDir an EK is trusted only when registered', async (t) => {
      const h = await setup(t, { roots: false });
      if (!h) return;
      const token = await createToken(h);
      const r = await challenge(h, token, body());
      assert.equal(r.statusCode, 403);
      assert.match(errorOf(r.body).message, /no TPM manufacturer CAs are configured \(attestation\.ekRootsDir\).*devices register --ek-hash [0-9a-f]{64}/);
    });

    test('an ECC P-256 EK without a certificate, registered by hash: a challenge with an ECDH-seeded credential; ekTrust registered', async (t) => {
      const h = await setup(t);
      if (!h) return;
      const token = await createToken(h);
      const hash = ekHash(publicKeySpki(parsePublic2B(ECC_EK_2B)));
      const refused = await challenge(h, token, { ekPublic: b64(ECC_EK_2B), akPublic: b64(AK_2B) });
      assert.equal(refused.statusCode, 403);
      assert.match(errorOf(refused.body).message, new RegExp(`sent no EK certificate .*EK hash ${hash} is not registered`));
      assert.equal((await adminCall(h, 'POST', '/v1/admin/registered-devices', { ekHash: hash, name: 'kiosk' })).status, 201);
      const r = await challenge(h, token, { ekPublic: b64(ECC_EK_2B), akPublic: b64(AK_2B) });
      assert.equal(r.statusCode, 200, r.body);
      const c = JSON.parse(r.body) as AttestChallenge;
      // TPM2B_ENCRYPTED_SECRET holding the ephemeral point: TPM2B(x) TPM2B(y), 32 bytes each.
      assert.equal(Buffer.from(c.encryptedSecret, 'base64').length, 2 + 2 + 32 + 2 + 32);
      const row = await h.db.kysely.selectFrom('attestation_challenges').selectAll().where('id', '=', c.challengeId).executeTakeFirstOrThrow();
      assert.deepEqual([row.ek_trust, row.ek_hash, row.ek_cert], ['registered', hash, null]);
    });

    test('bounds: the N+1th open challenge of a token drops its oldest; expired ones are pruned; a body over 16 KiB is 413; bad base64 or TPM bytes are 400', async (t) => {
      const h = await setup(t, { maxOpen: 2 });
      if (!h) return;
      const token = await createToken(h);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push((JSON.parse((await challenge(h, token, body())).body) as AttestChallenge).challengeId);
        h.clock.now = new Date(h.clock.now.getTime() + 1000);
      }
      const rows = async () => (await h.db.kysely.selectFrom('attestation_challenges').select('id').orderBy('created_at').execute()).map((r) => r.id);
      assert.deepEqual(await rows(), ids.slice(1));
      h.clock.now = new Date(h.clock.now.getTime() + 400_000);
      const next = (JSON.parse((await challenge(h, await createToken(h), body())).body) as AttestChallenge).challengeId;
      assert.deepEqual(await rows(), [next], 'the expired ones were pruned');
      const big = await challenge(h, token, body({ pad: 'x'.repeat(16 * 1024) }));
      assert.equal(big.statusCode, 413, big.body);
      const bad = await challenge(h, token, body({ akPublic: '@@@@' }));
      assert.equal(bad.statusCode, 400, bad.body);
      const truncated = await challenge(h, token, body({ akPublic: b64(AK_2B.subarray(0, 40)) }));
      assert.equal(truncated.statusCode, 400, truncated.body);
      assert.match(errorOf(truncated.body).message, /^akPublic is not a TPM2B_PUBLIC/);
      const notJson = await challenge(h, token, '{');
      assert.equal(notJson.statusCode, 400, notJson.body);
    });

    test('bounds under a burst: 16 concurrent challenges for one token leave at most maxOpenChallenges open', async (t) => {
      const h = await setup(t, { maxOpen: 3 });
      if (!h) return;
      const token = await createToken(h);
      const replies = await Promise.all(Array.from({ length: 16 }, () => challenge(h, token, body())));
      for (const r of replies) assert.equal(r.statusCode, 200, r.body);
      const open = await h.db.kysely.selectFrom('attestation_challenges').select('id').where('used_at', 'is', null).execute();
      assert.equal(open.length, 3, `open challenges after the burst: ${open.length}`);
      const last = new Set(open.map((r) => r.id));
      assert.ok(replies.some((r) => last.has((JSON.parse(r.body) as AttestChallenge).challengeId)));
    });

    test('renew-challenge: a software device has no AK to renew with; no client certificate is 401', async (t) => {
      const h = await setup(t);
      if (!h) return;
      const r = await enroll(h, await createToken(h), (await deviceCsr()).csr);
      assert.equal(r.statusCode, 200);
      const der = certFromBody(r.body).der;
      const renew = (cert?: Buffer) =>
        h.app.inject({ method: 'POST', url: ATTEST_PATHS.renewChallenge, headers: { 'content-type': 'application/json', ...(cert ? { [CLIENT_CERT_HEADER]: b64(cert) } : {}) }, payload: JSON.stringify({ akPublic: b64(AK_2B) }) });
      assert.equal((await renew()).statusCode, 401);
      const soft = await renew(der);
      assert.equal(soft.statusCode, 403);
      assert.match(errorOf(soft.body).message, /was not enrolled with a TPM attestation/);
    });

    test('a CSR attestation that is not JSON, or names a challenge that does not exist, is refused (ATTESTATION_INVALID) and audited', async (t) => {
      const h = await setup(t);
      if (!h) return;
      const token = await createToken(h);
      const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const csr = (value: string) => createCsr({ subject: [{ type: 'CN', value: 'x' }], signer: nodeSigner(key), stringAttributes: [{ oid: ATTESTATION_ATTRIBUTE_OID, value }] });
      const notJson = await enroll(h, token, await csr('{'));
      assert.equal(notJson.statusCode, 403);
      assert.match(errorOf(notJson.body).message, /not valid JSON/);
      const unknown = await enroll(h, token, await csr(JSON.stringify({ challengeId: crypto.randomUUID(), secret: b64(crypto.randomBytes(32)), keyPublic: b64(AK_2B), certifyInfo: 'AAAA', signature: 'AAAA' })));
      assert.equal(unknown.statusCode, 403);
      assert.equal(errorOf(unknown.body).code, 'ATTESTATION_INVALID');
      assert.match(errorOf(unknown.body).message, /is unknown or was not made for this enrollment token/);
      const audited = await h.db.kysely.selectFrom('audit').select('details').where('action', '=', 'enroll.refused').execute();
      assert.equal(audited.length, 1);
      assert.equal(JSON.parse(audited[0]!.details).code, 'ATTESTATION_INVALID');
      const tok = await h.db.kysely.selectFrom('enroll_tokens').select('used_count').executeTakeFirstOrThrow();
      assert.equal(tok.used_count, 0, 'a refused attestation uses no token');
    });
  });
}
