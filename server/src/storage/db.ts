/**
 * One query layer (Kysely) over two engines: SQLite (better-sqlite3, WAL) in
 * the data dir by default, PostgreSQL (`pg`) with a database URL.
 */
import { closeSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, type DatabaseConnection, type Driver, Kysely, PostgresDialect, SqliteDialect, SqliteDriver } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { migrate } from './migrations.js';
import { createFullWatch, isStorageFull, storageFullError } from './storage-full.js';

export type Engine = 'sqlite' | 'postgres';

export interface Db {
  readonly engine: Engine;
  readonly kysely: Kysely<Database>;
  /** For LISTEN/NOTIFY (PostgreSQL only). */
  readonly pgPool: pg.Pool | undefined;
  /**
   * Resolves once every committed transaction is on stable storage. Callers
   * await it before telling a client that something was issued or revoked.
   */
  durable(): Promise<void>;
  close(): Promise<void>;
}

export const SQLITE_FILE = 'latchkey.db';

// int8 (COUNT, bigserial) as JS numbers: our counters stay far below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

export async function openDb(opts: { dataDir?: string; sqliteFile?: string; databaseUrl?: string; onPoolError?: (e: Error) => void; log?: (line: string) => void }): Promise<Db> {
  let db: Db;
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 20 });
    // An idle client losing its connection (server restart) is not fatal: the pool replaces it.
    pool.on('error', (e) => opts.onPoolError?.(e));
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    // PostgreSQL's COMMIT returns after the WAL flush: durable already.
    db = { engine: 'postgres', kysely, pgPool: pool, durable: async () => undefined, close: () => kysely.destroy() };
  } else {
    const file = opts.sqliteFile ?? join(opts.dataDir ?? '.', SQLITE_FILE);
    // SQLite creates the file 0644 less the umask, and its -wal and -shm with the file's mode:
    // create it 0600 first (O_EXCL: an existing file keeps its mode, which `start` checks).
    try {
      closeSync(openSync(file, 'wx', 0o600));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const sqlite = new BetterSqlite3(file);
    sqlite.pragma('journal_mode = WAL');
    // COMMIT does not fsync on the event loop; durable() fsyncs the WAL on the
    // libuv thread pool before anything is acknowledged (group commit for free:
    // concurrent requests share flushes). SQLite itself syncs around checkpoints.
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    const watch = createFullWatch(file, opts.log ?? ((l) => process.stderr.write(l + '\n')));
    const kysely = new Kysely<Database>({ dialect: new FullDiskSafeSqliteDialect(withStatementCache(sqlite), watch) });
    let wal: FileHandle | undefined;
    db = {
      engine: 'sqlite',
      kysely,
      pgPool: undefined,
      async durable() {
        // The same inode SQLite writes: fdatasync on any descriptor flushes it.
        wal ??= await open(`${file}-wal`, 'r');
        await wal.datasync();
      },
      async close() {
        await wal?.close();
        await kysely.destroy();
      },
    };
  }
  await migrate(db);
  // SQLite: open the WAL descriptor now, not at the first revocation, which may come when the
  // process is short of file descriptors (tens of thousands of agent connections).
  if (db.engine === 'sqlite') await db.durable().catch(() => undefined);
  return db;
}

/**
 * SQLite rolls a transaction back itself when a write fails with SQLITE_FULL
 * (or an I/O error); Kysely's ROLLBACK after it then fails with "cannot
 * rollback - no transaction is active", and that error replaced the real one.
 * This driver rolls back only a transaction that is still open, and turns a
 * full disk into STORAGE_FULL (503), said once in the log.
 */
class FullDiskSafeSqliteDialect extends SqliteDialect {
  constructor(
    private readonly sqlite: BetterSqlite3.Database,
    private readonly watch: { full(): void; wrote(): void },
  ) {
    super({ database: sqlite });
  }

  override createDriver(): Driver {
    const { sqlite, watch } = this;
    const translate = (e: unknown): unknown => {
      if (!isStorageFull(e)) return e;
      watch.full();
      return storageFullError(e);
    };
    const wrap = (c: DatabaseConnection): DatabaseConnection => ({
      async executeQuery(q) {
        try {
          return await c.executeQuery(q);
        } catch (e) {
          throw translate(e);
        }
      },
      streamQuery: (q, chunkSize) => c.streamQuery(q, chunkSize),
    });
    return new (class extends SqliteDriver {
      override async acquireConnection(): Promise<DatabaseConnection> {
        return wrap(await super.acquireConnection());
      }
      // IMMEDIATE: the write lock is taken at BEGIN, where busy_timeout waits for it. A deferred
      // transaction that reads, then writes after another connection committed, fails at once
      // with "database is locked" (SQLITE_BUSY_SNAPSHOT: no waiting helps); sqlite-race.ts shows it.
      override async beginTransaction(connection: DatabaseConnection): Promise<void> {
        await connection.executeQuery(CompiledQuery.raw('begin immediate'));
      }
      override async commitTransaction(connection: DatabaseConnection): Promise<void> {
        await super.commitTransaction(connection);
        watch.wrote();
      }
      override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
        if (sqlite.inTransaction) await super.rollbackTransaction(connection);
      }
    })({ database: sqlite });
  }
}

/**
 * Kysely prepares every query anew; better-sqlite3 statements are reusable,
 * and preparing was a third of the database time per enrollment. Cache them
 * by SQL text (the set of distinct queries is small and fixed).
 */
function withStatementCache(db: BetterSqlite3.Database): BetterSqlite3.Database {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'prepare') {
        return (sqlText: string) => {
          let st = cache.get(sqlText);
          if (!st) {
            st = target.prepare(sqlText);
            if (cache.size < 1000) cache.set(sqlText, st);
          }
          return st;
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Current time as stored. */
export const iso = (d: Date): string => d.toISOString();
