/**
 * `GET /v1/admin/live` over real HTTP (server-sent events): audit rows from
 * another replica on the same database, presence changes, bus events, the
 * per-credential bound, a revoked credential, and the app's close. The
 * poller and ping ticks are driven by the test (hub.poll / hub.ping) as well
 * as by their timers. Both engines.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { ENGINES, adminCall, harness, openApp, type Harness } from '../testing/harness.js';
import { buildCaContext, loadCaKeys } from '../ca/ca-context.js';
import { FILES } from '../ca/ca-files.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Sse {
  status: number;
  events: { event: string; data: unknown }[];
  text: () => string;
  ended: Promise<void>;
  /** Resolves when an event matching `f` has arrived. */
  until(f: (e: { event: string; data: unknown }) => boolean): Promise<{ event: string; data: unknown }>;
  close(): void;
}

async function listen(h: Harness): Promise<number> {
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  return (h.app.server.address() as AddressInfo).port;
}

function openStream(port: number, token: string): Promise<Sse> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/v1/admin/live', headers: { authorization: `Bearer ${token}` } }, (res) => {
      let buf = '';
      const events: Sse['events'] = [];
      const waiters = new Set<() => void>();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (const block of buf.split('\n\n').slice(0, -1)) {
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
        }
        buf = buf.slice(buf.lastIndexOf('\n\n') + 2 || 0);
        for (const w of [...waiters]) w();
      });
      const ended = new Promise<void>((r) => res.on('close', () => r()));
      let all = '';
      res.on('data', (c: string) => (all += c));
      resolve({
        status: res.statusCode ?? 0,
        events,
        text: () => all,
        ended,
        until(f) {
          return new Promise((ok, fail) => {
            const check = (): void => {
              const hit = events.find(f);
              if (hit) {
                waiters.delete(check);
                clearTimeout(timer);
                ok(hit);
              }
            };
            const timer = setTimeout(() => fail(new Error(`no such event; got ${JSON.stringify(events)}`)), 10_000);
            waiters.add(check);
            check();
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

for (const engine of ENGINES) {
  describe(`the console's live stream on ${engine}`, () => {
    test('an audit row written by another replica on the same database reaches the stream; bus events and presence changes too', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const port = await listen(h);
      const s = await openStream(port, h.adminToken);
      t.after(() => s.close());
      assert.equal(s.status, 200);
      // The poller's first tick starts from the newest row: wait for it.
      await h.live.poll();

      // A second replica: its own app and connections on the same data dir and database.
      const passphrase = readFileSync(join(h.dataDir, FILES.passphrase), 'utf8').trim();
      const ca = buildCaContext(h.dataDir, h.config, loadCaKeys(h.dataDir, passphrase));
      const other = await openApp({ dataDir: h.dataDir, ca, config: h.config, clock: () => h.clock.now, logs: [], ...(engine === 'postgres' ? { databaseUrl: h.config.databaseUrl! } : {}) });
      // Closed here, not in t.after: the harness drops the database in its own (earlier) after hook.
      const made = await other.app.inject({ method: 'POST', url: '/v1/admin/tokens', headers: { authorization: `Bearer ${h.adminToken}` }, payload: { uses: 1 } });
      assert.equal(made.statusCode, 201, made.body);
      await h.live.poll();
      const audit = await s.until((e) => e.event === 'audit' && (e.data as { action: string }).action === 'token.create');
      assert.equal((audit.data as { actor: string }).actor, 'admin:initial-admin');
      await other.app.close();
      await other.bus.close();
      await other.db.close();

      // A bus event, as published on this replica.
      await h.bus.publish({ type: 'policy', group: 'default', at: h.clock.now.toISOString() });
      assert.deepEqual((await s.until((e) => e.event === 'policy')).data, { type: 'policy', group: 'default', at: h.clock.now.toISOString() });

      // An agent comes online (presence rows, as any replica writes them).
      const devices = await h.db.kysely.selectFrom('replicas').select('id').execute();
      await h.db.kysely.insertInto('devices').values({ id: '0b4b9b4e-3c7a-4d2a-9c1e-5f6a7b8c9d0e', name: 'x', status: 'active', group_name: 'default', token_id: null, pending_spki_hash: null, pending_csr: null, facts: null, user_email: null, first_seen: h.clock.now.toISOString(), last_seen: null, approved_at: null, approved_by: null, revoked_at: null, revocation_reason: null }).execute();
      await h.db.kysely.insertInto('agent_sessions').values({ id: 'sess-1', replica_id: devices[0]!.id, device_id: '0b4b9b4e-3c7a-4d2a-9c1e-5f6a7b8c9d0e', since: h.clock.now.toISOString(), agent_version: null, serial: 'ab', remote: '127.0.0.1' }).execute();
      await h.live.poll();
      await s.until((e) => e.event === 'presence' && (e.data as { online: number }).online === 1);
      assert.deepEqual(s.events.filter((e) => e.event === 'presence').map((e) => e.data), [{ online: 1 }], 'another replica starting is no change of who is online');
      // Each audit row once, however many ticks ran.
      await h.live.poll();
      assert.equal(s.events.filter((e) => e.event === 'audit' && (e.data as { action: string }).action === 'token.create').length, 1);
    });

    test('the 11th stream of one credential is refused with 429; another credential still gets one', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const port = await listen(h);
      const streams: Sse[] = [];
      for (let i = 0; i < 10; i++) streams.push(await openStream(port, h.adminToken));
      t.after(() => streams.forEach((s) => s.close()));
      assert.deepEqual(streams.map((s) => s.status), Array(10).fill(200));
      const refused = await adminCall<{ error: { code: string; message: string } }>(h, 'GET', '/v1/admin/live');
      assert.equal(refused.status, 429);
      assert.match(refused.json.error.message, /at most 10/);
      const viewer = (await adminCall<{ token: string }>(h, 'POST', '/v1/admin/admin-tokens', { name: 'wallboard', role: 'viewer' })).json.token;
      const other = await openStream(port, viewer);
      t.after(() => other.close());
      assert.equal(other.status, 200);
      assert.equal(h.live.size, 11);
    });

    test('a revoked credential\'s stream closes at the next ping; the app\'s close ends the others', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const port = await listen(h);
      const made = await adminCall<{ token: string; info: { id: string } }>(h, 'POST', '/v1/admin/admin-tokens', { name: 'wallboard', role: 'viewer' });
      assert.equal(made.status, 201, JSON.stringify(made.json));
      const revoked = await openStream(port, made.json.token);
      const kept = await openStream(port, h.adminToken);
      assert.equal(revoked.status, 200);
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/admin-tokens/${made.json.info.id}`)).status, 200);
      await h.live.ping();
      await revoked.ended;
      assert.match(revoked.text(), /: ping/);
      assert.equal(h.live.size, 1, 'the other credential\'s stream stays');
      // A graceful stop is not held open by the stream.
      await h.app.close();
      await kept.ended;
      assert.equal(h.live.size, 0);
    });
  });
}
