/**
 * The agent with each keystore against a real latchkey-server: enroll,
 * status, two forced renewals (each a fresh key in the store, presented over
 * mTLS by the next one), then revocation. The os keystore runs on a real
 * gnome-keyring (a private D-Bus session when the test has none), pkcs11 on a
 * SoftHSM2 token and on a software TPM (swtpm + tpm2-pkcs11).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { startKeyring } from '../../agent/test-support/dist/keyring-fixture.js';
import { type Pkcs11TestToken, softhsmToken, swtpmToken } from '../../agent/test-support/dist/pkcs11-fixtures.js';
import { AGENT_CLI, ROOT, cli, initServer, run, startServer, tempDir } from './support/processes.js';

/** The keys this agent's keystore holds, listed by a separate process through the agent's own keystore code. */
async function keysInStore(stateDir: string, env: NodeJS.ProcessEnv, ks: unknown): Promise<string[]> {
  const script = `
    const { openKeyStore } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'agent/dist/keystore/open-keystore.js')).href)});
    const cfg = JSON.parse(process.env.KS);
    const s = await openKeyStore(cfg, { stateDir: process.env.SD, env: process.env });
    console.log(JSON.stringify((await s.list()).map((r) => r.id)));
    await s.close();
    process.exit(0);`;
  const r = await run(process.execPath, ['--input-type=module', '-e', script], { env: { ...env, KS: JSON.stringify(ks), SD: stateDir } });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as string[]).sort();
}

interface Target {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

function unavailable(t: TestContext, what: string): void {
  if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`${what} is required (LATCHKEY_REQUIRE_ALL=1)`);
  t.skip(what);
}

const pkcs11Target = (name: string, tok: Pkcs11TestToken): Target => ({
  name,
  args: ['--keystore', 'pkcs11', '--pkcs11-module', tok.module, '--pkcs11-token', tok.tokenLabel],
  env: { ...tok.env, LATCHKEY_PKCS11_PIN: tok.pin },
});

const TARGETS: Record<string, (t: TestContext) => Promise<Target | string>> = {
  os: async (t) => {
    const k = await startKeyring(t);
    return typeof k === 'string' ? k : { name: 'os', args: ['--keystore', 'os'], env: { DBUS_SESSION_BUS_ADDRESS: k.address } };
  },
  'pkcs11 (SoftHSM2)': async (t) => {
    const tok = await softhsmToken(t);
    return typeof tok === 'string' ? tok : pkcs11Target('pkcs11', tok);
  },
  'pkcs11 (software TPM)': async (t) => {
    const tok = await swtpmToken(t);
    return typeof tok === 'string' ? tok : pkcs11Target('pkcs11', tok);
  },
};

describe('latchkey with each keystore against a real latchkey-server', () => {
  for (const [label, make] of Object.entries(TARGETS)) {
    test(`${label}: enroll, status, renew --force twice (fresh key each time), revoked → exit 3`, { timeout: 120_000 }, async (t) => {
      const target = await make(t);
      if (typeof target === 'string') return unavailable(t, `${label} keystore: ${target}`);
      const { dataDir, port, fingerprint } = await initServer(t);
      const server = await startServer(t, dataDir, port);
      const tok = await cli(['token', 'create', '--data-dir', dataDir, '--json']);
      const token = (JSON.parse(tok.stdout) as { token: string }).token;
      const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
      const agent = (args: string[]) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env: { ...process.env, ...target.env } });
      const status = async () => JSON.parse((await agent(['status', '--json'])).stdout) as { state: string; keystore: string; keyId: string; serial: string; deviceId: string };

      const t0 = performance.now();
      const e = await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, ...target.args]);
      const ms = performance.now() - t0;
      assert.equal(e.code, 0, e.stderr);
      t.diagnostic(`${label}: enroll took ${ms.toFixed(0)} ms end to end (process start included); agent says: ${e.stdout.trim()}`);
      const s0 = await status();
      assert.equal(s0.state, 'active');
      assert.equal(s0.keystore, target.name);

      let prev = s0;
      for (let i = 0; i < 2; i++) {
        const r = await agent(['renew', '--force']);
        assert.equal(r.code, 0, r.stderr);
        const s = await status();
        assert.notEqual(s.serial, prev.serial);
        assert.notEqual(s.keyId, prev.keyId);
        assert.equal(s.deviceId, s0.deviceId);
        prev = s;
      }

      assert.equal((await cli(['devices', 'revoke', s0.deviceId, '--data-dir', dataDir])).code, 0);
      const refused = await agent(['renew', '--force']);
      assert.equal(refused.code, 3, refused.stderr);
      assert.match(refused.stderr, /DEVICE_REVOKED/);
      assert.equal((await agent(['unenroll'])).code, 0);
      assert.equal((await status()).state, 'not-enrolled');
    });

    test(`${label}: kill -9 at every step of a renewal leaves a working identity and no stray key in the store`, { timeout: 180_000 }, async (t) => {
      const target = await make(t);
      if (typeof target === 'string') return unavailable(t, `${label} keystore: ${target}`);
      // Six forced renewals in a minute, more than a device makes in days: past the default cap of unexpired certificates.
      const { dataDir, port, fingerprint } = await initServer(t, { config: { maxCertificatesPerDevice: 20 } });
      const server = await startServer(t, dataDir, port);
      const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
      const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
      const env = { ...process.env, ...target.env };
      const agent = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env: { ...env, ...extra } });
      const status = async () => JSON.parse((await agent(['status', '--json'])).stdout) as { state: string; keyId: string; serial: string };
      assert.equal((await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, ...target.args])).code, 0);
      for (const point of ['after-generate', 'after-issue', 'after-commit']) {
        const before = await status();
        const crashed = await agent(['renew', '--force'], { LATCHKEY_TEST_CRASH_AT: point });
        assert.equal(crashed.signal, 'SIGKILL', `${point}: ${crashed.stderr}`);
        const after = await status();
        assert.equal(after.state, 'active');
        assert.equal(after.serial !== before.serial, point === 'after-commit', `${point}: the identity is the old one before the commit, the new one after`);
        // Working identity: the next renewal authenticates with it over mTLS, and cleans orphans.
        const ok = await agent(['renew', '--force']);
        assert.equal(ok.code, 0, `${point}: ${ok.stderr}`);
      }
      const ks = (JSON.parse(readFileSync(join(stateDir, 'identity.json'), 'utf8')) as { keystore: unknown }).keystore;
      assert.deepEqual(await keysInStore(stateDir, env, ks), [(await status()).keyId], 'the store holds the current key and nothing else');
      const un = await agent(['unenroll']);
      assert.equal(un.code, 0, un.stderr);
      assert.deepEqual(await keysInStore(stateDir, env, ks), []);
    });

    test(`${label}: \`latchkey run\` renews a 6 s certificate by itself, twice in one daemon; its control channel follows the new certificate and brings the revocation`, { timeout: 120_000 }, async (t) => {
      const target = await make(t);
      if (typeof target === 'string') return unavailable(t, `${label} keystore: ${target}`);
      const { dataDir, port, fingerprint } = await initServer(t);
      const server = await startServer(t, dataDir, port);
      assert.equal((await cli(['groups', 'set', 'short', '--lifetime', '6s', '--data-dir', dataDir])).code, 0);
      const tok = await cli(['token', 'create', '--group', 'short', '--data-dir', dataDir, '--json']);
      const token = (JSON.parse(tok.stdout) as { token: string }).token;
      const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
      const env = { ...process.env, ...target.env, LATCHKEY_RUN_SLICE_MS: '200' };
      const e = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, ...target.args], { env });
      assert.equal(e.code, 0, e.stderr);
      const daemon = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
      const exited = new Promise<number | null>((r) => daemon.on('exit', (c) => r(c)));
      t.after(() => {
        if (daemon.exitCode === null) daemon.kill('SIGKILL');
      });
      const end = Date.now() + 60_000;
      while ((log.match(/renewed the certificate/g) ?? []).length < 2) {
        assert.ok(Date.now() < end && daemon.exitCode === null, `two renewals expected:\n${log}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.doesNotMatch(log, /renewal failed/);
      // The control channel follows: after each renewal it reconnects presenting the new certificate.
      const current = (JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'], { env })).stdout) as { serial: string }).serial;
      const until = Date.now() + 20_000;
      for (;;) {
        const o = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dataDir])).stdout) as { items: { serial: string }[] };
        if (o.items.some((i) => i.serial === current)) break;
        assert.ok(Date.now() < until, `the control channel did not reconnect with the renewed certificate ${current}: ${JSON.stringify(o.items)}\n${log}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // Revoked over that channel: the daemon deletes the key from the store and exits 3.
      const ks = (JSON.parse(readFileSync(join(stateDir, 'identity.json'), 'utf8')) as { keystore: unknown }).keystore;
      const deviceId = (JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'], { env })).stdout) as { deviceId: string }).deviceId;
      assert.equal((await cli(['devices', 'revoke', deviceId, '--data-dir', dataDir])).code, 0);
      assert.equal(await exited, 3, log);
      assert.match(log, /THIS DEVICE HAS BEEN REVOKED/);
      assert.deepEqual(await keysInStore(stateDir, env, ks), [], 'the key is deleted from the store');
    });
  }

  test('pkcs11 (SoftHSM2) with the PIN kept in the OS credential store: enroll --save-pin, renew without the PIN, unenroll forgets it', { timeout: 120_000 }, async (t) => {
    const k = await startKeyring(t);
    if (typeof k === 'string') return unavailable(t, `os credential store: ${k}`);
    const tok = await softhsmToken(t);
    if (typeof tok === 'string') return unavailable(t, `SoftHSM2: ${tok}`);
    const { dataDir, port, fingerprint } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const base: NodeJS.ProcessEnv = { ...process.env, ...tok.env, DBUS_SESSION_BUS_ADDRESS: k.address };
    delete base.LATCHKEY_PKCS11_PIN;
    const agent = (args: string[], env: NodeJS.ProcessEnv = base) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env });
    const e = await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'pkcs11', '--pkcs11-module', tok.module, '--pkcs11-token', tok.tokenLabel, '--save-pin'], { ...base, LATCHKEY_PKCS11_PIN: tok.pin });
    assert.equal(e.code, 0, e.stderr);
    const saved = await run('secret-tool', ['search', '--all', 'service', 'latchkey:pkcs11-pin'], { env: base });
    assert.match(saved.stdout, /label = latchkey:pkcs11-pin\//, `the PIN is in the credential store: ${saved.stdout} ${saved.stderr}`);
    const r = await agent(['renew', '--force']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await agent(['unenroll'])).code, 0);
    // The PIN is gone with the identity: the credential store no longer holds it.
    const left = await run('secret-tool', ['search', '--all', 'service', 'latchkey:pkcs11-pin'], { env: base });
    assert.doesNotMatch(left.stdout + left.stderr, new RegExp(tok.pin));
    assert.doesNotMatch(left.stdout, /latchkey:pkcs11-pin/);
  });
});
