/**
 * `GET /v1/admin/overview` (the console's first page) and the audit log's
 * actor/since/until filters, on the real app. Both engines.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import type { AuditPage, ConsoleOverview, Device, GatewayTokenCreateResponse } from '@latchkey/protocol';
import WebSocket from 'ws';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, type Harness } from '../testing/harness.js';

async function enrolled(h: Harness, cn: string): Promise<{ id: string; serial: string }> {
  const r = await enroll(h, await createToken(h), (await deviceCsr({ cn })).csr);
  assert.equal(r.statusCode, 200, r.body);
  const serial = certFromBody(r.body).serialHex;
  const found = await adminCall<{ items: Device[] }>(h, 'GET', `/v1/admin/devices?q=${serial}`);
  return { id: found.json.items[0]!.id, serial };
}

for (const engine of ENGINES) {
  describe(`the console's overview on ${engine}`, () => {
    test('counts, the approval queue, expiring certificates, recent revocations, CRL age and connected gateways', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const a = await enrolled(h, 'alpha');
      const b = await enrolled(h, 'bravo');
      await h.db.kysely.insertInto('devices').values({ id: '1d4e8f10-2b3c-4d5e-8f60-718293a4b5c6', name: 'waiting', status: 'pending', group_name: 'default', token_id: null, pending_spki_hash: null, pending_csr: null, facts: null, user_email: null, first_seen: h.clock.now.toISOString(), last_seen: null, approved_at: null, approved_by: null, revoked_at: null, revocation_reason: null }).execute();

      // A gateway on /v1/events of this replica, caught up.
      const gw = (await adminCall<GatewayTokenCreateResponse>(h, 'POST', '/v1/admin/gateway-tokens', { name: 'edge-1' })).json;
      await h.app.listen({ host: '127.0.0.1', port: 0 });
      const ws = new WebSocket(`ws://127.0.0.1:${(h.app.server.address() as AddressInfo).port}/v1/events`, { headers: { authorization: `Bearer ${gw.token}` } });
      t.after(() => ws.close());
      const got: unknown[] = [];
      const revocationSeen = new Promise<void>((resolve) => ws.on('message', (d) => (got.push(JSON.parse(d.toString())), resolve())));
      await new Promise<void>((resolve, reject) => (ws.once('open', () => resolve()), ws.once('error', reject)));
      ws.send(JSON.stringify({ type: 'subscribe' }));

      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${b.id}/revoke`, { reason: 'keyCompromise' })).status, 200);
      await revocationSeen;

      const o = await adminCall<ConsoleOverview>(h, 'GET', '/v1/admin/overview?expiringWithinSeconds=7776000');
      assert.equal(o.status, 200, JSON.stringify(o.json));
      assert.deepEqual(o.json.devices, { pending: 1, active: 1, revoked: 1, denied: 0, total: 3 });
      assert.equal(o.json.online, 0);
      assert.deepEqual(o.json.pendingApprovals.map((d) => d.name), ['waiting']);
      assert.equal(o.json.expiringSoon.count, 1, 'only the active device\'s current certificate');
      assert.deepEqual(o.json.expiringSoon.items.map((i) => [i.deviceId, i.serial, i.name]), [[a.id, a.serial, 'alpha']]);
      assert.deepEqual(o.json.recentRevocations.map((r) => [r.deviceId, r.name, r.reason, r.actor]), [[b.id, 'bravo', 'keyCompromise', 'admin:initial-admin']]);
      assert.ok(o.json.crl.issuing && o.json.crl.issuing.crlNumber >= 1 && o.json.crl.issuing.ageSeconds >= 0, JSON.stringify(o.json.crl));
      assert.ok(o.json.crl.root);
      assert.equal(o.json.gateways.length, 1);
      const g = o.json.gateways[0]!;
      assert.equal(g.name, 'edge-1');
      assert.equal(g.tokenId, gw.info.id);
      assert.equal(g.remote, '127.0.0.1');
      assert.equal(g.behindEvents, 0);
      assert.ok(g.lastEventAt, 'the revocation went out on it');

      // A gateway on another live replica, as that replica's last heartbeat published it: behind by how many events
      // it still lacks. A stale replica's gateways and a row that cannot be read are left out.
      const head = Number((await h.db.kysely.selectFrom('events').select((eb) => eb.fn.max('id').as('m')).executeTakeFirstOrThrow()).m);
      const at = h.clock.now.toISOString();
      const old = new Date(h.clock.now.getTime() - 60_000).toISOString();
      const elsewhere = { tokenId: 'tok-2', name: 'edge-2', remote: '10.1.1.1', connectedAt: at, lastEventAt: null, position: head - 2, backlogBytes: 512 };
      await h.db.kysely
        .insertInto('replicas')
        .values([
          { id: 'replica-b', started_at: at, seen_at: at, gateways: JSON.stringify([elsewhere]) },
          { id: 'replica-stale', started_at: old, seen_at: old, gateways: JSON.stringify([{ ...elsewhere, name: 'edge-stale' }]) },
          { id: 'replica-garbled', started_at: at, seen_at: at, gateways: '{not json' },
        ])
        .execute();
      const all = await adminCall<ConsoleOverview>(h, 'GET', '/v1/admin/overview');
      assert.deepEqual(all.json.gateways.map((x) => [x.name, x.behindEvents, x.backlogBytes]), [['edge-2', 2, 512], ['edge-1', 0, g.backlogBytes]], 'furthest behind first');

      // Nothing ends within a minute; the window is bounded.
      const soon = await adminCall<ConsoleOverview>(h, 'GET', '/v1/admin/overview?expiringWithinSeconds=60');
      assert.deepEqual(soon.json.expiringSoon, { withinSeconds: 60, count: 0, items: [] });
      assert.equal((await adminCall(h, 'GET', '/v1/admin/overview?expiringWithinSeconds=99999999')).status, 400);
    });

    test('the audit log filters by actor (exact) and by time (since inclusive, until exclusive), newest first', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const at = (i: number): string => new Date(Date.UTC(2031, 0, 1, 0, i)).toISOString();
      await h.db.kysely.insertInto('audit').values([0, 1, 2, 3].map((i) => ({ at: at(i), actor: i % 2 ? 'user:ann@example.com' : 'admin:ci', action: 'token.create', target: null, details: '{}' }))).execute();
      const list = async (q: string): Promise<string[]> => {
        const r = await adminCall<AuditPage>(h, 'GET', `/v1/admin/audit?${q}`);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        return r.json.items.map((e) => `${e.actor}@${e.at}`);
      };
      assert.deepEqual(await list('actor=user:ann@example.com'), [`user:ann@example.com@${at(3)}`, `user:ann@example.com@${at(1)}`]);
      assert.deepEqual(await list('actor=user:ann'), [], 'exact, not a prefix');
      assert.deepEqual(await list(`since=${at(1)}&until=${at(3)}`), [`admin:ci@${at(2)}`, `user:ann@example.com@${at(1)}`]);
      assert.deepEqual(await list(`actor=admin:ci&since=${at(1)}`), [`admin:ci@${at(2)}`]);
      assert.equal((await adminCall(h, 'GET', '/v1/admin/audit?since=yesterday')).status, 400);
    });
  });
}
