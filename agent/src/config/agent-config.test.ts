/**
 * The agent's config: file, then environment, then flags, validated once
 * into a frozen object (the server's config-load, for the agent).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AgentError } from '../errors.js';
import { defaultKeystore, loadAgentConfig, type ConfigSources } from './agent-config.js';

const host = { platform: 'linux' as const, home: '/home/ada', system: false };
const files: Record<string, string> = {
  '/etc/latchkey.json': JSON.stringify({ stateDir: '/srv/from-file', keystore: 'pkcs11', pkcs11Module: '/usr/lib/file.so', pkcs11Token: 'file-token', controlChannel: false }),
  '/etc/bad-key.json': JSON.stringify({ stateDir: '/x', keyStore: 'os' }),
  '/etc/not-json.json': '{ nope',
  '/etc/attest.json': JSON.stringify({ attest: 'tpm', tpmTcti: 'device:/dev/tpmrm0', tpmParent: '0x81000002' }),
};
const load = (s: Partial<ConfigSources>) =>
  loadAgentConfig({
    flags: {},
    env: {},
    host,
    readFile: (p) => {
      if (!(p in files)) throw new Error(`ENOENT: no such file, open '${p}'`);
      return files[p]!;
    },
    ...s,
  });
const usage = (re: RegExp) => (e: unknown) => e instanceof AgentError && e.code === 'USAGE' && e.exitCode === 2 && re.test(e.message);

describe('agent config', () => {
  test('defaults: the platform state dir, the file keystore on Linux without D-Bus, the control channel on', () => {
    const c = load({});
    assert.deepEqual(c, { stateDir: '/home/ada/.local/state/latchkey', keystore: 'file', pkcs11: {}, attest: 'none', tpm: { parent: '0x81000001' }, enrollFile: { path: '/etc/latchkey/enroll.json' }, controlChannel: true, debug: false, testHooks: {} });
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.pkcs11) && Object.isFrozen(c.testHooks));
    assert.equal(defaultKeystore('linux', { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus' }), 'os');
    assert.equal(defaultKeystore('darwin', {}), 'os');
  });

  test('the file, then the environment, then flags', () => {
    const fromFile = load({ flags: { config: '/etc/latchkey.json' } });
    assert.deepEqual(fromFile, { stateDir: '/srv/from-file', keystore: 'pkcs11', pkcs11: { module: '/usr/lib/file.so', tokenLabel: 'file-token' }, attest: 'none', tpm: { parent: '0x81000001' }, enrollFile: { path: '/etc/latchkey/enroll.json' }, controlChannel: false, debug: false, testHooks: {} });
    const env = { LATCHKEY_CONFIG: '/etc/latchkey.json', LATCHKEY_STATE_DIR: '/srv/from-env', LATCHKEY_KEYSTORE: 'os', LATCHKEY_PKCS11_MODULE: '/usr/lib/env.so', LATCHKEY_RUN_SLICE_MS: '200', LATCHKEY_BACKOFF_CAP_MS: '2000' };
    const fromEnv = load({ env });
    assert.deepEqual(fromEnv, { stateDir: '/srv/from-env', keystore: 'os', pkcs11: { module: '/usr/lib/env.so', tokenLabel: 'file-token' }, attest: 'none', tpm: { parent: '0x81000001' }, enrollFile: { path: '/etc/latchkey/enroll.json' }, controlChannel: false, debug: false, testHooks: { runSliceMs: 200, backoff: { baseMs: 500, capMs: 2000 } } });
    const fromFlags = load({ env, flags: { stateDir: 'rel/dir', keystore: 'file', pkcs11Token: 'flag-token', debug: true } });
    assert.equal(fromFlags.stateDir, `${process.cwd()}/rel/dir`);
    assert.equal(fromFlags.keystore, 'file');
    assert.deepEqual(fromFlags.pkcs11, { module: '/usr/lib/env.so', tokenLabel: 'flag-token' });
    assert.equal(fromFlags.debug, true);
    assert.equal(load({ env: { LATCHKEY_CONTROL_CHANNEL: 'off' } }).controlChannel, false);
  });

  test('the enroll file: the platform default, LATCHKEY_ENROLL_FILE, then --enroll-file (made absolute, and named so a missing file is an error)', () => {
    assert.equal(load({ host: { ...host, platform: 'darwin' } }).enrollFile.path, '/Library/Application Support/Latchkey/enroll.json');
    assert.equal(load({ host: { ...host, platform: 'win32' }, env: { ProgramData: 'D:\\PD' } }).enrollFile.path, join('D:\\PD', 'Latchkey', 'enroll.json'));
    assert.deepEqual(load({ env: { LATCHKEY_ENROLL_FILE: '/srv/e.json' } }).enrollFile, { path: '/srv/e.json', from: 'LATCHKEY_ENROLL_FILE' });
    assert.deepEqual(load({ env: { LATCHKEY_ENROLL_FILE: '/srv/e.json' }, flags: { enrollFile: 'rel/e.json' } }).enrollFile, { path: `${process.cwd()}/rel/e.json`, from: '--enroll-file' });
  });

  test('managed preferences: macOS reads the com.latchkey.agent profile, LATCHKEY_MANAGED_PREFERENCES names one anywhere; never when a flag or variable named the enroll file', () => {
    assert.deepEqual(load({ host: { ...host, platform: 'darwin' } }).enrollFile, { path: '/Library/Application Support/Latchkey/enroll.json', managedPreferences: '/Library/Managed Preferences/com.latchkey.agent.plist' });
    assert.equal(load({}).enrollFile.managedPreferences, undefined);
    assert.equal(load({ env: { LATCHKEY_MANAGED_PREFERENCES: 'rel/p.plist' } }).enrollFile.managedPreferences, `${process.cwd()}/rel/p.plist`);
    assert.equal(load({ host: { ...host, platform: 'darwin' }, env: { LATCHKEY_ENROLL_FILE: '/srv/e.json' } }).enrollFile.managedPreferences, undefined);
    assert.equal(load({ host: { ...host, platform: 'darwin' }, flags: { enrollFile: '/srv/e.json' } }).enrollFile.managedPreferences, undefined);
  });

  test('TPM attestation: file, environment, flags; the parent must be a persistent handle', () => {
    assert.deepEqual(load({ flags: { config: '/etc/attest.json' } }).tpm, { tcti: 'device:/dev/tpmrm0', parent: '0x81000002' });
    assert.equal(load({ flags: { config: '/etc/attest.json' } }).attest, 'tpm');
    const env = { LATCHKEY_CONFIG: '/etc/attest.json', LATCHKEY_ATTEST: 'none', LATCHKEY_TPM_TCTI: 'tabrmd:bus_type=session' };
    assert.deepEqual([load({ env }).attest, load({ env }).tpm.tcti], ['none', 'tabrmd:bus_type=session']);
    assert.deepEqual(load({ env, flags: { attest: 'tpm', tpmParent: '0x81ABCDEF' } }).tpm, { tcti: 'tabrmd:bus_type=session', parent: '0x81abcdef' });
    assert.throws(() => load({ flags: { attest: 'yes' } }), usage(/--attest must be tpm or none \(got "yes"\)/));
    assert.throws(() => load({ flags: { tpmParent: '0x01c00002' } }), usage(/--tpm-parent must be a persistent handle/));
  });

  test('a bad setting is one usage error naming it (exit 2)', () => {
    assert.throws(() => load({ env: { LATCHKEY_KEYSTORE: 'tpm' } }), usage(/--keystore must be one of os, pkcs11, file \(got "tpm"\)/));
    assert.throws(() => load({ flags: { config: '/etc/bad-key.json' } }), usage(/unknown key "keyStore"; it may hold stateDir, keystore/));
    assert.throws(() => load({ flags: { config: '/etc/not-json.json' } }), usage(/\/etc\/not-json.json is not valid JSON/));
    assert.throws(() => load({ flags: { config: '/etc/missing.json' } }), usage(/cannot read the config file \/etc\/missing.json: ENOENT/));
  });
});
