import type { Executor } from '../storage/executor.js';

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
}

export const auditRepo = (db: Executor) => ({
  async insert(e: AuditEntry): Promise<void> {
    await db.insertInto('audit').values({ at: e.at, actor: e.actor, action: e.action, target: e.target, details: JSON.stringify(e.details) }).execute();
  },
  list(f: { limit: number; beforeId?: number; action?: string; target?: string }) {
    let q = db.selectFrom('audit').selectAll();
    if (f.beforeId !== undefined) q = q.where('id', '<', f.beforeId);
    if (f.action) q = q.where('action', '=', f.action);
    if (f.target) q = q.where('target', '=', f.target);
    return q.orderBy('id', 'desc').limit(f.limit).execute();
  },
});

export type AuditRepo = ReturnType<typeof auditRepo>;
