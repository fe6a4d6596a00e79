/** The persisted events (revocations, CRL updates) that gateways replay from a cursor (the event's id). */
import type { Executor } from '../storage/executor.js';

export type EventsRepo = ReturnType<typeof eventsRepo>;

export const eventsRepo = (db: Executor) => ({
  async insert(e: { at: string; type: string; payload: string }): Promise<number> {
    return (await db.insertInto('events').values(e).returning('id').executeTakeFirstOrThrow()).id;
  },
  payloadOf: async (id: number): Promise<string | undefined> => (await db.selectFrom('events').select('payload').where('id', '=', id).executeTakeFirst())?.payload,
  /** The newest event's id (0: none yet). */
  async head(): Promise<number> {
    const r = await db.selectFrom('events').select((eb) => eb.fn.max('id').as('max')).executeTakeFirst();
    return Number(r?.max ?? 0);
  },
  /** The oldest event kept, if any. */
  async oldest(): Promise<number | undefined> {
    const r = await db.selectFrom('events').select((eb) => eb.fn.min('id').as('min')).executeTakeFirst();
    return r?.min === null || r?.min === undefined ? undefined : Number(r.min);
  },
  /** Deletes up to `limit` of the oldest events from before `beforeIso`; how many it deleted. */
  async pruneBefore(beforeIso: string, limit: number): Promise<number> {
    const ids = (await db.selectFrom('events').select('id').where('at', '<', beforeIso).orderBy('id').limit(limit).execute()).map((r) => r.id);
    if (ids.length > 0) await db.deleteFrom('events').where('id', 'in', ids).execute();
    return ids.length;
  },
  /** Up to `limit` events of these types after `after`, in order. */
  after: (after: number, types: readonly string[], limit: number) => db.selectFrom('events').selectAll().where('id', '>', after).where('type', 'in', types).orderBy('id').limit(limit).execute(),
});
