/**
 * The gateways' event stream `/v1/events` against the real app listening on
 * 127.0.0.1 (SQLite and PostgreSQL), and the gateway token admin API.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { GatewayEvent, GatewayTokenCreateResponse, GatewayTokenInfo } from '@latchkey/protocol';
import WebSocket from 'ws';
import { hashSecret } from '../auth/secret-hash.js';
import { waits } from '../testing/wait-for.js';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, type Harness } from '../testing/harness.js';

async function enrolledDevice(h: Harness): Promise<{ id: string; serial: string }> {
  const r = await enroll(h, await createToken(h), (await deviceCsr()).csr);
  assert.equal(r.statusCode, 200, r.body);
  const serial = certFromBody(r.body).serialHex;
  const list = await adminCall<{ items: { id: string; certificate: { serial: string } | null }[] }>(h, 'GET', '/v1/admin/devices');
  return { id: list.json.items.find((d) => d.certificate?.serial === serial)!.id, serial };
}

async function gatewayToken(h: Harness, name = 'edge-1'): Promise<GatewayTokenCreateResponse> {
  const r = await adminCall<GatewayTokenCreateResponse>(h, 'POST', '/v1/admin/gateway-tokens', { name });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

async function listen(h: Harness): Promise<string> {
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  return `ws://127.0.0.1:${(h.app.server.address() as AddressInfo).port}/v1/events`;
}

/** A client of the stream that records what it gets. */
function client(url: string, token: string | undefined, opts: { autoPong?: boolean } = {}) {
  const ws = new WebSocket(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, autoPong: opts.autoPong ?? true });
  const got: GatewayEvent[] = [];
  let pings = 0;
  // Waits resolve on the message that makes them true.
  const { changed, until } = waits(() => `got ${JSON.stringify(got)}`);
  ws.on('message', (d) => {
    got.push(JSON.parse(d.toString()) as GatewayEvent);
    changed();
  });
  ws.on('ping', () => pings++);
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const refused = new Promise<{ status: number; body: string }>((resolve) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
  });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return {
    ws,
    got,
    pings: () => pings,
    opened,
    refused,
    closed,
    until,
    subscribe: (since?: string) => ws.send(JSON.stringify({ type: 'subscribe', ...(since !== undefined ? { since } : {}) })),
  };
}

/** What the events table holds, as the stream must replay it. */
async function persisted(h: Harness): Promise<{ id: string; type: string }[]> {
  return (await h.db.kysely.selectFrom('events').select(['id', 'type']).orderBy('id').execute()).map((r) => ({ id: String(r.id), type: r.type }));
}

type Client = ReturnType<typeof client>;

/**
 * A barrier instead of a sleep: revoke a new device and wait until every
 * client has its revocation event. A stream delivers in order, so whatever
 * the server was going to send a client before (a duplicate, a stray replay)
 * has arrived by then. Returns the marker's device id.
 */
async function marker(h: Harness, clients: Client[]): Promise<string> {
  const d = await enrolledDevice(h);
  assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${d.id}/revoke`, {})).status, 200);
  for (const x of clients) await x.until(`the marker revocation of ${d.id}`, () => x.got.some((e) => e.type === 'revocation' && e.deviceId === d.id));
  return d.id;
}

for (const engine of ENGINES) {
  describe(`gateway event stream on ${engine}`, () => {
    test('gateway tokens: admin creates (lkg_…, shown once, stored as SHA-256), viewer lists, admin revokes; audited; roles enforced', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const r = await gatewayToken(h, 'nginx-eu-1');
      assert.match(r.token, /^lkg_[A-Za-z0-9_-]{43}$/);
      assert.equal(r.info.name, 'nginx-eu-1');
      assert.equal(r.info.revokedAt, null);
      const row = await h.db.kysely.selectFrom('gateway_tokens').selectAll().where('id', '=', r.info.id).executeTakeFirstOrThrow();
      assert.equal(row.secret_hash, hashSecret(r.token));
      assert.ok(!JSON.stringify(row).includes(r.token), 'the secret is not stored');

      const list = await adminCall<{ items: GatewayTokenInfo[] }>(h, 'GET', '/v1/admin/gateway-tokens');
      assert.equal(list.status, 200);
      assert.deepEqual(list.json.items.map((i) => i.id), [r.info.id]);
      assert.ok(!JSON.stringify(list.json).includes(r.token), 'a listing never shows the secret');

      assert.equal((await adminCall(h, 'POST', '/v1/admin/gateway-tokens', { name: '' })).status, 400);
      assert.equal((await adminCall(h, 'POST', '/v1/admin/gateway-tokens', { name: 'x', extra: 1 })).status, 400);
      assert.equal((await adminCall(h, 'DELETE', '/v1/admin/gateway-tokens/nope')).status, 404);
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/gateway-tokens/${r.info.id}`)).status, 204);
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/gateway-tokens/${r.info.id}`)).status, 409);
      const after = await adminCall<{ items: GatewayTokenInfo[] }>(h, 'GET', '/v1/admin/gateway-tokens');
      assert.ok(after.json.items[0]!.revokedAt);

      const audit = await adminCall<{ items: { action: string; target: string }[] }>(h, 'GET', '/v1/admin/audit?action=gateway-token.create');
      assert.deepEqual(audit.json.items.map((a) => a.target), [r.info.id]);
      const audit2 = await adminCall<{ items: { action: string; target: string }[] }>(h, 'GET', '/v1/admin/audit?action=gateway-token.revoke');
      assert.deepEqual(audit2.json.items.map((a) => a.target), [r.info.id]);

      // Roles: an operator may not create or revoke gateway tokens, a viewer may list them.
      const insertAdmin = async (role: 'viewer' | 'operator'): Promise<string> => {
        const secret = `test-${role}-${r.info.id}`;
        await h.db.kysely.insertInto('admin_tokens').values({ id: `${role}-id`, secret_hash: hashSecret(secret), name: role, role, created_at: new Date().toISOString(), revoked_at: null }).execute();
        return secret;
      };
      const op = await insertAdmin('operator');
      const viewer = await insertAdmin('viewer');
      assert.equal((await adminCall(h, 'POST', '/v1/admin/gateway-tokens', { name: 'x' }, op)).status, 403);
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/gateway-tokens/${r.info.id}`, undefined, op)).status, 403);
      assert.equal((await adminCall(h, 'GET', '/v1/admin/gateway-tokens', undefined, viewer)).status, 200);
    });

    test('the upgrade needs a valid gateway token: none or unknown → 401, revoked → 403, an admin token is not one', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const url = await listen(h);
      const g = await gatewayToken(h);
      const none = await client(url, undefined).refused;
      assert.equal(none.status, 401);
      assert.equal((JSON.parse(none.body) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
      assert.equal((await client(url, 'lkg_not-a-token').refused).status, 401);
      assert.equal((await client(url, h.adminToken).refused).status, 401);
      await adminCall(h, 'DELETE', `/v1/admin/gateway-tokens/${g.info.id}`);
      const revoked = await client(url, g.token).refused;
      assert.equal(revoked.status, 403);
      assert.match(revoked.body, /revoked/);
    });

    test('replay after a cursor, in order, then live events with no duplicate; without since only new events', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const url = await listen(h);
      const { token } = await gatewayToken(h);
      const a = await enrolledDevice(h);
      const b = await enrolledDevice(h);
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${a.id}/revoke`, { reason: 'keyCompromise' })).status, 200);
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${b.id}/revoke`, {})).status, 200);
      const table = await persisted(h);
      const firstRevocation = table.find((e) => e.type === 'revocation')!;

      // Everything from the start.
      const all = client(url, token);
      await all.opened;
      all.subscribe('0');
      await all.until('the replay', () => all.got.length === table.length);
      assert.deepEqual(all.got.map((e) => e.cursor), table.map((e) => e.id));
      assert.deepEqual(all.got.map((e) => e.type), table.map((e) => e.type));
      const revs = all.got.filter((e) => e.type === 'revocation');
      assert.deepEqual(revs.map((e) => [e.deviceId, e.issuer, e.reason]), [
        [a.id, 'issuing', 'keyCompromise'],
        [b.id, 'issuing', 'unspecified'],
      ]);
      // Each names the first CRL that lists it: the crl-updated event just before it.
      for (const r of revs) {
        const i = all.got.indexOf(r);
        const crl = all.got.slice(0, i).reverse().find((e) => e.type === 'crl-updated' && e.issuer === 'issuing');
        assert.ok(r.type === 'revocation' && crl?.type === 'crl-updated' && r.crlNumber === crl.crlNumber, JSON.stringify([r, crl]));
      }
      for (const e of all.got) if (e.type === 'crl-updated') {
        assert.match(e.crlNumber, /^[1-9][0-9]*$/);
        assert.equal(e.url, e.issuer === 'root' ? '/crl/root.pem' : '/crl.pem');
      }

      // From a cursor: only what came after it.
      const resumed = client(url, token);
      await resumed.opened;
      resumed.subscribe(firstRevocation.id);
      const later = table.filter((e) => Number(e.id) > Number(firstRevocation.id));
      await resumed.until('the replay after the cursor', () => resumed.got.length === later.length);
      assert.deepEqual(resumed.got.map((e) => e.cursor), later.map((e) => e.id));

      // Without since: nothing old.
      const fresh = client(url, token);
      await fresh.opened;
      fresh.subscribe();

      // Live: a revocation while all three listen (and one more subscribing from 0 at the same moment).
      const racing = client(url, token);
      await racing.opened;
      const c = await enrolledDevice(h);
      racing.subscribe('0');
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${c.id}/revoke`, {})).status, 200);
      const isC = (e: GatewayEvent) => e.type === 'revocation' && e.deviceId === c.id;
      for (const x of [all, resumed, fresh, racing]) await x.until('the live revocation', () => x.got.some(isC));
      await marker(h, [all, resumed, fresh, racing]);
      const now = await persisted(h);
      const head: string = now[now.length - 1]!.id;
      for (const x of [all, resumed, fresh, racing]) await x.until('every persisted event', () => x.got.at(-1)?.cursor === head);
      const newer = now.filter((e) => Number(e.id) > Number(table[table.length - 1]!.id));
      assert.deepEqual(fresh.got.map((e) => e.cursor), newer.map((e) => e.id), 'without since: only the new events');
      assert.deepEqual(all.got.map((e) => e.cursor), now.map((e) => e.id), 'replay then live: no gap, no duplicate');
      assert.deepEqual(racing.got.map((e) => e.cursor), now.map((e) => e.id), 'subscribing during a revocation: no gap, no duplicate');
      const live = fresh.got.find(isC)!;
      assert.ok(live.type === 'revocation' && !('serials' in live));
      // The CRL listing the serial was published before the revocation event.
      const crlBefore = fresh.got.findIndex((e) => e.type === 'crl-updated' && e.issuer === 'issuing');
      assert.ok(crlBefore >= 0 && crlBefore < fresh.got.findIndex(isC));
      for (const x of [all, resumed, fresh, racing]) x.ws.close();
    });

    test('resync-required with the current cursor for an unknown or malformed cursor; a bad message closes 4000', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const url = await listen(h);
      const { token } = await gatewayToken(h);
      const d = await enrolledDevice(h);
      await adminCall(h, 'POST', `/v1/admin/devices/${d.id}/revoke`, {});
      const far = String(Number((await persisted(h)).at(-1)!.id) + 1000);
      for (const since of [far, 'not-a-number', '-1']) {
        const head: string = (await persisted(h)).at(-1)!.id;
        const x = client(url, token);
        await x.opened;
        x.subscribe(since);
        await x.until('resync-required', () => x.got.length > 0);
        // Then only live events: the marker's, nothing replayed.
        const m = await marker(h, [x]);
        assert.deepEqual(x.got[0], { type: 'resync-required', cursor: head }, since);
        const rest = x.got.slice(1);
        assert.ok(rest.every((e) => Number(e.cursor) > Number(head)), `${since}: nothing older than the resync cursor: ${JSON.stringify(rest)}`);
        const last = rest.at(-1);
        assert.ok(last?.type === 'revocation' && last.deviceId === m, JSON.stringify(rest));
        x.ws.close();
      }
      const bad = client(url, token);
      await bad.opened;
      bad.ws.send(JSON.stringify({ type: 'subscribe', since: 3 }));
      assert.equal((await bad.closed).code, 4000);
      const twice = client(url, token);
      await twice.opened;
      twice.subscribe();
      twice.subscribe();
      assert.equal((await twice.closed).code, 4000);
    });

    test('revoking the gateway token closes its streams (4003), not the others', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const url = await listen(h);
      const g1 = await gatewayToken(h, 'one');
      const g2 = await gatewayToken(h, 'two');
      const x1 = client(url, g1.token);
      const x2 = client(url, g2.token);
      await Promise.all([x1.opened, x2.opened]);
      x1.subscribe();
      x2.subscribe();
      // Both subscribed and live: each has received an event.
      await marker(h, [x1, x2]);
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/gateway-tokens/${g1.info.id}`)).status, 204);
      const c = await x1.closed;
      assert.equal(c.code, 4003);
      // The other stream still delivers: it gets the next event.
      await marker(h, [x2]);
      assert.equal(x2.ws.readyState, WebSocket.OPEN);
      x2.ws.close();
    });

    test('the server pings; a gateway that stops answering is dropped', { timeout: 30_000 }, async (t) => {
      const h = await harness(t, engine, { config: { agentHeartbeatSeconds: 1 } });
      if (!h) return;
      const url = await listen(h);
      const { token } = await gatewayToken(h);
      const ok = client(url, token);
      const dead = client(url, token, { autoPong: false });
      await Promise.all([ok.opened, dead.opened]);
      ok.subscribe();
      dead.subscribe();
      const c = await dead.closed;
      assert.equal(c.code, 1006, 'terminated without a close frame');
      assert.ok(dead.pings() >= 1);
      assert.ok(ok.pings() >= 2);
      assert.equal(ok.ws.readyState, WebSocket.OPEN);
      ok.ws.close();
    });

    test('a revocation event names the device and a CRL number, never a list of serials; the admin answer names the unexpired certificates it revoked', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const a = await enrolledDevice(h);
      // An older certificate of the same device, long expired (renewals do not revoke their predecessor).
      const past = new Date(h.clock.now.getTime() - 90 * 86_400_000).toISOString();
      await h.db.kysely.insertInto('certificates').values({ serial: '0e0e', device_id: a.id, kind: 'enroll', not_before: past, not_after: past, spki_hash: 'x', pem: '-', issued_at: past, revoked_at: null, revocation_reason: null }).execute();
      const events: { type: string; serials?: string[]; crlNumber?: number }[] = [];
      const off = h.bus.subscribe((e) => events.push(e));
      t.after(off);
      const r = await adminCall(h, 'POST', `/v1/admin/devices/${a.id}/revoke`, {});
      assert.equal(r.status, 200);
      // The expired one is marked too, but not listed (a CRL never lists it; a device renewing for years has thousands).
      assert.deepEqual((r.json as { serials: string[] }).serials, [a.serial]);
      assert.ok((await h.db.kysely.selectFrom('certificates').select('revoked_at').where('serial', '=', '0e0e').executeTakeFirstOrThrow()).revoked_at);
      const revs = events.filter((e) => e.type === 'revocation');
      assert.equal(revs.length, 1);
      assert.equal(revs[0]!.serials, undefined);
      assert.ok(Number.isSafeInteger(revs[0]!.crlNumber) && revs[0]!.crlNumber! >= 1);
    });
  });
}
