/**
 * The one transaction type, and the narrow handle a service gets to run one:
 * services call repositories inside `inTransaction`, never SQL, and never
 * hold the whole Db.
 */
import type { Transaction } from 'kysely';
import type { Db } from './db.js';
import type { Database } from './schema.js';

/** A transaction in progress: repositories take it as their Executor. */
export type Trx = Transaction<Database>;

export interface Transactor {
  /** fn's writes commit together, or none of them (fn throws). */
  inTransaction<T>(fn: (trx: Trx) => Promise<T>): Promise<T>;
  /** Resolves once every committed transaction is on stable storage (see Db.durable). */
  durable(): Promise<void>;
}

export const transactor = (db: Pick<Db, 'kysely' | 'durable'>): Transactor => ({
  inTransaction: (fn) => db.kysely.transaction().execute(fn),
  durable: () => db.durable(),
});
