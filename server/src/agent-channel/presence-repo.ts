/** replicas and agent_sessions: which replica is alive, and which agents each holds. */
import type { Executor } from '../storage/executor.js';
import type { AgentSessionsTable } from '../storage/schema.js';

export type PresenceRepo = ReturnType<typeof presenceRepo>;

export const presenceRepo = (db: Executor) => ({
  addReplica: async (id: string, at: string): Promise<void> => void (await db.insertInto('replicas').values({ id, started_at: at, seen_at: at }).execute()),
  /** Adds the replica unless it is there. */
  ensureReplica: async (id: string, at: string): Promise<void> => void (await db.insertInto('replicas').values({ id, started_at: at, seen_at: at }).onConflict((oc) => oc.column('id').doNothing()).execute()),
  /** False if the replica's row is gone (another replica took it for dead). */
  async touchReplica(id: string, at: string, gateways?: string): Promise<boolean> {
    const r = await db.updateTable('replicas').set({ seen_at: at, ...(gateways !== undefined ? { gateways } : {}) }).where('id', '=', id).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  /** What the other live replicas last said of their gateway streams. */
  gatewaysElsewhere: async (self: string, aliveSince: string): Promise<{ id: string; gateways: string | null }[]> =>
    db.selectFrom('replicas').select(['id', 'gateways']).where('id', '!=', self).where('seen_at', '>=', aliveSince).execute() as Promise<{ id: string; gateways: string | null }[]>,
  deadReplicas: async (seenBefore: string): Promise<string[]> => (await db.selectFrom('replicas').select('id').where('seen_at', '<', seenBefore).execute()).map((r) => r.id),
  /** Deletes the replicas and every session they held. */
  async removeReplicas(ids: readonly string[]): Promise<void> {
    await db.deleteFrom('agent_sessions').where('replica_id', 'in', ids).execute();
    await db.deleteFrom('replicas').where('id', 'in', ids).execute();
  },
  removeSessions: async (ids: readonly string[]): Promise<void> => void (await db.deleteFrom('agent_sessions').where('id', 'in', ids).execute()),
  /** Sessions already there (a retried batch, a resync) are left as they are. */
  insertSessions: async (rows: readonly AgentSessionsTable[]): Promise<void> => void (await db.insertInto('agent_sessions').values([...rows]).onConflict((oc) => oc.column('id').doNothing()).execute()),
  /** Agents connected to a replica seen since `aliveSince`, oldest connection first. */
  online: (aliveSince: string) =>
    db
      .selectFrom('agent_sessions')
      .innerJoin('replicas', 'replicas.id', 'agent_sessions.replica_id')
      .select(['agent_sessions.device_id', 'agent_sessions.since', 'agent_sessions.agent_version', 'agent_sessions.serial', 'agent_sessions.remote', 'agent_sessions.replica_id'])
      .where('replicas.seen_at', '>=', aliveSince)
      .orderBy('agent_sessions.since')
      .execute(),
  /** Devices with an agent on a live replica: one count query. */
  async countOnline(aliveSince: string): Promise<number> {
    const r = await db
      .selectFrom('agent_sessions')
      .innerJoin('replicas', 'replicas.id', 'agent_sessions.replica_id')
      .select((eb) => eb.fn.count('agent_sessions.device_id').distinct().as('n'))
      .where('replicas.seen_at', '>=', aliveSince)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  },
  /** Devices and sessions on live replicas, and the newest session's start: one query. */
  async fingerprint(aliveSince: string): Promise<{ devices: number; sessions: number; newest: string | null }> {
    const r = await db
      .selectFrom('replicas')
      .leftJoin('agent_sessions', 'agent_sessions.replica_id', 'replicas.id')
      .select((eb) => [
        eb.fn.count('agent_sessions.device_id').distinct().as('devices'),
        eb.fn.count('agent_sessions.id').as('sessions'),
        eb.fn.max('agent_sessions.since').as('newest'),
      ])
      .where('replicas.seen_at', '>=', aliveSince)
      .executeTakeFirst();
    return { devices: Number(r?.devices ?? 0), sessions: Number(r?.sessions ?? 0), newest: (r?.newest as string | null | undefined) ?? null };
  },
  async onlineAmong(deviceIds: readonly string[], aliveSince: string): Promise<Set<string>> {
    const rows = await db
      .selectFrom('agent_sessions')
      .innerJoin('replicas', 'replicas.id', 'agent_sessions.replica_id')
      .select('agent_sessions.device_id')
      .distinct()
      .where('replicas.seen_at', '>=', aliveSince)
      .where('agent_sessions.device_id', 'in', [...deviceIds])
      .execute();
    return new Set(rows.map((r) => r.device_id));
  },
});
