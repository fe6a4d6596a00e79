/**
 * The agent's end of the control channel, `wss://…/v1/agent` (DESIGN.md
 * "Protocols"): authenticated by the device certificate, it says hello
 * (version, facts), reports its status, heartbeats, and listens for the
 * server: `revoked` ends everything, `renew-now` wakes the renew loop,
 * `policy` (the group's lifetime and renewal point) goes to the renew loop.
 * Reconnects with exponential backoff and jitter after any other close, and
 * at once when asked (a renewal changed the certificate it presents). A
 * connection that stops answering heartbeats is dropped; waking from sleep
 * (the wall clock jumped past the monotonic one) or a change of the
 * machine's network addresses reconnects at once, since the old TCP
 * connection is most likely dead without either end knowing yet.
 */
import type { DeviceFacts } from '@latchkey/protocol';
import { type AgentPolicy, MAX_WS_MESSAGE_BYTES, PATHS, PROTOCOL_VERSION, WS_CLOSE_CODES, agentPolicyOf } from '@latchkey/protocol/wire';
import { networkInterfaces } from 'node:os';
import WebSocket from 'ws';
import { openKeyStore } from '../keystore/open-keystore.js';
import { tlsClientKeyOptions } from '../keystore/tls-key.js';
import { backoffMs } from '../renew/should-renew.js';
import { certOf } from '../renew/renew.js';
import { readIdentity } from '../state/identity.js';
import { AGENT_VERSION } from '../version.js';

/** After being replaced, the wait before coming back (grows with each replacement, full jitter). */
const REPLACED_BACKOFF = { baseMs: 30_000, capMs: 3_600_000 };
/** A connection that stayed up this long forgets earlier replacements. */
const REPLACED_FORGET_MS = 3_600_000;

export interface ControlChannel {
  /** Drop the connection and connect again now (the certificate changed). */
  reconnect(): void;
  stop(): Promise<void>;
  readonly connected: boolean;
}

export interface ControlChannelOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  facts: () => Promise<DeviceFacts>;
  log: (line: string) => void;
  onRevoked: (reason: string, at: string) => void;
  onRenewNow: (reason: string | undefined) => void;
  /** The device group's policy: sent after welcome and whenever an administrator changes the group. */
  onPolicy?: (p: AgentPolicy) => void;
  backoff?: { baseMs: number; capMs: number };
  /** The wait after the server replaced this connection by a newer one of the same device (default 30 s growing to 1 h). */
  replacedBackoff?: { baseMs: number; capMs: number };
  random?: () => number;
  /** How often to look for sleep and network changes. Default 5 s. */
  watchMs?: number;
  /** The machine's network addresses, to notice a change (default os.networkInterfaces). */
  addresses?: () => string;
  /** Wall and monotonic clocks in ms (default Date.now and performance.now), to notice a sleep. */
  clock?: { wall: () => number; mono: () => number };
}

/** The non-internal addresses of this machine, as one comparable string. */
export function addressFingerprint(ifaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): string {
  return Object.entries(ifaces)
    .flatMap(([name, list]) => (list ?? []).filter((a) => !a.internal).map((a) => `${name}/${a.address}`))
    .sort()
    .join(',');
}

/** A connection is dead when nothing came back for two heartbeats and a bit. */
export function heartbeatOverdue(nowMs: number, lastHeardMs: number, everyMs: number): boolean {
  return nowMs - lastHeardMs > everyMs * 2 + 5000;
}

export function startControlChannel(o: ControlChannelOptions): ControlChannel {
  let ws: WebSocket | undefined;
  let stopped = false;
  let failures = 0;
  /**
   * Times in a row the server replaced this agent's connection by a newer one of the same device: a second
   * agent with this identity (a cloned disk, a copied state dir). Both would otherwise take turns forever.
   */
  let replaced = 0;
  let timer: NodeJS.Timeout | undefined;
  
  let isOpen = false;
  const random = o.random ?? Math.random;

  const schedule = (ms: number): void => {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(() => void connect(), ms);
  };
  const retry = (why: string, retryAfterSeconds = 0): void => {
    failures++;
    // A busy server's Retry-After is a floor (with jitter on top, so a fleet does not come back at once),
    // within the backoff's cap.
    const b = o.backoff ?? { baseMs: 1000, capMs: 60_000 };
    const wait = Math.max(backoffMs(failures, random(), b), Math.min(b.capMs, retryAfterSeconds * 1000 * (1 + random() / 2)));
    o.log(`latchkey: control channel ${why}; reconnecting in ${(wait / 1000).toFixed(1)} s`);
    schedule(wait);
  };

  // Each connect() attempt has a generation; one superseded while it awaited (a reconnect, a wake,
  // stop()) gives up instead of opening a second socket nobody would close.
  let generation = 0;
  async function connect(): Promise<void> {
    if (stopped) return;
    const gen = ++generation;
    const current = (): boolean => !stopped && gen === generation;
    const id = await readIdentity(o.stateDir).catch(() => undefined);
    if (!current()) return;
    if (!id) return retry('has no identity to present');
    let key;
    const store = await openKeyStore(id.keystore, { stateDir: o.stateDir, env: o.env }).catch((e: Error) => e);
    if (store instanceof Error) return void (current() && retry(`cannot open the keystore (${store.message})`));
    try {
      const k = await store.load(id.key);
      if (!k) return void (current() && retry('cannot find the device key'));
      key = await k.tlsKey();
    } catch (e) {
      return void (current() && retry(`cannot use the device key (${(e as Error).message})`));
    } finally {
      // The pkcs11 store keeps its module (and the engine's session) for the process.
      await store.close().catch(() => undefined);
    }
    if (!current()) return;
    const url = new URL(PATHS.agentChannel, id.server);
    url.protocol = 'wss:';
    const sock = new WebSocket(url, {
      ca: id.rootPem,
      cert: id.certPem + id.chainPem,
      ...tlsClientKeyOptions(key),
      handshakeTimeout: 15_000,
      maxPayload: MAX_WS_MESSAGE_BYTES,
      perMessageDeflate: false,
    } as WebSocket.ClientOptions);
    ws = sock;
    let seq = 0;
    // This connection's own heartbeat timer (a reconnect may overlap the old socket's closing).
    let heartbeat: NodeJS.Timeout | undefined;
    let welcomedAt: number | undefined;
    sock.on('open', () => {
      isOpen = true;
      void (async () => {
        sock.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, facts: await o.facts() }));
        const cert = certOf(id);
        sock.send(JSON.stringify({ type: 'status', serial: cert.serialHex, notAfter: cert.notAfter.toISOString(), keystore: id.keystore.kind }));
      })().catch(() => sock.terminate());
    });
    // Anything from the server (acks included) shows the connection is alive.
    let lastHeard = performance.now();
    const beat = (seconds: unknown): void => {
      const every = Math.min(3600, Math.max(1, Number(seconds) || 30)) * 1000;
      clearInterval(heartbeat);
      heartbeat = setInterval(() => {
        if (sock.readyState !== sock.OPEN) return;
        if (heartbeatOverdue(performance.now(), lastHeard, every)) {
          o.log(`latchkey: the control channel got no answer for ${Math.round((performance.now() - lastHeard) / 1000)} s; reconnecting`);
          sock.terminate();
          return;
        }
        sock.send(JSON.stringify({ type: 'heartbeat', seq: seq++ }));
      }, every);
    };
    sock.on('message', (data) => {
      lastHeard = performance.now();
      let m: { type?: string; heartbeatSeconds?: number; reason?: string; revokedAt?: string; certLifetimeSeconds?: number; renewFraction?: number };
      try {
        m = JSON.parse(data.toString()) as typeof m;
      } catch {
        return;
      }
      if (m.type === 'welcome') {
        failures = 0;
        welcomedAt = performance.now();
        o.log(`latchkey: control channel connected to ${url.host}`);
        beat(m.heartbeatSeconds);
      } else if (m.type === 'policy') {
        // Checked here too: a policy that makes no sense is ignored, never half-applied.
        const p = agentPolicyOf(m);
        if (!p) return;
        beat(p.heartbeatSeconds);
        o.onPolicy?.(p);
      } else if (m.type === 'revoked') {
        stopped = true;
        o.onRevoked(String(m.reason ?? 'unspecified'), String(m.revokedAt ?? new Date().toISOString()));
      } else if (m.type === 'renew-now') {
        o.onRenewNow(m.reason);
      }
    });
    let refused = false;
    sock.on('unexpected-response', (_req, res) => {
      // The upgrade was answered with an HTTP error: read why, then drop the socket (one retry, from here).
      refused = true;
      let body = '';
      res.on('data', (d: Buffer) => {
        if (body.length < MAX_WS_MESSAGE_BYTES) body += d.toString();
      });
      res.on('error', () => undefined);
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(cutoff);
        sock.terminate();
        let code: string;
        try {
          code = String((JSON.parse(body) as { error?: { code?: string } }).error?.code ?? '');
        } catch {
          code = '';
        }
        if (code === 'DEVICE_REVOKED') {
          stopped = true;
          o.onRevoked('unspecified', new Date().toISOString());
        } else retry(`was refused (${res.statusCode}${code ? ` ${code}` : ''})`, Math.min(3600, Number(res.headers['retry-after']) || 0));
      };
      const cutoff = setTimeout(finish, 10_000);
      res.on('end', finish);
      res.on('close', finish);
    });
    sock.on('error', () => undefined);
    sock.on('close', (code) => {
      clearInterval(heartbeat);
      if (ws === sock) isOpen = false;
      if (ws !== sock || refused) return;
      if (welcomedAt !== undefined && performance.now() - welcomedAt >= REPLACED_FORGET_MS) replaced = 0;
      if (code === WS_CLOSE_CODES.revoked) {
        if (!stopped) {
          stopped = true;
          o.onRevoked('unspecified', new Date().toISOString());
        }
        return;
      }
      if (code === WS_CLOSE_CODES.unsupportedVersion) {
        o.log('latchkey: the server does not speak this agent\'s protocol version; update the agent');
        stopped = true;
        return;
      }
      if (code === WS_CLOSE_CODES.replaced && !stopped) {
        replaced++;
        const wait = backoffMs(replaced, random(), o.replacedBackoff ?? REPLACED_BACKOFF);
        o.log(`latchkey: the server closed the control channel: another connection with this device's identity replaced it (a second agent running with the same identity?); reconnecting in ${(wait / 1000).toFixed(1)} s`);
        schedule(wait);
        return;
      }
      if (!stopped) retry(`closed (${code})`);
    });
  }

  // Sleep and network changes: the TCP connection is most likely dead; do not wait for heartbeats to say so.
  const watchMs = o.watchMs ?? 5000;
  const addresses = o.addresses ?? (() => addressFingerprint());
  const clock = o.clock ?? { wall: () => Date.now(), mono: () => performance.now() };
  let wall = clock.wall();
  let mono = clock.mono();
  let nets = addresses();
  const watch = setInterval(() => {
    const drift = clock.wall() - wall - (clock.mono() - mono);
    wall = clock.wall();
    mono = clock.mono();
    const nowNets = addresses();
    const changed = nowNets !== nets;
    nets = nowNets;
    if (stopped) return;
    if (Math.abs(drift) > 5000 || changed) {
      o.log(`latchkey: ${changed ? 'the network changed' : `woke up (the clock jumped ${Math.round(drift / 1000)} s)`}; reconnecting the control channel`);
      // The old connection cannot be trusted to close politely.
      const old = ws;
      ws = undefined;
      isOpen = false;
      old?.terminate();
      failures = 0;
      schedule(0);
    }
  }, watchMs);
  watch.unref();

  void connect();
  const api: ControlChannel = {
    reconnect() {
      const old = ws;
      ws = undefined;
      isOpen = false;
      old?.close(1000, 'reconnecting with a renewed certificate');
      failures = 0;
      schedule(0);
    },
    async stop() {
      stopped = true;
      clearInterval(watch);
      clearTimeout(timer);
      
      ws?.close(1001, 'agent stopping');
    },
    get connected() {
      return isOpen;
    },
  };
  return api;
}
