/**
 * Enrollment that survives lost answers, and a pending device an admin
 * denies (issue 10 §4, §5 "devices deny"): the real `latchkey` agent against
 * real `latchkey-server` processes, killed with SIGKILL where the answer is
 * lost.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { AGENT_CLI, cli, freshPgDatabase, initServer, run, startServer, tempDir } from './support/processes.js';

const agent = (stateDir: string, args: string[]) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args]);

function spawnAgent(t: TestContext, stateDir: string, args: string[]): { proc: ChildProcess; log: () => string; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exit = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return { proc, log: () => log, exit };
}

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function json<T>(args: string[]): Promise<T> {
  const r = await cli([...args, '--json']);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

type DeviceRow = { id: string; status: string; certificate: { serial: string } | null };
const devices = async (dataDir: string): Promise<DeviceRow[]> => (await json<{ items: DeviceRow[] }>(['devices', 'list', '--data-dir', dataDir])).items;
const tokenUses = async (dataDir: string): Promise<number[]> => (await json<{ items: { usedCount: number }[] }>(['token', 'list', '--data-dir', dataDir])).items.map((x) => x.usedCount);
const keyFiles = (stateDir: string): string[] => (existsSync(join(stateDir, 'keys')) ? readdirSync(join(stateDir, 'keys')).filter((n) => n.endsWith('.key.pem')) : []);

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`enrollment is safe to retry (issue 10 §4), on ${engine}`, () => {
    test('server killed with SIGKILL between COMMIT and its answer: `latchkey enroll` run again gets the certificate already issued, same key, one device, one token use', { timeout: 120_000 }, async (t) => {
      const databaseUrl = engine === 'postgres' ? await freshPgDatabase(t) : undefined;
      if (engine === 'postgres' && !databaseUrl) return;
      const { dataDir, port, fingerprint } = await initServer(t, databaseUrl ? { databaseUrl } : {});
      const crashing = await startServer(t, dataDir, port, { env: { LATCHKEY_TEST_CRASH_AT: 'enroll-after-commit' } });
      const token = (await json<{ token: string }>(['token', 'create', '--uses', '1', '--data-dir', dataDir])).token;
      const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
      const args = ['enroll', '--server', crashing.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file'];

      const lost = await agent(stateDir, args);
      assert.equal(await crashing.stop(), -1, 'the server died by SIGKILL');
      assert.equal(lost.code, 1, lost.stderr);
      assert.match(lost.stderr, /run the same `latchkey enroll` again/);
      assert.ok(existsSync(join(stateDir, 'enroll-pending.json')), 'the key and CSR are kept');
      assert.equal(keyFiles(stateDir).length, 1);

      await startServer(t, dataDir, port);
      const before = await devices(dataDir);
      assert.equal(before.length, 1, 'the enrollment had committed');
      const serial = before[0]!.certificate!.serial;

      const retried = await agent(stateDir, args);
      assert.equal(retried.code, 0, retried.stderr);
      assert.match(retried.stdout, new RegExp(`enrolled: device ${before[0]!.id}, certificate ${serial} `));
      const st = JSON.parse((await agent(stateDir, ['status', '--json'])).stdout) as { state: string; serial: string };
      assert.equal(st.state, 'active');
      assert.equal(st.serial, serial);
      assert.ok(!existsSync(join(stateDir, 'enroll-pending.json')));
      assert.equal((await devices(dataDir)).length, 1);
      assert.deepEqual(await tokenUses(dataDir), [1]);

      // Another key with the used-up token is another request: refused, and it leaves nothing behind.
      const otherDir = join(tempDir(t, 'latchkey-agent-'), 'state');
      const other = await agent(otherDir, args);
      assert.equal(other.code, 1);
      assert.match(other.stderr, /TOKEN_EXHAUSTED/);
      assert.deepEqual(keyFiles(otherDir), []);
      assert.ok(!existsSync(join(otherDir, 'enroll-pending.json')));
    });
  });
}

describe('waiting for approval (issue 10 §4, §5)', () => {
  async function approvalServer(t: TestContext) {
    const { dataDir, port, fingerprint } = await initServer(t);
    const cfg = join(dataDir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), approvalRetrySeconds: 1 }));
    const s = await startServer(t, dataDir, port);
    assert.equal((await cli(['groups', 'set', 'contractors', '--lifetime', '1h', '--require-approval', '--data-dir', dataDir])).code, 0);
    const token = (await json<{ token: string }>(['token', 'create', '--group', 'contractors', '--data-dir', dataDir])).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    return { dataDir, stateDir, args: ['enroll', '--server', s.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file'] };
  }

  test('the agent killed with SIGKILL while it waits: run again, it waits on the same pending device and completes once approved', { timeout: 120_000 }, async (t) => {
    const { dataDir, stateDir, args } = await approvalServer(t);
    const first = spawnAgent(t, stateDir, args);
    await until('the pending message', () => /waiting for an administrator to approve this device/.test(first.log()));
    first.proc.kill('SIGKILL');
    await first.exit;
    const second = spawnAgent(t, stateDir, args);
    await until('the pending message again', () => /waiting for an administrator to approve this device/.test(second.log()));
    const pending = await devices(dataDir);
    assert.equal(pending.length, 1, 'the same request, not a second pending device');
    assert.equal((await cli(['devices', 'approve', pending[0]!.id, '--data-dir', dataDir])).code, 0);
    assert.equal(await second.exit, 0, second.log());
    assert.match(second.log(), new RegExp(`enrolled: device ${pending[0]!.id}`));
    assert.deepEqual(await tokenUses(dataDir), [1]);
  });

  test('`latchkey unenroll` after an unfinished enrollment deletes its key and request', { timeout: 120_000 }, async (t) => {
    const { stateDir, args } = await approvalServer(t);
    const a = spawnAgent(t, stateDir, args);
    await until('the pending message', () => /waiting for an administrator to approve this device/.test(a.log()));
    a.proc.kill('SIGKILL');
    await a.exit;
    assert.equal(keyFiles(stateDir).length, 1);
    const u = await agent(stateDir, ['unenroll']);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /removed the key and request of an unfinished enrollment/);
    assert.deepEqual(keyFiles(stateDir), []);
    assert.ok(!existsSync(join(stateDir, 'enroll-pending.json')));
  });

  test('devices deny: the waiting agent stops with DEVICE_DENIED and exits 1; running it again makes no new pending device', { timeout: 120_000 }, async (t) => {
    const { dataDir, stateDir, args } = await approvalServer(t);
    const a = spawnAgent(t, stateDir, args);
    await until('the pending message', () => /waiting for an administrator to approve this device/.test(a.log()));
    const id = (await devices(dataDir))[0]!.id;
    const denied = await cli(['devices', 'deny', id, '--reason', 'not one of ours', '--data-dir', dataDir]);
    assert.equal(denied.code, 0, denied.stderr);
    assert.match(denied.stdout, new RegExp(`device ${id} .*denied`));
    assert.equal(await a.exit, 1, a.log());
    assert.match(a.log(), new RegExp(`DEVICE_DENIED: an administrator denied the enrollment of device ${id}`));
    assert.deepEqual(keyFiles(stateDir), [], 'the refused key is deleted');
    assert.equal(JSON.parse((await agent(stateDir, ['status', '--json'])).stdout).state, 'not-enrolled');

    const again = await agent(stateDir, args);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /TOKEN_EXHAUSTED/);
    const all = await devices(dataDir);
    assert.deepEqual(all.map((d) => [d.id, d.status]), [[id, 'denied']]);
    assert.deepEqual(await tokenUses(dataDir), [1]);
    const second = await cli(['devices', 'deny', id, '--data-dir', dataDir]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /not pending approval/);
  });
});
