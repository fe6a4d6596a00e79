/**
 * Presence on both engines: two replicas on one database see each other's
 * sessions; a replica that stops heartbeating stops counting; writes are
 * batched and a session opened and closed before a flush never lands; a
 * replica whose rows another replica garbage-collected writes them again at
 * its next heartbeat; a failed batch is retried.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate } from '../storage/migrations.js';
import { openDb, type Db } from '../storage/db.js';
import { ENGINES, freshPgDatabase } from '../testing/harness.js';
import { randomUUID } from 'node:crypto';
import { devicesRepo } from '../devices/devices-repo.js';
import { groupsRepo } from '../groups/groups-repo.js';
import { REPLICA_HEARTBEAT_MS, STALE_MS, createPresence } from './presence.js';

/** Two connections to one fresh, migrated database (two replicas); undefined when PostgreSQL is not available. */
async function openDbs(t: TestContext, engine: (typeof ENGINES)[number]): Promise<Db[] | undefined> {
  let opts: Parameters<typeof openDb>[0];
  if (engine === 'postgres') {
    const pg = await freshPgDatabase(t);
    if (!pg) return undefined;
    opts = { databaseUrl: pg.url };
    t.after(() => pg.drop());
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-presence-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    opts = { dataDir: dir };
  }
  const dbs: Db[] = [await openDb(opts), await openDb(opts)];
  t.after(async () => {
    for (const d of dbs) await d.close();
  });
  await migrate(dbs[0]!);
  return dbs;
}

const session = (id: string, deviceId: string, since: string) => ({ id, deviceId, since, agentVersion: '1.0.0', serial: `${id}-serial`, remote: '127.0.0.1' });

describe('presence (devices online across replicas)', () => {
  for (const engine of ENGINES) {
    test(`${engine}: each heartbeat publishes what the replica says (its gateway streams); the others read it until it goes stale`, async (t) => {
      const dbs = await openDbs(t, engine);
      if (!dbs) return;
      let now = Date.parse('2026-03-01T12:00:00Z');
      const clock = () => new Date(now);
      let said = '[{"tokenId":"t1","name":"edge-1"}]';
      const a = await createPresence({ db: dbs[0]!, clock, log: () => undefined, published: () => said });
      const b = await createPresence({ db: dbs[1]!, clock, log: () => undefined });
      assert.deepEqual(await b.publishedElsewhere(), [{ id: a.replicaId, gateways: null }], 'nothing said before the first heartbeat');
      await a.beat();
      assert.deepEqual(await b.publishedElsewhere(), [{ id: a.replicaId, gateways: said }]);
      assert.deepEqual(await a.publishedElsewhere(), [{ id: b.replicaId, gateways: null }], 'not its own');
      said = '[]';
      now += 5_000;
      await a.beat();
      assert.deepEqual(await b.publishedElsewhere(), [{ id: a.replicaId, gateways: '[]' }]);
      // A replica silent past STALE_MS no longer counts.
      now += 31_000;
      await b.beat();
      assert.deepEqual(await b.publishedElsewhere(), []);
      await a.close();
      await b.close();
    });

    test(`${engine}: shared between replicas, batched, stale replicas drop out, close cleans up`, async (t) => {
      const dbs = await openDbs(t, engine);
      if (!dbs) return;
      let now = Date.parse('2026-03-01T12:00:00Z');
      const clock = () => new Date(now);
      const logs: string[] = [];
      const log = (m: string) => logs.push(m);
      const a = await createPresence({ db: dbs[0]!, clock, log });
      const b = await createPresence({ db: dbs[1]!, clock, log });
      const s = session;

      a.add(s('a1', 'dev-1', '2026-03-01T11:00:00Z'));
      b.add(s('b1', 'dev-2', '2026-03-01T11:30:00Z'));
      // Opened and closed before a flush: never written.
      a.add(s('a2', 'dev-3', '2026-03-01T11:45:00Z'));
      a.remove('a2');
      await b.flush();
      const seenFromA = await a.online();
      assert.deepEqual(seenFromA.map((o) => [o.deviceId, o.serial, o.replica]), [['dev-1', 'a1-serial', a.replicaId], ['dev-2', 'b1-serial', b.replicaId]]);
      assert.deepEqual(await b.online(), seenFromA, 'both replicas see the same');
      assert.equal(await a.countOnline(), 2, 'the /metrics count agrees with the list');
      const rows = await dbs[0]!.kysely.selectFrom('agent_sessions').select('id').execute();
      assert.deepEqual(rows.map((r) => r.id).sort(), ['a1', 'b1']);

      a.remove('a1');
      assert.deepEqual((await b.online()).length, 2, 'not flushed yet by A');
      assert.deepEqual((await a.online()).map((o) => o.deviceId), ['dev-2']);

      // A hello's facts become the device's last_seen and facts, also for a session gone before the flush.
      await groupsRepo(dbs[0]!.kysely).ensure({ name: 'default', cert_lifetime_seconds: 86400, require_approval: 0, created_at: '2026-03-01T00:00:00Z' });
      const device = (id: string) => ({ id, name: id, status: 'active' as const, group_name: 'default', token_id: null, pending_spki_hash: null, pending_csr: null, facts: null, user_email: null, first_seen: '2026-03-01T00:00:00Z', last_seen: null, approved_at: null, approved_by: null, revoked_at: null, revocation_reason: null });
      const [d1, d2] = [randomUUID(), randomUUID()];
      await devicesRepo(dbs[0]!.kysely).insert(device(d1));
      await devicesRepo(dbs[0]!.kysely).insert(device(d2));
      b.add(s('b2', d1, '2026-03-01T11:50:00Z'), JSON.stringify({ hostname: 'laptop-1' }));
      b.add(s('b3', d2, '2026-03-01T11:51:00Z'), JSON.stringify({ hostname: 'laptop-2' }));
      b.remove('b3');
      await b.flush();
      const rowsSeen = await dbs[0]!.kysely.selectFrom('devices').select(['id', 'last_seen', 'facts']).orderBy('last_seen').execute();
      assert.deepEqual(rowsSeen.map((r) => [r.id, r.last_seen, JSON.parse(r.facts!).hostname]), [[d1, '2026-03-01T11:50:00Z', 'laptop-1'], [d2, '2026-03-01T11:51:00Z', 'laptop-2']]);
      assert.deepEqual((await a.onlineAmong([d1, d2, 'dev-2'])), new Set([d1, 'dev-2']), 'b3 never counted as online');
      b.remove('b2');

      // B stops heartbeating (killed): its sessions stop counting once its row is stale.
      now += STALE_MS + 1000;
      await dbs[0]!.kysely.updateTable('replicas').set({ seen_at: new Date(now).toISOString() }).where('id', '=', a.replicaId).execute();
      assert.deepEqual(await a.online(), [], "a dead replica's agents are not online");
      assert.equal(await a.countOnline(), 0, 'nor counted for /metrics');

      // A clean close removes the replica and its sessions.
      a.add(s('a3', 'dev-4', '2026-03-01T12:00:00Z'));
      await a.close();
      const left = await dbs[0]!.kysely.selectFrom('agent_sessions').select('replica_id').execute();
      assert.ok(left.every((r) => r.replica_id === b.replicaId), 'only the dead replica B has rows left');
      await b.close();
      assert.deepEqual(logs, []);
    });

    test(`${engine}: rows garbage-collected by another replica come back at the next heartbeat; a failed batch is retried`, async (t) => {
      const dbs = await openDbs(t, engine);
      if (!dbs) return;
      let now = Date.parse('2026-03-01T12:00:00Z');
      const clock = () => new Date(now);
      const logs: string[] = [];
      const log = (m: string) => logs.push(m);
      const a = await createPresence({ db: dbs[0]!, clock, log });
      const b = await createPresence({ db: dbs[1]!, clock, log });
      const ofA = async () => (await b.online()).filter((o) => o.replica === a.replicaId).map((o) => [o.deviceId, o.serial]);

      a.add(session('a1', 'dev-1', '2026-03-01T11:00:00Z'));
      a.add(session('a2', 'dev-2', '2026-03-01T11:01:00Z'));
      a.add(session('a3', 'dev-3', '2026-03-01T11:02:00Z'));
      await a.flush();
      assert.deepEqual(await ofA(), [['dev-1', 'a1-serial'], ['dev-2', 'a2-serial'], ['dev-3', 'a3-serial']]);

      // A misses its heartbeats (paused VM, database failover) and B's heartbeat garbage-collects its rows.
      now += 121_000;
      await b.beat();
      assert.equal((await dbs[1]!.kysely.selectFrom('replicas').select('id').where('id', '=', a.replicaId).execute()).length, 0);
      assert.deepEqual(await dbs[1]!.kysely.selectFrom('agent_sessions').select('id').where('replica_id', '=', a.replicaId).execute(), []);
      assert.deepEqual(await ofA(), []);
      // Changes A made meanwhile, not yet written, count too.
      a.remove('a3');
      await a.beat();
      assert.deepEqual(await ofA(), [['dev-1', 'a1-serial'], ['dev-2', 'a2-serial']], "A's sessions are online again");
      assert.equal(logs.length, 1);
      assert.match(logs[0]!, /writing them again/);
      // And its row stays fresh from then on.
      now += REPLICA_HEARTBEAT_MS;
      await a.beat();
      now += STALE_MS - 1000;
      await b.beat();
      assert.deepEqual((await ofA()).length, 2);

      // A replica whose database connection fails for one batch.
      logs.length = 0;
      let failures = 0;
      const real = dbs[0]!.kysely;
      const flaky = new Proxy(real, {
        get(target, prop) {
          if (prop === 'transaction' && failures > 0) {
            failures--;
            return () => ({ execute: async () => { await sleep(10); throw new Error('connection lost'); } });
          }
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
        },
      });
      const c = await createPresence({ db: { ...dbs[0]!, kysely: flaky }, clock, log });
      const ofC = async () => (await dbs[1]!.kysely.selectFrom('agent_sessions').select(['id', 'serial']).where('replica_id', '=', c.replicaId).orderBy('id').execute()).map((r) => [r.id, r.serial]);
      c.add(session('c1', 'dev-4', '2026-03-01T11:10:00Z'));
      c.add(session('c2', 'dev-5', '2026-03-01T11:11:00Z'));
      await c.flush();
      assert.deepEqual(await ofC(), [['c1', 'c1-serial'], ['c2', 'c2-serial']]);

      failures = 1;
      c.remove('c1');
      c.add(session('c3', 'dev-6', '2026-03-01T11:12:00Z'));
      const failing = c.flush();
      // Queued while the failing batch is in flight: newer than its ops.
      c.remove('c2');
      await failing;
      assert.equal(logs.length, 1);
      assert.match(logs[0]!, /could not record control-channel sessions; retrying/);
      assert.deepEqual(await ofC(), [['c1', 'c1-serial'], ['c2', 'c2-serial']], 'nothing written yet');
      // The retry timer writes the failed batch and what came after it, without anyone flushing.
      for (let i = 0; i < 60 && (await ofC()).length !== 1; i++) await sleep(50);
      assert.deepEqual(await ofC(), [['c3', 'c3-serial']], 'the lost removes and add landed');
      assert.equal(logs.length, 1);
      for (const p of [a, b, c]) await p.close();
    });
  }
});
