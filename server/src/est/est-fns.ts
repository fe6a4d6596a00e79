/**
 * The EST front-ends' pure parts: reading a CSR and its device facts, and
 * the decisions — what an enrollment token allows, and which certificate may
 * renew — made from rows already read.
 */
import { Value } from '@sinclair/typebox/value';
import { type Csr, checkCsrPolicy, csrStringAttribute, readVerifiedCsr, type PkiError } from '@latchkey/pki';
import { DeviceFacts, FACTS_ATTRIBUTE_OID, MAX_FACTS_JSON } from '@latchkey/protocol';
import { LatchkeyError, fromCsrError } from '../errors.js';
import type { DevicesTable } from '../storage/schema.js';
import { denied, exhausted, superseded, tooManyCertificates } from './est-errors.js';

/** Device names go into a certificate CN: keep them short and plain. */
export function sanitizeDeviceName(s: string | undefined): string {
  const clean = (s ?? '').normalize('NFKC').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '').slice(0, 64);
  return clean || 'device';
}

export function readCsr(body: Buffer): Csr {
  try {
    const csr = readVerifiedCsr(body);
    checkCsrPolicy(csr);
    return csr;
  } catch (e) {
    throw fromCsrError(e);
  }
}

export function readFacts(csr: Csr): DeviceFacts | null {
  let json: string | undefined;
  try {
    json = csrStringAttribute(csr, FACTS_ATTRIBUTE_OID, MAX_FACTS_JSON);
  } catch (e) {
    throw new LatchkeyError('BAD_REQUEST', `device facts in the CSR are invalid: ${(e as PkiError).message}`);
  }
  if (json === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new LatchkeyError('BAD_REQUEST', 'device facts in the CSR are not valid JSON');
  }
  const err = Value.Errors(DeviceFacts, v).First();
  if (err) throw new LatchkeyError('BAD_REQUEST', `device facts in the CSR are invalid: ${err.path || '/'} ${err.message}`);
  return v as DeviceFacts;
}

/** What a token's earlier enrollment with this key left: a device (pending, approved, refused), if any. */
export interface PriorDevice {
  device_id: string | null;
  device_status: DevicesTable['status'] | null;
}

/**
 * The same request again, before any new device is made: a device this token
 * already made for this key is refused, still waiting, or approved since (its
 * certificate is issued now). Without one: a replay, or a new device.
 */
export function enrollmentStep(tok: PriorDevice): 'pending' | 'complete-approved' | 'new' {
  if (!tok.device_id) return 'new';
  if (tok.device_status === 'denied') throw denied(tok.device_id);
  if (tok.device_status === 'revoked') throw new LatchkeyError('DEVICE_REVOKED', 'this device was refused or revoked by an administrator');
  if (tok.device_status === 'pending') return 'pending';
  return 'complete-approved';
}

/** A token found by its secret, not revoked (the enrollment and its attestation challenge refuse alike). */
export function checkTokenFound<T extends { revoked_at: string | null }>(tok: T | undefined): T {
  if (!tok) throw new LatchkeyError('TOKEN_INVALID', 'the enrollment token is not valid; check it, or create a new one with `latchkey-server token create`');
  if (tok.revoked_at) throw new LatchkeyError('TOKEN_REVOKED', 'the enrollment token was revoked; create a new one with `latchkey-server token create`');
  return tok;
}

/** Whether a token can make one more device now. */
export function checkTokenUsable(tok: { expires_at: string; used_count: number; uses: number }, nowIso: string): void {
  if (tok.expires_at <= nowIso) throw new LatchkeyError('TOKEN_EXPIRED', `the enrollment token expired at ${tok.expires_at}; create a new one with \`latchkey-server token create\``);
  if (tok.used_count >= tok.uses) throw exhausted(tok.uses);
}

/**
 * Which certificate may renew (decided under the device's row lock): the
 * device's latest; or the one before it while that is still within its
 * overlap — the device never received its renewal (a lost answer, a crash):
 * the certificate it never got is then revoked and replaced. Called when the
 * presenting certificate is not the latest; throws CERT_SUPERSEDED if it may not.
 */
export function checkMayReplaceLatest(a: { serial: string; kind: 'renew' | 'recover'; now: string; latest: { replaces_serial?: string | null }; current: { revoked_at: string | null } | undefined }): void {
  const stillInOverlap = a.current && (a.current.revoked_at === null || a.current.revoked_at > a.now);
  if (a.kind === 'recover' || a.latest.replaces_serial !== a.serial || !stillInOverlap) throw superseded();
}

/** Never past `cap` unexpired certificates (oldest expiry first): whatever one device does, it can put only that many serials on the CRL. */
export function checkCertificateCap(live: readonly { not_after: string }[], cap: number, now: string): void {
  if (live.length >= cap) throw tooManyCertificates(live.length, cap, Date.parse(live[0]!.not_after) - Date.parse(now));
}
