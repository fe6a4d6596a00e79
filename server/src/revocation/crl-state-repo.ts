/** crl_state: the current CRL of each CA and its number, monotonic across restarts and replicas. */
import type { Executor } from '../storage/executor.js';
import type { CrlStateTable } from '../storage/schema.js';

type CaName = CrlStateTable['ca'];

export type CrlStateRepo = ReturnType<typeof crlStateRepo>;

export const crlStateRepo = (db: Executor) => ({
  get: (ca: CaName) => db.selectFrom('crl_state').selectAll().where('ca', '=', ca).executeTakeFirst(),
  /** The row, locked until the transaction ends where the engine has row locks (PostgreSQL; SQLite has one writer anyway). */
  getLocked(ca: CaName, rowLocks: boolean) {
    const q = db.selectFrom('crl_state').selectAll().where('ca', '=', ca);
    return rowLocks ? q.forUpdate().executeTakeFirst() : q.executeTakeFirst();
  },
  async save(row: CrlStateTable): Promise<void> {
    await db.insertInto('crl_state').values(row).onConflict((oc) => oc.column('ca').doUpdateSet({ ...row })).execute();
  },
});
