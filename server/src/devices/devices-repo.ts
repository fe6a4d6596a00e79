import type { Executor } from '../storage/executor.js';
import { containsText } from '../storage/like.js';
import type { DevicesTable } from '../storage/schema.js';

export interface DeviceFilter {
  status?: DevicesTable['status'];
  group?: string;
  /** The bound person's email, exact; devices store it lower case. */
  user?: string;
  q?: string;
  limit: number;
  /** first_seen|id of the last row of the previous page. */
  after?: { firstSeen: string; id: string };
}

export type DevicesRepo = ReturnType<typeof devicesRepo>;

export const devicesRepo = (db: Executor) => ({
  insert: (d: DevicesTable) => db.insertInto('devices').values(d).execute(),
  findById: (id: string) => db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst(),
  list(f: DeviceFilter) {
    let q = db.selectFrom('devices').selectAll();
    if (f.status) q = q.where('status', '=', f.status);
    if (f.group) q = q.where('group_name', '=', f.group);
    if (f.user) q = q.where('user_email', '=', f.user.toLowerCase());
    if (f.q) {
      const text = f.q;
      q = q.where((eb) => eb.or([containsText('name', text), containsText('id', text)]));
    }
    if (f.after) {
      const a = f.after;
      q = q.where((eb) => eb.or([eb('first_seen', '>', a.firstSeen), eb.and([eb('first_seen', '=', a.firstSeen), eb('id', '>', a.id)])]));
    }
    return q.orderBy('first_seen').orderBy('id').limit(f.limit).execute();
  },
  /** Devices per status: one grouped count (what /metrics reads at each scrape). */
  async countByStatus(): Promise<Record<string, number>> {
    const rows = await db.selectFrom('devices').select(['status', (eb) => eb.fn.countAll().as('n')]).groupBy('status').execute();
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  },
  /**
   * An approved device's enrollment completes with the key it was approved for: its pending
   * request is cleared. False if it did already, or the device changed state.
   */
  async completeApprovedEnrollment(id: string, spkiHash: string, at: string): Promise<boolean> {
    const r = await db
      .updateTable('devices')
      .set({ pending_spki_hash: null, pending_csr: null, last_seen: at })
      .where('id', '=', id)
      .where('status', '=', 'active')
      .where('pending_spki_hash', '=', spkiHash)
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  },
  /**
   * A renewal of an active device: last seen now, and its facts if the CSR carried them. On
   * PostgreSQL the update also locks the device's row. False if the device is no longer active.
   */
  async touchActive(id: string, at: string, factsJson: string | undefined): Promise<boolean> {
    const r = await db
      .updateTable('devices')
      .set({ last_seen: at, ...(factsJson !== undefined ? { facts: factsJson } : {}) })
      .where('id', '=', id)
      .where('status', '=', 'active')
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  },
  /** An agent said hello: when, and the facts it reported. */
  recordSeen: async (id: string, at: string, factsJson: string): Promise<void> => void (await db.updateTable('devices').set({ last_seen: at, facts: factsJson }).where('id', '=', id).execute()),
  async approve(id: string, at: string, by: string): Promise<boolean> {
    const r = await db.updateTable('devices').set({ status: 'active', approved_at: at, approved_by: by }).where('id', '=', id).where('status', '=', 'pending').executeTakeFirst();
    return r.numUpdatedRows === 1n;
  },
  /**
   * A pending device refused for good. Its pending key stays recorded, so the
   * same request (same token, same key) keeps finding it and is told so.
   */
  async deny(id: string, at: string): Promise<boolean> {
    const r = await db.updateTable('devices').set({ status: 'denied', pending_csr: null, last_seen: at }).where('id', '=', id).where('status', '=', 'pending').executeTakeFirst();
    return r.numUpdatedRows === 1n;
  },
  async revoke(id: string, at: string, reason: string): Promise<boolean> {
    const r = await db
      .updateTable('devices')
      .set({ status: 'revoked', revoked_at: at, revocation_reason: reason, pending_spki_hash: null, pending_csr: null })
      .where('id', '=', id)
      .where('status', 'not in', ['revoked', 'denied'])
      .executeTakeFirst();
    return r.numUpdatedRows === 1n;
  },
});
