/**
 * What the control channel (control-channel.ts) does next: pure decisions
 * over what the server said, how a connection ended and what the machine
 * did (slept, changed network). The channel's loop opens sockets and timers
 * and carries these out; channel-fns.test.ts drives them with plain values.
 */
import type { ErrorCode } from '@latchkey/protocol';
import { type AgentPolicy, MAX_WS_MESSAGE_BYTES, POLICY_LIMITS, WS_CLOSE_CODES, agentPolicyOf } from '@latchkey/protocol/wire';
import type { networkInterfaces } from 'node:os';
import { type Backoff, backoffMs, retryDelayMs } from '../util/backoff.js';

/** Reconnect backoff by default: 1 s doubling to 1 min. */
export const CHANNEL_BACKOFF: Backoff = Object.freeze({ baseMs: 1000, capMs: 60_000 });
/** After being replaced, the wait before coming back (grows with each replacement, full jitter). */
export const REPLACED_BACKOFF: Backoff = Object.freeze({ baseMs: 30_000, capMs: 3_600_000 });
/** A connection that stayed up this long forgets earlier replacements. */
export const REPLACED_FORGET_MS = 3_600_000;
/** An HTTP refusal of the upgrade is read for this long at most, and this much of its body. */
export const REFUSAL_READ_MS = 10_000;
export const REFUSAL_MAX_BODY = MAX_WS_MESSAGE_BYTES;

/** The non-internal addresses of this machine, as one comparable string. */
export function addressFingerprint(ifaces: ReturnType<typeof networkInterfaces>): string {
  return Object.entries(ifaces)
    .flatMap(([name, list]) => (list ?? []).filter((a) => !a.internal).map((a) => `${name}/${a.address}`))
    .sort()
    .join(',');
}

/** A connection is dead when nothing came back for two heartbeats and a bit. */
export function heartbeatOverdue(nowMs: number, lastHeardMs: number, everyMs: number): boolean {
  return nowMs - lastHeardMs > everyMs * 2 + 5000;
}

/** The heartbeat interval the server asked for, within the protocol's bounds (30 s if it made no sense). */
export function heartbeatEveryMs(seconds: unknown): number {
  const { min, max } = POLICY_LIMITS.heartbeatSeconds;
  return Math.min(max, Math.max(min, Number(seconds) || 30)) * 1000;
}

/** A server message, as the channel acts on it. */
export type ServerEvent =
  | { type: 'welcome'; heartbeatSeconds: unknown }
  | { type: 'policy'; policy: AgentPolicy }
  | { type: 'revoked'; reason: string; at: string }
  | { type: 'renew-now'; reason?: string };

/** Reads one text frame; undefined for anything not JSON, unknown, or (a policy) out of bounds: never half-applied. */
export function readServerMessage(text: string, now: () => Date): ServerEvent | undefined {
  let m: { type?: unknown; heartbeatSeconds?: unknown; reason?: unknown; revokedAt?: unknown };
  try {
    m = JSON.parse(text) as typeof m;
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  switch (m.type) {
    case 'welcome':
      return { type: 'welcome', heartbeatSeconds: m.heartbeatSeconds };
    case 'policy': {
      const policy = agentPolicyOf(m);
      return policy ? { type: 'policy', policy } : undefined;
    }
    case 'revoked':
      return { type: 'revoked', reason: String(m.reason ?? 'unspecified'), at: String(m.revokedAt ?? now().toISOString()) };
    case 'renew-now':
      return { type: 'renew-now', ...(typeof m.reason === 'string' ? { reason: m.reason } : {}) };
    default:
      return undefined;
  }
}

/** How many times in a row a connection failed, and how many times the server replaced this agent's connection. */
export interface ReconnectState {
  failures: number;
  /**
   * Times in a row the server replaced this agent's connection by a newer one of the same device: a second
   * agent with this identity (a cloned disk, a copied state dir). Both would otherwise take turns forever.
   */
  replaced: number;
}

export type ChannelNext =
  | { do: 'revoked' }
  | { do: 'stop'; log: string }
  | { do: 'reconnect'; waitMs: number; log: string; state: ReconnectState };

export interface RetryOptions {
  backoff?: Backoff;
  replacedBackoff?: Backoff;
  random: () => number;
}

/** A failed or lost connection: retry with backoff, a busy server's Retry-After as a floor within the backoff's cap. */
export function retryAfterFailure(s: ReconnectState, why: string, retryAfterSeconds: number, o: RetryOptions): Extract<ChannelNext, { do: 'reconnect' }> {
  const failures = s.failures + 1;
  const b = o.backoff ?? CHANNEL_BACKOFF;
  const waitMs = retryDelayMs(failures, o.random, b, { seconds: retryAfterSeconds, capMs: b.capMs });
  return { do: 'reconnect', waitMs, state: { ...s, failures }, log: `latchkey: control channel ${why}; reconnecting in ${(waitMs / 1000).toFixed(1)} s` };
}

/** The server closed an upgraded connection with `code`; `upForMs` is how long it had been welcomed (undefined: never). */
export function afterClose(s: ReconnectState, code: number, upForMs: number | undefined, o: RetryOptions): ChannelNext {
  const state = upForMs !== undefined && upForMs >= REPLACED_FORGET_MS ? { ...s, replaced: 0 } : s;
  if (code === WS_CLOSE_CODES.revoked) return { do: 'revoked' };
  if (code === WS_CLOSE_CODES.unsupportedVersion) return { do: 'stop', log: "latchkey: the server does not speak this agent's protocol version; update the agent" };
  if (code === WS_CLOSE_CODES.replaced) {
    const replaced = state.replaced + 1;
    const waitMs = backoffMs(replaced, o.random(), o.replacedBackoff ?? REPLACED_BACKOFF);
    return {
      do: 'reconnect',
      waitMs,
      state: { ...state, replaced },
      log: `latchkey: the server closed the control channel: another connection with this device's identity replaced it (a second agent running with the same identity?); reconnecting in ${(waitMs / 1000).toFixed(1)} s`,
    };
  }
  return retryAfterFailure(state, `closed (${code})`, 0, o);
}

/** The server refused the upgrade with an HTTP error: `DEVICE_REVOKED` ends everything, anything else is retried. */
export function afterRefusal(s: ReconnectState, r: { status: number | undefined; body: string; retryAfter: string | string[] | undefined }, o: RetryOptions): ChannelNext {
  let code: string;
  try {
    code = String((JSON.parse(r.body) as { error?: { code?: string } }).error?.code ?? '');
  } catch {
    code = '';
  }
  if (code === ('DEVICE_REVOKED' satisfies ErrorCode)) return { do: 'revoked' };
  return retryAfterFailure(s, `was refused (${r.status}${code ? ` ${code}` : ''})`, Math.min(3600, Number(r.retryAfter) || 0), o);
}

/** Why to drop the connection and reconnect at once, from one look at the clock and the network; undefined: nothing happened. */
export function wakeReason(clockJumpMs: number | undefined, networkChanged: boolean): string | undefined {
  if (networkChanged) return 'the network changed';
  if (clockJumpMs !== undefined) return `woke up (the clock jumped ${Math.round(clockJumpMs / 1000)} s)`;
  return undefined;
}
