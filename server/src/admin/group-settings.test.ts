/**
 * `PUT /v1/admin/groups/:name` changes what it is given and keeps the rest
 * (issue 11: `groups set NAME --lifetime X` silently turned approval off).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENGINES, adminCall, harness } from '../testing/harness.js';

const none = { attestation: 'none', requireRegisteredEk: false };

for (const engine of ENGINES) {
  describe(`group settings on ${engine}`, () => {
    test('a setting left out keeps its value; a new group needs its lifetime', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const put = (body: unknown) => adminCall<{ name: string; certLifetimeSeconds: number; requireApproval: boolean; error?: { message: string } }>(h, 'PUT', '/v1/admin/groups/contractors', body);
      const missing = await put({ requireApproval: true });
      assert.equal(missing.status, 400);
      assert.match(missing.json.error!.message, /group contractors does not exist yet: give its certLifetimeSeconds/);
      assert.deepEqual((await put({ certLifetimeSeconds: 3600, requireApproval: true })).json, { name: 'contractors', certLifetimeSeconds: 3600, requireApproval: true, ...none });
      assert.deepEqual((await put({ certLifetimeSeconds: 7200 })).json, { name: 'contractors', certLifetimeSeconds: 7200, requireApproval: true, ...none }, 'lifetime alone keeps approval on');
      assert.deepEqual((await put({ requireApproval: false })).json, { name: 'contractors', certLifetimeSeconds: 7200, requireApproval: false, ...none }, 'approval alone keeps the lifetime');
      const listed = await adminCall<{ items: unknown[] }>(h, 'GET', '/v1/admin/groups');
      assert.deepEqual(listed.json.items.find((g) => (g as { name: string }).name === 'contractors'), { name: 'contractors', certLifetimeSeconds: 7200, requireApproval: false, ...none });
      assert.equal((await put({})).status, 200, 'an empty change is a no-op');
    });

    test('issue 14: attestation and requireRegisteredEk round-trip, are kept when left out, are audited and announced; admin only', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const events: unknown[] = [];
      h.bus.subscribe((e) => { if (e.type === 'policy') events.push(e); });
      const put = (body: unknown, token?: string) => adminCall<Record<string, unknown> & { error?: { code: string; message: string } }>(h, 'PUT', '/v1/admin/groups/servers', body, token);
      assert.deepEqual((await put({ certLifetimeSeconds: 3600, attestation: 'tpm', requireRegisteredEk: true })).json, { name: 'servers', certLifetimeSeconds: 3600, requireApproval: false, attestation: 'tpm', requireRegisteredEk: true });
      assert.deepEqual((await put({ certLifetimeSeconds: 7200 })).json, { name: 'servers', certLifetimeSeconds: 7200, requireApproval: false, attestation: 'tpm', requireRegisteredEk: true }, 'the lifetime alone keeps attestation');
      assert.deepEqual((await put({ requireRegisteredEk: false })).json, { name: 'servers', certLifetimeSeconds: 7200, requireApproval: false, attestation: 'tpm', requireRegisteredEk: false });
      const listed = await adminCall<{ items: { name: string }[] }>(h, 'GET', '/v1/admin/groups');
      assert.deepEqual(listed.json.items.find((g) => g.name === 'servers'), { name: 'servers', certLifetimeSeconds: 7200, requireApproval: false, attestation: 'tpm', requireRegisteredEk: false });
      const dflt = listed.json.items.find((g) => g.name === 'default') as Record<string, unknown>;
      assert.deepEqual([dflt['attestation'], dflt['requireRegisteredEk']], ['none', false], 'an existing group is none after migration 012');
      const bad = await put({ attestation: 'sgx' });
      assert.equal(bad.status, 400);
      assert.match(bad.json.error!.message, /attestation must be one of: none, tpm/);
      const audit = await h.db.kysely.selectFrom('audit').select(['actor', 'details']).where('action', '=', 'group.set').where('target', '=', 'servers').orderBy('id').execute();
      assert.deepEqual(audit.map((a) => JSON.parse(a.details)), [
        { certLifetimeSeconds: 3600, requireApproval: false, attestation: 'tpm', requireRegisteredEk: true },
        { certLifetimeSeconds: 7200, requireApproval: false, attestation: 'tpm', requireRegisteredEk: true },
        { certLifetimeSeconds: 7200, requireApproval: false, attestation: 'tpm', requireRegisteredEk: false },
      ]);
      assert.equal(events.length, 3, 'each change is a policy event');
      const op = await adminCall<{ token: string }>(h, 'POST', '/v1/admin/admin-tokens', { name: 'ops', role: 'operator' });
      assert.equal((await put({ attestation: 'none' }, op.json.token)).status, 403, 'an operator may not set policy');
    });
  });
}
