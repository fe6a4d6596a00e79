/**
 * Valid inputs the fuzz targets mutate, made by the real server: a data dir
 * from `init`, the app on SQLite, an enrolled device, a revoked one (so the
 * CRL has entries), CSRs with and without facts, OCSP requests, PKCS#7
 * bundles. One set per scope, shared by the targets opened in it.
 */
import * as crypto from 'node:crypto';
import { OID, createCsr, encodeExtension, keyUsageValue, nodeSigner, spkiKeyBits, subjectAltNameValue, type Certificate } from '@latchkey/pki';
import { explicit, int, nul, octets, oid, seq } from '@latchkey/pki/der';
import { FACTS_ATTRIBUTE_OID, type DeviceFacts } from '@latchkey/protocol';
import { adminCall, certFromBody, createToken, enroll, harness, type Harness } from '../testing/harness.js';
import type { FuzzScope } from './fuzz-engine.js';

export interface Fixtures {
  h: Harness;
  /** An enrollment token with many uses (group default, no approval). */
  token: string;
  device: { id: string; key: crypto.KeyObject; cert: Certificate };
  facts: DeviceFacts;
  csrs: Buffer[];
  ocspRequests: Buffer[];
  pkcs7: Buffer[];
  crls: Buffer[];
  certs: Buffer[];
}

export const FACTS: DeviceFacts = {
  hostname: 'laptop-1.corp.example',
  os: { platform: 'linux', release: '6.1.0-18-amd64', version: 'Debian 12' },
  arch: 'x64',
  hardwareId: '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
  agentVersion: '0.1.0',
};

const made = new WeakMap<FuzzScope, Promise<Fixtures>>();

export function fixtures(scope: FuzzScope): Promise<Fixtures> {
  let f = made.get(scope);
  if (!f) made.set(scope, (f = make(scope)));
  return f;
}

/** A CSR for `key` with the facts attribute holding `factsJson` (any string). */
export function csrWithFacts(key: crypto.KeyObject, factsJson: string, cn = 'laptop-1'): Promise<Buffer> {
  return createCsr({ subject: [{ type: 'CN', value: cn }], signer: nodeSigner(key), stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: factsJson }] });
}

/** OCSPRequest (RFC 6960 §4.1.1) for serials of `issuer`, with a CertID per serial. */
export function ocspRequest(issuer: Certificate, serials: string[], opts: { hash?: 'sha1' | 'sha256'; nonce?: Buffer } = {}): Buffer {
  const hash = opts.hash ?? 'sha1';
  const alg = seq(oid(hash === 'sha1' ? OID.sha1 : OID.sha256), nul());
  const nameHash = crypto.createHash(hash).update(issuer.subjectDer).digest();
  const keyHash = crypto.createHash(hash).update(spkiKeyBits(issuer.spki)).digest();
  const list = seq(...serials.map((s) => seq(seq(alg, octets(nameHash), octets(keyHash), int(Buffer.from(s, 'hex'))))));
  const exts = opts.nonce ? [explicit(2, seq(encodeExtension(OID.ocspNonce, false, octets(opts.nonce))))] : [];
  return seq(seq(list, ...exts));
}

async function make(scope: FuzzScope): Promise<Fixtures> {
  const h = await harness(scope, scope.engine, { config: { enrollRateLimitPerMinute: 1_000_000 } });
  if (!h) throw new Error(`the fuzz fixtures need ${scope.engine}, which is not reachable`);
  const token = await createToken(h, { uses: 100_000 });
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const csr = await csrWithFacts(key, JSON.stringify(FACTS));
  const r = await enroll(h, token, csr);
  if (r.statusCode !== 200) throw new Error(`fixture enrollment failed: ${r.statusCode} ${r.body}`);
  const cert = certFromBody(r.body);
  const devices = await adminCall<{ items: Array<{ id: string }> }>(h, 'GET', '/v1/admin/devices');
  const id = devices.json.items[0]!.id;

  // A second device, revoked: the CRL lists it.
  const k2 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const r2 = await enroll(h, token, await csrWithFacts(k2, JSON.stringify({ ...FACTS, hostname: 'laptop-2' }), 'laptop-2'));
  const cert2 = certFromBody(r2.body);
  const all = await adminCall<{ items: Array<{ id: string }> }>(h, 'GET', '/v1/admin/devices');
  const id2 = all.json.items.find((d) => d.id !== id)!.id;
  const rv = await adminCall(h, 'POST', `/v1/admin/devices/${id2}/revoke`, { reason: 'keyCompromise' });
  if (rv.status !== 200) throw new Error(`fixture revocation failed: ${rv.status}`);

  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const csrs = [
    csr,
    await createCsr({ subject: [{ type: 'CN', value: 'bare' }], signer: nodeSigner(key) }),
    await createCsr({
      subject: [{ type: 'CN', value: 'rsa' }, { type: 'O', value: 'Example Corp' }],
      signer: nodeSigner(rsa),
      challengePassword: 'otp-123456',
      extensions: [encodeExtension(OID.keyUsage, true, keyUsageValue(['digitalSignature'])), encodeExtension(OID.subjectAltName, false, subjectAltNameValue([{ dns: 'a.example' }]))],
      stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: JSON.stringify({ ...FACTS, userEmail: 'a@corp.example' }) }],
    }),
  ];
  const cacerts = await h.app.inject({ method: 'GET', url: '/.well-known/est/cacerts' });
  const crlIssuing = await h.app.inject({ method: 'GET', url: '/crl' });
  const crlRoot = await h.app.inject({ method: 'GET', url: '/crl/root' });
  if (crlIssuing.statusCode !== 200 || crlRoot.statusCode !== 200) throw new Error('fixture CRLs are not served');
  return {
    h,
    token,
    device: { id, key, cert },
    facts: FACTS,
    csrs,
    ocspRequests: [
      ocspRequest(h.issuing, [cert.serialHex], { nonce: crypto.randomBytes(16) }),
      ocspRequest(h.issuing, [cert.serialHex, cert2.serialHex, 'ff'], { hash: 'sha256' }),
    ],
    pkcs7: [Buffer.from(cacerts.body, 'base64'), Buffer.from(r.body, 'base64')],
    crls: [crlIssuing.rawPayload, crlRoot.rawPayload],
    certs: [cert.der, h.issuing.der],
  };
}

