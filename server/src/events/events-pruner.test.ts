/** The events table's retention (eventsRetentionDays), on SQLite and PostgreSQL. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENGINES, harness } from '../testing/harness.js';
import { replayStart } from '../gateway/gateway-events-fns.js';
import { createEventsPruner } from './events-pruner.js';
import { eventsRepo } from './events-repo.js';

const NOW = new Date('2026-12-03T12:00:00Z');
const DAY = 86400_000;

for (const engine of ENGINES) {
  describe(`events retention on ${engine}`, () => {
    test('events older than the retention are deleted in batches, newer ones kept; a gateway cursor from before them resyncs', async (t) => {
      const h = await harness(t, engine, { now: NOW });
      if (!h) return;
      const repo = eventsRepo(h.db.kysely);
      await h.db.kysely.deleteFrom('events').execute();
      const ids: number[] = [];
      // 25 events 10..8 days old, then 5 of the last 6 days.
      for (let i = 0; i < 25; i++) ids.push(await repo.insert({ at: new Date(NOW.getTime() - 10 * DAY + i * 2 * 3600_000).toISOString(), type: 'crl-updated', payload: '{}' }));
      for (let i = 0; i < 5; i++) ids.push(await repo.insert({ at: new Date(NOW.getTime() - (6 - i) * DAY).toISOString(), type: 'revocation', payload: '{}' }));
      const calls: number[] = [];
      const events = { pruneBefore: async (b: string, n: number) => { const d = await repo.pruneBefore(b, n); calls.push(d); return d; } };
      const logs: string[] = [];
      const pruner = createEventsPruner({ events, clock: () => NOW, retentionDays: 7, batch: 10, log: (m) => logs.push(m) });
      assert.equal(await pruner.runOnce(), 25);
      assert.deepEqual(calls, [10, 10, 5], 'three batches of at most 10');
      const left = (await h.db.kysely.selectFrom('events').select('id').orderBy('id').execute()).map((r) => Number(r.id));
      assert.deepEqual(left, ids.slice(25));
      assert.equal(await pruner.runOnce(), 0, 'nothing more to delete');
      const head = await repo.head();
      assert.equal(replayStart(String(ids[3]), head, await repo.oldest()), 'resync', 'a cursor older than what is kept');
      assert.deepEqual(replayStart(String(ids[24]), head, await repo.oldest()), { after: ids[24] }, 'the last pruned cursor still replays all that is kept');
    });

    test('start() runs at once and stop() waits for the run; a failing run is logged, not thrown', async (t) => {
      const h = await harness(t, engine, { now: NOW });
      if (!h) return;
      const repo = eventsRepo(h.db.kysely);
      await h.db.kysely.deleteFrom('events').execute();
      await repo.insert({ at: new Date(NOW.getTime() - 30 * DAY).toISOString(), type: 'crl-updated', payload: '{}' });
      const logs: { m: string; extra?: Record<string, unknown> }[] = [];
      const pruner = createEventsPruner({ events: repo, clock: () => NOW, retentionDays: 7, log: (m, extra) => logs.push({ m, ...(extra ? { extra } : {}) }) });
      pruner.start();
      await pruner.stop();
      assert.equal((await h.db.kysely.selectFrom('events').select('id').execute()).length, 0);
      assert.deepEqual(logs.map((l) => l.extra), [{ deleted: 1 }]);
      const failing = createEventsPruner({ events: { pruneBefore: () => Promise.reject(new Error('database is gone')) }, clock: () => NOW, retentionDays: 7, log: (m, extra) => logs.push({ m, ...(extra ? { extra } : {}) }) });
      failing.start();
      await failing.stop();
      assert.match(logs.at(-1)!.m, /could not delete old events/);
      assert.deepEqual(logs.at(-1)!.extra, { err: 'database is gone' });
    });
  });
}
