/** The certificates table: every certificate issued, its lineage (replaces_serial) and its revocation. */
import { sql } from 'kysely';
import type { Executor } from '../storage/executor.js';
import type { CertificatesTable } from '../storage/schema.js';

export type CertificatesRepo = ReturnType<typeof certificatesRepo>;

export const certificatesRepo = (db: Executor) => ({
  insert: (c: CertificatesTable) => db.insertInto('certificates').values(c).execute(),
  /** A certificate's record and its device's, in one query (every reconnecting agent and every renewal pays for it). */
  findWithDevice: (serial: string) =>
    db
      .selectFrom('certificates')
      .innerJoin('devices', 'devices.id', 'certificates.device_id')
      .select(['certificates.serial', 'certificates.device_id', 'certificates.spki_hash', 'certificates.revoked_at', 'certificates.revocation_reason', 'devices.name as device_name', 'devices.status as device_status', 'devices.group_name', 'devices.user_email'])
      .where('certificates.serial', '=', serial)
      .executeTakeFirst(),
  findBySerial: (serial: string) => db.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirst(),
  listByDevice: (deviceId: string) =>
    db.selectFrom('certificates').select(['serial', 'kind', 'not_before', 'not_after', 'issued_at', 'revoked_at', 'revocation_reason']).where('device_id', '=', deviceId).orderBy('issued_at', 'desc').orderBy('serial').execute(),
  /**
   * The device's current certificate: every issuance supersedes the others, so it is the one not
   * revoked; by issue time only among equals (a revoked device, rows from before superseding).
   * Issue times alone tie within a millisecond.
   */
  latestForDevice: (deviceId: string) =>
    db
      .selectFrom('certificates')
      .selectAll()
      .where('device_id', '=', deviceId)
      .orderBy(sql`case when revoked_at is null then 0 else 1 end`)
      .orderBy('issued_at', 'desc')
      .orderBy('serial', 'desc')
      .limit(1)
      .executeTakeFirst(),
  /**
   * The current certificate (as latestForDevice chooses it) of each of these devices, in one
   * query: a page of the devices list reads them all at once.
   */
  async latestForDevices(deviceIds: readonly string[]): Promise<Map<string, { serial: string; device_id: string; not_before: string; not_after: string; revoked_at: string | null }>> {
    if (deviceIds.length === 0) return new Map();
    const ranked = db
      .selectFrom('certificates')
      .select([
        'serial',
        'device_id',
        'not_before',
        'not_after',
        'revoked_at',
        sql<number>`row_number() over (partition by device_id order by case when revoked_at is null then 0 else 1 end, issued_at desc, serial desc)`.as('rank'),
      ])
      .where('device_id', 'in', [...deviceIds])
      .as('ranked');
    const rows = await db.selectFrom(ranked).select(['serial', 'device_id', 'not_before', 'not_after', 'revoked_at']).where('rank', '=', 1).execute();
    return new Map(rows.map((r) => [r.device_id, r]));
  },
  /**
   * Current certificates (not revoked) of active devices that end in (now, until]: how many, and
   * the first `limit` by end (the console's "expiring soon").
   */
  async expiringActive(now: string, until: string, limit: number) {
    const base = db
      .selectFrom('certificates')
      .innerJoin('devices', 'devices.id', 'certificates.device_id')
      .where('certificates.revoked_at', 'is', null)
      .where('certificates.not_after', '>', now)
      .where('certificates.not_after', '<=', until)
      .where('devices.status', '=', 'active');
    const [count, items] = await Promise.all([
      base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirst(),
      base.select(['certificates.device_id', 'devices.name', 'certificates.serial', 'certificates.not_after']).orderBy('certificates.not_after').orderBy('certificates.serial').limit(limit).execute(),
    ]);
    return { count: Number(count?.n ?? 0), items };
  },
  /**
   * Revokes, as of `at`, every certificate of the device not revoked by then (also one superseded
   * with a revocation time still ahead). Returns the unexpired ones (what a CRL lists): a device that
   * renewed for years has many expired certificates, marked too but not listed.
   */
  async revokeAllForDevice(deviceId: string, at: string, reason: string): Promise<{ serial: string; notAfter: string }[]> {
    const rows = await db
      .selectFrom('certificates')
      .select(['serial', 'not_after'])
      .where('device_id', '=', deviceId)
      .where('not_after', '>', at)
      .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', at)]))
      .execute();
    await db
      .updateTable('certificates')
      .set({ revoked_at: at, revocation_reason: reason })
      .where('device_id', '=', deviceId)
      .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', at)]))
      .execute();
    return rows.map((r) => ({ serial: r.serial, notAfter: r.not_after }));
  },
  /** Unexpired certificates of the device (revoked or not), the oldest expiry first. */
  unexpiredForDevice: (deviceId: string, now: string) =>
    db.selectFrom('certificates').select(['serial', 'not_after']).where('device_id', '=', deviceId).where('not_after', '>', now).orderBy('not_after').execute(),
  /**
   * After a renewal: the device's other unexpired certificates not yet revoked become revoked as
   * `superseded` from `from` on (an overlap for connections opened just before the renewal).
   */
  supersedeOthers: (deviceId: string, keep: string, from: string, now: string) =>
    db
      .updateTable('certificates')
      .set({ revoked_at: from, revocation_reason: 'superseded' })
      .where('device_id', '=', deviceId)
      .where('serial', '!=', keep)
      .where('not_after', '>', now)
      .where('revoked_at', 'is', null)
      .execute(),
  /** Revokes one certificate now (a renewal whose answer never reached the device), unless it is already. */
  revokeOne: (serial: string, at: string, reason: string) =>
    db
      .updateTable('certificates')
      .set({ revoked_at: at, revocation_reason: reason })
      .where('serial', '=', serial)
      .where((eb) => eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', at)]))
      .execute(),
  /** Certificates revoked by `now` that have not expired: what a CRL must list (RFC 5280 §3.3). */
  revokedUnexpired: (now: string) =>
    db
      .selectFrom('certificates')
      .select(['serial', 'revoked_at', 'revocation_reason'])
      .where('revoked_at', 'is not', null)
      .where('revoked_at', '<=', now)
      .where('not_after', '>', now)
      .orderBy('serial')
      .execute(),
  /** Whether a revocation took effect after `since` (a superseded certificate's overlap ended) and is due by `now`. */
  async revocationDueSince(since: string, now: string): Promise<boolean> {
    const r = await db.selectFrom('certificates').select('serial').where('revoked_at', '>', since).where('revoked_at', '<=', now).where('not_after', '>', now).limit(1).executeTakeFirst();
    return r !== undefined;
  },
});
