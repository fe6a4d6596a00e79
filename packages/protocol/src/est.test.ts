import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { CONTENT_TRANSFER_ENCODING, CRL_PATHS, CrlIssuer, EST_PATHS, EST_PREFIX, MEDIA_TYPES, PATHS } from './est.js';
import { PROTOCOL_VERSION } from './version.js';

describe('protocol version', () => {
  test('is the integer 1', () => {
    assert.equal(PROTOCOL_VERSION, 1);
    assert.ok(Number.isInteger(PROTOCOL_VERSION));
  });
});

describe('EST paths and media types', () => {
  test('RFC 7030 §3.2.2: the four operations live under /.well-known/est/', () => {
    assert.equal(EST_PREFIX, '/.well-known/est');
    assert.deepEqual(EST_PATHS, {
      cacerts: '/.well-known/est/cacerts',
      simpleenroll: '/.well-known/est/simpleenroll',
      simplereenroll: '/.well-known/est/simplereenroll',
      csrattrs: '/.well-known/est/csrattrs',
    });
  });

  test('RFC 7030 §4.2 / RFC 6960 / RFC 2585: media types are the registered ones', () => {
    assert.equal(MEDIA_TYPES.pkcs10, 'application/pkcs10');
    assert.equal(MEDIA_TYPES.pkcs7CertsOnly, 'application/pkcs7-mime; smime-type=certs-only');
    assert.ok(MEDIA_TYPES.pkcs7CertsOnly.startsWith(`${MEDIA_TYPES.pkcs7};`));
    assert.equal(MEDIA_TYPES.csrattrs, 'application/csrattrs');
    assert.equal(MEDIA_TYPES.ocspRequest, 'application/ocsp-request');
    assert.equal(MEDIA_TYPES.ocspResponse, 'application/ocsp-response');
    assert.equal(MEDIA_TYPES.pkixCrl, 'application/pkix-crl');
    assert.equal(MEDIA_TYPES.pemFile, 'application/x-pem-file');
    assert.deepEqual(CONTENT_TRANSFER_ENCODING, { header: 'content-transfer-encoding', base64: 'base64' });
  });

  test('CRL paths: /crl is the issuing CA, /crl/root the root, each in DER and PEM, no URL shared', () => {
    assert.deepEqual(CRL_PATHS, { issuing: { der: '/crl', pem: '/crl.pem' }, root: { der: '/crl/root', pem: '/crl/root.pem' } });
    for (const issuer of Object.keys(CRL_PATHS)) assert.ok(Value.Check(CrlIssuer, issuer), issuer);
    assert.ok(!Value.Check(CrlIssuer, 'intermediate'));
  });

  test('every public path is absolute and unique', () => {
    const all = [...Object.values(EST_PATHS), ...Object.values(PATHS)];
    for (const p of all) assert.match(p, /^\/[a-z0-9./-]*$/, p);
    assert.equal(new Set(all).size, all.length);
    assert.equal(PATHS.agentChannel, '/v1/agent');
    assert.equal(PATHS.events, '/v1/events');
    assert.equal(PATHS.admin, '/v1/admin');
  });
});
