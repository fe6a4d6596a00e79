/** Sign-ins in progress (`auth_flows`): one row per flow, keyed by the SHA-256 of the secret the client holds. */
import type { Executor } from '../storage/executor.js';
import type { AuthFlowsTable } from '../storage/schema.js';

export type AuthFlowsRepo = ReturnType<typeof authFlowsRepo>;

export const authFlowsRepo = (db: Executor) => ({
  insert: (f: AuthFlowsTable) => db.insertInto('auth_flows').values(f).execute(),
  find: (id: string) => db.selectFrom('auth_flows').selectAll().where('id', '=', id).executeTakeFirst(),
  async countLive(now: string): Promise<number> {
    const r = await db.selectFrom('auth_flows').select((eb) => eb.fn.countAll<number | string | bigint>().as('n')).where('expires_at', '>', now).executeTakeFirstOrThrow();
    return Number(r.n);
  },
  /** Deletes up to `limit` expired flows (a cheap prune on every start). */
  async pruneExpired(now: string, limit: number): Promise<void> {
    const ids = (await db.selectFrom('auth_flows').select('id').where('expires_at', '<=', now).limit(limit).execute()).map((r) => r.id);
    if (ids.length > 0) await db.deleteFrom('auth_flows').where('id', 'in', ids).execute();
  },
  /**
   * Takes the right to poll the IdP now: true for one caller per interval, so a
   * client (or several replicas) polling in a loop reach the IdP at its pace.
   */
  async takePoll(id: string, now: string, next: string): Promise<boolean> {
    const r = await db.updateTable('auth_flows').set({ next_poll_at: next }).where('id', '=', id).where('next_poll_at', '<=', now).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async slowDown(id: string, intervalSeconds: number, next: string): Promise<void> {
    await db.updateTable('auth_flows').set({ interval_seconds: intervalSeconds, next_poll_at: next }).where('id', '=', id).execute();
  },
  /** Ends the flow: true for exactly one caller (a finished sign-in is used once). */
  async take(id: string): Promise<boolean> {
    const r = await db.deleteFrom('auth_flows').where('id', '=', id).executeTakeFirst();
    return r.numDeletedRows > 0n;
  },
});
