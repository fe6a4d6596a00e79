import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bmpPassword, buildPkcs12, pkcs12Kdf, randomPkcs12Password, type Pkcs12Profile } from './pkcs12.js';
import { deviceCerts, haveTools, mustSh, sh, tempDir } from '../../test-support/dist/browser-fixtures.js';

const DEVICE = '3f0c9a4e-8d1b-4c55-9a6e-2b7d1f00c0de';
const der = (pem: string): Buffer => Buffer.from(new X509Certificate(pem).raw);
const pkcs8 = (pem: string): Buffer => createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });

describe('RFC 7292 Appendix B.2: the PKCS#12 key derivation', () => {
  // Published vectors (OpenSSL / Bouncy Castle PKCS#12 KDF tests), SHA-1, BMPString passwords.
  test('"smeg", salt 0A58CF64530D823F, 1 iteration: key (id 1) and IV (id 2)', () => {
    const salt = Buffer.from('0A58CF64530D823F', 'hex');
    assert.equal(pkcs12Kdf('sha1', bmpPassword('smeg'), salt, 1, 1, 24).toString('hex').toUpperCase(), '8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3');
    assert.equal(pkcs12Kdf('sha1', bmpPassword('smeg'), salt, 2, 1, 8).toString('hex').toUpperCase(), '79993DFE048D3B76');
  });
  test('"queeg", salt 05DEC959ACFF72F7, 1000 iterations: key (id 1)', () => {
    assert.equal(pkcs12Kdf('sha1', bmpPassword('queeg'), Buffer.from('05DEC959ACFF72F7', 'hex'), 1, 1000, 24).toString('hex').toUpperCase(), 'ED2034E36328830FF09DF1E1A07DD357185DAC0D4F9EB3D4');
  });
  test('the password is a BMPString with a NUL terminator', () => {
    assert.deepEqual(bmpPassword('ab'), Buffer.from([0, 0x61, 0, 0x62, 0, 0]));
  });
});

describe('PKCS#12 bundles as openssl and NSS pk12util read them', () => {
  const expected: Record<Pkcs12Profile, RegExp[]> = {
    'aes256-sha256': [/^MAC: sha256, Iteration 2048$/m, /^PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256$/m, /^Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256$/m],
    'legacy-3des-sha1': [/^MAC: sha1, Iteration 2048$/m, /^PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048$/m, /^Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048$/m],
  };

  for (const profile of ['aes256-sha256', 'legacy-3des-sha1'] as const) {
    test(`${profile}: openssl verifies the MAC, names the algorithms, and gives back the same key and certificate with friendlyName and localKeyID`, (t) => {
      if (!haveTools(t, 'openssl')) return;
      const dir = tempDir(t);
      const { certs } = deviceCerts(dir, DEVICE, 1);
      const password = randomPkcs12Password();
      assert.match(password, /^[A-Za-z0-9_-]{43}$/);
      writeFileSync(join(dir, 'pw'), password);
      writeFileSync(join(dir, 'b.p12'), buildPkcs12({ certs: [der(certs[0]!.certPem)], pkcs8: pkcs8(certs[0]!.keyPem), password, friendlyName: `Latchkey device ${DEVICE}`, profile }));

      const info = sh('openssl', ['pkcs12', '-info', '-noout', '-in', 'b.p12', '-passin', 'file:pw'], { cwd: dir });
      assert.equal(info.code, 0, info.stderr);
      for (const re of expected[profile]) assert.match(info.stdout + info.stderr, re);

      const keyOut = mustSh('openssl', ['pkcs12', '-in', 'b.p12', '-passin', 'file:pw', '-nocerts', '-nodes'], { cwd: dir });
      assert.match(keyOut, new RegExp(`friendlyName: Latchkey device ${DEVICE}`));
      assert.deepEqual(pkcs8(keyOut.slice(keyOut.indexOf('-----BEGIN'))), pkcs8(certs[0]!.keyPem));
      const certOut = mustSh('openssl', ['pkcs12', '-in', 'b.p12', '-passin', 'file:pw', '-nokeys', '-clcerts'], { cwd: dir });
      assert.deepEqual(der(certOut.slice(certOut.indexOf('-----BEGIN'))), der(certs[0]!.certPem));
      const keyId = new X509Certificate(certs[0]!.certPem).fingerprint.replace(/:/g, ' ');
      assert.ok(keyOut.includes(`localKeyID: ${keyId}`), `localKeyID is SHA-1 of the certificate (${keyId})\n${keyOut}`);
      assert.ok(certOut.includes(`localKeyID: ${keyId}`));
    });

    test(`${profile}: a wrong password fails the MAC check`, (t) => {
      if (!haveTools(t, 'openssl')) return;
      const dir = tempDir(t);
      const { certs } = deviceCerts(dir, DEVICE, 1);
      writeFileSync(join(dir, 'b.p12'), buildPkcs12({ certs: [der(certs[0]!.certPem)], pkcs8: pkcs8(certs[0]!.keyPem), password: 'right-password', friendlyName: 'x', profile }));
      writeFileSync(join(dir, 'pw'), 'wrong-password');
      const r = sh('openssl', ['pkcs12', '-info', '-noout', '-in', 'b.p12', '-passin', 'file:pw'], { cwd: dir });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Mac verify error/i);
    });

    test(`${profile}: NSS pk12util imports it with its key under the friendlyName`, (t) => {
      if (!haveTools(t, 'openssl', 'certutil', 'pk12util')) return;
      const dir = tempDir(t);
      const { certs } = deviceCerts(dir, DEVICE, 1);
      const password = randomPkcs12Password();
      writeFileSync(join(dir, 'pw'), password);
      writeFileSync(join(dir, 'empty'), '');
      writeFileSync(join(dir, 'b.p12'), buildPkcs12({ certs: [der(certs[0]!.certPem)], pkcs8: pkcs8(certs[0]!.keyPem), password, friendlyName: 'Latchkey device test', profile }));
      mustSh('certutil', ['-N', '-d', `sql:${dir}`, '--empty-password']);
      const imp = sh('pk12util', ['-i', join(dir, 'b.p12'), '-d', `sql:${dir}`, '-w', join(dir, 'pw'), '-k', join(dir, 'empty')]);
      assert.equal(imp.code, 0, imp.stdout + imp.stderr);
      assert.match(imp.stdout + imp.stderr, /PKCS12 IMPORT SUCCESSFUL/);
      const pem = mustSh('certutil', ['-L', '-d', `sql:${dir}`, '-n', 'Latchkey device test', '-a']);
      assert.deepEqual(der(pem), der(certs[0]!.certPem));
      assert.match(mustSh('certutil', ['-K', '-d', `sql:${dir}`, '-f', join(dir, 'empty')]), /<\s*0> ec\s+[0-9a-f]{40}\s+Latchkey device test$/m);
    });
  }

  test('a chain: every certificate is in, and only the first carries the friendlyName and localKeyID', (t) => {
    if (!haveTools(t, 'openssl')) return;
    const dir = tempDir(t);
    const { caPem, certs } = deviceCerts(dir, DEVICE, 1);
    writeFileSync(join(dir, 'pw'), 'pw');
    writeFileSync(join(dir, 'b.p12'), buildPkcs12({ certs: [der(certs[0]!.certPem), der(caPem)], pkcs8: pkcs8(certs[0]!.keyPem), password: 'pw', friendlyName: 'leaf', profile: 'aes256-sha256' }));
    const all = mustSh('openssl', ['pkcs12', '-in', 'b.p12', '-passin', 'file:pw', '-nokeys'], { cwd: dir });
    assert.equal(all.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2);
    assert.equal(all.match(/friendlyName: leaf/g)?.length, 1);
    assert.equal(all.match(/localKeyID:/g)?.length, 1);
    const cas = mustSh('openssl', ['pkcs12', '-in', 'b.p12', '-passin', 'file:pw', '-nokeys', '-cacerts'], { cwd: dir });
    assert.deepEqual(der(cas.slice(cas.indexOf('-----BEGIN'))), der(caPem));
  });

  test('refuses what it cannot encode faithfully: no certificate, a non-ASCII password', () => {
    assert.throws(() => buildPkcs12({ certs: [], pkcs8: Buffer.alloc(1), password: 'x', friendlyName: 'x', profile: 'aes256-sha256' }), /no certificate/);
    assert.throws(() => buildPkcs12({ certs: [Buffer.alloc(1)], pkcs8: Buffer.alloc(1), password: 'pässword', friendlyName: 'x', profile: 'aes256-sha256' }), /printable ASCII/);
  });
});
