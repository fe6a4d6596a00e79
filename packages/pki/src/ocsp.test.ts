import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, before, after } from 'node:test';
import type { CaHierarchy } from './ca.js';
import { certificateToPem, parseCertificate } from './certificate.js';
import { isPkiError } from './errors.js';
import { nodeSigner } from './keys.js';
import {
  type CertStatus,
  createOcspResponder,
  ocspErrorResponse,
  parseOcspGetPath,
  parseOcspRequest,
  parseOcspResponse,
  verifyOcspResponse,
  MAX_OCSP_REQUEST_BYTES,
} from './ocsp.js';
import { issueOcspResponderCertificate } from './profiles.js';
import { randomSerial } from './serial.js';
import { DEVICE_ID, NOW, NOW_EPOCH, deviceProfile, ecKey, newCa, openssl, spkiOf, tempDir } from './testing/support.js';

// The tests run at the fixed instant NOW, which is in the past for openssl's
// wall clock: `-validity_period` widens its freshness window so it checks the
// signature and the status rather than the age of thisUpdate/nextUpdate, and
// `-attime` verifies the responder's certificate chain at NOW.
const VALIDITY = ['-validity_period', '1000000000', '-attime', String(NOW_EPOCH + 60)];
const HOUR = 3_600_000;

describe('OCSP responder checked by openssl ocsp (RFC 6960)', () => {
  let ca: CaHierarchy;
  let other: CaHierarchy;
  let server: http.Server;
  let url: string;
  let dir: { dir: string; file: (n: string, d: string | Uint8Array) => string };
  const table = new Map<string, CertStatus>();
  const files: Record<string, string> = {};
  const cleanup: (() => void)[] = [];

  before(async () => {
    ca = await newCa();
    other = await newCa();
    dir = tempDir({ after: (fn) => cleanup.push(fn) });
    const key = ecKey();
    const responderCert = parseCertificate(
      await issueOcspResponderCertificate({ issuer: ca.issuing, spki: spkiOf(key), org: 'Example Corp', serial: randomSerial(crypto.randomBytes), notBefore: NOW, notAfter: new Date(NOW.getTime() + 30 * 86_400_000) }),
    );
    const responder = createOcspResponder({ issuer: ca.issuing.cert, responderCert, signer: nodeSigner(key) });
    const issue = async (c: CaHierarchy, name: string): Promise<Buffer> => {
      const serial = randomSerial(crypto.randomBytes);
      const der = await deviceProfile(c).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: name, serial, now: NOW, lifetimeSeconds: 86_400 });
      files[name] = dir.file(`${name}.pem`, certificateToPem(der));
      return serial;
    };
    table.set((await issue(ca, 'good')).toString('hex'), { status: 'good' });
    table.set((await issue(ca, 'revoked')).toString('hex'), { status: 'revoked', revokedAt: new Date('2026-02-28T08:30:00Z'), reason: 'keyCompromise' });
    await issue(ca, 'unlisted');
    await issue(other, 'foreign');
    files.issuing = dir.file('issuing.pem', certificateToPem(ca.issuing.cert.der));
    files.chain = dir.file('chain.pem', certificateToPem(ca.issuing.cert.der) + certificateToPem(ca.root.der));
    files.otherIssuing = dir.file('other-issuing.pem', certificateToPem(other.issuing.cert.der));

    const answer = async (der: Buffer): Promise<Buffer> => {
      let req;
      try {
        req = parseOcspRequest(der);
      } catch {
        return ocspErrorResponse('malformedRequest');
      }
      return responder.respond({ request: req, now: NOW, nextUpdate: new Date(NOW.getTime() + HOUR), lookup: (s) => table.get(s) ?? { status: 'unknown' } });
    };
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          let body: Buffer;
          if (req.method === 'POST') body = await answer(Buffer.concat(chunks));
          else {
            try {
              body = await answer(parseOcspGetPath((req.url ?? '').replace(/^\/ocsp/, '')));
            } catch {
              body = ocspErrorResponse('malformedRequest');
            }
          }
          res.writeHead(200, { 'content-type': 'application/ocsp-response' });
          res.end(body);
        })();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ocsp`;
  });
  after(() => {
    server.close();
    cleanup.forEach((f) => f());
  });

  const ask = (cert: string, issuer = files.issuing!, extra: string[] = []): ReturnType<typeof openssl> =>
    openssl(['ocsp', '-issuer', issuer, '-cert', cert, '-url', url, '-CAfile', files.chain!, '-resp_text', ...VALIDITY, ...extra]);

  test('§2.2 good: status good, response verified, nonce echoed (RFC 8954)', async () => {
    const r = await ask(files.good!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /good\.pem: good/);
    assert.match(r.stderr + r.stdout, /Response verify OK/);
    assert.match(r.stdout, /OCSP Nonce: \n\s+0410[0-9A-F]{32}/);
    assert.doesNotMatch(r.stderr + r.stdout, /WARNING: no nonce|Nonce Verify error/);
  });

  test('§2.2 revoked: status, time and reason', async () => {
    const r = await ask(files.revoked!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /revoked\.pem: revoked/);
    assert.match(r.stdout, /Reason: keyCompromise/);
    assert.match(r.stdout, /Revocation Time: Feb 28 08:30:00 2026 GMT/);
    assert.match(r.stderr + r.stdout, /Response verify OK/);
  });

  test('§2.2 unknown for a serial the CA never issued; -no_nonce works too', async () => {
    const r = await ask(files.unlisted!, files.issuing, ['-no_nonce']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /unlisted\.pem: unknown/);
    assert.doesNotMatch(r.stdout, /OCSP Nonce/);
  });

  test('§2.3 unauthorized for a certificate of another CA', async () => {
    const r = await ask(files.foreign!, files.otherIssuing);
    assert.match(r.stdout + r.stderr, /Responder Error: unauthorized \(6\)/);
  });

  test('Appendix A.1 GET: url-encoded base64 request in the path', async (t) => {
    const tmp = tempDir(t);
    const reqFile = `${tmp.dir}/req.der`;
    const made = await openssl(['ocsp', '-issuer', files.issuing!, '-cert', files.revoked!, '-reqout', reqFile]);
    assert.equal(made.code, 0, made.stderr);
    const b64 = readFileSync(reqFile).toString('base64');
    const res = await fetch(`${url}/${encodeURIComponent(b64)}`);
    const resp = parseOcspResponse(Buffer.from(await res.arrayBuffer()));
    assert.equal(resp.status, 'successful');
    assert.equal(resp.basic?.responses[0]?.status, 'revoked');
    assert.equal(resp.basic?.responses[0]?.reason, 'keyCompromise');
    assert.ok(resp.basic?.nonce, 'nonce echoed');
    assert.equal(verifyOcspResponse(resp, ca.issuing.cert), true);
    assert.equal(verifyOcspResponse(resp, other.issuing.cert), false);
  });

  test('§4.2.1 malformedRequest: our error response is read by openssl', async (t) => {
    const tmp = tempDir(t);
    const r = await openssl(['ocsp', '-respin', tmp.file('e.der', ocspErrorResponse('malformedRequest')), '-resp_text', '-noverify']);
    assert.match(r.stdout + r.stderr, /Responder Error: malformedrequest \(1\)/i);
    assert.equal(parseOcspResponse(ocspErrorResponse('unauthorized')).status, 'unauthorized');
  });
});

describe('OCSP request parser rejects bad input with typed errors', () => {
  test('truncated, random, empty, a certificate, oversized, empty list, bad GET paths', async (t) => {
    const ca = await newCa();
    const tmp = tempDir(t);
    const cert = tmp.file('c.pem', certificateToPem(await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'x', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 60 })));
    const made = await openssl(['ocsp', '-issuer', tmp.file('i.pem', certificateToPem(ca.issuing.cert.der)), '-cert', cert, '-reqout', `${tmp.dir}/r.der`]);
    assert.equal(made.code, 0, made.stderr);
    const good = readFileSync(`${tmp.dir}/r.der`);
    const parsed = parseOcspRequest(good);
    assert.equal(parsed.requests.length, 1);
    assert.equal(parsed.requests[0]?.hashAlgorithmOid, '1.3.14.3.2.26');
    assert.ok(parsed.nonce);
    const malformed = (e: unknown): boolean => isPkiError(e, 'OCSP_MALFORMED');
    for (let cut = 0; cut < good.length; cut++) assert.throws(() => parseOcspRequest(good.subarray(0, cut)), malformed, `cut ${cut}`);
    for (let i = 1; i < 200; i++) assert.throws(() => parseOcspRequest(crypto.randomBytes(i)), malformed);
    assert.throws(() => parseOcspRequest(ca.root.der), malformed);
    assert.throws(() => parseOcspRequest(Buffer.alloc(MAX_OCSP_REQUEST_BYTES + 1)), (e: unknown) => isPkiError(e, 'INPUT_TOO_LARGE'));
    // TBSRequest with an empty requestList.
    assert.throws(() => parseOcspRequest(Buffer.from('300430023000', 'hex')), (e: unknown) => malformed(e) && /no certificate/.test((e as Error).message));
    assert.throws(() => parseOcspGetPath(''), malformed);
    assert.throws(() => parseOcspGetPath('%%%'), malformed);
    assert.throws(() => parseOcspGetPath('not*base64'), malformed);
    assert.deepEqual(parseOcspGetPath('/' + encodeURIComponent(good.toString('base64'))), good);
    assert.deepEqual(parseOcspGetPath(good.toString('base64url')), good);
  });
});
