/**
 * The conformance suite every KeyStore passes (SPIRE's keymanagertest.go is
 * the model): generation, signing a CSR that verifies, load after reopen,
 * listing and deletion, isolation between namespaces, and a real TLS 1.3 /
 * 1.2 client-certificate handshake with the key as node:tls uses it.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { once } from 'node:events';
import * as tls from 'node:tls';
import { describe, test, type TestContext } from 'node:test';
import {
  certificateToPem,
  createCaHierarchy,
  createCsr,
  createDeviceProfile,
  describeSpki,
  issueServerCertificate,
  readVerifiedCsr,
  randomSerial,
} from '@latchkey/pki';
import type { DeviceKey, KeyStore, KeystoreKind } from './keystore.js';
import { tlsClientKeyOptions } from './tls-key.js';

export interface ConformanceTarget {
  /** Opens the store under test; each call is a new instance on the same namespace. */
  open(): Promise<KeyStore>;
  /** Opens a store of the same kind on another namespace (isolation). */
  openOther(): Promise<KeyStore>;
  /** Whether keys can leave the store. */
  extractable: boolean;
}

/**
 * `setup` returns the target, or a string naming what is missing on this
 * machine (the suite then skips, unless LATCHKEY_REQUIRE_ALL=1 makes it fail).
 */
export function keystoreConformance(
  kind: KeystoreKind,
  setup: (t: TestContext) => Promise<ConformanceTarget | string>,
  /**
   * Tests an implementation must run elsewhere, each with the reason (shown
   * as the skip message). The caller must run them in that other setting.
   */
  runElsewhere: { tls?: string } = {},
  /** Told after the kind in the suite's name, when one kind runs on several backends. */
  variant = '',
): void {
  describe(`KeyStore conformance: ${kind}${variant}`, () => {
    const target = async (t: TestContext): Promise<ConformanceTarget | undefined> => {
      const r = await setup(t);
      if (typeof r !== 'string') return r;
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`${kind} keystore unavailable: ${r}`);
      t.skip(`${kind} keystore unavailable: ${r}`);
      return undefined;
    };
    const withStore = async (t: TestContext, fn: (s: KeyStore, tg: ConformanceTarget) => Promise<void>): Promise<void> => {
      const tg = await target(t);
      if (!tg) return;
      const s = await tg.open();
      try {
        await fn(s, tg);
      } finally {
        await s.close();
      }
    };

    test('check() passes on a working store', (t) => withStore(t, (s) => s.check()));

    test('generate makes a P-256 key (P-384 on request) whose signature on a CSR verifies', (t) =>
      withStore(t, async (s) => {
        for (const alg of ['P-256', 'P-384'] as const) {
          const k = await s.generate(alg);
          try {
            assert.equal(k.ref.keystore, kind);
            const info = describeSpki(k.spki);
            assert.equal(info.kind, 'ec');
            assert.equal((info as { curve: string }).curve, alg);
            const csr = readVerifiedCsr(await createCsr({ subject: [{ type: 'CN', value: 'conformance' }], signer: k.signer }));
            assert.deepEqual(csr.spki, k.spki);
          } finally {
            await s.delete(k.ref);
          }
        }
      }));

    test('two keys are distinct; a key loads back (after reopening the store) and signs the same', (t) =>
      withStore(t, async (s, tg) => {
        const a = await s.generate();
        const b = await s.generate();
        try {
          assert.notEqual(a.ref.id, b.ref.id);
          assert.notDeepEqual(a.spki, b.spki);
          const s2 = await tg.open();
          try {
            const again = await s2.load(a.ref);
            assert.ok(again, 'the key is still there');
            assert.deepEqual(again.spki, a.spki);
            const csr = readVerifiedCsr(await createCsr({ subject: [{ type: 'CN', value: 'reloaded' }], signer: again.signer }));
            assert.deepEqual(csr.spki, a.spki);
          } finally {
            await s2.close();
          }
        } finally {
          await s.delete(a.ref);
          await s.delete(b.ref);
        }
      }));

    test('list names the keys; delete removes one, twice is fine; a deleted key does not load', (t) =>
      withStore(t, async (s) => {
        const a = await s.generate();
        const b = await s.generate();
        const ids = (await s.list()).map((r) => r.id);
        assert.ok(ids.includes(a.ref.id) && ids.includes(b.ref.id), `list() = ${ids.join(', ')}`);
        await s.delete(a.ref);
        await s.delete(a.ref);
        assert.equal(await s.load(a.ref), undefined);
        const after = (await s.list()).map((r) => r.id);
        assert.ok(!after.includes(a.ref.id) && after.includes(b.ref.id));
        await s.delete(b.ref);
      }));

    test('stores on different namespaces do not see each other\'s keys', (t) =>
      withStore(t, async (s, tg) => {
        const other = await tg.openOther();
        const k = await s.generate();
        try {
          assert.ok(!(await other.list()).some((r) => r.id === k.ref.id));
          assert.equal(await other.load(k.ref), undefined);
        } finally {
          await s.delete(k.ref);
          await other.close();
        }
      }));

    test(`the private key is ${kind === 'pkcs11' ? 'not ' : ''}extractable as declared`, (t) =>
      withStore(t, async (s, tg) => {
        const k = await s.generate();
        try {
          assert.equal(k.extractable, tg.extractable);
          const tk = await k.tlsKey();
          assert.equal(tk.kind, tg.extractable ? 'pem' : 'engine');
        } finally {
          await s.delete(k.ref);
        }
      }));

    test('RFC 8446 §4.4.2 / RFC 5246 §7.4.8: the key authenticates a TLS client (1.3 and 1.2)', runElsewhere.tls ? { skip: runElsewhere.tls } : {}, (t) =>
      withStore(t, async (s) => {
        const k = await s.generate();
        try {
          for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
            assert.equal(await tlsHandshake(k, version), 'conformance-device');
          }
        } finally {
          await s.delete(k.ref);
        }
      }));
  });
}

/** A throwaway CA, a certificate for the key, and a TLS server that requires it. Resolves with the CN the server saw. */
export async function tlsHandshake(k: DeviceKey, version: 'TLSv1.2' | 'TLSv1.3'): Promise<string> {
  const now = new Date();
  const ca = await createCaHierarchy({
    org: 'Conformance',
    now,
    rootKey: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuingKey: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    randomBytes: crypto.randomBytes,
  });
  const profile = createDeviceProfile({ issuer: ca.issuing, org: 'Conformance', trustDomain: 'conformance.test', crlUrls: ['http://x/crl'], ocspUrls: ['http://x/ocsp'], caIssuersUrls: ['http://x/ca'] });
  const certDer = await profile.issue({ spki: k.spki, deviceId: crypto.randomUUID(), deviceName: 'conformance-device', serial: randomSerial(crypto.randomBytes), now, lifetimeSeconds: 600 });
  const serverKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const serverSpki = crypto.createPublicKey(serverKey).export({ type: 'spki', format: 'der' });
  const serverDer = await issueServerCertificate({
    issuer: ca.issuing,
    org: 'Conformance',
    commonName: 'localhost',
    spki: serverSpki,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    serial: randomSerial(crypto.randomBytes),
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 3_600_000),
  });
  const chain = certificateToPem(ca.issuing.cert.der);
  const server = tls.createServer({
    key: serverKey.export({ type: 'pkcs8', format: 'pem' }),
    cert: certificateToPem(serverDer) + chain,
    ca: [certificateToPem(ca.root.der), chain],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: version,
    maxVersion: version,
  });
  const seen = new Promise<string>((resolve, reject) => {
    server.on('secureConnection', (sock) => {
      resolve(String(sock.getPeerCertificate().subject?.CN ?? ''));
      sock.end();
    });
    server.on('tlsClientError', reject);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  try {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: certificateToPem(ca.root.der),
      cert: certificateToPem(certDer) + chain,
      ...tlsClientKeyOptions(await k.tlsKey()),
      minVersion: version,
      maxVersion: version,
    });
    const [cn] = await Promise.all([seen, once(sock, 'secureConnect')]);
    sock.destroy();
    return cn;
  } finally {
    server.close();
  }
}
