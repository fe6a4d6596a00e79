/**
 * Storage conformance: the same tests against both engines (SQLite in a temp
 * dir, a fresh PostgreSQL database), through the repos the services use.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, test } from 'node:test';
import { auditRepo } from '../audit/audit-repo.js';
import { certificatesRepo } from '../certificates/certificates-repo.js';
import { devicesRepo } from '../devices/devices-repo.js';
import { createEventBus, type DeliveredEvent } from '../events/event-bus.js';
import { ENGINES, freshPgDatabase } from '../testing/harness.js';
import { raceOnOneFile } from '../testing/sqlite-race.js';
import { groupsRepo } from '../groups/groups-repo.js';
import { tokensRepo } from '../tokens/tokens-repo.js';
import { MIGRATION_NAMES, migrate } from './migrations.js';
import { openDb, type Db, type Engine } from './db.js';

async function fresh(t: { after(fn: () => unknown): void; skip(m?: string): void }, engine: Engine): Promise<{ db: Db; reopen: () => Promise<Db> } | undefined> {
  let opts: Parameters<typeof openDb>[0];
  let drop: (() => Promise<void>) | undefined;
  if (engine === 'postgres') {
    const pg = await freshPgDatabase(t);
    if (!pg) return undefined;
    opts = { databaseUrl: pg.url };
    drop = pg.drop;
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-db-'));
    opts = { dataDir: dir };
    t.after(() => rmSync(dir, { recursive: true, force: true }));
  }
  const opened: Db[] = [];
  const open = async (): Promise<Db> => {
    const db = await openDb(opts);
    opened.push(db);
    return db;
  };
  const db = await open();
  t.after(async () => {
    for (const d of opened) await d.close().catch(() => undefined);
    await drop?.();
  });
  return { db, reopen: open };
}

const at = (s: number): string => new Date(Date.UTC(2026, 2, 1, 12, 0, s)).toISOString();

async function seed(db: Db, uses: number): Promise<string> {
  await groupsRepo(db.kysely).ensure({ name: 'default', cert_lifetime_seconds: 86400, require_approval: 0, created_at: at(0) });
  const id = randomUUID();
  await tokensRepo(db.kysely).insert({ id, secret_hash: randomUUID(), group_name: 'default', uses, used_count: 0, expires_at: at(3600), revoked_at: null, created_at: at(0), created_by: 'test' });
  return id;
}

function device(id: string, firstSeen: string) {
  return { id, name: `d-${id.slice(0, 4)}`, status: 'active' as const, group_name: 'default', token_id: null, pending_spki_hash: null, pending_csr: null, facts: null, user_email: null, first_seen: firstSeen, last_seen: null, approved_at: null, approved_by: null, revoked_at: null, revocation_reason: null };
}

for (const engine of ENGINES) {
  describe(`storage conformance on ${engine}`, () => {
    test('migrations run once and are recorded; running them again changes nothing', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      await migrate(s.db);
      const again = await s.reopen();
      const rows = await again.kysely.selectFrom('latchkey_migrations' as never).selectAll().execute();
      assert.deepEqual((rows as { name: string }[]).map((r) => r.name), MIGRATION_NAMES);
      assert.deepEqual(MIGRATION_NAMES, ['001_initial', '002_gateway_tokens', '003_presence', '004_revocation_outbox', '005_compromised_keys', '006_people', '007_devices_user_email', '008_console_sessions', '009_console_indexes', '010_replica_gateways', '011_devices_search', '012_attestation_policy', '013_attestation']);
    });

    test('token consume is atomic: 50 concurrent takes of a 10-use token → exactly 10 succeed', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      const id = await seed(s.db, 10);
      const results = await Promise.all(Array.from({ length: 50 }, () => s.db.kysely.transaction().execute((trx) => tokensRepo(trx).consume(id, at(1)))));
      assert.equal(results.filter(Boolean).length, 10);
      assert.equal((await tokensRepo(s.db.kysely).findById(id))!.used_count, 10);
      // Expired or revoked tokens are never consumed.
      const id2 = await seed(s.db, 5);
      assert.equal(await tokensRepo(s.db.kysely).consume(id2, at(3600)), false);
      await tokensRepo(s.db.kysely).revoke(id2, at(2));
      assert.equal(await tokensRepo(s.db.kysely).consume(id2, at(3)), false);
    });

    test('device pages are stable and complete with a cursor; filters apply', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      await seed(s.db, 1);
      const ids = Array.from({ length: 7 }, () => randomUUID());
      for (const [i, id] of ids.entries()) await devicesRepo(s.db.kysely).insert(device(id, at(i % 3)));
      await devicesRepo(s.db.kysely).revoke(ids[0]!, at(9), 'superseded');
      const seen: string[] = [];
      let after: { key: string; id: string } | undefined;
      for (;;) {
        const page = await devicesRepo(s.db.kysely).list({ limit: 3, ...(after ? { after } : {}) });
        seen.push(...page.map((d) => d.id));
        if (page.length < 3) break;
        const last = page[page.length - 1]!;
        after = { key: last.first_seen, id: last.id };
      }
      assert.deepEqual([...seen].sort(), [...ids].sort());
      assert.equal(new Set(seen).size, 7);
      assert.deepEqual((await devicesRepo(s.db.kysely).list({ limit: 10, status: 'revoked' })).map((d) => d.id), [ids[0]]);
      assert.equal((await devicesRepo(s.db.kysely).list({ limit: 10, q: 'no_such%' })).length, 0);
    });

    test("devices of one person: exact email, case-insensitive, pageable, others' and unbound devices left out", async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      await seed(s.db, 1);
      const repo = devicesRepo(s.db.kysely);
      const owner = (i: number): string | null => (i % 3 === 0 ? 'alice@example.com' : i % 3 === 1 ? 'alice@example.com.evil' : null);
      const ids = Array.from({ length: 9 }, () => randomUUID());
      for (const [i, id] of ids.entries()) await repo.insert({ ...device(id, at(i)), user_email: owner(i) });
      const alice = ids.filter((_, i) => owner(i) === 'alice@example.com');
      assert.deepEqual((await repo.list({ limit: 10, user: 'Alice@Example.COM' })).map((d) => d.id), alice);
      assert.deepEqual((await repo.list({ limit: 10, user: 'alice@example' })).map((d) => d.id), [], 'exact, never a prefix');
      const first = await repo.list({ limit: 2, user: 'alice@example.com' });
      const last = first[first.length - 1]!;
      const rest = await repo.list({ limit: 2, user: 'alice@example.com', after: { key: last.first_seen, id: last.id } });
      assert.deepEqual([...first, ...rest].map((d) => d.id), alice);
      if (engine === 'sqlite') {
        const plan = await sql<{ detail: string }>`explain query plan select * from devices where user_email = ${'alice@example.com'} order by first_seen, id limit 3`.execute(s.db.kysely);
        assert.match(plan.rows.map((r) => r.detail).join('\n'), /USING INDEX devices_user_email/, 'the filter and the order are served by the index of 007_devices_user_email');
      }
    });

    test('device search treats %, _ and \\ in the query literally (LIKE is escaped on both engines)', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      await seed(s.db, 1);
      const names = ['ab_cd', 'abXcd', '50%off', '50 off', 'back\\slash', 'backslash'];
      const ids = new Map<string, string>();
      for (const [i, name] of names.entries()) {
        const id = randomUUID();
        ids.set(name, id);
        await devicesRepo(s.db.kysely).insert({ ...device(id, at(i)), name });
      }
      const found = async (q: string): Promise<string[]> => (await devicesRepo(s.db.kysely).list({ limit: 10, q })).map((d) => d.name).sort();
      assert.deepEqual(await found('b_c'), ['ab_cd']);
      assert.deepEqual(await found('_'), ['ab_cd']);
      assert.deepEqual(await found('0%o'), ['50%off']);
      assert.deepEqual(await found('%'), ['50%off']);
      assert.deepEqual(await found('k\\s'), ['back\\slash']);
      assert.deepEqual(await found('\\'), ['back\\slash']);
      assert.deepEqual(await found('abx'), ['abXcd'], 'search stays case-insensitive for ASCII');
    });

    test('a CRL lists revoked certificates until they expire (RFC 5280 §3.3)', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      await seed(s.db, 1);
      const dev = randomUUID();
      await devicesRepo(s.db.kysely).insert(device(dev, at(0)));
      const cert = (serial: string, notAfter: string) => ({ serial, device_id: dev, kind: 'enroll' as const, not_before: at(0), not_after: notAfter, spki_hash: serial, pem: '-', issued_at: at(0), revoked_at: null, revocation_reason: null });
      await certificatesRepo(s.db.kysely).insert(cert('aa', at(100)));
      await certificatesRepo(s.db.kysely).insert(cert('bb', at(10)));
      const revoked = await certificatesRepo(s.db.kysely).revokeAllForDevice(dev, at(5), 'keyCompromise');
      assert.deepEqual(revoked.map((r) => [r.serial, r.notAfter]).sort(), [['aa', at(100)], ['bb', at(10)]]);
      assert.deepEqual((await certificatesRepo(s.db.kysely).revokedUnexpired(at(6))).map((r) => r.serial), ['aa', 'bb']);
      assert.deepEqual((await certificatesRepo(s.db.kysely).revokedUnexpired(at(20))).map((r) => r.serial), ['aa']);
      assert.deepEqual(await certificatesRepo(s.db.kysely).revokeAllForDevice(dev, at(7), 'keyCompromise'), []);
    });

    test('audit entries come back newest first, pageable', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      for (let i = 0; i < 5; i++) await auditRepo(s.db.kysely).insert({ at: at(i), actor: 'a', action: `act.${i}`, target: null, details: { i } });
      const first = await auditRepo(s.db.kysely).list({ limit: 2 });
      assert.deepEqual(first.map((r) => r.action), ['act.4', 'act.3']);
      const next = await auditRepo(s.db.kysely).list({ limit: 2, beforeId: Number(first[1]!.id) });
      assert.deepEqual(next.map((r) => r.action), ['act.2', 'act.1']);
      assert.deepEqual(JSON.parse(next[0]!.details), { i: 2 });
    });

    test('event bus: events get increasing cursors and reach subscribers (on PostgreSQL, of another connection: LISTEN/NOTIFY)', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      const a = await createEventBus(s.db);
      // On PostgreSQL a second "replica" with its own connection and bus; SQLite is one process.
      const b = engine === 'postgres' ? await createEventBus(await s.reopen()) : a;
      const got: DeliveredEvent[] = [];
      const arrived = new Promise<void>((resolve) => {
        b.subscribe((e) => {
          got.push(e);
          if (got.length === 2) resolve();
        });
      });
      let e1: DeliveredEvent;
      let e2: DeliveredEvent;
      try {
        e1 = await a.publish({ type: 'revocation', deviceId: randomUUID(), crlNumber: 2, reason: 'keyCompromise', at: at(1) });
        e2 = await a.publish({ type: 'crl-updated', ca: 'issuing', crlNumber: 2, at: at(2) });
        await Promise.race([arrived, new Promise((_, rej) => setTimeout(() => rej(new Error('events did not arrive')), 5000))]);
      } finally {
        // Buses hold a connection: close them before the databases.
        await a.close();
        if (b !== a) await b.close();
      }
      assert.ok(Number(e2.cursor) > Number(e1.cursor));
      await Promise.race([arrived, new Promise((_, rej) => setTimeout(() => rej(new Error('events did not arrive')), 5000))]);
      assert.deepEqual(got.map((e) => e.type), ['revocation', 'crl-updated']);
      assert.deepEqual(got.map((e) => e.cursor), [e1.cursor, e2.cursor]);
    });

    test('event bus: a burst of live events (issuances) reaches the other replica complete and in order, batched', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      const a = await createEventBus(s.db);
      const b = engine === 'postgres' ? await createEventBus(await s.reopen()) : a;
      const N = 300;
      const got: DeliveredEvent[] = [];
      const arrived = new Promise<void>((resolve) => {
        b.subscribe((e) => {
          got.push(e);
          if (got.length === N) resolve();
        });
      });
      try {
        await Promise.all(
          Array.from({ length: N }, (_, i) => a.publish({ type: 'issuance', deviceId: `d${i}`, serial: i.toString(16), kind: 'enroll', at: at(i) })),
        );
        await Promise.race([arrived, new Promise((_, rej) => setTimeout(() => rej(new Error(`${got.length} of ${N} events arrived`)), 5000))]);
      } finally {
        await a.close();
        if (b !== a) await b.close();
      }
      assert.deepEqual(got.map((e) => (e as { deviceId: string }).deviceId), Array.from({ length: N }, (_, i) => `d${i}`));
      assert.ok(got.every((e) => e.cursor === ''), 'live events have no cursor');
    });

    test('event bus: a replayable event too large for one NOTIFY reaches the other replica whole, in order (read back by reference)', async (t) => {
      const s = await fresh(t, engine);
      if (!s) return;
      const a = await createEventBus(s.db);
      const b = engine === 'postgres' ? await createEventBus(await s.reopen()) : a;
      const got: DeliveredEvent[] = [];
      const arrived = new Promise<void>((resolve) => {
        b.subscribe((e) => {
          got.push(e);
          if (got.length === 3) resolve();
        });
      });
      // PostgreSQL refuses NOTIFY payloads of 8000 bytes or more: before, such an event never reached other replicas.
      const huge = 'x'.repeat(20_000);
      try {
        await a.publish({ type: 'crl-updated', ca: 'issuing', crlNumber: 1, at: at(1) });
        await a.publish({ type: 'revocation', deviceId: 'd-huge', crlNumber: 2, reason: huge, at: at(2) });
        await a.publish({ type: 'crl-updated', ca: 'issuing', crlNumber: 3, at: at(3) });
        await Promise.race([arrived, new Promise((_, rej) => setTimeout(() => rej(new Error(`${got.length} of 3 events arrived`)), 5000))]);
      } finally {
        await a.close();
        if (b !== a) await b.close();
      }
      assert.deepEqual(got.map((e) => e.type), ['crl-updated', 'revocation', 'crl-updated']);
      const rev = got[1]!;
      assert.ok(rev.type === 'revocation' && rev.reason === huge && rev.deviceId === 'd-huge' && rev.crlNumber === 2 && rev.cursor !== '');
    });
  });
}

describe('SQLite: several connections on one file', () => {
  // One connection runs its transactions one by one, so the test above cannot race on SQLite;
  // here five connections (worker threads) take uses of the same token at the same instant.
  test('token consume is atomic across connections: 5 × 10 concurrent takes of a 10-use token → exactly 10 succeed', { timeout: 60_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-db-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const db = await openDb({ dataDir: dir });
    t.after(() => db.close());
    const id = await seed(db, 10);
    const results = await raceOnOneFile(dir, Array.from({ length: 5 }, () => ({ kind: 'consume' as const, tokenId: id, takes: 10, now: at(1) })));
    assert.equal(results.reduce((n, r) => n + r.consumed!, 0), 10, JSON.stringify(results));
    assert.equal((await tokensRepo(db.kysely).findById(id))!.used_count, 10);
  });
});
