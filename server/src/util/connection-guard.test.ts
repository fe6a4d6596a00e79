import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, request } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { FILES } from '../ca/ca-files.js';
import { harness } from '../testing/harness.js';
import { guardConnections, type ShedReason } from './connection-guard.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A real HTTPS server with a WebSocket endpoint, guarded. */
async function guarded(t: TestContext, limits: { maxIdle: number; maxOpen: number; firstRequestMs: number }) {
  const h = await harness(t, 'sqlite');
  assert.ok(h);
  const tls = { cert: readFileSync(join(h.dataDir, FILES.tlsCert)), key: readFileSync(join(h.dataDir, FILES.tlsKey)) };
  // Clients verify the server as any client would: our root, the name in its certificate.
  const trust = { ca: readFileSync(join(h.dataDir, FILES.rootCert)), servername: 'latchkey.example.com' };
  const server = createServer(tls, (req, res) => {
    // POST bodies are awaited: a client that never sends it keeps its request in flight.
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(m))));
  const shed: ShedReason[] = [];
  const guard = guardConnections(server, { ...limits, onShed: (r) => shed.push(r) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const clients: { destroy(): void }[] = [];
  t.after(async () => {
    for (const c of clients) c.destroy();
    guard.close();
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => server.close(r));
  });
  const raw = async (): Promise<Socket> => {
    const s = tcpConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    clients.push(s);
    await new Promise<void>((r) => s.once('connect', () => r()));
    return s;
  };
  const ws = async (): Promise<WebSocket> => {
    const w = new WebSocket(`wss://127.0.0.1:${port}/`, { ...trust });
    clients.push({ destroy: () => w.terminate() });
    await new Promise<void>((r, j) => (w.once('open', () => r()), w.once('error', j)));
    return w;
  };
  /** A POST whose body never comes: busy until the client goes. */
  const busy = async () => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...trust });
    s.on('error', () => undefined);
    clients.push(s);
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n');
    return s;
  };
  const get = () =>
    new Promise<number | string>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', ...trust, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end();
    });
  const echoes = async (w: WebSocket) => {
    const got = new Promise<string>((r) => w.once('message', (m) => r(m.toString())));
    w.send('ping');
    assert.equal(await got, 'ping');
  };
  return { port, guard, shed, raw, ws, busy, get, echoes, trust };
}

test('past maxIdle the oldest idle connections are closed; WebSockets are never counted as idle nor closed; nothing is left counted once clients go', async (t) => {
  const g = await guarded(t, { maxIdle: 3, maxOpen: 1000, firstRequestMs: 60_000 });
  const sockets = [await g.ws(), await g.ws()];
  const flood: Socket[] = [];
  for (let i = 0; i < 8; i++) {
    flood.push(await g.raw());
    await until('the server to count it', () => g.guard.open === sockets.length + Math.min(i + 1, 3));
    assert.ok(g.guard.idle <= 3);
  }
  await until('the oldest five to be closed', () => flood.slice(0, 5).every((s) => s.destroyed));
  assert.ok(flood.slice(5).every((s) => !s.destroyed), 'the newest three stay');
  assert.deepEqual(g.shed, Array(5).fill('idle-cap'));
  for (const w of sockets) await g.echoes(w);
  // A new client still gets its answer (shedding one more idle connection).
  assert.equal(await g.get(), 200);
  for (const s of flood) s.destroy();
  for (const w of sockets) w.terminate();
  await until('every connection to be forgotten', () => g.guard.open === 0 && g.guard.idle === 0);
});

test('at maxOpen a new connection sheds an idle one (a keep-alive connection after its request counts as idle); with nothing idle, it is refused', async (t) => {
  const g = await guarded(t, { maxIdle: 100, maxOpen: 3, firstRequestMs: 60_000 });
  const w = await g.ws();
  await g.busy();
  const kept = tlsConnect({ host: '127.0.0.1', port: g.port, ...g.trust });
  kept.on('error', () => undefined);
  let answer = '';
  kept.on('data', (d: Buffer) => (answer += d.toString()));
  await new Promise<void>((r) => kept.once('secureConnect', () => r()));
  kept.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await until('the answer', () => answer.endsWith('ok'));
  await until('the kept connection to count as idle again', () => g.guard.open === 3 && g.guard.idle === 1);
  assert.equal(await g.get(), 200);
  assert.deepEqual(g.shed, ['open-cap']);
  await until('the kept connection to be closed', () => kept.destroyed);
  await g.busy();
  await until('two requests in flight', () => g.guard.open === 3 && g.guard.idle === 0);
  assert.equal(typeof (await g.get()), 'string', 'refused: the connection is closed');
  assert.deepEqual(g.shed, ['open-cap', 'refused']);
  await g.echoes(w);
});

test('a TLS connection that sends no request within firstRequestMs of its handshake is closed; a WebSocket open longer than that is not', async (t) => {
  const g = await guarded(t, { maxIdle: 100, maxOpen: 100, firstRequestMs: 300 });
  const silent = tlsConnect({ host: '127.0.0.1', port: g.port, ...g.trust });
  silent.on('error', () => undefined);
  await new Promise<void>((r) => silent.once('close', () => r()));
  assert.ok(g.shed.includes('first-request-timeout'));
  const w = await g.ws();
  await sleep(600);
  await g.echoes(w);
});

test('server.close() while an ended answer is still being written: the client gets all of it (Node alone destroys the connection and cuts it)', async (t) => {
  const h = await harness(t, 'sqlite');
  assert.ok(h);
  const tls = { cert: readFileSync(join(h.dataDir, FILES.tlsCert)), key: readFileSync(join(h.dataDir, FILES.tlsKey)) };
  // Clients verify the server as any client would: our root, the name in its certificate.
  const trust = { ca: readFileSync(join(h.dataDir, FILES.rootCert)), servername: 'latchkey.example.com' };
  // More than the socket buffers hold: the end of it is still queued in the server when it closes.
  const body = 'x'.repeat(8 << 20);
  const answers = async (guard: boolean): Promise<string> => {
    const server = createServer(tls, (req, res) => {
      req.resume();
      // A graceful shutdown that starts as an issuance's answer goes out.
      req.on('end', () => (res.end(body), server.close()));
    });
    const g = guard ? guardConnections(server, { maxIdle: 100, maxOpen: 100, firstRequestMs: 60_000 }) : undefined;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const got = await new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', ...trust, agent: false }, (res) => {
        let n = 0;
        // A slow reader: it starts once the server has begun to close.
        res.pause();
        setTimeout(() => res.resume(), 200);
        res.on('data', (d: Buffer) => (n += d.length));
        res.on('end', () => resolve(n === body.length ? 'answered' : `cut at ${n}`));
        res.on('error', (e: NodeJS.ErrnoException) => resolve(`cut at ${n}: ${e.code ?? e.message}`));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end('csr');
    });
    if (server.listening) await new Promise((r) => server.close(r));
    g?.close();
    return got;
  };
  // The control: this Node cuts the answer by itself (if it stops doing so, the guard's sweep is no longer needed).
  assert.match(await answers(false), /cut at|ECONNRESET/);
  assert.equal(await answers(true), 'answered');
});
