/** Pure helpers of the gateway event stream: what a server event looks like on the wire, and cursors. */
import { CRL_PATHS, type GatewayEvent, type RevokeReason } from '@latchkey/protocol';
import type { DeliveredEvent, ServerEvent } from '../events/event-bus.js';

/** Cursors are the events table's ids, in decimal. */
export function parseCursor(c: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(c)) return undefined;
  const n = Number(c);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The gateway's view of a persisted event, or undefined for events gateways
 * do not see (issuances, approvals).
 */
export function toGatewayEvent(e: ServerEvent, cursor: string): Exclude<GatewayEvent, { type: 'resync-required' }> | undefined {
  if (!cursor) return undefined;
  if (e.type === 'revocation') {
    return { type: 'revocation', cursor, deviceId: e.deviceId, crlNumber: String(e.crlNumber), issuer: 'issuing', reason: e.reason as RevokeReason, at: e.at };
  }
  if (e.type === 'crl-updated') {
    return { type: 'crl-updated', cursor, issuer: e.ca, crlNumber: String(e.crlNumber), url: CRL_PATHS[e.ca].pem };
  }
  return undefined;
}

/**
 * Where a subscription with `since` starts: replay after that cursor, or
 * resync when the cursor is not one this database can replay from (another
 * database, garbage, past the newest) or older than the oldest event kept.
 */
export function replayStart(since: string, head: number, oldest: number | undefined): { after: number } | 'resync' {
  const from = parseCursor(since);
  const min = oldest ?? head + 1;
  return from === undefined || from > head || from < min - 1 ? 'resync' : { after: from };
}

export const fromDelivered = (e: DeliveredEvent) => toGatewayEvent(e, e.cursor);

/**
 * Cursors already sent on one stream: replay and live delivery overlap, and
 * on PostgreSQL ids may commit out of order across replicas, so "seen" is a
 * set, not a high-water mark. Bounded: the oldest are forgotten first.
 */
export function sentSet(max = 4096) {
  const seen = new Set<string>();
  return {
    has: (c: string) => seen.has(c),
    add(c: string) {
      seen.add(c);
      if (seen.size > max) for (const old of seen) {
        seen.delete(old);
        if (seen.size <= max) break;
      }
    },
  };
}
