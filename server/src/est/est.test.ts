import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, test } from 'node:test';
import { createCsr, decodeCertsOnly, encodeExtension, nodeSigner, OID, parseCertificate, subjectAltNames, subjectAltNameValue, basicConstraintsValue } from '@latchkey/pki';
import { EST_PATHS } from '@latchkey/protocol';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, reenroll, type Harness } from '../testing/harness.js';
import { raceOnOneFile } from '../testing/sqlite-race.js';

const count = async (h: Harness, table: 'devices' | 'certificates'): Promise<number> =>
  Number((await h.db.kysely.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
const errorCode = (body: string): string => (JSON.parse(body) as { error: { code: string } }).error.code;

for (const engine of ENGINES) {
  describe(`EST enrollment on ${engine}`, () => {
    test('RFC 7030 §4.1: cacerts returns the issuing CA and the root as base64 certs-only PKCS#7', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const r = await h.app.inject({ method: 'GET', url: EST_PATHS.cacerts });
      assert.equal(r.statusCode, 200);
      assert.match(String(r.headers['content-type']), /^application\/pkcs7-mime/);
      assert.equal(r.headers['content-transfer-encoding'], 'base64');
      const certs = decodeCertsOnly(r.body).map((c) => parseCertificate(c));
      assert.deepEqual(certs.map((c) => c.serialHex), [h.issuing.serialHex, h.root.serialHex]);
    });

    test('RFC 7030 §4.2.1: simpleenroll with a token issues a certificate whose identity comes from the server', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h);
      const { csr } = await deviceCsr({ cn: 'alice laptop/../x', facts: { hostname: 'alice-mbp', os: { platform: 'darwin', release: '23.1' }, arch: 'arm64', hardwareId: 'C02XYZ', agentVersion: '0.1.0' } });
      const r = await enroll(h, token, csr);
      assert.equal(r.statusCode, 200, r.body);
      const cert = certFromBody(r.body);
      const devices = await adminCall<{ items: { id: string; name: string; status: string; facts: { hostname: string } }[] }>(h, 'GET', '/v1/admin/devices');
      const d = devices.json.items[0]!;
      assert.equal(d.status, 'active');
      assert.equal(d.name, 'alice-laptop-..-x');
      assert.equal(d.facts.hostname, 'alice-mbp');
      assert.deepEqual(subjectAltNames(cert), [{ uri: `spiffe://example.com/device/${d.id}` }]);
      assert.equal(cert.notAfter.getTime() - h.clock.now.getTime(), 86_400_000 - (h.clock.now.getTime() % 1000));
    });

    test('a token use count holds under concurrency: 20 parallel enrollments with a 1-use token → 1 certificate', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h, { uses: 1 });
      const csrs = await Promise.all(Array.from({ length: 20 }, (_, i) => deviceCsr({ cn: `laptop-${i}` })));
      const results = await Promise.all(csrs.map((c) => enroll(h, token, c.csr)));
      const ok = results.filter((r) => r.statusCode === 200);
      const refused = results.filter((r) => r.statusCode === 403);
      assert.equal(ok.length, 1, results.map((r) => r.body.slice(0, 80)).join('\n'));
      assert.equal(refused.length, 19);
      for (const r of refused) assert.equal(errorCode(r.body), 'TOKEN_EXHAUSTED');
      assert.match(refused[0]!.body, /used 1\/1 times; create a new one with `latchkey-server token create`/);
      assert.equal(await count(h, 'certificates'), 1);
      assert.equal(await count(h, 'devices'), 1);
    });

    test('bad input gets a clear 4xx and writes nothing', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h, { uses: 5 });
      const { csr } = await deviceCsr();
      const tampered = Buffer.from(csr);
      tampered[tampered.indexOf(Buffer.from('laptop-1')) + 2]! ^= 1;
      const rsa1024 = await createCsr({ subject: [{ type: 'CN', value: 'old' }], signer: nodeSigner(crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey) });
      const withSan = await createCsr({ subject: [{ type: 'CN', value: 'x' }], signer: nodeSigner(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), extensions: [encodeExtension(OID.subjectAltName, false, subjectAltNameValue([{ uri: 'spiffe://example.com/device/other' }]))] });
      const asCa = await createCsr({ subject: [{ type: 'CN', value: 'x' }], signer: nodeSigner(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), extensions: [encodeExtension(OID.basicConstraints, true, basicConstraintsValue(true))] });
      const cases: Array<[string, () => ReturnType<typeof enroll>, number, string, RegExp?]> = [
        ['garbage body', () => h.app.inject({ method: 'POST', url: EST_PATHS.simpleenroll, headers: { 'content-type': 'application/pkcs10', authorization: `Bearer ${token}` }, payload: 'hello world!' }), 400, 'CSR_MALFORMED'],
        ['truncated CSR', () => enroll(h, token, csr.subarray(0, csr.length - 10)), 400, 'CSR_MALFORMED', /truncated/],
        ['wrong content type', () => enroll(h, token, csr, 'application/json'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
        ['body over the limit', () => h.app.inject({ method: 'POST', url: EST_PATHS.simpleenroll, headers: { 'content-type': 'application/pkcs10', authorization: `Bearer ${token}` }, payload: Buffer.alloc(h.config.bodyLimitBytes + 10, 0x41) }), 413, 'PAYLOAD_TOO_LARGE'],
        ['bad signature', () => enroll(h, token, tampered), 400, 'CSR_BAD_SIGNATURE'],
        ['weak key', () => enroll(h, token, rsa1024), 400, 'CSR_POLICY', /1024 bits/],
        ['SAN requested', () => enroll(h, token, withSan), 400, 'CSR_POLICY', /set by the server/],
        ['CA:true requested', () => enroll(h, token, asCa), 400, 'CSR_POLICY', /never CAs/],
        ['no token', () => enroll(h, undefined, csr), 401, 'UNAUTHORIZED', /Authorization: Bearer/],
        ['wrong token', () => enroll(h, 'lk_enr_wrong', csr), 401, 'TOKEN_INVALID'],
      ];
      for (const [name, call, status, code, re] of cases) {
        const r = await call();
        assert.equal(r.statusCode, status, `${name}: ${r.body}`);
        assert.equal(errorCode(r.body), code, name);
        if (re) assert.match(r.body, re, name);
      }
      assert.equal(await count(h, 'devices'), 0);
      assert.equal(await count(h, 'certificates'), 0);
      const tokens = await adminCall<{ items: { usedCount: number }[] }>(h, 'GET', '/v1/admin/tokens');
      assert.equal(tokens.json.items[0]!.usedCount, 0);
    });

    test('an expired or revoked token is refused with what to do', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const expired = await createToken(h, { ttl: '1h' });
      const revokedTok = await adminCall<{ token: string; info: { id: string } }>(h, 'POST', '/v1/admin/tokens', {});
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/tokens/${revokedTok.json.info.id}`)).status, 204);
      h.clock.now = new Date(h.clock.now.getTime() + 2 * 3_600_000);
      const { csr } = await deviceCsr();
      const a = await enroll(h, expired, csr);
      assert.equal(a.statusCode, 403);
      assert.equal(errorCode(a.body), 'TOKEN_EXPIRED');
      const b = await enroll(h, revokedTok.json.token, csr);
      assert.equal(errorCode(b.body), 'TOKEN_REVOKED');
    });

    test('RFC 7030 §4.2.3: 202 + Retry-After while approval is pending; the same request succeeds once approved', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      assert.equal((await adminCall(h, 'PUT', '/v1/admin/groups/contractors', { certLifetimeSeconds: 3600, requireApproval: true })).status, 200);
      const token = await createToken(h, { group: 'contractors' });
      const { csr } = await deviceCsr({ cn: 'contractor-7' });
      const first = await enroll(h, token, csr);
      assert.equal(first.statusCode, 202, first.body);
      assert.equal(first.headers['retry-after'], '10');
      const deviceId = (JSON.parse(first.body) as { deviceId: string }).deviceId;
      const again = await enroll(h, token, csr);
      assert.equal(again.statusCode, 202);
      // A different key with the same (now used) token is another request: refused.
      assert.equal(errorCode((await enroll(h, token, (await deviceCsr()).csr)).body), 'TOKEN_EXHAUSTED');
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/approve`)).status, 200);
      const done = await enroll(h, token, csr);
      assert.equal(done.statusCode, 200, done.body);
      const cert = certFromBody(done.body);
      assert.deepEqual(subjectAltNames(cert), [{ uri: `spiffe://example.com/device/${deviceId}` }]);
      assert.equal(cert.notAfter.getTime() - cert.notBefore.getTime(), 3_600_000 + 300_000);
      // Replaying the completed request does not mint a second certificate: it gets the same one (issue 10 item 4).
      const replayed = await enroll(h, token, csr);
      assert.equal(replayed.statusCode, 200, replayed.body);
      assert.equal(certFromBody(replayed.body).serialHex, cert.serialHex);
      assert.equal(await count(h, 'certificates'), 1);
    });

    test('RFC 7030 §4.2.3: a pending key asking again with another valid token continues its request (same device, group and token use); a bad token does not; a revoked first token is not continued', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      assert.equal((await adminCall(h, 'PUT', '/v1/admin/groups/contractors', { certLifetimeSeconds: 3600, requireApproval: true })).status, 200);
      const first = await adminCall<{ token: string; info: { id: string } }>(h, 'POST', '/v1/admin/tokens', { group: 'contractors' });
      const second = await adminCall<{ token: string; info: { id: string } }>(h, 'POST', '/v1/admin/tokens', {});
      const { csr } = await deviceCsr({ cn: 'rotated-1' });
      const a = await enroll(h, first.json.token, csr);
      assert.equal(a.statusCode, 202, a.body);
      const deviceId = (JSON.parse(a.body) as { deviceId: string }).deviceId;
      // The new token is of another group (no approval there): the request still waits, in its own group.
      const b = await enroll(h, second.json.token, csr);
      assert.equal(b.statusCode, 202, b.body);
      assert.equal((JSON.parse(b.body) as { deviceId: string }).deviceId, deviceId);
      assert.equal(errorCode((await enroll(h, 'lk_enr_not-a-token', csr)).body), 'TOKEN_INVALID');
      assert.equal(await count(h, 'devices'), 1);
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${deviceId}/approve`)).status, 200);
      const done = await enroll(h, second.json.token, csr);
      assert.equal(done.statusCode, 200, done.body);
      assert.deepEqual(subjectAltNames(certFromBody(done.body)), [{ uri: `spiffe://example.com/device/${deviceId}` }]);
      const devices = await h.db.kysely.selectFrom('devices').select(['id', 'group_name', 'token_id']).execute();
      assert.deepEqual(devices, [{ id: deviceId, group_name: 'contractors', token_id: first.json.info.id }]);
      const used = await h.db.kysely.selectFrom('enroll_tokens').select(['id', 'used_count']).orderBy('used_count', 'desc').execute();
      assert.deepEqual(used.map((r) => [r.id, Number(r.used_count)]), [[first.json.info.id, 1], [second.json.info.id, 0]]);

      // A request made with a token revoked since is not continued: the new token makes a request of its own.
      const third = await adminCall<{ token: string; info: { id: string } }>(h, 'POST', '/v1/admin/tokens', { group: 'contractors' });
      const fourth = await adminCall<{ token: string; info: { id: string } }>(h, 'POST', '/v1/admin/tokens', { group: 'contractors' });
      const other = (await deviceCsr({ cn: 'rotated-2' })).csr;
      const c = await enroll(h, third.json.token, other);
      assert.equal(c.statusCode, 202, c.body);
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/tokens/${third.json.info.id}`)).status, 204);
      const d = await enroll(h, fourth.json.token, other);
      assert.equal(d.statusCode, 202, d.body);
      assert.notEqual((JSON.parse(d.body) as { deviceId: string }).deviceId, (JSON.parse(c.body) as { deviceId: string }).deviceId);
    });
  });

  describe(`EST extras on ${engine}`, () => {
    test('RFC 7030 §4.5: csrattrs names the key type, signature algorithm and the device facts attribute (openssl asn1parse)', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const r = await h.app.inject({ method: 'GET', url: EST_PATHS.csrattrs });
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['content-type'], 'application/csrattrs');
      const { spawnSync } = await import('node:child_process');
      const parsed = spawnSync('openssl', ['asn1parse', '-inform', 'DER'], { input: Buffer.from(r.body, 'base64'), encoding: 'utf8' });
      assert.equal(parsed.status, 0, parsed.stderr);
      assert.match(parsed.stdout, /OBJECT\s+:id-ecPublicKey[\s\S]*OBJECT\s+:prime256v1[\s\S]*OBJECT\s+:ecdsa-with-SHA256[\s\S]*OBJECT\s+:1\.3\.6\.1\.4\.1\.59402\.1\.1/);
    });

    test('unauthenticated enrollment is rate limited per address, token guessing included', async (t) => {
      const h = await harness(t, engine, { config: { enrollRateLimitPerMinute: 5 } });
      if (!h) return;
      const { csr } = await deviceCsr();
      const codes: number[] = [];
      for (let i = 0; i < 8; i++) codes.push((await enroll(h, `lk_enr_guess${i}`, csr)).statusCode);
      assert.deepEqual(codes, [401, 401, 401, 401, 401, 429, 429, 429]);
      const r = await enroll(h, 'lk_enr_guess', csr);
      assert.match(r.body, /RATE_LIMITED.*retry in a minute/);
    });
  });

  describe(`EST re-enrollment and recovery on ${engine}`, () => {
    async function enrolled(h: Harness): Promise<{ cert: Buffer; deviceId: string }> {
      const r = await enroll(h, await createToken(h), (await deviceCsr()).csr);
      assert.equal(r.statusCode, 200, r.body);
      const cert = certFromBody(r.body);
      const devices = await adminCall<{ items: { id: string }[] }>(h, 'GET', '/v1/admin/devices');
      return { cert: cert.der, deviceId: devices.json.items[0]!.id };
    }

    test('RFC 7030 §4.2.2: simplereenroll with the current certificate issues for a fresh key, same identity', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const { cert, deviceId } = await enrolled(h);
      const facts = { hostname: 'laptop-renamed', os: { platform: 'linux', release: '6.12.0' }, arch: 'x64', hardwareId: 'hw-1', agentVersion: '0.2.0' };
      const r = await reenroll(h, cert, (await deviceCsr({ cn: 'ignored-name', facts })).csr);
      assert.equal(r.statusCode, 200, r.body);
      const after = await adminCall<{ name: string; facts: { os: { release: string } } }>(h, 'GET', `/v1/admin/devices/${deviceId}`);
      assert.equal(after.json.facts.os.release, '6.12.0', 'renewal refreshes reported facts');
      assert.notEqual(after.json.name, 'ignored-name', 'the name stays the one on record');
      const renewed = certFromBody(r.body);
      assert.notEqual(renewed.serialHex, parseCertificate(cert).serialHex);
      assert.deepEqual(renewed.subject, parseCertificate(cert).subject);
      assert.deepEqual(subjectAltNames(renewed), [{ uri: `spiffe://example.com/device/${deviceId}` }]);
      const show = await adminCall<{ certificates: { kind: string }[] }>(h, 'GET', `/v1/admin/devices/${deviceId}`);
      assert.deepEqual(show.json.certificates.map((c) => c.kind).sort(), ['enroll', 'renew']);
    });

    test('re-enrollment refuses the same key, a missing or foreign client certificate', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h);
      const dev = await deviceCsr();
      const r = await enroll(h, token, dev.csr);
      const cert = certFromBody(r.body).der;
      const same = await reenroll(h, cert, (await deviceCsr({ key: dev.key })).csr);
      assert.equal(same.statusCode, 400);
      assert.match(same.body, /fresh key/);
      assert.equal(errorCode((await reenroll(h, undefined, (await deviceCsr()).csr)).body), 'CLIENT_CERT_REQUIRED');
      // A certificate from another CA with the same names.
      const other = await harness(t, 'sqlite');
      const foreign = certFromBody((await enroll(other!, await createToken(other!), (await deviceCsr()).csr)).body).der;
      const f = await reenroll(h, foreign, (await deviceCsr()).csr);
      assert.equal(f.statusCode, 403);
      assert.equal(errorCode(f.body), 'CLIENT_CERT_UNKNOWN');
    });

    test('recovery: expired within the grace window → re-enrolls; past it → 403 saying to enroll again', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const { cert } = await enrolled(h);
      const notAfter = parseCertificate(cert).notAfter.getTime();
      h.clock.now = new Date(notAfter + 3 * 86_400_000);
      const r = await reenroll(h, cert, (await deviceCsr()).csr);
      assert.equal(r.statusCode, 200, r.body);
      const recovered = certFromBody(r.body);
      // The old (now superseded) certificate cannot recover again.
      const again = await reenroll(h, cert, (await deviceCsr()).csr);
      assert.equal(again.statusCode, 403);
      assert.match(again.body, /superseded/);
      h.clock.now = new Date(recovered.notAfter.getTime() + 15 * 86_400_000);
      const late = await reenroll(h, recovered.der, (await deviceCsr()).csr);
      assert.equal(late.statusCode, 403);
      assert.equal(errorCode(late.body), 'CERT_EXPIRED_PAST_GRACE');
      assert.match(late.body, /enroll again with a new token/);
      const audit = await adminCall<{ items: { action: string }[] }>(h, 'GET', '/v1/admin/audit');
      assert.ok(audit.json.items.some((e) => e.action === 'certificate.recover'));
    });
  });
}

describe('SQLite: enrollments racing on several connections to one file', () => {
  // In one process the app's single SQLite connection runs transactions one by one; here four
  // connections (worker threads, each running the app) enroll at the same instant.
  test('a token use count holds across connections: 4 × 5 enrollments with a 1-use token → 1 certificate, 19 TOKEN_EXHAUSTED; a 3-use token → 3', { timeout: 120_000 }, async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    for (const uses of [1, 3]) {
      const token = await createToken(h, { uses });
      const results = await raceOnOneFile(h.dataDir, Array.from({ length: 4 }, () => ({ kind: 'enroll' as const, token, count: 5 })));
      const statuses = results.flatMap((r) => r.statuses!);
      const codes = results.flatMap((r) => r.codes!);
      assert.equal(statuses.length, 20);
      assert.equal(statuses.filter((s) => s === 200).length, uses, `statuses ${statuses.join(' ')}; codes ${codes.join(' ')}`);
      assert.deepEqual(codes, Array.from({ length: 20 - uses }, () => 'TOKEN_EXHAUSTED'));
      const row = await h.db.kysely.selectFrom('enroll_tokens').select('used_count').where('uses', '=', uses).executeTakeFirstOrThrow();
      assert.equal(row.used_count, uses);
    }
    assert.equal(await count(h, 'certificates'), 4);
    assert.equal(await count(h, 'devices'), 4);
  });
});
