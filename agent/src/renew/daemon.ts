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
import { backoffMs, outlivesPolicy, renewPolicyOf, shouldRenew } from './should-renew.js';
import { type RenewContext, certOf, receivedAt, renewOnce } from './renew.js';
import { recordRefusedRenewal, refusalMessage } from './revoked.js';

export interface Clock {
  now(): Date;
  /** Monotonic milliseconds (performance.now()); does not jump with the wall clock. */
  monotonic(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  monotonic: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

export interface DaemonOptions extends Omit<RenewContext, 'now'> {
  clock: Clock;
  log: (line: string) => void;
  /** Longest single sleep; bounds how late a clock jump is noticed. Default 30 s. */
  sliceMs?: number;
  backoff?: { baseMs: number; capMs: number };
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

export type Kick =
  | { type: 'renew-now'; reason?: string }
  | { type: 'revoked'; reason: string; at: string }
  | { type: 'policy'; certLifetimeSeconds: number; renewFraction: number; heartbeatSeconds: number };

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

/** Runs until stopped (exit 0) or the device must be enrolled again (exit 3). */
export async function runDaemon(o: DaemonOptions): Promise<number> {
  const slice = o.sliceMs ?? 30_000;
  const random = o.random ?? Math.random;
  let stop = false;
  void o.stopped?.then(() => {
    stop = true;
  });
  let failures = 0;
  let retryAt = 0;
  let force = false;
  let revoked: Extract<Kick, { type: 'revoked' }> | undefined;
  const ctx: RenewContext = { ...o, now: () => o.clock.now() };
  o.log(`latchkey: watching ${o.stateDir}`);
  const st = await readStatusFile(o.stateDir);
  // The server's last policy holds until it sends another (also across restarts).
  let policy = o.policy ?? renewPolicyOf(st?.policy);
  const forcedFor = new Set<string>();
  if (st && st.state !== 'active') {
    o.log(`latchkey: this device is ${st.state === 'revoked' ? 'revoked' : 'no longer renewable'} (${st.lastError?.message ?? 'see latchkey status'}); enroll it again with a new token`);
    return EXIT_REENROLL;
  }
  const revokedNow = async (k: Extract<Kick, { type: 'revoked' }>): Promise<number> => {
    await o.onRevoked?.(k.reason, k.at);
    o.log(`latchkey: THIS DEVICE HAS BEEN REVOKED (${k.reason}, ${k.at}); its key and certificate are deleted. Enroll it again with a new token: \`latchkey enroll --server URL --token T\``);
    return EXIT_REENROLL;
  };
  while (!stop) {
    if (revoked) return revokedNow(revoked);
    const id = await readIdentity(o.stateDir);
    if (!id) throw new AgentError('NOT_ENROLLED', `this device is not enrolled (no identity in ${o.stateDir}); run \`latchkey enroll --server URL --token T\``);
    const cert = certOf(id);
    const now = o.clock.now();
    const d = shouldRenew(now, { serialHex: cert.serialHex, notBefore: cert.notBefore, notAfter: cert.notAfter, receivedAt: receivedAt(id) }, policy);
    await updateStatusFile(o.stateDir, { lastCheckAt: now.toISOString(), nextRenewalAt: d.renewAt.toISOString() }).catch(() => undefined);
    let wakeAt = d.renewAt.getTime();
    if ((d.action !== 'wait' || force) && now.getTime() >= retryAt) {
      try {
        const r = await (o.renew ?? ((c, f) => renewOnce(c, { force: f })))(ctx, force);
        failures = 0;
        retryAt = 0;
        force = false;
        const now = r.renewed ? await readIdentity(o.stateDir) : undefined;
        if (r.renewed && now) {
          o.log(`latchkey: ${r.kind === 'recover' ? 'recovered the expired' : 'renewed the'} certificate: serial ${r.previousSerial} → ${certOf(now).serialHex}, valid until ${certOf(now).notAfter.toISOString()}`);
          o.onRenewed?.();
        }
        continue;
      } catch (e) {
        const err = e instanceof AgentError ? e : new AgentError('SERVER_ERROR', (e as Error).message, {}, { cause: e });
        const at = o.clock.now().toISOString();
        const refused = await recordRefusedRenewal(o.stateDir, err, at, o.onRevoked);
        if (refused) {
          o.log(`latchkey: ${refusalMessage(refused, err)}`);
          return EXIT_REENROLL;
        }
        failures++;
        const wait = Math.max(err.details.retryAfterSeconds ? err.details.retryAfterSeconds * 1000 : 0, backoffMs(failures, random(), o.backoff));
        retryAt = o.clock.now().getTime() + wait;
        await updateStatusFile(o.stateDir, { lastError: { at, code: err.code, message: err.message } }).catch(() => undefined);
        o.log(`latchkey: renewal failed (attempt ${failures}): ${err.message}; retrying in ${Math.round(wait / 1000)} s`);
      }
    }
    if (retryAt > now.getTime()) wakeAt = retryAt;
    // Sleep towards wakeAt in slices; a wall-clock jump or a kick ends the sleep early.
    let kicked = false;
    while (!stop && !kicked) {
      const left = wakeAt - o.clock.now().getTime();
      if (left <= 0) break;
      const step = Math.min(left, slice);
      const wall0 = o.clock.now().getTime();
      const mono0 = o.clock.monotonic();
      await Promise.race([o.clock.sleep(step), o.stopped ?? new Promise<void>(() => undefined), o.kicks?.ready() ?? new Promise<void>(() => undefined)]);
      const kick = o.kicks?.take();
      if (kick?.type === 'revoked') {
        revoked = kick;
        kicked = true;
      } else if (kick?.type === 'policy') {
        const { type: _, ...p } = kick;
        policy = renewPolicyOf(p);
        await updateStatusFile(o.stateDir, { policy: { ...p, receivedAt: o.clock.now().toISOString() } }).catch(() => undefined);
        // Once per certificate and lifetime: if the server keeps issuing longer ones (its maximum), do not loop.
        const key = `${cert.serialHex}/${p.certLifetimeSeconds}`;
        if (outlivesPolicy(cert, p.certLifetimeSeconds) && !forcedFor.has(key)) {
          forcedFor.add(key);
          o.log(`latchkey: the group's certificates now live ${p.certLifetimeSeconds} s and this one has longer left; renewing now`);
          force = true;
          retryAt = 0;
        }
        kicked = true;
      } else if (kick?.type === 'renew-now') {
        o.log(`latchkey: the server asks for a renewal now${kick.reason ? ` (${kick.reason})` : ''}`);
        force = true;
        retryAt = 0;
        kicked = true;
      }
      const drift = o.clock.now().getTime() - wall0 - (o.clock.monotonic() - mono0);
      if (Math.abs(drift) > 5_000) {
        o.log(`latchkey: the clock jumped ${Math.round(drift / 1000)} s (sleep or a time change); checking now`);
        retryAt = Math.min(retryAt, o.clock.now().getTime());
        break;
      }
    }
  }
  return 0;
}
