/**
 * EST routes (RFC 7030 §4). Public zone: cacerts, csrattrs, simpleenroll.
 * Device zone: simplereenroll (TLS client certificate). Bodies are base64
 * DER (Content-Transfer-Encoding: base64); raw DER and PEM are accepted too,
 * so `curl --data-binary @req.der` works.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { base64Body, base64Lines, encodeCertsOnly, encodeCsrAttrs } from '@latchkey/pki';
import { CONTENT_TRANSFER_ENCODING, EST_PATHS, FACTS_ATTRIBUTE_OID, MEDIA_TYPES, RETRY_AFTER_HEADER } from '@latchkey/protocol';
import type { CaContext } from '../ca/ca-context.js';
import { LatchkeyError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { perAddress, registerRateLimit } from '../rate-limit.js';
import { bearer } from '../auth/bearer.js';
import type { CrashPoint } from '../util/crash-point.js';
import type { EstService } from './est-service.js';

/** The CSR as DER from an EST body: base64 (the standard), PEM, or raw DER. */
export function csrBodyToDer(body: unknown): Buffer {
  if (!Buffer.isBuffer(body) || body.length === 0) throw new LatchkeyError('CSR_MALFORMED', 'the request body is empty: send a PKCS#10 CSR');
  if (body[0] === 0x30) return body;
  const text = body.toString('latin1');
  if (text.includes('-----BEGIN')) return body;
  try {
    return base64Body(text);
  } catch {
    throw new LatchkeyError('CSR_MALFORMED', 'the body is neither base64 DER (RFC 7030 §4.2.1), PEM, nor DER');
  }
}

function sendCerts(reply: FastifyReply, certsOnly: Buffer): FastifyReply {
  return reply
    .header('content-type', MEDIA_TYPES.pkcs7CertsOnly)
    .header(CONTENT_TRANSFER_ENCODING.header, CONTENT_TRANSFER_ENCODING.base64)
    .send(base64Lines(certsOnly));
}

/** RFC 7030 §4.5.2: what we want in a CSR (P-256 key, SHA-256, and the device facts attribute). */
const CSR_ATTRS = encodeCsrAttrs([FACTS_ATTRIBUTE_OID]);

/** EST routes take only PKCS#10: every other media type is a 415, JSON included. */
function addPkcs10Parser(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser([MEDIA_TYPES.pkcs10, 'application/x-pem-file'], { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
}

/**
 * `crashPoint` (util/crash-point.ts, a test hook inert unless set):
 * `enroll-after-commit` kills the server after an enrollment committed, before
 * its answer is sent — the lost answer a retried enrollment must recover from.
 */
export function publicEstRoutes(deps: { est: EstService; ca: CaContext; enrollRateLimitPerMinute: number; metrics: Metrics; bodyLimit: number; crashPoint: CrashPoint }) {
  return async (app: FastifyInstance): Promise<void> => {
    addPkcs10Parser(app, deps.bodyLimit);
    await registerRateLimit(app);
    app.get(EST_PATHS.cacerts, async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return sendCerts(reply, deps.ca.cacertsP7);
    });
    app.get(EST_PATHS.csrattrs, async (_req, reply) =>
      reply.header('content-type', MEDIA_TYPES.csrattrs).header(CONTENT_TRANSFER_ENCODING.header, CONTENT_TRANSFER_ENCODING.base64).send(base64Lines(CSR_ATTRS)),
    );
    // Token guessing included: every request counts, whatever its answer.
    const rateLimit = perAddress(deps.enrollRateLimitPerMinute, 'too many enrollment requests from this address');
    app.post(EST_PATHS.simpleenroll, { config: { rateLimit } }, async (req: FastifyRequest, reply) => {
      try {
        const r = await deps.est.simpleEnroll({ body: csrBodyToDer(req.body), token: bearer(req), remote: req.ip });
        if (r.status === 'issued') deps.crashPoint('enroll-after-commit');
        if (r.status === 'pending') {
          return reply
            .code(202)
            .header(RETRY_AFTER_HEADER, String(r.retryAfterSeconds))
            .send({ status: 'pending', deviceId: r.deviceId, message: `waiting for an administrator to approve device ${r.deviceId} (latchkey-server devices approve ${r.deviceId}); retry in ${r.retryAfterSeconds} s` });
        }
        return sendCerts(reply, encodeCertsOnly([r.issued!.der]));
      } catch (e) {
        if (e instanceof LatchkeyError) deps.metrics.inc('latchkey_enrollment_failures_total', { code: e.code });
        throw e;
      }
    });
  };
}

export function deviceEstRoutes(deps: { est: EstService; clientCert: (req: FastifyRequest) => Buffer | undefined; metrics: Metrics; bodyLimit: number }) {
  return async (app: FastifyInstance): Promise<void> => {
    addPkcs10Parser(app, deps.bodyLimit);
    app.post(EST_PATHS.simplereenroll, async (req, reply) => {
      try {
        const r = await deps.est.simpleReenroll({ body: csrBodyToDer(req.body), clientCertDer: deps.clientCert(req), remote: req.ip });
        return sendCerts(reply, encodeCertsOnly([r.der]));
      } catch (e) {
        if (e instanceof LatchkeyError) deps.metrics.inc('latchkey_enrollment_failures_total', { code: e.code });
        throw e;
      }
    });
  };
}
