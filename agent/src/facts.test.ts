import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { DeviceFacts } from '@latchkey/protocol';
import { collectFacts, hardwareId, type FactsDeps } from './facts.js';

const deps = (platform: NodeJS.Platform, files: Record<string, string>, out: Record<string, string> = {}): FactsDeps => ({
  platform,
  readFile: async (p) => {
    if (p in files) return files[p]!;
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  },
  exec: async (cmd) => {
    if (cmd in out) return out[cmd]!;
    throw new Error(`${cmd}: not found`);
  },
});

test('hardware id: Linux /etc/machine-id (then the D-Bus copy), macOS IOPlatformUUID, Windows MachineGuid', async () => {
  assert.equal(await hardwareId(deps('linux', { '/etc/machine-id': '0123456789ABCDEF0123456789abcdef\n' })), '0123456789abcdef0123456789abcdef');
  assert.equal(await hardwareId(deps('linux', { '/etc/machine-id': '\n', '/var/lib/dbus/machine-id': 'ffffffffffffffffffffffffffffffff' })), 'ffffffffffffffffffffffffffffffff');
  assert.equal(await hardwareId(deps('linux', {})), undefined);
  const ioreg = '+-o J314sAP  <class IOPlatformExpertDevice>\n    {\n      "IOPlatformSerialNumber" = "C02XXXXX"\n      "IOPlatformUUID" = "1a2b3c4d-0000-1111-2222-333344445555"\n    }\n';
  assert.equal(await hardwareId(deps('darwin', {}, { '/usr/sbin/ioreg': ioreg })), '1A2B3C4D-0000-1111-2222-333344445555');
  const reg = '\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Cryptography\r\n    MachineGuid    REG_SZ    6F9619FF-8B86-D011-B42D-00C04FC964FF\r\n\r\n';
  assert.equal(await hardwareId(deps('win32', {}, { reg })), '6f9619ff-8b86-d011-b42d-00c04fc964ff');
  assert.equal(await hardwareId(deps('win32', {}, {})), undefined, 'a failing command is no id, not a crash');
});

test('facts match the protocol schema (what the server validates) on this machine', async () => {
  const f = await collectFacts();
  assert.ok(Value.Check(DeviceFacts, f), JSON.stringify([...Value.Errors(DeviceFacts, f)].slice(0, 3)));
  assert.ok(JSON.stringify(f).length < 4096);
});
