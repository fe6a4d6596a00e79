/**
 * Issue 10 §1: one enrolled device minted 3,603 live certificates in 29 s by
 * re-enrolling from the same certificate, and revoking it then broke the CRL
 * for HAProxy, NOTIFY and the gateway stream. What bounds it now: only the
 * latest certificate renews, a renewal supersedes the others, at most
 * maxCertificatesPerDevice unexpired certificates per device, and a rate limit
 * per device.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseCertificate, parseCrl, parseOcspResponse } from '@latchkey/pki';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, reenroll, type Harness } from '../testing/harness.js';
import { ocspRequestFor } from '../testing/ocsp-request.js';
import { raceOnOneFile } from '../testing/sqlite-race.js';

const code = (body: string): string => (JSON.parse(body) as { error: { code: string } }).error.code;

async function enrolled(h: Harness): Promise<{ id: string; der: Buffer }> {
  const r = await enroll(h, await createToken(h), (await deviceCsr()).csr);
  assert.equal(r.statusCode, 200, r.body);
  const cert = certFromBody(r.body);
  const list = await adminCall<{ items: { id: string; certificate: { serial: string } }[] }>(h, 'GET', '/v1/admin/devices');
  return { id: list.json.items.find((d) => d.certificate.serial === cert.serialHex)!.id, der: cert.der };
}

async function ocspStatus(h: Harness, der: Buffer): Promise<string> {
  const r = await h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: ocspRequestFor(h.issuing, der, ['-no_nonce']) });
  return parseOcspResponse(r.rawPayload).basic!.responses[0]!.status;
}

for (const engine of ENGINES) {
  describe(`re-enrollment limits on ${engine}`, () => {
    test('50 parallel re-enrollments from one certificate: at most maxCertificatesPerDevice unexpired certificates, the rest 429 with Retry-After', async (t) => {
      const h = await harness(t, engine, { config: { reenrollRateLimitPerMinute: 1000 } });
      if (!h) return;
      const dev = await enrolled(h);
      const csrs = await Promise.all(Array.from({ length: 50 }, async () => (await deviceCsr()).csr));
      const results = await Promise.all(csrs.map((csr) => reenroll(h, dev.der, csr)));
      const ok = results.filter((r) => r.statusCode === 200);
      const refused = results.filter((r) => r.statusCode !== 200);
      assert.ok(ok.length >= 1, 'one goes through');
      assert.ok(refused.every((r) => r.statusCode === 429 && code(r.body) === 'TOO_MANY_CERTIFICATES' && Number(r.headers['retry-after']) > 0), JSON.stringify(refused.map((r) => r.body).slice(0, 3)));
      const live = await h.db.kysely.selectFrom('certificates').select('serial').where('device_id', '=', dev.id).where('not_after', '>', h.clock.now.toISOString()).execute();
      assert.equal(live.length, h.config.maxCertificatesPerDevice, 'the cap, counting the enrollment certificate');

      // Revoking it: a small revocation (the cap bounds what it puts on the CRL), an event without serials.
      const rv = await adminCall<{ serials: string[]; crlNumber: number }>(h, 'POST', `/v1/admin/devices/${dev.id}/revoke`, {});
      assert.equal(rv.status, 200);
      // The answer names what this call revoked: the others (renewals retried from the same certificate) were revoked as superseded already.
      assert.ok(rv.json.serials.length >= 1 && rv.json.serials.length <= h.config.maxCertificatesPerDevice);
      const crl = parseCrl((await h.app.inject({ method: 'GET', url: '/crl' })).rawPayload);
      assert.equal(crl.entries.length, h.config.maxCertificatesPerDevice);
      assert.equal(Number(crl.crlNumber), rv.json.crlNumber);
    });

    test('only the latest certificate renews; a superseded one gets CERT_SUPERSEDED, also past its overlap', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolled(h);
      const second = certFromBody((await reenroll(h, dev.der, (await deviceCsr()).csr)).body);
      const third = certFromBody((await reenroll(h, second.der, (await deviceCsr()).csr)).body);
      // The first is two renewals back: never again, whatever its overlap.
      const r = await reenroll(h, dev.der, (await deviceCsr()).csr);
      assert.equal(r.statusCode, 403);
      assert.equal(code(r.body), 'CERT_SUPERSEDED');
      // The latest renews.
      assert.equal((await reenroll(h, third.der, (await deviceCsr()).csr)).statusCode, 200);
    });

    test('a renewal whose answer was lost: the previous certificate renews again within its overlap, and the unreceived one is revoked at once', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolled(h);
      const lost = certFromBody((await reenroll(h, dev.der, (await deviceCsr()).csr)).body);
      // The device never got `lost`: it tries again with its certificate, within the overlap.
      h.clock.now = new Date(h.clock.now.getTime() + 60_000);
      const again = await reenroll(h, dev.der, (await deviceCsr()).csr);
      assert.equal(again.statusCode, 200, again.body);
      const got = certFromBody(again.body);
      assert.equal(await ocspStatus(h, lost.der), 'revoked', 'the certificate the device never received');
      assert.equal(await ocspStatus(h, dev.der), 'good', 'the previous one until its overlap ends');
      assert.equal(await ocspStatus(h, got.der), 'good');
      // Past the overlap, the previous certificate is superseded for good.
      h.clock.now = new Date(h.clock.now.getTime() + h.config.supersededOverlapSeconds * 1000);
      const late = await reenroll(h, dev.der, (await deviceCsr()).csr);
      assert.equal(late.statusCode, 403);
      assert.equal(code(late.body), 'CERT_SUPERSEDED');
    });

    test('a renewal supersedes the previous certificate: good during the overlap (OCSP nextUpdate no later than its end), then revoked (superseded) in OCSP and the CRL', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const dev = await enrolled(h);
      const before = parseCrl((await h.app.inject({ method: 'GET', url: '/crl' })).rawPayload);
      const renewedAt = h.clock.now.getTime();
      assert.equal((await reenroll(h, dev.der, (await deviceCsr()).csr)).statusCode, 200);
      const during = await h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: ocspRequestFor(h.issuing, dev.der) });
      const single = parseOcspResponse(during.rawPayload).basic!.responses[0]!;
      assert.equal(single.status, 'good');
      assert.ok(single.nextUpdate!.getTime() <= renewedAt + h.config.supersededOverlapSeconds * 1000, 'no one may rely on "good" past the overlap');

      h.clock.now = new Date(renewedAt + h.config.supersededOverlapSeconds * 1000 + 1000);
      const after = parseOcspResponse((await h.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: ocspRequestFor(h.issuing, dev.der) })).rawPayload).basic!.responses[0]!;
      assert.equal(after.status, 'revoked');
      assert.equal(after.reason, 'superseded');
      // The CRL timer's check: an overlap ended since the CRL was made.
      const crlRow = await h.crl.get('issuing');
      assert.equal(crlRow!.crlNumber, Number(before.crlNumber), 'not rebuilt yet');
      h.crl.start();
      t.after(() => h.crl.stop());
      let crl = before;
      for (let i = 0; i < 100 && crl.entries.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        crl = parseCrl((await h.app.inject({ method: 'GET', url: '/crl' })).rawPayload);
      }
      assert.deepEqual(crl.entries.map((e) => [e.serialHex, e.reason]), [[parseCertificate(dev.der).serialHex, 'superseded']]);
      assert.ok(crl.crlNumber! > before.crlNumber!);
    });

    test('re-enrollment is rate limited per device: past reenrollRateLimitPerMinute, 429 RATE_LIMITED with Retry-After, other devices unaffected', async (t) => {
      const h = await harness(t, engine, { config: { reenrollRateLimitPerMinute: 5 } });
      if (!h) return;
      const a = await enrolled(h);
      const b = await enrolled(h);
      // Five attempts count (renewals, then the certificate cap); the sixth is not even looked at.
      const codes: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await reenroll(h, a.der, (await deviceCsr()).csr);
        codes.push(r.statusCode === 200 ? 'OK' : code(r.body));
      }
      assert.ok(!codes.includes('RATE_LIMITED'), codes.join());
      const limited = await reenroll(h, a.der, (await deviceCsr()).csr);
      assert.equal(limited.statusCode, 429);
      assert.equal(code(limited.body), 'RATE_LIMITED');
      assert.equal(limited.headers['retry-after'], '60');
      assert.equal((await reenroll(h, b.der, (await deviceCsr()).csr)).statusCode, 200, 'another device renews');
    });
  });
}

describe('SQLite: re-enrollments racing on several connections to one file', () => {
  // In one process the app's single SQLite connection runs transactions one by one; here four
  // connections (worker threads, each running the app) re-enroll from the same certificate at once.
  test('4 × 10 parallel re-enrollments from one certificate: at most maxCertificatesPerDevice unexpired certificates, the rest 429 TOO_MANY_CERTIFICATES', { timeout: 120_000 }, async (t) => {
    const h = await harness(t, 'sqlite', { config: { reenrollRateLimitPerMinute: 1000 } });
    if (!h) return;
    const dev = await enrolled(h);
    // The workers read config.json: the same rate limit as this app.
    const cfg = join(h.dataDir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ ...(JSON.parse(readFileSync(cfg, 'utf8')) as object), reenrollRateLimitPerMinute: 1000 }));
    const results = await raceOnOneFile(h.dataDir, Array.from({ length: 4 }, () => ({ kind: 'reenroll' as const, certDer: dev.der.toString('base64'), count: 10 })));
    const statuses = results.flatMap((r) => r.statuses!);
    const codes = results.flatMap((r) => r.codes!);
    assert.ok(statuses.filter((s) => s === 200).length >= 1, 'one goes through');
    assert.ok(statuses.every((s) => s === 200 || s === 429), `statuses ${statuses.join(' ')}; codes ${codes.join(' ')}`);
    assert.ok(codes.every((c) => c === 'TOO_MANY_CERTIFICATES'), codes.join(' '));
    const live = await h.db.kysely.selectFrom('certificates').select('serial').where('device_id', '=', dev.id).where('not_after', '>', new Date().toISOString()).execute();
    assert.equal(live.length, h.config.maxCertificatesPerDevice, 'the cap, counting the enrollment certificate');
  });
});
