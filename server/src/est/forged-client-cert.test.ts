/**
 * A TLS client certificate that only names our issuing CA (its own key, a
 * signature that is garbage) is refused as unknown on a real TLS socket:
 * by simplereenroll and by the /v1/agent upgrade, never with a 500. Found
 * by `pnpm fuzz est-reenroll` (fuzz-corpus/est-reenroll/696ea169667e3833.bin).
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { encodeName, pemEncode, randomSerial, signCertificate, type SignatureAlgorithm } from '@latchkey/pki';
import { EST_PATHS, MEDIA_TYPES, PATHS } from '@latchkey/protocol';
import { WebSocket } from 'ws';
import { b64, deviceCsr, harness } from '../testing/harness.js';

async function forged(issuerDer: Buffer, algorithm: SignatureAlgorithm, signature: Buffer) {
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const spki = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' });
  const now = Date.now();
  const der = await signCertificate(
    { serial: randomSerial(crypto.randomBytes), issuerDer, subjectDer: encodeName([{ type: 'CN', value: 'forged' }]), spki, notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000), extensions: [] },
    { algorithm, spki, sign: () => signature },
  );
  return { cert: pemEncode('CERTIFICATE', der), key: key.export({ format: 'pem', type: 'pkcs8' }) as string };
}

function post(port: number, path: string, tls: { cert: string; key: string }, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method: 'POST', ...tls, rejectUnauthorized: false, headers: { 'content-type': MEDIA_TYPES.pkcs10 } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function upgrade(port: number, tls: { cert: string; key: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${PATHS.agentChannel}`, { ...tls, rejectUnauthorized: false });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => reject(new Error('a forged client certificate opened the control channel')));
    ws.on('error', () => undefined);
  });
}

describe('RFC 5280 §6.1.3 (a)(1): a client certificate whose signature is not the CA\'s is unknown, whatever its signature holds', () => {
  test('malformed ECDSA signature and foreign algorithm: simplereenroll and /v1/agent answer 403 CLIENT_CERT_UNKNOWN over real TLS', async (t) => {
    const h = (await harness(t, 'sqlite', { tls: true }))!;
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (h.app.server.address() as AddressInfo).port;
    const csr = b64((await deviceCsr()).csr);
    for (const [alg, sig] of [
      ['ecdsa-with-SHA256', Buffer.from('30050201013000', 'hex')],
      ['sha256WithRSAEncryption', Buffer.alloc(256, 1)],
    ] as const) {
      const tls = await forged(h.issuing.subjectDer, alg, sig);
      const r = await post(port, EST_PATHS.simplereenroll, tls, csr);
      assert.equal(r.status, 403, `${alg}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'CLIENT_CERT_UNKNOWN');
      assert.equal(await upgrade(port, tls), 403, alg);
    }
  });
});
