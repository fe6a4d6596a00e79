/**
 * Issue 14, policy and inventory through the real `latchkey-server` binary
 * against a running server: `groups set --attestation tpm
 * --require-registered-ek`, `devices register --ek-cert / --ek-hash / --csv`
 * (a bad CSV line named, exit 1), `devices registered`, `devices unregister`,
 * and an enrollment into the tpm group refused with ATTESTATION_REQUIRED.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cli, initServer, startServer, tempDir } from './support/processes.js';

const hex = (n: number): string => createHash('sha256').update(`cli-ek-${n}`).digest('hex');

describe('attestation policy and EK inventory from the command line', () => {
  test('groups set --attestation, devices register (cert, hash, CSV), registered, unregister', { timeout: 120_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    await startServer(t, dataDir, port);
    const d = ['--data-dir', dataDir];
    const tmp = tempDir(t);

    const set = await cli(['groups', 'set', 'servers', '--lifetime', '1h', '--attestation', 'tpm', '--require-registered-ek', ...d]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /group servers: .*attestation tpm, EK must be registered/);
    const badMode = await cli(['groups', 'set', 'servers', '--attestation', 'sgx', ...d]);
    assert.equal(badMode.code, 2);
    assert.match(badMode.stderr, /none, tpm/);
    const listed = JSON.parse((await cli(['groups', 'list', '--json', ...d])).stdout) as { items: { name: string; attestation: string; requireRegisteredEk: boolean }[] };
    assert.deepEqual(listed.items.find((g) => g.name === 'servers'), { name: 'servers', certLifetimeSeconds: 3600, requireApproval: false, attestation: 'tpm', requireRegisteredEk: true });

    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(tmp, 'ek.key'), '-out', join(tmp, 'ek.pem'), '-subj', '/CN=ek', '-days', '30'], { stdio: 'ignore' });
    const ekHash = createHash('sha256').update(execFileSync('openssl', ['pkey', '-in', join(tmp, 'ek.key'), '-pubout', '-outform', 'DER'])).digest('hex');
    const byCert = await cli(['devices', 'register', '--ek-cert', join(tmp, 'ek.pem'), '--name', 'srv-1', '--group', 'servers', '--json', ...d]);
    assert.equal(byCert.code, 0, byCert.stderr);
    assert.equal((JSON.parse(byCert.stdout) as { ekHash: string }).ekHash, ekHash);
    const dup = await cli(['devices', 'register', '--ek-hash', ekHash, ...d]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /CONFLICT/);
    assert.equal((await cli(['devices', 'register', '--ek-hash', 'abc', ...d])).code, 2, 'a malformed hash is a usage error');
    assert.equal((await cli(['devices', 'register', '--ek-hash', hex(0), '--csv', 'x.csv', ...d])).code, 2, 'one source only');

    writeFileSync(join(tmp, 'bad.csv'), `name,ek_hash,group\nsrv-2,${hex(1)},servers\nsrv-3,zz\n`);
    const bad = await cli(['devices', 'register', '--csv', join(tmp, 'bad.csv'), ...d]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /line 3: ek_hash must be 64 hexadecimal digits/);
    writeFileSync(join(tmp, 'ok.csv'), `name,ek_hash,group\nsrv-2,${hex(1)},servers\nsrv-3,${hex(2)}\n`);
    const ok = await cli(['devices', 'register', '--csv', join(tmp, 'ok.csv'), ...d]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^2 device\(s\) registered/);

    const reg = JSON.parse((await cli(['devices', 'registered', '--json', ...d])).stdout) as { items: { id: string; ekHash: string; name: string }[] };
    assert.deepEqual(reg.items.map((r) => r.ekHash).sort(), [ekHash, hex(1), hex(2)].sort());
    const table = await cli(['devices', 'registered', ...d]);
    assert.match(table.stdout, /srv-1/);
    const gone = await cli(['devices', 'unregister', reg.items.find((r) => r.name === 'srv-3')!.id, ...d]);
    assert.equal(gone.code, 0, gone.stderr);
    assert.equal((JSON.parse((await cli(['devices', 'registered', '--json', ...d])).stdout) as { items: unknown[] }).items.length, 2);

    // An enrollment into the tpm group: refused with the code and what to do.
    const token = (await cli(['token', 'create', '--group', 'servers', ...d])).stdout.trim();
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tmp, 'dev.key'), '-out', join(tmp, 'dev.csr'), '-outform', 'DER', '-subj', '/CN=srv-1'], { stdio: 'ignore' });
    const res = await fetchEnroll(`https://127.0.0.1:${port}/.well-known/est/simpleenroll`, token, join(dataDir, 'root.crt.pem'), join(tmp, 'dev.csr'));
    assert.match(res, /ATTESTATION_REQUIRED/);
    assert.match(res, /group servers requires a TPM-attested device key/);
  });
});

/** curl, as an operator would try it: the answer body. */
async function fetchEnroll(url: string, token: string, caFile: string, csrFile: string): Promise<string> {
  return execFileSync('curl', ['-sS', '--cacert', caFile, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${csrFile}`, url]).toString();
}
