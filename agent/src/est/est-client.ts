/**
 * EST client (RFC 7030) over node:https: cacerts with root pinning,
 * simpleenroll with a bearer token (202 + Retry-After while approval is
 * pending), simplereenroll authenticated by the device certificate. Errors
 * are sorted for the renew loop: unreachable / 5xx / 429 are transient,
 * DEVICE_REVOKED, CERT_EXPIRED_PAST_GRACE and CERT_SUPERSEDED (a later
 * certificate of this device renewed: this identity was copied, or it lost a
 * renewal and stayed away past the overlap) mean "enroll again".
 */
import { request } from 'node:https';
import type { OutgoingHttpHeaders } from 'node:http';
import { type Certificate, certificateToPem, decodeCertsOnly, fingerprintSha256, isIssuedBy, parseCertificate } from '@latchkey/pki';
import type { AttestChallenge, AttestEnrollChallengeRequest, AttestRenewChallengeRequest, ErrorCode } from '@latchkey/protocol';
import { ATTEST_PATHS, CONTENT_TRANSFER_ENCODING, EST_PATHS, MEDIA_TYPES, RETRY_AFTER_HEADER } from '@latchkey/protocol/wire';
import { AgentError } from '../errors.js';
import { type TlsKey } from '../keystore/keystore.js';
import { deviceTlsOptions } from '../keystore/tls-key.js';

export interface TlsTrust {
  /** PEM roots to trust; undefined = the system's trust store; 'none' = unauthenticated bootstrap (cacerts with a pin only). */
  ca: string | undefined | 'none';
}

export interface ClientIdentity {
  certPem: string;
  chainPem: string;
  key: TlsKey;
}

export interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const MAX_RESPONSE = 1024 * 1024;
/** Error codes (packages/protocol errors.ts) after which only a new enrollment helps. */
const REENROLL_CODES: ReadonlySet<string> = new Set<ErrorCode>(['DEVICE_REVOKED', 'CERT_EXPIRED_PAST_GRACE', 'CLIENT_CERT_UNKNOWN', 'CERT_SUPERSEDED']);

export function normalizeFingerprint(s: string): string {
  const hex = s.replace(/^sha256:/i, '').replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new AgentError('USAGE', `--ca-fingerprint "${s}" is not a SHA-256 fingerprint (64 hex digits, colons optional)`);
  return hex;
}

/** One HTTPS request to the Latchkey server, trusting `trust.ca`; failures sorted into CA_UNTRUSTED / SERVER_UNREACHABLE. */
export function httpsCall(server: string, trust: TlsTrust, o: { method: 'GET' | 'POST'; path: string; body?: string; headers?: OutgoingHttpHeaders; client?: ClientIdentity; timeoutMs?: number }): Promise<HttpsResponse> {
  const url = new URL(o.path, server);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: o.method,
        agent: false,
        timeout: o.timeoutMs ?? 30_000,
        headers: { ...o.headers },
        ...(trust.ca === 'none' ? { rejectUnauthorized: false } : trust.ca ? { ca: trust.ca } : {}),
        minVersion: 'TLSv1.2',
        ...(o.client ? deviceTlsOptions(o.client, o.client.key) : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > MAX_RESPONSE) {
            req.destroy(new AgentError('SERVER_ERROR', `the server's response is over ${MAX_RESPONSE} bytes`));
            return;
          }
          chunks.push(d);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof AgentError) return reject(e);
      const code = e.code ?? '';
      if (/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS_CERT_ALTNAME/.test(code)) {
        reject(new AgentError('CA_UNTRUSTED', `the server ${url.origin} presented a certificate that is not trusted (${code}); enroll with --ca-fingerprint <root SHA-256 printed by \`latchkey-server init\`>`, {}, { cause: e }));
      } else {
        reject(new AgentError('SERVER_UNREACHABLE', `cannot reach ${url.origin}: ${code || e.message}`, {}, { cause: e }));
      }
    });
    req.end(o.body);
  });
}

/** The server's `{ error: { code, message } }`, or the start of a body that is not one. */
export function errorBodyOf(r: HttpsResponse): { code: string; message: string } {
  try {
    const j = JSON.parse(r.body.toString('utf8')) as { error?: { code?: string; message?: string } };
    return { code: String(j.error?.code ?? ''), message: String(j.error?.message ?? '').slice(0, 500) };
  } catch {
    return { code: '', message: r.body.toString('utf8').slice(0, 200).replace(/\s+/g, ' ') };
  }
}

function serverError(r: HttpsResponse, what: string): AgentError {
  const { code, message } = errorBodyOf(r);
  const retryAfter = Number(r.headers[RETRY_AFTER_HEADER]);
  const details = { status: r.status, serverCode: code, ...(Number.isFinite(retryAfter) ? { retryAfterSeconds: retryAfter } : {}) };
  const text = `${what}: the server answered ${r.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`;
  if (REENROLL_CODES.has(code)) return new AgentError('REENROLL_REQUIRED', text, details);
  if (r.status >= 500 || r.status === 429 || r.status === 408) return new AgentError('SERVER_ERROR', text, details);
  return new AgentError('SERVER_REFUSED', text, details);
}

function readCertsOnly(r: HttpsResponse, what: string): Certificate[] {
  try {
    return decodeCertsOnly(r.body.toString('ascii')).map((d) => parseCertificate(d));
  } catch (e) {
    throw new AgentError('SERVER_ERROR', `${what}: the server's answer is not a PKCS#7 certs-only: ${(e as Error).message}`, {}, { cause: e });
  }
}

const selfSigned = (c: Certificate): boolean => c.issuerDer.equals(c.subjectDer) && isIssuedBy(c, c);

export interface CaCerts {
  root: Certificate;
  /** Issuing CA(s) below the root, leaf-most first. */
  chain: Certificate[];
  rootPem: string;
  chainPem: string;
  fingerprint: string;
}

/**
 * RFC 7030 §4.1: the CA certificates. With a pinned fingerprint the first
 * fetch is unauthenticated and its answer is accepted only if its root has
 * that fingerprint; the TLS connection is then checked against that root.
 * Without one, the server must be trusted by the system's store.
 */
export async function fetchCaCerts(server: string, pin: string | undefined): Promise<CaCerts> {
  const what = 'fetching the CA certificates';
  const first = await httpsCall(server, { ca: pin ? 'none' : undefined }, { method: 'GET', path: EST_PATHS.cacerts });
  if (first.status !== 200) throw serverError(first, what);
  const certs = readCertsOnly(first, what);
  const roots = certs.filter(selfSigned);
  if (roots.length !== 1) throw new AgentError('SERVER_ERROR', `${what}: expected exactly one root (self-signed) certificate, got ${roots.length}`);
  const root = roots[0]!;
  const fingerprint = fingerprintSha256(root.der);
  if (pin && fingerprint !== pin) {
    throw new AgentError(
      'CA_MISMATCH',
      `REFUSING TO ENROLL: the server's root CA has SHA-256 fingerprint ${fingerprint}, but ${pin} was expected. This is not the server you meant, or someone is in between. Check the fingerprint \`latchkey-server init\` printed.`,
    );
  }
  const rootPem = certificateToPem(root.der);
  // The chain, ordered from the root down.
  const chain: Certificate[] = [];
  let top = root;
  const rest = certs.filter((c) => c !== root);
  for (;;) {
    const next = rest.find((c) => !chain.includes(c) && isIssuedBy(c, top));
    if (!next) break;
    chain.unshift(next);
    top = next;
  }
  if (pin) {
    // Now that the root is pinned, the TLS server must chain to it.
    const check = await httpsCall(server, { ca: rootPem }, { method: 'GET', path: EST_PATHS.cacerts });
    if (check.status !== 200) throw serverError(check, what);
  }
  return { root, chain, rootPem, chainPem: chain.map((c) => certificateToPem(c.der)).join(''), fingerprint };
}

export type EnrollOutcome = { status: 'issued'; cert: Certificate; certPem: string } | { status: 'pending'; retryAfterSeconds: number };

function issued(r: HttpsResponse, what: string): EnrollOutcome {
  const certs = readCertsOnly(r, what);
  const leaf = certs.find((c) => !selfSigned(c) && !certs.some((o) => o !== c && isIssuedBy(o, c)));
  if (!leaf) throw new AgentError('SERVER_ERROR', `${what}: the answer holds no end-entity certificate`);
  return { status: 'issued', cert: leaf, certPem: certificateToPem(leaf.der) };
}

/** RFC 7030 §4.2.1 simpleenroll with `Authorization: Bearer <token>`. */
export async function simpleEnroll(server: string, rootPem: string, token: string, csrDer: Buffer): Promise<EnrollOutcome> {
  const what = 'enrolling';
  const r = await httpsCall(server, { ca: rootPem }, {
    method: 'POST',
    path: EST_PATHS.simpleenroll,
    body: csrDer.toString('base64'),
    headers: { 'content-type': MEDIA_TYPES.pkcs10, [CONTENT_TRANSFER_ENCODING.header]: CONTENT_TRANSFER_ENCODING.base64, authorization: `Bearer ${token}` },
  });
  if (r.status === 202) {
    const ra = Number(r.headers[RETRY_AFTER_HEADER]);
    return { status: 'pending', retryAfterSeconds: Number.isFinite(ra) && ra > 0 ? Math.min(ra, 3600) : 30 };
  }
  if (r.status !== 200) throw serverError(r, what);
  return issued(r, what);
}

/** RFC 7030 §4.2.2 simplereenroll: authenticated by the current (or recently expired) device certificate. */
export async function simpleReenroll(server: string, rootPem: string, client: ClientIdentity, csrDer: Buffer): Promise<Certificate & { pem: string }> {
  const what = 'renewing';
  const r = await httpsCall(server, { ca: rootPem }, {
    method: 'POST',
    path: EST_PATHS.simplereenroll,
    body: csrDer.toString('base64'),
    headers: { 'content-type': MEDIA_TYPES.pkcs10, [CONTENT_TRANSFER_ENCODING.header]: CONTENT_TRANSFER_ENCODING.base64 },
    client,
  });
  if (r.status !== 200) throw serverError(r, what);
  const o = issued(r, what) as { cert: Certificate; certPem: string };
  return Object.assign(o.cert, { pem: o.certPem });
}

/**
 * TPM attestation (issue 14): the server's challenge for an attested
 * enrollment (with the enrollment token) or renewal (over mTLS with the
 * current certificate). Checked for shape; its bytes are checked by the TPM.
 */
export async function requestAttestChallenge(
  server: string,
  rootPem: string,
  auth: { token: string } | { client: ClientIdentity },
  body: AttestEnrollChallengeRequest | AttestRenewChallengeRequest,
): Promise<AttestChallenge> {
  const what = 'asking the server for a TPM attestation challenge';
  const r = await httpsCall(server, { ca: rootPem }, {
    method: 'POST',
    path: 'token' in auth ? ATTEST_PATHS.enrollChallenge : ATTEST_PATHS.renewChallenge,
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...('token' in auth ? { authorization: `Bearer ${auth.token}` } : {}) },
    ...('client' in auth ? { client: auth.client } : {}),
  });
  if (r.status !== 200 && r.status !== 201) throw serverError(r, what);
  try {
    const c = JSON.parse(r.body.toString('utf8')) as AttestChallenge;
    if (typeof c !== 'object' || c === null || typeof c.challengeId !== 'string' || typeof c.credentialBlob !== 'string' || typeof c.encryptedSecret !== 'string') throw new Error('fields missing');
    return c;
  } catch (e) {
    throw new AgentError('SERVER_ERROR', `${what}: the answer is not a challenge (${(e as Error).message})`, {}, { cause: e });
  }
}
