/**
 * admin_tokens: the bootstrap token of `init`, API tokens an admin made, and
 * people's sessions (kind `session`, with a one-use refresh token). Secrets
 * are stored as SHA-256 only. Rows come with their person's email (users).
 */
import { sql } from 'kysely';
import type { Executor } from '../storage/executor.js';
import type { AdminTokensTable } from '../storage/schema.js';

export type AdminTokenRow = Required<AdminTokensTable> & {
  user_email: string | null;
  /** A console session's parent token (signed in with it): its revocation and end. */
  parent_revoked_at: string | null;
  parent_expires_at: string | null;
};
export type AdminTokenKind = AdminTokenRow['kind'];

/** Any fixed number: the key of the PostgreSQL advisory lock that serializes changes of admin credentials. */
const CHANGES_LOCK = 7318012;

const withUser = (db: Executor) =>
  db
    .selectFrom('admin_tokens')
    .leftJoin('users', 'users.id', 'admin_tokens.user_id')
    .leftJoin('admin_tokens as parent', 'parent.id', 'admin_tokens.parent_id')
    .select([
      'admin_tokens.id',
      'admin_tokens.secret_hash',
      'admin_tokens.name',
      'admin_tokens.role',
      'admin_tokens.kind',
      'admin_tokens.user_id',
      'admin_tokens.created_at',
      'admin_tokens.created_by',
      'admin_tokens.expires_at',
      'admin_tokens.last_used_at',
      'admin_tokens.revoked_at',
      'admin_tokens.refresh_hash',
      'admin_tokens.refresh_expires_at',
      'admin_tokens.parent_id',
      'users.email as user_email',
      'parent.revoked_at as parent_revoked_at',
      'parent.expires_at as parent_expires_at',
    ]);

const rows = (r: unknown): AdminTokenRow[] => r as AdminTokenRow[];
const row = (r: unknown): AdminTokenRow | undefined => r as AdminTokenRow | undefined;

export type AdminTokensRepo = ReturnType<typeof adminTokensRepo>;

export const adminTokensRepo = (db: Executor) => ({
  insert: (t: AdminTokensTable) => db.insertInto('admin_tokens').values(t).execute(),
  /** The credential behind a bearer secret's hash, revoked or not (the caller tells them apart). */
  findByHash: async (hash: string) => row(await withUser(db).where('admin_tokens.secret_hash', '=', hash).executeTakeFirst()),
  /** The session a refresh token's hash belongs to, revoked or not (a revoked one that still has it was rotated: a replay). */
  findByRefreshHash: async (hash: string) => row(await withUser(db).where('admin_tokens.refresh_hash', '=', hash).where('admin_tokens.kind', '=', 'session').executeTakeFirst()),
  findById: async (id: string) => row(await withUser(db).where('admin_tokens.id', '=', id).executeTakeFirst()),
  /** Bootstrap and API tokens (revoked ones too), and with `sessions` the live sessions; newest first. */
  async list(o: { sessions: boolean; now: string; limit: number }): Promise<AdminTokenRow[]> {
    const r = await withUser(db)
      .where((eb) =>
        o.sessions
          ? eb.or([eb('admin_tokens.kind', '!=', 'session'), eb.and([eb('admin_tokens.revoked_at', 'is', null), eb('admin_tokens.refresh_expires_at', '>', o.now)])])
          : eb('admin_tokens.kind', '!=', 'session'),
      )
      .orderBy('admin_tokens.created_at', 'desc')
      .orderBy('admin_tokens.id')
      .limit(o.limit)
      .execute();
    return rows(r);
  },
  /** A live API token or bootstrap token of this name (not revoked, not expired). */
  liveNamed: (name: string, now: string) =>
    db
      .selectFrom('admin_tokens')
      .select('id')
      .where('name', '=', name)
      .where('kind', '!=', 'session')
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .executeTakeFirst(),
  /** Ids of live credentials with the admin role (a session counts while it can still be refreshed). */
  async liveAdminIds(now: string): Promise<string[]> {
    const r = await db
      .selectFrom('admin_tokens')
      .select('id')
      .where('role', '=', 'admin')
      .where('revoked_at', 'is', null)
      // A console session signed in with a token ends with that token: it is not a credential of its own.
      .where('parent_id', 'is', null)
      .where((eb) =>
        eb.or([
          eb.and([eb('kind', '!=', 'session'), eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])]),
          eb.and([eb('kind', '=', 'session'), eb('refresh_expires_at', '>', now)]),
        ]),
      )
      .execute();
    return r.map((x) => x.id);
  },
  /** On PostgreSQL, waits for other transactions changing admin credentials (SQLite transactions are already serial: BEGIN IMMEDIATE). */
  async lockChanges(rowLocks: boolean): Promise<void> {
    if (rowLocks) await sql`select pg_advisory_xact_lock(${CHANGES_LOCK})`.execute(db);
  },
  /** Revokes a live credential; `keepRefresh` leaves a session's refresh hash so that its reuse is recognized as a replay. */
  async revoke(id: string, at: string, keepRefresh: boolean): Promise<boolean> {
    const r = await db
      .updateTable('admin_tokens')
      .set({ revoked_at: at, ...(keepRefresh ? {} : { refresh_hash: null }) })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  /** Ends every live session of a person (refresh-token reuse); how many. */
  async revokeSessionsOf(userId: string, at: string): Promise<number> {
    const r = await db.updateTable('admin_tokens').set({ revoked_at: at, refresh_hash: null }).where('kind', '=', 'session').where('user_id', '=', userId).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows);
  },
  /**
   * The live sessions of a person, or the console sessions signed in with one admin token (whose
   * refresh end is their end), oldest first.
   */
  liveSessions: (owner: { userId: string } | { parentId: string }, now: string) =>
    db
      .selectFrom('admin_tokens')
      .select('id')
      .where('kind', '=', 'session')
      .where((eb) => ('userId' in owner ? eb('user_id', '=', owner.userId) : eb('parent_id', '=', owner.parentId)))
      .where('revoked_at', 'is', null)
      .where('refresh_expires_at', '>', now)
      .orderBy('created_at')
      .orderBy('id')
      .execute(),
  /** A person's ended session rows (kept to recognize a replay) beyond the newest `keep`. */
  endedSessionsBeyond: async (userId: string, keep: number): Promise<string[]> =>
    (
      await db
        .selectFrom('admin_tokens')
        .select('id')
        .where('kind', '=', 'session')
        .where('user_id', '=', userId)
        .where('revoked_at', 'is not', null)
        .orderBy('revoked_at', 'desc')
        .orderBy('created_at', 'desc')
        .limit(1000)
        .offset(keep)
        .execute()
    ).map((r) => r.id),
  async deleteByIds(ids: string[]): Promise<void> {
    if (ids.length) await db.deleteFrom('admin_tokens').where('id', 'in', ids).where('kind', '=', 'session').execute();
  },
  /** Deletes at most `max` sessions that can no longer be used or refreshed (past their refresh end, or ended); how many. */
  async pruneSessions(now: string, max: number): Promise<number> {
    const ids = await db
      .selectFrom('admin_tokens')
      .select('id')
      .where('kind', '=', 'session')
      .where((eb) => eb.or([eb('refresh_expires_at', '<=', now), eb.and([eb('revoked_at', 'is not', null), eb('refresh_hash', 'is', null)])]))
      .limit(max)
      .execute();
    if (ids.length === 0) return 0;
    const r = await db.deleteFrom('admin_tokens').where('id', 'in', ids.map((x) => x.id)).executeTakeFirst();
    return Number(r.numDeletedRows);
  },
  /** Records a use, unless one was recorded after `notBefore` (another request, another replica); whether it wrote. */
  async touch(id: string, at: string, notBefore: string): Promise<boolean> {
    const r = await db
      .updateTable('admin_tokens')
      .set({ last_used_at: at })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', notBefore)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  /** All rows (tests check that nothing grows). */
  count: async (): Promise<number> => Number((await db.selectFrom('admin_tokens').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
});
