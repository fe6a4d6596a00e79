import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { EST_PATHS } from '@latchkey/protocol';
import { FILES } from './ca/ca-files.js';
import { loggableUrl, serverLoggerOptions } from './logger.js';
import { b64, createToken, deviceCsr, harness } from './testing/harness.js';

describe('the production logger configuration', () => {
  test('secrets never reach the log: admin token, enrollment token and CA passphrase in headers, query, body and on error paths (bad token, malformed body, a 500)', async (t) => {
    // Exactly what `start` uses, at its most verbose level; only the output stream is the test's.
    const h = await harness(t, 'sqlite', { logger: serverLoggerOptions('debug') });
    if (!h) return;
    const admin = h.adminToken;
    const enrollment = await createToken(h);
    const passphrase = readFileSync(join(h.dataDir, FILES.passphrase), 'utf8').trim();
    const secrets = { admin, enrollment, passphrase };
    const everywhere = (s: string) => ({
      query: `?token=${encodeURIComponent(s)}&passphrase=${encodeURIComponent(passphrase)}&access_token=${encodeURIComponent(admin)}`,
      headers: { cookie: `session=${s}`, 'x-api-key': s, 'x-ca-passphrase': passphrase, 'proxy-authorization': `Bearer ${s}`, referer: `https://x.example/?token=${s}` },
    });
    const statuses: number[] = [];
    const send = async (o: { method: 'GET' | 'POST' | 'PUT'; path: string; auth?: string; body?: string; contentType?: string; secret: string }) => {
      const e = everywhere(o.secret);
      const r = await h.app.inject({
        method: o.method,
        url: o.path + e.query,
        headers: { ...e.headers, ...(o.auth ? { authorization: `Bearer ${o.auth}` } : {}), ...(o.contentType ? { 'content-type': o.contentType } : {}) },
        ...(o.body === undefined ? {} : { payload: o.body }),
      });
      statuses.push(r.statusCode);
    };
    const json = (s: string) => JSON.stringify({ name: s, token: s, passphrase, uses: 'not a number', nested: { secret: s } });

    // Good admin call with secrets in the query and body.
    await send({ method: 'GET', path: '/v1/admin/tokens', auth: admin, secret: enrollment });
    // Admin route: bad token (the enrollment token, a wrong admin token), malformed and invalid bodies.
    await send({ method: 'GET', path: '/v1/admin/devices', auth: enrollment, secret: admin });
    await send({ method: 'POST', path: '/v1/admin/tokens', auth: `${admin}x`, body: json(admin), contentType: 'application/json', secret: admin });
    await send({ method: 'POST', path: '/v1/admin/tokens', auth: admin, body: `{"name": "${enrollment}", "passphrase": "${passphrase}", `, contentType: 'application/json', secret: enrollment });
    await send({ method: 'POST', path: '/v1/admin/tokens', auth: admin, body: json(enrollment), contentType: 'application/json', secret: enrollment });
    // EST: an admin token as the enrollment token, a CSR that is the passphrase, a wrong content type.
    await send({ method: 'POST', path: EST_PATHS.simpleenroll, auth: admin, body: b64((await deviceCsr()).csr), contentType: 'application/pkcs10', secret: enrollment });
    await send({ method: 'POST', path: EST_PATHS.simpleenroll, auth: enrollment, body: passphrase, contentType: 'application/pkcs10', secret: admin });
    await send({ method: 'POST', path: EST_PATHS.simpleenroll, auth: enrollment, body: json(admin), contentType: 'application/json', secret: passphrase });
    // A good enrollment (200), then the token used up: the same secret on the refusal.
    await send({ method: 'POST', path: EST_PATHS.simpleenroll, auth: enrollment, body: b64((await deviceCsr()).csr), contentType: 'application/pkcs10', secret: passphrase });
    await send({ method: 'POST', path: EST_PATHS.simpleenroll, auth: enrollment, body: b64((await deviceCsr()).csr), contentType: 'application/pkcs10', secret: passphrase });
    // No route.
    await send({ method: 'GET', path: `/nowhere/${encodeURIComponent(admin)}`, auth: admin, secret: enrollment });
    // A thrown 500: the database goes away under the app.
    await h.db.close();
    await send({ method: 'POST', path: '/v1/admin/tokens', auth: admin, body: json(enrollment), contentType: 'application/json', secret: enrollment });
    await send({ method: 'POST', path: EST_PATHS.simpleenroll, auth: enrollment, body: b64((await deviceCsr()).csr), contentType: 'application/pkcs10', secret: admin });

    const log = h.logs.join('');
    // The log is not empty: every request above is in it, errors too (so the checks below can fail).
    assert.ok(statuses.includes(200) && statuses.includes(401) && statuses.includes(400) && statuses.includes(404) && statuses.includes(500), `statuses: ${statuses.join(' ')}`);
    assert.equal(log.match(/"msg":"incoming request"/g)?.length, statuses.length + 1, log); // + the token creation
    assert.match(log, /"level":50,.*"msg":"request failed"/);
    assert.match(log, /"url":"\/v1\/admin\/tokens"/);
    assert.match(log, /"url":"\/nowhere\/…"/);
    for (const [what, s] of Object.entries(secrets)) {
      for (const form of [s, encodeURIComponent(s), s.slice(0, 24), s.slice(-24)]) assert.ok(!log.includes(form), `the ${what} (${form === s ? 'whole' : 'part'}) reached the log:\n${log.split('\n').filter((l) => l.includes(form)).join('\n')}`);
    }
    assert.doesNotMatch(log, /PRIVATE KEY|BEGIN CERTIFICATE REQUEST|MII[A-Za-z0-9+/]{20}/);
  });

  test('a logged URL: the path without its query string; an unrouted path only by its first segment', () => {
    assert.equal(loggableUrl('/v1/admin/devices/7f0c?token=lk_adm_x&y=1', true), '/v1/admin/devices/7f0c');
    assert.equal(loggableUrl('/.well-known/est/simpleenroll#frag', true), '/.well-known/est/simpleenroll');
    assert.equal(loggableUrl('/nowhere/lk_adm_secret?x=1', false), '/nowhere/…');
    assert.equal(loggableUrl('/favicon.ico', false), '/favicon.ico');
    assert.equal(loggableUrl(`/${'a'.repeat(40)}`, false), `/${'a'.repeat(32)}/…`);
  });
});
