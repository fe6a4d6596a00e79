/**
 * Delivery of committed revocations (the outbox pattern). A revocation
 * writes an outbox row in its own transaction; what it owes the outside
 * world — a CRL that lists it, then the `revocation` event that agents'
 * control channels, OCSP caches, other replicas and gateways act on — is
 * done right after COMMIT and the row deleted. A process that dies in
 * between leaves the row: it is delivered at the next start-up, and by any
 * replica's sweep once it is a few seconds old. Delivery is at least once:
 * a second CRL build and a repeated event are harmless (gateways skip a CRL
 * number they have, a closed channel stays closed).
 */
import type { EventBus } from '../events/event-bus.js';
import type { CrlService } from './crl-service.js';
import type { OutboxRepo, OutboxRow } from './outbox-repo.js';

/** A row this old is taken over by the sweep (its writer died, or its delivery failed). */
const TAKEOVER_MS = 5_000;
const SWEEP_MS = 2_000;
const BATCH = 100;

export interface RevocationOutbox {
  /** Delivers one row now: CRL rebuild, event, delete. Resolves to the issuing CRL number that lists it. */
  deliver(row: OutboxRow): Promise<number>;
  /** Delivers every row at least `minAgeMs` old (0: all, as at start-up). Returns how many were delivered. */
  drain(minAgeMs?: number): Promise<number>;
  /** Drains now, then sweeps every couple of seconds. */
  start(): void;
  stop(): void;
}

export function createRevocationOutbox(deps: { outbox: Pick<OutboxRepo, 'done' | 'failed' | 'due'>; crl: Pick<CrlService, 'regenerate'>; bus: Pick<EventBus, 'publish'>; clock: () => Date; log: (msg: string, extra?: Record<string, unknown>) => void }): RevocationOutbox {
  /** Rows being delivered by this process: the sweep leaves them alone. */
  const inFlight = new Set<number>();
  let timer: NodeJS.Timeout | undefined;
  let sweeping = false;

  async function deliver(row: OutboxRow): Promise<number> {
    inFlight.add(row.id);
    try {
      // The rebuild starts after the revocation committed, so the CRL it makes lists it.
      const { issuing } = await deps.crl.regenerate(['issuing']);
      if (issuing === undefined) throw new Error('no issuing CRL was built');
      await deps.bus.publish({ type: 'revocation', deviceId: row.device_id, crlNumber: issuing, reason: row.reason, at: row.at });
      await deps.outbox.done(row.id);
      return issuing;
    } catch (e) {
      await deps.outbox.failed(row.id).catch(() => undefined);
      throw e;
    } finally {
      inFlight.delete(row.id);
    }
  }

  const outbox: RevocationOutbox = {
    deliver,
    async drain(minAgeMs = TAKEOVER_MS) {
      const before = new Date(deps.clock().getTime() - minAgeMs).toISOString();
      let n = 0;
      for (const row of await deps.outbox.due(before, BATCH)) {
        if (inFlight.has(row.id)) continue;
        try {
          await deliver(row);
          n++;
        } catch (e) {
          deps.log('a committed revocation could not be delivered yet (CRL rebuild or event); retrying', { deviceId: row.device_id, attempts: row.attempts + 1, err: (e as Error).message });
        }
      }
      return n;
    },
    start() {
      const sweep = (minAge: number): void => {
        if (sweeping) return;
        sweeping = true;
        outbox
          .drain(minAge)
          .then((n) => n > 0 && minAge === 0 && deps.log(`delivered ${n} revocation(s) committed before the last stop`))
          .catch((e: Error) => deps.log('revocation outbox sweep failed', { err: e.message }))
          .finally(() => (sweeping = false));
      };
      sweep(0);
      timer = setInterval(() => sweep(TAKEOVER_MS), SWEEP_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
  return outbox;
}
