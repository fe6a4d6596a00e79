import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AgentError } from '../errors.js';
import { spawnTokenWorker } from './client.js';

const ARGV = [process.execPath, fileURLToPath(new URL('../cli.js', import.meta.url))];

function stateDir(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'lk-worker-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('an error raised in the worker reaches the parent as the same AgentError code; the worker keeps serving', async (t) => {
  const w = spawnTokenWorker({ argv: ARGV, stateDir: stateDir(t), env: { ...process.env, LATCHKEY_KEY_PASSPHRASE: 'x'.repeat(20) }, log: () => undefined });
  t.after(() => w.stop());
  for (let i = 0; i < 2; i++) {
    await assert.rejects(w.renew(false), (e: unknown) => e instanceof AgentError && e.code === 'NOT_ENROLLED' && /not enrolled/.test(e.message));
  }
  assert.equal(w.alive, true);
  const x = await w.stop();
  assert.deepEqual([x.code, x.signal], [0, null], 'the worker ends by itself once the parent disconnects');
  await assert.rejects(w.channel(), (e: unknown) => e instanceof AgentError && e.code === 'KEYSTORE' && /ended with exit code 0/.test(e.message));
});

/** A stand-in worker: a node one-liner that plays the worker's side of the IPC channel. */
const fake = (script: string): string[] => [process.execPath, '-e', script, '--'];

test('a worker that dies mid-request fails the request with a KEYSTORE error that says how it ended', async (t) => {
  const w = spawnTokenWorker({ argv: fake(`process.on('message', () => { process.stderr.write('latchkey: CKR_DEVICE_ERROR\\n'); process.exit(7); })`), stateDir: stateDir(t), env: process.env, log: () => undefined });
  t.after(() => w.stop());
  await assert.rejects(w.renew(true), (e: unknown) => e instanceof AgentError && e.code === 'KEYSTORE' && e.message === 'the token worker ended with exit code 7: CKR_DEVICE_ERROR');
  assert.equal(w.alive, false);
});

test('a worker that sends a malformed message is killed, and what waited on it fails', async (t) => {
  const logs: string[] = [];
  const w = spawnTokenWorker({ argv: fake(`process.on('message', (m) => process.send({ id: m.id, ok: true, renew: { renewed: 'yes' } }))`), stateDir: stateDir(t), env: process.env, log: (l) => logs.push(l) });
  t.after(() => w.stop());
  await assert.rejects(w.renew(false), (e: unknown) => e instanceof AgentError && e.code === 'KEYSTORE' && /ended by SIGKILL/.test(e.message));
  assert.deepEqual(logs, ['latchkey: the token worker sent a malformed message; stopping it']);
});

test('a worker that cannot be started fails its requests with a KEYSTORE error', async (t) => {
  const w = spawnTokenWorker({ argv: ['/nonexistent/latchkey'], stateDir: stateDir(t), env: process.env, log: () => undefined });
  await assert.rejects(w.renew(false), (e: unknown) => e instanceof AgentError && e.code === 'KEYSTORE');
  const x = await w.exited;
  assert.equal(x.code, null);
  assert.match(x.why, /ENOENT/);
});

test('`latchkey _token-worker` run by hand says it is internal and exits 2', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(ARGV[0]!, [...ARGV.slice(1), '--state-dir', stateDir(t), '_token-worker'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /started by latchkey itself/);
});
