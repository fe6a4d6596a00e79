/**
 * When to renew: a pure decision (model: SPIRE rotationutil.ShouldRotateX509).
 * At 2/3 of the certificate's effective lifetime, ±10% jitter so a fleet
 * enrolled together does not renew together. The jitter comes from the
 * serial, so every check of the same certificate gives the same time.
 *
 * The effective lifetime starts when the agent received the certificate, not
 * at notBefore: the server backdates notBefore (5 minutes) for slow clocks.
 */
import { createHash } from 'node:crypto';
import { NOT_BEFORE_BACKDATE_SECONDS } from '@latchkey/pki';
import { DEFAULT_RENEW_FRACTION } from '@latchkey/protocol/wire';

export interface RenewPolicy {
  /** Fraction of the lifetime after which to renew. Default 2/3. */
  fraction: number;
  /** Relative jitter around that point. Default 0.1 (±10%). */
  jitter: number;
}

export const DEFAULT_RENEW_POLICY: RenewPolicy = Object.freeze({ fraction: DEFAULT_RENEW_FRACTION, jitter: 0.1 });

/** The renewal policy from the server's last `policy` message, if it sent one that makes sense. */
export function renewPolicyOf(p: { renewFraction?: unknown } | undefined): RenewPolicy {
  const f = p?.renewFraction;
  return typeof f === 'number' && f > 0 && f < 1 ? { fraction: f, jitter: DEFAULT_RENEW_POLICY.jitter } : DEFAULT_RENEW_POLICY;
}

/**
 * Renew now when the group's lifetime was shortened below the one this
 * certificate was issued with. Judged from the certificate's own validity
 * (notAfter − notBefore), never from the local clock: a laptop whose clock is
 * slow would otherwise see every fresh certificate as outliving the policy and
 * renew in a loop. One minute of slack.
 */
export function outlivesPolicy(cert: { notBefore: Date; notAfter: Date }, certLifetimeSeconds: number): boolean {
  return cert.notAfter.getTime() - cert.notBefore.getTime() > (certLifetimeSeconds + NOT_BEFORE_BACKDATE_SECONDS + 60) * 1000;
}

export interface CertTimes {
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** When the agent stored the certificate. */
  receivedAt?: Date;
}

/** A number in [-1, 1) fixed by the serial. */
export function serialJitter(serialHex: string): number {
  const h = createHash('sha256').update(serialHex).digest();
  return (h.readUInt32BE(0) / 2 ** 32) * 2 - 1;
}

export function renewalTime(cert: CertTimes, policy: RenewPolicy = DEFAULT_RENEW_POLICY): Date {
  const start = Math.max(cert.notBefore.getTime(), Math.min(cert.receivedAt?.getTime() ?? 0, cert.notAfter.getTime()));
  const lifetime = cert.notAfter.getTime() - start;
  const f = Math.min(0.95, Math.max(0.05, policy.fraction * (1 + policy.jitter * serialJitter(cert.serialHex))));
  return new Date(start + lifetime * f);
}

export type RenewDecision = { action: 'wait'; renewAt: Date } | { action: 'renew'; renewAt: Date } | { action: 'recover'; renewAt: Date };

/** `recover` once the certificate has expired: renewal then goes by the server's recovery window. */
export function shouldRenew(now: Date, cert: CertTimes, policy: RenewPolicy = DEFAULT_RENEW_POLICY): RenewDecision {
  const renewAt = renewalTime(cert, policy);
  if (now.getTime() >= cert.notAfter.getTime()) return { action: 'recover', renewAt };
  if (now.getTime() >= renewAt.getTime()) return { action: 'renew', renewAt };
  return { action: 'wait', renewAt };
}
