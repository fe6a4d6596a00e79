/** CRLs (DER and PEM, issuing CA and root) and OCSP (RFC 6960, GET and POST). */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { type CertStatus, isCrlReason, ocspErrorResponse, parseOcspGetPath, parseOcspRequest, type CrlReason } from '@latchkey/pki';
import { MEDIA_TYPES, PATHS } from '@latchkey/protocol';
import type { CaContext } from '../ca/ca-context.js';
import { certificatesRepo } from '../devices/devices-repo.js';
import { LatchkeyError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Db } from '../storage/db.js';
import type { CaName, CrlService } from './crl-service.js';

/** How long an OCSP answer may be cached (also its nextUpdate). */
const OCSP_VALIDITY_SECONDS = 300;
/** How long this server reuses a signed answer to a nonce-less request. */
const OCSP_REUSE_MS = 60_000;
const OCSP_CACHE_MAX = 100_000;

/**
 * Signed answers to requests without a nonce (what gateways and browsers
 * send), reused for a minute as RFC 6960 §2.4 allows for pre-produced
 * responses. Only good/revoked answers are kept (an unknown serial may be
 * issued any moment), and any revocation event, from this replica or
 * another, drops the whole cache before the admin's call returns.
 */
export function createOcspCache(clock: () => Date) {
  const entries = new Map<string, { body: Buffer; until: number }>();
  return {
    get(key: string): Buffer | undefined {
      const e = entries.get(key);
      if (!e) return undefined;
      if (e.until <= clock().getTime()) {
        entries.delete(key);
        return undefined;
      }
      return e.body;
    },
    set(key: string, body: Buffer): void {
      if (entries.size >= OCSP_CACHE_MAX) entries.clear();
      entries.set(key, { body, until: clock().getTime() + OCSP_REUSE_MS });
    },
    clear(): void {
      entries.clear();
    },
  };
}
export type OcspCache = ReturnType<typeof createOcspCache>;

export function revocationRoutes(deps: { db: Db; ca: CaContext; crl: CrlService; clock: () => Date; metrics: Metrics; bodyLimit: number; ocspCache: OcspCache }) {
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
      const cacheKey = request.nonce ? undefined : request.requests.map((r) => r.der.toString('base64')).join(',');
      const cached = cacheKey ? deps.ocspCache.get(cacheKey) : undefined;
      if (cached) {
        deps.metrics.inc('latchkey_ocsp_responses_total', { status: 'cached' });
        return reply.header('cache-control', `max-age=${OCSP_VALIDITY_SECONDS / 5}, public, no-transform, must-revalidate`).send(cached);
      }
      const now = deps.clock();
      let cacheable = true;
      const body = await deps.ca.ocsp.respond({
        request,
        now,
        nextUpdate: new Date(now.getTime() + OCSP_VALIDITY_SECONDS * 1000),
        lookup: async (serial): Promise<CertStatus> => {
          const row = await certificatesRepo(deps.db.kysely).findBySerial(serial);
          if (!row) {
            cacheable = false;
            return { status: 'unknown' };
          }
          if (row.revoked_at) {
            const reason = row.revocation_reason && isCrlReason(row.revocation_reason) ? (row.revocation_reason as CrlReason) : undefined;
            return { status: 'revoked', revokedAt: new Date(row.revoked_at), ...(reason ? { reason } : {}) };
          }
          return { status: 'good' };
        },
      });
      const matched = request.requests.some((r) => deps.ca.ocsp.matches(r));
      if (cacheKey && cacheable && matched) deps.ocspCache.set(cacheKey, body);
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
