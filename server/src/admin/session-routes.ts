/**
 * `POST /v1/auth/refresh` and `POST /v1/auth/logout` (public zone): a
 * person's admin session is renewed with its one-use refresh token, or ended.
 * Rate-limited per client address: guessing refresh tokens gets nowhere fast
 * and writes nothing.
 */
import type { FastifyInstance } from 'fastify';
import { AUTH_PATHS, AuthRefresh, type AdminSession } from '@latchkey/protocol';
import { bearer } from '../auth/bearer.js';
import { LatchkeyError } from '../errors.js';
import { perAddress, registerRateLimit } from '../rate-limit.js';
import type { AdminSessions, Reauthorize } from './admin-sessions.js';

/** Refreshes and logouts one client address may make in a minute (a CLI refreshes about once an hour). */
export const SESSION_REQUESTS_PER_MINUTE = 30;

export function sessionRoutes(deps: { sessions: Pick<AdminSessions, 'refresh' | 'end'>; reauthorize: Reauthorize; perMinute?: number }) {
  return async (app: FastifyInstance): Promise<void> => {
    await registerRateLimit(app);
    const rateLimit = perAddress(deps.perMinute ?? SESSION_REQUESTS_PER_MINUTE, 'too many session refreshes or logouts from this address');
    app.post(AUTH_PATHS.refresh, { config: { rateLimit }, schema: { body: AuthRefresh } }, async (req): Promise<AdminSession> => deps.sessions.refresh((req.body as AuthRefresh).refreshToken, deps.reauthorize));
    app.post(AUTH_PATHS.logout, { config: { rateLimit } }, async (req, reply) => {
      const token = bearer(req);
      if (!token) throw new LatchkeyError('UNAUTHORIZED', 'logout needs `Authorization: Bearer <session token>`');
      await deps.sessions.end(token);
      return reply.code(204).send();
    });
  };
}
