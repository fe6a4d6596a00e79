/** Device inventory: list, show, approve, revoke. */
import { DEFAULT_DEVICE_ORDER, type Device, type DeviceListQuery, type DeviceSort, type RevokeReason } from '@latchkey/protocol';
import { type AuditRepo, auditRepo } from '../audit/audit-repo.js';
import { LatchkeyError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { Metrics } from '../metrics.js';
import { outboxRepo } from '../revocation/outbox-repo.js';
import type { RevocationOutbox } from '../revocation/revocation-outbox.js';
import { type CrashPoint, noCrash } from '../util/crash-point.js';
import type { Transactor } from '../storage/transaction.js';
import type { DevicesTable } from '../storage/schema.js';
import { compromisedKeysRepo } from './compromised-keys-repo.js';
import { type CertificatesRepo, certificatesRepo } from '../certificates/certificates-repo.js';
import { type DevicesRepo, devicesRepo, sortKeyOf } from './devices-repo.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function toDevice(d: DevicesTable, cert: { serial: string; not_before: string; not_after: string; revoked_at: string | null } | undefined): Device {
  return {
    id: d.id,
    name: d.name,
    status: d.status,
    group: d.group_name,
    user: d.user_email,
    facts: d.facts ? (JSON.parse(d.facts) as Device['facts']) : null,
    firstSeen: d.first_seen,
    lastSeen: d.last_seen,
    certificate: cert ? { serial: cert.serial, notBefore: cert.not_before, notAfter: cert.not_after, revokedAt: cert.revoked_at } : null,
    revokedAt: d.revoked_at,
    revocationReason: (d.revocation_reason as RevokeReason | null) ?? null,
    assurance: d.assurance ?? 'software',
    tpm:
      d.assurance === 'tpm-attested' && d.ek_hash && d.attested_at
        ? { ekHash: d.ek_hash, ekTrust: d.ek_trust ?? 'registered', manufacturer: d.tpm_manufacturer ? d.tpm_manufacturer.slice(0, 64) : null, attestedAt: d.attested_at }
        : null,
  };
}

/** A page's position: its sort and order too, so that a cursor is never read under another sort. */
const encodeCursor = (sort: DeviceSort, order: 'asc' | 'desc', d: DevicesTable): string => Buffer.from(JSON.stringify([sort, order, sortKeyOf(sort, d), d.id])).toString('base64url');
function decodeCursor(c: string, sort: DeviceSort, order: 'asc' | 'desc'): { key: string; id: string } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(c, 'base64url').toString());
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || v.length !== 4 || typeof v[2] !== 'string' || typeof v[3] !== 'string' || !UUID.test(v[3])) {
    throw new LatchkeyError('BAD_REQUEST', 'invalid cursor; start again from the first page (without cursor)');
  }
  if (v[0] !== sort || v[1] !== order) throw new LatchkeyError('BAD_REQUEST', `the cursor belongs to sort=${String(v[0])}&order=${String(v[1])}; ask with those, or start again from the first page`);
  return { key: v[2], id: v[3] };
}

export function createDevicesService(deps: {
  devices: Pick<DevicesRepo, 'findById' | 'list'>;
  certificates: Pick<CertificatesRepo, 'latestForDevices' | 'listByDevice'>;
  audit: Pick<AuditRepo, 'insert'>;
  tx: Transactor;
  clock: () => Date;
  bus: Pick<EventBus, 'publish'>;
  metrics: Pick<Metrics, 'inc'>;
  outbox: Pick<RevocationOutbox, 'deliver'>;
  /** Delivery after the commit failed: the outbox sweep retries it. */
  onDeliveryError?: (e: unknown) => void;
  crashPoint?: CrashPoint;
  /** Which of these devices have an agent connected now (presence); `online` is left out without it. */
  onlineAmong?: (ids: readonly string[]) => Promise<Set<string>>;
  /** Since when a replica's row must have been refreshed for its agents to count as online (presence); `online=` is refused without it. */
  aliveSince?: () => Promise<string>;
}) {
  const find = async (id: string): Promise<DevicesTable> => {
    const d = UUID.test(id) ? await deps.devices.findById(id) : undefined;
    if (!d) throw new LatchkeyError('NOT_FOUND', `no device ${id}; list devices with \`latchkey-server devices list\``);
    return d;
  };
  return {
    async list(q: DeviceListQuery): Promise<{ items: Device[]; nextCursor: string | null }> {
      const limit = q.limit ?? 100;
      const sort = q.sort ?? 'firstSeen';
      const order = q.order ?? DEFAULT_DEVICE_ORDER[sort];
      if (q.online !== undefined && !deps.aliveSince) throw new LatchkeyError('BAD_REQUEST', 'this server does not track which agents are online; leave out online=');
      const online = q.online !== undefined ? { value: q.online, aliveSince: await deps.aliveSince!() } : undefined;
      const { cursor, online: _online, ...filter } = q;
      const rows = await deps.devices.list({ ...filter, sort, order, limit: limit + 1, ...(online ? { online } : {}), ...(cursor ? { after: decodeCursor(cursor, sort, order) } : {}) });
      const page = rows.slice(0, limit);
      const ids = page.map((d) => d.id);
      const [connected, certs] = await Promise.all([deps.onlineAmong?.(ids), deps.certificates.latestForDevices(ids)]);
      const items = page.map((d) => ({ ...toDevice(d, certs.get(d.id)), ...(connected ? { online: connected.has(d.id) } : {}) }));
      return { items, nextCursor: rows.length > limit ? encodeCursor(sort, order, page[page.length - 1]!) : null };
    },
    async show(id: string) {
      const d = await find(id);
      const certs = await deps.certificates.listByDevice(d.id);
      const online = await deps.onlineAmong?.([d.id]);
      return { ...toDevice(d, certs[0]), ...(online ? { online: online.has(d.id) } : {}), certificates: certs.map((c) => ({ serial: c.serial, kind: c.kind, notBefore: c.not_before, notAfter: c.not_after, issuedAt: c.issued_at, revokedAt: c.revoked_at, revocationReason: c.revocation_reason })) };
    },
    async approve(id: string, actor: string): Promise<Device> {
      const d = await find(id);
      const at = deps.clock().toISOString();
      await deps.tx.inTransaction(async (trx) => {
        if (!(await devicesRepo(trx).approve(d.id, at, actor))) throw new LatchkeyError('CONFLICT', `device ${id} is ${d.status}, not pending approval`);
        await auditRepo(trx).insert({ at, actor, action: 'device.approve', target: d.id, details: { name: d.name } });
      });
      await deps.tx.durable();
      await deps.bus.publish({ type: 'device-approved', deviceId: d.id, at });
      return toDevice({ ...d, status: 'active', approved_at: at, approved_by: actor }, undefined);
    },
    /**
     * Refuses a pending device for good: its agent is told DEVICE_DENIED on
     * its next poll, and the same token and key never make a new pending
     * device (the token use is not given back).
     */
    async deny(id: string, reason: string | undefined, actor: string): Promise<Device> {
      const d = await find(id);
      const at = deps.clock().toISOString();
      await deps.tx.inTransaction(async (trx) => {
        if (!(await devicesRepo(trx).deny(d.id, at))) {
          throw new LatchkeyError('CONFLICT', `device ${id} is ${d.status}, not pending approval; only a pending device can be denied${d.status === 'active' ? ` (revoke it: \`latchkey-server devices revoke ${d.id}\`)` : ''}`);
        }
        await auditRepo(trx).insert({ at, actor, action: 'device.deny', target: d.id, details: { name: d.name, ...(reason ? { reason } : {}) } });
      });
      await deps.tx.durable();
      return toDevice({ ...d, status: 'denied', last_seen: at }, undefined);
    },
    /** Asks the device's agent to renew now; delivered on its control channel by whichever replica holds it. */
    async renewNow(id: string, actor: string): Promise<{ deviceId: string; requestedAt: string }> {
      const d = await find(id);
      if (d.status !== 'active') throw new LatchkeyError('CONFLICT', `device ${id} is ${d.status}; only an active device can renew`);
      const at = deps.clock().toISOString();
      await deps.audit.insert({ at, actor, action: 'device.renew-now', target: d.id, details: {} });
      await deps.bus.publish({ type: 'renew-now', deviceId: d.id, at });
      return { deviceId: d.id, requestedAt: at };
    },
    /**
     * Marks the device revoked, revokes every certificate it holds and writes
     * the outbox row that owes the CRL rebuild and the event, in one
     * transaction; then delivers that row before answering (see
     * revocation-outbox.ts: if this process dies first, start-up or another
     * replica delivers it). Revoking a revoked device again answers the same
     * and delivers once more: a retry after a lost answer is safe.
     */
    async revoke(id: string, reason: RevokeReason, actor: string): Promise<{ device: Device; serials: string[]; crlNumber: number | null; alreadyRevoked: boolean }> {
      const d = await find(id);
      const at = deps.clock().toISOString();
      const done = await deps.tx.inTransaction(async (trx) => {
        // Every key the device held is refused for good (idempotent: also on a retry that raises the reason).
        if (reason === 'keyCompromise') await compromisedKeysRepo(trx).addForDevice(d.id, at);
        const first = await devicesRepo(trx).revoke(d.id, at, reason);
        const current = first ? { ...d, status: 'revoked' as const, revoked_at: at, revocation_reason: reason } : (await devicesRepo(trx).findById(d.id))!;
        // A denied device keeps its refused key on record, so that its agent and the token stay refused.
        if (current.status === 'denied') throw new LatchkeyError('CONFLICT', `device ${id} was denied; it holds no certificate and stays refused`);
        const s = first ? await certificatesRepo(trx).revokeAllForDevice(d.id, at, reason) : [];
        const pending = first ? undefined : await outboxRepo(trx).pendingFor(d.id);
        const row = pending ?? (await outboxRepo(trx).insert({ kind: 'revocation', device_id: d.id, reason: current.revocation_reason ?? reason, at: current.revoked_at ?? at, created_at: at }));
        await auditRepo(trx).insert({ at, actor, action: 'device.revoke', target: d.id, details: first ? { reason, serials: s.map((c) => c.serial) } : { reason: current.revocation_reason, again: true } });
        return { first, current, serials: s.map((c) => c.serial), row };
      });
      await deps.tx.durable();
      if (done.first) deps.metrics.inc('latchkey_revocations_total');
      (deps.crashPoint ?? noCrash)('after-revoke-commit');
      // Committed whatever happens next: a failed delivery stays in the outbox and is retried.
      const crlNumber = await deps.outbox.deliver(done.row).catch((e: unknown) => {
        deps.onDeliveryError?.(e);
        return null;
      });
      return { device: toDevice(done.current, undefined), serials: done.serials, crlNumber, alreadyRevoked: !done.first };
    },
  };
}
export type DevicesService = ReturnType<typeof createDevicesService>;
