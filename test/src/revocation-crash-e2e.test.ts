/**
 * Issue 10 §3: a server killed (SIGKILL) between a revocation's COMMIT and
 * its CRL rebuild and event. Before the outbox, the device could be missing
 * from the served CRL after the restart, no revocation event was ever
 * written (gateways and agents never told), and the admin's retry got 409.
 * Now the restarted server delivers what the revocation owed: the CRL lists
 * it, the event is in the gateway stream (a `gateway sync` that followed the
 * server across the crash applies it), the agent is told, and a retried
 * revoke answers 0 and announces again. On SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { AGENT_CLI, SERVER_CLI, cli, freshPgDatabase, initServer, mustRun, requireTools, run, startServer, tempDir } from './support/processes.js';
import { daemon, until } from './support/gateways.js';

async function crlSerials(file: string): Promise<string[]> {
  const r = await mustRun('openssl', ['crl', '-in', file, '-noout', '-text']);
  return [...r.stdout.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase().replace(/^0+/, ''));
}

/** Every event the gateway stream replays from the start (cursor 0). */
async function replayedEvents(url: string, token: string, rootCa: string): Promise<{ type: string; deviceId?: string; crlNumber?: string }[]> {
  const ws = new WebSocket(`${url.replace(/^https/, 'wss')}/v1/events`, { headers: { authorization: `Bearer ${token}` }, ca: readFileSync(rootCa) });
  const got: { type: string; deviceId?: string; crlNumber?: string }[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', since: '0' })));
    ws.on('message', (d) => got.push(JSON.parse(String(d)) as (typeof got)[number]));
    ws.on('error', reject);
    setTimeout(resolve, 1500);
  });
  ws.close();
  return got;
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`a crash right after a revocation commits (${engine})`, () => {
    test('kill -9 between COMMIT and the CRL: after the restart the CRL, the gateway stream, the gateway and the agent all have it; a retried revoke succeeds', { timeout: 180_000 }, async (t) => {
      if (!requireTools(t, 'openssl')) return;
      const databaseUrl = engine === 'postgres' ? await freshPgDatabase(t) : undefined;
      if (engine === 'postgres' && !databaseUrl) return;
      const { dataDir, port, fingerprint } = await initServer(t, databaseUrl ? { databaseUrl } : {});
      let server = await startServer(t, dataDir, port, { env: { LATCHKEY_TEST_CRASH_AT: 'after-revoke-commit' } });
      const work = tempDir(t, 'latchkey-crash-');
      const rootCa = join(dataDir, 'root.crt.pem');

      const stateDir = join(work, 'agent');
      const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
      const e = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file']);
      assert.equal(e.code, 0, e.stderr);
      const st = JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'])).stdout) as { deviceId: string; serial: string };
      const serial = st.serial.toLowerCase().replace(/^0+/, '');
      const agent = daemon(t, process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run']);
      let agentExit: number | null | undefined;
      agent.proc.on('exit', (c) => (agentExit = c));
      await until('the agent online', async () => ((await cli(['devices', 'online', '--data-dir', dataDir])).stdout.includes(st.deviceId) ? true : undefined), 30_000);

      const gwToken = (JSON.parse((await cli(['gateway', 'token', 'create', '--name', 'gw', '--json', '--data-dir', dataDir])).stdout) as { token: string }).token;
      const crlFile = join(work, 'crl.pem');
      const sync = spawn(process.execPath, [SERVER_CLI, 'gateway', 'sync', '--server', server.url, '--ca-file', rootCa, '--crl-file', crlFile, '--reload', 'true'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LATCHKEY_GATEWAY_TOKEN: gwToken },
      });
      let log = '';
      sync.stderr.on('data', (d: Buffer) => (log += d.toString()));
      sync.stdout.on('data', (d: Buffer) => (log += d.toString()));
      t.after(() => {
        if (sync.exitCode === null) sync.kill('SIGKILL');
      });
      await until('the first sync and the stream', async () => (/synced CRLs/.test(log) && /event stream connected/.test(log) && existsSync(crlFile) ? true : undefined), 30_000);

      // The revocation commits, then the server dies before the CRL rebuild and the event.
      const rv = await cli(['devices', 'revoke', st.deviceId, '--reason', 'keyCompromise', '--data-dir', dataDir]);
      assert.notEqual(rv.code, 0, 'the admin got no answer');
      assert.equal(await server.stop(), -1, 'killed by its crash point');
      assert.deepEqual(await crlSerials(crlFile), [], 'nothing was delivered before the crash');

      server = await startServer(t, dataDir, port);
      // The gateway that followed the server across the crash: its CRL file lists the device.
      await until('the CRL file to list the device', async () => ((await crlSerials(crlFile)).includes(serial) ? true : undefined), 60_000);
      // The served CRL, as openssl reads it.
      await mustRun('curl', ['-sf', '--cacert', rootCa, '-o', join(work, 'served.pem'), `${server.url}/crl.pem`]);
      assert.ok((await crlSerials(join(work, 'served.pem'))).includes(serial));
      // The event was written: a gateway replaying from the start sees it, naming the CRL that lists it.
      const events = await replayedEvents(server.url, gwToken, rootCa);
      const rev = events.find((x) => x.type === 'revocation' && x.deviceId === st.deviceId);
      assert.ok(rev && Number(rev.crlNumber) >= 1, JSON.stringify(events));
      // The agent is told (exit 3: key deleted, enroll again).
      await until('the agent to exit', async () => agentExit, 90_000).catch((e: Error) => assert.fail(`${e.message}\n${agent.log()}`));
      assert.equal(agentExit, 3, agent.log());

      // The admin retries: success, and delivery again.
      const again = await cli(['devices', 'revoke', st.deviceId, '--data-dir', dataDir]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /was already revoked \(keyCompromise\)[\s\S]*CRL #\d+ lists it/);
    });
  });
}
