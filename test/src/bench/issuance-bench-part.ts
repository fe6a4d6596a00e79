/**
 * Issuance throughput: CSR parse + proof-of-possession verify + policy +
 * device profile + sign, on one core (this process), as the server's
 * issuing pipeline does it. Also the stock @peculiar/x509 generator path for
 * comparison.
 */
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  checkCsrPolicy,
  createCaHierarchy,
  createCsr,
  createDeviceProfile,
  nodeSigner,
  randomSerial,
  readVerifiedCsr,
} from '@latchkey/pki';

export interface Rate {
  ops: number;
  seconds: number;
  perSecond: number;
}

async function timeLoop(seconds: number, fn: (i: number) => Promise<unknown>): Promise<Rate> {
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let i = 0;
  while (performance.now() < end) {
    // batches of 50 keep the clock reads out of the measurement
    for (let j = 0; j < 50; j++) await fn(i++);
  }
  const s = (performance.now() - start) / 1000;
  return { ops: i, seconds: s, perSecond: i / s };
}

export async function benchIssuance(seconds: number): Promise<{ latchkey: Rate; peculiar: Rate }> {
  const now = new Date();
  const gen = (): crypto.KeyObject => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ca = await createCaHierarchy({ org: 'Bench Corp', now, rootKey: gen(), issuingKey: gen(), randomBytes: crypto.randomBytes });
  const profile = createDeviceProfile({
    issuer: ca.issuing,
    org: 'Bench Corp',
    trustDomain: 'bench.example',
    crlUrls: ['https://ca.bench.example/crl'],
    ocspUrls: ['https://ca.bench.example/ocsp'],
    caIssuersUrls: ['https://ca.bench.example/.well-known/est/cacerts'],
  });
  // 256 distinct device CSRs, as different laptops would send.
  const csrs: Buffer[] = [];
  for (let i = 0; i < 256; i++) {
    csrs.push(await createCsr({ subject: [{ type: 'CN', value: `laptop-${i}` }], signer: nodeSigner(gen()) }));
  }
  const deviceId = crypto.randomUUID();
  const latchkey = await timeLoop(seconds, async (i) => {
    const csr = readVerifiedCsr(csrs[i & 255]!);
    checkCsrPolicy(csr);
    return profile.issue({ spki: csr.spki, deviceId, deviceName: `laptop-${i & 255}`, serial: randomSerial(crypto.randomBytes), now, lifetimeSeconds: 86_400 });
  });

  // The stock path: @peculiar/x509 parse/verify and X509CertificateGenerator with WebCrypto.
  x509.cryptoProvider.set(crypto.webcrypto as never);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = (await crypto.webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=Bench CA', keys: caKeys, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(true, 0, true)] });
  const peculiar = await timeLoop(Math.max(1, seconds / 2), async (i) => {
    const req = new x509.Pkcs10CertificateRequest(csrs[i & 255]!);
    if (!(await req.verify())) throw new Error('CSR did not verify');
    const key = await req.publicKey.export();
    return x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(crypto.randomBytes).toString('hex'),
      issuer: caCert.subject,
      subject: `O=Bench Corp, CN=laptop-${i & 255}`,
      notBefore: now,
      notAfter: new Date(now.getTime() + 86_400_000),
      signingAlgorithm: alg,
      publicKey: key,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.SubjectKeyIdentifierExtension.create(key),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://bench.example/device/${deviceId}` }]),
      ],
    });
  });
  return { latchkey, peculiar };
}
