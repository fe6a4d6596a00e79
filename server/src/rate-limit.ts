/**
 * Rate limits.
 *
 * Per client address, on HTTP requests: @fastify/rate-limit, registered in
 * the zone that needs it (`registerRateLimit`), as a route option
 * (`perAddress`) or, to count only some requests (failed admin logins),
 * through `createRateLimit` with the same options. One-minute fixed windows,
 * IPv6 addresses counted per /64, answered with our RATE_LIMITED error and
 * Retry-After.
 *
 * Per device, after its certificate authenticated it (re-enrollment): the
 * token bucket below. The plugin keys a limit on the request before the
 * handler runs; the device is known only inside the EST service, after the
 * certificate was checked against the records. WebSocket message limits are
 * per connection (`limitMessageRate` in upgrade-router.ts), not per request.
 */
import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { LatchkeyError } from './errors.js';

const WINDOW_MS = 60_000;
/** Client addresses each limit remembers; the least recently seen are forgotten first. */
const MAX_KEYS = 100_000;

/** Makes `config.rateLimit` route options and `createRateLimit` available in this zone; limits nothing by itself. */
export async function registerRateLimit(app: FastifyInstance): Promise<void> {
  await app.register(rateLimit, { global: false });
}

/** At most `perMinute` requests a minute from one client address; past that, 429 RATE_LIMITED saying `what`. */
export function perAddress(perMinute: number, what: string): RateLimitOptions {
  return {
    max: perMinute,
    timeWindow: WINDOW_MS,
    cache: MAX_KEYS,
    errorResponseBuilder: (_req, ctx) => {
      const retry = Math.max(1, Math.ceil(ctx.ttl / 1000));
      return new LatchkeyError('RATE_LIMITED', `${what}; retry in a minute (in ${retry} s)`, { headers: { 'retry-after': String(retry) } });
    },
  };
}

/** A token bucket: `capacity` tokens, refilled at `perSecond`; `take` spends one if there is one. */
export interface TokenBucket {
  take(now: number): boolean;
  /** When it last took or refused a token. */
  readonly at: number;
}

export function tokenBucket(capacity: number, perSecond: number, now: number): TokenBucket {
  let tokens = capacity;
  let at = now;
  return {
    take(t) {
      tokens = Math.min(capacity, tokens + ((t - at) / 1000) * perSecond);
      at = t;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
    get at() {
      return at;
    },
  };
}

/** A token bucket per key, for limits keyed on what only the handler knows (the device of a re-enrollment). */
export interface RateLimiter {
  /** True if the request may proceed. */
  take(key: string): boolean;
}

export function createRateLimiter(perMinute: number, clock: () => number = Date.now): RateLimiter {
  const buckets = new Map<string, TokenBucket>();
  return {
    take(key) {
      const now = clock();
      let b = buckets.get(key);
      if (!b) buckets.set(key, (b = tokenBucket(perMinute, perMinute / 60, now)));
      const ok = b.take(now);
      if (buckets.size > MAX_KEYS) {
        for (const [k, v] of buckets) if (now - v.at > 60_000) buckets.delete(k);
      }
      return ok;
    },
  };
}
