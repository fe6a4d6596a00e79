/**
 * The CAs of a test server's data dir, used directly: for what a real server
 * cannot yet be made to issue or publish within a test (CRLs with thousands
 * of entries, a device certificate bound to a user before sign-in exists).
 * Signed with the data dir's own keys, so gateways configured from that data
 * dir accept them as the server's.
 */
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateToPem, createDeviceProfile, createIssuer, encodeName, nodeSigner, randomSerial, signCertificate, type Issuer, type NameAttribute } from '@latchkey/pki';
import { EST_PATHS, PATHS, TPM_ATTESTED_OU, TPM_ATTESTED_POLICY_OID, type CrlIssuer } from '@latchkey/protocol';

export function dataDirIssuer(dataDir: string, ca: CrlIssuer): Issuer {
  const passphrase = readFileSync(join(dataDir, 'ca-passphrase'), 'utf8').trim();
  const key = crypto.createPrivateKey({ key: readFileSync(join(dataDir, `${ca}.key.pem`)), format: 'pem', passphrase });
  return createIssuer(readFileSync(join(dataDir, `${ca}.crt.pem`), 'utf8'), nodeSigner(key));
}

export interface IssuedDevice {
  id: string;
  certPem: string;
  keyPem: string;
}

/**
 * A device certificate from the data dir's issuing CA through the server's own profile (its config's org,
 * trust domain and URL), optionally bound to a user, optionally marked TPM-attested (as the server marks
 * a device whose key a TPM attested). Not recorded in the server's database.
 */
export async function issueDevice(dataDir: string, o: { name: string; email?: string; attested?: boolean }): Promise<IssuedDevice> {
  const config = JSON.parse(readFileSync(join(dataDir, 'config.json'), 'utf8')) as { org: string; trustDomain: string; url: string };
  const profile = createDeviceProfile({
    issuer: dataDirIssuer(dataDir, 'issuing'),
    org: config.org,
    trustDomain: config.trustDomain,
    crlUrls: [config.url + PATHS.crl],
    ocspUrls: [config.url + PATHS.ocsp],
    caIssuersUrls: [config.url + EST_PATHS.cacerts],
  });
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const id = crypto.randomUUID();
  const der = await profile.issue({
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    deviceId: id,
    deviceName: o.name,
    ...(o.email !== undefined ? { email: o.email } : {}),
    ...(o.attested ? { attested: { ou: TPM_ATTESTED_OU, policyOid: TPM_ATTESTED_POLICY_OID } } : {}),
    serial: randomSerial(crypto.randomBytes),
    now: new Date(),
    lifetimeSeconds: 3600,
  });
  return { id, certPem: certificateToPem(der), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/**
 * A certificate from the data dir's issuing CA with exactly this subject (forward order: O first) and no
 * extensions: what the server never issues, to show a gateway check holds against the CA's own mistakes.
 */
export async function issueRawSubject(dataDir: string, subject: (id: string) => NameAttribute[]): Promise<IssuedDevice> {
  const issuer = dataDirIssuer(dataDir, 'issuing');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const id = crypto.randomUUID();
  const now = new Date();
  const der = await signCertificate(
    { serial: randomSerial(crypto.randomBytes), issuerDer: issuer.cert.subjectDer, subjectDer: encodeName(subject(id)), spki: publicKey.export({ type: 'spki', format: 'der' }), notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 3_600_000), extensions: [] },
    issuer.signer,
  );
  return { id, certPem: certificateToPem(der), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
