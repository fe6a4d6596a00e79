import type { Executor } from '../storage/executor.js';
import type { AdminTokensTable } from '../storage/schema.js';

export type AdminTokensRepo = ReturnType<typeof adminTokensRepo>;

export const adminTokensRepo = (db: Executor) => ({
  insert: (t: AdminTokensTable) => db.insertInto('admin_tokens').values(t).execute(),
  findByHash: (hash: string) => db.selectFrom('admin_tokens').selectAll().where('secret_hash', '=', hash).where('revoked_at', 'is', null).executeTakeFirst(),
});
