/**
 * EST simplereenroll (RFC 7030 §4.2.2): renewal with the device's current
 * certificate, and recovery with one expired less than recoveryGraceSeconds
 * ago. Who the device is comes from its certificate
 * (auth/device-cert-auth.ts); which certificate may renew is decided again
 * under the device's row lock (est-fns.ts), then the issuing pipeline runs.
 */
import type { DeviceCertAuth } from '../auth/device-cert-auth.js';
import { certificatesRepo } from '../certificates/certificates-repo.js';
import type { ServerConfig } from '../config/config-schema.js';
import { devicesRepo } from '../devices/devices-repo.js';
import { LatchkeyError } from '../errors.js';
import type { GroupsRepo } from '../groups/groups-repo.js';
import { type IssuanceService, type Issued, spkiHash } from '../issuance/issuance-service.js';
import type { RateLimiter } from '../rate-limit.js';
import type { Transactor, Trx } from '../storage/transaction.js';
import { auditRefusal } from './est-audit.js';
import { attestationRequired, reenrollRefusal } from './est-errors.js';
import { checkCertificateCap, checkMayReplaceLatest, readCsr, readFacts } from './est-fns.js';

export interface ReenrollInput {
  body: Buffer;
  clientCertDer: Buffer | undefined;
  remote: string;
}

export type Reenrolled = Issued & { deviceId: string; kind: 'renew' | 'recover' };

export interface ReenrollmentDeps {
  deviceCertAuth: DeviceCertAuth;
  groups: Pick<GroupsRepo, 'get'>;
  tx: Transactor;
  issuance: IssuanceService;
  reenrollLimiter: RateLimiter;
  clock: () => Date;
  config: Pick<ServerConfig, 'recoveryGraceSeconds' | 'reenrollRateLimitPerMinute' | 'certLifetimeSeconds' | 'maxCertLifetimeSeconds' | 'maxCertificatesPerDevice'>;
}

/** The lineage check, with its reads and its one write, under the device's row lock. */
async function checkLineage(trx: Trx, a: { deviceId: string; serial: string; kind: 'renew' | 'recover'; now: string; cap: number }): Promise<void> {
  const certs = certificatesRepo(trx);
  const latest = await certs.latestForDevice(a.deviceId);
  if (latest && latest.serial !== a.serial) {
    checkMayReplaceLatest({ ...a, latest, current: await certs.findBySerial(a.serial) });
    await certs.revokeOne(latest.serial, a.now, 'superseded');
  }
  checkCertificateCap(await certs.unexpiredForDevice(a.deviceId, a.now), a.cap, a.now);
}

export function createReenrollment(deps: ReenrollmentDeps): (input: ReenrollInput) => Promise<Reenrolled> {
  const { config } = deps;
  return async ({ body, clientCertDer, remote }) => {
    const v = await deps.deviceCertAuth(clientCertDer, { recoveryGraceSeconds: config.recoveryGraceSeconds });
    // Per device, once its certificate is known to be ours, before any refusal about its state.
    if (v.record && !deps.reenrollLimiter.take(v.record.device_id)) {
      throw new LatchkeyError('RATE_LIMITED', `this device asked to renew more than ${config.reenrollRateLimitPerMinute} times in a minute; retry later`, { headers: { 'retry-after': '60' } });
    }
    if (!v.ok) throw reenrollRefusal(v.reason, v.expiredForSeconds ?? 0, config.recoveryGraceSeconds);
    const { record } = v;
    const deviceId = record.device_id;
    const nowIso = deps.clock().toISOString();
    const kind = v.expired ? 'recover' : 'renew';
    const csr = readCsr(body);
    const facts = readFacts(csr);
    if (spkiHash(csr.spki) === record.spki_hash) {
      throw new LatchkeyError('CSR_POLICY', 're-enrollment needs a fresh key: the CSR carries the key of the current certificate');
    }
    const group = await deps.groups.get(record.group_name);
    if (group?.attestation === 'tpm') {
      await deps.tx.inTransaction((trx) => auditRefusal(trx, { at: nowIso, actor: `device:${deviceId}`, target: deviceId, group: record.group_name, kind, remote }));
      throw attestationRequired(record.group_name, 'renewal');
    }
    const issued = await deps.issuance.issue({
      csr,
      device: { id: deviceId, name: record.device_name, email: record.user_email ?? null },
      kind,
      lifetimeSeconds: Math.min(group?.cert_lifetime_seconds ?? config.certLifetimeSeconds, config.maxCertLifetimeSeconds),
      actor: `device:${deviceId}`,
      auditDetails: { previousSerial: record.serial, remote },
      replacesSerial: record.serial,
      async inTransaction(trx) {
        // Re-check under the transaction: a revoke that raced this request wins.
        // Facts change over a device's life (OS updates): a renewal CSR that carries them refreshes the inventory.
        // On PostgreSQL this update also locks the device's row: its renewals are decided one at a time.
        if (!(await devicesRepo(trx).touchActive(deviceId, nowIso, facts ? JSON.stringify(facts) : undefined))) {
          throw new LatchkeyError('DEVICE_REVOKED', 'this device has been revoked; enroll it again with a new token');
        }
        await checkLineage(trx, { deviceId, serial: record.serial, kind, now: nowIso, cap: config.maxCertificatesPerDevice });
      },
    });
    return { ...issued, deviceId, kind };
  };
}
