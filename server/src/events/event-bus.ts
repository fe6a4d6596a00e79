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
import type { Db } from '../storage/db.js';

export type ServerEvent =
  | { type: 'issuance'; deviceId: string; serial: string; kind: 'enroll' | 'renew' | 'recover'; at: string }
  | { type: 'revocation'; deviceId: string; serials: string[]; reason: string; at: string }
  | { type: 'device-approved'; deviceId: string; at: string }
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

export async function createEventBus(db: Db): Promise<EventBus> {
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
    listener.on('notification', (n) => {
      if (n.channel !== CHANNEL || !n.payload) return;
      try {
        const { origin: from, ...e } = JSON.parse(n.payload) as DeliveredEvent & { origin: string };
        if (from !== origin) deliver(e as DeliveredEvent);
      } catch {
        /* not ours */
      }
    });
    await listener.query(`LISTEN ${CHANNEL}`);
  }
  return {
    async publish(e) {
      let cursor = '';
      if (REPLAYABLE.has(e.type)) {
        const row = await db.kysely.insertInto('events').values({ at: e.at, type: e.type, payload: JSON.stringify(e) }).returning('id').executeTakeFirstOrThrow();
        cursor = String(row.id);
      }
      const delivered = { ...e, cursor } as DeliveredEvent;
      deliver(delivered);
      if (db.pgPool) await db.pgPool.query('select pg_notify($1, $2)', [CHANNEL, JSON.stringify({ ...delivered, origin })]);
      return delivered;
    },
    subscribe(fn) {
      emitter.on('event', fn);
      return () => emitter.off('event', fn);
    },
    async close() {
      emitter.removeAllListeners();
      if (listener) {
        await listener.query(`UNLISTEN ${CHANNEL}`).catch(() => undefined);
        listener.release();
      }
    },
  };
}
