/**
 * The one device-certificate check (simplereenroll and the /v1/agent
 * upgrade): each way a presented certificate is refused, on both engines,
 * with real certificates from the real issuing pipeline.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, test } from 'node:test';
import { nodeSigner, randomSerial, signCertificate } from '@latchkey/pki';
import { certificatesRepo } from '../certificates/certificates-repo.js';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, reenroll, type Harness } from '../testing/harness.js';
import { createDeviceCertAuth, type DeviceCertAuth } from './device-cert-auth.js';

const GRACE = { recoveryGraceSeconds: 14 * 86_400 };
const NO_GRACE = { recoveryGraceSeconds: 0 };

async function setup(h: Harness): Promise<{ auth: DeviceCertAuth; der: Buffer; deviceId: string; notAfter: Date }> {
  const r = await enroll(h, await createToken(h), (await deviceCsr()).csr);
  assert.equal(r.statusCode, 200, r.body);
  const cert = certFromBody(r.body);
  const auth = createDeviceCertAuth({ certificates: certificatesRepo(h.db.kysely), issuingCa: h.issuing, clock: () => h.clock.now });
  const v = await auth(cert.der, GRACE);
  assert.ok(v.ok, 'a freshly enrolled certificate authenticates');
  assert.equal(v.expired, false);
  return { auth, der: cert.der, deviceId: v.record.device_id, notAfter: cert.notAfter };
}

const reasonOf = async (auth: DeviceCertAuth, der: Buffer | undefined, policy = GRACE): Promise<string> => {
  const v = await auth(der, policy);
  return v.ok ? 'ok' : v.reason;
};

for (const engine of ENGINES) {
  describe(`RFC 5280 §6.1.3: one device-certificate authentication, on ${engine}`, () => {
    test('none presented, not a certificate, a foreign CA of the same name, signed by us but not on record', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const { auth, der } = await setup(h);
      assert.equal(await reasonOf(auth, undefined), 'missing');
      assert.equal(await reasonOf(auth, Buffer.alloc(0)), 'missing');
      assert.equal(await reasonOf(auth, Buffer.from('not a certificate')), 'unparsable');

      const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
      const foreign = await signCertificate(
        { serial: randomSerial(crypto.randomBytes), issuerDer: h.issuing.subjectDer, subjectDer: h.issuing.subjectDer, spki, notBefore: new Date(h.clock.now.getTime() - 60_000), notAfter: new Date(h.clock.now.getTime() + 86_400_000), extensions: [] },
        nodeSigner(key),
      );
      assert.equal(await reasonOf(auth, foreign), 'foreign-ca');

      await h.db.kysely.deleteFrom('certificates').execute();
      assert.equal(await reasonOf(auth, der), 'unknown');
    });

    test('revoked device; pending or denied device', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const a = await setup(h);
      const b = await setup(h);
      const c = await setup(h);
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${a.deviceId}/revoke`, {})).status, 200);
      const refused = await a.auth(a.der, GRACE);
      assert.ok(!refused.ok && refused.reason === 'revoked' && refused.record?.device_id === a.deviceId, 'a refusal after the lookup names the device (per-device rate limits)');
      await h.db.kysely.updateTable('devices').set({ status: 'pending' }).where('id', '=', b.deviceId).execute();
      assert.equal(await reasonOf(b.auth, b.der), 'not-active');
      await h.db.kysely.updateTable('devices').set({ status: 'denied' }).where('id', '=', c.deviceId).execute();
      assert.equal(await reasonOf(c.auth, c.der), 'not-active');
    });

    test('issue 10: a superseded certificate authenticates during its overlap, then is CERT_SUPERSEDED', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const { auth, der } = await setup(h);
      const r = await reenroll(h, der, (await deviceCsr()).csr);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(await reasonOf(auth, der), 'ok');
      assert.equal(await reasonOf(auth, certFromBody(r.body).der), 'ok');
      h.clock.now = new Date(h.clock.now.getTime() + (h.config.supersededOverlapSeconds + 1) * 1000);
      assert.equal(await reasonOf(auth, der), 'superseded');
      assert.equal(await reasonOf(auth, certFromBody(r.body).der), 'ok');
    });

    test('RFC 5280 §4.1.2.5: not yet valid; expired — accepted within the recovery window only, never without one', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const { auth, der, notAfter } = await setup(h);
      const start = h.clock.now;
      h.clock.now = new Date(start.getTime() - 3_600_000);
      assert.equal(await reasonOf(auth, der), 'not-yet-valid');
      h.clock.now = new Date(notAfter.getTime() + 1000);
      const within = await auth(der, GRACE);
      assert.ok(within.ok && within.expired, 'within the window: accepted, marked expired (a recovery)');
      assert.equal(await reasonOf(auth, der, NO_GRACE), 'expired');
      h.clock.now = new Date(notAfter.getTime() + (GRACE.recoveryGraceSeconds + 1) * 1000);
      const past = await auth(der, GRACE);
      assert.ok(!past.ok && past.reason === 'expired' && past.expiredForSeconds! > GRACE.recoveryGraceSeconds);
    });
  });
}
