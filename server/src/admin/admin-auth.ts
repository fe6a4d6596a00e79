/**
 * Admin API authentication: a bearer secret (bootstrap token, API token or a
 * person's session), looked up by its hash, live (not revoked, not past its
 * end), with a role at least the route's `config.minRole`. Its last use is
 * recorded at most once a minute, after the answer is on its way.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminRole } from '@latchkey/protocol';
import { LatchkeyError } from '../errors.js';
import { bearer } from '../auth/bearer.js';
import { hashSecret } from '../auth/secret-hash.js';
import { actorName, LAST_USED_RESOLUTION_MS, roleAtLeast, shouldRecordUse } from './admin-fns.js';
import type { AdminTokenKind, AdminTokenRow, AdminTokensRepo } from './admin-tokens-repo.js';

/** Who is calling the admin API. `user` is the person's email (sessions). */
export interface AdminPrincipal {
  id: string;
  name: string;
  role: AdminRole;
  kind: AdminTokenKind;
  user: string | null;
  expiresAt: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    admin?: AdminPrincipal;
  }
  interface FastifyContextConfig {
    minRole?: AdminRole;
  }
}

/** Counts one failed login of the request's client address; says whether it is over its limit, and for how long. */
export type FailureLimit = (req: FastifyRequest) => Promise<{ isAllowed: true } | { isAllowed: false; isExceeded: boolean; ttlInSeconds: number }>;

export interface AdminAuthDeps {
  adminTokens: Pick<AdminTokensRepo, 'findByHash' | 'touch'>;
  failures: FailureLimit;
  clock: () => Date;
}

/** Refuses a credential that is revoked or past its end, saying what to do. */
export function checkLive(row: AdminTokenRow, now: Date): void {
  if (row.kind === 'session') {
    if (row.revoked_at || !row.user_email) throw new LatchkeyError('SESSION_EXPIRED', 'your admin session was ended; sign in again with `latchkey-server login`');
    if (row.expires_at && Date.parse(row.expires_at) <= now.getTime()) {
      throw new LatchkeyError('SESSION_EXPIRED', `your admin session expired at ${row.expires_at}; sign in again with \`latchkey-server login\``);
    }
    return;
  }
  if (row.revoked_at) throw new LatchkeyError('UNAUTHORIZED', `the admin token "${row.name}" was revoked at ${row.revoked_at}; ask an admin for a new one (\`latchkey-server admin-token create\`)`);
  if (row.expires_at && Date.parse(row.expires_at) <= now.getTime()) {
    throw new LatchkeyError('UNAUTHORIZED', `the admin token "${row.name}" expired at ${row.expires_at}; an admin makes a new one with \`latchkey-server admin-token create --name ${row.name} --role ${row.role}\``);
  }
}

export function adminAuthHook(deps: AdminAuthDeps) {
  // Credentials whose use is being written now: concurrent requests of one token write once.
  const writing = new Set<string>();
  const recordUse = (req: FastifyRequest, row: AdminTokenRow, now: Date): void => {
    if (writing.has(row.id) || !shouldRecordUse(now, row.last_used_at)) return;
    writing.add(row.id);
    deps.adminTokens
      .touch(row.id, now.toISOString(), new Date(now.getTime() - LAST_USED_RESOLUTION_MS).toISOString())
      .catch((e: Error) => req.log.warn({ err: e, adminTokenId: row.id }, 'could not record the last use of an admin credential'))
      .finally(() => writing.delete(row.id));
  };
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const token = bearer(req);
    if (!token) throw new LatchkeyError('UNAUTHORIZED', 'the admin API needs `Authorization: Bearer <admin token>`; sign in with `latchkey-server login` or use an admin API token');
    const row = await deps.adminTokens.findByHash(hashSecret(token));
    if (!row) {
      const limit = await deps.failures(req);
      if (!limit.isAllowed && limit.isExceeded) {
        throw new LatchkeyError('RATE_LIMITED', 'too many failed admin logins from this address; wait a minute', { headers: { 'retry-after': String(Math.max(1, limit.ttlInSeconds)) } });
      }
      throw new LatchkeyError('UNAUTHORIZED', 'the admin token is not valid');
    }
    const now = deps.clock();
    checkLive(row, now);
    req.admin = { id: row.id, name: row.name, role: row.role, kind: row.kind, user: row.user_email, expiresAt: row.expires_at };
    recordUse(req, row, now);
    const need = req.routeOptions.config.minRole ?? 'admin';
    if (!roleAtLeast(row.role, need)) {
      const who = row.kind === 'session' ? `your session (${row.user_email ?? 'unknown user'})` : `the token "${row.name}"`;
      throw new LatchkeyError('FORBIDDEN', `this action needs the ${need} role; ${who} is ${row.role}`);
    }
  };
}

/** Who acted, as the audit log names it: `user:<email>` or `admin:<token name>`. */
export const actorOf = (req: FastifyRequest): string => (req.admin ? actorName(req.admin) : 'admin:unknown');
