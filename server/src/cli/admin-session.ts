/**
 * The admin token of a stored session (`latchkey-server login`), refreshed
 * when it is due. A refresh token is one-use and the server takes a second
 * use for theft (it ends every session of the person), so read-refresh-write
 * happens under the store's lock, and whoever gets the lock first checks
 * whether another process has refreshed meanwhile: it then uses that session
 * instead of refreshing again.
 */
import type { AdminSession } from '@latchkey/protocol';
import { ApiError } from '../cli-errors.js';
import type { SessionStore, StoredSession } from './session-store.js';

/** A session is refreshed when it ends within this time (or has ended). */
export const REFRESH_MARGIN_MS = 60_000;

export const refreshDue = (s: Pick<AdminSession, 'expiresAt'>, now: Date): boolean => Date.parse(s.expiresAt) - now.getTime() <= REFRESH_MARGIN_MS;

export interface SessionDeps {
  store: Pick<SessionStore, 'get' | 'put' | 'remove' | 'locked'>;
  /** The entry's key (serverOrigin). */
  origin: string;
  clock: () => Date;
  /** `POST /v1/auth/refresh`: the new session, or an ApiError. */
  refresh: (refreshToken: string) => Promise<AdminSession>;
}

const loginHint = (origin: string): string => `sign in again: latchkey-server login --server ${origin}`;
export const sessionEnded = (origin: string, why: string): ApiError => new ApiError(401, 'SESSION_EXPIRED', `your admin session at ${origin} ${why}; ${loginHint(origin)}`);

/** Errors of a refresh that no retry will fix: the stored session is dead. */
const deadSession = (e: unknown): e is ApiError => e instanceof ApiError && (e.code === 'SESSION_EXPIRED' || e.code === 'UNAUTHORIZED' || e.status === 401);

/**
 * The admin token to send: the stored one while it is not due; else a
 * refreshed one. `refused`: the server has just answered 401 to this token
 * (ended early, or our clock is behind): refresh even if it looks fresh,
 * unless another process already has. Undefined when no session is stored.
 */
export async function sessionToken(d: SessionDeps, refused?: string): Promise<string | undefined> {
  const entry = await d.store.get(d.origin);
  if (!entry) return undefined;
  if (refused === undefined && !refreshDue(entry.session, d.clock())) return entry.session.token;
  return d.store.locked(async () => {
    const cur = await d.store.get(d.origin);
    if (!cur) throw sessionEnded(d.origin, 'was signed out (by `latchkey-server logout` in another shell?)');
    const now = d.clock();
    // Another process refreshed while we waited for the lock: use its session.
    if (refused !== undefined ? cur.session.token !== refused : !refreshDue(cur.session, now)) return cur.session.token;
    if (Date.parse(cur.session.refreshExpiresAt) <= now.getTime()) {
      await d.store.remove(d.origin);
      throw sessionEnded(d.origin, `could be renewed until ${cur.session.refreshExpiresAt} and has ended`);
    }
    let next: AdminSession;
    try {
      next = await d.refresh(cur.session.refreshToken);
    } catch (e) {
      if (deadSession(e)) {
        await d.store.remove(d.origin);
        throw sessionEnded(d.origin, `has ended (${e.message})`);
      }
      if (e instanceof ApiError && e.code === 'USER_NOT_ALLOWED') {
        throw new ApiError(e.status, e.code, `the identity provider no longer lets ${cur.user.email} administer ${d.origin}: ${e.message}`);
      }
      // The IdP or the server cannot be asked now: the current session serves while it lasts.
      if (refused === undefined && Date.parse(cur.session.expiresAt) > now.getTime()) return cur.session.token;
      throw e;
    }
    const updated: StoredSession = { ...cur, session: next };
    await d.store.put(updated);
    return next.token;
  });
}
