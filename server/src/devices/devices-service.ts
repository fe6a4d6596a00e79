/** Device inventory: list, show, approve, revoke. */
import type { Device, DeviceListQuery, RevokeReason } from '@latchkey/protocol';
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
import { type DevicesRepo, devicesRepo } from './devices-repo.js';

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
  };
}

const encodeCursor = (d: DevicesTable): string => Buffer.from(`${d.first_seen}|${d.id}`).toString('base64url');
function decodeCursor(c: string): { firstSeen: string; id: string } {
  const [firstSeen, id] = Buffer.from(c, 'base64url').toString().split('|');
  if (!firstSeen || !id || !UUID.test(id)) throw new LatchkeyError('BAD_REQUEST', 'invalid cursor');
  return { firstSeen, id };
}

export function createDevicesService(deps: {
  devices: Pick<DevicesRepo, 'findById' | 'list'>;
  certificates: Pick<CertificatesRepo, 'latestForDevice' | 'listByDevice'>;
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
}) {
  const find = async (id: string): Promise<DevicesTable> => {
    const d = UUID.test(id) ? await deps.devices.findById(id) : undefined;
    if (!d) throw new LatchkeyError('NOT_FOUND', `no device ${id}; list devices with \`latchkey-server devices list\``);
    return d;
  };
  return {
    async list(q: DeviceListQuery): Promise<{ items: Device[]; nextCursor: string | null }> {
      const limit = q.limit ?? 100;
      const rows = await deps.devices.list({ ...q, limit: limit + 1, ...(q.cursor ? { after: decodeCursor(q.cursor) } : {}) });
      const page = rows.slice(0, limit);
      const online = await deps.onlineAmong?.(page.map((d) => d.id));
      const items = await Promise.all(page.map(async (d) => ({ ...toDevice(d, await deps.certificates.latestForDevice(d.id)), ...(online ? { online: online.has(d.id) } : {}) })));
      return { items, nextCursor: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null };
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
