/** Audit rows of EST refusals worth an administrator's eye (a policy said no). */
import { auditRepo } from '../audit/audit-repo.js';
import type { Trx } from '../storage/transaction.js';

/**
 * An enrollment or renewal refused because the group (or the device) requires
 * attestation, or because its attestation was refused (with the reason).
 * Bounded by the enrollment rate limit per address and the re-enrollment
 * limit per device, as every request to these routes is.
 */
export async function auditRefusal(
  trx: Trx,
  r: { at: string; actor: string; target: string | null; group: string; kind: 'enroll' | 'renew' | 'recover'; remote: string; code?: 'ATTESTATION_REQUIRED' | 'ATTESTATION_INVALID' | 'EK_NOT_REGISTERED'; reason?: string },
): Promise<void> {
  const details = { kind: r.kind, group: r.group, code: r.code ?? 'ATTESTATION_REQUIRED', remote: r.remote, ...(r.reason ? { reason: r.reason } : {}) };
  await auditRepo(trx).insert({ at: r.at, actor: r.actor, action: 'enroll.refused', target: r.target, details });
}
