/** People from the identity providers (`users`), and what hangs off them. */
import type { Executor } from '../storage/executor.js';
import type { UsersTable } from '../storage/schema.js';

export type UsersRepo = ReturnType<typeof usersRepo>;

/** Devices that count against a person's limit and are revoked when they leave: not revoked, not denied. */
const LIVE: readonly ('pending' | 'active')[] = ['pending', 'active'];

export const usersRepo = (db: Executor) => ({
  findById: (id: string) => db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst(),
  findBySubject: (issuer: string, subject: string) => db.selectFrom('users').selectAll().where('issuer', '=', issuer).where('subject', '=', subject).executeTakeFirst(),
  /** Inserts the person unless a concurrent first sign-in of theirs did already; either way the row exists after. */
  insertIfAbsent: (u: UsersTable) => db.insertInto('users').values(u).onConflict((oc) => oc.columns(['issuer', 'subject']).doNothing()).execute(),
  /** After a sign-in: what the IdP says now. A refresh token is replaced only when the IdP gave a new one. */
  async signedIn(id: string, p: { email: string; groups: string[]; refreshToken: string | undefined; at: string }): Promise<void> {
    await db
      .updateTable('users')
      .set({ email: p.email, groups: JSON.stringify(p.groups), status: 'active', last_sign_in_at: p.at, ...(p.refreshToken ? { idp_refresh_token: p.refreshToken } : {}) })
      .where('id', '=', id)
      .execute();
  },
  /**
   * Claims the person for one IdP check: true for exactly one caller (replica) at
   * a time, and only if nobody checked them since `notSince`. The IdP's refresh
   * tokens are one-use at most providers: two replicas refreshing the same one
   * would make the IdP revoke the grant and look like a disabled person.
   */
  async claimForSync(id: string, now: string, notSince: string): Promise<boolean> {
    const r = await db
      .updateTable('users')
      .set({ last_synced_at: now })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_synced_at', 'is', null), eb('last_synced_at', '<', notSince)]))
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async synced(id: string, p: { email: string; groups: string[]; status: UsersTable['status']; refreshToken: string | null | undefined }): Promise<void> {
    await db
      .updateTable('users')
      .set({ email: p.email, groups: JSON.stringify(p.groups), status: p.status, ...(p.refreshToken !== undefined ? { idp_refresh_token: p.refreshToken } : {}) })
      .where('id', '=', id)
      .execute();
  },
  /** Active people who hold live devices: the ones a sync asks the IdP about. */
  withLiveDevices: (limit: number, afterId: string) =>
    db
      .selectFrom('users as u')
      .select(['u.id', 'u.issuer', 'u.email'])
      .where('u.status', '=', 'active')
      .where('u.id', '>', afterId)
      .where((eb) => eb.exists(eb.selectFrom('devices as d').select('d.id').whereRef('d.user_id', '=', 'u.id').where('d.status', 'in', LIVE)))
      .orderBy('u.id')
      .limit(limit)
      .execute(),
  liveDeviceIds: async (userId: string): Promise<string[]> =>
    (await db.selectFrom('devices').select('id').where('user_id', '=', userId).where('status', 'in', LIVE).execute()).map((r) => r.id),
  async liveDeviceCount(userId: string): Promise<number> {
    const r = await db.selectFrom('devices').select((eb) => eb.fn.countAll<number | string | bigint>().as('n')).where('user_id', '=', userId).where('status', 'in', LIVE).executeTakeFirstOrThrow();
    return Number(r.n);
  },
  list: (limit: number, afterId?: string) => {
    let q = db
      .selectFrom('users as u')
      .select(['u.id', 'u.issuer', 'u.email', 'u.groups', 'u.status', 'u.last_sign_in_at', 'u.last_synced_at'])
      .select((eb) => eb.selectFrom('devices as d').select((e2) => e2.fn.countAll<number | string | bigint>().as('n')).whereRef('d.user_id', '=', 'u.id').where('d.status', 'in', LIVE).as('devices'))
      .orderBy('u.id')
      .limit(limit);
    if (afterId) q = q.where('u.id', '>', afterId);
    return q.execute();
  },
});
