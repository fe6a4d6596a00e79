/**
 * `latchkey enroll --sso` end to end (issue 12): the real agent as a child
 * process, a real `latchkey-server` whose identity provider is the test IdP
 * (support/idp/, oidc-provider in its own process), and the person's side
 * driven over HTTP (device flow) or with headless Chromium (browser flow).
 * Accounts: alice (staff), bob (contractors), carol (staff); staff may
 * enroll, into group `laptops`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { defaultAccounts, type Idp } from './support/idp/idp-fixture.js';
import { startSsoServer } from './support/idp/sso-server.js';
import { chromiumOrSkip, completeBrowserLogin, completeDeviceLogin, type Decision } from './support/idp/idp-login.js';
import { AGENT_CLI, cli, initServer, run, startServer, tempDir, type ServerProcess } from './support/processes.js';

const accounts = defaultAccounts();
const [alice, bob, carol] = [accounts[0]!, accounts[1]!, accounts[2]!];

interface Agent {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
  /** Resolves with the first match of `re` in stderr (the lines the person reads). */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
}

function spawnAgent(t: TestContext, stateDir: string, args: string[], env: NodeJS.ProcessEnv = {}): Agent {
  const proc = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  const watchers: (() => void)[] = [];
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of [...watchers]) w();
  });
  const exit = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitFor(re, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(err);
          if (!m) return;
          watchers.splice(watchers.indexOf(check), 1);
          clearTimeout(timer);
          resolve(m);
        };
        const timer = setTimeout(() => reject(new Error(`agent did not print ${re} within ${ms} ms; stderr:\n${err}`)), ms);
        watchers.push(check);
        void exit.then(() => setImmediate(() => (re.test(err) ? check() : reject(new Error(`agent exited without printing ${re}; stderr:\n${err}`)))));
        check();
      });
    },
  };
}

const agent = (stateDir: string, args: string[]) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args]);

interface Setup {
  idp: Idp;
  server: ServerProcess;
  dataDir: string;
  fingerprint: string;
}

async function setup(t: TestContext, opts: { requireApproval?: boolean; maxDevicesPerUser?: number } = {}): Promise<Setup> {
  const { idp, server, dataDir, fingerprint } = await startSsoServer(
    t,
    { enrollGroups: ['staff'], groupMapping: [{ idpGroup: 'staff', group: 'laptops' }], ...(opts.maxDevicesPerUser ? { maxDevicesPerUser: opts.maxDevicesPerUser } : {}) },
    { scopes: ['openid', 'email', 'groups', 'offline_access'] },
  );
  const g = await cli(['groups', 'set', 'laptops', '--lifetime', '24h', ...(opts.requireApproval ? ['--require-approval'] : []), '--data-dir', dataDir]);
  assert.equal(g.code, 0, g.stderr);
  return { idp, server, dataDir, fingerprint };
}

const enrollArgs = (s: Setup, flow: 'device' | 'browser') => ['enroll', '--server', s.server.url, '--ca-fingerprint', s.fingerprint, '--keystore', 'file', '--sso', '--sso-flow', flow];

type DeviceRow = { id: string; group: string; status: string };
async function devices(dataDir: string): Promise<DeviceRow[]> {
  const r = await cli(['devices', 'list', '--data-dir', dataDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { items: DeviceRow[] }).items;
}

/** The device flow as the person does it: the agent prints URL and code, they sign in elsewhere. */
async function deviceFlow(t: TestContext, s: Setup, stateDir: string, who: { email: string; password: string }, decision: Decision = 'allow'): Promise<Agent> {
  const a = spawnAgent(t, stateDir, enrollArgs(s, 'device'));
  const m = await a.waitFor(/To enroll this device, open (\S+) and enter code (\S+)\n/);
  // The complete URI (RFC 8628 §3.3.1) is shown too, on the next line.
  await a.waitFor(/\(or open \S+user_code=\S+, which has the code in it\)/);
  await completeDeviceLogin({ verificationUri: m[1]!, userCode: m[2]!, login: who.email, password: who.password, decision });
  await a.exit;
  return a;
}

/** The email SAN of the agent's certificate, as openssl reads it. */
async function emailSans(t: TestContext, stateDir: string): Promise<string[]> {
  const file = join(tempDir(t, 'latchkey-cert-'), 'device.pem');
  const e = await agent(stateDir, ['export', '--cert', file]);
  assert.equal(e.code, 0, e.stderr);
  const x = await run('openssl', ['x509', '-in', file, '-noout', '-ext', 'subjectAltName']);
  assert.equal(x.code, 0, x.stderr);
  return [...x.stdout.matchAll(/email:([^,\s]+)/g)].map((m) => m[1]!);
}

const keyFiles = (stateDir: string): string[] => (existsSync(join(stateDir, 'keys')) ? readdirSync(join(stateDir, 'keys')) : []);

describe('latchkey enroll --sso against a real identity provider (issue 12)', () => {
  test('RFC 8628 device flow: a user of an allowed group enrolls; the certificate and `status` name them; renewal keeps them', { timeout: 120_000 }, async (t) => {
    const s = await setup(t);
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const a = await deviceFlow(t, s, stateDir, alice);
    assert.equal(a.proc.exitCode, 0, a.stderr());
    assert.match(a.stderr(), /^signed in as alice@example\.com; enrolling into group laptops$/m);
    assert.match(a.stdout(), /^enrolled: device [0-9a-f-]{36}, certificate [0-9a-f]+ valid until /);
    assert.doesNotMatch(a.stderr() + a.stdout(), /lk_enr_|lk_flow_/, 'no secret of the sign-in is printed');

    assert.deepEqual(await emailSans(t, stateDir), ['alice@example.com']);
    const st = JSON.parse((await agent(stateDir, ['status', '--json'])).stdout) as { state: string; user: string | null; deviceId: string };
    assert.equal(st.state, 'active');
    assert.equal(st.user, 'alice@example.com');
    assert.match((await agent(stateDir, ['status'])).stdout, /^user {10}alice@example\.com$/m);
    const [d] = await devices(s.dataDir);
    assert.equal(d?.id, st.deviceId);
    assert.equal(d?.group, 'laptops', 'the IdP group chose the Latchkey group');

    // Renewal: the device certificate is the credential; no one is asked to sign in, and the user stays.
    const r = await agent(stateDir, ['renew', '--force']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await emailSans(t, stateDir), ['alice@example.com']);
  });

  test('approval pending, agent killed: `enroll --sso` again resumes with that sign-in (no new one), same key, one device', { timeout: 120_000 }, async (t) => {
    const s = await setup(t, { requireApproval: true });
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const a = spawnAgent(t, stateDir, enrollArgs(s, 'device'));
    const m = await a.waitFor(/To enroll this device, open (\S+) and enter code (\S+)\n/);
    await completeDeviceLogin({ verificationUri: m[1]!, userCode: m[2]!, login: alice.email, password: alice.password, decision: 'allow' });
    await a.waitFor(/waiting for an administrator to approve this device/);
    a.proc.kill('SIGKILL');
    await a.exit;
    const pending = join(stateDir, 'enroll-pending.json');
    assert.equal(statSync(pending).mode & 0o777, 0o600);
    assert.match(readFileSync(pending, 'utf8'), /"signInToken": "lk_enr_/);
    const [d] = await devices(s.dataDir);
    assert.equal(d?.status, 'pending');
    const ap = await cli(['devices', 'approve', d!.id, '--data-dir', s.dataDir]);
    assert.equal(ap.code, 0, ap.stderr);

    const again = await agent(stateDir, enrollArgs(s, 'device'));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming the enrollment signed in at /);
    assert.doesNotMatch(again.stderr, /To enroll this device/, 'nobody is asked to sign in again');
    assert.match(again.stdout, new RegExp(`^enrolled: device ${d!.id}, `));
    assert.deepEqual(await emailSans(t, stateDir), ['alice@example.com']);
    assert.equal((await devices(s.dataDir)).length, 1);
    assert.equal(existsSync(pending), false, 'the token went with the record');
  });

  test('a user outside the allowed groups is refused with the rule, and nothing is enrolled', { timeout: 120_000 }, async (t) => {
    const s = await setup(t);
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const a = await deviceFlow(t, s, stateDir, bob);
    assert.equal(a.proc.exitCode, 1, a.stderr());
    assert.match(a.stderr(), /latchkey: you signed in, but you may not enroll a device: bob@example\.com is in none of the identity provider groups that may enroll devices \(staff\)/);
    assert.doesNotMatch(a.stderr(), /signed in as/);
    assert.equal((JSON.parse((await agent(stateDir, ['status', '--json'])).stdout) as { state: string }).state, 'not-enrolled');
    assert.deepEqual(keyFiles(stateDir), [], 'no key was made');
    assert.equal(existsSync(join(stateDir, 'enroll-pending.json')), false);
    assert.deepEqual(await devices(s.dataDir), []);
  });

  test('per-user device limit: a second machine of the same person is refused with the limit, nothing enrolled there', { timeout: 120_000 }, async (t) => {
    const s = await setup(t, { maxDevicesPerUser: 1 });
    const first = await deviceFlow(t, s, join(tempDir(t, 'latchkey-agent-'), 'state'), alice);
    assert.equal(first.proc.exitCode, 0, first.stderr());
    const secondDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const second = await deviceFlow(t, s, secondDir, alice);
    assert.equal(second.proc.exitCode, 1, second.stderr());
    assert.match(second.stderr(), /latchkey: you already have as many enrolled devices as allowed: alice@example\.com already has 1 devices.*; ask IT to revoke one you no longer use/);
    assert.deepEqual(keyFiles(secondDir), []);
    assert.equal((await devices(s.dataDir)).length, 1);
  });

  test('the person says no at the identity provider: "the sign-in was cancelled", nothing enrolled', { timeout: 120_000 }, async (t) => {
    const s = await setup(t);
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const a = await deviceFlow(t, s, stateDir, alice, 'deny');
    assert.equal(a.proc.exitCode, 1, a.stderr());
    assert.match(a.stderr(), /latchkey: the sign-in was cancelled at the identity provider.*; run the same command again to retry/);
    assert.deepEqual(await devices(s.dataDir), []);
  });

  test('RFC 8252 browser flow with PKCE: headless Chromium signs in on the URL the agent printed; the loopback listener takes the code', { timeout: 120_000 }, async (t) => {
    if (!chromiumOrSkip(t)) return;
    const s = await setup(t);
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    // BROWSER: a program that opens nothing, so the test is the browser.
    const a = spawnAgent(t, stateDir, enrollArgs(s, 'browser'), { BROWSER: 'true' });
    const url = new URL((await a.waitFor(/If no browser opened, visit: (\S+)\n/))[1]!);
    assert.equal(url.origin, s.idp.issuer, 'the authorize URL is the IdP\'s');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    const landed = await completeBrowserLogin({ url: url.href, login: carol.email, password: carol.password, decision: 'allow' });
    assert.match(landed, /^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);
    assert.equal(await a.exit, 0, a.stderr());
    assert.match(a.stderr(), /^signed in as carol@example\.com; enrolling into group laptops$/m);
    assert.deepEqual(await emailSans(t, stateDir), ['carol@example.com']);
    assert.equal((JSON.parse((await agent(stateDir, ['status', '--json'])).stdout) as { user: string }).user, 'carol@example.com');
  });

  test('a server without an identity provider: ask IT for a token; --sso with --token is a usage error', { timeout: 60_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const r = await agent(stateDir, ['enroll', '--server', server.url, '--ca-fingerprint', fingerprint, '--keystore', 'file', '--sso']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^latchkey: this server has no identity provider configured; ask IT for an enrollment token/m);
    assert.deepEqual(keyFiles(stateDir), []);
    const both = await agent(stateDir, ['enroll', '--server', server.url, '--token', 'lk_enr_0123456789abcdefghij', '--sso']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /enroll takes --token T \/ --token-file F or --sso \(sign in\), not both/);
  });

  test('the root is pinned before anything is sent: a wrong --ca-fingerprint refuses before any sign-in starts', { timeout: 60_000 }, async (t) => {
    const s = await setup(t);
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const r = await agent(stateDir, ['enroll', '--server', s.server.url, '--ca-fingerprint', '00'.repeat(32), '--keystore', 'file', '--sso', '--sso-flow', 'device']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /REFUSING TO ENROLL/);
    assert.doesNotMatch(r.stderr, /To enroll this device/);
  });
});
