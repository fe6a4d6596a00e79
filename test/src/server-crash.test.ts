/**
 * Crash safety (docs/architecture.md "Storage": nothing is issued that is not first
 * recorded): `kill -9` latchkey-server during a burst of enrollments,
 * restart it, and every certificate a client received is in its records,
 * and the token's use count matches the devices it created.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createCsr, decodeCertsOnly, nodeSigner, parseCertificate } from '@latchkey/pki';
import { cli, freshPgDatabase, initServer, startServer } from './support/processes.js';

function post(port: number, ca: string, token: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/.well-known/est/simpleenroll', ca, agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/pkcs10' } },
      (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`crash safety (${engine})`, () => {
    test('kill -9 during a burst of enrollments: every certificate a client received is recorded', { timeout: 120_000 }, async (t) => {
      const databaseUrl = engine === 'postgres' ? await freshPgDatabase(t) : undefined;
      if (engine === 'postgres' && !databaseUrl) return;
      const { dataDir, port } = await initServer(t, databaseUrl ? { databaseUrl } : {});
      const server = await startServer(t, dataDir, port);
      const ca = readFileSync(join(dataDir, 'root.crt.pem'), 'utf8');
      const tok = await cli(['token', 'create', '--uses', '100000', '--data-dir', dataDir, '--json']);
      const token = (JSON.parse(tok.stdout) as { token: string }).token;

      // 200 distinct device CSRs, ready before the burst.
      const csrs = await Promise.all(
        Array.from({ length: 200 }, async (_, i) =>
          (await createCsr({ subject: [{ type: 'CN', value: `crash-${i}` }], signer: nodeSigner(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey) })).toString('base64'),
        ),
      );
      const received: string[] = [];
      let failures = 0;
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < csrs.length) {
          const body = csrs[next++]!;
          try {
            const r = await post(port, ca, token, body);
            if (r.status === 200) received.push(parseCertificate(decodeCertsOnly(r.body)[0]!).serialHex);
            else failures++;
          } catch {
            failures++;
          }
        }
      };
      const burst = Promise.all(Array.from({ length: 16 }, worker));
      // Kill once some enrollments have completed and many are in flight.
      const t0 = Date.now();
      while (received.length < 20 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
      await server.stop('SIGKILL');
      await burst;
      assert.ok(received.length >= 20, `only ${received.length} enrollments completed before the kill`);
      assert.ok(failures > 0, 'the kill interrupted the burst');

      const again = await startServer(t, dataDir, port);
      const list = await cli(['devices', 'list', '--limit', '500', '--data-dir', dataDir, '--json']);
      assert.equal(list.code, 0, list.stderr);
      const devices = (JSON.parse(list.stdout) as { items: { certificate: { serial: string } | null }[] }).items;
      const recorded = new Set(devices.map((d) => d.certificate?.serial));
      const lost = received.filter((s) => !recorded.has(s));
      assert.deepEqual(lost, [], `${lost.length} of ${received.length} certificates handed out are not recorded`);
      // Token use, device and certificate were written together: counts agree.
      const tokens = await cli(['token', 'list', '--data-dir', dataDir, '--json']);
      const used = (JSON.parse(tokens.stdout) as { items: { usedCount: number }[] }).items[0]!.usedCount;
      assert.equal(used, devices.length);
      assert.ok(devices.every((d) => d.certificate !== null), 'no device without its certificate');
      await again.stop('SIGTERM');
    });
  });
}

describe('graceful shutdown', () => {
  test('SIGTERM during a burst: in-flight enrollments complete and are recorded, exit code 0', { timeout: 120_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const ca = readFileSync(join(dataDir, 'root.crt.pem'), 'utf8');
    const token = (JSON.parse((await cli(['token', 'create', '--uses', '100000', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const csrs = await Promise.all(
      Array.from({ length: 150 }, async (_, i) =>
        (await createCsr({ subject: [{ type: 'CN', value: `term-${i}` }], signer: nodeSigner(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey) })).toString('base64'),
      ),
    );
    const received: { serial: string; at: number }[] = [];
    const statuses: number[] = [];
    let next = 0;
    let signalledAt = Infinity;
    let answeredAfter = 0;
    const worker = async (): Promise<void> => {
      while (next < csrs.length && Date.now() < signalledAt + 2000) {
        const body = csrs[next++]!;
        try {
          const r = await post(port, ca, token, body);
          statuses.push(r.status);
          if (Date.now() > signalledAt) answeredAfter++;
          if (r.status === 200) received.push({ serial: parseCertificate(decodeCertsOnly(r.body)[0]!).serialHex, at: Date.now() });
        } catch {
          /* refused once the listener closed */
        }
      }
    };
    const burst = Promise.all(Array.from({ length: 16 }, worker));
    while (received.length < 10) await new Promise((r) => setTimeout(r, 5));
    signalledAt = Date.now();
    const code = await server.stop('SIGTERM');
    await burst;
    assert.equal(code, 0, server.log());
    // Requests that arrive while closing get 503 (nothing issued); none fails otherwise.
    assert.deepEqual(statuses.filter((s) => s !== 200 && s !== 503), [], 'no request failed with another HTTP error');
    // Every request the server was handling when it began to stop got its answer (it says how many there were).
    const inFlight = Number(/shutting down: (\d+) request\(s\) in flight/.exec(server.log())?.[1] ?? NaN);
    assert.ok(Number.isInteger(inFlight), server.log());
    assert.ok(answeredAfter >= inFlight, `${inFlight} request(s) in flight at SIGTERM, ${answeredAfter} answered after it`);
    t.diagnostic(`${inFlight} request(s) in flight at SIGTERM; ${received.filter((r) => r.at > signalledAt).length} certificates received after it`);
    const again = await startServer(t, dataDir, port);
    const devices = (JSON.parse((await cli(['devices', 'list', '--limit', '500', '--data-dir', dataDir, '--json'])).stdout) as { items: { certificate: { serial: string } | null }[] }).items;
    const recorded = new Set(devices.map((d) => d.certificate?.serial));
    assert.deepEqual(received.filter((r) => !recorded.has(r.serial)), []);
    // …and no issuance was cut off mid-way: every recorded device's certificate reached its client.
    assert.equal(devices.length, received.length);
    await again.stop('SIGTERM');
  });
});
