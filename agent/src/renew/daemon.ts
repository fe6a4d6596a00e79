/**
 * `latchkey run`: keeps the identity fresh without anyone noticing.
 * Sleeps until the renewal time in short slices, so a wall-clock jump (the
 * laptop woke up: timers do not fire while asleep) is seen at once and
 * triggers an immediate check. Transient failures (server unreachable, 5xx)
 * back off exponentially with jitter; "enroll again" answers (revoked,
 * expired past the recovery window) stop the loop with exit code 3.
 */
import { AgentError, EXIT_REENROLL } from '../errors.js';
import { readIdentity, readStatusFile, updateStatusFile } from '../state/identity.js';
import type { Backoff } from '../util/backoff.js';
import { type Clock, clockJumpWatch } from '../util/clock.js';
import { type Kick, afterClockJump, afterFailure, afterRenewal, initialState, nextStep, onKick } from './daemon-fns.js';
import { renewPolicyOf, shouldRenew } from './should-renew.js';
import { type RenewContext, certOf, receivedAt, renewOnce } from './renew.js';
import { enrollAgainHint, recordRefusedRenewal, refusalMessage } from './revoked.js';

export { type Clock, systemClock } from '../util/clock.js';
export type { Kick } from './daemon-fns.js';

export interface DaemonOptions extends Omit<RenewContext, 'now'> {
  clock: Clock;
  log: (line: string) => void;
  /** Longest single sleep; bounds how late a clock jump is noticed. Default 30 s. */
  sliceMs?: number;
  backoff?: Backoff;
  random?: () => number;
  /** Resolves when the daemon should stop (SIGTERM). */
  stopped?: Promise<void>;
  /**
   * Performs one renewal; default in this process. The CLI runs pkcs11
   * renewals in a token worker instead (see token-worker/renew-in-worker.ts).
   */
  renew?: (ctx: RenewContext, force: boolean) => Promise<RenewOutcome>;
  /** Messages from the control channel (renew-now, revoked). */
  kicks?: Kicks;
  /** Called after each renewal (the control channel reconnects with the new certificate). */
  onRenewed?: () => void;
  /** Called when the server says the device is revoked: forget the identity (delete key and certificate). */
  onRevoked?: (reason: string, at: string) => Promise<void>;
}

export type RenewOutcome = { renewed: false } | { renewed: true; kind: 'renew' | 'recover'; previousSerial: string };

/** A queue of kicks: none is lost while the loop is busy renewing. */
export interface Kicks {
  fire(k: Kick): void;
  /** Resolves once a kick is queued (consumes nothing). */
  ready(): Promise<void>;
  take(): Kick | undefined;
}

export function createKicks(): Kicks {
  const queue: Kick[] = [];
  let wake: (() => void) | undefined;
  let pending: Promise<void> | undefined;
  return {
    fire(k) {
      queue.push(k);
      const w = wake;
      wake = undefined;
      pending = undefined;
      w?.();
    },
    ready() {
      if (queue.length) return Promise.resolve();
      pending ??= new Promise<void>((r) => (wake = r));
      return pending;
    },
    take: () => queue.shift(),
  };
}

/** Runs until stopped (exit 0) or the device must be enrolled again (exit 3). Each turn does what nextStep (daemon-fns.ts) says. */
export async function runDaemon(o: DaemonOptions): Promise<number> {
  const slice = o.sliceMs ?? 30_000;
  const random = o.random ?? Math.random;
  let stop = false;
  void o.stopped?.then(() => {
    stop = true;
  });
  const ctx: RenewContext = { ...o, now: () => o.clock.now() };
  o.log(`latchkey: watching ${o.stateDir}`);
  const st = await readStatusFile(o.stateDir);
  if (st && st.state !== 'active') {
    const hint = st.state === 'revoked' ? 'enroll it again with a new token' : enrollAgainHint(await readIdentity(o.stateDir).catch(() => undefined));
    o.log(`latchkey: this device is ${st.state === 'revoked' ? 'revoked' : 'no longer renewable'} (${st.lastError?.message ?? 'see latchkey status'}); ${hint}`);
    return EXIT_REENROLL;
  }
  // The server's last policy holds until it sends another (also across restarts).
  let state = initialState(o.policy ?? renewPolicyOf(st?.policy));
  const renew = o.renew ?? ((c, f) => renewOnce(c, { force: f }));
  const jump = clockJumpWatch(o.clock);

  /** Sleeps towards `untilMs` in slices; a kick, a clock jump or stop ends it early. */
  const sleepUntil = async (untilMs: number, cert: Parameters<typeof onKick>[2]): Promise<void> => {
    while (!stop) {
      const left = untilMs - o.clock.now().getTime();
      if (left <= 0) return;
      jump.reset();
      await Promise.race([o.clock.sleep(Math.min(left, slice)), o.stopped ?? new Promise<void>(() => undefined), o.kicks?.ready() ?? new Promise<void>(() => undefined)]);
      const kick = o.kicks?.take();
      const k = kick ? onKick(state, kick, cert) : undefined;
      if (k) {
        state = k.state;
        if (k.log) o.log(k.log);
        if (k.policy) await updateStatusFile(o.stateDir, { policy: { ...k.policy, receivedAt: o.clock.now().toISOString() } }).catch(() => undefined);
      }
      const drift = jump.jumped();
      if (drift !== undefined) {
        const j = afterClockJump(state, drift, o.clock.now().getTime());
        state = j.state;
        o.log(j.log);
        return;
      }
      if (k?.wake) return;
    }
  };

  while (!stop) {
    if (state.revoked) {
      await o.onRevoked?.(state.revoked.reason, state.revoked.at);
      o.log(`latchkey: THIS DEVICE HAS BEEN REVOKED (${state.revoked.reason}, ${state.revoked.at}); its key and certificate are deleted. Enroll it again with a new token: \`latchkey enroll --server URL --token T\``);
      return EXIT_REENROLL;
    }
    const id = await readIdentity(o.stateDir);
    if (!id) throw new AgentError('NOT_ENROLLED', `this device is not enrolled (no identity in ${o.stateDir}); run \`latchkey enroll --server URL --token T\``);
    const cert = certOf(id);
    const now = o.clock.now();
    const d = shouldRenew(now, { serialHex: cert.serialHex, notBefore: cert.notBefore, notAfter: cert.notAfter, receivedAt: receivedAt(id) }, state.policy);
    await updateStatusFile(o.stateDir, { lastCheckAt: now.toISOString(), nextRenewalAt: d.renewAt.toISOString() }).catch(() => undefined);
    const step = nextStep(state, d, now.getTime());
    if (step.do === 'sleep') {
      await sleepUntil(step.untilMs, cert);
      continue;
    }
    try {
      const r = await renew(ctx, step.force);
      state = afterRenewal(state);
      const renewed = r.renewed ? await readIdentity(o.stateDir) : undefined;
      if (r.renewed && renewed) {
        o.log(`latchkey: ${r.kind === 'recover' ? 'recovered the expired' : 'renewed the'} certificate: serial ${r.previousSerial} → ${certOf(renewed).serialHex}, valid until ${certOf(renewed).notAfter.toISOString()}`);
        o.onRenewed?.();
      }
    } catch (e) {
      const err = e instanceof AgentError ? e : new AgentError('SERVER_ERROR', (e as Error).message, {}, { cause: e });
      const at = o.clock.now().toISOString();
      const refused = await recordRefusedRenewal(o.stateDir, err, at, o.onRevoked);
      if (refused) {
        o.log(`latchkey: ${refusalMessage(refused, err, id)}`);
        return EXIT_REENROLL;
      }
      const f = afterFailure(state, o.clock.now().getTime(), err.details.retryAfterSeconds, random, o.backoff);
      state = f.state;
      await updateStatusFile(o.stateDir, { lastError: { at, code: err.code, message: err.message } }).catch(() => undefined);
      o.log(`latchkey: renewal failed (attempt ${state.failures}): ${err.message}; retrying in ${Math.round(f.waitMs / 1000)} s`);
    }
  }
  return 0;
}
