/**
 * Issue 12 "every admin action in the audit log names the person", end to
 * end: a real latchkey-server with a real identity provider (oidc-provider
 * process), an admin sign-in with the device grant (RFC 8628), then the
 * session used by the real `latchkey-server` binary over TLS: whoami, an
 * API token made by the person and audited under their email, a viewer held
 * to their role, logout.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AUTH_PATHS, type AdminTokenInfo, type AuthDeviceStarted, type AuthResult } from '@latchkey/protocol';
import { sleep } from './support/gateways.js';
import { startSsoServer } from './support/idp/sso-server.js';
import { completeDeviceLogin } from './support/idp/idp-login.js';
import { cli, type ServerProcess } from './support/processes.js';

function post(server: ServerProcess, path: string, o: { json?: unknown; bearer?: string }): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  const ca = readFileSync(join(server.dataDir, 'root.crt.pem'), 'utf8');
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.port, method: 'POST', path, ca, agent: false, headers: { ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}), ...(o.bearer ? { authorization: `Bearer ${o.bearer}` } : {}) } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(o.json !== undefined ? JSON.stringify(o.json) : undefined);
  });
}

/** An admin sign-in with the device grant, completed at the IdP as `login`. */
async function adminSignIn(server: ServerProcess, login: string): Promise<Extract<AuthResult, { purpose: 'admin' }>> {
  const started = (await post(server, AUTH_PATHS.deviceStart, { json: { purpose: 'admin' } })).body as unknown as AuthDeviceStarted;
  await completeDeviceLogin({ verificationUri: started.verificationUri, userCode: started.userCode, login: `${login}@example.com`, password: `${login}-password`, decision: 'allow' });
  for (let i = 0; i < 30; i++) {
    const r = await post(server, AUTH_PATHS.devicePoll, { json: { flowId: started.flowId } });
    if (r.status === 200) return r.body as unknown as Extract<AuthResult, { purpose: 'admin' }>;
    assert.ok(r.status === 202 || r.status === 429, JSON.stringify(r.body));
    await sleep(Number(r.headers['retry-after'] ?? 1) * 1000);
  }
  throw new Error('the sign-in never finished');
}

describe('issue 12: an admin session through the real IdP and the real CLI', () => {
  test('whoami names the person; what they do is audited as user:<email>; a viewer stays a viewer; logout ends the session', { timeout: 120_000 }, async (t) => {
    const { server, dataDir } = await startSsoServer(t, { adminGroups: { viewer: ['latchkey-viewers'], operator: [], admin: ['latchkey-admins'] }, syncIntervalSeconds: 0 });
    const remote = ['--server', server.url, '--ca-file', join(dataDir, 'root.crt.pem')];
    const as = (token: string) => ({ env: { LATCHKEY_ADMIN_TOKEN: token } });

    const alice = await adminSignIn(server, 'alice');
    assert.equal(alice.user.email, 'alice@example.com');
    assert.equal(alice.session.role, 'admin');
    assert.match(alice.session.token, /^lk_ses_/);
    const who = await cli(['whoami', ...remote], as(alice.session.token));
    assert.equal(who.code, 0, who.stderr);
    assert.equal(who.stdout.trim(), `user:alice@example.com (session), role admin, until ${alice.session.expiresAt}`);

    const made = await cli(['admin-token', 'create', '--name', 'nightly', '--role', 'viewer', ...remote], as(alice.session.token));
    assert.equal(made.code, 0, made.stderr);
    const audit = JSON.parse((await cli(['audit', 'list', '--json', ...remote], as(alice.session.token))).stdout) as { items: { actor: string; action: string }[] };
    assert.deepEqual(
      audit.items.filter((e) => e.action === 'admin-token.create' || e.action === 'session.create').map((e) => [e.action, e.actor]),
      [['admin-token.create', 'user:alice@example.com'], ['session.create', 'user:alice@example.com']],
    );
    const listed = JSON.parse((await cli(['admin-token', 'list', '--sessions', '--json', ...remote], as(alice.session.token))).stdout) as { items: AdminTokenInfo[] };
    assert.deepEqual(listed.items.filter((x) => x.kind === 'session').map((x) => [x.user, x.role]), [['alice@example.com', 'admin']]);
    assert.equal(listed.items.find((x) => x.name === 'nightly')!.createdBy, 'user:alice@example.com');

    const carol = await adminSignIn(server, 'carol');
    assert.equal(carol.session.role, 'viewer');
    const refused = await cli(['admin-token', 'create', '--name', 'mine', '--role', 'viewer', ...remote], as(carol.session.token));
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'latchkey-server: this action needs the admin role; your session (carol@example.com) is viewer (FORBIDDEN)\n');

    assert.equal((await post(server, AUTH_PATHS.logout, { bearer: alice.session.token })).status, 204);
    const after = await cli(['whoami', ...remote], as(alice.session.token));
    assert.equal(after.code, 1);
    assert.equal(after.stderr, 'latchkey-server: your admin session was ended; sign in again with `latchkey-server login` (SESSION_EXPIRED)\n');
    for (const secret of [alice.session.token, alice.session.refreshToken, carol.session.token, made.stdout.trim()]) assert.ok(!server.log().includes(secret), 'no secret in the server log');
  });
});
