import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { certificateToPem, parseCertificate } from './certificate.js';
import { isPkiError } from './errors.js';
import { base64Body, base64Lines, decodeCertsOnly, encodeCertsOnly, pkcs7ToPem } from './pkcs7.js';
import { newCa, openssl, tempDir } from './testing/support.js';

describe('PKCS#7 certs-only (RFC 5652 §5, RFC 7030 §4.1.3)', () => {
  test('openssl pkcs7 -print_certs reads our bundle, in order', async (t) => {
    const ca = await newCa();
    const tmp = tempDir(t);
    const der = encodeCertsOnly([ca.issuing.cert.der, ca.root.der]);
    const r = await openssl(['pkcs7', '-inform', 'DER', '-in', tmp.file('p.der', der), '-print_certs', '-noout']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /subject=O = Example Corp, CN = Example Corp Latchkey Device CA\nissuer=O = Example Corp, CN = Example Corp Latchkey Root CA\n\nsubject=O = Example Corp, CN = Example Corp Latchkey Root CA/);
    const pem = await openssl(['pkcs7', '-in', tmp.file('p.pem', pkcs7ToPem(der)), '-print_certs', '-noout']);
    assert.equal(pem.code, 0, pem.stderr);
  });

  test('we read what openssl crl2pkcs7 writes, and EST base64 bodies', async (t) => {
    const ca = await newCa();
    const tmp = tempDir(t);
    tmp.file('chain.pem', certificateToPem(ca.issuing.cert.der) + certificateToPem(ca.root.der));
    const r = await openssl(['crl2pkcs7', '-nocrl', '-certfile', 'chain.pem', '-outform', 'DER', '-out', 'p7.der'], { cwd: tmp.dir });
    assert.equal(r.code, 0, r.stderr);
    const der = readFileSync(`${tmp.dir}/p7.der`);
    const certs = decodeCertsOnly(der);
    assert.equal(certs.length, 2);
    assert.deepEqual(parseCertificate(certs[0]!).subject, ca.issuing.cert.subject);
    const body = base64Lines(der);
    assert.ok(body.split('\n').every((l) => l.length <= 64));
    assert.deepEqual(decodeCertsOnly(body).map((c) => c.toString('hex')), certs.map((c) => c.toString('hex')));
  });

  test('bad input → typed errors', async () => {
    const ca = await newCa();
    const good = encodeCertsOnly([ca.root.der]);
    for (let cut = 1; cut < good.length; cut += 7) {
      assert.throws(() => decodeCertsOnly(good.subarray(0, cut)), (e: unknown) => isPkiError(e, 'DER_MALFORMED'));
    }
    assert.throws(() => decodeCertsOnly(crypto.randomBytes(64)), (e: unknown) => isPkiError(e));
    assert.throws(() => decodeCertsOnly(ca.root.der), (e: unknown) => isPkiError(e, 'DER_MALFORMED') && /ContentInfo/.test(e.message));
    assert.throws(() => decodeCertsOnly('***not base64***'), (e: unknown) => isPkiError(e, 'DER_MALFORMED'));
    assert.throws(() => base64Body(''), (e: unknown) => isPkiError(e, 'DER_MALFORMED'));
    assert.throws(() => encodeCertsOnly([]), (e: unknown) => isPkiError(e, 'ARGUMENT_INVALID'));
  });
});
