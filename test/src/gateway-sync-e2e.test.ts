/**
 * `latchkey-server gateway sync` against a real server process: the CRL
 * file holds the revoked serial (as openssl reads it) within a second of
 * `devices revoke`, the reload command ran, and the sync survives the
 * server restarting.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { crlPublisher } from './support/crl-publisher.js';
import { AGENT_CLI, SERVER_CLI, cli, initServer, mustRun, requireTools, run, startServer, tempDir } from './support/processes.js';

/** Serials openssl lists in the first CRL of a PEM file, as lower-case hex without leading zeros. */
async function crlSerials(file: string): Promise<string[]> {
  const r = await mustRun('openssl', ['crl', '-in', file, '-noout', '-text']);
  return [...r.stdout.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase().replace(/^0+/, ''));
}

const until = async (what: string, f: () => boolean | Promise<boolean>, ms: number, log: () => string): Promise<number> => {
  const start = Date.now();
  while (!(await f())) {
    assert.ok(Date.now() - start < ms, `timed out after ${ms} ms waiting for ${what}:\n${log()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
};

describe('gateway sync against a real server', () => {
  test('revoke → the CRL file lists the serial within a second and the reload ran; survives a server restart; --once', { timeout: 120_000 }, async (t) => {
    if (!requireTools(t, 'openssl')) return;
    const { dataDir, port, fingerprint } = await initServer(t);
    let server = await startServer(t, dataDir, port);
    const work = tempDir(t, 'latchkey-gw-');

    const gw = await cli(['gateway', 'token', 'create', '--name', 'nginx-test', '--json', '--data-dir', dataDir]);
    assert.equal(gw.code, 0, gw.stderr);
    const gwToken = (JSON.parse(gw.stdout) as { token: string }).token;
    assert.match(gwToken, /^lkg_/);
    const listed = await cli(['gateway', 'token', 'list', '--data-dir', dataDir]);
    assert.match(listed.stdout, /nginx-test/);
    assert.ok(!listed.stdout.includes(gwToken));

    // Two enrolled devices (real agent, file keystore).
    const devices: { deviceId: string; serial: string }[] = [];
    for (const n of [1, 2]) {
      const stateDir = join(work, `agent-${n}`);
      const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
      const e = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file']);
      assert.equal(e.code, 0, e.stderr);
      const st = JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'])).stdout) as { deviceId: string; serial: string };
      // As crlSerials() gives them: lower-case hex without leading zeros (openssl drops them).
      devices.push({ ...st, serial: st.serial.toLowerCase().replace(/^0+/, '') });
    }

    const crlFile = join(work, 'crl.pem');
    const reloads = join(work, 'reloads.log');
    const reloadCount = (): number => (existsSync(reloads) ? readFileSync(reloads, 'utf8').split('\n').filter(Boolean).length : 0);
    const rootCa = join(dataDir, 'root.crt.pem');
    const sync = spawn(process.execPath, [SERVER_CLI, 'gateway', 'sync', '--server', server.url, '--ca-file', rootCa, '--crl-file', crlFile, '--reload', `echo reloaded >> ${reloads}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LATCHKEY_GATEWAY_TOKEN: gwToken },
    });
    let log = '';
    sync.stderr.on('data', (d: Buffer) => (log += d.toString()));
    sync.stdout.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => sync.on('exit', (c) => r(c)));
    t.after(() => {
      if (sync.exitCode === null) sync.kill('SIGKILL');
    });
    const logs = () => `${log}\n--- server:\n${server.log()}`;

    await until('the first sync', () => /synced CRLs \(issuing #\d+, root #\d+; 0 revoked/.test(log) && reloadCount() === 1, 20_000, logs);
    assert.deepEqual(await crlSerials(crlFile), []);
    const text = readFileSync(crlFile, 'utf8');
    assert.equal(text.match(/-----BEGIN X509 CRL-----/g)?.length, 2, 'issuing and root CRLs in one file');
    await until('the event stream', () => /event stream connected/.test(log), 10_000, logs);

    // Revoke: the file lists the serial within a second of the CLI returning.
    const rv = await cli(['devices', 'revoke', devices[0]!.deviceId, '--reason', 'keyCompromise', '--data-dir', dataDir]);
    assert.equal(rv.code, 0, rv.stderr);
    const ms = await until('the revoked serial in the CRL file', async () => existsSync(crlFile) && (await crlSerials(crlFile)).includes(devices[0]!.serial), 1000, logs);
    t.diagnostic(`CRL file updated ${ms} ms after devices revoke returned`);
    await until('the reload', () => reloadCount() >= 2, 1000, logs);
    // The sync's log line reaches us through a pipe, possibly just after the reload it reports.
    await until('the sync log line', () => /synced CRLs \(issuing #\d+, root #\d+; 1 revoked serial\(s\)\)/.test(log), 1000, logs);

    // The server restarts: the sync reconnects, resyncs, and keeps following.
    assert.equal(await server.stop('SIGTERM'), 0);
    await until('the stream to notice', () => /event stream (closed|unavailable)/.test(log), 10_000, logs);
    await new Promise((r) => setTimeout(r, 1500));
    server = await startServer(t, dataDir, port);
    const connects = (): number => log.match(/event stream connected/g)?.length ?? 0;
    await until('the reconnection', () => connects() >= 2, 40_000, logs);
    assert.match(log, /resuming after cursor \d+/);
    const rv2 = await cli(['devices', 'revoke', devices[1]!.deviceId, '--data-dir', dataDir]);
    assert.equal(rv2.code, 0, rv2.stderr);
    const ms2 = await until('the second revoked serial', async () => (await crlSerials(crlFile)).includes(devices[1]!.serial), 1000, logs);
    t.diagnostic(`after the restart: CRL file updated ${ms2} ms after devices revoke returned`);
    assert.deepEqual((await crlSerials(crlFile)).sort(), [devices[0]!.serial, devices[1]!.serial].sort());

    // A revoked gateway token: its stream is closed, not let back in, and the sync stops with an error.
    const second = (JSON.parse((await cli(['gateway', 'token', 'create', '--name', 'second', '--json', '--data-dir', dataDir])).stdout) as { token: string }).token;
    const id = (JSON.parse((await cli(['gateway', 'token', 'list', '--json', '--data-dir', dataDir])).stdout) as { items: { id: string; name: string }[] }).items.find((i) => i.name === 'nginx-test')!.id;
    assert.equal((await cli(['gateway', 'token', 'revoke', id, '--data-dir', dataDir])).code, 0);
    await until('the refusal', () => /closed 4003/.test(log) && /HTTP 403/.test(log), 10_000, logs);
    assert.equal(await exited, 1, log);
    assert.match(log, /error: the server refused the gateway token \(event stream: HTTP 403: the gateway token "nginx-test" was revoked/);

    // --once: one sync and exit (cron, tests).
    const once = join(work, 'once.pem');
    const r = await cli(['gateway', 'sync', '--once', '--server', server.url, '--ca-file', rootCa, '--crl-file', once, '--reload', `echo once >> ${reloads}`], { env: { LATCHKEY_GATEWAY_TOKEN: second } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /synced CRLs \(issuing #\d+, root #\d+; 2 revoked serial\(s\)\) after --once/);
    assert.equal((await crlSerials(once)).length, 2);
    assert.match(readFileSync(reloads, 'utf8'), /once\n$/);

    // Usage errors exit 2.
    assert.equal((await cli(['gateway', 'sync', '--server', server.url, '--token', 'x', '--crl-file', once])).code, 2);
    assert.equal((await cli(['gateway', 'sync', '--server', server.url, '--crl-file', once, '--reload', 'true'], { env: { LATCHKEY_GATEWAY_TOKEN: '' } })).code, 2);
  });

  test('a wrong or revoked gateway token is fatal: --once and the live sync exit 1 with what to do; --token-file keeps it out of ps', { timeout: 120_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const work = tempDir(t, 'latchkey-gw-');
    const rootCa = join(dataDir, 'root.crt.pem');
    const crlFile = join(work, 'crl.pem');
    const sync = (args: string[], env: NodeJS.ProcessEnv = {}) => cli(['gateway', 'sync', '--server', server.url, '--ca-file', rootCa, '--crl-file', crlFile, '--reload', 'true', ...args], { env });
    const wrong = 'lkg_not-a-token-this-server-made';

    // --once with a wrong token: exit 1, and the gateway's CRL file is not touched.
    const once = await sync(['--once'], { LATCHKEY_GATEWAY_TOKEN: wrong });
    assert.equal(once.code, 1, once.stderr);
    assert.match(once.stderr, /the server refused the gateway token \(event stream: HTTP 401: the gateway token is not valid\); create one with `latchkey-server gateway token create --name NAME`/);
    assert.doesNotMatch(once.stderr, new RegExp(wrong), 'the token is not echoed');
    assert.equal(existsSync(crlFile), false);

    // Live with a wrong token: not retried forever, it exits 1 by itself.
    const live = spawn(process.execPath, [SERVER_CLI, 'gateway', 'sync', '--server', server.url, '--ca-file', rootCa, '--crl-file', crlFile, '--reload', 'true'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LATCHKEY_GATEWAY_TOKEN: wrong } });
    let log = '';
    live.stderr.on('data', (d: Buffer) => (log += d.toString()));
    t.after(() => {
      if (live.exitCode === null) live.kill('SIGKILL');
    });
    const code = await new Promise<number | null>((r) => live.on('exit', (c) => r(c)));
    assert.equal(code, 1, log);
    assert.match(log, /gateway sync: error: the server refused the gateway token \(event stream: HTTP 401/);
    assert.doesNotMatch(log, /reconnecting/);

    // --token-file: trailing CRLF trimmed; a file others can read is refused (exit 2) with the fix.
    const token = (JSON.parse((await cli(['gateway', 'token', 'create', '--name', 'gw-file', '--json', '--data-dir', dataDir])).stdout) as { token: string }).token;
    const tokenFile = join(work, 'gateway-token');
    writeFileSync(tokenFile, `${token}\r\n`, { mode: 0o600 });
    const ok = await sync(['--once', '--token-file', tokenFile], { LATCHKEY_GATEWAY_TOKEN: '' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /synced CRLs \(issuing #\d+, root #\d+; 0 revoked serial\(s\)\) after --once/);
    chmodSync(tokenFile, 0o644);
    const open = await sync(['--once', '--token-file', tokenFile]);
    assert.equal(open.code, 2, open.stderr);
    assert.match(open.stderr, /--token-file .*gateway-token can be read by other users \(mode 644\); run chmod 600/);
    // --token still works, with a warning.
    const argv = await sync(['--once', '--token', token]);
    assert.equal(argv.code, 0, argv.stderr);
    assert.match(argv.stderr, /warning: --token is visible to every user in `ps`/);
  });

  test('RFC 5280 §5.1.2.5: a CRL whose nextUpdate has passed (the server\'s clock behind) is not applied: --once exits 1 and the gateway keeps its CRL file; live, an error on every retry', { timeout: 120_000 }, async (t) => {
    if (!requireTools(t, 'openssl')) return;
    const { dataDir } = await initServer(t);
    const work = tempDir(t, 'latchkey-gw-');
    const publisher = await crlPublisher(t, dataDir, 'lkg_test-token');
    const crlFile = join(work, 'crl.pem');
    const args = ['gateway', 'sync', '--server', publisher.url, '--ca-file', join(dataDir, 'root.crt.pem'), '--crl-file', crlFile, '--reload', 'true'];
    const env = { LATCHKEY_GATEWAY_TOKEN: 'lkg_test-token' };
    await publisher.set('issuing', { crlNumber: 7, serials: [] });
    await publisher.set('root', { crlNumber: 7, serials: [] });
    const fresh = await cli([...args, '--once'], { env });
    assert.equal(fresh.code, 0, fresh.stderr);
    const applied = readFileSync(crlFile, 'utf8');

    // The server's clock is two hours behind: its new CRL (one more revoked serial) expired an hour ago.
    await publisher.set('issuing', { crlNumber: 8, serials: ['0a0b0c'], thisUpdate: new Date(Date.now() - 2 * 3_600_000), validitySeconds: 3600 });
    const stale = await cli([...args, '--once'], { env });
    assert.equal(stale.code, 1, stale.stderr);
    assert.match(stale.stderr, /the server sent issuing CRL #8 whose nextUpdate .* has passed \(it is .* here\): the server's clock is behind or it is not regenerating its CRLs; not applied, the gateway keeps the CRL it has/);
    assert.equal(readFileSync(crlFile, 'utf8'), applied, 'the CRL file is unchanged');

    const live = spawn(process.execPath, [SERVER_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let log = '';
    live.stderr.on('data', (d: Buffer) => (log += d.toString()));
    t.after(() => {
      if (live.exitCode === null) live.kill('SIGKILL');
    });
    await until('two errors', () => (log.match(/gateway sync: error: CRL sync failed \(the server sent issuing CRL #8 whose nextUpdate/g)?.length ?? 0) >= 2, 60_000, () => log);
    assert.equal(readFileSync(crlFile, 'utf8'), applied);
    assert.equal(live.exitCode, null, 'still running, retrying');
  });
});
