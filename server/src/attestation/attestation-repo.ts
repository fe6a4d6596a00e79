/** Attestation challenges (migration 013): made by the challenge routes, used once by EST. */
import { sql } from 'kysely';
import type { Executor } from '../storage/executor.js';
import type { AttestationChallengesTable } from '../storage/schema.js';

export type AttestationRepo = ReturnType<typeof attestationRepo>;

export type ChallengeOwner = { tokenId: string } | { deviceId: string };

/** Any fixed number: the first key of the PostgreSQL advisory locks that serialize one owner's new challenges. */
const OWNER_LOCK = 7318013;

export const attestationRepo = (db: Executor) => ({
  /**
   * On PostgreSQL, waits for the owner's other transactions making a challenge,
   * so that counting its open challenges and dropping the oldest is atomic
   * (SQLite transactions are already serial).
   */
  async lockOwner(owner: ChallengeOwner, rowLocks: boolean): Promise<void> {
    if (!rowLocks) return;
    const key = 'tokenId' in owner ? `t:${owner.tokenId}` : `d:${owner.deviceId}`;
    await sql`select pg_advisory_xact_lock(${OWNER_LOCK}, hashtext(${key}))`.execute(db);
  },
  insert: (c: AttestationChallengesTable) => db.insertInto('attestation_challenges').values(c).execute(),
  findById: (id: string) => db.selectFrom('attestation_challenges').selectAll().where('id', '=', id).executeTakeFirst(),
  /** An owner's unused, unexpired challenges, oldest first. */
  open(owner: ChallengeOwner, nowIso: string) {
    let q = db.selectFrom('attestation_challenges').select(['id', 'created_at']).where('used_at', 'is', null).where('expires_at', '>', nowIso);
    q = 'tokenId' in owner ? q.where('token_id', '=', owner.tokenId) : q.where('device_id', '=', owner.deviceId);
    return q.orderBy('created_at').orderBy('id').execute();
  },
  async deleteIds(ids: string[]): Promise<void> {
    if (ids.length > 0) await db.deleteFrom('attestation_challenges').where('id', 'in', ids).execute();
  },
  /** Up to `limit` challenges expired before `beforeIso` (used or not): what pruning deletes. */
  expiredIds: async (beforeIso: string, limit: number): Promise<string[]> =>
    (await db.selectFrom('attestation_challenges').select('id').where('expires_at', '<', beforeIso).orderBy('expires_at').limit(limit).execute()).map((r) => r.id),
  /** Takes the challenge: false if it was used already (a replay, or a twin request that committed first). */
  async markUsed(id: string, atIso: string): Promise<boolean> {
    const r = await db.updateTable('attestation_challenges').set({ used_at: atIso }).where('id', '=', id).where('used_at', 'is', null).executeTakeFirst();
    return r.numUpdatedRows === 1n;
  },
});
