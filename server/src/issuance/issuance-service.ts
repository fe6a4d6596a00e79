/**
 * The one issuing pipeline every front-end ends in (enroll, re-enroll,
 * recovery): the front-end has already parsed, verified and policy-checked
 * the CSR and decided who the device is; this signs from the device profile
 * and records the certificate in the same transaction as the front-end's own
 * writes (token use, device row). Nothing is returned that is not recorded.
 */
import { createHash } from 'node:crypto';
import { type Csr, type RandomBytes, certificateToPem, parseCertificate, randomSerial } from '@latchkey/pki';
import { TPM_ATTESTED_OU, TPM_ATTESTED_POLICY_OID } from '@latchkey/protocol';
import type { CaContext } from '../ca/ca-context.js';
import { auditRepo, type AuditEntry } from '../audit/audit-repo.js';
import { compromisedKeysRepo } from '../devices/compromised-keys-repo.js';
import { certificatesRepo } from '../certificates/certificates-repo.js';
import { LatchkeyError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { Transactor, Trx } from '../storage/transaction.js';
import type { Metrics } from '../metrics.js';
import type { KeyedMutex } from '../util/keyed-mutex.js';

export type IssuanceKind = 'enroll' | 'renew' | 'recover';

export interface IssueRequest {
  csr: Csr;
  /** Who the certificate names, from the server's records only (never from device facts). */
  device: { id: string; name: string; /** The bound person's verified email (SAN email and subject emailAddress). */ email?: string | null };
  kind: IssuanceKind;
  lifetimeSeconds: number;
  actor: string;
  /** Front-end writes that must commit with the certificate, before it is recorded (throw to abort). */
  inTransaction?: (trx: Trx) => Promise<void>;
  /**
   * Front-end writes run last, just before COMMIT (throw to abort). Row locks
   * taken here (a shared enrollment token's use count) are held for one round
   * trip, not for the whole transaction.
   */
  beforeCommit?: (trx: Trx) => Promise<void>;
  /**
   * Requests with the same key run `beforeCommit` and COMMIT one at a time in
   * this process (see keyed-mutex.ts): enrollments sharing a token queue in
   * memory rather than on the token row's lock.
   */
  commitLock?: string;
  /**
   * The certificate a renewal or recovery authenticated with. The device's
   * other unexpired certificates are then superseded: revoked (reason
   * superseded) once the overlap has passed, in the same transaction.
   */
  replacesSerial?: string;
  auditDetails?: Record<string, unknown>;
  /** A TPM attested the key (issue 14): the certificate carries the attested OU and policy. */
  attested?: boolean;
}

export interface Issued {
  der: Buffer;
  pem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export const spkiHash = (spki: Uint8Array): string => createHash('sha256').update(spki).digest('hex');

export const keyCompromised = (): LatchkeyError =>
  new LatchkeyError('KEY_COMPROMISED', 'this key belonged to a device revoked for key compromise and is refused for good; make a new key (`latchkey unenroll`, then `latchkey enroll`)');

export interface IssuanceService {
  issue(r: IssueRequest): Promise<Issued>;
}

export function createIssuanceService(deps: {
  tx: Transactor;
  ca: Pick<CaContext, 'profile'>;
  clock: () => Date;
  randomBytes: RandomBytes;
  bus: Pick<EventBus, 'publish'>;
  metrics: Pick<Metrics, 'inc'>;
  commitLocks: KeyedMutex;
  /** How long a renewed device's other certificates stay valid (config supersededOverlapSeconds). */
  supersededOverlapSeconds: number;
}): IssuanceService {
  return {
    async issue(r) {
      const now = deps.clock();
      const serial = randomSerial(deps.randomBytes);
      const der = await deps.ca.profile.issue({
        spki: r.csr.spki,
        deviceId: r.device.id,
        deviceName: r.device.name,
        ...(r.device.email ? { email: r.device.email } : {}),
        serial,
        now,
        lifetimeSeconds: r.lifetimeSeconds,
        ...(r.attested ? { attested: { ou: TPM_ATTESTED_OU, policyOid: TPM_ATTESTED_POLICY_OID } } : {}),
      });
      const cert = parseCertificate(der);
      const pem = certificateToPem(der);
      const at = now.toISOString();
      let unlock: (() => void) | undefined;
      try {
        await deps.tx.inTransaction(async (trx) => {
          // Every front-end (enroll, re-enroll, recovery) ends here: a compromised key is never certified again.
          if (await compromisedKeysRepo(trx).has(spkiHash(r.csr.spki))) throw keyCompromised();
          if (r.inTransaction) await r.inTransaction(trx);
          await certificatesRepo(trx).insert({
            serial: cert.serialHex,
            device_id: r.device.id,
            kind: r.kind,
            not_before: cert.notBefore.toISOString(),
            not_after: cert.notAfter.toISOString(),
            spki_hash: spkiHash(r.csr.spki),
            pem,
            issued_at: at,
            revoked_at: null,
            revocation_reason: null,
            replaces_serial: r.replacesSerial ?? null,
          });
          if (r.replacesSerial) {
            const from = new Date(now.getTime() + deps.supersededOverlapSeconds * 1000).toISOString();
            await certificatesRepo(trx).supersedeOthers(r.device.id, cert.serialHex, from, at);
          }
          const entry: AuditEntry = {
            at,
            actor: r.actor,
            action: `certificate.${r.kind}`,
            target: r.device.id,
            details: { serial: cert.serialHex, notAfter: cert.notAfter.toISOString(), ...r.auditDetails },
          };
          await auditRepo(trx).insert(entry);
          if (r.commitLock) unlock = await deps.commitLocks.acquire(r.commitLock);
          if (r.beforeCommit) await r.beforeCommit(trx);
        });
      } finally {
        unlock?.();
      }
      await deps.tx.durable();
      deps.metrics.inc('latchkey_issuances_total', { kind: r.kind });
      await deps.bus.publish({ type: 'issuance', deviceId: r.device.id, serial: cert.serialHex, kind: r.kind, at });
      return { der, pem, serial: cert.serialHex, notBefore: cert.notBefore, notAfter: cert.notAfter };
    },
  };
}
