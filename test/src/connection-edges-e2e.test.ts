/**
 * Connections that hold a descriptor and do nothing, against a real
 * `latchkey-server` (issue 10 §5): a TCP connection that never starts TLS, a
 * TLS connection that never sends a request and a keep-alive connection left
 * idle are closed after their timeouts, while WebSockets (the control
 * channel) stay; and hundreds of them at once, past the process's open-file
 * limit, do not keep a new client from `/healthz` and the admin API.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { channel, enrollDevice, setConfig } from './support/devices.js';
import { sleep, until } from './support/gateways.js';
import { initServer, startServer, type ServerProcess } from './support/processes.js';

/** A GET on a fresh connection: the status, or the error's code. */
function get(server: ServerProcess, path: string, headers: Record<string, string> = {}): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, ca: readFileSync(join(server.dataDir, 'root.crt.pem')), agent: false, headers, timeout: 20_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 20 s')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });
}

/** Whether the server closed the socket: resolves when it does. */
const closedBy = (s: Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

describe('connection edges (issue 10 §5)', () => {
  test('a TCP connection that never starts TLS, a TLS connection that never sends a request and an idle keep-alive connection are closed; a WebSocket stays', { timeout: 90_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    setConfig(dataDir, { tlsHandshakeTimeoutSeconds: 2, requestHeadersTimeoutSeconds: 2, requestTimeoutSeconds: 4, keepAliveTimeoutSeconds: 2, agentHeartbeatSeconds: 60 });
    const server = await startServer(t, dataDir, port);
    const device = await enrollDevice(server, 'stays');
    const ws = await channel(server, device);
    const ca = readFileSync(join(dataDir, 'root.crt.pem'));

    const raw = tcpConnect(port, '127.0.0.1');
    raw.on('error', () => undefined);
    const silent = tlsConnect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined });
    silent.on('error', () => undefined);
    await new Promise<void>((r) => silent.once('secureConnect', () => r()));
    // A slow sender: part of the headers, then nothing.
    const slow = tlsConnect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined });
    slow.on('error', () => undefined);
    await new Promise<void>((r) => slow.once('secureConnect', () => r()));
    slow.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    // A client that made one request and keeps the connection.
    const kept = tlsConnect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined });
    kept.on('error', () => undefined);
    let answer = '';
    kept.on('data', (d: Buffer) => (answer += d.toString()));
    await new Promise<void>((r) => kept.once('secureConnect', () => r()));
    kept.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await until('the keep-alive answer', async () => (/"status":"ok"/.test(answer) ? true : undefined));
    assert.doesNotMatch(answer, /connection: close/i);

    const deadline = (what: string, p: Promise<void>) => Promise.race([p, sleep(30_000).then(() => assert.fail(`${what} is still open after 30 s`))]);
    await deadline('the TCP connection that never started TLS', closedBy(raw));
    await deadline('the TLS connection that never sent a request', closedBy(silent));
    await deadline('the TLS connection with half its headers', closedBy(slow));
    await deadline('the idle keep-alive connection', closedBy(kept));
    // Past every one of those timeouts, the control channel is still there and answers.
    assert.equal(ws.ws.readyState, WebSocket.OPEN);
    await ws.sendAndSync({ type: 'heartbeat', seq: 7 });
  });

  test('hundreds of idle connections past the open-file limit: the oldest are shed and a new client still gets /healthz and an admin call answered', { timeout: 120_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    // Timeouts long enough that only the cap on idle connections can keep the server reachable during the test.
    setConfig(dataDir, { tlsHandshakeTimeoutSeconds: 60, requestHeadersTimeoutSeconds: 60, requestTimeoutSeconds: 60 });
    const server = await startServer(t, dataDir, port, { openFiles: 400 });
    for (let i = 0; i < 100 && !/connections: up to/.test(server.log()); i++) await sleep(20);
    assert.match(server.log(), /connections: up to 336 \(open-file limit less a reserve\), 192 of them idle; timeouts: TLS handshake 60 s/);
    const ca = readFileSync(join(dataDir, 'root.crt.pem'));
    const admin = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();

    const flood: Socket[] = [];
    t.after(() => flood.forEach((s) => s.destroy()));
    // 300 that never start TLS, 300 that finish the handshake and never send a request: 600 > 400 open files.
    for (let i = 0; i < 300; i++) {
      const s = tcpConnect(port, '127.0.0.1');
      s.on('error', () => undefined);
      flood.push(s);
    }
    const handshakes: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined });
      s.on('error', () => undefined);
      flood.push(s);
      handshakes.push(new Promise((r) => (s.once('secureConnect', () => r()), s.once('close', () => r()))));
      if (i % 50 === 49) await sleep(100);
    }
    await Promise.race([Promise.all(handshakes), sleep(30_000)]);
    const open = () => flood.filter((s) => !s.destroyed).length;
    t.diagnostic(`${open()} of ${flood.length} flood connections still open`);

    assert.equal(await get(server, '/healthz'), 200);
    assert.equal(await get(server, '/v1/admin/devices', { authorization: `Bearer ${admin}` }), 200);
    // The server holds no more idle connections than its cap (the client may see the closes a little later).
    await until('the flood to be cut to the cap', async () => (open() <= 192 ? true : undefined), 30_000);
    const metrics = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/metrics', ca, agent: false }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(b));
      })
        .on('error', reject)
        .end();
    });
    assert.match(metrics, /latchkey_connections_shed_total\{reason="idle-cap"\} [1-9]\d*/);
    assert.match(server.log(), /too many idle connections: closing the oldest idle ones/);
    assert.doesNotMatch(server.log(), /EMFILE/);
  });
});
