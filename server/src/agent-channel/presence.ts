/**
 * Which agents are connected now, across every replica: each replica writes
 * the control-channel sessions it holds to `agent_sessions` and keeps its own
 * row in `replicas` fresh. A replica that dies without cleaning up stops
 * counting once its row is older than STALE_MS, and the others delete its
 * rows later. Writes are batched (one transaction per FLUSH_MS) so thousands
 * of agents reconnecting at once cost a few statements, not one each.
 */
import { randomUUID } from 'node:crypto';
import type { AgentSessionsTable } from '../storage/schema.js';
import type { Db } from '../storage/db.js';

/** How often a replica says it is alive. */
export const REPLICA_HEARTBEAT_MS = 10_000;
/** A replica silent for this long no longer counts. */
export const STALE_MS = 30_000;
/** Its rows are deleted after this long. */
const GC_MS = 120_000;
const FLUSH_MS = 100;
const CHUNK = 500;

export interface Session {
  id: string;
  deviceId: string;
  since: string;
  agentVersion: string | null;
  serial: string;
  remote: string;
}

export interface OnlineSession extends Omit<Session, 'id'> {
  /** The replica holding the connection. */
  replica: string;
}

export interface Presence {
  readonly replicaId: string;
  /** A session opened; with the facts the agent reported, the device's last_seen and facts are updated too. */
  add(s: Session, factsJson?: string): void;
  setSerial(id: string, serial: string): void;
  remove(id: string): void;
  /** Connected agents on every live replica, oldest first. */
  online(): Promise<OnlineSession[]>;
  /** Which of these devices have an agent connected now (any live replica). */
  onlineAmong(deviceIds: readonly string[]): Promise<Set<string>>;
  /** Waits for pending writes. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

type Op =
  | { kind: 'add'; row: AgentSessionsTable; factsJson?: string }
  | { kind: 'serial'; serial: string }
  | { kind: 'remove' }
  /** A session that came and went between two flushes: only the device's last_seen and facts remain to write. */
  | { kind: 'seen'; deviceId: string; at: string; factsJson: string };

export async function createPresence(deps: { db: Db; clock: () => Date; log: (msg: string, extra?: Record<string, unknown>) => void }): Promise<Presence> {
  const replicaId = randomUUID();
  const k = deps.db.kysely;
  const now = (): string => deps.clock().toISOString();
  const ago = (ms: number): string => new Date(deps.clock().getTime() - ms).toISOString();
  await k.insertInto('replicas').values({ id: replicaId, started_at: now(), seen_at: now() }).execute();

  // Pending writes by session id; a session added and removed before a flush never reaches the database.
  let pending = new Map<string, Op>();
  let flushing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function write(ops: Map<string, Op>): Promise<void> {
    const adds: AgentSessionsTable[] = [];
    const seen: { id: string; at: string; facts: string }[] = [];
    const removes: string[] = [];
    const serials: [string, string][] = [];
    for (const [id, op] of ops) {
      if (op.kind === 'add') {
        adds.push(op.row);
        if (op.factsJson !== undefined) seen.push({ id: op.row.device_id, at: op.row.since, facts: op.factsJson });
      }
      else if (op.kind === 'seen') seen.push({ id: op.deviceId, at: op.at, facts: op.factsJson });
      else if (op.kind === 'remove') removes.push(id);
      else serials.push([id, op.serial]);
    }
    await k.transaction().execute(async (trx) => {
      for (let i = 0; i < removes.length; i += CHUNK) await trx.deleteFrom('agent_sessions').where('id', 'in', removes.slice(i, i + CHUNK)).execute();
      for (let i = 0; i < adds.length; i += CHUNK) await trx.insertInto('agent_sessions').values(adds.slice(i, i + CHUNK)).execute();
      for (const [id, serial] of serials) await trx.updateTable('agent_sessions').set({ serial }).where('id', '=', id).execute();
      for (const s of seen) await trx.updateTable('devices').set({ last_seen: s.at, facts: s.facts }).where('id', '=', s.id).execute();
    });
  }

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (flushing) return flushing.then(() => (pending.size ? flush() : undefined));
    if (pending.size === 0) return Promise.resolve();
    const ops = pending;
    pending = new Map();
    flushing = write(ops)
      .catch((e: Error) => deps.log('could not record control-channel sessions (devices online may be off until they reconnect)', { err: e.message, sessions: ops.size }))
      .finally(() => (flushing = undefined));
    return flushing;
  }

  function queue(id: string, op: Op): void {
    const prev = pending.get(id);
    if (op.kind === 'remove' && prev?.kind === 'add') {
      if (prev.factsJson !== undefined) pending.set(id, { kind: 'seen', deviceId: prev.row.device_id, at: prev.row.since, factsJson: prev.factsJson });
      else pending.delete(id);
    }
    else if (op.kind === 'serial' && prev?.kind === 'add') prev.row.serial = op.serial;
    else pending.set(id, op);
    if (!timer) {
      timer = setTimeout(() => void flush(), FLUSH_MS);
      timer.unref();
    }
  }

  const beat = setInterval(() => {
    void (async () => {
      await k.updateTable('replicas').set({ seen_at: now() }).where('id', '=', replicaId).execute();
      // Clean up after replicas that died without doing it themselves.
      const dead = (await k.selectFrom('replicas').select('id').where('seen_at', '<', ago(GC_MS)).execute()).map((r) => r.id);
      if (dead.length) {
        await k.deleteFrom('agent_sessions').where('replica_id', 'in', dead).execute();
        await k.deleteFrom('replicas').where('id', 'in', dead).execute();
      }
    })().catch((e: Error) => deps.log('replica heartbeat failed', { err: e.message }));
  }, REPLICA_HEARTBEAT_MS);
  beat.unref();

  return {
    replicaId,
    add(s, factsJson) {
      queue(s.id, { kind: 'add', ...(factsJson !== undefined ? { factsJson } : {}), row: { id: s.id, replica_id: replicaId, device_id: s.deviceId, since: s.since, agent_version: s.agentVersion, serial: s.serial, remote: s.remote } });
    },
    setSerial(id, serial) {
      queue(id, { kind: 'serial', serial });
    },
    remove(id) {
      queue(id, { kind: 'remove' });
    },
    async online() {
      await flush();
      const rows = await k
        .selectFrom('agent_sessions')
        .innerJoin('replicas', 'replicas.id', 'agent_sessions.replica_id')
        .select(['agent_sessions.device_id', 'agent_sessions.since', 'agent_sessions.agent_version', 'agent_sessions.serial', 'agent_sessions.remote', 'agent_sessions.replica_id'])
        .where('replicas.seen_at', '>=', ago(STALE_MS))
        .orderBy('agent_sessions.since')
        .execute();
      return rows.map((r) => ({ deviceId: r.device_id, since: r.since, agentVersion: r.agent_version, serial: r.serial, remote: r.remote, replica: r.replica_id }));
    },
    async onlineAmong(deviceIds) {
      if (deviceIds.length === 0) return new Set();
      await flush();
      const rows = await k
        .selectFrom('agent_sessions')
        .innerJoin('replicas', 'replicas.id', 'agent_sessions.replica_id')
        .select('agent_sessions.device_id')
        .distinct()
        .where('replicas.seen_at', '>=', ago(STALE_MS))
        .where('agent_sessions.device_id', 'in', [...deviceIds])
        .execute();
      return new Set(rows.map((r) => r.device_id));
    },
    flush,
    async close() {
      clearInterval(beat);
      await flush();
      await k.deleteFrom('agent_sessions').where('replica_id', '=', replicaId).execute();
      await k.deleteFrom('replicas').where('id', '=', replicaId).execute();
    },
  };
}
