/** Admin API authentication: bearer admin tokens (hash lookup) with roles. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminRole } from '@latchkey/protocol';
import { LatchkeyError } from '../errors.js';
import { bearer } from '../auth/bearer.js';
import { hashSecret } from '../auth/secret-hash.js';
import type { AdminTokensRepo } from './admin-tokens-repo.js';

const RANK: Record<AdminRole, number> = { viewer: 1, operator: 2, admin: 3 };

declare module 'fastify' {
  interface FastifyRequest {
    admin?: { id: string; name: string; role: AdminRole };
  }
  interface FastifyContextConfig {
    minRole?: AdminRole;
  }
}

/** Counts one failed login of the request's client address; says whether it is over its limit, and for how long. */
export type FailureLimit = (req: FastifyRequest) => Promise<{ isAllowed: true } | { isAllowed: false; isExceeded: boolean; ttlInSeconds: number }>;

export function adminAuthHook(adminTokens: Pick<AdminTokensRepo, 'findByHash'>, failures: FailureLimit) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const token = bearer(req);
    if (!token) throw new LatchkeyError('UNAUTHORIZED', 'the admin API needs `Authorization: Bearer <admin token>`');
    const row = await adminTokens.findByHash(hashSecret(token));
    if (!row) {
      const limit = await failures(req);
      if (!limit.isAllowed && limit.isExceeded) {
        throw new LatchkeyError('RATE_LIMITED', 'too many failed admin logins from this address; wait a minute', { headers: { 'retry-after': String(Math.max(1, limit.ttlInSeconds)) } });
      }
      throw new LatchkeyError('UNAUTHORIZED', 'the admin token is not valid');
    }
    req.admin = { id: row.id, name: row.name, role: row.role };
    const need = req.routeOptions.config.minRole ?? 'admin';
    if (RANK[row.role] < RANK[need]) {
      throw new LatchkeyError('FORBIDDEN', `this action needs the ${need} role; the token "${row.name}" is ${row.role}`);
    }
  };
}

export const actorOf = (req: FastifyRequest): string => `admin:${req.admin?.name ?? 'unknown'}`;
