/**
 * The agent `latchkey` against a real `latchkey-server` process: enrollment
 * with root pinning, status, forced and automatic renewal, the daemon riding
 * out a server outage, revocation, recovery inside and past the grace window,
 * and kill -9 at every step of a renewal. Short certificate lifetimes
 * (seconds) keep it fast.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { AGENT_CLI, cli, initServer, mustRun, requireTools, run, startServer, tempDir } from './support/processes.js';

interface Status {
  state: string;
  deviceId: string;
  serial: string;
  keyId: string;
  notAfter: string;
  nextRenewalAt?: string;
  lastError?: { code: string; message: string };
  sans: string[];
}

const agent = (stateDir: string, args: string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env: { ...process.env, ...env } });

async function status(stateDir: string): Promise<Status> {
  const r = await agent(stateDir, ['status', '--json']);
  return JSON.parse(r.stdout) as Status;
}

async function token(dataDir: string, group?: string): Promise<string> {
  const r = await cli(['token', 'create', '--data-dir', dataDir, '--json', ...(group ? ['--group', group] : [])]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { token: string }).token;
}

async function group(dataDir: string, name: string, lifetime: string, approval = false): Promise<void> {
  const r = await cli(['groups', 'set', name, '--lifetime', lifetime, '--data-dir', dataDir, ...(approval ? ['--require-approval'] : [])]);
  assert.equal(r.code, 0, r.stderr);
}

/** A server with a config tweak, started. */
async function server(t: TestContext, config: Record<string, unknown> = {}) {
  const { dataDir, port, fingerprint } = await initServer(t);
  const cfgFile = join(dataDir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), ...config }));
  const s = await startServer(t, dataDir, port);
  return { s, dataDir, port, fingerprint };
}

async function enrolled(t: TestContext, srv: { s: { url: string }; dataDir: string; fingerprint: string }, groupName?: string): Promise<string> {
  const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
  const r = await agent(stateDir, ['enroll', '--server', srv.s.url, '--token', await token(srv.dataDir, groupName), '--ca-fingerprint', srv.fingerprint, '--keystore', 'file']);
  assert.equal(r.code, 0, r.stderr);
  return stateDir;
}

function spawnAgent(t: TestContext, stateDir: string, args: string[], env: NodeJS.ProcessEnv = {}): { proc: ChildProcess; log: () => string; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exit = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return { proc, log: () => log, exit };
}

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const keyFiles = (stateDir: string): string[] => readdirSync(join(stateDir, 'keys')).filter((n) => n.endsWith('.key.pem'));

describe('latchkey agent against a real latchkey-server (file keystore)', () => {
  test('enroll pins the root, status --json reports the identity, renew --force changes serial and key, export verifies with openssl', { timeout: 60_000 }, async (t) => {
    if (!requireTools(t, 'openssl')) return;
    const srv = await server(t);
    const stateDir = await enrolled(t, srv);
    const st = await status(stateDir);
    assert.equal(st.state, 'active');
    assert.match(st.deviceId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(st.sans, [`URI:spiffe://latchkey.internal/device/${st.deviceId}`]);
    assert.ok(st.nextRenewalAt && new Date(st.nextRenewalAt) < new Date(st.notAfter));
    const r = await agent(stateDir, ['renew', '--force']);
    assert.equal(r.code, 0, r.stderr);
    const st2 = await status(stateDir);
    assert.notEqual(st2.serial, st.serial);
    assert.notEqual(st2.keyId, st.keyId);
    assert.equal(st2.deviceId, st.deviceId);
    assert.deepEqual(keyFiles(stateDir), [`${st2.keyId}.key.pem`], 'the old key is gone');
    const notDue = await agent(stateDir, ['renew']);
    assert.match(notDue.stdout, /not due/);
    const dir = tempDir(t);
    assert.equal((await agent(stateDir, ['export', '--cert', join(dir, 'cert.pem'), '--chain', join(dir, 'chain.pem')])).code, 0);
    const v = await mustRun('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'chain.pem'), join(dir, 'cert.pem')]);
    assert.match(v.stdout, /OK/);
  });

  test('a wrong --ca-fingerprint is refused loudly and leaves nothing behind', { timeout: 30_000 }, async (t) => {
    const srv = await server(t);
    const stateDir = join(tempDir(t), 'state');
    const r = await agent(stateDir, ['enroll', '--server', srv.s.url, '--token', await token(srv.dataDir), '--ca-fingerprint', 'ab'.repeat(32), '--keystore', 'file']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /REFUSING TO ENROLL: the server's root CA has SHA-256 fingerprint [0-9a-f]{64}, but (ab){32} was expected/);
    assert.equal((await status(stateDir)).state, 'not-enrolled');
    // Without a pin the server's private CA is not trusted by the system store.
    const r2 = await agent(stateDir, ['enroll', '--server', srv.s.url, '--token', await token(srv.dataDir), '--keystore', 'file']);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /not trusted .*--ca-fingerprint/);
  });

  test('approval: enroll waits (202 + Retry-After) and completes once an admin approves', { timeout: 60_000 }, async (t) => {
    const srv = await server(t, { approvalRetrySeconds: 1 });
    await group(srv.dataDir, 'approved', '1h', true);
    const stateDir = join(tempDir(t), 'state');
    const a = spawnAgent(t, stateDir, ['enroll', '--server', srv.s.url, '--token', await token(srv.dataDir, 'approved'), '--ca-fingerprint', srv.fingerprint, '--keystore', 'file']);
    await until('the pending message', () => /waiting for an administrator to approve this device/.test(a.log()));
    const list = await cli(['devices', 'list', '--status', 'pending', '--json', '--data-dir', srv.dataDir]);
    const pending = (JSON.parse(list.stdout) as { items: { id: string }[] }).items;
    assert.equal(pending.length, 1);
    assert.equal((await cli(['devices', 'approve', pending[0]!.id, '--data-dir', srv.dataDir])).code, 0);
    assert.equal(await a.exit, 0, a.log());
    assert.equal((await status(stateDir)).deviceId, pending[0]!.id);
  });

  test('run renews by itself at 2/3 of the lifetime, rides out a server outage with backoff, and renews when it returns', { timeout: 120_000 }, async (t) => {
    const srv = await server(t);
    await group(srv.dataDir, 'short', '6s');
    const stateDir = await enrolled(t, srv, 'short');
    const first = await status(stateDir);
    const d = spawnAgent(t, stateDir, ['run'], { LATCHKEY_RUN_SLICE_MS: '200', LATCHKEY_BACKOFF_CAP_MS: '1000' });
    await until('an automatic renewal', async () => (await status(stateDir)).serial !== first.serial);
    assert.match(d.log(), /renewed the certificate/);
    await srv.s.stop();
    await until('renewal failures while the server is down', async () => /renewal failed \(attempt 2\)/.test(d.log()) && (await status(stateDir)).lastError?.code === 'SERVER_UNREACHABLE');
    const before = (await status(stateDir)).serial;
    const again = await startServer(t, srv.dataDir, srv.port);
    await until('a renewal after the server came back', async () => (await status(stateDir)).serial !== before);
    const st = await status(stateDir);
    assert.equal(st.lastError, undefined, 'the error is cleared by a success');
    d.proc.kill('SIGTERM');
    assert.equal(await d.exit, 0);
    void again;
  });

  test('revoked on the server: run stops renewing, exits 3, and status says revoked', { timeout: 60_000 }, async (t) => {
    const srv = await server(t);
    await group(srv.dataDir, 'short', '6s');
    const stateDir = await enrolled(t, srv, 'short');
    const st = await status(stateDir);
    assert.equal((await cli(['devices', 'revoke', st.deviceId, '--reason', 'keyCompromise', '--data-dir', srv.dataDir])).code, 0);
    const d = spawnAgent(t, stateDir, ['run'], { LATCHKEY_RUN_SLICE_MS: '200' });
    assert.equal(await d.exit, 3, d.log());
    assert.match(d.log(), /THIS DEVICE HAS BEEN REVOKED/);
    const s = await agent(stateDir, ['status', '--json']);
    assert.equal(s.code, 3);
    assert.equal((JSON.parse(s.stdout) as Status).state, 'revoked');
    assert.equal((await agent(stateDir, ['run'])).code, 3, 'a revoked agent does not try again');
  });

  test('renew --force answered DEVICE_REVOKED: the agent records the revocation and deletes its key, as the daemon does; status says revoked and exits 3', { timeout: 60_000 }, async (t) => {
    const srv = await server(t);
    const stateDir = await enrolled(t, srv);
    const st = await status(stateDir);
    assert.deepEqual(keyFiles(stateDir), [`${st.keyId}.key.pem`]);
    // No daemon runs: only the refused renewal tells the agent.
    assert.equal((await cli(['devices', 'revoke', st.deviceId, '--reason', 'keyCompromise', '--data-dir', srv.dataDir])).code, 0);
    const r = await agent(stateDir, ['renew', '--force']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /DEVICE_REVOKED/);
    assert.match(r.stderr, /key and certificate are deleted[\s\S]*latchkey enroll --server/);
    const s = await agent(stateDir, ['status', '--json']);
    assert.equal(s.code, 3, s.stdout);
    const after = JSON.parse(s.stdout) as Status;
    assert.equal(after.state, 'revoked');
    assert.equal(after.deviceId, st.deviceId);
    assert.deepEqual(keyFiles(stateDir), [], 'the revoked key is deleted');
    assert.equal((await agent(stateDir, ['renew', '--force'])).code, 3, 'a revoked agent stays revoked');
    assert.equal((await agent(stateDir, ['run'])).code, 3, 'and its daemon does not start renewing');
  });

  test('renew in a state dir that was never enrolled says NOT_ENROLLED with the enroll command, exit 1', { timeout: 30_000 }, async (t) => {
    const stateDir = join(tempDir(t), 'never-enrolled');
    for (const args of [['renew'], ['renew', '--force']]) {
      const r = await agent(stateDir, args);
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected error|ENOENT/);
      assert.match(r.stderr, /not enrolled.*latchkey enroll --server URL --token T/);
    }
    const j = await agent(stateDir, ['renew', '--json']);
    assert.equal(j.code, 1);
    assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'NOT_ENROLLED');
  });

  test('expired within the grace window: recovery; past it: a clear refusal with exit 3', { timeout: 60_000 }, async (t) => {
    const srv = await server(t, { recoveryGraceSeconds: 4 });
    await group(srv.dataDir, 'short', '5s');
    const a = await enrolled(t, srv, 'short');
    const b = await enrolled(t, srv, 'short');
    const notAfter = new Date((await status(a)).notAfter).getTime();
    await until('expiry', () => Date.now() > notAfter + 1000, 15_000);
    assert.equal((await status(a)).state, 'expired');
    const r = await agent(a, ['renew']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await status(a)).state, 'active');
    await until('the end of the grace window', () => Date.now() > notAfter + 6000, 15_000);
    const late = await agent(b, ['renew']);
    assert.equal(late.code, 3, late.stderr);
    assert.match(late.stderr, /CERT_EXPIRED_PAST_GRACE/);
  });

  test('kill -9 at every step of a renewal: the next start has a working identity and no stray key', { timeout: 120_000 }, async (t) => {
    // Ten forced renewals in a minute, more than a device makes in days: past the default cap of unexpired certificates.
    const srv = await server(t, { maxCertificatesPerDevice: 20 });
    const stateDir = await enrolled(t, srv);
    for (const point of ['after-lock', 'after-generate', 'after-issue', 'after-commit', 'after-delete']) {
      const before = await status(stateDir);
      const crashed = await agent(stateDir, ['renew', '--force'], { LATCHKEY_TEST_CRASH_AT: point });
      assert.equal(crashed.signal, 'SIGKILL', `${point}: ${crashed.stderr}`);
      const after = await status(stateDir);
      assert.equal(after.state, 'active');
      const changed = after.serial !== before.serial;
      assert.equal(changed, point === 'after-commit' || point === 'after-delete', `${point}: identity ${changed ? 'changed' : 'kept'}`);
      // The identity works: renewing authenticates with its key over mTLS.
      const ok = await agent(stateDir, ['renew', '--force']);
      assert.equal(ok.code, 0, `${point}: ${ok.stderr}`);
      assert.deepEqual(keyFiles(stateDir), [`${(await status(stateDir)).keyId}.key.pem`], `${point}: orphan keys cleaned`);
    }
  });
});
