/**
 * Issue 14, policy: a group whose attestation is `tpm` refuses every
 * enrollment and renewal that carries no TPM attestation,
 * with ATTESTATION_REQUIRED saying why and what to do, and audits the
 * refusal; a `none` group is unaffected. Both engines.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, reenroll, type Harness } from '../testing/harness.js';

const errorOf = (body: string): { code: string; message: string } => (JSON.parse(body) as { error: { code: string; message: string } }).error;

async function group(h: Harness, name: string, body: Record<string, unknown>): Promise<void> {
  const r = await adminCall(h, 'PUT', `/v1/admin/groups/${name}`, body);
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

async function refusals(h: Harness): Promise<{ actor: string; target: string | null; details: string }[]> {
  return h.db.kysely.selectFrom('audit').select(['actor', 'target', 'details']).where('action', '=', 'enroll.refused').orderBy('id').execute();
}

for (const engine of ENGINES) {
  describe(`attestation policy at EST on ${engine}`, () => {
    test('an enrollment into a tpm group is refused with ATTESTATION_REQUIRED, audited, and uses no token; a none group enrolls', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      await group(h, 'servers', { certLifetimeSeconds: 3600, attestation: 'tpm' });
      const token = await createToken(h, { group: 'servers' });
      const r = await enroll(h, token, (await deviceCsr({ cn: 'web-1' })).csr);
      assert.equal(r.statusCode, 403, r.body);
      const e = errorOf(r.body);
      assert.equal(e.code, 'ATTESTATION_REQUIRED');
      assert.match(e.message, /^group servers requires a TPM-attested device key; this enrollment carried no attestation \(keystore .*\); enroll with a TPM keystore/);
      const audited = await refusals(h);
      assert.equal(audited.length, 1);
      assert.deepEqual(JSON.parse(audited[0]!.details), { kind: 'enroll', group: 'servers', code: 'ATTESTATION_REQUIRED', remote: '127.0.0.1' });
      assert.equal(await h.db.kysely.selectFrom('devices').select('id').executeTakeFirst(), undefined, 'no device is made');
      const tok = await h.db.kysely.selectFrom('enroll_tokens').select('used_count').where('group_name', '=', 'servers').executeTakeFirstOrThrow();
      assert.equal(tok.used_count, 0, 'the token keeps its use');

      // Switched back to none: the same token enrolls.
      await group(h, 'servers', { attestation: 'none' });
      assert.equal((await enroll(h, token, (await deviceCsr({ cn: 'web-1' })).csr)).statusCode, 200);
      // The default group was never touched.
      assert.equal((await enroll(h, await createToken(h), (await deviceCsr({ cn: 'laptop' })).csr)).statusCode, 200);
    });

    test('a pending device of a group switched to tpm is refused when it asks again after approval', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      await group(h, 'kiosks', { certLifetimeSeconds: 3600, requireApproval: true });
      const token = await createToken(h, { group: 'kiosks' });
      const dev = await deviceCsr({ cn: 'kiosk-1' });
      const first = await enroll(h, token, dev.csr);
      assert.equal(first.statusCode, 202, first.body);
      const id = (JSON.parse(first.body) as { deviceId: string }).deviceId;
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${id}/approve`)).status, 200);
      await group(h, 'kiosks', { attestation: 'tpm' });
      const again = await enroll(h, token, dev.csr);
      assert.equal(again.statusCode, 403, again.body);
      assert.equal(errorOf(again.body).code, 'ATTESTATION_REQUIRED');
      assert.equal((await refusals(h))[0]!.target, id);
    });

    test('a renewal after the group is switched to tpm is refused (and audited); the none group still renews', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      await group(h, 'servers', { certLifetimeSeconds: 3600 });
      const enrolledIn = async (g: string, cn: string) => {
        const r = await enroll(h, await createToken(h, { group: g }), (await deviceCsr({ cn })).csr);
        assert.equal(r.statusCode, 200, r.body);
        return certFromBody(r.body);
      };
      const server = await enrolledIn('servers', 'web-1');
      const laptop = await enrolledIn('default', 'laptop');
      await group(h, 'servers', { attestation: 'tpm' });
      const r = await reenroll(h, server.der, (await deviceCsr()).csr);
      assert.equal(r.statusCode, 403, r.body);
      const e = errorOf(r.body);
      assert.equal(e.code, 'ATTESTATION_REQUIRED');
      assert.match(e.message, /^group servers requires a TPM-attested device key; this renewal carried no attestation .*enroll with a TPM keystore/);
      const audited = await refusals(h);
      assert.equal(audited.length, 1);
      assert.match(audited[0]!.actor, /^device:/);
      assert.equal(JSON.parse(audited[0]!.details).kind, 'renew');
      assert.equal((await h.db.kysely.selectFrom('certificates').select('serial').execute()).length, 2, 'nothing was issued');
      assert.equal((await reenroll(h, laptop.der, (await deviceCsr()).csr)).statusCode, 200);
    });
  });
}
