/**
 * The agent's TPM attestation path (agent/src/attest/) against a real
 * software TPM, without the server: swtpm with EK certificates behind
 * tpm2-abrmd, with a tpm2-pkcs11 token. The server's side is played by
 * @latchkey/tpm (MakeCredential in TypeScript, certify verification and the
 * device-key policy), so each step is checked by an independent
 * implementation. One PKCS#11 module per process: this file opens the token
 * only after the TPM keys it checks were linked.
 */
import assert from 'node:assert/strict';
import { createHash, createVerify, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createCsr, csrStringAttribute, readVerifiedCsr } from '@latchkey/pki';
import { ATTESTATION_ATTRIBUTE_OID, FACTS_ATTRIBUTE_OID, MAX_ATTESTATION_JSON } from '@latchkey/protocol/wire';
import { deviceKeyAttributeProblems, makeCredential, objectName, parsePublic2B, publicKeySpki, verifyCertify, isTpmError } from '@latchkey/tpm';
import { swtpmTokenWithEkCert } from '../../agent/test-support/dist/tpm-fixtures.js';
import { activateCredential } from '../../agent/dist/attest/activate.js';
import { createAttestedKey, DEFAULT_TPM_PARENT } from '../../agent/dist/attest/attest.js';
import { certifyKey, type CertifyRecord } from '../../agent/dist/attest/certify.js';
import { createAk, loadEk } from '../../agent/dist/attest/ek-ak.js';
import { CERTIFY_HANDLE_RANGE, handleHex, persistentHandles } from '../../agent/dist/attest/tpm-handles.js';
import { createLinkedKey } from '../../agent/dist/attest/tpm-key.js';
import { readTpmState } from '../../agent/dist/attest/tpm-state.js';
import { createTpmTools, execTool } from '../../agent/dist/attest/tpm-tools.js';
import { pkcs11KeyLabel } from '../../agent/dist/keystore/keystore.js';
import { tlsHandshake } from '../../agent/dist/keystore/keystore-conformance.js';
import { skipOrRequire } from './support/processes.js';

const NS = 'attest-test';

function memoryRecord(): CertifyRecord & { value?: string } {
  const r: CertifyRecord & { value?: string } = {
    pending: async () => r.value,
    setPending: async (h) => {
      r.value = h;
    },
  };
  return r;
}

test('agent TPM attestation against swtpm + tpm2-abrmd + tpm2-pkcs11', async (t) => {
  const tok = await swtpmTokenWithEkCert(t);
  if (typeof tok === 'string') return skipOrRequire(t, `missing ${tok}`);
  Object.assign(process.env, tok.env);
  const stateDir = mkdtempSync(join(tmpdir(), 'latchkey-attest-state-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const link = { tokenLabel: tok.tokenLabel, pin: tok.pin, keyLabel: (id: string) => pkcs11KeyLabel(NS, id) };
  const parent = Number.parseInt(DEFAULT_TPM_PARENT.slice(2), 16);
  /** Every command line the tools ran: no secret may be on one (`ps` shows them). */
  const argvSeen: string[] = [];
  const tools = (cwd: string) =>
    createTpmTools({
      cwd,
      env: process.env,
      exec: (cmd, args, o) => {
        argvSeen.push([cmd, ...args].join(' '));
        return execTool(cmd, args, o);
      },
    });
  const work = mkdtempSync(join(stateDir, 'work-'));
  const tt = tools(work);

  const ek = await loadEk(tt);
  const ak = await createAk(tt, ek);
  const ekPub = parsePublic2B(ek.public);
  const akPub = parsePublic2B(ak.public);

  await t.test('the EK is the RSA one and its certificate comes from NV index 0x01c00002', () => {
    assert.equal(ek.alg, 'rsa');
    assert.ok(ek.certificate && ek.certificate[0] === 0x30);
  });

  await t.test('Part 1 §24: TPM2_ActivateCredential recovers a secret made for the AK by @latchkey/tpm', async () => {
    const secret = randomBytes(32);
    const c = makeCredential({ ekPublic: ekPub, objectName: objectName(akPub), secret, random: randomBytes });
    const got = await activateCredential(tt, { ekCtx: ek.ctx, akHandle: ak.handle, credentialBlob: c.credentialBlob, encryptedSecret: c.encryptedSecret });
    assert.ok(got.equals(secret));
  });

  await t.test('a credential made for another Name is refused, with an AgentError naming the TPM step', async () => {
    const c = makeCredential({ ekPublic: ekPub, objectName: objectName(ekPub), secret: randomBytes(32), random: randomBytes });
    await assert.rejects(activateCredential(tt, { ekCtx: ek.ctx, akHandle: ak.handle, credentialBlob: c.credentialBlob, encryptedSecret: c.encryptedSecret }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TPM');
      assert.match(e.message, /^the TPM refused TPM2_ActivateCredential \(tpm2_activatecredential: .*\); the credential was not made for this TPM/);
      return true;
    });
  });

  await t.test('an ECC P-256 EK: an AK under it activates a credential made to it (ECDH, KDFe); no ECC EK certificate is no error', async () => {
    const ecc = await loadEk(tt, 'ecc');
    assert.equal(ecc.alg, 'ecc');
    assert.equal(ecc.certificate, undefined, 'swtpm_setup without --ecc writes only the RSA EK certificate');
    const eccAk = await createAk(tt, ecc);
    const secret = randomBytes(32);
    const c = makeCredential({ ekPublic: parsePublic2B(ecc.public), objectName: objectName(parsePublic2B(eccAk.public)), secret, random: randomBytes });
    assert.ok((await activateCredential(tt, { ekCtx: ecc.ctx, akHandle: eccAk.handle, credentialBlob: c.credentialBlob, encryptedSecret: c.encryptedSecret })).equals(secret));
    assert.equal(eccAk.handle, ak.handle + 1, 'a second AK takes the next free handle of the range');
    await tt.run('tpm2_evictcontrol', ['-C', 'o', '-c', handleHex(eccAk.handle)], { step: 'evict', hint: '' });
  });

  const key = await createLinkedKey(tt, { parent, ...link });
  const keyPub = parsePublic2B(key.public);

  await t.test('the device key is made fixedTPM / fixedParent / sensitiveDataOrigin and its SPKI matches @latchkey/tpm', () => {
    assert.deepEqual(deviceKeyAttributeProblems(keyPub), []);
    assert.ok(publicKeySpki(keyPub).equals(key.spki));
  });

  await t.test('Part 3 §18.2: the AK certifies the key with the secret as qualifyingData; verifyCertify accepts it', async () => {
    const nonce = randomBytes(32);
    const rec = memoryRecord();
    const before = await persistentHandles(tt);
    const made = await certifyKey(tt, rec, { parent, auth: key.auth, akHandle: ak.handle, qualifyingData: nonce });
    const attest = verifyCertify({ akPublic: akPub, attest: made.certifyInfo, signature: made.signature, nonce, certifiedPublic: keyPub });
    assert.ok(attest.qualifiedSigner.length > 0);
    assert.throws(() => verifyCertify({ akPublic: akPub, attest: made.certifyInfo, signature: made.signature, nonce: randomBytes(32), certifiedPublic: keyPub }), (e) => isTpmError(e, 'ATTESTATION_INVALID'));
    assert.deepEqual([...(await persistentHandles(tt))].sort(), [...before].sort(), 'the key is no longer persistent after the certify');
    assert.equal(rec.value, undefined);
  });

  await t.test('crash half-way: a key left persistent by a cut-short certify is removed by the next certify', async () => {
    const rec = memoryRecord();
    await tt.run('tpm2_load', ['-C', handleHex(parent), '-u', 'key.pub', '-r', 'key.priv', '-c', 'left.ctx'], { step: 'load', hint: '' });
    const stale = CERTIFY_HANDLE_RANGE.first;
    await tt.run('tpm2_evictcontrol', ['-C', 'o', '-c', 'left.ctx', handleHex(stale)], { step: 'evict', hint: '' });
    rec.value = handleHex(stale);
    assert.ok((await persistentHandles(tt)).has(stale));
    const nonce = randomBytes(32);
    const made = await certifyKey(tt, rec, { parent, auth: key.auth, akHandle: ak.handle, qualifyingData: nonce });
    verifyCertify({ akPublic: akPub, attest: made.certifyInfo, signature: made.signature, nonce, certifiedPublic: keyPub });
    assert.equal((await persistentHandles(tt)).has(stale), false);
    assert.equal(rec.value, undefined);
  });

  await t.test('a wrong key auth: TPM2_Certify is refused (TPM_RC_AUTH_FAIL) and nothing stays persistent', async () => {
    const rec = memoryRecord();
    const before = await persistentHandles(tt);
    await assert.rejects(certifyKey(tt, rec, { parent, auth: 'f'.repeat(32), akHandle: ak.handle, qualifyingData: randomBytes(32) }), /the TPM refused TPM2_Certify \(TPM_RC_AUTH_FAIL|BAD_AUTH/);
    assert.deepEqual([...(await persistentHandles(tt))].sort(), [...before].sort());
  });

  await t.test('the TPM signer makes an ECDSA P-256 signature that verifies under the key', async () => {
    const data = Buffer.from('a certificate request');
    const sig = Buffer.from(await key.signer.sign(data));
    assert.ok(createVerify('sha256').update(data).verify({ key: key.spki, format: 'der', type: 'spki' }, sig));
  });

  let attested: { ref: { keystore: string; id: string }; spki: Buffer; csr: Buffer } | undefined;
  let served: { secret: Buffer; challengeId: string } | undefined;
  await t.test('createAttestedKey: EK + a new recorded AK, challenge, activation, certify, a CSR carrying the attestation', async () => {
    const tpm = { kind: 'tpm' as const, parent: DEFAULT_TPM_PARENT };
    // A work dir a killed run left behind (with a key's auth in it) is removed.
    mkdirSync(join(stateDir, 'tpm-work-killed'), { mode: 0o700 });
    writeFileSync(join(stateDir, 'tpm-work-killed', 'key.auth'), 'leftover', { mode: 0o600 });
    attested = await createAttestedKey({
      stateDir,
      env: process.env,
      tpm,
      link,
      mode: 'enroll',
      requestChallenge: async (body) => {
        assert.ok('ekPublic' in body && body.ekCertificate, 'the enrollment challenge request carries the EK and its certificate');
        const secret = randomBytes(32);
        served = { secret, challengeId: crypto.randomUUID() };
        const c = makeCredential({ ekPublic: parsePublic2B(Buffer.from(body.ekPublic, 'base64')), objectName: objectName(parsePublic2B(Buffer.from(body.akPublic, 'base64'))), secret, random: randomBytes });
        return { challengeId: served.challengeId, credentialBlob: c.credentialBlob.toString('base64'), encryptedSecret: c.encryptedSecret.toString('base64'), expiresAt: new Date(Date.now() + 60_000).toISOString() };
      },
      makeCsr: (signer, json) =>
        createCsr({
          subject: [{ type: 'CN', value: 'attested-host' }],
          signer,
          stringAttributes: [
            { oid: FACTS_ATTRIBUTE_OID, value: '{}' },
            { oid: ATTESTATION_ATTRIBUTE_OID, value: json },
          ],
        }),
    });
    const csr = readVerifiedCsr(attested.csr);
    assert.ok(csr.spki.equals(attested.spki));
    const json = csrStringAttribute(csr, ATTESTATION_ATTRIBUTE_OID, MAX_ATTESTATION_JSON);
    assert.ok(json, 'the CSR has the attestation attribute');
    const a = JSON.parse(json) as { challengeId: string; secret: string; keyPublic: string; certifyInfo: string; signature: string };
    assert.equal(a.challengeId, served!.challengeId);
    assert.ok(Buffer.from(a.secret, 'base64').equals(served!.secret));
    const st = await readTpmState(stateDir);
    assert.ok(st.ak && st.ek?.alg === 'rsa' && st.certifyHandle === undefined);
    const recordedAk = parsePublic2B(Buffer.from(st.ak.publicBase64, 'base64'));
    const certified = parsePublic2B(Buffer.from(a.keyPublic, 'base64'));
    verifyCertify({ akPublic: recordedAk, attest: Buffer.from(a.certifyInfo, 'base64'), signature: Buffer.from(a.signature, 'base64'), nonce: served!.secret, certifiedPublic: certified });
    assert.ok(publicKeySpki(certified).equals(csr.spki), 'the certified key is the CSR key');
    assert.deepEqual(readdirSync(stateDir).filter((f) => f.startsWith('tpm-work-')), [], 'the work dirs are removed, a leftover one too');
  });

  await t.test('a renewal uses the recorded AK (same public), asks the challenge with the AK only, and unlinks its key when it fails', async () => {
    const st = await readTpmState(stateDir);
    await createAttestedKey({
      stateDir,
      env: process.env,
      tpm: { kind: 'tpm', parent: DEFAULT_TPM_PARENT },
      link,
      mode: 'renew',
      requestChallenge: async (body) => {
        assert.deepEqual(Object.keys(body), ['akPublic']);
        assert.equal(body.akPublic, st.ak!.publicBase64);
        throw new Error('the server is away');
      },
      makeCsr: async () => Buffer.alloc(0),
    }).then(
      () => assert.fail('expected the challenge to fail'),
      (e: Error) => assert.equal(e.message, 'the server is away'),
    );
    assert.deepEqual((await readTpmState(stateDir)).ak, st.ak);
    const listing = (await tt.ptool(['listobjects', '--label', tok.tokenLabel], { step: 'list', hint: '' })).toString();
    assert.equal(listing.match(new RegExp(`CKA_LABEL: ${pkcs11KeyLabel(NS, 'lk-')}`, 'g'))?.length, 4, 'two keys (private + public objects each): the failed renewal left none');
  });

  await t.test('discard() removes a made key from the token (the keystore of this process never saw it)', async () => {
    const extra = await createLinkedKey(tt, { parent, ...link });
    const { unlinkKey } = await import('../../agent/dist/attest/tpm-key.js');
    assert.equal(await unlinkKey(tt, tok.tokenLabel, link.keyLabel(extra.ref.id)), true);
    assert.equal(await unlinkKey(tt, tok.tokenLabel, link.keyLabel(extra.ref.id)), false);
    // As enroll.ts / renew.ts use it when the server refuses the CSR.
    const made = await createAttestedKey({
      stateDir,
      env: process.env,
      tpm: { kind: 'tpm', parent: DEFAULT_TPM_PARENT },
      link,
      mode: 'renew',
      requestChallenge: async (body) => {
        const c = makeCredential({ ekPublic: ekPub, objectName: objectName(parsePublic2B(Buffer.from(body.akPublic, 'base64'))), secret: randomBytes(32), random: randomBytes });
        return { challengeId: crypto.randomUUID(), credentialBlob: c.credentialBlob.toString('base64'), encryptedSecret: c.encryptedSecret.toString('base64'), expiresAt: new Date(Date.now() + 60_000).toISOString() };
      },
      makeCsr: async () => Buffer.from('csr'),
    });
    const listing = async () => (await tt.ptool(['listobjects', '--label', tok.tokenLabel], { step: 'list', hint: '' })).toString();
    assert.match(await listing(), new RegExp(link.keyLabel(made.ref.id)));
    await made.discard();
    assert.doesNotMatch(await listing(), new RegExp(link.keyLabel(made.ref.id)));
  });

  await t.test('no auth value or PIN was ever on a command line', () => {
    assert.ok(argvSeen.length > 5);
    for (const line of argvSeen) {
      assert.ok(!line.includes(tok.pin), `PIN in argv: ${line}`);
      assert.ok(!line.includes(key.auth), `key auth in argv: ${line}`);
    }
  });

  await t.test('the linked key is found by the pkcs11 keystore (NSS CKA_ID) and authenticates a TLS client', async () => {
    const { createPkcs11KeyStore } = await import('../../agent/dist/keystore/pkcs11-keystore.js');
    const { pkcs11WebCryptoKey } = await import('../../agent/dist/keystore/pkcs11-keystore.js');
    const store = createPkcs11KeyStore({ module: tok.module, tokenLabel: tok.tokenLabel, pin: async () => tok.pin, namespace: NS });
    try {
      const ids = (await store.list()).map((r) => r.id).sort();
      assert.deepEqual(ids, [key.ref.id, attested!.ref.id].sort());
      const k = await store.load(attested!.ref as never);
      assert.ok(k && k.spki.equals(attested!.spki));
      assert.equal(k.extractable, false);
      const point = k.spki.subarray(k.spki.length - 65);
      const w = pkcs11WebCryptoKey(k)!;
      const priv = (w.privateKey as unknown as { p11Object: { getAttribute(a: { id: null }): { id: Buffer } } }).p11Object;
      assert.ok(Buffer.from(priv.getAttribute({ id: null }).id).equals(createHash('sha1').update(point).digest()), 'CKA_ID is SHA-1 of the EC point');
      assert.equal(await tlsHandshake(k, 'TLSv1.3'), 'conformance-device');
      assert.equal(await tlsHandshake(k, 'TLSv1.2'), 'conformance-device');
      await store.delete(key.ref);
      assert.equal(await store.load(key.ref), undefined);
    } finally {
      await store.close();
    }
  });
});
