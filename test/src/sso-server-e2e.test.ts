/**
 * Issue 12 end to end on the server's side: a real latchkey-server whose
 * identity provider is a real oidc-provider process (test/src/support/idp),
 * driven over HTTPS as the agent and CLI would. People sign in with the
 * device authorization grant (RFC 8628), completed over HTTP as a person on
 * another device would; the enrollment token that comes out is bound to the
 * person, the certificate carries their verified email and nothing the CSR
 * claims, and `users sync` takes devices away from people the IdP no longer
 * allows.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { request } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createCsr, decodeCertsOnly, nodeSigner } from '@latchkey/pki';
import { AUTH_PATHS, FACTS_ATTRIBUTE_OID, type AuthDeviceStarted, type AuthResult } from '@latchkey/protocol';
import { sleep } from './support/gateways.js';
import type { Idp } from './support/idp/idp-fixture.js';
import { startSsoServer } from './support/idp/sso-server.js';
import { chromiumOrSkip, completeBrowserLogin, completeDeviceLogin } from './support/idp/idp-login.js';
import { cli, mustRun, tempDir, type ServerProcess, type TestCtx } from './support/processes.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function https(server: ServerProcess, method: string, path: string, o: { json?: unknown; body?: string; headers?: Record<string, string>; cert?: string; key?: string } = {}): Promise<Answer> {
  const ca = readFileSync(join(server.dataDir, 'root.crt.pem'), 'utf8');
  const payload = o.json !== undefined ? JSON.stringify(o.json) : o.body;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.port, method, path, ca, agent: false, ...(o.cert ? { cert: o.cert, key: o.key } : {}), headers: { ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            /* not JSON (EST answers base64) */
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers, text });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const adminToken = (server: ServerProcess) => readFileSync(join(server.dataDir, 'admin-token'), 'utf8').trim();
const admin = (server: ServerProcess, method: string, path: string, json?: unknown) =>
  https(server, method, `/v1/admin${path}`, { ...(json !== undefined ? { json } : {}), headers: { authorization: `Bearer ${adminToken(server)}` } });

/** Starts a device-grant sign-in, completes it at the IdP as `login`, and polls until the server answers. */
async function signIn(server: ServerProcess, login: string, purpose: 'enroll' | 'admin', decision: 'allow' | 'deny' = 'allow'): Promise<Answer> {
  const start = await https(server, 'POST', AUTH_PATHS.deviceStart, { json: { purpose } });
  assert.equal(start.status, 200, start.text);
  const started = start.body as unknown as AuthDeviceStarted;
  assert.match(started.flowId, /^lk_flow_/);
  // Before the person has done anything: pending, with the interval to wait.
  const first = await https(server, 'POST', AUTH_PATHS.devicePoll, { json: { flowId: started.flowId } });
  assert.equal(first.status, 202, first.text);
  assert.equal((first.body.error as { code: string }).code, 'AUTH_PENDING');
  assert.ok(Number(first.headers['retry-after']) >= 1);
  // Polling again at once is slowed down (RFC 8628 §3.5), not passed on to the IdP.
  const tooSoon = await https(server, 'POST', AUTH_PATHS.devicePoll, { json: { flowId: started.flowId } });
  assert.equal(tooSoon.status, 429, tooSoon.text);
  await completeDeviceLogin({ verificationUri: started.verificationUri, userCode: started.userCode, login: `${login}@example.com`, password: `${login}-password`, decision });
  for (let i = 0; i < 30; i++) {
    const r = await https(server, 'POST', AUTH_PATHS.devicePoll, { json: { flowId: started.flowId } });
    if (r.status !== 202 && r.status !== 429) return r;
    await sleep(Number(r.headers['retry-after'] ?? 1) * 1000);
  }
  throw new Error('the sign-in never finished');
}

/** EST simpleenroll with a fresh key; the CSR's facts claim an email the person does not have. */
async function enroll(server: ServerProcess, token: string, work: string, name: string): Promise<Answer & { certPem?: string; keyPem?: string }> {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const facts = { hostname: name, os: { platform: 'linux', release: '6.1.0' }, arch: 'x64', hardwareId: name, agentVersion: '0.1.0', userEmail: 'mallory@evil.example' };
  const csr = await createCsr({ subject: [{ type: 'CN', value: name }], signer: nodeSigner(privateKey), stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: JSON.stringify(facts) }] });
  const r = await https(server, 'POST', '/.well-known/est/simpleenroll', { body: csr.toString('base64'), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/pkcs10' } });
  if (r.status !== 200) return r;
  const der = decodeCertsOnly(r.text)[0]!;
  const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`;
  writeFileSync(join(work, `${name}.pem`), certPem);
  return { ...r, certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

async function sso(t: TestCtx): Promise<{ idp: Idp; server: ServerProcess; work: string }> {
  const { idp, server, dataDir } = await startSsoServer(t, {
    enrollGroups: ['staff'],
    groupMapping: [{ idpGroup: 'staff', group: 'staff-laptops' }],
    adminGroups: { viewer: ['latchkey-viewers'], operator: [], admin: ['latchkey-admins'] },
    maxDevicesPerUser: 2,
    syncIntervalSeconds: 0,
    syncHoldAbove: 1,
  });
  const g = await cli(['groups', 'set', 'staff-laptops', '--lifetime', '2h', '--data-dir', dataDir]);
  assert.equal(g.code, 0, g.stderr);
  return { idp, server, work: tempDir(t) };
}

describe('issue 12: sign-in through a real identity provider (device grant, RFC 8628)', () => {
  test('an allowed person gets a one-use token for their group; the certificate carries their verified email and not the CSR\'s claim', { timeout: 120_000 }, async (t) => {
    const { server, work } = await sso(t);
    const r = await signIn(server, 'alice', 'enroll');
    assert.equal(r.status, 200, r.text);
    const result = r.body as unknown as Extract<AuthResult, { purpose: 'enroll' }>;
    assert.equal(result.purpose, 'enroll');
    assert.deepEqual(result.user.email, 'alice@example.com');
    assert.equal(result.group, 'staff-laptops');
    assert.doesNotMatch(server.log(), new RegExp(result.enrollToken));

    const e = await enroll(server, result.enrollToken, work, 'alice-laptop');
    assert.equal(e.status, 200, e.text);
    const text = (await mustRun('openssl', ['x509', '-in', join(work, 'alice-laptop.pem'), '-noout', '-text'])).stdout;
    assert.match(text, /email:alice@example\.com/);
    assert.doesNotMatch(text, /mallory/);
    // RFC 7030 §4.2.2: the renewal, authenticated by the certificate alone, keeps the person.
    const { privateKey: next } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csr2 = await createCsr({ subject: [{ type: 'CN', value: 'alice-laptop' }], signer: nodeSigner(next) });
    const renewed = await https(server, 'POST', '/.well-known/est/simplereenroll', { body: csr2.toString('base64'), headers: { 'content-type': 'application/pkcs10' }, cert: e.certPem!, key: e.keyPem! });
    assert.equal(renewed.status, 200, renewed.text);
    writeFileSync(join(work, 'renewed.pem'), `-----BEGIN CERTIFICATE-----\n${decodeCertsOnly(renewed.text)[0]!.toString('base64')}\n-----END CERTIFICATE-----\n`);
    assert.match((await mustRun('openssl', ['x509', '-in', join(work, 'renewed.pem'), '-noout', '-ext', 'subjectAltName'])).stdout, /email:alice@example\.com/);

    // One use: a second laptop needs its own sign-in.
    const again = await enroll(server, result.enrollToken, work, 'second-laptop');
    assert.equal(again.status, 403, again.text);
    assert.equal((again.body.error as { code: string }).code, 'TOKEN_EXHAUSTED');

    const devices = await admin(server, 'GET', '/devices?user=alice@example.com');
    assert.equal(devices.status, 200, devices.text);
    const items = devices.body.items as { name: string; group: string; user?: string }[];
    assert.deepEqual(items.map((d) => [d.name, d.group, d.user]), [['alice-laptop', 'staff-laptops', 'alice@example.com']]);
    const audit = await admin(server, 'GET', '/audit?action=auth.sign-in');
    assert.equal((audit.body.items as { actor: string }[])[0]?.actor, 'user:alice@example.com');
    assert.doesNotMatch(audit.text, /lk_enr_|lk_flow_/);
  });

  test('a person outside the enrollment groups is refused with the rule that refused them; a denial at the IdP says so', { timeout: 120_000 }, async (t) => {
    const { server } = await sso(t);
    const bob = await signIn(server, 'bob', 'enroll');
    assert.equal(bob.status, 403, bob.text);
    const err = bob.body.error as { code: string; message: string };
    assert.equal(err.code, 'USER_NOT_ALLOWED');
    assert.match(err.message, /bob@example\.com is in none of the identity provider groups that may enroll devices \(staff\)/);
    const denied = await signIn(server, 'alice', 'enroll', 'deny');
    assert.equal(denied.status, 403, denied.text);
    assert.equal((denied.body.error as { code: string }).code, 'AUTH_DENIED');
    const users = await admin(server, 'GET', '/users');
    assert.deepEqual((users.body.items as { email: string }[]).map((u) => u.email), []);
    const refused = await admin(server, 'GET', '/audit?action=auth.refused');
    assert.equal((refused.body.items as { actor: string }[])[0]?.actor, 'user:bob@example.com');
  });

  test('per-person device limit; a flow id is used once; unknown flows and bad bodies are refused', { timeout: 180_000 }, async (t) => {
    const { server, work } = await sso(t);
    for (const name of ['a1', 'a2']) {
      const r = await signIn(server, 'alice', 'enroll');
      assert.equal(r.status, 200, r.text);
      assert.equal((await enroll(server, (r.body as { enrollToken: string }).enrollToken, work, name)).status, 200);
    }
    const third = await signIn(server, 'alice', 'enroll');
    assert.equal(third.status, 403, third.text);
    assert.equal((third.body.error as { code: string }).code, 'USER_DEVICE_LIMIT');
    assert.match((third.body.error as { message: string }).message, /alice@example\.com already has 2 devices/);

    const unknown = await https(server, 'POST', AUTH_PATHS.devicePoll, { json: { flowId: `lk_flow_${'x'.repeat(43)}` } });
    assert.equal(unknown.status, 403);
    assert.equal((unknown.body.error as { code: string }).code, 'AUTH_EXPIRED');
    const bad = await https(server, 'POST', AUTH_PATHS.deviceStart, { json: { purpose: 'root' } });
    assert.equal(bad.status, 400);
  });

  test('users sync: a person removed from the group, and one disabled, lose their devices, with the IdP named in the audit log; JWKS rotation is followed', { timeout: 180_000 }, async (t) => {
    const { idp, server, work } = await sso(t);
    const devices: Record<string, string> = {};
    for (const who of ['alice', 'carol']) {
      const r = await signIn(server, who, 'enroll');
      assert.equal(r.status, 200, r.text);
      assert.equal((await enroll(server, (r.body as { enrollToken: string }).enrollToken, work, `${who}-laptop`)).status, 200);
      const listed = await admin(server, 'GET', `/devices?user=${who}@example.com`);
      devices[who] = (listed.body.items as { id: string }[])[0]!.id;
    }
    // Nothing changed at the IdP: nobody loses anything.
    const quiet = await admin(server, 'POST', '/users/sync');
    assert.equal(quiet.status, 200, quiet.text);
    assert.deepEqual([quiet.body.removed, quiet.body.disabled, quiet.body.revokedDevices], [[], [], []]);

    await idp.setAccount('alice-sub', { groups: ['latchkey-admins'] });
    await idp.setAccount('carol-sub', { disabled: true });
    await sleep(10_500); // the manual sync skips people checked in the last 10 s
    // Two of two people at once is past syncHoldAbove (1) and a quarter: held, nobody loses anything.
    const held = await admin(server, 'POST', '/users/sync');
    assert.equal(held.status, 200, held.text);
    assert.match(String(held.body.held), /would take devices from 2 of 2 people at once; nothing was revoked/);
    assert.deepEqual([held.body.removed, held.body.disabled, held.body.revokedDevices], [[], [], []]);
    assert.equal((await admin(server, 'GET', `/devices/${devices.alice}`)).body.status, 'active');
    await sleep(10_500);
    const sync = await admin(server, 'POST', '/users/sync', { force: true });
    assert.equal(sync.status, 200, sync.text);
    assert.equal(sync.body.held, undefined);
    assert.deepEqual(sync.body.removed, ['alice@example.com']);
    assert.deepEqual(sync.body.disabled, ['carol@example.com']);
    assert.deepEqual([...(sync.body.revokedDevices as string[])].sort(), [devices.alice, devices.carol].sort());
    for (const who of ['alice', 'carol']) {
      const d = await admin(server, 'GET', `/devices/${devices[who]}`);
      assert.equal(d.body.status, 'revoked');
      assert.equal(d.body.revocationReason, 'privilegeWithdrawn');
    }
    const audit = await admin(server, 'GET', '/audit?action=device.revoke');
    assert.deepEqual(new Set((audit.body.items as { actor: string }[]).map((a) => a.actor)), new Set([`idp:${idp.issuer}`]));
    const users = await admin(server, 'GET', '/users');
    assert.deepEqual((users.body.items as { email: string; status: string }[]).map((u) => [u.email, u.status]).sort(), [['alice@example.com', 'removed'], ['carol@example.com', 'disabled']]);

    // The IdP rotates its signing key and drops the old one: the next sign-in is verified with the new key.
    await idp.setAccount('alice-sub', { groups: ['staff'] });
    const rotated = await idp.rotateKeys({ keepOld: false });
    const after = await signIn(server, 'alice', 'enroll');
    assert.equal(after.status, 200, `${after.text} (new kid ${rotated.kid})`);
  });
  test('RFC 8252 browser flow: loopback redirect with PKCE through headless Chromium; state and verifier must match; a code is used once', { timeout: 120_000 }, async (t) => {
    if (!chromiumOrSkip(t)) return;
    const { server, work } = await sso(t);
    const got: string[] = [];
    const loopback = createServer((req, res) => {
      got.push(req.url ?? '');
      res.end('you can close this tab');
    });
    await new Promise<void>((r) => loopback.listen(0, '127.0.0.1', r));
    t.after(() => loopback.close());
    const redirectUri = `http://127.0.0.1:${(loopback.address() as AddressInfo).port}/callback`;
    const verifier = crypto.randomBytes(32).toString('base64url');
    const codeChallenge = crypto.createHash('sha256').update(verifier).digest('base64url');

    const notLoopback = await https(server, 'POST', AUTH_PATHS.browserStart, { json: { purpose: 'enroll', redirectUri: 'http://evil.example:80/callback', codeChallenge } });
    assert.equal(notLoopback.status, 400, notLoopback.text);
    const start = await https(server, 'POST', AUTH_PATHS.browserStart, { json: { purpose: 'enroll', redirectUri, codeChallenge } });
    assert.equal(start.status, 200, start.text);
    const { flowId, authorizeUrl, state } = start.body as { flowId: string; authorizeUrl: string; state: string };
    const landed = new URL(await completeBrowserLogin({ url: authorizeUrl, login: 'alice@example.com', password: 'alice-password', decision: 'allow' }));
    assert.equal(landed.searchParams.get('state'), state);
    const code = landed.searchParams.get('code')!;
    assert.ok(code);

    const wrongVerifier = await https(server, 'POST', AUTH_PATHS.browserFinish, { json: { flowId, code, state, codeVerifier: crypto.randomBytes(32).toString('base64url') } });
    assert.equal(wrongVerifier.status, 400, wrongVerifier.text);
    const wrongState = await https(server, 'POST', AUTH_PATHS.browserFinish, { json: { flowId, code, state: 'x'.repeat(32), codeVerifier: verifier } });
    assert.equal(wrongState.status, 400, wrongState.text);
    const done = await https(server, 'POST', AUTH_PATHS.browserFinish, { json: { flowId, code, state, codeVerifier: verifier } });
    assert.equal(done.status, 200, done.text);
    const result = done.body as unknown as Extract<AuthResult, { purpose: 'enroll' }>;
    assert.equal(result.user.email, 'alice@example.com');
    assert.equal((await enroll(server, result.enrollToken, work, 'browser-laptop')).status, 200);
    const replay = await https(server, 'POST', AUTH_PATHS.browserFinish, { json: { flowId, code, state, codeVerifier: verifier } });
    assert.equal(replay.status, 403, replay.text);
    assert.equal((replay.body.error as { code: string }).code, 'AUTH_EXPIRED');
  });
  test('users sync while the IdP hangs changes nothing: the person is unreachable after the request timeout and keeps their device; concurrent syncs share one run', { timeout: 120_000 }, async (t) => {
    const { idp, server, work } = await sso(t);
    const r = await signIn(server, 'alice', 'enroll');
    assert.equal(r.status, 200, r.text);
    assert.equal((await enroll(server, (r.body as { enrollToken: string }).enrollToken, work, 'alice-laptop')).status, 200);
    await idp.stop();
    // In its place, a peer that accepts connections and never answers: each request to the IdP waits out its 10 s timeout.
    const held: Socket[] = [];
    const hang = createNetServer((s) => held.push(s));
    await new Promise<void>((r) => hang.listen(Number(new URL(idp.issuer).port), '127.0.0.1', r));
    t.after(() => {
      for (const s of held) s.destroy();
      hang.close();
    });
    // 20 admins asking at once, while the first run waits on the IdP, share that run: each answer
    // reports alice (a second run would find her claimed seconds ago and check nobody).
    const syncs = await Promise.all(Array.from({ length: 20 }, () => admin(server, 'POST', '/users/sync')));
    for (const sync of syncs) {
      assert.equal(sync.status, 200, sync.text);
      assert.deepEqual([sync.body.unreachable, sync.body.removed, sync.body.disabled, sync.body.revokedDevices], [['alice@example.com'], [], [], []]);
    }
    const devices = await admin(server, 'GET', '/devices');
    assert.deepEqual((devices.body.items as { status: string }[]).map((d) => d.status), ['active']);
  });
  test('admin sign-in: the role comes from IdP groups; a viewer cannot revoke; a refresh asks the IdP again and ends the session of someone no longer an admin', { timeout: 180_000 }, async (t) => {
    const { idp, server, work } = await sso(t);
    const enrolled = await signIn(server, 'carol', 'enroll');
    assert.equal((await enroll(server, (enrolled.body as { enrollToken: string }).enrollToken, work, 'carol-laptop')).status, 200);
    const deviceId = ((await admin(server, 'GET', '/devices')).body.items as { id: string }[])[0]!.id;

    const viewer = await signIn(server, 'carol', 'admin');
    assert.equal(viewer.status, 200, viewer.text);
    const vs = (viewer.body as unknown as Extract<AuthResult, { purpose: 'admin' }>).session;
    assert.equal(vs.role, 'viewer');
    const asCarol = { authorization: `Bearer ${vs.token}` };
    assert.equal((await https(server, 'GET', '/v1/admin/devices', { headers: asCarol })).status, 200);
    const refused = await https(server, 'POST', `/v1/admin/devices/${deviceId}/revoke`, { json: {}, headers: asCarol });
    assert.equal(refused.status, 403, refused.text);
    assert.equal((refused.body.error as { code: string }).code, 'FORBIDDEN');

    const a = await signIn(server, 'alice', 'admin');
    assert.equal(a.status, 200, a.text);
    const session = (a.body as unknown as Extract<AuthResult, { purpose: 'admin' }>).session;
    assert.equal(session.role, 'admin');
    const refreshed = await https(server, 'POST', AUTH_PATHS.refresh, { json: { refreshToken: session.refreshToken } });
    assert.equal(refreshed.status, 200, refreshed.text);
    const next = refreshed.body as unknown as { token: string; refreshToken: string; role: string };
    assert.equal(next.role, 'admin');
    // IT takes alice out of the admin group: her next refresh, asked of the IdP, ends the session.
    await idp.setAccount('alice-sub', { groups: ['staff'] });
    const ended = await https(server, 'POST', AUTH_PATHS.refresh, { json: { refreshToken: next.refreshToken } });
    assert.equal(ended.status, 401, ended.text);
    assert.equal((ended.body.error as { code: string }).code, 'SESSION_EXPIRED');
    assert.match((ended.body.error as { message: string }).message, /none of the identity provider groups that administer Latchkey/);
    const again = await signIn(server, 'alice', 'admin');
    assert.equal(again.status, 403, again.text);
    assert.equal((again.body.error as { code: string }).code, 'USER_NOT_ALLOWED');
    // The device still is carol's, and active: only an operator or admin could revoke it.
    assert.equal((await admin(server, 'GET', `/devices/${deviceId}`)).body.status, 'active');
  });
});
