import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isPkiError } from './errors.js';
import { PEM, pemDecode, pemDecodeAll, pemEncode, toDer } from './pem.js';

const expectCode = (fn: () => unknown, code: string, re?: RegExp): void => {
  assert.throws(fn, (e: unknown) => isPkiError(e) && e.code === code && (!re || re.test(e.message)));
};

describe('PEM (RFC 7468)', () => {
  const der = Buffer.from(Array.from({ length: 200 }, (_, i) => i));

  test('§2: 64-character lines, round trip', () => {
    const pem = pemEncode(PEM.CRL, der);
    assert.match(pem, /^-----BEGIN X509 CRL-----\n/);
    for (const line of pem.trim().split('\n').slice(1, -1)) assert.ok(line.length <= 64);
    assert.deepEqual(pemDecode(pem, PEM.CRL), der);
    assert.deepEqual(toDer(Buffer.from(pem), PEM.CRL), der);
    assert.deepEqual(toDer(der, PEM.CRL), der);
  });

  test('the wrong label is refused and named', () => {
    const pem = pemEncode('CRL', der);
    expectCode(() => pemDecode(pem, PEM.CRL), 'PEM_INVALID', /expected a PEM X509 CRL block, found CRL/);
  });

  test('CRLF line endings and surrounding text are accepted', () => {
    const pem = 'subject=foo\r\n' + pemEncode(PEM.CERTIFICATE, der).replace(/\n/g, '\r\n');
    assert.deepEqual(pemDecode(pem, PEM.CERTIFICATE), der);
  });

  test('bad base64, mismatched END, headers, empty block and no block are refused', () => {
    expectCode(() => pemDecode('-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n', PEM.CERTIFICATE), 'PEM_INVALID', /base64/);
    expectCode(() => pemDecode('-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n', PEM.CERTIFICATE), 'PEM_INVALID', /ends with/);
    expectCode(() => pemDecode('-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END CERTIFICATE-----\n', PEM.CERTIFICATE), 'PEM_INVALID', /headers/);
    expectCode(() => pemDecode('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', PEM.CERTIFICATE), 'PEM_INVALID', /empty/);
    expectCode(() => pemDecode('hello', PEM.CERTIFICATE), 'PEM_INVALID', /no PEM block/);
    expectCode(() => toDer(new Uint8Array(0), PEM.CERTIFICATE), 'DER_MALFORMED', /empty/);
  });

  test('two blocks where one is expected are refused; pemDecodeAll reads both', () => {
    const two = pemEncode(PEM.CERTIFICATE, der) + pemEncode(PEM.CERTIFICATE, der);
    expectCode(() => pemDecode(two, PEM.CERTIFICATE), 'PEM_INVALID', /found 2/);
    assert.equal(pemDecodeAll(two).length, 2);
  });
});
