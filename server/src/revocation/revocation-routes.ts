/** CRLs (DER and PEM, issuing CA and root) and OCSP (RFC 6960, GET and POST). */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { type CertStatus, isCrlReason, ocspErrorResponse, parseOcspGetPath, parseOcspRequest, type CrlReason } from '@latchkey/pki';
import { MEDIA_TYPES, PATHS } from '@latchkey/protocol';
import type { CaContext } from '../ca/ca-context.js';
import type { CertificatesRepo } from '../certificates/certificates-repo.js';
import { LatchkeyError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { CaName, CrlService } from './crl-service.js';

/** How long an OCSP answer may be cached (also its nextUpdate). */
const OCSP_VALIDITY_SECONDS = 300;
/** How long this server reuses a signed answer to a nonce-less request. */
const OCSP_REUSE_MS = 60_000;

/**
 * Signed answers to single-certificate requests without a nonce (what
 * gateways and browsers send), reused for up to a minute as RFC 6960 §2.4
 * allows for pre-produced responses. Keyed by the CertID, so there is at
 * most one entry per certificate and hash algorithm however the requests
 * vary; only certificates in our records are kept (an unknown serial may be
 * issued any moment). Bounded in entries and bytes: expired entries go
 * first, then the least recently used. Any revocation event, from this
 * replica or another, drops the whole cache before the admin's call returns;
 * an answer for a certificate whose superseded overlap ends sooner is kept
 * only until then.
 */
export function createOcspCache(clock: () => Date, limits: { maxEntries: number; maxBytes: number } = { maxEntries: 50_000, maxBytes: 32 * 1024 * 1024 }) {
  const entries = new Map<string, { body: Buffer; until: number }>();
  let bytes = 0;
  const drop = (key: string, e: { body: Buffer }): void => {
    entries.delete(key);
    bytes -= e.body.length + key.length;
  };
  return {
    get(key: string): Buffer | undefined {
      const e = entries.get(key);
      if (!e) return undefined;
      drop(key, e);
      if (e.until <= clock().getTime()) return undefined;
      // Most recently used last.
      entries.set(key, e);
      bytes += e.body.length + key.length;
      return e.body;
    },
    set(key: string, body: Buffer, until: number): void {
      const now = clock().getTime();
      if (until <= now) return;
      const old = entries.get(key);
      if (old) drop(key, old);
      const size = body.length + key.length;
      if (size > limits.maxBytes) return;
      if (entries.size >= limits.maxEntries || bytes + size > limits.maxBytes) {
        for (const [k, e] of entries) if (e.until <= now) drop(k, e);
        for (const [k, e] of entries) {
          if (entries.size < limits.maxEntries && bytes + size <= limits.maxBytes) break;
          drop(k, e);
        }
      }
      entries.set(key, { body, until: Math.min(until, now + OCSP_REUSE_MS) });
      bytes += size;
    },
    clear(): void {
      entries.clear();
      bytes = 0;
    },
    get size() {
      return { entries: entries.size, bytes };
    },
  };
}
export type OcspCache = ReturnType<typeof createOcspCache>;

export function revocationRoutes(deps: { certificates: Pick<CertificatesRepo, 'findBySerial'>; ca: Pick<CaContext, 'ocsp'>; crl: Pick<CrlService, 'get'>; clock: () => Date; metrics: Metrics; bodyLimit: number; ocspCache: OcspCache }) {
  return async (app: FastifyInstance): Promise<void> => {
    const serveCrl = (ca: CaName, pem: boolean) => async (_req: unknown, reply: FastifyReply) => {
      const c = await deps.crl.get(ca);
      if (!c) throw new LatchkeyError('NOT_FOUND', `no CRL for the ${ca} CA is published here (its key is not held by this server)`);
      const maxAge = Math.max(0, Math.floor((c.nextUpdate.getTime() - deps.clock().getTime()) / 2000));
      return reply
        .header('content-type', pem ? MEDIA_TYPES.pemFile : MEDIA_TYPES.pkixCrl)
        .header('cache-control', `public, max-age=${Math.min(maxAge, 60)}`)
        .header('last-modified', c.thisUpdate.toUTCString())
        .header('expires', c.nextUpdate.toUTCString())
        .header('etag', `"crl-${ca}-${c.crlNumber}"`)
        .send(pem ? c.pem : c.der);
    };
    app.get(PATHS.crl, serveCrl('issuing', false));
    app.get(PATHS.crlPem, serveCrl('issuing', true));
    app.get(PATHS.rootCrl, serveCrl('root', false));
    app.get(PATHS.rootCrlPem, serveCrl('root', true));

    app.addContentTypeParser(MEDIA_TYPES.ocspRequest, { parseAs: 'buffer', bodyLimit: Math.min(deps.bodyLimit, 64 * 1024) }, (_r, body, done) => done(null, body));

    const answer = async (reply: FastifyReply, der: () => Buffer): Promise<FastifyReply> => {
      reply.header('content-type', MEDIA_TYPES.ocspResponse);
      let request;
      try {
        request = parseOcspRequest(der());
      } catch {
        deps.metrics.inc('latchkey_ocsp_responses_total', { status: 'malformedRequest' });
        // RFC 6960 §2.3: errors are OCSP responses, not HTTP errors.
        return reply.send(ocspErrorResponse('malformedRequest'));
      }
      // One entry per certificate: only single-certificate requests are cached, keyed by their CertID.
      const cacheKey = !request.nonce && request.requests.length === 1 ? request.requests[0]!.der.toString('base64') : undefined;
      const cached = cacheKey ? deps.ocspCache.get(cacheKey) : undefined;
      if (cached) {
        deps.metrics.inc('latchkey_ocsp_responses_total', { status: 'cached' });
        return reply.header('cache-control', `max-age=${OCSP_VALIDITY_SECONDS / 5}, public, no-transform, must-revalidate`).send(cached);
      }
      const now = deps.clock();
      let nextUpdate = now.getTime() + OCSP_VALIDITY_SECONDS * 1000;
      let cacheable = true;
      const statuses = new Map<string, CertStatus>();
      for (const r of request.requests) {
        if (statuses.has(r.serialHex) || !deps.ca.ocsp.matches(r)) continue;
        const row = await deps.certificates.findBySerial(r.serialHex);
        let st: CertStatus;
        if (!row) {
          cacheable = false;
          st = { status: 'unknown' };
        } else if (row.revoked_at && new Date(row.revoked_at) <= now) {
          const reason = row.revocation_reason && isCrlReason(row.revocation_reason) ? (row.revocation_reason as CrlReason) : undefined;
          st = { status: 'revoked', revokedAt: new Date(row.revoked_at), ...(reason ? { reason } : {}) };
        } else {
          // Superseded by a renewal, revoked once the overlap ends: good until then, and no one may rely on it longer.
          if (row.revoked_at) nextUpdate = Math.min(nextUpdate, new Date(row.revoked_at).getTime());
          st = { status: 'good' };
        }
        statuses.set(r.serialHex, st);
      }
      const body = await deps.ca.ocsp.respond({
        request,
        now,
        nextUpdate: new Date(Math.max(nextUpdate, now.getTime() + 1000)),
        lookup: (serial): CertStatus => statuses.get(serial) ?? { status: 'unknown' },
      });
      const matched = statuses.size > 0;
      if (cacheKey && cacheable && matched) deps.ocspCache.set(cacheKey, body, nextUpdate);
      deps.metrics.inc('latchkey_ocsp_responses_total', { status: matched ? 'successful' : 'unauthorized' });
      return reply.header('cache-control', `max-age=${OCSP_VALIDITY_SECONDS / 5}, public, no-transform, must-revalidate`).send(body);
    };
    app.post(PATHS.ocsp, async (req, reply) => {
      if (!Buffer.isBuffer(req.body)) throw new LatchkeyError('UNSUPPORTED_MEDIA_TYPE', `POST /ocsp takes ${MEDIA_TYPES.ocspRequest}`);
      return answer(reply, () => req.body as Buffer);
    });
    app.get(`${PATHS.ocsp}/*`, async (req, reply) => answer(reply, () => parseOcspGetPath((req.params as { '*': string })['*'])));
  };
}
