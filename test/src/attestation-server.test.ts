/**
 * Issue 14, the server side of TPM attestation against real software TPMs:
 * the agent's steps (tpm2_createek / createak, TPM2_ActivateCredential of
 * the server's challenge, TPM2_Certify of a TPM-made device key over the
 * recovered secret, a CSR signed inside the TPM) done with tpm2-tools on
 * swtpm, the server driven in-process (server/dist/testing/harness.js) on
 * both database engines. Each refusal is checked by its code and reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { certificateToPem, createCsr, nodeSigner, type Signer } from '@latchkey/pki';
import { ATTEST_PATHS, ATTESTATION_ATTRIBUTE_OID, type AttestChallenge, type CsrAttestation, TPM_ATTESTED_OU, TPM_ATTESTED_POLICY_OID } from '@latchkey/protocol';
import { ekHash, parsePublic2B, publicKeySpki } from '@latchkey/tpm';
import { AK_HANDLE, activate, certify, createKey, type SwtpmWithEkCert, swtpmWithEkCert, tpmSign } from '../../agent/test-support/dist/tpm-fixtures.js';
import { CLIENT_CERT_HEADER, ENGINES, adminCall, certFromBody, createToken, enroll, harness, reenroll, type Harness } from '../../server/dist/testing/harness.js';
import { hasCommand } from '../../agent/test-support/dist/pkcs11-fixtures.js';
import { skipOrRequire } from './support/processes.js';

const KEY_ATTRS = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign';
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const errorOf = (body: string): { code: string; message: string } => (JSON.parse(body) as { error: { code: string; message: string } }).error;

/** A machine's TPM as the agent sees it: its EK (and certificate from NV), an AK persisted at AK_HANDLE, an owner primary for device keys. */
interface Tpm {
  tpm: SwtpmWithEkCert;
  ekPub: Buffer;
  ekCertDer: Buffer;
  ekHash: string;
  akPub: Buffer;
  /** Directory of the TPM's manufacturer CAs (swtpm_localca's root and issuer), as attestation.ekRootsDir. */
  rootsDir: string;
  keys: number;
}

interface TpmKey {
  handle: string;
  pub: Buffer;
}

async function machine(t: TestContext): Promise<Tpm | undefined> {
  const tpm = await swtpmWithEkCert(t);
  if (typeof tpm === 'string') {
    skipOrRequire(t, `missing ${tpm}`);
    return undefined;
  }
  tpm.tools('tpm2_createek', ['-G', 'rsa', '-c', 'ek.ctx', '-u', 'ek.pub']);
  tpm.tools('tpm2_createak', ['-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pub', '-n', 'ak.name', '-r', 'ak.priv']);
  tpm.tools('tpm2_evictcontrol', ['-C', 'o', '-c', 'ak.ctx', AK_HANDLE]);
  tpm.tools('tpm2_createprimary', ['-C', 'o', '-G', 'ecc', '-c', 'primary.ctx']);
  const ekPub = readFileSync(join(tpm.dir, 'ek.pub'));
  const rootsDir = mkdtempSync(join(tmpdir(), 'latchkey-ekroots-'));
  t.after(() => rmSync(rootsDir, { recursive: true, force: true }));
  writeFileSync(join(rootsDir, 'root.pem'), readFileSync(tpm.rootCaPem));
  writeFileSync(join(rootsDir, 'issuer.pem'), readFileSync(tpm.issuerCaPem));
  return {
    tpm,
    ekPub,
    ekCertDer: tpm.tools('tpm2_nvread', ['0x1c00002']).stdout,
    ekHash: ekHash(publicKeySpki(parsePublic2B(ekPub))),
    akPub: readFileSync(join(tpm.dir, 'ak.pub')),
    rootsDir,
    keys: 0,
  };
}

function newKey(m: Tpm, attrs = KEY_ATTRS): TpmKey {
  const n = m.keys++;
  const handle = `0x${(0x81000110 + n).toString(16)}`;
  return { handle, pub: createKey(m.tpm, `key${n}`, attrs, handle) };
}

const tpmSigner = (m: Tpm, k: TpmKey): Signer => ({ algorithm: 'ecdsa-with-SHA256', spki: publicKeySpki(parsePublic2B(k.pub)), sign: (data) => tpmSign(m.tpm, k.handle, data) });

async function csrFor(signer: Signer, attestation: CsrAttestation | undefined, cn = 'tpm-host'): Promise<Buffer> {
  return createCsr({ subject: [{ type: 'CN', value: cn }], signer, ...(attestation ? { stringAttributes: [{ oid: ATTESTATION_ATTRIBUTE_OID, value: JSON.stringify(attestation) }] } : {}) });
}

async function enrollChallenge(h: Harness, token: string, body: Record<string, unknown>) {
  return h.app.inject({ method: 'POST', url: ATTEST_PATHS.enrollChallenge, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
}

const enrollBody = (m: Tpm, withCert = true): Record<string, unknown> => ({ ekPublic: b64(m.ekPub), akPublic: b64(m.akPub), ...(withCert ? { ekCertificate: b64(m.ekCertDer) } : {}) });

async function challengeFor(h: Harness, token: string, m: Tpm, withCert = true): Promise<AttestChallenge> {
  const r = await enrollChallenge(h, token, enrollBody(m, withCert));
  assert.equal(r.statusCode, 200, r.body);
  return JSON.parse(r.body) as AttestChallenge;
}

/** The agent's side: activate the credential in `m`, have `certifier`'s AK certify `key` (in the certifier's TPM) over the secret. */
function attest(m: Tpm, c: AttestChallenge, key: TpmKey, certifier: Tpm = m): CsrAttestation {
  const a = activate(m.tpm, 'ek.ctx', { credentialBlob: Buffer.from(c.credentialBlob, 'base64'), encryptedSecret: Buffer.from(c.encryptedSecret, 'base64') });
  assert.ok(a.ok, a.stderr);
  const made = certify(certifier.tpm, Number(key.handle), Number(AK_HANDLE), a.secret);
  return { challengeId: c.challengeId, secret: b64(a.secret), keyPublic: b64(key.pub), certifyInfo: b64(made.attest), signature: b64(made.signature) };
}

const pemOf = (der: Uint8Array): string => certificateToPem(der);

function openssl(pem: string): string {
  const r = spawnSync('openssl', ['x509', '-noout', '-text'], { input: pem, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

async function group(h: Harness, name: string, body: Record<string, unknown>): Promise<void> {
  const r = await adminCall(h, 'PUT', `/v1/admin/groups/${name}`, body);
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

function expectRefused(r: { statusCode: number; body: string }, code: string, message: RegExp): void {
  assert.equal(r.statusCode, 403, r.body);
  const e = errorOf(r.body);
  assert.equal(e.code, code, r.body);
  assert.match(e.message, message);
}

for (const engine of ENGINES) {
  test(`issue 14 on ${engine}: TPM-attested enrollment and renewals against swtpm, and every refusal`, async (t) => {
    if (!hasCommand('openssl')) return skipOrRequire(t, 'missing openssl');
    const a = await machine(t);
    if (!a) return;
    const b = await machine(t);
    if (!b) return;
    const h = await harness(t, engine, { config: { attestation: { ekRootsDir: a.rootsDir, challengeTtlSeconds: 300, maxOpenChallenges: 3 } } });
    if (!h) return;
    await group(h, 'secure', { certLifetimeSeconds: 3600, attestation: 'tpm' });

    let deviceId = '';
    let certDer: Buffer = Buffer.alloc(0);
    let keyA: TpmKey = { handle: '', pub: Buffer.alloc(0) };
    let firstAttestation: CsrAttestation;
    let firstToken = '';

    await t.test('TCG credential activation + TPM2_Certify: an attested enrollment into a tpm group; the certificate carries the attested OU and policy (openssl)', async () => {
      const token = await createToken(h, { group: 'secure', uses: 3 });
      firstToken = token;
      const firstChallenge = await challengeFor(h, token, a);
      keyA = newKey(a);
      firstAttestation = attest(a, firstChallenge, keyA);
      const r = await enroll(h, token, await csrFor(tpmSigner(a, keyA), firstAttestation));
      assert.equal(r.statusCode, 200, r.body);
      const cert = certFromBody(r.body);
      certDer = cert.der;
      const text = openssl(pemOf(cert.der));
      assert.match(text, new RegExp(`Subject: .*O ?= ?Example Corp, OU ?= ?${TPM_ATTESTED_OU}, .*CN ?= ?tpm-host`));
      assert.match(text, new RegExp(`X509v3 Certificate Policies:\\s+Policy: ${TPM_ATTESTED_POLICY_OID.replace(/\./g, '\\.')}`));
      const dev = await h.db.kysely.selectFrom('devices').selectAll().executeTakeFirstOrThrow();
      deviceId = dev.id;
      const shown = await adminCall<{ assurance: string; tpm: { ekHash: string; ekTrust: string; manufacturer: string | null; attestedAt: string } }>(h, 'GET', `/v1/admin/devices/${deviceId}`);
      assert.equal(shown.status, 200);
      assert.equal(shown.json.assurance, 'tpm-attested');
      assert.equal(shown.json.tpm.ekHash, a.ekHash);
      assert.equal(shown.json.tpm.ekTrust, 'certificate');
      assert.equal(shown.json.tpm.manufacturer, 'id:00001014');
      assert.equal(shown.json.tpm.attestedAt, h.clock.now.toISOString());
      const audit = await h.db.kysely.selectFrom('audit').select('details').where('action', '=', 'certificate.enroll').executeTakeFirstOrThrow();
      assert.equal(JSON.parse(audit.details).attested, true);
      assert.equal(JSON.parse(audit.details).ekHash, a.ekHash);
    });

    await t.test('the same request again (a lost answer) gets the same certificate; the challenge is refused to another token', async () => {
      const again = await enroll(h, firstToken, await csrFor(tpmSigner(a, keyA), firstAttestation));
      assert.equal(again.statusCode, 200, again.body);
      assert.ok(certFromBody(again.body).der.equals(certDer), 'the certificate already issued, not a second one');
      const other = await createToken(h, { group: 'secure' });
      expectRefused(await enroll(h, other, await csrFor(tpmSigner(a, keyA), firstAttestation)), 'ATTESTATION_INVALID', /was not made for this enrollment token/);
    });

    for (const n of [1, 2]) {
      await t.test(`attested renewal ${n}: a new TPM key certified by the same AK; attested_at moves`, async () => {
        h.clock.now = new Date(h.clock.now.getTime() + 60_000);
        const r = await h.app.inject({ method: 'POST', url: ATTEST_PATHS.renewChallenge, headers: { [CLIENT_CERT_HEADER]: b64(certDer), 'content-type': 'application/json' }, payload: JSON.stringify({ akPublic: b64(a.akPub) }) });
        assert.equal(r.statusCode, 200, r.body);
        const c = JSON.parse(r.body) as AttestChallenge;
        const renewKey = newKey(a);
        const renewed = await reenroll(h, certDer, await csrFor(tpmSigner(a, renewKey), attest(a, c, renewKey)));
        assert.equal(renewed.statusCode, 200, renewed.body);
        const cert = certFromBody(renewed.body);
        certDer = cert.der;
        assert.match(openssl(pemOf(cert.der)), new RegExp(`OU ?= ?${TPM_ATTESTED_OU}`));
        const dev = await h.db.kysely.selectFrom('devices').selectAll().where('id', '=', deviceId).executeTakeFirstOrThrow();
        assert.equal(dev.attested_at, h.clock.now.toISOString());
        const audit = await h.db.kysely.selectFrom('audit').select('details').where('action', '=', 'certificate.renew').orderBy('id', 'desc').executeTakeFirstOrThrow();
        assert.equal(JSON.parse(audit.details).attested, true);
      });
    }

    await t.test('a renewal challenge for another AK is refused; a renewal of the attested device with a software key is refused (ATTESTATION_REQUIRED), even after its group allows none', async () => {
      const r = await h.app.inject({ method: 'POST', url: ATTEST_PATHS.renewChallenge, headers: { [CLIENT_CERT_HEADER]: b64(certDer), 'content-type': 'application/json' }, payload: JSON.stringify({ akPublic: b64(b.akPub) }) });
      expectRefused(r, 'ATTESTATION_INVALID', /this device's attestation key is the one bound at its enrollment/);
      await group(h, 'secure', { attestation: 'none' });
      const soft = nodeSigner((await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
      expectRefused(await reenroll(h, certDer, await csrFor(soft, undefined)), 'ATTESTATION_REQUIRED', new RegExp(`device ${deviceId} is TPM-attested`));
      await group(h, 'secure', { attestation: 'tpm' });
    });

    await t.test('a certify made by another TPM\'s AK over the right secret is refused', async () => {
      const token = await createToken(h, { group: 'secure' });
      const c = await challengeFor(h, token, a);
      const keyB = newKey(b);
      const forged = attest(a, c, keyB, b); // secret from A's TPM, certify by B's AK of a key in B
      expectRefused(await enroll(h, token, await csrFor(tpmSigner(b, keyB), forged)), 'ATTESTATION_INVALID', /does not verify under the attestation key/);
    });

    await t.test('a key with fixedTPM clear is refused, though truthfully certified', async () => {
      const token = await createToken(h, { group: 'secure' });
      const c = await challengeFor(h, token, a);
      const loose = newKey(a, 'sensitivedataorigin|userwithauth|sign');
      expectRefused(await enroll(h, token, await csrFor(tpmSigner(a, loose), attest(a, c, loose))), 'ATTESTATION_INVALID', /fixedTPM is clear/);
    });

    await t.test('a CSR whose key is not the certified key is refused', async () => {
      const token = await createToken(h, { group: 'secure' });
      const c = await challengeFor(h, token, a);
      const k = newKey(a);
      const soft = nodeSigner((await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
      expectRefused(await enroll(h, token, await csrFor(soft, attest(a, c, k))), 'ATTESTATION_INVALID', /not the key the TPM certified/);
    });

    await t.test('replay: a second key certified over an already used challenge of the same token is refused', async () => {
      const token = await createToken(h, { group: 'secure', uses: 2 });
      const c = await challengeFor(h, token, a);
      const k1 = newKey(a);
      const first = attest(a, c, k1);
      assert.equal((await enroll(h, token, await csrFor(tpmSigner(a, k1), first, 'replay-1'))).statusCode, 200);
      const k2 = newKey(a);
      const made = certify(a.tpm, Number(k2.handle), Number(AK_HANDLE), Buffer.from(first.secret, 'base64'));
      const again: CsrAttestation = { ...first, keyPublic: b64(k2.pub), certifyInfo: b64(made.attest), signature: b64(made.signature) };
      expectRefused(await enroll(h, token, await csrFor(tpmSigner(a, k2), again, 'replay-2')), 'ATTESTATION_INVALID', /was already used/);
      const refused = await h.db.kysely.selectFrom('audit').select('details').where('action', '=', 'enroll.refused').orderBy('id', 'desc').executeTakeFirstOrThrow();
      assert.equal(JSON.parse(refused.details).code, 'ATTESTATION_INVALID');
    });

    await t.test('a race: two keys certified over one challenge, sent at once — exactly one is issued, the other finds the challenge used', async () => {
      const token = await createToken(h, { group: 'secure', uses: 2 });
      const c = await challengeFor(h, token, a);
      const k1 = newKey(a);
      const first = attest(a, c, k1);
      const k2 = newKey(a);
      const made = certify(a.tpm, Number(k2.handle), Number(AK_HANDLE), Buffer.from(first.secret, 'base64'));
      const second: CsrAttestation = { ...first, keyPublic: b64(k2.pub), certifyInfo: b64(made.attest), signature: b64(made.signature) };
      const csrs = [await csrFor(tpmSigner(a, k1), first, 'race-1'), await csrFor(tpmSigner(a, k2), second, 'race-2')];
      const rs = await Promise.all(csrs.map((csr) => enroll(h, token, csr)));
      assert.deepEqual(rs.map((r) => r.statusCode).sort(), [200, 403], rs.map((r) => r.body).join('\n'));
      expectRefused(rs.find((r) => r.statusCode === 403)!, 'ATTESTATION_INVALID', /was already used/);
      const tok = await h.db.kysely.selectFrom('devices').select('id').where('name', 'in', ['race-1', 'race-2']).execute();
      assert.equal(tok.length, 1, 'one device, not two');
    });

    await t.test('an EK whose certificate does not chain (another manufacturer) and is not registered is refused; registered by hash, it is accepted', async () => {
      const token = await createToken(h, { group: 'secure' });
      const r = await enrollChallenge(h, token, enrollBody(b));
      expectRefused(r, 'ATTESTATION_INVALID', new RegExp(`does not chain to a trusted TPM manufacturer root.*EK hash ${b.ekHash} is not registered; configure .*attestation\\.ekRootsDir.*devices register --ek-hash ${b.ekHash}`));
      expectRefused(await enrollChallenge(h, token, enrollBody(b, false)), 'ATTESTATION_INVALID', /sent no EK certificate/);
      assert.equal((await adminCall(h, 'POST', '/v1/admin/registered-devices', { ekHash: b.ekHash })).status, 201);
      const c = await challengeFor(h, token, b);
      const k = newKey(b);
      const ok = await enroll(h, token, await csrFor(tpmSigner(b, k), attest(b, c, k), 'registered-b'));
      assert.equal(ok.statusCode, 200, ok.body);
      const dev = await h.db.kysely.selectFrom('devices').selectAll().where('name', '=', 'registered-b').executeTakeFirstOrThrow();
      assert.equal(dev.ek_trust, 'registered');
      const reg = await h.db.kysely.selectFrom('registered_devices').selectAll().where('ek_hash', '=', b.ekHash).executeTakeFirstOrThrow();
      assert.equal(reg.used_by_device, dev.id);
    });

    await t.test('requireRegisteredEk: an unregistered EK is refused with EK_NOT_REGISTERED naming its hash and the command; registered for the group, it enrolls and the inventory names the device', async () => {
      await group(h, 'fleet', { certLifetimeSeconds: 3600, attestation: 'tpm', requireRegisteredEk: true });
      const token = await createToken(h, { group: 'fleet' });
      // A's EK chains to a trusted root, but is not registered.
      expectRefused(await enrollChallenge(h, token, enrollBody(a)), 'EK_NOT_REGISTERED', new RegExp(`EK ${a.ekHash} is not registered; an admin registers it with \`latchkey-server devices register --ek-hash ${a.ekHash}\` --group fleet`));
      // Registered for another group: refused.
      assert.equal((await adminCall(h, 'POST', '/v1/admin/registered-devices', { ekHash: a.ekHash, group: 'secure' })).status, 201);
      expectRefused(await enrollChallenge(h, token, enrollBody(a)), 'EK_NOT_REGISTERED', /is registered for group secure, not fleet/);
      // B's EK is registered (any group) but is the TPM of a live device already.
      expectRefused(await enrollChallenge(h, token, enrollBody(b)), 'EK_NOT_REGISTERED', /is already the TPM of device/);
    });

    await t.test('challenge bounds: the N+1th open challenge of a token drops the oldest; a body over 16 KiB is 413; garbage base64 is 400', async () => {
      const token = await createToken(h, { group: 'secure' });
      const cs: AttestChallenge[] = [];
      for (let i = 0; i < 4; i++) {
        cs.push(await challengeFor(h, token, a));
        h.clock.now = new Date(h.clock.now.getTime() + 1000); // "oldest" is by creation time
      }
      const open = await h.db.kysely.selectFrom('attestation_challenges').select('id').where('used_at', 'is', null).where('expires_at', '>', h.clock.now.toISOString()).execute();
      const mine = open.map((o) => o.id).filter((id) => cs.some((c) => c.challengeId === id));
      assert.deepEqual(mine.sort(), cs.slice(1).map((c) => c.challengeId).sort(), 'the oldest of 4 was dropped (maxOpenChallenges 3)');
      const k = newKey(a);
      expectRefused(await enroll(h, token, await csrFor(tpmSigner(a, k), attest(a, cs[0]!, k))), 'ATTESTATION_INVALID', /unknown or was not made for this enrollment token/);
      const big = await enrollChallenge(h, token, { ...enrollBody(a), padding: 'x'.repeat(17 * 1024) });
      assert.equal(big.statusCode, 413, big.body);
      const garbage = await enrollChallenge(h, token, { ekPublic: '!!not base64!!', akPublic: b64(a.akPub) });
      assert.equal(garbage.statusCode, 400, garbage.body);
      assert.equal(errorOf(garbage.body).code, 'BAD_REQUEST');
      const noToken = await h.app.inject({ method: 'POST', url: ATTEST_PATHS.enrollChallenge, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(enrollBody(a)) });
      assert.equal(noToken.statusCode, 401, noToken.body);
    });

    await t.test('an expired challenge is refused (fixed clock moved past challengeTtlSeconds)', async () => {
      const token = await createToken(h, { group: 'secure' });
      const c = await challengeFor(h, token, a);
      const k = newKey(a);
      const att = attest(a, c, k);
      h.clock.now = new Date(h.clock.now.getTime() + 301_000);
      expectRefused(await enroll(h, token, await csrFor(tpmSigner(a, k), att)), 'ATTESTATION_INVALID', new RegExp(`challenge ${c.challengeId} expired at`));
    });

    await t.test('a require-approval group: the attested enrollment waits, and once approved the same CSR gets an attested certificate without a new challenge', async () => {
      await group(h, 'kiosks', { certLifetimeSeconds: 3600, attestation: 'tpm', requireApproval: true });
      const token = await createToken(h, { group: 'kiosks' });
      const c = await challengeFor(h, token, a);
      const k = newKey(a);
      const csr = await csrFor(tpmSigner(a, k), attest(a, c, k), 'kiosk-1');
      const first = await enroll(h, token, csr);
      assert.equal(first.statusCode, 202, first.body);
      const id = (JSON.parse(first.body) as { deviceId: string }).deviceId;
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${id}/approve`)).status, 200);
      const done = await enroll(h, token, csr);
      assert.equal(done.statusCode, 200, done.body);
      assert.match(openssl(pemOf(certFromBody(done.body).der)), new RegExp(`OU ?= ?${TPM_ATTESTED_OU}`));
      const shown = await adminCall<{ assurance: string }>(h, 'GET', `/v1/admin/devices/${id}`);
      assert.equal(shown.json.assurance, 'tpm-attested');
      // Lost answer: the same request again answers the same certificate.
      const again = await enroll(h, token, csr);
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(certFromBody(again.body).serialHex, certFromBody(done.body).serialHex);
    });
  });
}
