/**
 * Which agents are connected now, across every replica: each replica writes
 * the control-channel sessions it holds to `agent_sessions` and keeps its own
 * row in `replicas` fresh. A replica that dies without cleaning up stops
 * counting once its row is older than STALE_MS, and the others delete its
 * rows later. Writes are batched (one transaction per FLUSH_MS) so thousands
 * of agents reconnecting at once cost a few statements, not one each.
 *
 * A batch that fails is merged back into the pending writes and retried
 * (RETRY_MS later, or at the next flush), so a lost remove cannot leave a
 * ghost session behind. If another replica garbage-collected this one (it
 * missed heartbeats for GC_MS: database failover, paused VM), the next
 * heartbeat notices its row is gone and writes it and its live sessions again.
 */
import { randomUUID } from 'node:crypto';
import type { AgentSessionsTable } from '../storage/schema.js';
import { devicesRepo } from '../devices/devices-repo.js';
import type { Db } from '../storage/db.js';
import type { Trx } from '../storage/transaction.js';
import { presenceRepo } from './presence-repo.js';

/** How often a replica says it is alive. */
export const REPLICA_HEARTBEAT_MS = 10_000;
/** A replica silent for this long no longer counts. */
export const STALE_MS = 30_000;
/** Its rows are deleted after this long. */
const GC_MS = 120_000;
const FLUSH_MS = 100;
/** After a failed batch, the next attempt. */
const RETRY_MS = 1_000;
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
  remove(id: string): void;
  /** Connected agents on every live replica, oldest first. */
  online(): Promise<OnlineSession[]>;
  /** Which of these devices have an agent connected now (any live replica). */
  onlineAmong(deviceIds: readonly string[]): Promise<Set<string>>;
  /** How many devices are online on any replica (one count query; writes still queued are not waited for). */
  countOnline(): Promise<number>;
  /** What the other live replicas published with their last heartbeat (see `published`). */
  publishedElsewhere(): Promise<{ id: string; gateways: string | null }[]>;
  /** After this replica's pending writes: since when a replica must have been seen for its sessions to count (a filter for other queries). */
  aliveSince(): Promise<string>;
  /** Changes whenever who is online changes (devices online, sessions, the newest session), and how many devices are online. */
  fingerprint(): Promise<{ online: number; key: string }>;
  /** Waits for pending writes (a batch that fails is logged and retried later, not rejected). */
  flush(): Promise<void>;
  /**
   * The heartbeat, run every REPLICA_HEARTBEAT_MS: refreshes this replica's
   * row (writing it and its live sessions again if another replica deleted
   * them) and deletes the rows of replicas silent for longer than GC_MS.
   */
  beat(): Promise<void>;
  close(): Promise<void>;
}

type Op =
  | { kind: 'add'; row: AgentSessionsTable; factsJson?: string }
  | { kind: 'remove' }
  /** A session that came and went between two flushes: only the device's last_seen and facts remain to write. */
  | { kind: 'seen'; deviceId: string; at: string; factsJson: string };

/** One op for a session id from an older one (not yet written) and a newer one; undefined when nothing is left to write. */
function combine(prev: Op | undefined, op: Op): Op | undefined {
  if (prev?.kind === 'add' && op.kind === 'remove') {
    return prev.factsJson !== undefined ? { kind: 'seen', deviceId: prev.row.device_id, at: prev.row.since, factsJson: prev.factsJson } : undefined;
  }
  return op;
}

export async function createPresence(deps: {
  db: Pick<Db, 'kysely'>;
  clock: () => Date;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  /** What this replica publishes with each heartbeat for the others (its gateway streams, as JSON). */
  published?: () => string;
}): Promise<Presence> {
  const replicaId = randomUUID();
  const repo = presenceRepo(deps.db.kysely);
  const now = (): string => deps.clock().toISOString();
  const ago = (ms: number): string => new Date(deps.clock().getTime() - ms).toISOString();
  await repo.addReplica(replicaId, now());

  // Pending writes by session id; a session added and removed before a flush never reaches the database.
  let pending = new Map<string, Op>();
  // The sessions this replica holds now, as their rows should read once pending writes land.
  const live = new Map<string, AgentSessionsTable>();
  // Set when this replica's rows were deleted behind its back: the next batch writes every live session again.
  let resync = false;
  // Resolves to whether the batch in flight was written.
  let flushing: Promise<boolean> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  async function write(ops: Map<string, Op>, rewrite: AgentSessionsTable[]): Promise<void> {
    const adds: AgentSessionsTable[] = [];
    const seen: { id: string; at: string; facts: string }[] = [];
    const removes: string[] = [];
    for (const [id, op] of ops) {
      if (op.kind === 'add') {
        adds.push(op.row);
        if (op.factsJson !== undefined) seen.push({ id: op.row.device_id, at: op.row.since, facts: op.factsJson });
      }
      else if (op.kind === 'seen') seen.push({ id: op.deviceId, at: op.at, facts: op.factsJson });
      else removes.push(id);
    }
    await deps.db.kysely.transaction().execute(async (trx: Trx) => {
      const sessions = presenceRepo(trx);
      for (let i = 0; i < removes.length; i += CHUNK) await sessions.removeSessions(removes.slice(i, i + CHUNK));
      // A batch retried after an ambiguous failure, or a session already rewritten by a resync, may find its row there.
      for (const rows of [rewrite, adds]) {
        for (let i = 0; i < rows.length; i += CHUNK) {
          await sessions.insertSessions(rows.slice(i, i + CHUNK));
        }
      }
      for (const s of seen) await devicesRepo(trx).recordSeen(s.id, s.at, s.facts);
    });
  }

  function schedule(ms: number): void {
    if (timer) return;
    timer = setTimeout(() => void flush(), ms);
    timer.unref();
  }

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    // After a failed batch the retry timer takes over; retrying here at once would spin while the database is down.
    if (flushing) return flushing.then((ok) => (ok && (pending.size || resync) ? flush() : undefined));
    if (pending.size === 0 && !resync) return Promise.resolve();
    const ops = pending;
    pending = new Map();
    const rewrite = resync ? [...live.values()].map((row) => ({ ...row })) : [];
    resync = false;
    flushing = write(ops, rewrite)
      .then(() => true)
      .catch((e: Error) => {
        // Ops queued meanwhile are newer: replay them over the failed ones.
        const merged = ops;
        for (const [id, op] of pending) {
          const next = combine(merged.get(id), op);
          if (next) merged.set(id, next);
          else merged.delete(id);
        }
        pending = merged;
        if (rewrite.length) resync = true;
        deps.log(`could not record control-channel sessions; retrying in ${RETRY_MS} ms`, { err: e.message, sessions: ops.size });
        clearTimeout(timer);
        timer = undefined;
        if (!closed) schedule(RETRY_MS);
        return false;
      })
      .finally(() => (flushing = undefined));
    return flushing.then(() => undefined);
  }

  function queue(id: string, op: Op): void {
    const next = combine(pending.get(id), op);
    if (next) pending.set(id, next);
    else pending.delete(id);
    schedule(FLUSH_MS);
  }

  async function beat(): Promise<void> {
    if (!(await repo.touchReplica(replicaId, now(), deps.published?.()))) {
      // Another replica took this one for dead and deleted its rows: write them again.
      deps.log('this replica\'s presence rows were deleted (missed heartbeats?); writing them again', { sessions: live.size });
      await repo.ensureReplica(replicaId, now());
      resync = true;
      await flush();
    }
    // Clean up after replicas that died without doing it themselves.
    const dead = await repo.deadReplicas(ago(GC_MS));
    if (dead.length) await repo.removeReplicas(dead);
  }

  const heartbeat = setInterval(() => void beat().catch((e: Error) => deps.log('replica heartbeat failed', { err: e.message })), REPLICA_HEARTBEAT_MS);
  heartbeat.unref();

  return {
    replicaId,
    add(s, factsJson) {
      const row: AgentSessionsTable = { id: s.id, replica_id: replicaId, device_id: s.deviceId, since: s.since, agent_version: s.agentVersion, serial: s.serial, remote: s.remote };
      live.set(s.id, { ...row });
      queue(s.id, { kind: 'add', ...(factsJson !== undefined ? { factsJson } : {}), row });
    },
    remove(id) {
      live.delete(id);
      queue(id, { kind: 'remove' });
    },
    async online() {
      await flush();
      const rows = await repo.online(ago(STALE_MS));
      return rows.map((r) => ({ deviceId: r.device_id, since: r.since, agentVersion: r.agent_version, serial: r.serial, remote: r.remote, replica: r.replica_id }));
    },
    async onlineAmong(deviceIds) {
      if (deviceIds.length === 0) return new Set();
      await flush();
      return repo.onlineAmong(deviceIds, ago(STALE_MS));
    },
    countOnline: () => repo.countOnline(ago(STALE_MS)),
    publishedElsewhere: () => repo.gatewaysElsewhere(replicaId, ago(STALE_MS)),
    async aliveSince() {
      await flush();
      return ago(STALE_MS);
    },
    async fingerprint() {
      const f = await repo.fingerprint(ago(STALE_MS));
      return { online: f.devices, key: `${f.devices}|${f.sessions}|${f.newest ?? ''}` };
    },
    flush,
    beat,
    async close() {
      clearInterval(heartbeat);
      await flush();
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await repo.removeReplicas([replicaId]);
    },
  };
}
