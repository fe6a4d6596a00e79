/**
 * The agent's end of the control channel, `wss://…/v1/agent` (docs/architecture.md
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
import type { AgentHello, AgentStatus, DeviceFacts } from '@latchkey/protocol';
import { type AgentPolicy, PATHS, PROTOCOL_VERSION } from '@latchkey/protocol/wire';
import { networkInterfaces } from 'node:os';
import type WebSocket from 'ws';
import { deviceTlsOptions, loadDeviceTlsKey } from '../keystore/tls-key.js';
import { certOf } from '../renew/renew.js';
import { readIdentity } from '../state/identity.js';
import type { Backoff } from '../util/backoff.js';
import { type Clock, clockJumpWatch, systemClock } from '../util/clock.js';
import { AGENT_VERSION } from '../version.js';
import { type ChannelNext, type ReconnectState, addressFingerprint, afterClose, afterRefusal, retryAfterFailure, wakeReason } from './channel-fns.js';
import { openChannelSocket } from './channel-socket.js';

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
  /** Wall and monotonic clocks (default the system's), to notice a sleep. */
  clock?: Pick<Clock, 'now' | 'monotonic'>;
}

/** The loop: opens a connection (channel-socket.ts), hands what happens to the decisions of channel-fns.ts, and carries out what they say. */
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
    const key = await loadDeviceTlsKey(id, { stateDir: o.stateDir, env: o.env }).catch((e: Error) => e);
    if (!current()) return;
    if (key instanceof Error) return failed(`cannot use the device key (${key.message})`);
    const url = new URL(PATHS.agentChannel, id.server);
    url.protocol = 'wss:';
    const greeting = async () => {
      const cert = certOf(id);
      return [
        { type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, facts: await o.facts() } satisfies AgentHello,
        { type: 'status', serial: cert.serialHex, notAfter: cert.notAfter.toISOString(), keystore: id.keystore.kind } satisfies AgentStatus,
      ];
    };
    const sock: WebSocket = openChannelSocket({ url, tls: { ca: id.rootPem, ...deviceTlsOptions(id, key) }, greeting }, {
      log: o.log,
      onOpen: () => (isOpen = true),
      onWelcome() {
        state = { ...state, failures: 0 };
        o.log(`latchkey: control channel connected to ${url.host}`);
      },
      onMessage(m) {
        if (m.type === 'policy') o.onPolicy?.(m.policy);
        else if (m.type === 'revoked') revoked(m.reason, m.at);
        else o.onRenewNow(m.reason);
      },
      onRefused(r) {
        if (!stopped) carryOut(afterRefusal(state, r, retry));
      },
      onClose(code, upForMs) {
        if (ws === sock) isOpen = false;
        if (ws !== sock || stopped) return;
        carryOut(afterClose(state, code, upForMs, retry));
      },
    });
    ws = sock;
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
  const jump = clockJumpWatch(o.clock ?? systemClock);
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
