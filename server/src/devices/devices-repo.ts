import { type Expression, type SqlBool, sql } from 'kysely';
import type { DeviceSort } from '@latchkey/protocol';
import type { Executor } from '../storage/executor.js';
import { containsText, escapeLike } from '../storage/like.js';
import type { DevicesTable } from '../storage/schema.js';

export interface DeviceFilter {
  status?: DevicesTable['status'];
  group?: string;
  /** The bound person's email, exact; devices store it lower case. */
  user?: string;
  /** Substring of the name, id or bound email; and of a certificate serial when it is hex. */
  q?: string;
  /** Only devices with an agent on a replica seen since `aliveSince` (true), or only the others (false). */
  online?: { value: boolean; aliveSince: string };
  /** Default firstSeen, asc. */
  sort?: DeviceSort;
  order?: 'asc' | 'desc';
  limit: number;
  /** The sort key (sortKeyOf) and id of the last row of the previous page. */
  after?: { key: string; id: string };
}

/**
 * The column each sort orders by, as the index of 009_console_indexes has it: a
 * nullable column as coalesce(column, ''), so that keyset comparisons see no NULL.
 */
const SORT_KEYS: Record<DeviceSort, { expr: Expression<string>; of: (d: DevicesTable) => string }> = {
  name: { expr: sql<string>`name`, of: (d) => d.name },
  firstSeen: { expr: sql<string>`first_seen`, of: (d) => d.first_seen },
  lastSeen: { expr: sql<string>`coalesce(last_seen, '')`, of: (d) => d.last_seen ?? '' },
  status: { expr: sql<string>`status`, of: (d) => d.status },
  user: { expr: sql<string>`coalesce(user_email, '')`, of: (d) => d.user_email ?? '' },
};

/** The key a row has in a sort: what the next page's `after.key` is. */
export const sortKeyOf = (sort: DeviceSort, d: DevicesTable): string => SORT_KEYS[sort].of(d);

const HEX = /^[0-9a-f]+$/;
const ID_CHARS = /^[0-9a-f-]+$/;
/** A serial is searched from this many hex digits on (shorter ones match too many). */
const MIN_SERIAL_PREFIX = 4;

export type DevicesRepo = ReturnType<typeof devicesRepo>;

export const devicesRepo = (db: Executor) => ({
  insert: (d: DevicesTable) => db.insertInto('devices').values(d).execute(),
  findById: (id: string) => db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst(),
  /** One page in (sort key, id) order: seeks the sort's index from `after` in either direction. */
  list(f: DeviceFilter) {
    const key = SORT_KEYS[f.sort ?? 'firstSeen'].expr;
    const desc = f.order === 'desc';
    let q = db.selectFrom('devices').selectAll();
    if (f.status) q = q.where('status', '=', f.status);
    if (f.group) q = q.where('group_name', '=', f.group);
    if (f.user) q = q.where('user_email', '=', f.user.toLowerCase());
    if (f.q) {
      const text = f.q.toLowerCase();
      q = q.where((eb) =>
        eb.or([
          containsText('name', text),
          // The bound email is stored lower case: no lower() per row.
          sql<SqlBool>`${sql.ref('user_email')} like ${`%${escapeLike(text)}%`} escape '\\'`,
          // Ids (lower-case UUIDs) and serials (lower-case hex) match from their start, through
          // their indexes: an admin pastes a whole one, or its beginning (as with git hashes).
          ...(ID_CHARS.test(text) ? [eb.and([eb('id', '>=', text), eb('id', '<', `${text}~`)])] : []),
          ...(HEX.test(text) && text.length >= MIN_SERIAL_PREFIX
            ? [eb('id', 'in', eb.selectFrom('certificates').select('device_id').where('serial', '>=', text).where('serial', '<', `${text}~`))]
            : []),
        ]),
      );
    }
    if (f.online) {
      const alive = f.online.aliveSince;
      q = q.where((eb) =>
        eb('id', f.online!.value ? 'in' : 'not in', eb.selectFrom('agent_sessions').innerJoin('replicas', 'replicas.id', 'agent_sessions.replica_id').select('agent_sessions.device_id').where('replicas.seen_at', '>=', alive)),
      );
    }
    if (f.after) {
      const a = f.after;
      // key >= v narrows the index range; the rest breaks ties on id.
      q = desc
        ? q.where(sql<boolean>`${key} <= ${a.key} and (${key} < ${a.key} or id < ${a.id})`)
        : q.where(sql<boolean>`${key} >= ${a.key} and (${key} > ${a.key} or id > ${a.id})`);
    }
    const dir = desc ? 'desc' : 'asc';
    return q.orderBy(key, dir).orderBy('id', dir).limit(f.limit).execute();
  },
  /** The names of these devices, by id. */
  async namesOf(ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const rows = await db.selectFrom('devices').select(['id', 'name']).where('id', 'in', [...ids]).execute();
    return new Map(rows.map((r) => [r.id, r.name]));
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
