/**
 * `latchkey enroll-file write` end to end (issue 15), the step the Windows
 * MSI runs as a custom action: the real CLI writes the enroll file and the
 * token file from stdin or LATCHKEY_TOKEN, and the real `latchkey run`
 * enrolls from them against a real latchkey-server. Bad input exits 2 and
 * the token never reaches stdout or stderr.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { AGENT_CLI, cli, initServer, run, startServer, tempDir } from './support/processes.js';

const ENV = { ...process.env, LATCHKEY_ENROLL_FILE: '', LATCHKEY_TOKEN: '', LATCHKEY_BACKOFF_CAP_MS: '1000' };
const write = (args: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}) =>
  run(process.execPath, [AGENT_CLI, 'enroll-file', 'write', ...args], { input: o.input ?? '', env: { ...ENV, ...o.env } });

function spawnRun(t: TestContext, stateDir: string, enrollFile: string): { proc: ChildProcess; log: () => string; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run', '--enroll-file', enrollFile], { stdio: ['ignore', 'pipe', 'pipe'], env: ENV });
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exit = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return { proc, log: () => log, exit };
}

describe('latchkey enroll-file write (issue 15, the MSI custom action)', () => {
  test('writes the two files from stdin; `latchkey run` enrolls from them; the same again is unchanged, another token is refused without --force', { timeout: 120_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const s = await startServer(t, dataDir, port);
    const tok = await cli(['token', 'create', '--data-dir', dataDir, '--json']);
    const { token } = JSON.parse(tok.stdout) as { token: string };
    const dir = tempDir(t, 'latchkey-efw-e2e-');
    const enrollFile = join(dir, 'etc', 'enroll.json');
    const args = ['--server', s.url, '--ca-fingerprint', fingerprint, '--keystore', 'file', '--enroll-file', enrollFile];

    const w = await write(args, { input: `${token}\r\n` });
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /^wrote the token file .*etc\/enroll-token and the enroll file .*etc\/enroll\.json\n$/);
    assert.equal(statSync(enrollFile).mode & 0o777, 0o644);
    assert.equal(statSync(join(dir, 'etc', 'enroll-token')).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(enrollFile, 'utf8')), { server: s.url, caFingerprint: fingerprint, keystore: 'file', tokenFile: join(dir, 'etc', 'enroll-token') });

    const again = await write(args, { env: { LATCHKEY_TOKEN: token } });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^unchanged: /);
    const other = await write(args, { input: 'lk_enr_another' });
    assert.equal(other.code, 2);
    assert.match(other.stderr, /token file .*enroll-token exists with other content \(another token\); leave it, remove it, or pass --force/);

    const agent = spawnRun(t, join(dir, 'state'), enrollFile);
    const end = Date.now() + 60_000;
    while (!/enrolled: device [0-9a-f-]{36}/.test(agent.log()) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    assert.match(agent.log(), /enrolled: device [0-9a-f-]{36}/);
    agent.proc.kill('SIGTERM');
    assert.equal(await agent.exit, 0, agent.log());
    for (const out of [w.stdout + w.stderr, again.stdout + again.stderr, agent.log()]) assert.ok(!out.includes(token), 'the token is never printed');
  });

  test('bad input exits 2 with what to do, prints no token, and writes nothing', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t, 'latchkey-efw-e2e-');
    const enrollFile = join(dir, 'enroll.json');
    const fp = 'AB'.repeat(32);
    const secret = 'lk_enr_ThisMustNotBePrinted';
    const cases: [string[], { input?: string; env?: NodeJS.ProcessEnv }, RegExp][] = [
      [['--ca-fingerprint', fp, '--enroll-file', enrollFile], { input: secret }, /needs --server URL and --ca-fingerprint/],
      [['--server', 'http://plain.example.com', '--ca-fingerprint', fp, '--enroll-file', enrollFile], { input: secret }, /"server": Expected string to match/],
      [['--server', 'https://lk.example.com', '--ca-fingerprint', `sha256:${'zz'.repeat(32)}`, '--enroll-file', enrollFile], { input: secret }, /"caFingerprint" is not a SHA-256 fingerprint/],
      [['--server', 'https://lk.example.com', '--ca-fingerprint', fp, '--enroll-file', enrollFile], { input: '' }, /the token on stdin is empty/],
      [['--server', 'https://lk.example.com', '--ca-fingerprint', fp, '--enroll-file', enrollFile], { input: `${secret} ${secret}` }, /alone on one line/],
      [['--server', 'https://lk.example.com', '--ca-fingerprint', fp, '--enroll-file', enrollFile], { input: 'x'.repeat(5000) }, /more than 4096 bytes/],
      [['--server', 'https://lk.example.com', '--ca-fingerprint', fp, '--enroll-file', enrollFile, '--keystore', 'pkcs11'], { input: secret }, /--keystore.*invalid/i],
      [['--server', 'https://lk.example.com', '--ca-fingerprint', fp, '--enroll-file', enrollFile, '--token', secret], {}, /unknown option '--token'/],
    ];
    for (const [args, o, re] of cases) {
      const r = await write(args, o);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re);
      assert.ok(!(r.stdout + r.stderr).includes(secret), `${args.join(' ')} printed the token: ${r.stderr}`);
    }
    assert.throws(() => statSync(enrollFile), /ENOENT/);
    assert.throws(() => statSync(join(dir, 'enroll-token')), /ENOENT/);
  });
});
