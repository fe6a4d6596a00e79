import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startControlChannel } from './control-channel.js';

/** Resolves when `pred` holds, re-checked each time `poke` is called: a wait on the event itself, never a fixed sleep. */
function waiter<T>(read: () => T) {
  const waits: { pred: (v: T) => boolean; resolve: () => void }[] = [];
  return {
    poke() {
      for (const w of [...waits]) {
        if (!w.pred(read())) continue;
        waits.splice(waits.indexOf(w), 1);
        w.resolve();
      }
    },
    until(pred: (v: T) => boolean): Promise<void> {
      return pred(read()) ? Promise.resolve() : new Promise((resolve) => waits.push({ pred, resolve }));
    },
  };
}

test('waking from sleep (the wall clock ran ahead of the monotonic one) reconnects at once', { timeout: 10_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-channel-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let wall = 1_000_000;
  const mono = 0;
  const logs: string[] = [];
  let ticks = 0;
  const seen = waiter(() => ({ logs, ticks }));
  const noIdentity = (v: { logs: string[] }) => v.logs.filter((l) => /has no identity to present/.test(l)).length;
  // No identity in the state dir: the channel only retries, which is all this test needs.
  const ch = startControlChannel({
    stateDir: dir, env: {}, facts: async () => ({}) as never,
    log: (l) => { logs.push(l); seen.poke(); },
    onRevoked: () => undefined, onRenewNow: () => undefined, backoff: { baseMs: 60_000, capMs: 60_000 }, watchMs: 20,
    // Called once at start and once per look at the clock and the network.
    addresses: () => { ticks++; queueMicrotask(() => seen.poke()); return 'eth0/10.0.0.2'; },
    clock: { now: () => new Date(wall), monotonic: () => mono },
  });
  t.after(() => ch.stop());
  await seen.until((v) => noIdentity(v) === 1);
  const from = ticks;
  await seen.until((v) => v.ticks >= from + 2);
  assert.ok(!logs.some((l) => /woke up/.test(l)), 'no drift, no reconnect');
  wall += 2 * 3600_000; // two hours asleep: the monotonic clock did not move
  await seen.until((v) => v.logs.some((l) => /woke up/.test(l)));
  assert.ok(logs.some((l) => /woke up \(the clock jumped 7200 s\); reconnecting the control channel/.test(l)), logs.join('\n'));
  // …and it tried again at once instead of waiting out its 60 s backoff (the test times out otherwise).
  await seen.until((v) => noIdentity(v) >= 2);
});
