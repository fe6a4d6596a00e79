import type { Executor } from '../storage/executor.js';
import type { OutboxTable } from '../storage/schema.js';

export type OutboxRow = Omit<OutboxTable, 'id'> & { id: number };

export type OutboxRepo = ReturnType<typeof outboxRepo>;

export const outboxRepo = (db: Executor) => ({
  async insert(r: Omit<OutboxTable, 'id' | 'attempts'>): Promise<OutboxRow> {
    const row = await db.insertInto('outbox').values({ ...r, attempts: 0 }).returning('id').executeTakeFirstOrThrow();
    return { ...r, id: Number(row.id), attempts: 0 };
  },
  /** Rows written at or before `createdBefore`, oldest first. */
  due: (createdBefore: string, limit: number) =>
    db.selectFrom('outbox').selectAll().where('created_at', '<=', createdBefore).orderBy('id').limit(limit).execute() as Promise<OutboxRow[]>,
  /** A row of this device not yet delivered, if any. */
  pendingFor: (deviceId: string) => db.selectFrom('outbox').selectAll().where('device_id', '=', deviceId).orderBy('id').limit(1).executeTakeFirst() as Promise<OutboxRow | undefined>,
  done: (id: number) => db.deleteFrom('outbox').where('id', '=', id).execute(),
  failed: (id: number) => db.updateTable('outbox').set((eb) => ({ attempts: eb('attempts', '+', 1) })).where('id', '=', id).execute(),
});
