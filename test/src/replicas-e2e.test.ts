/**
 * Two `latchkey-server start` processes on one PostgreSQL database: an agent
 * connected to replica A is told, and its connection closed, when the revoke
 * is made on replica B; the CRL is regenerated once (one CRL number step) and
 * served byte for byte the same by both replicas.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseCrl } from '@latchkey/pki';
import { AGENT_CLI, cli, freePort, freshPgDatabase, initServer, run, startServer, tempDir } from './support/processes.js';

async function getCrl(url: string, ca: string): Promise<string> {
  const r = await run('curl', ['-sf', '--cacert', ca, `${url}/crl.pem`]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('several replicas on one PostgreSQL', () => {
  test('agent on replica A, revoke on replica B: the agent is told at once; the CRL is regenerated once and identical on both', { timeout: 120_000 }, async (t) => {
    const databaseUrl = await freshPgDatabase(t);
    if (!databaseUrl) return;
    const a = await initServer(t, { databaseUrl });
    // Replica B: the same CA, config and database, its own port.
    const dirB = join(tempDir(t), 'data');
    cpSync(a.dataDir, dirB, { recursive: true });
    const portB = await freePort();
    const cfgB = join(dirB, 'config.json');
    writeFileSync(cfgB, JSON.stringify({ ...JSON.parse(readFileSync(cfgB, 'utf8')), listen: `127.0.0.1:${portB}` }));
    const A = await startServer(t, a.dataDir, a.port);
    const B = await startServer(t, dirB, portB);
    const ca = join(a.dataDir, 'root.crt.pem');

    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dirB, '--json'])).stdout) as { token: string }).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    assert.equal((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', A.url, '--token', token, '--ca-fingerprint', a.fingerprint, '--keystore', 'file'])).code, 0);
    const deviceId = (JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'])).stdout) as { deviceId: string }).deviceId;
    const d = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    d.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<number | null>((r) => d.on('exit', (c) => r(c)));
    t.after(() => {
      if (d.exitCode === null) d.kill('SIGKILL');
    });
    const end = Date.now() + 20_000;
    while (!/control channel connected/.test(log)) {
      assert.ok(Date.now() < end, log);
      await new Promise((r) => setTimeout(r, 50));
    }
    const onA = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', a.dataDir])).stdout) as { items: { deviceId: string }[] };
    const onB = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dirB])).stdout) as { items: unknown[] };
    assert.deepEqual([onA.items.map((i) => i.deviceId), onB.items.length], [[deviceId], 0], 'connected to A only');

    const before = parseCrl(await getCrl(A.url, ca)).crlNumber;
    const rv = await cli(['devices', 'revoke', deviceId, '--reason', 'keyCompromise', '--data-dir', dirB]);
    assert.equal(rv.code, 0, rv.stderr);
    const returned = Date.now();
    assert.equal(await exited, 3, log);
    t.diagnostic(`agent on A acted ${Date.now() - returned} ms after the revoke on B returned`);
    assert.match(log, /THIS DEVICE HAS BEEN REVOKED \(keyCompromise/);

    const [crlA, crlB] = [await getCrl(A.url, ca), await getCrl(B.url, ca)];
    assert.equal(crlA, crlB, 'both replicas serve the same CRL');
    const crl = parseCrl(crlA);
    assert.equal(crl.crlNumber, (before ?? 0n) + 1n, 'regenerated once');
    assert.equal(crl.entries.length, 1);
  });
});
