/**
 * Issue 10: identity only from the server's records, enrollment that is safe
 * to retry, denied devices and compromised keys.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { certificateToPem, subjectAltNames } from '@latchkey/pki';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, reenroll, type Harness } from '../testing/harness.js';

const errorCode = (body: string): string => (JSON.parse(body) as { error: { code: string } }).error.code;
const baseFacts = { hostname: 'laptop-1', os: { platform: 'linux', release: '6.1.0' }, arch: 'x64', hardwareId: 'hw-1', agentVersion: '0.1.0' };
const count = async (h: Harness, table: 'devices' | 'certificates'): Promise<number> =>
  Number((await h.db.kysely.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

/** The SAN extension as openssl prints it. */
function opensslSan(der: Buffer): string {
  const r = spawnSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: certificateToPem(der), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

for (const engine of ENGINES) {
  describe(`issue 10 item 2: device facts never become an identity, on ${engine}`, () => {
    test('facts claiming userEmail get a certificate without an email SAN (openssl), and user_email stays empty', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const { csr } = await deviceCsr({ facts: { ...baseFacts, userEmail: 'ceo@corp.example' } });
      const r = await enroll(h, await createToken(h), csr);
      assert.equal(r.statusCode, 200, r.body);
      const cert = certFromBody(r.body);
      assert.equal(subjectAltNames(cert).length, 1);
      assert.ok('uri' in subjectAltNames(cert)[0]!);
      const san = opensslSan(cert.der);
      assert.match(san, /URI:spiffe:\/\/example\.com\/device\//);
      assert.doesNotMatch(san, /email|ceo@corp\.example/);
      const row = await h.db.kysely.selectFrom('devices').select(['user_email', 'facts']).executeTakeFirstOrThrow();
      assert.equal(row.user_email, null);
      // The claim stays visible as what it is: a reported fact.
      assert.match(row.facts!, /ceo@corp\.example/);
    });

    test('Unicode facts enroll; control characters and over-long strings get a clear 400, never a 500', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h, { uses: 10 });
      const unicode = { ...baseFacts, hostname: 'Jürgens-MacBook-✓-דני', os: { platform: 'darwin', release: '23.1', version: 'macOS 14 \u202e\ud800 🍎' }, userEmail: 'ü@x.de' };
      const ok = await enroll(h, token, (await deviceCsr({ facts: unicode })).csr);
      assert.equal(ok.statusCode, 200, ok.body);
      assert.doesNotMatch(opensslSan(certFromBody(ok.body).der), /email/);
      const devices = await adminCall<{ items: { facts: { hostname: string; userEmail: string } }[] }>(h, 'GET', '/v1/admin/devices');
      assert.equal(devices.json.items[0]!.facts.hostname, unicode.hostname);
      assert.equal(devices.json.items[0]!.facts.userEmail, 'ü@x.de');
      const refused: Array<[string, unknown, RegExp]> = [
        ['control character in userEmail', { ...baseFacts, userEmail: 'a\u0000b@x.de' }, /userEmail/],
        ['bell in userEmail', { ...baseFacts, userEmail: 'a\u0007@x.de' }, /userEmail/],
        ['control character in hostname', { ...baseFacts, hostname: 'lap\u001btop' }, /hostname/],
        ['hostname over 253 characters', { ...baseFacts, hostname: 'h'.repeat(254) }, /hostname/],
        ['userEmail over 254 characters', { ...baseFacts, userEmail: `${'u'.repeat(250)}@x.de` }, /userEmail/],
        ['facts over MAX_FACTS_JSON', { ...baseFacts, os: { platform: 'linux', release: 'r', version: 'v'.repeat(200) }, hardwareId: 'x'.repeat(128), padding: 'p'.repeat(4000) }, /facts/],
      ];
      for (const [name, facts, re] of refused) {
        const r = await enroll(h, token, (await deviceCsr({ facts })).csr);
        assert.equal(r.statusCode, 400, `${name}: ${r.body}`);
        assert.equal(errorCode(r.body), 'BAD_REQUEST', name);
        assert.match(r.body, re, name);
      }
      assert.equal(await count(h, 'devices'), 1);
    });

    test('RFC 7030 §4.2.3: a pending device with Unicode facts is approved and its retry gets a certificate without email', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      assert.equal((await adminCall(h, 'PUT', '/v1/admin/groups/contractors', { certLifetimeSeconds: 3600, requireApproval: true })).status, 200);
      const token = await createToken(h, { group: 'contractors' });
      const { csr } = await deviceCsr({ facts: { ...baseFacts, hostname: 'ноутбук', userEmail: 'ü@x.de' } });
      const first = await enroll(h, token, csr);
      assert.equal(first.statusCode, 202, first.body);
      const deviceId = (JSON.parse(first.body) as { deviceId: string }).deviceId;
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/approve`)).status, 200);
      const done = await enroll(h, token, csr);
      assert.equal(done.statusCode, 200, done.body);
      assert.deepEqual(subjectAltNames(certFromBody(done.body)), [{ uri: `spiffe://example.com/device/${deviceId}` }]);
    });
  });

  describe(`issue 10 §6: a key revoked for keyCompromise is never enrolled again, on ${engine}`, () => {
    test('every key the device held is refused at simpleenroll and simplereenroll with KEY_COMPROMISED; a fresh key enrolls', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const first = await deviceCsr();
      const e = await enroll(h, await createToken(h), first.csr);
      assert.equal(e.statusCode, 200, e.body);
      const deviceId = (await adminCall<{ items: { id: string }[] }>(h, 'GET', '/v1/admin/devices')).json.items[0]!.id;
      const renewedKey = await deviceCsr();
      assert.equal((await reenroll(h, certFromBody(e.body).der, renewedKey.csr)).statusCode, 200);
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/revoke`, { reason: 'keyCompromise' })).status, 200);

      for (const key of [first.key, renewedKey.key]) {
        const again = await enroll(h, await createToken(h), (await deviceCsr({ key })).csr);
        assert.equal(again.statusCode, 403, again.body);
        assert.equal(errorCode(again.body), 'KEY_COMPROMISED');
        assert.match(again.body, /make a new key/);
      }
      // Not even a pending record in a group that needs approval.
      assert.equal((await adminCall(h, 'PUT', '/v1/admin/groups/contractors', { certLifetimeSeconds: 3600, requireApproval: true })).status, 200);
      const pending = await enroll(h, await createToken(h, { group: 'contractors' }), (await deviceCsr({ key: first.key })).csr);
      assert.equal(errorCode(pending.body), 'KEY_COMPROMISED');
      const tokens = await adminCall<{ items: { usedCount: number }[] }>(h, 'GET', '/v1/admin/tokens');
      assert.equal(tokens.json.items.filter((x) => x.usedCount > 0).length, 1, 'refusals take no token use');

      // Another device cannot renew onto the compromised key either.
      const other = await enroll(h, await createToken(h), (await deviceCsr()).csr);
      assert.equal(other.statusCode, 200, other.body);
      const onto = await reenroll(h, certFromBody(other.body).der, (await deviceCsr({ key: renewedKey.key })).csr);
      assert.equal(onto.statusCode, 403, onto.body);
      assert.equal(errorCode(onto.body), 'KEY_COMPROMISED');
      assert.equal(await count(h, 'devices'), 2);
    });

    test('a revocation for another reason does not blacklist the key', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await deviceCsr();
      assert.equal((await enroll(h, await createToken(h), dev.csr)).statusCode, 200);
      const deviceId = (await adminCall<{ items: { id: string }[] }>(h, 'GET', '/v1/admin/devices')).json.items[0]!.id;
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/revoke`, { reason: 'superseded' })).status, 200);
      const again = await enroll(h, await createToken(h), (await deviceCsr({ key: dev.key })).csr);
      assert.equal(again.statusCode, 200, again.body);
    });
  });

  describe(`issue 10 item 4: enrollment is safe to retry, on ${engine}`, () => {
    test('RFC 7030 §4.2.1: the same key and token again get the certificate already issued: same serial, one device, one token use', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      for (const uses of [1, 5]) {
        const token = await createToken(h, { uses });
        const dev = await deviceCsr();
        const first = await enroll(h, token, dev.csr);
        assert.equal(first.statusCode, 200, first.body);
        // A lost answer: the client retries the same CSR, then a fresh CSR for the same key.
        for (const csr of [dev.csr, (await deviceCsr({ key: dev.key })).csr]) {
          const again = await enroll(h, token, csr);
          assert.equal(again.statusCode, 200, again.body);
          assert.equal(certFromBody(again.body).serialHex, certFromBody(first.body).serialHex);
        }
      }
      assert.equal(await count(h, 'devices'), 2);
      assert.equal(await count(h, 'certificates'), 2);
      const tokens = await adminCall<{ items: { uses: number; usedCount: number }[] }>(h, 'GET', '/v1/admin/tokens');
      assert.deepEqual(tokens.json.items.map((x) => x.usedCount), [1, 1]);
    });

    test('another key with an exhausted token is still refused; a revoked device\'s key gets DEVICE_REVOKED, not its old certificate', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h, { uses: 1 });
      const dev = await deviceCsr();
      assert.equal((await enroll(h, token, dev.csr)).statusCode, 200);
      const other = await enroll(h, token, (await deviceCsr()).csr);
      assert.equal(other.statusCode, 403);
      assert.equal(errorCode(other.body), 'TOKEN_EXHAUSTED');
      const deviceId = (await adminCall<{ items: { id: string }[] }>(h, 'GET', '/v1/admin/devices')).json.items[0]!.id;
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/revoke`, { reason: 'superseded' })).status, 200);
      const replayed = await enroll(h, token, dev.csr);
      assert.equal(replayed.statusCode, 403, replayed.body);
      assert.equal(errorCode(replayed.body), 'DEVICE_REVOKED');
      assert.equal(await count(h, 'certificates'), 1);
    });

    test('the same request sent 10 times at once makes one device and takes one use', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h, { uses: 5 });
      const dev = await deviceCsr();
      const results = await Promise.all(Array.from({ length: 10 }, () => enroll(h, token, dev.csr)));
      const serials = new Set(results.map((r) => (assert.equal(r.statusCode, 200, r.body), certFromBody(r.body).serialHex)));
      assert.equal(serials.size, 1);
      assert.equal(await count(h, 'devices'), 1);
      const tokens = await adminCall<{ items: { usedCount: number }[] }>(h, 'GET', '/v1/admin/tokens');
      assert.equal(tokens.json.items[0]!.usedCount, 1);
    });

    test('RFC 7030 §4.2.3: after approval, the retried request returns the same certificate every time', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      assert.equal((await adminCall(h, 'PUT', '/v1/admin/groups/contractors', { certLifetimeSeconds: 3600, requireApproval: true })).status, 200);
      const token = await createToken(h, { group: 'contractors', uses: 3 });
      const dev = await deviceCsr();
      const pending = await Promise.all(Array.from({ length: 5 }, () => enroll(h, token, dev.csr)));
      for (const p of pending) assert.equal(p.statusCode, 202, p.body);
      const ids = new Set(pending.map((p) => (JSON.parse(p.body) as { deviceId: string }).deviceId));
      assert.equal(ids.size, 1, 'one pending device for the same request sent at once');
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${[...ids][0]}/approve`)).status, 200);
      const serials = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const r = await enroll(h, token, dev.csr);
        assert.equal(r.statusCode, 200, r.body);
        serials.add(certFromBody(r.body).serialHex);
      }
      assert.equal(serials.size, 1);
      assert.equal(await count(h, 'certificates'), 1);
      const tokens = await adminCall<{ items: { usedCount: number }[] }>(h, 'GET', '/v1/admin/tokens');
      assert.equal(tokens.json.items[0]!.usedCount, 1);
    });
  });

  describe(`issue 10 §5: devices deny, on ${engine}`, () => {
    async function adminToken(h: Harness, role: 'viewer' | 'operator'): Promise<string> {
      const secret = `lk_adm_${randomBytes(16).toString('hex')}`;
      await h.db.kysely.insertInto('admin_tokens').values({ id: randomUUID(), secret_hash: createHash('sha256').update(secret).digest('hex'), name: role, role, created_at: new Date().toISOString(), revoked_at: null }).execute();
      return secret;
    }

    test('a denied pending device is refused for good: DEVICE_DENIED on every retry, no new pending record, the token use is not given back', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      assert.equal((await adminCall(h, 'PUT', '/v1/admin/groups/contractors', { certLifetimeSeconds: 3600, requireApproval: true })).status, 200);
      const token = await createToken(h, { group: 'contractors', uses: 2 });
      const dev = await deviceCsr();
      const first = await enroll(h, token, dev.csr);
      assert.equal(first.statusCode, 202, first.body);
      const deviceId = (JSON.parse(first.body) as { deviceId: string }).deviceId;

      const viewer = await adminToken(h, 'viewer');
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/deny`, {}, viewer)).status, 403);
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/deny`, { reason: 'x'.repeat(201) })).status, 400);
      const operator = await adminToken(h, 'operator');
      const d = await adminCall<{ status: string }>(h, 'POST', `/v1/admin/devices/${deviceId}/deny`, { reason: 'not one of ours' }, operator);
      assert.equal(d.status, 200, JSON.stringify(d.json));
      assert.equal(d.json.status, 'denied');

      for (const csr of [dev.csr, (await deviceCsr({ key: dev.key })).csr]) {
        const again = await enroll(h, token, csr);
        assert.equal(again.statusCode, 403, again.body);
        assert.equal(errorCode(again.body), 'DEVICE_DENIED');
        assert.match(again.body, new RegExp(`denied the enrollment of device ${deviceId}`));
      }
      assert.equal(await count(h, 'devices'), 1, 'no new pending record for the same key');
      const tokens = await adminCall<{ items: { usedCount: number }[] }>(h, 'GET', '/v1/admin/tokens');
      assert.equal(tokens.json.items[0]!.usedCount, 1, 'the use is not given back');

      // Only pending devices: denied twice, approved after a deny, an active device → 409.
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/deny`, {})).status, 409);
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/approve`)).status, 409);
      const active = await enroll(h, await createToken(h), (await deviceCsr()).csr);
      assert.equal(active.statusCode, 200);
      const activeId = (await adminCall<{ items: { id: string; status: string }[] }>(h, 'GET', '/v1/admin/devices?status=active')).json.items[0]!.id;
      const refused = await adminCall<{ error: { code: string; message: string } }>(h, 'POST', `/v1/admin/devices/${activeId}/deny`, {});
      assert.equal(refused.status, 409);
      assert.match(refused.json.error.message, /not pending approval.*devices revoke/);

      const listed = await adminCall<{ items: { id: string }[] }>(h, 'GET', '/v1/admin/devices?status=denied');
      assert.deepEqual(listed.json.items.map((x) => x.id), [deviceId]);
      const audit = await adminCall<{ items: { action: string; target: string; details: { reason?: string } }[] }>(h, 'GET', '/v1/admin/audit?action=device.deny');
      assert.deepEqual(audit.json.items.map((e) => [e.target, e.details.reason]), [[deviceId, 'not one of ours']]);
    });
  });
}
