/**
 * The agent's one retry formula, for the renew loop, the control channel and
 * the channel child: exponential backoff with full jitter, and never sooner
 * than the server's Retry-After (with jitter on top, so a fleet told the same
 * time does not come back at once).
 */

export interface Backoff {
  baseMs: number;
  capMs: number;
}

/** The renew loop's default: 1 s doubling to 5 min. */
export const DEFAULT_BACKOFF: Backoff = Object.freeze({ baseMs: 1000, capMs: 300_000 });

/** Exponential backoff with full jitter: attempt 1 → up to base, doubling, capped; never below base / 2. */
export function backoffMs(attempt: number, random: number, o: Backoff = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(o.capMs, o.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.max(o.baseMs / 2, Math.floor(ceiling * random));
}

/**
 * The wait before the next attempt after `attempt` failures in a row: the
 * backoff, or the server's Retry-After plus up to 50 % if that is longer.
 * `retryAfter.capMs` bounds what a Retry-After can impose (default: none).
 */
export function retryDelayMs(attempt: number, random: () => number, b: Backoff, retryAfter: { seconds: number; capMs?: number } = { seconds: 0 }): number {
  const backoff = backoffMs(attempt, random(), b);
  if (!(retryAfter.seconds > 0)) return backoff;
  const floor = Math.min(retryAfter.capMs ?? Infinity, retryAfter.seconds * 1000 * (1 + random() / 2));
  return Math.max(backoff, floor);
}
