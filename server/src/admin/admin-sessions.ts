/**
 * A person's admin sessions: a short bearer token (`lk_ses_…`) and a one-use
 * refresh token (`lk_ref_…`), both stored as SHA-256 only. Refreshing asks
 * the identity provider again (`reauthorize`, injected) and rotates: the old
 * row is revoked and a new one issued in one transaction. A refresh token
 * used a second time is a replay (RFC 6749 §10.4, OAuth 2.0 Security BCP
 * §4.14.2 refresh token rotation): the person's live sessions are all ended,
 * since we cannot tell whether the legitimate client or a thief holds the
 * newer one. Sessions per person are bounded, and rows past their refresh
 * end are pruned a few at a time when a session is issued.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { SECRET_PREFIXES, type AdminRole, type AdminSession } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { hashSecret } from '../auth/secret-hash.js';
import { LatchkeyError } from '../errors.js';
import type { Transactor, Trx } from '../storage/transaction.js';
import { adminTokensRepo, type AdminTokenRow, type AdminTokensRepo } from './admin-tokens-repo.js';

/** Asks the identity provider whether the person may still administer, and as what; throws a LatchkeyError when not. */
export type Reauthorize = (userId: string) => Promise<AdminRole>;

/** Live sessions one person may hold; signing in once more ends the oldest. */
export const MAX_SESSIONS_PER_USER = 20;
/** Rotated session rows one person may have (kept until their refresh end to recognize a replay); the oldest go first. */
export const MAX_ENDED_SESSIONS_PER_USER = 80;
/** Dead session rows deleted per issued session (a cheap, bounded prune). */
export const PRUNE_BATCH = 50;

export interface AdminSessionsDeps {
  adminTokens: Pick<AdminTokensRepo, 'findByHash' | 'findByRefreshHash'>;
  tx: Transactor;
  clock: () => Date;
  sessionSeconds: number;
  refreshSeconds: number;
  maxSessionsPerUser?: number;
  pruneBatch?: number;
}

export interface SessionSubject {
  userId: string;
  email: string;
  role: AdminRole;
  /** Who acts, for the audit log: `user:<email>`. */
  actor: string;
}

const secret = (prefix: string): string => `${prefix}${randomBytes(32).toString('base64url')}`;
const expired = (why: string): LatchkeyError => new LatchkeyError('SESSION_EXPIRED', `${why}; sign in again with \`latchkey-server login\``);

export function createAdminSessions(deps: AdminSessionsDeps) {
  const max = deps.maxSessionsPerUser ?? MAX_SESSIONS_PER_USER;

  async function issueIn(trx: Trx, s: SessionSubject, action: string, details: Record<string, unknown> = {}): Promise<AdminSession> {
    const now = deps.clock();
    const at = now.toISOString();
    const repo = adminTokensRepo(trx);
    await repo.pruneSessions(at, deps.pruneBatch ?? PRUNE_BATCH);
    const live = await repo.liveSessions({ userId: s.userId }, at);
    const evicted = live.slice(0, Math.max(0, live.length - max + 1)).map((r) => r.id);
    await repo.deleteByIds(evicted);
    // Rotated rows of a person who refreshes in a loop: the newest are enough to recognize a replay.
    await repo.deleteByIds(await repo.endedSessionsBeyond(s.userId, MAX_ENDED_SESSIONS_PER_USER));
    const token = secret(SECRET_PREFIXES.session);
    const refreshToken = secret(SECRET_PREFIXES.refresh);
    const session: AdminSession = {
      token,
      expiresAt: new Date(now.getTime() + deps.sessionSeconds * 1000).toISOString(),
      refreshToken,
      refreshExpiresAt: new Date(now.getTime() + deps.refreshSeconds * 1000).toISOString(),
      role: s.role,
    };
    const id = randomUUID();
    await repo.insert({
      id,
      secret_hash: hashSecret(token),
      name: 'session',
      role: s.role,
      kind: 'session',
      user_id: s.userId,
      created_at: at,
      created_by: s.actor,
      expires_at: session.expiresAt,
      last_used_at: null,
      revoked_at: null,
      refresh_hash: hashSecret(refreshToken),
      refresh_expires_at: session.refreshExpiresAt,
    });
    const more = evicted.length ? { endedOldest: evicted } : {};
    await auditRepo(trx).insert({ at, actor: s.actor, action, target: id, details: { user: s.email, role: s.role, expiresAt: session.expiresAt, refreshExpiresAt: session.refreshExpiresAt, ...details, ...more } });
    return session;
  }

  /** Refresh-token reuse: ends every live session of the person (audited once, when there was one to end). */
  async function replayed(row: AdminTokenRow): Promise<LatchkeyError> {
    const at = deps.clock().toISOString();
    await deps.tx.inTransaction(async (trx) => {
      const n = await adminTokensRepo(trx).revokeSessionsOf(row.user_id!, at);
      if (n > 0) await auditRepo(trx).insert({ at, actor: `user:${row.user_email ?? row.user_id}`, action: 'session.reuse', target: row.id, details: { user: row.user_email, endedSessions: n } });
    });
    await deps.tx.durable();
    return expired('this refresh token was already used, so every session of yours was ended in case it was stolen');
  }

  return {
    /** A new session for a person who just signed in (inside the caller's transaction when `trx` is given). */
    async issue(trx: Trx | undefined, s: SessionSubject): Promise<AdminSession> {
      if (trx) return issueIn(trx, s, 'session.create');
      const session = await deps.tx.inTransaction((t) => issueIn(t, s, 'session.create'));
      await deps.tx.durable();
      return session;
    },

    /** A new session for a refresh token, which is then used up; the person's role is asked for again. */
    async refresh(refreshToken: string, reauthorize: Reauthorize): Promise<AdminSession> {
      const row = await deps.adminTokens.findByRefreshHash(hashSecret(refreshToken));
      if (!row || !row.user_id || !row.user_email) throw expired('this refresh token is not known (the session was ended, or expired long ago)');
      if (row.revoked_at) throw await replayed(row);
      if (Date.parse(row.refresh_expires_at!) <= deps.clock().getTime()) throw expired(`this session could be refreshed until ${row.refresh_expires_at}`);
      const role = await reauthorize(row.user_id);
      const email = row.user_email;
      const session = await deps.tx.inTransaction(async (trx) => {
        // Only one of two concurrent refreshes of the same token gets past this.
        if (!(await adminTokensRepo(trx).revoke(row.id, deps.clock().toISOString(), true))) return undefined;
        return issueIn(trx, { userId: row.user_id!, email, role, actor: `user:${email}` }, 'session.refresh', { previous: row.id });
      });
      if (!session) throw await replayed(row);
      await deps.tx.durable();
      return session;
    },

    /**
     * A web console session for someone who signed in with an admin token
     * (bootstrap or API token; only while no IdP is configured): a session row
     * whose parent is the token, with its role, ending at the token's end at the
     * latest and with it when it is revoked. No refresh token: sign in again.
     */
    async issueForToken(parent: AdminTokenRow, seconds: number): Promise<{ token: string; expiresAt: string }> {
      const now = deps.clock();
      const at = now.toISOString();
      const end = Math.min(now.getTime() + seconds * 1000, parent.expires_at ? Date.parse(parent.expires_at) : Infinity);
      const expiresAt = new Date(end).toISOString();
      const token = secret(SECRET_PREFIXES.session);
      const actor = `admin:${parent.name}`;
      await deps.tx.inTransaction(async (trx) => {
        const repo = adminTokensRepo(trx);
        await repo.pruneSessions(at, deps.pruneBatch ?? PRUNE_BATCH);
        const live = await repo.liveSessions({ parentId: parent.id }, at);
        await repo.deleteByIds(live.slice(0, Math.max(0, live.length - max + 1)).map((r) => r.id));
        const id = randomUUID();
        await repo.insert({ id, secret_hash: hashSecret(token), name: parent.name, role: parent.role, kind: 'session', user_id: null, created_at: at, created_by: actor, expires_at: expiresAt, last_used_at: null, revoked_at: null, refresh_hash: null, refresh_expires_at: expiresAt, parent_id: parent.id });
        await auditRepo(trx).insert({ at, actor, action: 'session.create', target: id, details: { token: parent.id, role: parent.role, expiresAt, via: 'console' } });
      });
      await deps.tx.durable();
      return { token, expiresAt };
    },

    /** Ends the session of this bearer token (logout); ending an ended or unknown one does nothing. */
    async end(sessionToken: string): Promise<void> {
      const row = await deps.adminTokens.findByHash(hashSecret(sessionToken));
      if (!row || row.revoked_at) return;
      if (row.kind !== 'session') throw new LatchkeyError('BAD_REQUEST', `logout ends a person's session; "${row.name}" is an admin API token: revoke it with \`latchkey-server admin-token revoke ${row.id}\``);
      const at = deps.clock().toISOString();
      await deps.tx.inTransaction(async (trx) => {
        if (await adminTokensRepo(trx).revoke(row.id, at, false)) {
          const actor = row.user_email || row.user_id ? `user:${row.user_email ?? row.user_id}` : `admin:${row.name}`;
          await auditRepo(trx).insert({ at, actor, action: 'session.end', target: row.id, details: { user: row.user_email } });
        }
      });
      await deps.tx.durable();
    },
  };
}
export type AdminSessions = ReturnType<typeof createAdminSessions>;
