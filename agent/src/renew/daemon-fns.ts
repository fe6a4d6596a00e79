/**
 * What the renew loop (daemon.ts) does next: pure decisions over its state,
 * the time and what happened (model: SPIRE pkg/agent/svid/rotator.go, where
 * the loop only carries out `ShouldRotateX509`). Nothing here reads a file,
 * a clock or a socket; daemon-fns.test.ts drives it with plain values.
 */
import type { AgentPolicy } from '@latchkey/protocol/wire';
import { type Backoff, DEFAULT_BACKOFF, retryDelayMs } from '../util/backoff.js';
import { type RenewDecision, type RenewPolicy, outlivesPolicy, renewPolicyOf } from './should-renew.js';

export type Kick = { type: 'renew-now'; reason?: string } | { type: 'revoked'; reason: string; at: string } | ({ type: 'policy' } & AgentPolicy);

export interface DaemonState {
  /** Failed attempts in a row. */
  failures: number;
  /** No attempt before this time (ms since the epoch; 0: none pending). */
  retryAt: number;
  /** Renew at the next step even if not due (renew-now, a shortened policy). */
  force: boolean;
  policy: RenewPolicy;
  /** `serial/lifetime` pairs already forced once, so a server that keeps issuing longer certificates causes no loop. */
  forcedFor: ReadonlySet<string>;
  /** The server said revoked: the next step forgets the identity and stops. */
  revoked?: Extract<Kick, { type: 'revoked' }>;
}

export function initialState(policy: RenewPolicy): DaemonState {
  return { failures: 0, retryAt: 0, force: false, policy, forcedFor: new Set() };
}

export type Step = { do: 'renew'; force: boolean } | { do: 'sleep'; untilMs: number };

/** The next step, given the renewal decision for the current certificate at `nowMs` (a revoked state stops before: see runDaemon). */
export function nextStep(s: DaemonState, d: RenewDecision, nowMs: number): Step {
  if ((d.action !== 'wait' || s.force) && nowMs >= s.retryAt) return { do: 'renew', force: s.force };
  return { do: 'sleep', untilMs: s.retryAt > nowMs ? s.retryAt : d.renewAt.getTime() };
}

export function afterRenewal(s: DaemonState): DaemonState {
  return { ...s, failures: 0, retryAt: 0, force: false };
}

/** A transient failure (a refusal for good is sorted out before, by recordRefusedRenewal): back off, or wait as the server asked. */
export function afterFailure(s: DaemonState, nowMs: number, retryAfterSeconds: number | undefined, random: () => number, backoff?: Backoff): { state: DaemonState; waitMs: number } {
  const failures = s.failures + 1;
  const waitMs = retryDelayMs(failures, random, backoff ?? DEFAULT_BACKOFF, { seconds: retryAfterSeconds ?? 0 });
  return { state: { ...s, failures, retryAt: nowMs + waitMs }, waitMs };
}

export interface KickOutcome {
  state: DaemonState;
  /** End the sleep and take the next step now. */
  wake: boolean;
  log?: string;
  /** A policy to record in status.json (it holds across restarts). */
  policy?: AgentPolicy;
}

/** A message from the server while the loop sleeps. `cert` is the certificate the loop holds. */
export function onKick(s: DaemonState, k: Kick, cert: { serialHex: string; notBefore: Date; notAfter: Date }): KickOutcome {
  if (k.type === 'revoked') return { state: { ...s, revoked: k }, wake: true };
  if (k.type === 'renew-now') {
    return { state: { ...s, force: true, retryAt: 0 }, wake: true, log: `latchkey: the server asks for a renewal now${k.reason ? ` (${k.reason})` : ''}` };
  }
  const { type: _, ...p } = k;
  const next: DaemonState = { ...s, policy: renewPolicyOf(p) };
  // Once per certificate and lifetime: if the server keeps issuing longer ones (its maximum), do not loop.
  const key = `${cert.serialHex}/${p.certLifetimeSeconds}`;
  if (!outlivesPolicy(cert, p.certLifetimeSeconds) || s.forcedFor.has(key)) return { state: next, wake: true, policy: p };
  return {
    state: { ...next, force: true, retryAt: 0, forcedFor: new Set([...s.forcedFor, key]) },
    wake: true,
    policy: p,
    log: `latchkey: the group's certificates now live ${p.certLifetimeSeconds} s and this one has longer left; renewing now`,
  };
}

/** The wall clock jumped (the machine slept, or the time was set): check now, even inside a backoff. */
export function afterClockJump(s: DaemonState, driftMs: number, nowMs: number): { state: DaemonState; log: string } {
  return { state: { ...s, retryAt: Math.min(s.retryAt, nowMs) }, log: `latchkey: the clock jumped ${Math.round(driftMs / 1000)} s (sleep or a time change); checking now` };
}
