/**
 * The gateway's own TLS certificate for `gateway config --out`: a fresh key
 * and a server-profile certificate (serverAuth; DNS and IP SANs for the
 * gateway's names) signed by the issuing CA. The enrollment server's key
 * never leaves its data dir: a gateway holding it could pose as the server.
 */
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type Certificate, certificateToPem, createIssuer, issueServerCertificate, nodeSigner, parseCertificate, randomSerial } from '@latchkey/pki';
import { UsageError } from '../admin-client.js';
import { loadCaKeys } from '../ca/ca-context.js';
import { FILES } from '../ca/ca-files.js';
import { caPassphrase, loadConfig } from '../config/config-load.js';

const DNS_NAME = /^(\*\.)?(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const MAX_NAMES = 32;
/** What browsers accept for a TLS server certificate. */
const LIFETIME_DAYS = 397;

/** Splits gateway names into DNS names and IP addresses; refuses anything else. */
export function gatewayNames(names: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  if (names.length === 0) throw new UsageError('the gateway certificate needs a name: give --name HOST (repeatable), --server-name HOST or --listen HOST:PORT');
  if (names.length > MAX_NAMES) throw new UsageError(`at most ${MAX_NAMES} --name`);
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const raw of names) {
    const n = raw.replace(/^\[|\]$/g, '');
    if (isIP(n)) ipAddresses.push(n);
    else if (DNS_NAME.test(n)) dnsNames.push(n.toLowerCase());
    else throw new UsageError(`--name "${raw}" is not a host name or an IP address`);
  }
  return { dnsNames: [...new Set(dnsNames)], ipAddresses: [...new Set(ipAddresses)] };
}

/** The names a gateway certificate is for when no --name is given: --server-name, else a specific --listen host. */
export function defaultGatewayNames(serverName: string | undefined, listenHost: string | undefined): string[] {
  if (serverName && serverName !== '_') return [serverName];
  const h = listenHost?.replace(/^\[|\]$/g, '');
  return h && h !== '0.0.0.0' && h !== '::' ? [h] : [];
}

export interface GatewayCertificate {
  /** The certificate and the issuing CA's, PEM. */
  chainPem: string;
  /** PKCS#8 PEM, unencrypted (nginx and HAProxy read it at start). */
  keyPem: string;
  leaf: Certificate;
}

/** Issues the gateway's certificate with the data dir's issuing CA (its passphrase: LATCHKEY_CA_PASSPHRASE or the file in config). */
export async function issueGatewayCertificate(o: { dataDir: string; names: readonly string[]; now: Date; env: NodeJS.ProcessEnv }): Promise<GatewayCertificate> {
  const { dnsNames, ipAddresses } = gatewayNames(o.names);
  const config = loadConfig(o.dataDir, o.env);
  const keys = loadCaKeys(o.dataDir, caPassphrase(o.dataDir, config, o.env));
  const issuingPem = readFileSync(join(o.dataDir, FILES.issuingCert), 'utf8');
  const issuer = createIssuer(issuingPem, nodeSigner(keys.issuing));
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const der = await issueServerCertificate({
    issuer,
    spki: crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }),
    org: config.org,
    commonName: (dnsNames[0] ?? ipAddresses[0]!).slice(0, 64),
    dnsNames,
    ipAddresses,
    serial: randomSerial(crypto.randomBytes),
    notBefore: new Date(o.now.getTime() - 5 * 60_000),
    notAfter: new Date(Math.min(issuer.cert.notAfter.getTime(), o.now.getTime() + LIFETIME_DAYS * 86_400_000)),
  });
  return {
    chainPem: certificateToPem(der) + certificateToPem(issuer.cert.der),
    keyPem: key.export({ format: 'pem', type: 'pkcs8' }) as string,
    leaf: parseCertificate(der),
  };
}
