import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCrl, parseOcspResponse, verifyCrl } from '@latchkey/pki';
import { EST_PATHS } from '@latchkey/protocol';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, reenroll, type Harness } from '../testing/harness.js';
import { ocspRequestFor } from '../testing/ocsp-request.js';
import type { DeliveredEvent } from '../events/event-bus.js';
import { serverLoggerOptions } from '../logger.js';

async function enrolledDevice(h: Harness): Promise<{ id: string; cert: Buffer }> {
  const r = await enroll(h, await createToken(h), (await deviceCsr()).csr);
  assert.equal(r.statusCode, 200, r.body);
  const cert = certFromBody(r.body);
  const list = await adminCall<{ items: { id: string; certificate: { serial: string } }[] }>(h, 'GET', '/v1/admin/devices');
  const id = list.json.items.find((d) => d.certificate.serial === cert.serialHex)!.id;
  return { id, cert: cert.der };
}

/** An OCSP request for `cert` made by openssl (independent of our encoder). */
const opensslOcspRequest = (h: Harness, cert: Buffer, extra: string[] = []): Buffer => ocspRequestFor(h.issuing, cert, extra);

for (const engine of ENGINES) {
  describe(`revocation on ${engine}`, () => {
    test('devices revoke: every certificate revoked, in the CRL at once, OCSP says revoked, renewal refused', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolledDevice(h);
      const renewed = certFromBody((await reenroll(h, dev.cert, (await deviceCsr()).csr)).body);
      const before = parseCrl((await h.app.inject({ method: 'GET', url: '/crl' })).rawPayload);
      assert.equal(before.entries.length, 0);

      const rv = await adminCall<{ serials: string[] }>(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, { reason: 'keyCompromise' });
      assert.equal(rv.status, 200, JSON.stringify(rv.json));
      assert.equal(rv.json.serials.length, 2);

      const crlRes = await h.app.inject({ method: 'GET', url: '/crl' });
      assert.equal(crlRes.headers['content-type'], 'application/pkix-crl');
      assert.match(String(crlRes.headers['cache-control']), /max-age=\d+/);
      const crl = parseCrl(crlRes.rawPayload);
      assert.ok(verifyCrl(crl, h.issuing));
      assert.ok(crl.crlNumber! > before.crlNumber!, 'CRL number increases');
      assert.deepEqual(crl.entries.map((e) => e.serialHex).sort(), rv.json.serials.sort());
      assert.ok(crl.entries.every((e) => e.reason === 'keyCompromise'));
      const pem = await h.app.inject({ method: 'GET', url: '/crl.pem' });
      assert.match(pem.body, /^-----BEGIN X509 CRL-----/);
      const rootCrl = parseCrl((await h.app.inject({ method: 'GET', url: '/crl/root' })).rawPayload);
      assert.equal(rootCrl.entries.length, 0);

      const post = await h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: opensslOcspRequest(h, renewed.der) });
      const resp = parseOcspResponse(post.rawPayload);
      assert.equal(resp.status, 'successful');
      assert.equal(resp.basic!.responses[0]!.status, 'revoked');
      assert.equal(resp.basic!.responses[0]!.reason, 'keyCompromise');
      const get = await h.app.inject({ method: 'GET', url: `/ocsp/${encodeURIComponent(opensslOcspRequest(h, dev.cert).toString('base64'))}` });
      assert.equal(parseOcspResponse(get.rawPayload).basic!.responses[0]!.status, 'revoked');

      for (const cert of [dev.cert, renewed.der]) {
        const r = await reenroll(h, cert, (await deviceCsr()).csr);
        assert.equal(r.statusCode, 403);
        assert.match(r.body, /DEVICE_REVOKED/);
      }
      // Recovery is refused too, even within the grace window.
      h.clock.now = new Date(renewed.notAfter.getTime() + 86_400_000);
      assert.match((await reenroll(h, renewed.der, (await deviceCsr()).csr)).body, /DEVICE_REVOKED/);
      // A retry (the admin's answer was lost) succeeds, changes nothing and delivers again.
      const again = await adminCall<{ serials: string[]; alreadyRevoked: boolean; crlNumber: number; device: { revocationReason: string } }>(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, {});
      assert.equal(again.status, 200);
      assert.equal(again.json.alreadyRevoked, true);
      assert.deepEqual(again.json.serials, []);
      assert.equal(again.json.device.revocationReason, 'keyCompromise');
      assert.ok(again.json.crlNumber > crl.crlNumber!);
    });

    test('a reused OCSP answer (request without nonce) turns revoked the moment the device is revoked', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolledDevice(h);
      const req = opensslOcspRequest(h, dev.cert, ['-no_nonce']);
      const ask = async () => parseOcspResponse((await h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: req })).rawPayload).basic!;
      const first = await ask();
      assert.equal(first.responses[0]!.status, 'good');
      h.clock.now = new Date(h.clock.now.getTime() + 10_000);
      const second = await ask();
      assert.equal(second.producedAt.getTime(), first.producedAt.getTime(), 'the signed answer is reused');
      await adminCall(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, { reason: 'keyCompromise' });
      const third = await ask();
      assert.equal(third.responses[0]!.status, 'revoked');
      // Past the reuse window a fresh answer is signed.
      h.clock.now = new Date(h.clock.now.getTime() + 61_000);
      assert.ok((await ask()).producedAt.getTime() > third.producedAt.getTime());
    });

    test('a revocation succeeds even if the CRL rebuild fails; its outbox row delivers the CRL and the event on the next sweep', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolledDevice(h);
      await h.app.inject({ method: 'GET', url: '/crl' });
      // Fault injection: the revoke's own transaction commits, the CRL's (the next one) fails.
      const k = h.db.kysely as unknown as { transaction: () => unknown };
      const real = k.transaction.bind(k);
      let calls = 0;
      k.transaction = () => {
        calls++;
        if (calls === 2) throw new Error('injected: database unavailable');
        return real();
      };
      const events: DeliveredEvent[] = [];
      t.after(h.bus.subscribe((e) => events.push(e)));
      const rv = await adminCall<{ serials: string[]; crlNumber: number | null }>(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, { reason: 'keyCompromise' });
      assert.equal(rv.status, 200);
      assert.equal(rv.json.crlNumber, null, 'not delivered yet');
      assert.ok(calls >= 2, 'the CRL rebuild was attempted');
      assert.ok(h.logs.some((l) => /CRL rebuild or event after a revocation failed; the revocation is committed/.test(l)));
      assert.equal(events.filter((e) => e.type === 'revocation').length, 0);
      // The sweep takes over a row a few seconds old.
      h.clock.now = new Date(h.clock.now.getTime() + 10_000);
      assert.equal(await h.outbox.drain(), 1);
      const rev = events.find((e) => e.type === 'revocation');
      assert.ok(rev?.type === 'revocation' && rev.deviceId === dev.id);
      const crl = parseCrl((await h.app.inject({ method: 'GET', url: '/crl' })).rawPayload);
      assert.deepEqual(crl.entries.map((e) => e.serialHex), rv.json.serials);
      assert.equal(String(crl.crlNumber), String(rev.crlNumber), 'the event names the CRL that lists it');
      assert.equal(await h.outbox.drain(0), 0, 'delivered once, then the row is gone');
    });

    test('CRL numbers stay monotonic across a restart', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolledDevice(h);
      await adminCall(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, {});
      const n1 = parseCrl((await h.app.inject({ method: 'GET', url: '/crl' })).rawPayload).crlNumber!;
      await h.restart();
      const dev2 = await enrolledDevice(h);
      await adminCall(h, 'POST', `/v1/admin/devices/${dev2.id}/revoke`, {});
      const crl = parseCrl((await h.app.inject({ method: 'GET', url: '/crl' })).rawPayload);
      assert.ok(crl.crlNumber! > n1, `${crl.crlNumber} > ${n1}`);
      assert.equal(crl.entries.length, 2);
    });

    test('OCSP: good, unknown, malformed request → malformedRequest response, unknown issuer → unauthorized', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolledDevice(h);
      const ocsp = (payload: Buffer) => h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload });
      assert.equal(parseOcspResponse((await ocsp(opensslOcspRequest(h, dev.cert))).rawPayload).basic!.responses[0]!.status, 'good');
      const bad = await ocsp(Buffer.from('not an ocsp request'));
      assert.equal(bad.statusCode, 200);
      assert.equal(parseOcspResponse(bad.rawPayload).status, 'malformedRequest');
      const other = await harness(t, 'sqlite');
      const foreign = await enrolledDevice(other!);
      const req = opensslOcspRequest(other!, foreign.cert);
      assert.equal(parseOcspResponse((await ocsp(req)).rawPayload).status, 'unauthorized');
      const wrongType = await h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'text/plain' }, payload: 'x' });
      assert.equal(wrongType.statusCode, 415);
    });
  });

  describe(`admin API and audit on ${engine}`, () => {
    test('roles: viewer can list but not revoke; no or wrong token → 401; bad input → 400; unknown device → 404', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const { randomBytes, randomUUID, createHash } = await import('node:crypto');
      const viewer = `lk_adm_${randomBytes(16).toString('hex')}`;
      await h.db.kysely.insertInto('admin_tokens').values({ id: randomUUID(), secret_hash: createHash('sha256').update(viewer).digest('hex'), name: 'auditor', role: 'viewer', created_at: new Date().toISOString(), revoked_at: null }).execute();
      const dev = await enrolledDevice(h);
      assert.equal((await adminCall(h, 'GET', '/v1/admin/devices', undefined, viewer)).status, 200);
      const denied = await adminCall<{ error: { code: string; message: string } }>(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, {}, viewer);
      assert.equal(denied.status, 403);
      assert.match(denied.json.error.message, /needs the operator role/);
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/admin/devices' })).statusCode, 401);
      assert.equal((await adminCall(h, 'GET', '/v1/admin/devices', undefined, 'lk_adm_nope')).status, 401);
      const garbage = await h.app.inject({ method: 'POST', url: '/v1/admin/tokens', headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/json' }, payload: '{"uses": ' });
      assert.equal(garbage.statusCode, 400);
      assert.equal((await adminCall(h, 'POST', '/v1/admin/tokens', { uses: 0 })).status, 400);
      assert.equal((await adminCall(h, 'POST', '/v1/admin/tokens', { uses: 1, admin: true })).status, 400);
      assert.equal((await adminCall(h, 'GET', '/v1/admin/devices/6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90')).status, 404);
      assert.equal((await adminCall(h, 'POST', '/v1/admin/tokens', { group: 'nope' })).status, 404);
    });

    test('every issuance, renewal, revocation and admin action is in the audit log, with actor and details', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolledDevice(h);
      await reenroll(h, dev.cert, (await deviceCsr()).csr);
      await adminCall(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, { reason: 'superseded' });
      const audit = await adminCall<{ items: { action: string; actor: string; target: string; details: Record<string, unknown> }[] }>(h, 'GET', '/v1/admin/audit');
      const actions = audit.json.items.map((e) => e.action);
      assert.deepEqual(actions, ['device.revoke', 'certificate.renew', 'certificate.enroll', 'token.create']);
      const revoke = audit.json.items[0]!;
      assert.equal(revoke.actor, 'admin:initial-admin');
      assert.equal(revoke.target, dev.id);
      assert.equal(revoke.details.reason, 'superseded');
    });

    test('secrets never reach responses or logs: token secrets, private keys (the production logger at debug)', async (t) => {
      const h = await harness(t, engine, { logger: serverLoggerOptions('debug') });
      if (!h) return;
      const token = await createToken(h);
      await enroll(h, token, (await deviceCsr()).csr);
      await enroll(h, token, (await deviceCsr()).csr);
      const list = await h.app.inject({ method: 'GET', url: '/v1/admin/tokens', headers: { authorization: `Bearer ${h.adminToken}` } });
      const everything = [list.body, ...h.logs, (await h.app.inject({ method: 'GET', url: EST_PATHS.cacerts })).body].join('\n');
      assert.ok(h.logs.length > 0, 'the app logged');
      assert.ok(!everything.includes(token), 'enrollment token secret leaked');
      assert.ok(!everything.includes(h.adminToken), 'admin token leaked');
      assert.doesNotMatch(everything, /PRIVATE KEY/);
    });

    test('health, readiness and Prometheus metrics', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      await enrolledDevice(h);
      await enroll(h, 'lk_enr_bad', (await deviceCsr()).csr);
      assert.equal((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      const ready = await h.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(JSON.parse(ready.body).database, engine);
      const m = (await h.app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(m, /latchkey_issuances_total\{kind="enroll"\} 1/);
      assert.match(m, /latchkey_enrollment_failures_total\{code="TOKEN_INVALID"\} 1/);
      // Label order inside {} is free in the text format (prom-client puts le last).
      assert.match(m, /latchkey_http_request_duration_seconds_bucket\{(?=[^}]*le="0.001")(?=[^}]*route="\/.well-known\/est\/simpleenroll")(?=[^}]*status="200")[^}]*\} \d+/);
    });
  });
}

describe('OCSP cache under unauthenticated abuse (issue 10 §5)', () => {
  test('unique multi-certificate requests are answered but never cached; a certificate has one entry per CertID hash', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const devs = [await enrolledDevice(h), await enrolledDevice(h)];
    const metric = async (): Promise<number> => {
      const m = (await h.app.inject({ method: 'GET', url: '/metrics' })).body;
      return Number(/latchkey_ocsp_responses_total\{status="cached"\} (\d+)/.exec(m)?.[1] ?? 0);
    };
    const post = (payload: Buffer) => h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload });
    // Before: every distinct request (order, hash, several CertIDs) was a new cache entry, never evicted: 1.4 GB.
    const pair = ocspRequestFor(h.issuing, devs[0]!.cert, ['-no_nonce', '-issuer', 'i.pem', '-cert', 'c.pem']);
    for (let i = 0; i < 3; i++) assert.equal(parseOcspResponse((await post(pair)).rawPayload).status, 'successful');
    assert.equal(await metric(), 0, 'a request naming two CertIDs is not cached');
    const single = ocspRequestFor(h.issuing, devs[1]!.cert, ['-no_nonce']);
    const sha256 = ocspRequestFor(h.issuing, devs[1]!.cert, ['-no_nonce', '-sha256']);
    await post(single);
    await post(sha256);
    await post(single);
    await post(sha256);
    assert.equal(await metric(), 2, 'the second of each hash is served from the cache');
  });
});
