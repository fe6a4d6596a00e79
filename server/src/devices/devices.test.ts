/**
 * The person a device is bound to, in the admin API: `user` in `GET
 * /v1/admin/devices` and `GET /v1/admin/devices/:id`, and the `user` filter
 * (issue 12: "`devices list --user`, `devices show` … show it"). Both engines.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Device } from '@latchkey/protocol';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, type Harness } from '../testing/harness.js';

async function enrolled(h: Harness, cn: string): Promise<string> {
  // One second apart: the list's order (first seen) is the order of enrollment.
  h.clock.now = new Date(h.clock.now.getTime() + 1000);
  const r = await enroll(h, await createToken(h), (await deviceCsr({ cn })).csr);
  assert.equal(r.statusCode, 200, r.body);
  const serial = certFromBody(r.body).serialHex;
  const list = await adminCall<{ items: Device[] }>(h, 'GET', '/v1/admin/devices');
  return list.json.items.find((d) => d.certificate?.serial === serial)!.id;
}

/** The binding the enrollment makes from a sign-in (the lead's part), set directly: this test is about reading it back. */
const bind = (h: Harness, id: string, email: string) => h.db.kysely.updateTable('devices').set({ user_email: email }).where('id', '=', id).execute();

for (const engine of ENGINES) {
  describe(`devices and their people on ${engine}`, () => {
    test('list and show carry the bound user (null when none); ?user= is an exact, case-insensitive match', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const a1 = await enrolled(h, 'alice-laptop');
      const b1 = await enrolled(h, 'bob-laptop');
      const a2 = await enrolled(h, 'alice-phone');
      const none = await enrolled(h, 'kiosk');
      await bind(h, a1, 'alice@example.com');
      await bind(h, a2, 'alice@example.com');
      await bind(h, b1, 'bob@example.com');

      const all = await adminCall<{ items: Device[] }>(h, 'GET', '/v1/admin/devices');
      assert.deepEqual(Object.fromEntries(all.json.items.map((d) => [d.id, d.user])), { [a1]: 'alice@example.com', [b1]: 'bob@example.com', [a2]: 'alice@example.com', [none]: null });

      const alice = await adminCall<{ items: Device[]; nextCursor: string | null }>(h, 'GET', `/v1/admin/devices?order=asc&user=${encodeURIComponent('Alice@EXAMPLE.com')}`);
      assert.equal(alice.status, 200, JSON.stringify(alice.json));
      assert.deepEqual(alice.json.items.map((d) => d.id), [a1, a2]);

      // Paging with the filter keeps to alice's devices (oldest first: the default is the newest first).
      const page1 = await adminCall<{ items: Device[]; nextCursor: string | null }>(h, 'GET', '/v1/admin/devices?order=asc&user=alice@example.com&limit=1');
      assert.deepEqual(page1.json.items.map((d) => d.id), [a1]);
      const page2 = await adminCall<{ items: Device[]; nextCursor: string | null }>(h, 'GET', `/v1/admin/devices?order=asc&user=alice@example.com&limit=1&cursor=${page1.json.nextCursor}`);
      assert.deepEqual(page2.json.items.map((d) => d.id), [a2]);
      assert.equal(page2.json.nextCursor, null);

      // Filters combine; a person with no devices gets an empty page, not an error.
      assert.deepEqual((await adminCall<{ items: Device[] }>(h, 'GET', '/v1/admin/devices?user=alice@example.com&q=phone')).json.items.map((d) => d.id), [a2]);
      assert.deepEqual((await adminCall<{ items: Device[] }>(h, 'GET', '/v1/admin/devices?user=carol@example.com')).json.items, []);

      const shown = await adminCall<Device>(h, 'GET', `/v1/admin/devices/${a1}`);
      assert.equal(shown.json.user, 'alice@example.com');
      assert.equal((await adminCall<Device>(h, 'GET', `/v1/admin/devices/${none}`)).json.user, null);
    });

    test('a ?user= that is not an email is refused with 400 and says what it must look like', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      for (const bad of ['alice', 'a b@example.com', `${'x'.repeat(250)}@example.com`]) {
        const r: { status: number; json: { error: { code: string; message: string } } } = await adminCall(h, 'GET', `/v1/admin/devices?user=${encodeURIComponent(bad)}`);
        assert.equal(r.status, 400, bad);
        assert.equal(r.json.error.code, 'BAD_REQUEST');
        assert.match(r.json.error.message, /user/);
      }
    });
  });
}
