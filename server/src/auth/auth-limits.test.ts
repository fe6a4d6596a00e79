/**
 * What one unauthenticated client can make `/v1/auth` do, against a real
 * OpenID Provider (oidc-provider, in process, with the device grant): sign-ins
 * in progress are capped server-wide and starts are limited per address; the
 * providers list is limited too (it may ask the IdP when discovery failed);
 * a finished or unknown flow is refused, never passed on to the IdP.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import Provider from 'oidc-provider';
import { AUTH_PATHS } from '@latchkey/protocol';
import { OidcConfigSchema, type ServerConfig } from '../config/config-schema.js';
import { harness } from '../testing/harness.js';

const CLIENT = 'latchkey-limits';
const SECRET = 'a-client-secret-for-the-limits-test';
let server: Server;
let issuer: string;
let deviceRequests = 0;

before(async () => {
  server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [{ client_id: CLIENT, client_secret: SECRET, grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], response_types: [], redirect_uris: [] }],
    features: { deviceFlow: { enabled: true }, devInteractions: { enabled: false } },
  });
  const cb = provider.callback();
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/device/auth')) deviceRequests++;
    void cb(req, res);
  });
});
after(() => new Promise<void>((r) => server.close(() => r())));

const oidc = (extra: Record<string, unknown>) =>
  Value.Default(OidcConfigSchema, { issuers: [{ issuer, clientId: CLIENT, clientSecret: SECRET, scopes: ['openid', 'email'] }], syncIntervalSeconds: 0, ...extra }) as NonNullable<ServerConfig['oidc']>;

describe('/v1/auth bounds against a real OpenID Provider', () => {
  test('sign-ins in progress are capped server-wide (maxSignInsInProgress); expired ones stop counting', async (t) => {
    const h = (await harness(t, 'sqlite', { config: { oidc: oidc({ maxSignInsInProgress: 3 }) } }))!;
    const start = () => h.app.inject({ method: 'POST', url: AUTH_PATHS.deviceStart, payload: { purpose: 'enroll' } });
    for (let i = 0; i < 3; i++) assert.equal((await start()).statusCode, 200);
    const before = deviceRequests;
    const full = await start();
    assert.equal(full.statusCode, 429, full.body);
    assert.match(full.json().error.message, /too many sign-ins are in progress/);
    assert.equal(full.headers['retry-after'], '60');
    assert.equal(deviceRequests, before, 'a refused start never reaches the IdP');
    // Past the IdP's device code lifetime (oidc-provider: 10 min) they are pruned and no longer count.
    h.clock.now = new Date(h.clock.now.getTime() + 11 * 60_000);
    assert.equal((await start()).statusCode, 200);
  });

  test('one address: 30 starts a minute, then 429; the providers list is limited too', async (t) => {
    const h = (await harness(t, 'sqlite', { config: { oidc: oidc({}) } }))!;
    const codes: number[] = [];
    for (let i = 0; i < 31; i++) codes.push((await h.app.inject({ method: 'POST', url: AUTH_PATHS.deviceStart, payload: { purpose: 'admin' } })).statusCode);
    assert.deepEqual([codes.slice(0, 30).every((c) => c === 200), codes[30]], [true, 429]);
    const providers: number[] = [];
    for (let i = 0; i < 601; i++) providers.push((await h.app.inject({ method: 'GET', url: AUTH_PATHS.providers })).statusCode);
    assert.deepEqual([providers[0], providers[599], providers[600]], [200, 200, 429]);
  });

  test('a flow id is checked before anything reaches the IdP: unknown, malformed, oversized', async (t) => {
    const h = (await harness(t, 'sqlite', { config: { oidc: oidc({}) } }))!;
    const poll = (flowId: unknown) => h.app.inject({ method: 'POST', url: AUTH_PATHS.devicePoll, payload: { flowId } });
    const unknown = await poll(`lk_flow_${'b'.repeat(43)}`);
    assert.equal(unknown.statusCode, 403);
    assert.equal(unknown.json().error.code, 'AUTH_EXPIRED');
    for (const bad of ['short', 'x'.repeat(201), 'lk_flow_has spaces and ;', 42]) assert.equal((await poll(bad)).statusCode, 400, String(bad));
    const big = await h.app.inject({ method: 'POST', url: AUTH_PATHS.browserFinish, payload: { flowId: `lk_flow_${'c'.repeat(43)}`, code: 'x'.repeat(2001), state: 's'.repeat(32), codeVerifier: 'v'.repeat(43) } });
    assert.equal(big.statusCode, 400);
  });
});
