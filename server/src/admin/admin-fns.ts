/** Pure decisions of the admin zone (role order is the protocol's roleAtLeast): how an actor is named, when a use is recorded. */

/** How the audit log names who acted: `user:<email>` for a person's session, `admin:<name>` for an API or bootstrap token. */
export const actorName = (a: { kind: string; name: string; user: string | null }): string => (a.kind === 'session' && a.user ? `user:${a.user}` : `admin:${a.name}`);

/** A credential's last use is written at most this often (a busy automation must not turn reads into writes). */
export const LAST_USED_RESOLUTION_MS = 60_000;

/** Whether a use at `now` is worth writing, given the last one recorded. */
export function shouldRecordUse(now: Date, lastUsedAt: string | null): boolean {
  return lastUsedAt === null || now.getTime() - Date.parse(lastUsedAt) >= LAST_USED_RESOLUTION_MS;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
export const ADMIN_TOKEN_TTL = { defaultSeconds: 90 * 86400, maxSeconds: 365 * 86400, minSeconds: 60 } as const;

/** An admin token's lifetime in seconds from `ttl` (seconds, or "30d"; default 90 days); undefined when out of 1 minute .. 365 days or malformed. */
export function adminTokenTtlSeconds(ttl: number | string | undefined): number | undefined {
  if (ttl === undefined) return ADMIN_TOKEN_TTL.defaultSeconds;
  const m = typeof ttl === 'string' ? /^([1-9][0-9]{0,5})([smhd])$/.exec(ttl) : null;
  const s = typeof ttl === 'number' ? ttl : m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
  return Number.isInteger(s) && s >= ADMIN_TOKEN_TTL.minSeconds && s <= ADMIN_TOKEN_TTL.maxSeconds ? s : undefined;
}
