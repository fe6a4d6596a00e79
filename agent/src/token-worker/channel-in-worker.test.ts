import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startControlChannelInWorker } from './channel-in-worker.js';

/**
 * A stand-in worker (a node one-liner on the real IPC channel): answers the
 * `channel` request, says it is connected and passes on what "the server" says,
 * then ends when the parent disconnects, as the real worker does.
 */
const FAKE = `
process.on('message', (m) => {
  process.send({ id: m.id, ok: true, channel: 'started' });
  process.send({ event: 'log', line: 'fake: pid ' + process.pid });
  process.send({ event: 'channel', channel: { kind: 'connected' } });
  process.send({ event: 'channel', channel: { kind: 'policy', certLifetimeSeconds: 600, renewFraction: 0.5, heartbeatSeconds: 30 } });
  process.send({ event: 'channel', channel: { kind: 'renew-now', reason: 'admin' } });
  if (process.env.FAKE_DIE) setTimeout(() => process.exit(5), 50);
});
process.on('disconnect', () => process.exit(0));
`;

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function channel(env: NodeJS.ProcessEnv = {}) {
  const seen = { logs: [] as string[], renewNow: [] as (string | undefined)[], policies: [] as number[], revoked: [] as string[] };
  const ch = startControlChannelInWorker({
    argv: [process.execPath, '-e', FAKE, '--'],
    stateDir: '/nonexistent',
    env: { ...process.env, ...env },
    facts: () => Promise.reject(new Error('unused')),
    log: (l) => seen.logs.push(l),
    onRevoked: (reason) => seen.revoked.push(reason),
    onRenewNow: (reason) => seen.renewNow.push(reason),
    onPolicy: (p) => seen.policies.push(p.certLifetimeSeconds),
    backoff: { baseMs: 10, capMs: 20 },
  });
  return { ch, seen };
}

test('the control channel in a token worker: its events reach the daemon; reconnect() starts a fresh worker; stop() ends it', async () => {
  const { ch, seen } = channel();
  await until('connected', () => ch.connected);
  await until('renew-now', () => seen.renewNow.length === 1);
  assert.deepEqual(seen.renewNow, ['admin']);
  assert.deepEqual(seen.policies, [600]);
  const firstPid = seen.logs.find((l) => l.startsWith('fake: pid'));
  ch.reconnect();
  assert.equal(ch.connected, false, 'not connected until the fresh worker says so');
  await until('the fresh worker', () => seen.logs.filter((l) => l.startsWith('fake: pid')).length === 2);
  assert.notEqual(seen.logs.filter((l) => l.startsWith('fake: pid'))[1], firstPid, 'another process');
  await until('connected again', () => ch.connected);
  await ch.stop();
  assert.equal(ch.connected, false);
  assert.deepEqual(seen.revoked, []);
  assert.deepEqual(seen.logs.filter((l) => /restarting/.test(l)), [], 'a worker stopped on purpose is not restarted');
});

test('a token worker that dies on its own is replaced after a backoff, and the daemon is told why', async () => {
  const { ch, seen } = channel({ FAKE_DIE: '1' });
  await until('a restart', () => seen.logs.some((l) => /the control channel process ended with exit code 5; restarting in/.test(l)));
  await until('the replacement', () => seen.logs.filter((l) => l.startsWith('fake: pid')).length >= 2);
  await ch.stop();
});
