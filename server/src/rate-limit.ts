/** A token bucket per key (client address), for unauthenticated endpoints and failed logins. */
export interface RateLimiter {
  /** True if the request may proceed. */
  take(key: string): boolean;
}

export function createRateLimiter(perMinute: number, clock: () => number = Date.now): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const rate = perMinute / 60_000;
  return {
    take(key) {
      const now = clock();
      const b = buckets.get(key) ?? { tokens: perMinute, at: now };
      b.tokens = Math.min(perMinute, b.tokens + (now - b.at) * rate);
      b.at = now;
      const ok = b.tokens >= 1;
      if (ok) b.tokens -= 1;
      buckets.set(key, b);
      if (buckets.size > 100_000) {
        for (const [k, v] of buckets) if (now - v.at > 60_000) buckets.delete(k);
      }
      return ok;
    },
  };
}
