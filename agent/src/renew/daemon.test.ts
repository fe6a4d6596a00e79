/**
 * The renew loop's timing with an injected clock: it sleeps towards the
 * renewal time in slices, and a wall-clock jump (wake from sleep) ends the
 * sleep at once. No server is involved: the identity is not due, so the loop
 * only reads state and sleeps until it is stopped.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { certificateToPem, createCaHierarchy, createDeviceProfile, randomSerial } from '@latchkey/pki';
import { readStatusFile, writeIdentity } from '../state/identity.js';
import { type Clock, createKicks, runDaemon } from './daemon.js';

async function identityIn(dir: string, now: Date, lifetimeSeconds: number): Promise<void> {
  const key = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ca = await createCaHierarchy({ org: 'T', now, rootKey: key(), issuingKey: key(), randomBytes: crypto.randomBytes });
  const profile = createDeviceProfile({ issuer: ca.issuing, org: 'T', trustDomain: 't.test', crlUrls: ['http://x'], ocspUrls: ['http://x'], caIssuersUrls: ['http://x'] });
  const spki = crypto.createPublicKey(key()).export({ type: 'spki', format: 'der' });
  const der = await profile.issue({ spki, deviceId: crypto.randomUUID(), deviceName: 'd', serial: randomSerial(crypto.randomBytes), now, lifetimeSeconds });
  await writeIdentity(dir, {
    version: 1,
    server: 'https://127.0.0.1:9',
    rootFingerprint: '00'.repeat(32),
    rootPem: certificateToPem(ca.root.der),
    chainPem: certificateToPem(ca.issuing.cert.der),
    deviceId: crypto.randomUUID(),
    keystore: { kind: 'file' },
    key: { keystore: 'file', id: 'lk-0123456789abcdef' },
    certPem: certificateToPem(der),
    enrolledAt: now.toISOString(),
  });
}

/** A clock whose time moves only when the loop sleeps, plus jumps the test injects. */
function fakeClock(start: Date) {
  let wall = start.getTime();
  let mono = 0;
  const sleeps: number[] = [];
  let onSleep: (n: number) => void = () => undefined;
  const clock: Clock = {
    now: () => new Date(wall),
    monotonic: () => mono,
    sleep: async (ms) => {
      sleeps.push(ms);
      wall += ms;
      mono += ms;
      onSleep(sleeps.length);
      await new Promise((r) => setImmediate(r));
    },
  };
  return { clock, sleeps, jump: (ms: number) => (wall += ms), set onSleep(f: (n: number) => void) { onSleep = f; } };
}

test('the loop sleeps in slices towards the renewal time and notices a wall-clock jump at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-daemon-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const start = new Date('2026-03-01T12:00:00Z');
  await identityIn(dir, start, 86_400);
  const fc = fakeClock(start);
  const logs: string[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  fc.onSleep = (n) => {
    // After 3 quiet slices the machine "sleeps" for 2 hours: only the wall clock moves.
    if (n === 3) fc.jump(2 * 3600_000);
    if (n === 6) stop();
  };
  const code = await runDaemon({ stateDir: dir, env: {}, clock: fc.clock, log: (l) => logs.push(l), facts: async () => { throw new Error('not due: no facts needed'); }, sliceMs: 30_000, stopped });
  assert.equal(code, 0);
  assert.deepEqual(fc.sleeps.slice(0, 3), [30_000, 30_000, 30_000], 'sleeps are sliced');
  assert.ok(logs.some((l) => /the clock jumped 7200 s/.test(l)), logs.join('\n'));
});

test("a policy from the server moves the next renewal, is kept in status.json, and a shorter lifetime renews at once", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-daemon-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const start = new Date('2026-03-01T12:00:00Z');
  await identityIn(dir, start, 86_400);
  const fc = fakeClock(start);
  const logs: string[] = [];
  const kicks = createKicks();
  const renewCalls: boolean[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  let nextBefore = '';
  fc.onSleep = (n) => {
    if (n === 1) {
      void readStatusFile(dir).then((s) => (nextBefore = s!.nextRenewalAt!));
      kicks.fire({ type: 'policy', certLifetimeSeconds: 86_400, renewFraction: 0.25, heartbeatSeconds: 30 });
    }
    if (n === 3) kicks.fire({ type: 'policy', certLifetimeSeconds: 3600, renewFraction: 0.25, heartbeatSeconds: 30 });
    if (n === 5) stop();
  };
  const code = await runDaemon({
    stateDir: dir, env: {}, clock: fc.clock, log: (l) => logs.push(l), facts: async () => ({}) as never, sliceMs: 30_000, stopped, kicks,
    renew: async (_ctx, force) => {
      renewCalls.push(force);
      return { renewed: false };
    },
  });
  assert.equal(code, 0);
  const st = await readStatusFile(dir);
  assert.deepEqual({ ...st!.policy, receivedAt: undefined }, { certLifetimeSeconds: 3600, renewFraction: 0.25, heartbeatSeconds: 30, receivedAt: undefined });
  const movedBy = Date.parse(nextBefore) - Date.parse(st!.nextRenewalAt!);
  assert.ok(movedBy > 0.3 * 86_400_000, `the renewal moved from about 2/3 to about 1/4 of the lifetime (${nextBefore} → ${st!.nextRenewalAt})`);
  assert.deepEqual(renewCalls, [true], 'only the shorter lifetime forced a renewal');
  assert.ok(logs.some((l) => /now live 3600 s and this one has longer left; renewing now/.test(l)), logs.join('\n'));
});
