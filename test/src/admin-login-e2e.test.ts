/**
 * Issue 12, admins are people: `latchkey-server login` as a child process
 * signs in through a real identity provider (test/src/support/idp) with the
 * device authorization grant (RFC 8628); the test reads the code from its
 * stderr and completes the login at the IdP as the person would. Admin
 * commands then act as that person from the stored session (refreshed when
 * due, by one of two commands racing), `logout` ends it, a viewer cannot
 * revoke, and the audit log names the person.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { sleep } from './support/gateways.js';
import { startSsoServer } from './support/idp/sso-server.js';
import { completeDeviceLogin } from './support/idp/idp-login.js';
import { SERVER_CLI, cli, tempDir, type Run, type ServerProcess, type TestCtx } from './support/processes.js';

interface Stored {
  version: number;
  sessions: Record<string, { server: string; caPem?: string; session: { token: string; refreshToken: string; expiresAt: string; role: string }; user: { email: string } }>;
}

/** Answers the status and error code of one admin request made with `token` (as a stolen token would be used). */
function withToken(server: ServerProcess, token: string, path: string): Promise<{ status: number; code?: string }> {
  const ca = readFileSync(join(server.dataDir, 'root.crt.pem'), 'utf8');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method: 'GET', path, ca, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text || '{}') as { error?: { code: string } }).error?.code }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** `latchkey-server login` as a child; once it prints the code, the person signs in at the IdP (or Ctrl-C is pressed). */
function login(env: NodeJS.ProcessEnv, args: string[], person: { login: string; decision?: 'allow' | 'deny' } | 'interrupt'): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [SERVER_CLI, 'login', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let acted = false;
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /^Open (\S+) and enter code (\S+)$/m.exec(stderr);
      if (!m || acted || !/Ctrl-C cancels/.test(stderr)) return;
      acted = true;
      if (person === 'interrupt') return void p.kill('SIGINT');
      completeDeviceLogin({ verificationUri: m[1]!, userCode: m[2]!, login: `${person.login}@example.com`, password: `${person.login}-password`, decision: person.decision ?? 'allow' }).catch((e: unknown) => {
        p.kill('SIGKILL');
        reject(e instanceof Error ? e : new Error(String(e)));
      });
    });
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

async function setup(t: TestCtx, sessionSeconds = 3600) {
  const { idp, server, dataDir } = await startSsoServer(t, {
    enrollGroups: ['staff'],
    adminGroups: { viewer: ['latchkey-viewers'], operator: [], admin: ['latchkey-admins'] },
    syncIntervalSeconds: 0,
    sessionSeconds,
  });
  const home = tempDir(t, 'latchkey-home-');
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), LATCHKEY_ADMIN_TOKEN: '', LATCHKEY_SERVER: '' };
  const configDir = join(home, 'config', 'latchkey-server');
  const sessionsFile = join(configDir, 'sessions.json');
  const ca = join(dataDir, 'root.crt.pem');
  const stored = (): Stored => JSON.parse(readFileSync(sessionsFile, 'utf8')) as Stored;
  const as = (args: string[]) => cli([...args, '--server', server.url], { env });
  const auditActors = async (action: string): Promise<string[]> => {
    const r = await cli(['audit', 'list', '--action', action, '--json', '--data-dir', dataDir]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { items: { actor: string }[] }).items.map((i) => i.actor);
  };
  return { idp, server, env, configDir, sessionsFile, ca, stored, as, auditActors };
}

describe('issue 12: latchkey-server login (RFC 8628) with a real identity provider', () => {
  test('an admin signs in; commands act as them from the stored session (0600); logout ends it at the server', { timeout: 180_000 }, async (t) => {
    const s = await setup(t);
    const r = await login(s.env, ['--server', s.server.url, '--ca-file', s.ca], { login: 'alice' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^Open http:\/\/127\.0\.0\.1:\d+\/\S+ and enter code \S+$/m);
    assert.match(r.stdout, /^signed in as alice@example\.com \(role admin\) until \d{4}-\d\d-\d\dT[\d:.]+Z; renewed as needed until \S+\n$/);
    assert.doesNotMatch(r.stdout + r.stderr, /lk_ses_|lk_ref_|lk_flow_/, 'no secret is printed');
    assert.equal(statSync(s.configDir).mode & 0o777, 0o700);
    assert.equal(statSync(s.sessionsFile).mode & 0o777, 0o600);
    const entry = s.stored().sessions[s.server.url]!;
    assert.equal(entry.user.email, 'alice@example.com');
    assert.equal(entry.caPem, readFileSync(s.ca, 'utf8'), 'the root given at login is kept: later commands need only --server');
    assert.match(entry.session.token, /^lk_ses_/);

    // Admin commands act as alice, with only --server (no --ca-file, no admin token).
    const created = await s.as(['token', 'create', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const listed = await s.as(['devices', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(await s.auditActors('token.create'), ['user:alice@example.com']);
    const users = await s.as(['users', 'list', '--json']);
    assert.equal(users.code, 0, users.stderr);
    assert.deepEqual((JSON.parse(users.stdout) as { items: { email: string }[] }).items.map((u) => u.email), ['alice@example.com']);
    const sync = await s.as(['users', 'sync']);
    assert.equal(sync.code, 0, sync.stderr);
    assert.match(sync.stdout, /^checked \d+ user\(s\): .*\nno device was revoked\n$/);

    // LATCHKEY_ADMIN_TOKEN comes first: the bootstrap token acts, not alice.
    const bootstrap = readFileSync(join(s.server.dataDir, 'admin-token'), 'utf8').trim();
    const byToken = await cli(['token', 'create', '--server', s.server.url, '--ca-file', s.ca], { env: { ...s.env, LATCHKEY_ADMIN_TOKEN: bootstrap } });
    assert.equal(byToken.code, 0, byToken.stderr);
    assert.deepEqual(await s.auditActors('token.create'), ['admin:initial-admin', 'user:alice@example.com']);

    const out = await cli(['logout'], { env: s.env });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `signed out alice@example.com from ${s.server.url}: ended at the server\n`);
    assert.equal(existsSync(s.sessionsFile), false);
    assert.deepEqual(await withToken(s.server, entry.session.token, '/v1/admin/devices'), { status: 401, code: 'SESSION_EXPIRED' });
    const after = await s.as(['devices', 'list']);
    assert.equal(after.code, 2);
    assert.match(after.stderr, new RegExp(`no admin credentials for ${s.server.url.replace(/\./g, '\\.')}: sign in with \`latchkey-server login --server ${s.server.url.replace(/\./g, '\\.')}\``));
    const again = await cli(['logout'], { env: s.env });
    assert.equal(again.stdout, 'not signed in to any server\n');
  });

  test('the session is refreshed when it ends, once even when two commands run at once; the old token is refused', { timeout: 240_000 }, async (t) => {
    const s = await setup(t, 60);
    const r = await login(s.env, ['--server', s.server.url, '--ca-file', s.ca], { login: 'alice' });
    assert.equal(r.code, 0, r.stderr);
    const first = s.stored().sessions[s.server.url]!.session;
    // Past its end at the server: the old token is refused there.
    await sleep(Math.max(0, Date.parse(first.expiresAt) - Date.now()) + 1500);
    assert.deepEqual(await withToken(s.server, first.token, '/v1/admin/devices'), { status: 401, code: 'SESSION_EXPIRED' });
    // Two commands at once find it due: one refreshes under the lock, the other uses what it stored.
    const [a, b] = await Promise.all([s.as(['devices', 'list', '--json']), s.as(['token', 'list', '--json'])]);
    assert.deepEqual([a.code, a.stderr, b.code, b.stderr], [0, '', 0, '']);
    const second = s.stored().sessions[s.server.url]!.session;
    assert.notEqual(second.token, first.token);
    assert.notEqual(second.refreshToken, first.refreshToken);
    assert.ok(Date.parse(second.expiresAt) > Date.parse(first.expiresAt));
    // A refresh token used twice would have ended every session of alice (server: session.reuse).
    assert.deepEqual(await s.auditActors('session.reuse'), []);
    const c = await s.as(['devices', 'list']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(readdirSync(s.configDir).join(','), 'sessions.json', 'no lock or temp file is left');
  });

  test('a viewer can list but not revoke (FORBIDDEN); a person outside the admin groups is refused at login and nothing is stored', { timeout: 180_000 }, async (t) => {
    const s = await setup(t);
    const carol = await login(s.env, ['--server', s.server.url, '--ca-file', s.ca], { login: 'carol' });
    assert.equal(carol.code, 0, carol.stderr);
    assert.match(carol.stdout, /^signed in as carol@example\.com \(role viewer\)/);
    assert.equal((await s.as(['devices', 'list'])).code, 0);
    const revoke = await s.as(['devices', 'revoke', randomUUID()]);
    assert.equal(revoke.code, 1);
    assert.match(revoke.stderr, /^latchkey-server: .*\(FORBIDDEN\)\n$/);
    assert.match(revoke.stderr, /operator/);
    const out = await cli(['logout', '--server', s.server.url], { env: s.env });
    assert.equal(out.code, 0, out.stderr);

    const bob = await login(s.env, ['--server', s.server.url, '--ca-file', s.ca], { login: 'bob' });
    assert.equal(bob.code, 1);
    assert.match(bob.stderr, /latchkey-server: you signed in, but may not administer https:\/\/127\.0\.0\.1:\d+: .*bob@example\.com.*; ask whoever runs your identity provider to add you to one of the server's admin groups \(oidc\.adminGroups\) \(USER_NOT_ALLOWED\)\n$/);
    const denied = await login(s.env, ['--server', s.server.url, '--ca-file', s.ca], { login: 'alice', decision: 'deny' });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /the identity provider refused the sign-in .*run `latchkey-server login --server \S+` again and approve it \(AUTH_DENIED\)/);
    assert.equal(existsSync(s.sessionsFile), false);
    assert.deepEqual(await s.auditActors('auth.refused'), ['user:bob@example.com']);
  });

  test('Ctrl-C while waiting for the person leaves nothing behind', { timeout: 120_000 }, async (t) => {
    const s = await setup(t);
    const r = await login(s.env, ['--server', s.server.url, '--ca-file', s.ca], 'interrupt');
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /sign-in cancelled; nothing was stored\n$/);
    assert.equal(existsSync(s.configDir), false, 'not even the config dir');
  });
});

describe('latchkey-server session file refusals (no server needed)', () => {
  test('a session file others can read stops admin commands with the fix; a damaged one is removed by logout', async (t) => {
    const home = tempDir(t, 'latchkey-home-');
    const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), LATCHKEY_ADMIN_TOKEN: '', LATCHKEY_SERVER: '' };
    const dir = join(home, 'config', 'latchkey-server');
    const file = join(dir, 'sessions.json');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify({ version: 1, sessions: {} }), { mode: 0o600 });
    chmodSync(file, 0o644);
    const shared = await cli(['devices', 'list', '--server', 'https://127.0.0.1:1'], { env });
    assert.equal(shared.code, 2);
    assert.equal(shared.stderr, `latchkey-server: ${file} can be read or written by other users (mode 0644): the sessions in it may have leaked; run \`chmod 600 ${file}\` and, if others could read it, \`latchkey-server logout\`\n`);

    writeFileSync(file, '{"version":1,"sessions":{', { mode: 0o600 });
    chmodSync(file, 0o600);
    const damaged = await cli(['devices', 'list', '--server', 'https://127.0.0.1:1'], { env });
    assert.equal(damaged.code, 2);
    assert.match(damaged.stderr, new RegExp(`^latchkey-server: ${file.replace(/[.]/g, '\\.')} is not valid JSON \\(damaged\\?\\); sign out with \`latchkey-server logout\` \\(it removes the file\\)`));
    const out = await cli(['logout'], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /could not be read; sessions in it end by themselves when they expire/);
    assert.equal(existsSync(file), false);
  });
});
