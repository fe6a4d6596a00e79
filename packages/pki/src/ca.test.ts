import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createCaHierarchy, importIssuingCa, createIssuer } from './ca.js';
import { certificateToPem, parseCertificate, basicConstraints, keyUsage } from './certificate.js';
import { isPkiError } from './errors.js';
import { nodeSigner } from './keys.js';
import { NOW, NOW_EPOCH, ecKey, newCa, openssl, rsaKey, tempDir } from './testing/support.js';

const rejects = async (p: Promise<unknown> | (() => unknown), code: string, re?: RegExp): Promise<void> => {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (e: unknown) => {
    assert.ok(isPkiError(e), `expected PkiError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
};

describe('CA hierarchy (RFC 5280 §4.2.1.9, §4.2.1.3)', () => {
  test('root and issuing CA are accepted by openssl, with the CA extensions', async (t) => {
    const ca = await newCa();
    const tmp = tempDir(t);
    const root = tmp.file('root.pem', certificateToPem(ca.root.der));
    const issuing = tmp.file('issuing.pem', certificateToPem(ca.issuing.cert.der));
    const v = await openssl(['verify', '-attime', String(NOW_EPOCH), '-CAfile', root, issuing]);
    assert.equal(v.code, 0, v.stderr + v.stdout);
    assert.match(v.stdout, /issuing.pem: OK/);
    const rootText = (await openssl(['x509', '-in', root, '-noout', '-text'])).stdout;
    assert.match(rootText, /Basic Constraints: critical\s+CA:TRUE\n/);
    assert.match(rootText, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(rootText, /Subject: O = Example Corp, CN = Example Corp Latchkey Root CA/);
    assert.match(rootText, /ASN1 OID: prime256v1/);
    const intText = (await openssl(['x509', '-in', issuing, '-noout', '-text'])).stdout;
    assert.match(intText, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(intText, /Authority Key Identifier:/);
    assert.match(intText, /URI:https:\/\/latchkey.example.com:8443\/crl\/root/);
    assert.ok(ca.issuing.cert.notAfter <= ca.root.notAfter);
  });

  test('P-384 option signs with ecdsa-with-SHA384', async (t) => {
    const ca = await newCa('P-384');
    const tmp = tempDir(t);
    const text = (await openssl(['x509', '-in', tmp.file('i.pem', certificateToPem(ca.issuing.cert.der)), '-noout', '-text'])).stdout;
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA384/);
    assert.match(text, /NIST CURVE: P-384/);
  });

  test('a weak CA key is refused', async () => {
    await rejects(
      createCaHierarchy({ org: 'X', now: NOW, rootKey: rsaKey(1024), issuingKey: ecKey(), randomBytes: crypto.randomBytes }),
      'ALGORITHM_UNSUPPORTED',
      /RSA 1024/,
    );
  });

  test('createIssuer refuses a key that is not the certificate\'s', async () => {
    const ca = await newCa();
    await rejects(() => createIssuer(ca.issuing.cert, nodeSigner(ecKey())), 'KEY_MISMATCH');
  });
});

/** An enterprise PKI made by openssl, independently of our code. */
async function opensslEnterprisePki(t: { after: (fn: () => void) => void }): Promise<{ dir: string; path: (n: string) => string }> {
  const tmp = tempDir(t);
  const path = (n: string): string => join(tmp.dir, n);
  tmp.file(
    'ext.cnf',
    [
      '[root]',
      'basicConstraints=critical,CA:TRUE',
      'keyUsage=critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier=hash',
      '[inter]',
      'basicConstraints=critical,CA:TRUE,pathlen:0',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      '[nosign]',
      'basicConstraints=critical,CA:TRUE',
      'keyUsage=critical,digitalSignature',
      '[leaf]',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      '',
    ].join('\n'),
  );
  const sh = async (...args: string[]): Promise<void> => {
    const r = await openssl(args, { cwd: tmp.dir });
    assert.equal(r.code, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  for (const k of ['root', 'inter', 'other', 'nosign', 'leaf']) {
    await sh('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${k}.key`);
  }
  await sh('req', '-new', '-x509', '-key', 'root.key', '-subj', '/O=Acme/CN=Acme Root', '-days', '3650', '-extensions', 'root', '-config', 'ext.cnf', '-out', 'root.pem', '-set_serial', '1');
  await sh('req', '-new', '-x509', '-key', 'other.key', '-subj', '/O=Other/CN=Other Root', '-days', '3650', '-extensions', 'root', '-config', 'ext.cnf', '-out', 'other.pem', '-set_serial', '1');
  for (const [k, ext] of [['inter', 'inter'], ['nosign', 'nosign'], ['leaf', 'leaf']] as const) {
    await sh('req', '-new', '-key', `${k}.key`, '-subj', `/O=Acme/CN=Acme ${k}`, '-out', `${k}.csr`);
    await sh('x509', '-req', '-in', `${k}.csr`, '-CA', 'root.pem', '-CAkey', 'root.key', '-days', '1000', '-extfile', 'ext.cnf', '-extensions', ext, '-out', `${k}.pem`, '-set_serial', '7');
  }
  return { dir: tmp.dir, path };
}

describe('importing an existing enterprise intermediate (made by openssl)', () => {
  const key = (p: string): crypto.KeyObject => crypto.createPrivateKey(readFileSync(p));
  // openssl stamps its certificates with the wall clock, so these tests check at an hour from now.
  const now = new Date(Date.now() + 3_600_000);

  test('a real intermediate with its key and root is imported and can issue', async (t) => {
    const pki = await opensslEnterprisePki(t);
    const r = importIssuingCa({ cert: readFileSync(pki.path('inter.pem'), 'utf8'), key: key(pki.path('inter.key')), root: readFileSync(pki.path('root.pem'), 'utf8'), now });
    assert.equal(basicConstraints(r.issuing.cert)?.ca, true);
    assert.ok(keyUsage(r.issuing.cert)?.has('keyCertSign'));
    assert.equal(r.root.subject.find((a) => a.type === 'CN')?.value, 'Acme Root');
  });

  test('the wrong key → KEY_MISMATCH', async (t) => {
    const pki = await opensslEnterprisePki(t);
    await rejects(() => importIssuingCa({ cert: readFileSync(pki.path('inter.pem'), 'utf8'), key: key(pki.path('root.key')), root: readFileSync(pki.path('root.pem'), 'utf8'), now }), 'KEY_MISMATCH');
  });

  test('a leaf (CA:false) → CA_INVALID; a CA without keyCertSign → CA_INVALID', async (t) => {
    const pki = await opensslEnterprisePki(t);
    const root = readFileSync(pki.path('root.pem'), 'utf8');
    await rejects(() => importIssuingCa({ cert: readFileSync(pki.path('leaf.pem'), 'utf8'), key: key(pki.path('leaf.key')), root, now }), 'CA_INVALID', /not a CA/);
    await rejects(() => importIssuingCa({ cert: readFileSync(pki.path('nosign.pem'), 'utf8'), key: key(pki.path('nosign.key')), root, now }), 'CA_INVALID', /keyCertSign/);
  });

  test('a root it does not chain to → CHAIN_INVALID', async (t) => {
    const pki = await opensslEnterprisePki(t);
    await rejects(() => importIssuingCa({ cert: readFileSync(pki.path('inter.pem'), 'utf8'), key: key(pki.path('inter.key')), root: readFileSync(pki.path('other.pem'), 'utf8'), now }), 'CHAIN_INVALID', /not signed by/);
  });

  test('outside its validity → CA_INVALID', async (t) => {
    const pki = await opensslEnterprisePki(t);
    const later = new Date(now.getTime() + 2000 * 86_400_000);
    await rejects(() => importIssuingCa({ cert: readFileSync(pki.path('inter.pem'), 'utf8'), key: key(pki.path('inter.key')), root: readFileSync(pki.path('root.pem'), 'utf8'), now: later }), 'CA_INVALID', /not valid now/);
  });

  test('garbage instead of a certificate → a typed error', async () => {
    await rejects(() => importIssuingCa({ cert: 'not a cert', key: ecKey(), root: 'nope', now }), 'PEM_INVALID');
    await rejects(() => parseCertificate(crypto.randomBytes(300)), 'DER_MALFORMED');
  });

  test('a certificate truncated at any length, or with a wrong label, is a typed error', async () => {
    const ca = await newCa();
    const der = ca.issuing.cert.der;
    for (let cut = 0; cut < der.length; cut++) await rejects(() => parseCertificate(der.subarray(0, cut)), 'DER_MALFORMED');
    await rejects(() => parseCertificate(certificateToPem(der).replace(/CERTIFICATE/g, 'X509 CRL')), 'PEM_INVALID', /CERTIFICATE/);
    await rejects(() => parseCertificate(Buffer.alloc(70_000, 0x30)), 'INPUT_TOO_LARGE');
  });
});
