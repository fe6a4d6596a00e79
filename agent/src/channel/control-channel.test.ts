import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressFingerprint, heartbeatOverdue } from './control-channel.js';

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
