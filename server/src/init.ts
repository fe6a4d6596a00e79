/**
 * `latchkey-server init`: a new data dir with the CA (created or imported),
 * the server's TLS certificate, the OCSP signer, config.json, the database
 * with its default group, and a first admin token.
 */
import * as crypto from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import {
  type Certificate,
  type Issuer,
  certificateToPem,
  createCaHierarchy,
  fingerprintSha256,
  importIssuingCa,
  issueOcspResponderCertificate,
  issueServerCertificate,
  parseCertificate,
  pemDecodeAll,
  randomSerial,
} from '@latchkey/pki';
import { PATHS } from '@latchkey/protocol';
import { adminTokensRepo } from './admin/admin-tokens-repo.js';
import { FILES, encryptKey, writeFileAtomic } from './ca/ca-files.js';
import { CONFIG_DEFAULTS, type ServerConfig } from './config/config-schema.js';
import { CONFIG_FILE, validateConfig } from './config/config-load.js';
import { hashSecret } from './auth/secret-hash.js';
import { checkPostgres } from './storage/database-check.js';
import { openDb } from './storage/db.js';
import { DEFAULT_GROUP } from './tokens/tokens-service.js';
import { groupsRepo } from './groups/groups-repo.js';

const DAY = 86_400_000;

export interface InitOptions {
  dataDir: string;
  org: string;
  url: string;
  listen?: string;
  trustDomain?: string;
  databaseUrl?: string;
  keyType?: 'P-256' | 'P-384';
  importCa?: { cert: string; key: string; root: string; keyPassphrase?: string };
  /** From LATCHKEY_CA_PASSPHRASE; when absent one is generated into the data dir. */
  passphrase?: string;
  now?: Date;
}

export interface InitResult {
  dataDir: string;
  config: ServerConfig;
  rootFingerprint: string;
  adminToken: string;
  passphraseFile: string | undefined;
  rootKeyHeld: boolean;
}

const genKey = (curve: 'P-256' | 'P-384'): crypto.KeyObject => crypto.generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
const spkiOf = (k: crypto.KeyObject): Buffer => crypto.createPublicKey(k).export({ format: 'der', type: 'spki' });

/** Issues (or re-issues) the TLS and OCSP certificates; used by init and when they near expiry. */
export async function issueServiceCertificates(o: { dataDir: string; config: Pick<ServerConfig, 'org' | 'url'>; issuing: Issuer; passphrase: string; now: Date }): Promise<void> {
  const host = new URL(o.config.url).hostname.replace(/^\[|\]$/g, '');
  const dns = new Set(['localhost']);
  const ips = new Set(['127.0.0.1', '::1']);
  if (isIP(host)) ips.add(host);
  else dns.add(host.toLowerCase());
  const notBefore = new Date(o.now.getTime() - 5 * 60_000);
  const cap = (days: number): Date => new Date(Math.min(o.issuing.cert.notAfter.getTime(), o.now.getTime() + days * DAY));
  const tlsKey = genKey('P-256');
  const tls = await issueServerCertificate({
    issuer: o.issuing,
    spki: spkiOf(tlsKey),
    org: o.config.org,
    commonName: host.slice(0, 64),
    dnsNames: [...dns],
    ipAddresses: [...ips],
    serial: randomSerial(crypto.randomBytes),
    notBefore,
    notAfter: cap(397),
  });
  const ocspKey = genKey('P-256');
  const ocsp = await issueOcspResponderCertificate({ issuer: o.issuing, spki: spkiOf(ocspKey), org: o.config.org, serial: randomSerial(crypto.randomBytes), notBefore, notAfter: cap(365) });
  writeFileAtomic(join(o.dataDir, FILES.tlsKey), tlsKey.export({ format: 'pem', type: 'pkcs8' }) as string);
  writeFileAtomic(join(o.dataDir, FILES.tlsCert), certificateToPem(tls) + certificateToPem(o.issuing.cert.der), 0o644);
  writeFileAtomic(join(o.dataDir, FILES.ocspKey), encryptKey(ocspKey, o.passphrase));
  writeFileAtomic(join(o.dataDir, FILES.ocspCert), certificateToPem(ocsp), 0o644);
}

export async function initDataDir(o: InitOptions): Promise<InitResult> {
  const dataDir = resolve(o.dataDir);
  if (existsSync(join(dataDir, CONFIG_FILE))) {
    throw new Error(`${dataDir} is already initialized (it has ${CONFIG_FILE}); use another --data-dir`);
  }
  const now = o.now ?? new Date();
  const url = o.url.replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--url "${o.url}" is not a URL; give the address devices use, e.g. https://latchkey.example.com:8443`);
  }
  if (parsed.protocol !== 'https:' || parsed.pathname !== '/') throw new Error(`--url must be https://HOST[:PORT] with no path, got "${o.url}"`);
  const port = parsed.port || '443';
  const host = parsed.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const config = validateConfig(
    {
      ...CONFIG_DEFAULTS,
      org: o.org,
      url,
      listen: o.listen ?? `0.0.0.0:${port}`,
      trustDomain: o.trustDomain ?? (isIP(host) ? 'latchkey.internal' : host),
      ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}),
      ...(o.passphrase ? {} : { caPassphraseFile: FILES.passphrase }),
    },
    'init options',
  );

  // Before anything is written: a database that is not there would leave a half-made data dir.
  if (config.databaseUrl) {
    const problem = await checkPostgres(config.databaseUrl);
    if (problem) throw new Error(`${problem}; nothing was written to ${dataDir}`);
  }

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Also when it existed (made by the operator with the usual 0755): only the server's user may enter.
  chmodSync(dataDir, 0o700);
  const passphrase = o.passphrase ?? crypto.randomBytes(32).toString('base64url');
  if (!o.passphrase) writeFileAtomic(join(dataDir, FILES.passphrase), passphrase + '\n');

  let root: Certificate;
  let issuing: Issuer;
  let rootKeyHeld = false;
  if (o.importCa) {
    const key = crypto.createPrivateKey({ key: readFileSync(o.importCa.key), ...(o.importCa.keyPassphrase ? { passphrase: o.importCa.keyPassphrase } : {}) });
    const imported = importIssuingCa({ cert: readFileSync(o.importCa.cert), key, root: readFileSync(o.importCa.root), now });
    root = imported.root;
    issuing = imported.issuing;
    writeFileAtomic(join(dataDir, FILES.issuingKey), encryptKey(key, passphrase));
  } else {
    const curve = o.keyType ?? 'P-256';
    const rootKey = genKey(curve);
    const issuingKey = genKey(curve);
    const h = await createCaHierarchy({ org: o.org, now, rootKey, issuingKey, randomBytes: crypto.randomBytes, rootCrlUrl: url + PATHS.rootCrl });
    root = h.root;
    issuing = h.issuing;
    rootKeyHeld = true;
    writeFileAtomic(join(dataDir, FILES.rootKey), encryptKey(rootKey, passphrase));
    writeFileAtomic(join(dataDir, FILES.issuingKey), encryptKey(issuingKey, passphrase));
  }
  writeFileAtomic(join(dataDir, FILES.rootCert), certificateToPem(root.der), 0o644);
  writeFileAtomic(join(dataDir, FILES.issuingCert), certificateToPem(issuing.cert.der), 0o644);
  await issueServiceCertificates({ dataDir, config, issuing, passphrase, now });

  const db = await openDb({ dataDir, ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}) });
  const adminToken = `lk_adm_${crypto.randomBytes(32).toString('base64url')}`;
  try {
    await groupsRepo(db.kysely).ensure({ name: DEFAULT_GROUP, cert_lifetime_seconds: config.certLifetimeSeconds, require_approval: 0, created_at: now.toISOString() });
    await adminTokensRepo(db.kysely).insert({ id: crypto.randomUUID(), secret_hash: hashSecret(adminToken), name: 'initial-admin', role: 'admin', kind: 'bootstrap', created_by: 'init', created_at: now.toISOString(), revoked_at: null });
  } finally {
    await db.close();
  }
  writeFileAtomic(join(dataDir, FILES.adminToken), adminToken + '\n');
  writeFileAtomic(join(dataDir, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
  return {
    dataDir,
    config,
    rootFingerprint: fingerprintSha256(root.der),
    adminToken,
    passphraseFile: o.passphrase ? undefined : join(dataDir, FILES.passphrase),
    rootKeyHeld,
  };
}

/** Re-issues TLS/OCSP certificates that expire within 30 days (we hold the issuing key). */
export async function renewServiceCertificatesIfNeeded(o: { dataDir: string; config: ServerConfig; issuing: Issuer; passphrase: string; now: Date }): Promise<boolean> {
  const certs = [FILES.tlsCert, FILES.ocspCert].map((f) => parseCertificate(pemDecodeAll(readFileSync(join(o.dataDir, f), 'utf8'))[0]!.der));
  if (certs.every((c) => c.notAfter.getTime() - o.now.getTime() > 30 * DAY)) return false;
  await issueServiceCertificates(o);
  return true;
}

export const rootFingerprintOf = (pem: string): string => fingerprintSha256(parseCertificate(pem).der);
