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
import type { AttestationService } from '../attestation/attestation-service.js';
import { type VerifiedAttestation, invalid, readCsrAttestation } from '../attestation/attestation-fns.js';
import { attestationRepo } from '../attestation/attestation-repo.js';
import type { DevicesRepo } from '../devices/devices-repo.js';
import { alreadyUsed, attestationAudit, attestationRequired, deviceAttestationRequired, reenrollRefusal } from './est-errors.js';
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
  devices: Pick<DevicesRepo, 'findById'>;
  attestation: Pick<AttestationService, 'verifyForCsr'>;
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
    const attestation = readCsrAttestation(csr);
    if (spkiHash(csr.spki) === record.spki_hash) {
      throw new LatchkeyError('CSR_POLICY', 're-enrollment needs a fresh key: the CSR carries the key of the current certificate');
    }
    const group = await deps.groups.get(record.group_name);
    const device = await deps.devices.findById(deviceId);
    const audit = { at: nowIso, actor: `device:${deviceId}`, target: deviceId, group: record.group_name, kind, remote } as const;
    if (!attestation && group?.attestation === 'tpm') {
      await deps.tx.inTransaction((trx) => auditRefusal(trx, audit));
      throw attestationRequired(record.group_name, 'renewal');
    }
    // An attested device stays attested: a key its AK did not certify is refused, whatever the group says.
    if (!attestation && device?.assurance === 'tpm-attested') {
      await deps.tx.inTransaction((trx) => auditRefusal(trx, audit));
      throw deviceAttestationRequired(deviceId);
    }
    let attested: VerifiedAttestation | undefined;
    if (attestation) {
      attested = await attestationAudit(deps.tx, audit, async () => {
        const a = await deps.attestation.verifyForCsr(attestation, { deviceId }, csr.spki);
        // The renewal challenge carries the device's AK; checked again against the row.
        if (a.akPublic !== device?.ak_public) throw invalid(`the attestation is not by device ${deviceId}'s attestation key; renew with the AK it enrolled with`);
        return a;
      });
    }
    const issued = await deps.issuance.issue({
      csr,
      device: { id: deviceId, name: record.device_name, email: record.user_email ?? null },
      kind,
      lifetimeSeconds: Math.min(group?.cert_lifetime_seconds ?? config.certLifetimeSeconds, config.maxCertLifetimeSeconds),
      actor: `device:${deviceId}`,
      auditDetails: { previousSerial: record.serial, remote, ...(attested ? { attested: true, ekHash: attested.ekHash } : {}) },
      replacesSerial: record.serial,
      attested: attested !== undefined,
      async inTransaction(trx) {
        // Re-check under the transaction: a revoke that raced this request wins.
        // Facts change over a device's life (OS updates): a renewal CSR that carries them refreshes the inventory.
        // On PostgreSQL this update also locks the device's row: its renewals are decided one at a time.
        if (!(await devicesRepo(trx).touchActive(deviceId, nowIso, facts ? JSON.stringify(facts) : undefined))) {
          throw new LatchkeyError('DEVICE_REVOKED', 'this device has been revoked; enroll it again with a new token');
        }
        await checkLineage(trx, { deviceId, serial: record.serial, kind, now: nowIso, cap: config.maxCertificatesPerDevice });
        if (attested) {
          if (!(await attestationRepo(trx).markUsed(attested.challengeId, nowIso))) throw alreadyUsed(attested.challengeId);
          await devicesRepo(trx).recordAttestation(deviceId, attested, nowIso);
        }
      },
    });
    return { ...issued, deviceId, kind };
  };
}
