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

export function revocationRoutes(deps: { db: Db; ca: CaContext; crl: CrlService; clock: () => Date; metrics: Metrics; bodyLimit: number }) {
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
      const now = deps.clock();
      const body = await deps.ca.ocsp.respond({
        request,
        now,
        nextUpdate: new Date(now.getTime() + OCSP_VALIDITY_SECONDS * 1000),
        lookup: async (serial): Promise<CertStatus> => {
          const row = await certificatesRepo(deps.db.kysely).findBySerial(serial);
          if (!row) return { status: 'unknown' };
          if (row.revoked_at) {
            const reason = row.revocation_reason && isCrlReason(row.revocation_reason) ? (row.revocation_reason as CrlReason) : undefined;
            return { status: 'revoked', revokedAt: new Date(row.revoked_at), ...(reason ? { reason } : {}) };
          }
          return { status: 'good' };
        },
      });
      deps.metrics.inc('latchkey_ocsp_responses_total', { status: request.requests.some((r) => deps.ca.ocsp.matches(r)) ? 'successful' : 'unauthorized' });
      return reply.header('cache-control', `max-age=${OCSP_VALIDITY_SECONDS / 5}, public, no-transform, must-revalidate`).send(body);
    };
    app.post(PATHS.ocsp, async (req, reply) => {
      if (!Buffer.isBuffer(req.body)) throw new LatchkeyError('UNSUPPORTED_MEDIA_TYPE', `POST /ocsp takes ${MEDIA_TYPES.ocspRequest}`);
      return answer(reply, () => req.body as Buffer);
    });
    app.get(`${PATHS.ocsp}/*`, async (req, reply) => answer(reply, () => parseOcspGetPath((req.params as { '*': string })['*'])));
  };
}
