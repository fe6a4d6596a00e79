/**
 * Zero-touch enrollment (issue 15): an MDM drops an enroll file and a 0600
 * token file, and the service (`latchkey run`) enrolls by itself — against a
 * real `latchkey-server`, real agent processes, the file keystore. Restarts
 * (SIGTERM, SIGKILL during the approval wait) and a re-pushed file never make
 * a second device, even with a token good for several; bad files are usage
 * errors (exit 2) that never print the token.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { AGENT_CLI, cli, initServer, run, startServer, tempDir } from './support/processes.js';

const ENV = { ...process.env, LATCHKEY_ENROLL_FILE: '', LATCHKEY_MANAGED_PREFERENCES: '', LATCHKEY_TOKEN: '', LATCHKEY_BACKOFF_CAP_MS: '1000' };

function spawnRun(t: TestContext, stateDir: string, args: string[], env: NodeJS.ProcessEnv = {}): { proc: ChildProcess; log: () => string; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...ENV, ...env } });
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exit = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return { proc, log: () => log, exit };
}

async function until(what: string, fn: () => Promise<boolean> | boolean, log: () => string = () => '', ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out waiting for ${what}\n${log()}`);
}

async function json<T>(args: string[]): Promise<T> {
  const r = await cli([...args, '--json']);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

type DeviceRow = { id: string; status: string };
const devices = async (dataDir: string): Promise<DeviceRow[]> => (await json<{ items: DeviceRow[] }>(['devices', 'list', '--data-dir', dataDir])).items;

async function agentStatus(stateDir: string): Promise<{ enrolled: boolean; deviceId?: string; state: string }> {
  const r = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'], { env: ENV });
  return JSON.parse(r.stdout) as { enrolled: boolean; deviceId?: string; state: string };
}

/** The MDM's two files: the enroll file (0644) and the token file (0600, CRLF as Windows tools write it). */
function dropFiles(dir: string, server: string, fingerprint: string, token: string, extra: Record<string, unknown> = {}): string {
  const tokenFile = join(dir, 'enroll-token');
  writeFileSync(tokenFile, `${token}\r\n`, { mode: 0o600 });
  const enrollFile = join(dir, 'enroll.json');
  writeFileSync(enrollFile, `${JSON.stringify({ server, caFingerprint: fingerprint, keystore: 'file', tokenFile, ...extra }, null, 2)}\n`, { mode: 0o644 });
  return enrollFile;
}

describe('zero-touch enrollment: latchkey run and an enroll file (issue 15)', () => {
  test('run enrolls from the enroll file (retrying while the server is not up yet), then runs; restarts and a re-pushed file make no second device', { timeout: 180_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const dir = tempDir(t, 'latchkey-zero-touch-');
    const stateDir = join(dir, 'state');
    // A token good for five devices: only the agent's own idempotence keeps it at one. Made while the server runs, which then stops.
    const before = await startServer(t, dataDir, port);
    const { token } = await json<{ token: string }>(['token', 'create', '--uses', '5', '--data-dir', dataDir]);
    await before.stop();
    const url = `https://127.0.0.1:${port}`;
    const enrollFile = dropFiles(dir, url, fingerprint, token);

    // The service starts before the server is reachable: it backs off and tries again, no exit.
    const first = spawnRun(t, stateDir, ['--enroll-file', enrollFile]);
    await until('a retry while the server is down', () => /enrollment failed .*trying again in \d+ s/.test(first.log()), first.log);
    await startServer(t, dataDir, port);
    await until('the enrollment', () => /enrolled: device [0-9a-f-]{36}/.test(first.log()), first.log);
    const deviceId = /enrolled: device ([0-9a-f-]{36})/.exec(first.log())![1]!;
    assert.match(first.log(), new RegExp(`enrolling with ${url.replace(/\./g, '\\.')} as the enroll file .*enroll\\.json says \\(keystore file\\)`));
    const st = await agentStatus(stateDir);
    assert.deepEqual([st.enrolled, st.deviceId, st.state], [true, deviceId, 'active']);
    await until('the control channel', async () => (await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status'], { env: ENV })).stdout.includes('connected'), first.log);
    assert.ok(!first.log().includes(token), 'the token is never logged');
    first.proc.kill('SIGTERM');
    assert.equal(await first.exit, 0, first.log());

    // Restarted with the file still there (and via the environment this time): the file is not used again.
    const second = spawnRun(t, stateDir, [], { LATCHKEY_ENROLL_FILE: enrollFile });
    await until('the ignored-file line', () => /this device is enrolled \(device .*\); the enroll file .* is not used again/.test(second.log()), second.log);
    second.proc.kill('SIGKILL');
    await second.exit;

    // The MDM re-pushes the file, now naming another server: ignored, with how to move.
    writeFileSync(enrollFile, JSON.stringify({ ...JSON.parse(readFileSync(enrollFile, 'utf8')), server: 'https://other.example.com:8443' }), { mode: 0o644 });
    const third = spawnRun(t, stateDir, ['--enroll-file', enrollFile]);
    await until('the other-server line', () => /names https:\/\/other\.example\.com:8443, but this device is enrolled as .* the file is ignored\. To enroll with the new server, run `latchkey unenroll`/.test(third.log()), third.log);
    third.proc.kill('SIGTERM');
    await third.exit;

    const rows = await devices(dataDir);
    assert.deepEqual(rows.map((d) => d.id), [deviceId], 'one device on the server');
    assert.equal((await agentStatus(stateDir)).deviceId, deviceId);
  });

  test('a group that needs approval: run waits, is killed and restarted during the wait, resumes the same request, and gets its certificate once approved', { timeout: 180_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const cfg = join(dataDir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), approvalRetrySeconds: 1 }));
    const s = await startServer(t, dataDir, port);
    assert.equal((await cli(['groups', 'set', 'contractors', '--lifetime', '1h', '--require-approval', '--data-dir', dataDir])).code, 0);
    const { token } = await json<{ token: string }>(['token', 'create', '--group', 'contractors', '--uses', '5', '--data-dir', dataDir]);
    const dir = tempDir(t, 'latchkey-zero-touch-');
    const stateDir = join(dir, 'state');
    const enrollFile = dropFiles(dir, s.url, fingerprint, token);

    const first = spawnRun(t, stateDir, ['--enroll-file', enrollFile]);
    await until('the wait for approval', () => /waiting for an administrator to approve this device/.test(first.log()), first.log);
    first.proc.kill('SIGKILL');
    await first.exit;
    assert.equal((await agentStatus(stateDir)).enrolled, false);

    const second = spawnRun(t, stateDir, ['--enroll-file', enrollFile]);
    await until('the resumed wait', () => /resuming the enrollment with .* started at/.test(second.log()) && /waiting for an administrator/.test(second.log()), second.log);
    const pending = await devices(dataDir);
    assert.equal(pending.length, 1, 'the same request, not a second pending device');
    assert.equal(pending[0]!.status, 'pending');
    assert.equal((await cli(['devices', 'approve', pending[0]!.id, '--data-dir', dataDir])).code, 0);
    await until('the certificate', () => new RegExp(`enrolled: device ${pending[0]!.id}`).test(second.log()), second.log);
    assert.equal(second.proc.exitCode, null, 'run goes on as the daemon');
    const st = await agentStatus(stateDir);
    assert.deepEqual([st.enrolled, st.deviceId, st.state], [true, pending[0]!.id, 'active']);
    second.proc.kill('SIGTERM');
    assert.equal(await second.exit, 0, second.log());
    assert.deepEqual((await devices(dataDir)).map((d) => [d.id, d.status]), [[pending[0]!.id, 'active']]);
  });

  test('the token file replaced while the device waits for approval: the same request goes on (one pending device), a bad new token keeps it, the new token is not used', { timeout: 180_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const cfg = join(dataDir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), approvalRetrySeconds: 1 }));
    const s = await startServer(t, dataDir, port);
    assert.equal((await cli(['groups', 'set', 'contractors', '--lifetime', '1h', '--require-approval', '--data-dir', dataDir])).code, 0);
    const first = await json<{ token: string; info: { id: string } }>(['token', 'create', '--group', 'contractors', '--uses', '5', '--data-dir', dataDir]);
    const dir = tempDir(t, 'latchkey-zero-touch-');
    const stateDir = join(dir, 'state');
    const enrollFile = dropFiles(dir, s.url, fingerprint, first.token);

    const a = spawnRun(t, stateDir, ['--enroll-file', enrollFile]);
    await until('the wait for approval', () => /waiting for an administrator to approve this device/.test(a.log()), a.log);
    a.proc.kill('SIGTERM');
    await a.exit;
    const [waiting] = await devices(dataDir);
    assert.equal(waiting!.status, 'pending');

    // The MDM pushes a mistyped token: refused, but the waiting request (key and CSR) is kept.
    const typo = 'lk_enr_MISTYPED_TOKEN_0000000000000000';
    dropFiles(dir, s.url, fingerprint, typo);
    const b = spawnRun(t, stateDir, ['--enroll-file', enrollFile]);
    assert.equal(await b.exit, 1, b.log());
    assert.match(b.log(), /this device's request of .* is kept: give a valid token to continue it/);
    assert.ok(!b.log().includes(typo), 'the token is never logged');

    // Then a new, valid token (a one-use one of the same group): the same request goes on.
    const second = await json<{ token: string; info: { id: string } }>(['token', 'create', '--group', 'contractors', '--uses', '1', '--data-dir', dataDir]);
    dropFiles(dir, s.url, fingerprint, second.token);
    const c = spawnRun(t, stateDir, ['--enroll-file', enrollFile]);
    await until('the resumed wait', () => /its token file changed since: the same request goes on with the new token/.test(c.log()) && /waiting for an administrator/.test(c.log()), c.log);
    assert.deepEqual((await devices(dataDir)).map((d) => [d.id, d.status]), [[waiting!.id, 'pending']], 'one pending device, the first one');
    assert.equal((await cli(['devices', 'approve', waiting!.id, '--data-dir', dataDir])).code, 0);
    await until('the certificate', () => new RegExp(`enrolled: device ${waiting!.id}`).test(c.log()), c.log);
    c.proc.kill('SIGTERM');
    assert.equal(await c.exit, 0, c.log());
    assert.deepEqual((await devices(dataDir)).map((d) => [d.id, d.status]), [[waiting!.id, 'active']]);
    const tokens = (await json<{ items: { id: string; usedCount: number }[] }>(['token', 'list', '--data-dir', dataDir])).items;
    assert.deepEqual(
      [first.info.id, second.info.id].map((id) => tokens.find((x) => x.id === id)?.usedCount),
      [1, 0],
      'the request used the first token once; the new one only let it in',
    );
  });

  test('macOS managed preferences: a binary plist from an MDM profile (com.latchkey.agent) enrolls the device, injected by LATCHKEY_MANAGED_PREFERENCES on this Linux host', { timeout: 120_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const s = await startServer(t, dataDir, port);
    const { token } = await json<{ token: string }>(['token', 'create', '--data-dir', dataDir]);
    const dir = tempDir(t, 'latchkey-zero-touch-mdm-');
    const stateDir = join(dir, 'state');
    const tokenFile = join(dir, 'enroll-token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    // As macOS writes /Library/Managed Preferences/com.latchkey.agent.plist: binary, with the payload's keys.
    const plist = join(dir, 'com.latchkey.agent.plist');
    const keys = { server: s.url, caFingerprint: fingerprint, keystore: 'file', tokenFile, PayloadUUID: '5D2C4E1A-0000-4000-8000-000000000001' };
    const writePlist = async (path: string, body: object, fmt: 'BINARY' | 'XML'): Promise<void> => {
      const r = await run('python3', ['-c', `import plistlib, json, sys; open(sys.argv[1], 'wb').write(plistlib.dumps(json.load(sys.stdin), fmt=plistlib.FMT_${fmt}))`, path], { input: JSON.stringify(body) });
      assert.equal(r.code, 0, r.stderr);
      chmodSync(path, 0o644);
    };
    await writePlist(plist, keys, 'BINARY');
    assert.equal(readFileSync(plist).subarray(0, 8).toString('latin1'), 'bplist00');

    const a = spawnRun(t, stateDir, [], { LATCHKEY_MANAGED_PREFERENCES: plist });
    await until('the enrollment', () => /enrolled: device [0-9a-f-]{36}/.test(a.log()), a.log);
    assert.match(a.log(), /enrolling with https:\/\/127\.0\.0\.1:\d+ as the managed preferences .*com\.latchkey\.agent\.plist says \(keystore file\)/);
    assert.ok(!a.log().includes(token), 'the token is never logged');
    a.proc.kill('SIGTERM');
    assert.equal(await a.exit, 0, a.log());
    const deviceId = /enrolled: device ([0-9a-f-]{36})/.exec(a.log())![1]!;
    assert.deepEqual((await devices(dataDir)).map((d) => d.id), [deviceId]);

    // Restarted with the profile still installed: not used again.
    const b = spawnRun(t, stateDir, [], { LATCHKEY_MANAGED_PREFERENCES: plist });
    await until('the not-used-again line', () => /this device is enrolled .*; the managed preferences .* are not used again/.test(b.log()), b.log);
    b.proc.kill('SIGTERM');
    await b.exit;

    // A profile with the token inline is refused (exit 2) without printing it.
    const inline = join(dir, 'inline.plist');
    await writePlist(inline, { ...keys, token }, 'XML');
    const r = await run(process.execPath, [AGENT_CLI, '--state-dir', join(dir, 'state-inline'), 'run'], { env: { ...ENV, LATCHKEY_MANAGED_PREFERENCES: inline } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /the managed preferences .*inline\.plist: holds the enrollment token inline/);
    assert.ok(!r.stderr.includes(token) && !r.stdout.includes(token));
  });

  test('bad inputs are usage errors (exit 2) naming what to fix, never printing the token', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t, 'latchkey-zero-touch-bad-');
    const fp = 'AB:'.repeat(31) + 'CD';
    const secret = 'lk_enr_NOT_A_REAL_TOKEN_0123456789';
    const runOnce = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, [AGENT_CLI, '--state-dir', join(dir, `state-${name}`), 'run', ...args], { env: { ...ENV, ...env } });
    const file = (name: string, body: unknown, mode = 0o644): string => {
      const p = join(dir, `${name}.json`);
      writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body));
      chmodSync(p, mode);
      return p;
    };
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${secret}\n`, { mode: 0o600 });
    const openToken = join(dir, 'open-token');
    writeFileSync(openToken, `${secret}\n`);
    chmodSync(openToken, 0o644);
    const base = { server: 'https://127.0.0.1:9', caFingerprint: fp, keystore: 'file' };

    const cases: [string, string[], RegExp, NodeJS.ProcessEnv?][] = [
      ['inline', ['--enroll-file', file('inline', { ...base, token: secret })], /holds the enrollment token inline \("token"\); put the token in a file of its own \(chmod 600\) and name it with "tokenFile"/],
      ['open-token', ['--enroll-file', file('open', { ...base, tokenFile: openToken })], /tokenFile of .*open\.json, .*open-token can be read by other users \(mode 644\); run chmod 600/],
      ['unknown', ['--enroll-file', file('unknown', { ...base, tokenFile, keyStore: 'os' })], /unknown field "keyStore"; it may hold server, caFingerprint/],
      ['not-json', ['--enroll-file', file('not-json', '{ "server": ')], /not-json\.json: is not valid JSON/],
      ['no-token-file', ['--enroll-file', file('no-token-file', { ...base, tokenFile: join(dir, 'absent-token') })], /tokenFile of .*absent-token: no such file/],
      ['missing', ['--enroll-file', join(dir, 'absent.json')], /--enroll-file .*absent\.json: no such file/],
      ['missing-env', [], /LATCHKEY_ENROLL_FILE .*absent\.json: no such file/, { LATCHKEY_ENROLL_FILE: join(dir, 'absent.json') }],
      ['world-writable', ['--enroll-file', file('writable', { ...base, tokenFile }, 0o666)], /can be changed by other users \(mode 666\)/],
    ];
    for (const [name, args, re, env] of cases) {
      const r = await runOnce(name, args, env);
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, re, name);
      assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), `${name}: the token is never printed`);
    }
  });
});
