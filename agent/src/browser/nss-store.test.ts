/**
 * The NSS store against the real certutil / pk12util / modutil on a throwaway
 * database: a renewal leaves only the new certificate and key, nothing of
 * anyone else is touched, and a PKCS#11 key (SoftHSM2) stays on its token
 * while NSS pairs the imported certificate with it — also a key the agent's
 * pkcs11 keystore made (SoftHSM2, software TPM).
 */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { certificateToPem, createCaHierarchy, createDeviceProfile, randomSerial } from '@latchkey/pki';
import { softhsmToken, swtpmToken } from '../../test-support/dist/pkcs11-fixtures.js';
import { createPkcs11KeyStore, pkcs11WebCryptoKey } from '../keystore/pkcs11-keystore.js';
import { entryLabel, nodeRunner } from './cert-store.js';
import { NSS_TOKEN_MODULE, createNssStore } from './nss-store.js';
import { buildPkcs12 } from './pkcs12.js';
import { deviceCerts, haveTools, mustSh, sh, tempDir } from '../../test-support/dist/browser-fixtures.js';

const DEVICE = '9d8c7b6a-5f4e-4d3c-8b2a-190817161514';
const NICK = entryLabel(DEVICE);
const serial = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase().replace(/^(00)+/, '');

/** `certutil -K` lines: "<n> ec <ckaid> <nickname>". */
const keys = (db: string, pwFile: string, token?: string): string[] =>
  mustSh('certutil', ['-K', '-d', `sql:${db}`, '-f', pwFile, ...(token ? ['-h', token] : [])])
    .split('\n')
    .filter((l) => /^<\s*\d+>/.test(l));

/** The agent's kind of certificate (device profile) for `spki`, from a throwaway CA. */
async function deviceCertFor(spki: Buffer, deviceId: string): Promise<string> {
  const now = new Date();
  const key = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ca = await createCaHierarchy({ org: 'Example Corp', now, rootKey: key(), issuingKey: key(), randomBytes });
  const profile = createDeviceProfile({ issuer: ca.issuing, org: 'Example Corp', trustDomain: 'example.test', crlUrls: ['http://x/crl'], ocspUrls: ['http://x/ocsp'], caIssuersUrls: ['http://x/ca'] });
  return certificateToPem(await profile.issue({ spki, deviceId, deviceName: 'laptop-1', serial: randomSerial(randomBytes), now, lifetimeSeconds: 3600 }));
}

describe('NSS store with the real NSS tools', () => {
  test('install, renew (same subject), host renamed (new subject), remove: only this device\'s current entry is ever there; another entry is never touched', async (t) => {
    if (!haveTools(t, 'openssl', 'certutil', 'pk12util')) return;
    const dir = tempDir(t);
    const db = join(dir, 'home', '.pki', 'nssdb');
    const { certs } = deviceCerts(dir, DEVICE, 2);
    mkdirSync(join(dir, 'renamed'));
    const renamed = deviceCerts(join(dir, 'renamed'), DEVICE, 1, 'laptop-renamed').certs[0]!;
    const store = createNssStore({ dbDir: db, run: nodeRunner(), tmp: dir });
    const st0 = await store.status(DEVICE);
    assert.equal(st0.available, false);

    const e0 = await store.install({ deviceId: DEVICE, certPem: certs[0]!.certPem, key: { kind: 'pem', pem: certs[0]!.keyPem } });
    assert.equal(e0.serialHex, serial(certs[0]!.certPem));
    // Someone else's certificate and key in the same database.
    writeFileSync(join(dir, 'empty'), '');
    writeFileSync(join(dir, 'pw'), 'pw');
    mkdirSync(join(dir, 'foreign'));
    const foreign = deviceCerts(join(dir, 'foreign'), '11111111-2222-4333-8444-555555555555', 1).certs[0]!;
    writeFileSync(join(dir, 'foreign.p12'), buildPkcs12({ certs: [Buffer.from(new X509Certificate(foreign.certPem).raw)], pkcs8: createPrivateKey(foreign.keyPem).export({ type: 'pkcs8', format: 'der' }), password: 'pw', friendlyName: 'Someone else', profile: 'aes256-sha256' }));
    assert.equal(sh('pk12util', ['-i', join(dir, 'foreign.p12'), '-d', `sql:${db}`, '-w', join(dir, 'pw'), '-k', join(dir, 'empty')]).code, 0);

    for (const next of [certs[1]!, renamed]) {
      const e = await store.install({ deviceId: DEVICE, certPem: next.certPem, key: { kind: 'pem', pem: next.keyPem } });
      const st = await store.status(DEVICE);
      assert.deepEqual(st.entries.map((x) => x.serialHex), [serial(next.certPem)]);
      assert.equal(e.serialHex, serial(next.certPem));
      const ks = keys(db, join(dir, 'empty'));
      assert.equal(ks.filter((l) => l.endsWith(NICK)).length, 1, `one key of ours:\n${ks.join('\n')}`);
      assert.equal(ks.filter((l) => l.endsWith('Someone else')).length, 1);
      assert.equal(ks.length, 2, `no orphaned key left:\n${ks.join('\n')}`);
    }
    assert.equal(await store.remove(DEVICE), 1);
    assert.deepEqual((await store.status(DEVICE)).entries, []);
    const ks = keys(db, join(dir, 'empty'));
    assert.deepEqual(ks.map((l) => l.replace(/^.*[0-9a-f]{40}\s+/, '')), ['Someone else']);
    assert.match(mustSh('certutil', ['-L', '-d', `sql:${db}`]), /Someone else/);
  });

  test('pkcs11 key (SoftHSM2): the module is registered, only the certificate is imported, NSS pairs it with the key on the token; remove unregisters the module and leaves the key', async (t) => {
    if (!haveTools(t, 'openssl', 'certutil', 'modutil', 'softhsm2-util', 'pkcs11-tool')) return;
    const tk = await softhsmToken(t);
    if (typeof tk === 'string') {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`SoftHSM2 unavailable: ${tk}`);
      t.skip(`SoftHSM2 unavailable: ${tk}`);
      return;
    }
    Object.assign(process.env, tk.env);
    const dir = tempDir(t);
    const { certs } = deviceCerts(dir, DEVICE, 1);
    const certPem = certs[0]!.certPem;
    // The key pair on the token, with the CKA_ID NSS looks keys up by: SHA-1 of the EC point (the SPKI's last 65 bytes).
    const ckaId = createHash('sha1').update(createPublicKey(certPem).export({ type: 'spki', format: 'der' }).subarray(-65)).digest('hex');
    mustSh('softhsm2-util', ['--import', join(dir, 'd0.key'), '--token', tk.tokenLabel, '--label', 'device-key', '--id', ckaId, '--pin', tk.pin]);

    const db = join(dir, 'nssdb');
    const store = createNssStore({ dbDir: db, run: nodeRunner({ env: { ...process.env, ...tk.env } }), tmp: dir });
    const e = await store.install({ deviceId: DEVICE, certPem, key: { kind: 'token', module: tk.module, tokenLabel: tk.tokenLabel } });
    assert.equal(e.serialHex, serial(certPem));
    const st = await store.status(DEVICE);
    assert.equal(st.tokenModule, tk.module);
    assert.deepEqual(st.entries.map((x) => x.serialHex), [serial(certPem)]);
    // NSS finds the certificate's key on the token (PK11_FindKeyByAnyCert, as for TLS client auth) and signs
    // with it: `certutil -R -k NICKNAME` (logged in to the token, -h; a browser asks for the PIN) makes a CSR
    // with that key, which openssl verifies. The key's CKA_ID is what NSS pairs by (see the import above).
    writeFileSync(join(dir, 'pin'), tk.pin);
    writeFileSync(join(dir, 'noise'), randomBytes(64));
    const sign = (): ReturnType<typeof sh> => sh('certutil', ['-R', '-d', `sql:${db}`, '-h', tk.tokenLabel, '-s', 'CN=probe', '-k', NICK, '-f', join(dir, 'pin'), '-z', join(dir, 'noise'), '-o', join(dir, 'probe.der')]);
    const signed = sign();
    assert.equal(signed.code, 0, signed.stdout + signed.stderr);
    assert.match(sh('openssl', ['req', '-in', join(dir, 'probe.der'), '-inform', 'DER', '-verify', '-noout']).stderr, /verify OK|Certificate request self-signature verify OK/);
    const csrKey = mustSh('openssl', ['req', '-in', join(dir, 'probe.der'), '-inform', 'DER', '-noout', '-pubkey']);
    assert.equal(csrKey, createPublicKey(certPem).export({ type: 'spki', format: 'pem' }));
    const tokenKeys = keys(db, join(dir, 'pin'), tk.tokenLabel);
    assert.equal(tokenKeys.length, 1, tokenKeys.join('\n'));
    assert.match(tokenKeys[0]!, new RegExp(`${ckaId}\\s+device-key$`));
    // No key went into NSS's own database.
    writeFileSync(join(dir, 'empty'), '');
    const internal = sh('certutil', ['-K', '-d', `sql:${db}`, '-f', join(dir, 'empty')]);
    assert.match(internal.stdout + internal.stderr, /Checking token "NSS Certificate DB"[\s\S]*no keys found/);

    assert.equal(await store.remove(DEVICE, { token: true }), 1);
    assert.deepEqual((await store.status(DEVICE)).entries, []);
    assert.notEqual(sign().code, 0, 'nothing to sign with any more');
    assert.notEqual(sh('modutil', ['-dbdir', `sql:${db}`, '-list', NSS_TOKEN_MODULE]).code, 0, 'the module is unregistered');
    assert.match(mustSh('pkcs11-tool', ['--module', tk.module, '--token-label', tk.tokenLabel, '--login', '--pin', tk.pin, '--list-objects', '--type', 'privkey']), /label:\s+device-key/, 'the key is still on the token');
  });
  for (const [name, makeToken] of [['SoftHSM2', softhsmToken], ['a software TPM (swtpm + tpm2-pkcs11)', swtpmToken]] as const) {
    test(`a key the pkcs11 keystore made on ${name}: NSS pairs the agent's certificate with it on the token by CKA_ID (SHA-1 of the EC point) and signs with it; with node-webcrypto-p11's own id it finds no key`, async (t) => {
      if (!haveTools(t, 'openssl', 'certutil', 'modutil')) return;
      const tk = await makeToken(t);
      if (typeof tk === 'string') {
        if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`${name} unavailable: ${tk}`);
        t.skip(`${name} unavailable: ${tk}`);
        return;
      }
      // Before the module is first opened in this process: it reads its settings once.
      Object.assign(process.env, tk.env);
      const dir = tempDir(t);
      const ks = createPkcs11KeyStore({ module: tk.module, tokenLabel: tk.tokenLabel, pin: async () => tk.pin, namespace: 'nss' });
      try {
        const k = await ks.generate();
        const certPem = await deviceCertFor(k.spki, DEVICE);
        const db = join(dir, 'nssdb');
        const store = createNssStore({ dbDir: db, run: nodeRunner({ env: { ...process.env, ...tk.env } }), tmp: dir });
        await store.install({ deviceId: DEVICE, certPem, key: { kind: 'token', module: tk.module, tokenLabel: tk.tokenLabel } });
        assert.equal((await store.status(DEVICE)).tokenModule, tk.module);
        writeFileSync(join(dir, 'pin'), tk.pin);
        writeFileSync(join(dir, 'noise'), randomBytes(64));
        // certutil -R -k NICKNAME: NSS looks up the certificate's key on the token (PK11_FindKeyByAnyCert, as for
        // TLS client auth) and signs a CSR with it; openssl checks the signature and that the key is the certificate's.
        const sign = (): ReturnType<typeof sh> => sh('certutil', ['-R', '-d', `sql:${db}`, '-h', tk.tokenLabel, '-s', 'CN=probe', '-k', NICK, '-f', join(dir, 'pin'), '-z', join(dir, 'noise'), '-o', join(dir, 'probe.der')]);
        const signed = sign();
        assert.equal(signed.code, 0, signed.stdout + signed.stderr);
        assert.match(sh('openssl', ['req', '-in', join(dir, 'probe.der'), '-inform', 'DER', '-verify', '-noout']).stderr, /verify OK/);
        assert.equal(mustSh('openssl', ['req', '-in', join(dir, 'probe.der'), '-inform', 'DER', '-noout', '-pubkey']), createPublicKey(certPem).export({ type: 'spki', format: 'pem' }));
        // The key on the token, as NSS lists it: CKA_ID = SHA-1 of the EC point (the SPKI's last 65 bytes for P-256).
        const ckaId = createHash('sha1').update(k.spki.subarray(-65)).digest();
        const tokenKeys = keys(db, join(dir, 'pin'), tk.tokenLabel);
        assert.equal(tokenKeys.length, 1, tokenKeys.join('\n'));
        assert.match(tokenKeys[0]!, new RegExp(`^<\\s*0>\\s+ec\\s+${ckaId.toString('hex')}\\s`));

        // Control: the id node-webcrypto-p11 gives (SHA-1 of the whole SPKI, 16 bytes; keys made before) leaves NSS without a key for the certificate.
        const wc = pkcs11WebCryptoKey(k);
        assert.ok(wc);
        for (const o of [wc.privateKey.p11Object, wc.publicKey.p11Object]) o.setAttribute({ id: createHash('sha1').update(k.spki).digest().subarray(0, 16) });
        const unpaired = sign();
        assert.notEqual(unpaired.code, 0, 'NSS finds no key for the certificate');
        assert.match(unpaired.stderr, /is neither a key-type nor a nickname nor a key-id: SSL_ERROR_NO_CERTIFICATE/, unpaired.stdout + unpaired.stderr);
        for (const o of [wc.privateKey.p11Object, wc.publicKey.p11Object]) o.setAttribute({ id: ckaId });
        assert.equal(sign().code, 0, 'paired again');

        assert.equal(await store.remove(DEVICE, { token: true }), 1);
        await ks.delete(k.ref);
      } finally {
        await ks.close();
      }
    });
  }
});
