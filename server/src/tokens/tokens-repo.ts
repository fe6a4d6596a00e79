import type { Executor } from '../storage/executor.js';
import type { EnrollTokensTable } from '../storage/schema.js';

export type TokensRepo = ReturnType<typeof tokensRepo>;

/**
 * A token, its group's policy, its person, and a device of this token (with
 * `pendingKey`: the one waiting with that key, if any): what an enrollment
 * decides on.
 */
const enrollmentRow = (db: Executor, pendingKey?: string) =>
  db
    .selectFrom('enroll_tokens as t')
    .innerJoin('groups as g', 'g.name', 't.group_name')
    .leftJoin('devices as d', (j) => (pendingKey === undefined ? j.onRef('d.token_id', '=', 't.id') : j.onRef('d.token_id', '=', 't.id').on('d.pending_spki_hash', '=', pendingKey)))
    .leftJoin('users as u', 'u.id', 't.user_id')
    .select([
      't.id',
      't.uses',
      't.used_count',
      't.expires_at',
      't.revoked_at',
      'g.name as group_name',
      'g.cert_lifetime_seconds',
      'g.require_approval',
      'g.attestation',
      'g.require_registered_ek',
      'd.id as device_id',
      'd.pending_attestation as device_pending_attestation',
      'd.status as device_status',
      'd.name as device_name',
      'd.approved_by as device_approved_by',
      'u.id as user_id',
      'u.email as user_email',
      'u.status as user_status',
    ]);

export const tokensRepo = (db: Executor) => ({
  insert: (t: EnrollTokensTable) => db.insertInto('enroll_tokens').values(t).execute(),
  /**
   * Everything an enrollment needs in one round trip: the token, its group's
   * policy, and a device this token already created for this key (pending
   * approval, or approved since).
   */
  findForEnrollment: (hash: string, spkiHash: string) =>
    enrollmentRow(db, spkiHash)
      .where('t.secret_hash', '=', hash)
      .executeTakeFirst(),
  /**
   * The request this key already made with another token and that is still
   * open (pending, or approved and not collected) or refused, in the same
   * shape as findForEnrollment, for that token: a device whose token file was
   * replaced while it waited continues its request (the CSR's signature
   * proves the key; est-enroll.ts). A revoked token's request is not
   * continued.
   */
  waitingWithKey: (spkiHash: string) =>
    enrollmentRow(db)
      .where('d.pending_spki_hash', '=', spkiHash)
      .where('d.status', 'in', ['pending', 'active', 'denied'])
      .where('t.revoked_at', 'is', null)
      .orderBy('d.first_seen', 'desc')
      .limit(1)
      .executeTakeFirst(),
  /**
   * The certificate this token's enrollment already issued for this key (the
   * same request again, after its answer was lost), newest first.
   */
  enrolledWithKey: (tokenId: string, spkiHash: string) =>
    db
      .selectFrom('certificates as c')
      .innerJoin('devices as d', 'd.id', 'c.device_id')
      .select(['c.serial', 'c.pem', 'c.not_before', 'c.not_after', 'c.revoked_at', 'd.id as device_id', 'd.status as device_status'])
      .where('d.token_id', '=', tokenId)
      .where('c.spki_hash', '=', spkiHash)
      .where('c.kind', '=', 'enroll')
      .orderBy('c.issued_at', 'desc')
      .limit(1)
      .executeTakeFirst(),
  /** Whether another device of this token already holds this key: pending with it, or certified for it. */
  async otherDeviceHoldsKey(tokenId: string, spkiHash: string, exceptDeviceId: string): Promise<boolean> {
    const r = await db
      .selectFrom('devices as d')
      .select('d.id')
      .where('d.token_id', '=', tokenId)
      .where('d.id', '!=', exceptDeviceId)
      .where((eb) =>
        eb.or([
          eb('d.pending_spki_hash', '=', spkiHash),
          eb.exists(eb.selectFrom('certificates as c').select('c.serial').whereRef('c.device_id', '=', 'd.id').where('c.spki_hash', '=', spkiHash)),
        ]),
      )
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
  },
  findById: (id: string) => db.selectFrom('enroll_tokens').selectAll().where('id', '=', id).executeTakeFirst(),
  list: (limit: number) => db.selectFrom('enroll_tokens').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).execute(),
  async revoke(id: string, at: string): Promise<boolean> {
    const r = await db.updateTable('enroll_tokens').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  /**
   * Takes one use of the token, atomically: the conditional UPDATE is the
   * only writer of used_count, so concurrent enrollments can never exceed
   * `uses` on either engine.
   */
  async consume(id: string, now: string): Promise<boolean> {
    const r = await db
      .updateTable('enroll_tokens')
      .set((eb) => ({ used_count: eb('used_count', '+', 1) }))
      .where('id', '=', id)
      .where((eb) => eb('used_count', '<', eb.ref('uses')))
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  },
});
