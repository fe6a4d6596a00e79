import type { Executor } from '../storage/executor.js';
import { containsText } from '../storage/like.js';
import type { DevicesTable } from '../storage/schema.js';

export interface DeviceFilter {
  status?: DevicesTable['status'];
  group?: string;
  q?: string;
  limit: number;
  /** first_seen|id of the last row of the previous page. */
  after?: { firstSeen: string; id: string };
}

export const devicesRepo = (db: Executor) => ({
  insert: (d: DevicesTable) => db.insertInto('devices').values(d).execute(),
  findById: (id: string) => db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst(),
  findPending: (tokenId: string, spkiHash: string) =>
    db.selectFrom('devices').selectAll().where('token_id', '=', tokenId).where('pending_spki_hash', '=', spkiHash).executeTakeFirst(),
  list(f: DeviceFilter) {
    let q = db.selectFrom('devices').selectAll();
    if (f.status) q = q.where('status', '=', f.status);
    if (f.group) q = q.where('group_name', '=', f.group);
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
  update: (id: string, set: Partial<DevicesTable>) => db.updateTable('devices').set(set).where('id', '=', id).executeTakeFirst(),
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
