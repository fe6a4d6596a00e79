import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { addressFingerprint, heartbeatOverdue, startControlChannel } from './control-channel.js';

test('a connection is overdue after two heartbeats and five seconds of silence', () => {
  assert.equal(heartbeatOverdue(10_000, 0, 1000), true);
  assert.equal(heartbeatOverdue(7000, 0, 1000), false);
  assert.equal(heartbeatOverdue(65_001, 0, 30_000), true);
  assert.equal(heartbeatOverdue(64_999, 0, 30_000), false);
});

test('the network fingerprint ignores loopback and order, and sees an address change', () => {
  type Ifaces = Parameters<typeof addressFingerprint>[0];
  const nic = (address: string, internal = false) => ({ address, internal, family: 'IPv4', netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: null });
  const one = addressFingerprint({ lo: [nic('127.0.0.1', true)], eth0: [nic('10.0.0.2')], wlan0: [nic('192.168.1.5')] } as Ifaces);
  const same = addressFingerprint({ wlan0: [nic('192.168.1.5')], eth0: [nic('10.0.0.2')] } as Ifaces);
  assert.equal(one, same);
  assert.equal(one, 'eth0/10.0.0.2,wlan0/192.168.1.5');
  assert.notEqual(addressFingerprint({ eth0: [nic('10.0.0.3')], wlan0: [nic('192.168.1.5')] } as Ifaces), one);
  assert.equal(typeof addressFingerprint(), 'string', 'this machine');
});

test('waking from sleep (the wall clock ran ahead of the monotonic one) reconnects at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-channel-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let wall = 1_000_000;
  const mono = 0;
  const logs: string[] = [];
  // No identity in the state dir: the channel only retries, which is all this test needs.
  const ch = startControlChannel({ stateDir: dir, env: {}, facts: async () => ({}) as never, log: (l) => logs.push(l), onRevoked: () => undefined, onRenewNow: () => undefined, backoff: { baseMs: 60_000, capMs: 60_000 }, watchMs: 20, addresses: () => 'eth0/10.0.0.2', clock: { wall: () => wall, mono: () => mono } });
  t.after(() => ch.stop());
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!logs.some((l) => /woke up/.test(l)), 'no drift, no reconnect');
  wall += 2 * 3600_000; // two hours asleep: the monotonic clock did not move
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(logs.some((l) => /woke up \(the clock jumped 7200 s\); reconnecting the control channel/.test(l)), logs.join('\n'));
  // …and it tried again at once instead of waiting out its 60 s backoff.
  assert.ok(logs.filter((l) => /has no identity to present/.test(l)).length >= 2, logs.join('\n'));
});
