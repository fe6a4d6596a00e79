/**
 * Load generator of `pnpm bench:channels` (channel-bench.ts), one forked
 * process each: many agent control channels, spoken as the agent does it
 * (agent/src/channel/control-channel.ts) — TLS with the device certificate
 * and key, WebSocket upgrade to /v1/agent, `hello`, `status`, heartbeats at
 * the `heartbeatSeconds` of `welcome` — from its own source addresses, so no
 * (source, destination) pair runs out of ephemeral ports. It records when a
 * connection receives `revoked`, `renew-now` or `policy`, and answers the
 * parent over IPC (messages in channel-bench-ipc.ts).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { PROTOCOL_VERSION } from '@latchkey/protocol';
import WebSocket from 'ws';
import { now, type ToClient, type ToParent, type WorkerStats } from './channel-bench-ipc.js';

interface Device {
  cert: string;
  serial: string;
  notAfter: string;
}

interface Conn {
  ws: WebSocket;
  deviceId?: string;
  heartbeat?: NodeJS.Timeout;
  welcomed: boolean;
  revoked: boolean;
}

const send = (m: ToParent): void => {
  process.send?.(m);
};

const conns = new Set<Conn>();
const byDevice = new Map<string, Conn>();
const stats: WorkerStats = { open: 0, failed: 0, inflight: 0, heartbeatsSent: 0, acks: 0, policiesAtWelcome: 0, unexpectedCloses: {}, failures: {} };
const welcomeMs: number[] = [];
let expectedPolicy: { lifetime: number; times: number[]; waiting: Set<Conn>; done: () => void } | undefined;

const bump = (o: Record<string, number>, k: string): void => {
  o[k] = (o[k] ?? 0) + 1;
};

function openOne(o: { url: string; ca: string; key: string; chain: string; dev: Device; localAddress: string; timeoutMs: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const t0 = now();
    const ws = new WebSocket(o.url, {
      ca: o.ca,
      cert: o.dev.cert + o.chain,
      key: o.key,
      localAddress: o.localAddress,
      handshakeTimeout: o.timeoutMs,
      maxPayload: 16 * 1024,
      perMessageDeflate: false,
    });
    const c: Conn = { ws, welcomed: false, revoked: false };
    let settled = false;
    const settle = (ok: boolean, why?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) {
        stats.open++;
        welcomeMs.push(now() - t0);
      } else {
        stats.failed++;
        bump(stats.failures, why ?? 'unknown');
        ws.terminate();
      }
      resolve(ok);
    };
    // Open, hello and welcome within the time an agent would wait (15 s handshake).
    const timer = setTimeout(() => settle(false, 'no welcome within the timeout'), o.timeoutMs);
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocolVersion: PROTOCOL_VERSION,
          agentVersion: '0.0.0-bench',
          facts: { hostname: hostname(), os: { platform: 'linux', release: 'bench' }, arch: process.arch, hardwareId: `bench-${o.dev.serial}`, agentVersion: '0.0.0-bench' },
        }),
      );
      ws.send(JSON.stringify({ type: 'status', serial: o.dev.serial, notAfter: o.dev.notAfter, keystore: 'file' }));
    });
    ws.on('message', (data) => {
      let m: { type?: string; heartbeatSeconds?: number; deviceId?: string; certLifetimeSeconds?: number };
      try {
        m = JSON.parse(data.toString()) as typeof m;
      } catch {
        return;
      }
      const t = now();
      if (m.type === 'welcome') {
        c.welcomed = true;
        c.deviceId = m.deviceId;
        if (m.deviceId) byDevice.set(m.deviceId, c);
        conns.add(c);
        let seq = 0;
        const every = Math.max(1, Number(m.heartbeatSeconds) || 30) * 1000;
        c.heartbeat = setInterval(() => {
          if (ws.readyState === ws.OPEN) {
            ws.send(JSON.stringify({ type: 'heartbeat', seq: seq++ }));
            stats.heartbeatsSent++;
          }
        }, every);
        settle(true);
      } else if (m.type === 'heartbeat-ack') {
        stats.acks++;
      } else if (m.type === 'revoked') {
        c.revoked = true;
        if (c.deviceId) send({ type: 'got', kind: 'revoked', deviceId: c.deviceId, at: t });
      } else if (m.type === 'renew-now') {
        if (c.deviceId) send({ type: 'got', kind: 'renew-now', deviceId: c.deviceId, at: t });
      } else if (m.type === 'policy') {
        const e = expectedPolicy;
        if (e && m.certLifetimeSeconds === e.lifetime && e.waiting.delete(c)) {
          e.times.push(t);
          if (e.waiting.size === 0) e.done();
        } else if (!e) stats.policiesAtWelcome++;
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      settle(false, `HTTP ${res.statusCode ?? '?'}`);
      res.resume();
    });
    ws.on('error', (e: NodeJS.ErrnoException) => settle(false, e.code ?? e.message.slice(0, 60)));
    ws.on('close', (code) => {
      clearInterval(c.heartbeat);
      if (!c.welcomed) return settle(false, `closed ${code} before welcome`);
      conns.delete(c);
      if (c.deviceId) byDevice.delete(c.deviceId);
      stats.open--;
      if (expectedPolicy?.waiting.delete(c) && expectedPolicy.waiting.size === 0) expectedPolicy.done();
      if (!(c.revoked && code === 4003) && !stopping) bump(stats.unexpectedCloses, String(code));
    });
  });
}

let stopping = false;

async function connectAll(m: Extract<ToClient, { cmd: 'connect' }>): Promise<void> {
  const devices = readFileSync(m.devicesFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Device);
  const url = `wss://127.0.0.1:${m.port}/v1/agent`;
  let next = 0;
  const started = now();
  const progress = setInterval(() => send({ type: 'progress', stats: { ...stats } }), 1000);
  // At most `inflight` handshakes at a time; one attempt per device, retried `retries` times.
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= devices.length || now() - started > m.budgetMs || stopping) return;
      const dev = devices[i]!;
      for (let attempt = 0; attempt <= m.retries; attempt++) {
        stats.inflight++;
        const ok = await openOne({ url, ca: m.ca, key: m.key, chain: m.chain, dev, localAddress: m.localAddresses[i % m.localAddresses.length]!, timeoutMs: m.timeoutMs });
        stats.inflight--;
        if (ok) break;
        if (attempt < m.retries) await new Promise((r) => setTimeout(r, 1000 + Math.random() * 1000));
      }
    }
  };
  await Promise.all(Array.from({ length: m.inflight }, worker));
  clearInterval(progress);
  welcomeMs.sort((a, b) => a - b);
  send({ type: 'connected', stats: { ...stats }, welcomeMs: welcomeMs.filter((_, i) => i % Math.max(1, Math.floor(welcomeMs.length / 2000)) === 0), deviceIds: [...byDevice.keys()] });
}

process.on('message', (raw) => {
  const m = raw as ToClient;
  if (m.cmd === 'connect') {
    void connectAll(m).catch((e: Error) => send({ type: 'fatal', message: e.stack ?? e.message }));
  } else if (m.cmd === 'stats') {
    send({ type: 'stats', stats: { ...stats } });
  } else if (m.cmd === 'expect-policy') {
    expectedPolicy?.done();
    const e: NonNullable<typeof expectedPolicy> = {
      lifetime: m.lifetime,
      times: [],
      waiting: new Set(conns),
      done: () => {
        if (expectedPolicy !== e) return;
        expectedPolicy = undefined;
        clearTimeout(timer);
        send({ type: 'policy-done', lifetime: e.lifetime, times: e.times, missing: e.waiting.size });
      },
    };
    const timer = setTimeout(e.done, m.timeoutMs);
    expectedPolicy = e;
    send({ type: 'armed', lifetime: m.lifetime, waiting: e.waiting.size });
    if (e.waiting.size === 0) e.done();
  } else if (m.cmd === 'stop') {
    stopping = true;
    for (const c of conns) {
      clearInterval(c.heartbeat);
      c.ws.terminate();
    }
    process.exit(0);
  }
});
// The parent is gone (killed, crashed): so are we.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
