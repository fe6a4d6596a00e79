/**
 * The web console's serving and browser sign-in (issue 13): the shell and its
 * assets with helmet's headers and a CSP without inline script; the admin
 * token sign-in (only while no IdP is configured) giving an HttpOnly,
 * Secure, SameSite=Strict `__Host-` session cookie; CSRF on every change made
 * with that cookie; sign-out, expiry and the token's revocation ending it.
 * The IdP sign-in (authorization code + PKCE) runs end to end against a real
 * identity provider in test/src/console-e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { describe, test } from 'node:test';
import { ConsoleSession, ConsoleSignInOptions } from '@latchkey/protocol';
import { Value } from '@sinclair/typebox/value';
import { OidcConfigSchema, type ServerConfig } from '../config/config-schema.js';
import { ENGINES, harness, type Harness } from '../testing/harness.js';
import { auditRepo } from '../audit/audit-repo.js';
import { CONSOLE_COOKIE, csrfTokenOf, readCookie } from '../auth/console-cookie.js';
import { loadConsoleAssets, pickEncoding } from './console-assets.js';
import { localPath, signInErrorUrl } from './console-fns.js';
import { LatchkeyError } from '../errors.js';

function fakeConsole(): string {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-console-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><html lang="en"><head><title>Latchkey</title><script type="module" src="/assets/app-ABC123.js"></script></head><body></body></html>');
  writeFileSync(join(dir, 'assets', 'app-ABC123.js'), 'console.log("latchkey console");'.repeat(50));
  return dir;
}

async function consoleHarness(t: Parameters<typeof harness>[0], engine: (typeof ENGINES)[number], config?: Partial<ServerConfig>): Promise<Harness | undefined> {
  const dir = fakeConsole();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return harness(t, engine, { consoleAssets: loadConsoleAssets(dir), ...(config ? { config } : {}) });
}

/** Signs in with an admin token; the session secret from the Set-Cookie header. */
async function signIn(h: Harness, token = h.adminToken): Promise<{ cookie: string; secret: string; setCookie: string }> {
  const r = await h.app.inject({ method: 'POST', url: '/v1/console/sign-in/token', payload: { token } });
  assert.equal(r.statusCode, 204, r.body);
  const setCookie = String(r.headers['set-cookie']);
  const secret = readCookie({ cookie: setCookie.split(';')[0] }, CONSOLE_COOKIE)!;
  assert.ok(secret);
  return { cookie: `${CONSOLE_COOKIE}=${secret}`, secret, setCookie };
}

describe('console pure pieces', () => {
  test('a return path stays on this origin', () => {
    assert.equal(localPath('/devices/1?x=2'), '/devices/1?x=2');
    for (const bad of ['https://evil.example', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)', '', undefined, '/a b', `/${'a'.repeat(400)}`]) assert.equal(localPath(bad), '/', String(bad));
  });
  test('a failed sign-in shows our message, never an internal one', () => {
    assert.match(signInErrorUrl(new LatchkeyError('USER_NOT_ALLOWED', 'you are not in an admin group'), '/audit'), /^\/sign-in\?error=you\+are\+not\+in\+an\+admin\+group&next=%2Faudit$/);
    assert.equal(signInErrorUrl(new Error('ECONNREFUSED 10.0.0.1:443 secret-ish detail'), '/').includes('ECONNREFUSED'), false);
  });
  test('RFC 9110 §12.5.3: Accept-Encoding picks brotli, then gzip; q=0 refuses', () => {
    assert.equal(pickEncoding('gzip, deflate, br'), 'br');
    assert.equal(pickEncoding('gzip;q=1, br;q=0'), 'gzip');
    assert.equal(pickEncoding('identity'), undefined);
    assert.equal(pickEncoding('*'), 'br');
    assert.equal(pickEncoding(undefined), undefined);
  });
  test('a cookie is read only if it looks like one of ours', () => {
    assert.equal(readCookie({ cookie: `a=1; ${CONSOLE_COOKIE}=lk_ses_abc-_1` }, CONSOLE_COOKIE), 'lk_ses_abc-_1');
    assert.equal(readCookie({ cookie: `${CONSOLE_COOKIE}=a"b` }, CONSOLE_COOKIE), undefined);
    assert.equal(readCookie({ cookie: `x=${'a'.repeat(9000)}; ${CONSOLE_COOKIE}=ok` }, CONSOLE_COOKIE), undefined);
  });
});

describe('console pages and assets', () => {
  test('every page answers the shell with helmet headers and a CSP that forbids inline script', async (t) => {
    const h = await consoleHarness(t, 'sqlite');
    if (!h) return;
    for (const url of ['/', '/devices', '/devices/5b0f0a52-2b1e-4a39-9c39-8a0a4a8e3f11', '/approvals', '/tokens', '/groups', '/gateways', '/admins', '/audit', '/sign-in']) {
      const r: { statusCode: number; headers: Record<string, unknown> } = await h.app.inject({ method: 'GET', url });
      assert.equal(r.statusCode, 200, url);
      assert.match(String(r.headers['content-type']), /^text\/html/);
      assert.equal(r.headers['cache-control'], 'no-store');
      const csp = String(r.headers['content-security-policy']);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['x-frame-options'], 'SAMEORIGIN');
      assert.match(String(r.headers['strict-transport-security']), /max-age=31536000/);
      assert.equal(r.headers['referrer-policy'], 'no-referrer');
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin');
    }
  });
  test('assets: immutable caching, brotli when asked, unknown names and traversal refused', async (t) => {
    const h = await consoleHarness(t, 'sqlite');
    if (!h) return;
    const r = await h.app.inject({ method: 'GET', url: '/assets/app-ABC123.js', headers: { 'accept-encoding': 'br, gzip' } });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-encoding'], 'br');
    assert.equal(r.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(brotliDecompressSync(r.rawPayload).toString(), /latchkey console/);
    for (const url of ['/assets/app-nope.js', '/assets/..%2Findex.html', '/assets/%2e%2e%2f%2e%2e%2fpackage.json']) {
      assert.equal((await h.app.inject({ method: 'GET', url })).statusCode, 404, url);
    }
  });
  test('a server whose console was not built says how to build it', async (t) => {
    const h = await harness(t, 'sqlite', { consoleAssets: loadConsoleAssets(join(tmpdir(), 'latchkey-no-console-here')) });
    if (!h) return;
    const r = await h.app.inject({ method: 'GET', url: '/' });
    assert.equal(r.statusCode, 503);
    assert.match(r.body, /pnpm build/);
  });
});

for (const engine of ENGINES) {
  describe(`console sign-in with an admin token on ${engine}`, () => {
    test('the cookie is __Host-, HttpOnly, Secure, SameSite=Strict; the session says who and gives the CSRF token', async (t) => {
      const h = await consoleHarness(t, engine);
      if (!h) return;
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/console/session' })).statusCode, 401);
      const s = await signIn(h);
      assert.match(s.setCookie, /^__Host-latchkey_console=lk_ses_[A-Za-z0-9_-]+; Path=\/; HttpOnly; Secure; SameSite=Strict; Max-Age=28800$/);
      const r = await h.app.inject({ method: 'GET', url: '/v1/console/session', headers: { cookie: s.cookie } });
      assert.equal(r.statusCode, 200);
      const j = r.json<{ actor: string; role: string; csrfToken: string; caFingerprint: string; serverUrl: string }>();
      assert.equal(j.actor, 'admin:initial-admin');
      assert.equal(j.role, 'admin');
      assert.equal(j.csrfToken, csrfTokenOf(s.secret));
      assert.match(j.caFingerprint, /^[0-9a-f]{64}$/);
      assert.equal(j.serverUrl, h.config.url);
      assert.equal(r.body.includes(s.secret), false, 'the session secret never appears in a body');
      assert.ok(Value.Check(ConsoleSession, r.json()), [...Value.Errors(ConsoleSession, r.json())].map((e) => `${e.path} ${e.message}`).join('; '));
    });

    test('the session and sign-in options answer the protocol\'s ConsoleSession and ConsoleSignInOptions (a bearer token: csrfToken null)', async (t) => {
      const h = await consoleHarness(t, engine);
      if (!h) return;
      const r = await h.app.inject({ method: 'GET', url: '/v1/console/session', headers: { authorization: `Bearer ${h.adminToken}` } });
      assert.equal(r.statusCode, 200);
      const j = r.json<ConsoleSession>();
      assert.ok(Value.Check(ConsoleSession, j), [...Value.Errors(ConsoleSession, j)].map((e) => `${e.path} ${e.message}`).join('; '));
      assert.equal(j.kind, 'token');
      assert.equal(j.csrfToken, null);
      const o = await h.app.inject({ method: 'GET', url: '/v1/console/sign-in-options' });
      assert.ok(Value.Check(ConsoleSignInOptions, o.json()));
      assert.deepEqual(o.json(), { providers: [], tokenSignIn: true });
    });

    test('CSRF: a change with the cookie needs the token and a same-origin request; reads do not', async (t) => {
      const h = await consoleHarness(t, engine);
      if (!h) return;
      const s = await signIn(h);
      const csrf = csrfTokenOf(s.secret);
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/admin/tokens', headers: { cookie: s.cookie } })).statusCode, 200);
      const create = (headers: Record<string, string>) => h.app.inject({ method: 'POST', url: '/v1/admin/tokens', headers: { cookie: s.cookie, ...headers }, payload: { group: 'default' } });
      for (const [why, headers] of [
        ['no token', {}],
        ['a wrong token', { 'x-latchkey-csrf': csrfTokenOf('lk_ses_other') }],
        ['the right token from another site', { 'x-latchkey-csrf': csrf, 'sec-fetch-site': 'cross-site' }],
        ['the right token from a sibling subdomain', { 'x-latchkey-csrf': csrf, 'sec-fetch-site': 'same-site' }],
      ] as const) {
        const r = await create(headers);
        assert.equal(r.statusCode, 403, why);
        assert.equal(r.json<{ error: { code: string } }>().error.code, 'CSRF', why);
      }
      const ok = await create({ 'x-latchkey-csrf': csrf, 'sec-fetch-site': 'same-origin' });
      assert.equal(ok.statusCode, 201, ok.body);
      const rows = await auditRepo(h.db.kysely).list({ limit: 5, action: 'token.create' });
      assert.equal(rows.length, 1, 'the refused attempts changed nothing');
      assert.equal(rows[0]!.actor, 'admin:initial-admin');
      // A bearer token (the CLI) needs no CSRF token: browsers never attach one by themselves.
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/admin/tokens', headers: { authorization: `Bearer ${h.adminToken}` }, payload: { group: 'default' } })).statusCode, 201);
    });

    test('sign-out ends the session on the server; expiry and the revoked token end it too', async (t) => {
      const h = await consoleHarness(t, engine);
      if (!h) return;
      const code = async (cookie: string) => {
        const r = await h.app.inject({ method: 'GET', url: '/v1/admin/devices', headers: { cookie } });
        return r.statusCode === 200 ? 'ok' : r.json<{ error: { code: string } }>().error.code;
      };
      // Sign-out: a stolen copy of the cookie is useless afterwards.
      const a = await signIn(h);
      const out = await h.app.inject({ method: 'POST', url: '/v1/console/sign-out', headers: { cookie: a.cookie, 'x-latchkey-csrf': csrfTokenOf(a.secret) } });
      assert.equal(out.statusCode, 204);
      assert.match(String(out.headers['set-cookie']), /^__Host-latchkey_console=; .*Max-Age=0$/);
      assert.equal(await code(a.cookie), 'SESSION_EXPIRED');
      // Past its 8 hours.
      const b = await signIn(h);
      h.clock.now = new Date(h.clock.now.getTime() + 8 * 3600_000 + 1000);
      assert.equal(await code(b.cookie), 'SESSION_EXPIRED');
      // The API token it signed in with is revoked: the console session ends with it.
      const made = await h.app.inject({ method: 'POST', url: '/v1/admin/admin-tokens', headers: { authorization: `Bearer ${h.adminToken}` }, payload: { name: 'ops', role: 'operator' } });
      assert.equal(made.statusCode, 201, made.body);
      const { token, info: { id } } = made.json<{ token: string; info: { id: string } }>();
      const c = await signIn(h, token);
      const who = await h.app.inject({ method: 'GET', url: '/v1/console/session', headers: { cookie: c.cookie } });
      assert.equal(who.json<{ role: string; actor: string }>().role, 'operator');
      assert.equal(await code(c.cookie), 'ok');
      assert.equal((await h.app.inject({ method: 'DELETE', url: `/v1/admin/admin-tokens/${id}`, headers: { authorization: `Bearer ${h.adminToken}` } })).statusCode, 200);
      assert.equal(await code(c.cookie), 'SESSION_EXPIRED');
    });

    test('the cookie cannot stand in for a bearer token it is not, and a bearer session needs no cookie', async (t) => {
      const h = await consoleHarness(t, engine);
      if (!h) return;
      // An admin token put into the cookie by hand is refused: the cookie only ever holds a console session.
      const r = await h.app.inject({ method: 'GET', url: '/v1/admin/devices', headers: { cookie: `${CONSOLE_COOKIE}=${h.adminToken}` } });
      assert.equal(r.statusCode, 401);
      // Sign-out needs a console session.
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/console/sign-out', headers: { authorization: `Bearer ${h.adminToken}` } })).statusCode, 400);
    });

    test('wrong tokens: 401 with what to do, then 429 past 30 a minute; a session of one token is bounded', async (t) => {
      const h = await consoleHarness(t, engine);
      if (!h) return;
      const bad = await h.app.inject({ method: 'POST', url: '/v1/console/sign-in/token', payload: { token: 'lk_adm_guess' } });
      assert.equal(bad.statusCode, 401);
      assert.match(bad.json<{ error: { message: string } }>().error.message, /admin-token create/);
      assert.equal(bad.body.includes('lk_adm_guess'), false);
      let last = 0;
      for (let i = 0; i < 35; i++) last = (await h.app.inject({ method: 'POST', url: '/v1/console/sign-in/token', payload: { token: `lk_adm_guess${i}` } })).statusCode;
      assert.equal(last, 429);
      const big = await h.app.inject({ method: 'POST', url: '/v1/console/sign-in/token', payload: { token: 'x'.repeat(10_000) }, remoteAddress: '10.9.9.9' });
      assert.equal(big.statusCode, 400);
    });
  });
}

test('console sessions of one token are bounded: signing in again and again keeps at most 20 live', async (t) => {
  const h = await consoleHarness(t, 'sqlite');
  if (!h) return;
  const cookies: string[] = [];
  for (let i = 0; i < 25; i++) {
    // A fresh address each time: the per-address sign-in limit is not what is under test.
    h.clock.now = new Date(h.clock.now.getTime() + 1000);
    const r: { statusCode: number; headers: Record<string, unknown> } = await h.app.inject({ method: 'POST', url: '/v1/console/sign-in/token', payload: { token: h.adminToken }, remoteAddress: `10.0.0.${i + 1}` });
    assert.equal(r.statusCode, 204);
    cookies.push(String(r.headers['set-cookie']).split(';')[0]!);
  }
  const live = await Promise.all(cookies.map(async (cookie) => (await h.app.inject({ method: 'GET', url: '/v1/console/session', headers: { cookie } })).statusCode === 200));
  assert.equal(live.filter(Boolean).length, 20);
  assert.deepEqual(live.slice(0, 5), [false, false, false, false, false], 'the oldest went first');
});

test('with an identity provider configured, the admin-token sign-in is off and the providers are listed', async (t) => {
  const oidc = Value.Default(OidcConfigSchema, { issuers: [{ issuer: 'https://idp.example.com', clientId: 'latchkey' }], adminGroups: { admin: ['admins'] }, syncIntervalSeconds: 0 }) as NonNullable<ServerConfig['oidc']>;
  const h = await consoleHarness(t, 'sqlite', { oidc });
  if (!h) return;
  const opts = await h.app.inject({ method: 'GET', url: '/v1/console/sign-in-options' });
  assert.deepEqual(opts.json(), { providers: [{ issuer: 'https://idp.example.com', name: 'idp.example.com' }], tokenSignIn: false });
  const r = await h.app.inject({ method: 'POST', url: '/v1/console/sign-in/token', payload: { token: h.adminToken } });
  assert.equal(r.statusCode, 409);
  // The IdP's callback without the sign-in cookie of this browser: back to the sign-in page, saying why.
  const cb = await h.app.inject({ method: 'GET', url: '/v1/console/sign-in/callback?code=abc&state=def' });
  assert.equal(cb.statusCode, 302);
  assert.match(String(cb.headers.location), /^\/sign-in\?error=this\+sign-in\+was\+not\+started\+in\+this\+browser/);
  const denied = await h.app.inject({ method: 'GET', url: '/v1/console/sign-in/callback?error=access_denied&error_description=no', headers: { cookie: '__Host-latchkey_signin=lk_flow_x.v.Lw' } });
  assert.match(String(denied.headers.location), /^\/sign-in\?error=the\+identity\+provider\+did\+not\+sign\+you\+in/);
  assert.match(String(denied.headers['set-cookie']), /__Host-latchkey_signin=; .*Max-Age=0/);
});
