/**
 * Issue 14 end to end: `latchkey enroll --attest tpm` against a real
 * latchkey-server that trusts swtpm_localca as a TPM manufacturer
 * (attestation.ekRootsDir), in a group with `--attestation tpm
 * --require-registered-ek`. The device is a software TPM with EK
 * certificates behind tpm2-abrmd with a tpm2-pkcs11 token. Its enrollment and
 * two renewals are attested (the certificate carries the attested OU; `devices
 * show` says tpm-attested), and so are the renewals `latchkey run` makes by
 * itself; a file-keystore device is refused
 * (ATTESTATION_REQUIRED); a second, genuine TPM whose EK nobody registered is
 * refused (EK_NOT_REGISTERED).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { TPM_ATTESTED_OU } from '@latchkey/protocol/wire';
import { swtpmTokenWithEkCert } from '../../agent/test-support/dist/tpm-fixtures.js';
import { AGENT_CLI, ROOT, cli, initServer, run, skipOrRequire, startServer, tempDir } from './support/processes.js';
import { ekCertPem, ekRootsDir, tpmAgentEnv, tpmEnrollArgs } from './support/tpm.js';

async function keysInStore(stateDir: string, env: NodeJS.ProcessEnv, ks: unknown): Promise<string[]> {
  const script = `
    const { openKeyStore } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'agent/dist/keystore/open-keystore.js')).href)});
    const s = await openKeyStore(JSON.parse(process.env.KS), { stateDir: process.env.SD, env: process.env });
    console.log(JSON.stringify((await s.list()).map((r) => r.id)));
    await s.close();
    process.exit(0);`;
  const r = await run(process.execPath, ['--input-type=module', '-e', script], { env: { ...env, KS: JSON.stringify(ks), SD: stateDir } });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as string[]).sort();
}

test('issue 14: attested enrollment and two attested renewals on swtpm; software key and unregistered TPM refused', { timeout: 400_000 }, async (t) => {
  const tpm1 = await swtpmTokenWithEkCert(t, 'latchkey-tpm');
  if (typeof tpm1 === 'string') return skipOrRequire(t, `missing ${tpm1}`);
  const tpm2 = await swtpmTokenWithEkCert(t, 'latchkey-tpm');
  if (typeof tpm2 === 'string') return skipOrRequire(t, `missing ${tpm2}`);

  // Both TPMs are genuine (their swtpm_localca CAs are trusted); only the first is registered.
  const roots = ekRootsDir(t, [tpm1, tpm2]);
  const { dataDir, port, fingerprint } = await initServer(t, { config: { attestation: { ekRootsDir: roots }, maxCertificatesPerDevice: 20 } });
  const server = await startServer(t, dataDir, port);
  const d = ['--data-dir', dataDir];
  const set = await cli(['groups', 'set', 'secure', '--lifetime', '1h', '--attestation', 'tpm', '--require-registered-ek', ...d]);
  assert.equal(set.code, 0, set.stderr);
  const ekFile = join(tempDir(t), 'ek1.pem');
  writeFileSync(ekFile, ekCertPem(tpm1));
  const reg = await cli(['devices', 'register', '--ek-cert', ekFile, '--name', 'tpm-host-1', '--group', 'secure', ...d]);
  assert.equal(reg.code, 0, reg.stderr);
  const newToken = async (): Promise<string> => (JSON.parse((await cli(['token', 'create', '--group', 'secure', '--json', ...d])).stdout) as { token: string }).token;

  const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
  const agent = (args: string[]) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env: tpmAgentEnv(tpm1) });
  const status = async () => JSON.parse((await agent(['status', '--json'])).stdout) as { state: string; keyId: string; serial: string; deviceId: string; attestation?: string };
  const certOu = (): string[] => {
    const id = JSON.parse(readFileSync(join(stateDir, 'identity.json'), 'utf8')) as { certPem: string; attestation?: { kind: string } };
    assert.equal(id.attestation?.kind, 'tpm');
    return new X509Certificate(id.certPem).subject.split('\n').filter((l) => l.startsWith('OU=')).map((l) => l.slice(3));
  };

  await t.test('the attested enrollment: certificate with the attested OU', async () => {
    const t0 = performance.now();
    const e = await agent(['enroll', '--server', server.url, '--token', await newToken(), '--ca-fingerprint', fingerprint, ...tpmEnrollArgs(tpm1)]);
    assert.equal(e.code, 0, e.stderr);
    t.diagnostic(`attested enrollment: ${(performance.now() - t0).toFixed(0)} ms end to end; ${e.stdout.trim()}`);
    assert.match(e.stdout, /TPM-attested/);
    assert.deepEqual(certOu(), [TPM_ATTESTED_OU]);
    assert.equal((await status()).attestation, 'tpm');
    assert.match((await agent(['status'])).stdout, /keystore +pkcs11 \(key lk-[0-9a-f]+, made in the TPM and attested\)/);
  });

  await t.test('two attested renewals (`renew --force`): new key and serial each time, same device, still attested', async () => {
    const s0 = await status();
    let prev = s0;
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      const r = await agent(['renew', '--force']);
      assert.equal(r.code, 0, r.stderr);
      t.diagnostic(`attested renewal ${i + 1}: ${(performance.now() - t0).toFixed(0)} ms end to end`);
      const s = await status();
      assert.notEqual(s.serial, prev.serial);
      assert.notEqual(s.keyId, prev.keyId);
      assert.equal(s.deviceId, s0.deviceId);
      assert.deepEqual(certOu(), [TPM_ATTESTED_OU]);
      prev = s;
    }
    const ks = (JSON.parse(readFileSync(join(stateDir, 'identity.json'), 'utf8')) as { keystore: unknown }).keystore;
    assert.deepEqual(await keysInStore(stateDir, tpmAgentEnv(tpm1), ks), [prev.keyId], 'the token holds the current key only');
  });

  await t.test('kill -9 at each step of an attested renewal: a working identity, and the next renewal leaves only its key in the token', async () => {
    const ks = (JSON.parse(readFileSync(join(stateDir, 'identity.json'), 'utf8')) as { keystore: unknown }).keystore;
    for (const point of ['after-generate', 'after-issue', 'after-commit']) {
      const before = await status();
      const crashed = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'renew', '--force'], { env: { ...tpmAgentEnv(tpm1), LATCHKEY_TEST_CRASH_AT: point } });
      assert.equal(crashed.signal, 'SIGKILL', `${point}: ${crashed.stderr}`);
      assert.equal((await status()).serial !== before.serial, point === 'after-commit', point);
      const ok = await agent(['renew', '--force']);
      assert.equal(ok.code, 0, `${point}: ${ok.stderr}`);
      assert.deepEqual(await keysInStore(stateDir, tpmAgentEnv(tpm1), ks), [(await status()).keyId], `${point}: the token holds the current key only`);
    }
    assert.deepEqual(certOu(), [TPM_ATTESTED_OU]);
  });

  await t.test('`devices show` reports the device tpm-attested, with its EK', async () => {
    const s = await status();
    const show = await cli(['devices', 'show', s.deviceId, '--json', ...d]);
    assert.equal(show.code, 0, show.stderr);
    const dev = JSON.parse(show.stdout) as { assurance?: string; tpm?: { ekHash: string; ekTrust: string } | null };
    assert.equal(dev.assurance, 'tpm-attested');
    assert.match(dev.tpm?.ekHash ?? '', /^[0-9a-f]{64}$/);
    assert.equal(dev.tpm?.ekTrust, 'certificate', 'the EK certificate chained to swtpm_localca (attestation.ekRootsDir)');
  });

  await t.test('a file-keystore device in the tpm group is refused: ATTESTATION_REQUIRED', async () => {
    const sd = join(tempDir(t, 'latchkey-agent-'), 'state');
    const r = await run(process.execPath, [AGENT_CLI, '--state-dir', sd, 'enroll', '--server', server.url, '--token', await newToken(), '--ca-fingerprint', fingerprint, '--keystore', 'file'], { env: process.env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ATTESTATION_REQUIRED/);
  });

  await t.test('a genuine TPM whose EK is not registered is refused where the group requires registration: EK_NOT_REGISTERED', async () => {
    const sd = join(tempDir(t, 'latchkey-agent-'), 'state');
    const r = await run(process.execPath, [AGENT_CLI, '--state-dir', sd, 'enroll', '--server', server.url, '--token', await newToken(), '--ca-fingerprint', fingerprint, ...tpmEnrollArgs(tpm2)], { env: tpmAgentEnv(tpm2) });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /EK_NOT_REGISTERED/);
    assert.deepEqual(await keysInStore(sd, tpmAgentEnv(tpm2), { kind: 'pkcs11', module: tpm2.module, tokenLabel: tpm2.tokenLabel }), [], 'the refused enrollment left no key in the token');
  });

  await t.test('`latchkey run` renews a 6 s attested certificate by itself, twice (each renewal attested in a fresh token worker)', async () => {
    assert.equal((await cli(['groups', 'set', 'short', '--lifetime', '6s', '--attestation', 'tpm', ...d])).code, 0);
    const tk = (JSON.parse((await cli(['token', 'create', '--group', 'short', '--json', ...d])).stdout) as { token: string }).token;
    const sd = join(tempDir(t, 'latchkey-agent-'), 'state');
    const env = { ...tpmAgentEnv(tpm1), LATCHKEY_RUN_SLICE_MS: '200' };
    const e = await run(process.execPath, [AGENT_CLI, '--state-dir', sd, 'enroll', '--server', server.url, '--token', tk, '--ca-fingerprint', fingerprint, ...tpmEnrollArgs(tpm1)], { env });
    assert.equal(e.code, 0, e.stderr);
    const daemon = spawn(process.execPath, [AGENT_CLI, '--state-dir', sd, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stderr.on('data', (b: Buffer) => (log += b.toString()));
    t.after(() => {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    });
    const end = Date.now() + 90_000;
    while ((log.match(/renewed the certificate/g) ?? []).length < 2) {
      assert.ok(Date.now() < end && daemon.exitCode === null, `two renewals expected:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    daemon.kill('SIGTERM');
    assert.doesNotMatch(log, /renewal failed/);
    const id = JSON.parse(readFileSync(join(sd, 'identity.json'), 'utf8')) as { certPem: string; keystore: unknown; key: { id: string } };
    assert.ok(new X509Certificate(id.certPem).subject.includes(`OU=${TPM_ATTESTED_OU}`));
    assert.deepEqual(await keysInStore(sd, tpmAgentEnv(tpm1), id.keystore), [id.key.id], 'old keys deleted, no orphan');
  });
});
