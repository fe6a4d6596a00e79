/**
 * The devices list the console reads (issue 13): search by name, id, user
 * and certificate serial; the online filter; every sort and order paging by
 * keyset cursors over ties; one certificate query per page. Both engines.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { DEFAULT_DEVICE_ORDER, DEVICE_SORTS, type Device, type DeviceSort } from '@latchkey/protocol';
import type { DevicesTable } from '../storage/schema.js';
import { ENGINES, adminCall, harness, type Harness } from '../testing/harness.js';

type Page = { items: Device[]; nextCursor: string | null };
const T = (i: number): string => new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString();

/** Rows written directly: this is about reading them back. Names, times, statuses and users repeat (ties). */
async function seed(h: Harness, n: number): Promise<DevicesTable[]> {
  const statuses: DevicesTable['status'][] = ['active', 'pending', 'revoked', 'denied'];
  const rows: DevicesTable[] = Array.from({ length: n }, (_, i) => ({
    id: randomUUID(),
    name: `host${i % 4}`,
    status: statuses[i % 3]!,
    group_name: 'default',
    token_id: null,
    pending_spki_hash: null,
    pending_csr: null,
    facts: null,
    user_email: i % 3 === 0 ? null : `user${i % 2}@example.com`,
    first_seen: T(i % 5),
    last_seen: i % 4 === 0 ? null : T(10 + (i % 3)),
    approved_at: null,
    approved_by: null,
    revoked_at: null,
    revocation_reason: null,
  }));
  await h.db.kysely.insertInto('devices').values(rows).execute();
  return rows;
}

const cert = (deviceId: string, serial: string, issued: number, revoked: string | null) => ({
  serial,
  device_id: deviceId,
  kind: 'enroll' as const,
  not_before: T(issued),
  not_after: T(issued + 86_400),
  spki_hash: serial,
  pem: '-',
  issued_at: T(issued),
  revoked_at: revoked,
  revocation_reason: revoked ? 'superseded' : null,
});

const KEY: Record<DeviceSort, (d: DevicesTable) => string> = {
  name: (d) => d.name,
  firstSeen: (d) => d.first_seen,
  lastSeen: (d) => d.last_seen ?? '',
  status: (d) => d.status,
  user: (d) => d.user_email ?? '',
};

async function walk(h: Harness, query: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 50; pages++) {
    const r: { status: number; json: Page } = await adminCall<Page>(h, 'GET', `/v1/admin/devices?limit=3&${query}${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    ids.push(...r.json.items.map((d) => d.id));
    cursor = r.json.nextCursor;
    if (!cursor) return ids;
  }
  throw new Error('more pages than rows');
}

for (const engine of ENGINES) {
  describe(`the console's devices list on ${engine}`, () => {
    test('every sort, in both orders, pages through all rows exactly once in (key, id) order, ties included', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const rows = await seed(h, 17);
      for (const sort of DEVICE_SORTS) {
        for (const order of ['asc', 'desc'] as const) {
          const dir = order === 'asc' ? 1 : -1;
          const expected = [...rows]
            .sort((a, b) => {
              const ka = KEY[sort](a), kb = KEY[sort](b);
              return dir * (ka < kb ? -1 : ka > kb ? 1 : a.id < b.id ? -1 : 1);
            })
            .map((d) => d.id);
          assert.deepEqual(await walk(h, `sort=${sort}&order=${order}`), expected, `${sort} ${order}`);
        }
        // Without order=, each sort has its default.
        const dflt = await walk(h, `sort=${sort}`);
        assert.deepEqual(dflt, await walk(h, `sort=${sort}&order=${DEFAULT_DEVICE_ORDER[sort]}`), `${sort} default`);
      }
      // The default: firstSeen, newest first.
      assert.deepEqual(await walk(h, ''), await walk(h, 'sort=firstSeen&order=desc'));
    });

    test("a cursor is only read under its own sort and order; garbage is refused, saying what to do", async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      await seed(h, 5);
      const first = await adminCall<Page>(h, 'GET', '/v1/admin/devices?limit=2&sort=name');
      const other = await adminCall<{ error: { code: string; message: string } }>(h, 'GET', `/v1/admin/devices?limit=2&sort=lastSeen&cursor=${first.json.nextCursor}`);
      assert.equal(other.status, 400);
      assert.match(other.json.error.message, /sort=name&order=asc/);
      const bad = await adminCall<{ error: { code: string; message: string } }>(h, 'GET', '/v1/admin/devices?cursor=bm9wZQ');
      assert.equal(bad.status, 400);
      assert.match(bad.json.error.message, /first page/);
    });

    test('q matches the name and the bound email anywhere, the id and any certificate serial from their start (case-insensitive), and combines with filters', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const [a, b, c] = await seed(h, 3);
      await h.db.kysely.updateTable('devices').set({ name: 'Finance-Laptop' }).where('id', '=', a!.id).execute();
      await h.db.kysely.updateTable('devices').set({ user_email: 'carol@corp.example' }).where('id', '=', b!.id).execute();
      // c holds an old (superseded) and a current certificate: an old serial finds it too.
      await h.db.kysely.insertInto('certificates').values([cert(c!.id, '0a1b2c3d4e5f', 1, T(2)), cert(c!.id, '77deadbeef01', 2, null)]).execute();
      const q = async (text: string, extra = ''): Promise<string[]> => (await adminCall<Page>(h, 'GET', `/v1/admin/devices?q=${encodeURIComponent(text)}${extra}`)).json.items.map((d) => d.id);
      assert.deepEqual(await q('finance-lap'), [a!.id]);
      assert.deepEqual(await q('CAROL@'), [b!.id]);
      assert.deepEqual(await q('0A1B2C'), [c!.id], 'an earlier serial, upper case, its beginning');
      assert.deepEqual(await q('77deadbeef01'), [c!.id], 'a whole serial');
      assert.deepEqual(await q('deadbeef'), [], 'the middle of a serial is not searched (an index serves the beginning)');
      assert.deepEqual(await q('0a1'), [], 'fewer than 4 hex digits do not search serials');
      assert.deepEqual(await q(c!.id.slice(0, 13)), [c!.id]);
      assert.deepEqual(await q(c!.id.toUpperCase()), [c!.id]);
      assert.deepEqual(await q('ffffffffff'), []);
      assert.deepEqual(await q('77deadbeef', `&status=${c!.status === 'active' ? 'pending' : 'active'}`), [], 'filters combine');
      // The list shows each device's current certificate (one query for the page).
      const shown = (await adminCall<Page>(h, 'GET', '/v1/admin/devices?q=77deadbeef')).json.items[0]!;
      assert.equal(shown.certificate?.serial, '77deadbeef01');
    });

    test('the name and email search through the trigram index finds exactly what a substring match finds, also after a rename', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const rows = await seed(h, 8);
      const names = ['Finance-Laptop', 'ab"c d', '50%_off', 'LAPTOP-2', 'x', 'ops-laptop', 'ab', 'desk*top'];
      for (const [i, name] of names.entries()) await h.db.kysely.updateTable('devices').set({ name }).where('id', '=', rows[i]!.id).execute();
      await h.db.kysely.updateTable('devices').set({ user_email: 'carol.laptop@corp.example' }).where('id', '=', rows[4]!.id).execute();
      const want = async (text: string): Promise<string[]> => {
        const all = await h.db.kysely.selectFrom('devices').select(['id', 'name', 'user_email']).execute();
        const t = text.toLowerCase();
        return all.filter((d) => d.name.toLowerCase().includes(t) || (d.user_email ?? '').includes(t) || d.id.startsWith(t)).map((d) => d.id).sort();
      };
      const got = async (text: string): Promise<string[]> => (await adminCall<Page>(h, 'GET', `/v1/admin/devices?limit=500&q=${encodeURIComponent(text)}`)).json.items.map((d) => d.id).sort();
      for (const text of ['lap', 'LAPTOP', 'laptop-', 'a', 'ab', 'b"c', '"', '%_o', '0%', 'sk*t', 'corp.ex', 'top', 'host', 'nothing-like-it']) {
        assert.deepEqual(await got(text), await want(text), `q=${text}`);
      }
      await h.db.kysely.updateTable('devices').set({ name: 'renamed-box' }).where('id', '=', rows[0]!.id).execute();
      assert.deepEqual(await got('finance'), []);
      assert.deepEqual(await got('renamed'), [rows[0]!.id]);
    });

    test('a search matching more devices than it fetches by id pages through all of them once, in order', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const rows = await seed(h, 2100);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Page = (await adminCall<Page>(h, 'GET', `/v1/admin/devices?limit=500&q=host&sort=name${cursor ? `&cursor=${cursor}` : ''}`)).json;
        seen.push(...page.items.map((d) => d.id));
        cursor = page.nextCursor;
      } while (cursor);
      assert.equal(seen.length, rows.length);
      assert.equal(new Set(seen).size, rows.length);
      assert.deepEqual(seen, [...rows].sort((a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1)).map((d) => d.id));
      assert.equal((await adminCall<Page>(h, 'GET', '/v1/admin/devices?q=host3')).json.items.length, 100, 'one name in four');
    });

    test('online=true|false: devices with an agent on a live replica, and the others; a stale replica does not count', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const rows = await seed(h, 6);
      const now = h.clock.now.getTime();
      await h.db.kysely.insertInto('replicas').values([
        { id: 'live-replica', started_at: new Date(now).toISOString(), seen_at: new Date(now).toISOString() },
        { id: 'dead-replica', started_at: new Date(now - 600_000).toISOString(), seen_at: new Date(now - 600_000).toISOString() },
      ]).execute();
      const session = (id: string, replica: string, deviceId: string) => ({ id, replica_id: replica, device_id: deviceId, since: new Date(now).toISOString(), agent_version: null, serial: 'ab', remote: '127.0.0.1' });
      await h.db.kysely.insertInto('agent_sessions').values([session('s1', 'live-replica', rows[0]!.id), session('s2', 'live-replica', rows[1]!.id), session('s3', 'dead-replica', rows[2]!.id)]).execute();
      const ids = async (query: string): Promise<string[]> => (await adminCall<Page>(h, 'GET', `/v1/admin/devices?sort=name&${query}`)).json.items.map((d) => d.id).sort();
      assert.deepEqual(await ids('online=true'), [rows[0]!.id, rows[1]!.id].sort());
      assert.deepEqual(await ids('online=false'), rows.slice(2).map((d) => d.id).sort());
      const page = await adminCall<Page>(h, 'GET', '/v1/admin/devices?online=true');
      assert.ok(page.json.items.every((d) => d.online === true));
      assert.equal((await adminCall(h, 'GET', '/v1/admin/devices?online=maybe')).status, 400);
    });
  });
}
