import { type Kysely, SqliteAdapter, type Transaction, sql } from 'kysely';
import type { Database } from './schema.js';

/** A repo works on the database or inside a caller's transaction. */
export type Executor = Kysely<Database> | Transaction<Database>;

/** One round trip to the database (readiness): throws if it does not answer. */
export async function ping(db: Executor): Promise<void> {
  await sql`select 1`.execute(db);
}

/** Whether the executor talks to SQLite (for the few queries each engine indexes its own way). */
export const isSqlite = (db: Executor): boolean => db.getExecutor().adapter instanceof SqliteAdapter;
