/**
 * The event bus carries issuances, revocations and CRL updates to
 * subscribers (agent control channels, gateway streams, other replicas).
 * Every event is first written to the events table (its id is the cursor a
 * gateway resumes from), then delivered: in-process for SQLite, through
 * PostgreSQL LISTEN/NOTIFY so every replica sees it.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { eventsRepo } from './events-repo.js';
import type { Db } from '../storage/db.js';

export type ServerEvent =
  | { type: 'issuance'; deviceId: string; serial: string; kind: 'enroll' | 'renew' | 'recover'; at: string }
  /** `crlNumber`: the first issuing CRL that lists the device's certificates. No list of serials: events stay small. */
  | { type: 'revocation'; deviceId: string; crlNumber: number; reason: string; at: string }
  | { type: 'device-approved'; deviceId: string; at: string }
  | { type: 'renew-now'; deviceId: string; at: string }
  | { type: 'policy'; group: string; at: string }
  | { type: 'gateway-token-revoked'; tokenId: string; at: string }
  | { type: 'crl-updated'; ca: 'issuing' | 'root'; crlNumber: number; at: string };

/**
 * `cursor` is the events-table id of events a gateway must be able to replay
 * (revocations, CRL updates); other events are delivered live only and have
 * an empty cursor.
 */
export type DeliveredEvent = ServerEvent & { cursor: string };

const REPLAYABLE: ReadonlySet<ServerEvent['type']> = new Set(['revocation', 'crl-updated']);

export interface EventBus {
  publish(e: ServerEvent): Promise<DeliveredEvent>;
  subscribe(fn: (e: DeliveredEvent) => void): () => void;
  close(): Promise<void>;
}

const CHANNEL = 'latchkey_events';
/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more. */
const MAX_PAYLOAD = 7900;

/**
 * Splits events into NOTIFY payloads `{"origin":…,"events":[…]}` under the
 * size limit. Ours are a few hundred bytes and carry no lists; one too
 * large for a payload on its own goes as a reference to its events-table
 * row, `{"ref":"<cursor>"}`, which receivers read back. Only an event with
 * no row (a live-only one) can be too large, and is reported.
 */
export function notifyPayloads(origin: string, events: DeliveredEvent[], max = MAX_PAYLOAD): { payloads: string[]; tooLarge: DeliveredEvent[] } {
  const head = `{"origin":${JSON.stringify(origin)},"events":[`;
  const payloads: string[] = [];
  const tooLarge: DeliveredEvent[] = [];
  let parts: string[] = [];
  let size = head.length + 2;
  for (const e of events) {
    let j = JSON.stringify(e);
    if (head.length + 2 + j.length > max) {
      if (!e.cursor) {
        tooLarge.push(e);
        continue;
      }
      j = JSON.stringify({ ref: e.cursor });
    }
    if (parts.length && size + 1 + j.length > max) {
      payloads.push(`${head}${parts.join(',')}]}`);
      parts = [];
      size = head.length + 2;
    }
    size += (parts.length ? 1 : 0) + j.length;
    parts.push(j);
  }
  if (parts.length) payloads.push(`${head}${parts.join(',')}]}`);
  return { payloads, tooLarge };
}

export async function createEventBus(db: Pick<Db, 'kysely' | 'pgPool'>, opts: { onError?: (message: string, e?: Error) => void } = {}): Promise<EventBus> {
  // Events are delivered here at once; the NOTIFY echo of our own events is skipped.
  const origin = randomUUID();
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const deliver = (e: DeliveredEvent): void => {
    emitter.emit('event', e);
  };
  let listener: pg.PoolClient | undefined;
  if (db.pgPool) {
    listener = await db.pgPool.connect();
    // Delivered in arrival order, a referenced event once it is read back.
    let order: Promise<void> = Promise.resolve();
    const readBack = async (cursor: string): Promise<DeliveredEvent | undefined> => {
      const payload = await eventsRepo(db.kysely).payloadOf(Number(cursor));
      return payload ? ({ ...(JSON.parse(payload) as ServerEvent), cursor } as DeliveredEvent) : undefined;
    };
    listener.on('notification', (n) => {
      if (n.channel !== CHANNEL || !n.payload) return;
      let msg: { origin: string; events: (DeliveredEvent | { ref: string })[] };
      try {
        msg = JSON.parse(n.payload) as typeof msg;
      } catch {
        return; // not ours
      }
      if (msg.origin === origin || !Array.isArray(msg.events)) return;
      for (const e of msg.events) {
        order = order.then(async () => {
          if (!('ref' in e)) return deliver(e);
          const full = await readBack(e.ref).catch((err: Error) => void opts.onError?.(`event ${e.ref} could not be read back`, err));
          if (full) deliver(full);
        });
      }
    });
    await listener.query(`LISTEN ${CHANNEL}`);
  }

  const notify = async (events: DeliveredEvent[]): Promise<void> => {
    const { payloads, tooLarge } = notifyPayloads(origin, events);
    for (const e of tooLarge) opts.onError?.(`event ${e.type} is too large for NOTIFY; other replicas will not see it live`);
    for (const p of payloads) await db.pgPool!.query('select pg_notify($1, $2)', [CHANNEL, p]);
  };

  // Live-only events (issuances, approvals) are frequent and nothing replays
  // them: they go to other replicas in batches, one NOTIFY for all the events
  // published while the previous one was on its way, off the request's path.
  let queued: DeliveredEvent[] = [];
  let flushing: Promise<void> | undefined;
  const flush = (): Promise<void> => {
    if (flushing) return flushing;
    flushing = (async () => {
      while (queued.length) {
        const batch = queued;
        queued = [];
        try {
          await notify(batch);
        } catch (e) {
          opts.onError?.(`${batch.length} live event(s) could not be sent to other replicas`, e as Error);
        }
      }
      flushing = undefined;
    })();
    return flushing;
  };

  return {
    async publish(e) {
      let cursor = '';
      const replayable = REPLAYABLE.has(e.type);
      if (replayable) {
        cursor = String(await eventsRepo(db.kysely).insert({ at: e.at, type: e.type, payload: JSON.stringify(e) }));
      }
      const delivered = { ...e, cursor } as DeliveredEvent;
      deliver(delivered);
      if (db.pgPool) {
        // Revocations and CRL updates go out at once, and the caller waits for them.
        if (replayable) await notify([delivered]);
        else {
          queued.push(delivered);
          void flush();
        }
      }
      return delivered;
    },
    subscribe(fn) {
      emitter.on('event', fn);
      return () => emitter.off('event', fn);
    },
    async close() {
      await flush();
      emitter.removeAllListeners();
      if (listener) {
        await listener.query(`UNLISTEN ${CHANNEL}`).catch(() => undefined);
        listener.release();
      }
    },
  };
}
