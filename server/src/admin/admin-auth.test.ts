/**
 * The admin zone's hook records a credential's last use at most once a
 * minute: a busy automation's reads do not each become a write, not even when
 * its requests run at once, and the write is never awaited by the request.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Fastify from 'fastify';
import { ENGINES, harness } from '../testing/harness.js';
import { errorHandler } from '../http-errors.js';
import { adminAuthHook } from './admin-auth.js';
import { shouldRecordUse } from './admin-fns.js';
import { adminTokensRepo } from './admin-tokens-repo.js';

describe('shouldRecordUse', () => {
  test('never recorded, or a minute or more ago: record; less than a minute: do not', () => {
    const now = new Date('2026-12-01T10:01:00Z');
    assert.equal(shouldRecordUse(now, null), true);
    assert.equal(shouldRecordUse(now, '2026-12-01T10:00:00.000Z'), true);
    assert.equal(shouldRecordUse(now, '2026-12-01T10:00:00.001Z'), false);
    assert.equal(shouldRecordUse(now, '2026-12-01T10:01:00.000Z'), false);
  });
});

for (const engine of ENGINES) {
  describe(`last use of an admin credential on ${engine}`, () => {
    test('100 requests within a minute, 20 of them at once: one write; a minute later: one more', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const repo = adminTokensRepo(h.db.kysely);
      const clock = { now: new Date('2026-12-01T10:00:00Z') };
      const calls: Promise<boolean>[] = [];
      let release: () => void = () => undefined;
      let gate: Promise<void> = Promise.resolve();
      const app = Fastify();
      app.setErrorHandler(errorHandler);
      app.addHook(
        'onRequest',
        adminAuthHook({
          adminTokens: {
            findByHash: repo.findByHash,
            // The write is held back until the test lets it go: requests must not wait for it.
            touch: (...a) => {
              const p = gate.then(() => repo.touch(...a));
              calls.push(p);
              return p;
            },
          },
          failures: async () => ({ isAllowed: true }),
          clock: () => clock.now,
        }),
      );
      app.get('/x', { config: { minRole: 'viewer' } }, async () => ({ ok: true }));
      t.after(() => app.close());
      const get = () => app.inject({ method: 'GET', url: '/x', headers: { authorization: `Bearer ${h.adminToken}` } });
      gate = new Promise((r) => (release = r));
      assert.equal((await get()).statusCode, 200, 'answered while its write is still held back');
      const concurrent = await Promise.all(Array.from({ length: 20 }, get));
      assert.ok(concurrent.every((r) => r.statusCode === 200));
      release();
      await Promise.all(calls);
      clock.now = new Date('2026-12-01T10:00:59Z');
      for (let i = 0; i < 79; i++) assert.equal((await get()).statusCode, 200);
      assert.equal(calls.length, 1, 'one write for 100 requests in the same minute');
      const id = (await repo.list({ sessions: false, now: clock.now.toISOString(), limit: 10 }))[0]!.id;
      assert.equal((await repo.findById(id))!.last_used_at, '2026-12-01T10:00:00.000Z');
      clock.now = new Date('2026-12-01T10:01:00Z');
      await get();
      await Promise.all(calls);
      await get();
      assert.deepEqual(await Promise.all(calls), [true, true], 'a minute later, one more write');
      assert.equal((await repo.findById(id))!.last_used_at, '2026-12-01T10:01:00.000Z');
    });

    test('a failed write is logged, and the request still succeeds', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const repo = adminTokensRepo(h.db.kysely);
      const lines: string[] = [];
      const app = Fastify({ logger: { level: 'warn', stream: { write: (s: string) => void lines.push(s) } } });
      app.setErrorHandler(errorHandler);
      app.addHook(
        'onRequest',
        adminAuthHook({
          adminTokens: {
            findByHash: repo.findByHash,
            touch: async () => {
              throw new Error('disk on fire');
            },
          },
          failures: async () => ({ isAllowed: true }),
          clock: () => new Date(),
        }),
      );
      app.get('/x', { config: { minRole: 'viewer' } }, async () => ({ ok: true }));
      t.after(() => app.close());
      assert.equal((await app.inject({ method: 'GET', url: '/x', headers: { authorization: `Bearer ${h.adminToken}` } })).statusCode, 200);
      await new Promise((r) => setImmediate(r));
      assert.equal(lines.length, 1, lines.join(''));
      assert.match(lines[0]!, /could not record the last use of an admin credential/);
      assert.match(lines[0]!, /disk on fire/);
      assert.ok(!lines[0]!.includes(h.adminToken));
    });
  });
}
