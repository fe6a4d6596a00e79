/**
 * The attestation challenge routes (issue 14): JSON, at most
 * ATTEST_BODY_LIMIT bytes, schema-checked. Public zone: an enrollment
 * token's challenge, rate-limited per address like simpleenroll. Device
 * zone: a renewal's challenge, authenticated by the TLS client certificate
 * like simplereenroll.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ATTEST_PATHS, AttestChallenge, AttestEnrollChallengeRequest, AttestRenewChallengeRequest } from '@latchkey/protocol';
import { bearer } from '../auth/bearer.js';
import { perAddress, registerRateLimit } from '../rate-limit.js';
import { ATTEST_BODY_LIMIT } from './attestation-fns.js';
import type { AttestationService } from './attestation-service.js';

/** Only JSON, in these plugins; a bigger body is a 413 before it is read. */
function addJsonParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: ATTEST_BODY_LIMIT }, app.getDefaultJsonParser('error', 'error'));
}

export function publicAttestationRoutes(deps: { attestation: AttestationService; enrollRateLimitPerMinute: number }) {
  return async (app: FastifyInstance): Promise<void> => {
    addJsonParser(app);
    await registerRateLimit(app);
    const rateLimit = perAddress(deps.enrollRateLimitPerMinute, 'too many attestation challenges from this address');
    app.post(
      ATTEST_PATHS.enrollChallenge,
      { bodyLimit: ATTEST_BODY_LIMIT, config: { rateLimit }, schema: { body: AttestEnrollChallengeRequest, response: { 200: AttestChallenge } } },
      async (req: FastifyRequest) => deps.attestation.enrollChallenge({ token: bearer(req), body: req.body as AttestEnrollChallengeRequest }),
    );
  };
}

export function deviceAttestationRoutes(deps: { attestation: AttestationService; clientCert: (req: FastifyRequest) => Buffer | undefined }) {
  return async (app: FastifyInstance): Promise<void> => {
    addJsonParser(app);
    app.post(
      ATTEST_PATHS.renewChallenge,
      { bodyLimit: ATTEST_BODY_LIMIT, schema: { body: AttestRenewChallengeRequest, response: { 200: AttestChallenge } } },
      async (req: FastifyRequest) => deps.attestation.renewChallenge({ clientCertDer: deps.clientCert(req), body: req.body as AttestRenewChallengeRequest }),
    );
  };
}
