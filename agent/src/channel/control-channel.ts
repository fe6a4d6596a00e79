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
import { type AgentPolicy, MAX_WS_MESSAGE_BYTES, PATHS, PROTOCOL_VERSION } from '@latchkey/protocol/wire';
import { networkInterfaces } from 'node:os';
import WebSocket from 'ws';
import { openKeyStore } from '../keystore/open-keystore.js';
import { tlsClientKeyOptions } from '../keystore/tls-key.js';
import { certOf } from '../renew/renew.js';
import { readIdentity } from '../state/identity.js';
import type { Backoff } from '../util/backoff.js';
import { clockJumpWatch } from '../util/clock.js';
import { AGENT_VERSION } from '../version.js';
import {
  type ChannelNext,
  type ReconnectState,
  REFUSAL_MAX_BODY,
  REFUSAL_READ_MS,
  addressFingerprint,
  afterClose,
  afterRefusal,
  heartbeatEveryMs,
  heartbeatOverdue,
  readServerMessage,
  retryAfterFailure,
  wakeReason,
} from './channel-fns.js';

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
  backoff?: Backoff;
  /** The wait after the server replaced this connection by a newer one of the same device (default 30 s growing to 1 h). */
  replacedBackoff?: Backoff;
  random?: () => number;
  /** How often to look for sleep and network changes. Default 5 s. */
  watchMs?: number;
  /** The machine's network addresses, to notice a change (default os.networkInterfaces). */
  addresses?: () => string;
  /** Wall and monotonic clocks in ms (default Date.now and performance.now), to notice a sleep. */
  clock?: { wall: () => number; mono: () => number };
}

/** The loop: opens the socket, wires its events to the decisions of channel-fns.ts, and carries out what they say. */
export function startControlChannel(o: ControlChannelOptions): ControlChannel {
  let ws: WebSocket | undefined;
  let stopped = false;
  let state: ReconnectState = { failures: 0, replaced: 0 };
  let timer: NodeJS.Timeout | undefined;
  let isOpen = false;
  const retry = { random: o.random ?? Math.random, ...(o.backoff ? { backoff: o.backoff } : {}), ...(o.replacedBackoff ? { replacedBackoff: o.replacedBackoff } : {}) };

  const schedule = (ms: number): void => {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(() => void connect(), ms);
  };
  const revoked = (reason = 'unspecified', at = new Date().toISOString()): void => {
    if (stopped) return;
    stopped = true;
    o.onRevoked(reason, at);
  };
  const carryOut = (next: ChannelNext): void => {
    if (next.do === 'revoked') return revoked();
    o.log(next.log);
    if (next.do === 'stop') {
      stopped = true;
      return;
    }
    state = next.state;
    schedule(next.waitMs);
  };
  const failed = (why: string): void => carryOut(retryAfterFailure(state, why, 0, retry));

  // Each connect() attempt has a generation; one superseded while it awaited (a reconnect, a wake,
  // stop()) gives up instead of opening a second socket nobody would close.
  let generation = 0;
  async function connect(): Promise<void> {
    if (stopped) return;
    const gen = ++generation;
    const current = (): boolean => !stopped && gen === generation;
    const id = await readIdentity(o.stateDir).catch(() => undefined);
    if (!current()) return;
    if (!id) return failed('has no identity to present');
    let key;
    const store = await openKeyStore(id.keystore, { stateDir: o.stateDir, env: o.env }).catch((e: Error) => e);
    if (store instanceof Error) return void (current() && failed(`cannot open the keystore (${store.message})`));
    try {
      const k = await store.load(id.key);
      if (!k) return void (current() && failed('cannot find the device key'));
      key = await k.tlsKey();
    } catch (e) {
      return void (current() && failed(`cannot use the device key (${(e as Error).message})`));
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
      const every = heartbeatEveryMs(seconds);
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
      const m = readServerMessage(data.toString(), () => new Date());
      if (m?.type === 'welcome') {
        state = { ...state, failures: 0 };
        welcomedAt = performance.now();
        o.log(`latchkey: control channel connected to ${url.host}`);
        beat(m.heartbeatSeconds);
      } else if (m?.type === 'policy') {
        beat(m.policy.heartbeatSeconds);
        o.onPolicy?.(m.policy);
      } else if (m?.type === 'revoked') {
        revoked(m.reason, m.at);
      } else if (m?.type === 'renew-now') {
        o.onRenewNow(m.reason);
      }
    });
    let refused = false;
    sock.on('unexpected-response', (_req, res) => {
      // The upgrade was answered with an HTTP error: read why, then drop the socket (one retry, from here).
      refused = true;
      let body = '';
      res.on('data', (d: Buffer) => {
        if (body.length < REFUSAL_MAX_BODY) body += d.toString();
      });
      res.on('error', () => undefined);
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(cutoff);
        sock.terminate();
        if (!stopped) carryOut(afterRefusal(state, { status: res.statusCode, body, retryAfter: res.headers['retry-after'] }, retry));
      };
      const cutoff = setTimeout(finish, REFUSAL_READ_MS);
      res.on('end', finish);
      res.on('close', finish);
    });
    sock.on('error', () => undefined);
    sock.on('close', (code) => {
      clearInterval(heartbeat);
      if (ws === sock) isOpen = false;
      if (ws !== sock || refused || stopped) return;
      carryOut(afterClose(state, code, welcomedAt === undefined ? undefined : performance.now() - welcomedAt, retry));
    });
  }

  /** Drops the connection (politely or not) and connects again at once. */
  const reconnectNow = (close: (old: WebSocket) => void): void => {
    const old = ws;
    ws = undefined;
    isOpen = false;
    if (old) close(old);
    state = { ...state, failures: 0 };
    schedule(0);
  };

  // Sleep and network changes: the TCP connection is most likely dead; do not wait for heartbeats to say so.
  const addresses = o.addresses ?? (() => addressFingerprint(networkInterfaces()));
  const clock = o.clock ?? { wall: () => Date.now(), mono: () => performance.now() };
  const jump = clockJumpWatch({ now: () => new Date(clock.wall()), monotonic: clock.mono });
  let nets = addresses();
  const watch = setInterval(() => {
    const drift = jump.jumped();
    const nowNets = addresses();
    const changed = nowNets !== nets;
    nets = nowNets;
    const why = stopped ? undefined : wakeReason(drift, changed);
    if (!why) return;
    o.log(`latchkey: ${why}; reconnecting the control channel`);
    // The old connection cannot be trusted to close politely.
    reconnectNow((old) => old.terminate());
  }, o.watchMs ?? 5000);
  watch.unref();

  void connect();
  return {
    reconnect() {
      reconnectNow((old) => old.close(1000, 'reconnecting with a renewed certificate'));
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
}
