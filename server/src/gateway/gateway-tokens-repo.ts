import type { Executor } from '../storage/executor.js';
import type { GatewayTokensTable } from '../storage/schema.js';

export type GatewayTokensRepo = ReturnType<typeof gatewayTokensRepo>;

export const gatewayTokensRepo = (db: Executor) => ({
  insert: (t: GatewayTokensTable) => db.insertInto('gateway_tokens').values(t).execute(),
  /** The token behind a secret's hash, revoked or not (the caller tells the two apart). */
  findByHash: (hash: string) => db.selectFrom('gateway_tokens').selectAll().where('secret_hash', '=', hash).executeTakeFirst(),
  findById: (id: string) => db.selectFrom('gateway_tokens').selectAll().where('id', '=', id).executeTakeFirst(),
  list: (limit: number) => db.selectFrom('gateway_tokens').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).execute(),
  /** Ids among `ids` that are revoked (or gone). */
  async revokedAmong(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const active = await db.selectFrom('gateway_tokens').select('id').where('id', 'in', ids).where('revoked_at', 'is', null).execute();
    const ok = new Set(active.map((r) => r.id));
    return new Set(ids.filter((id) => !ok.has(id)));
  },
  async revoke(id: string, at: string): Promise<boolean> {
    const r = await db.updateTable('gateway_tokens').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
});
