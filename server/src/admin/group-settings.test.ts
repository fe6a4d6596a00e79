/**
 * `PUT /v1/admin/groups/:name` changes what it is given and keeps the rest
 * (issue 11: `groups set NAME --lifetime X` silently turned approval off).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENGINES, adminCall, harness } from '../testing/harness.js';

for (const engine of ENGINES) {
  describe(`group settings on ${engine}`, () => {
    test('a setting left out keeps its value; a new group needs its lifetime', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const put = (body: unknown) => adminCall<{ name: string; certLifetimeSeconds: number; requireApproval: boolean; error?: { message: string } }>(h, 'PUT', '/v1/admin/groups/contractors', body);
      const missing = await put({ requireApproval: true });
      assert.equal(missing.status, 400);
      assert.match(missing.json.error!.message, /group contractors does not exist yet: give its certLifetimeSeconds/);
      assert.deepEqual((await put({ certLifetimeSeconds: 3600, requireApproval: true })).json, { name: 'contractors', certLifetimeSeconds: 3600, requireApproval: true });
      assert.deepEqual((await put({ certLifetimeSeconds: 7200 })).json, { name: 'contractors', certLifetimeSeconds: 7200, requireApproval: true }, 'lifetime alone keeps approval on');
      assert.deepEqual((await put({ requireApproval: false })).json, { name: 'contractors', certLifetimeSeconds: 7200, requireApproval: false }, 'approval alone keeps the lifetime');
      const listed = await adminCall<{ items: unknown[] }>(h, 'GET', '/v1/admin/groups');
      assert.deepEqual(listed.json.items.find((g) => (g as { name: string }).name === 'contractors'), { name: 'contractors', certLifetimeSeconds: 7200, requireApproval: false });
      assert.equal((await put({})).status, 200, 'an empty change is a no-op');
    });
  });
}
