import type { AuditEvent } from '@latchkey/protocol';
import type { Executor } from '../storage/executor.js';
import type { AuditTable } from '../storage/schema.js';

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
}

export interface AuditFilter {
  limit: number;
  beforeId?: number;
  action?: string;
  target?: string;
  /** Exact. */
  actor?: string;
  /** ISO timestamps: at >= since, at < until. */
  since?: string;
  until?: string;
}

export const auditRepo = (db: Executor) => ({
  async insert(e: AuditEntry): Promise<void> {
    await db.insertInto('audit').values({ at: e.at, actor: e.actor, action: e.action, target: e.target, details: JSON.stringify(e.details) }).execute();
  },
  /** Newest first; filters combine (each has an index of 009_console_indexes). */
  list(f: AuditFilter) {
    let q = db.selectFrom('audit').selectAll();
    if (f.beforeId !== undefined) q = q.where('id', '<', f.beforeId);
    if (f.action) q = q.where('action', '=', f.action);
    if (f.target) q = q.where('target', '=', f.target);
    if (f.actor) q = q.where('actor', '=', f.actor);
    if (f.since) q = q.where('at', '>=', f.since);
    if (f.until) q = q.where('at', '<', f.until);
    return q.orderBy('id', 'desc').limit(f.limit).execute();
  },
  /** Rows with an id above `afterId`, oldest first (the live stream's poller). */
  after: (afterId: number, limit: number) => db.selectFrom('audit').selectAll().where('id', '>', afterId).orderBy('id').limit(limit).execute(),
  /** The newest row's id (0: none). */
  async head(): Promise<number> {
    const r = await db.selectFrom('audit').select((eb) => eb.fn.max('id').as('max')).executeTakeFirst();
    return Number(r?.max ?? 0);
  },
});

export type AuditRepo = ReturnType<typeof auditRepo>;

/** An audit row as the admin API shows it. */
export const toAuditEvent = (r: Omit<AuditTable, 'id'> & { id: number }): AuditEvent => ({ id: String(r.id), at: r.at, actor: r.actor, action: r.action, target: r.target, details: JSON.parse(r.details) as Record<string, unknown> });
