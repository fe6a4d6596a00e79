import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import type { DeviceSort } from '@latchkey/protocol';
import { type Executor, isSqlite } from '../storage/executor.js';
import { containsText, escapeLike } from '../storage/like.js';
import type { Database, DevicesTable } from '../storage/schema.js';

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

/** FTS5's trigram index answers a substring of 3 characters or more (migration 011). */
const MIN_TRIGRAM = 3;

/**
 * The ids of the devices `text` (lower case) finds, as one UNION ALL whose
 * every branch an index answers (a device may come twice), so that neither engine reads every device: the
 * name or the bound email containing it (SQLite: the FTS5 trigram table, a
 * phrase of 3+ characters being a substring match; PostgreSQL: LIKE, which
 * pg_trgm's GIN indexes answer when the extension was there — migration 011);
 * the id, and any certificate's serial, beginning with it (an admin pastes a
 * whole one, or its start, as with git hashes).
 */
function searchIds(db: Executor, text: string) {
  const phrase = `{name user_email} : "${text.replace(/"/g, '""')}"`;
  let ids =
    isSqlite(db) && [...text].length >= MIN_TRIGRAM
      ? db.selectFrom('devices').select('id').where(sql<SqlBool>`rowid in (select rowid from devices_search where devices_search match ${phrase})`)
      : db
          .selectFrom('devices')
          .select('id')
          .where(containsText('name', text))
          .unionAll(db.selectFrom('devices').select('id').where(emailContains(text)));
  if (ID_CHARS.test(text)) ids = ids.unionAll(db.selectFrom('devices').select('id').where('id', '>=', text).where('id', '<', `${text}~`));
  if (HEX.test(text) && text.length >= MIN_SERIAL_PREFIX) {
    ids = ids.unionAll(db.selectFrom('certificates').select('device_id as id').where('serial', '>=', text).where('serial', '<', `${text}~`));
  }
  return ids;
}

/** The bound email contains `text` (lower case); it is stored lower case: no lower() per row. */
const emailContains = (text: string): Expression<SqlBool> => sql<SqlBool>`${sql.ref('user_email')} like ${`%${escapeLike(text)}%`} escape '\\'`;

/** Matching devices a search fetches by id before it scans in the list's order instead. */
const SEARCH_CANDIDATES = 2000;

/** The same match as searchIds, as a filter on each row (for a dense match, read in the list's order). */
const denseMatch = (text: string) => (eb: ExpressionBuilder<Database, 'devices'>) =>
  eb.or([
    containsText('name', text),
    emailContains(text),
    ...(ID_CHARS.test(text) ? [eb.and([eb('id', '>=', text), eb('id', '<', `${text}~`)])] : []),
    ...(HEX.test(text) && text.length >= MIN_SERIAL_PREFIX ? [eb('id', 'in', eb.selectFrom('certificates').select('device_id').where('serial', '>=', text).where('serial', '<', `${text}~`))] : []),
  ]);

export type DevicesRepo = ReturnType<typeof devicesRepo>;

export const devicesRepo = (db: Executor) => ({
  insert: (d: DevicesTable) => db.insertInto('devices').values(d).execute(),
  findById: (id: string) => db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst(),
  /**
   * One page in (sort key, id) order: seeks the sort's index from `after` in either direction.
   * A search first asks the indexes which devices match (at most SEARCH_CANDIDATES); when more
   * do, matches are dense and the ordered scan with the match as a filter stops early instead.
   */
  async list(f: DeviceFilter) {
    const key = SORT_KEYS[f.sort ?? 'firstSeen'].expr;
    const desc = f.order === 'desc';
    let q = db.selectFrom('devices').selectAll();
    if (f.status) q = q.where('status', '=', f.status);
    if (f.group) q = q.where('group_name', '=', f.group);
    if (f.user) q = q.where('user_email', '=', f.user.toLowerCase());
    if (f.q) {
      const text = f.q.toLowerCase();
      const found = await searchIds(db, text).limit(SEARCH_CANDIDATES + 1).execute();
      if (found.length === 0) return [];
      q = found.length <= SEARCH_CANDIDATES ? q.where('id', 'in', found.map((r) => r.id)) : q.where(denseMatch(text));
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
  /** Devices not revoked or denied whose attested TPM has this EK. */
  liveWithEk: (ekHash: string) => db.selectFrom('devices').select(['id', 'status']).where('ek_hash', '=', ekHash).where('status', 'not in', ['revoked', 'denied']).execute(),
  /** What an attestation proved, on the device's row (enrollment, completion after approval, each attested renewal). */
  async recordAttestation(id: string, a: { ekHash: string; ekPublic: string; ekCert: string | null; ekTrust: 'certificate' | 'registered'; manufacturer: string | null; akPublic: string }, at: string): Promise<void> {
    await db
      .updateTable('devices')
      .set({ assurance: 'tpm-attested', ek_hash: a.ekHash, ek_public: a.ekPublic, ek_cert: a.ekCert, ek_trust: a.ekTrust, tpm_manufacturer: a.manufacturer, ak_public: a.akPublic, attested_at: at, pending_attestation: null })
      .where('id', '=', id)
      .execute();
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
