/**
 * Admin API authentication: a bearer secret (bootstrap token, API token or a
 * person's session), looked up by its hash, live (not revoked, not past its
 * end), with a role at least the route's `config.minRole`. Its last use is
 * recorded at most once a minute, after the answer is on its way.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type AdminRole, roleAtLeast } from '@latchkey/protocol';
import { LatchkeyError } from '../errors.js';
import { bearer } from '../auth/bearer.js';
import { CONSOLE_COOKIE, CSRF_HEADER, csrfMatches, isSafeMethod, readCookie } from '../auth/console-cookie.js';
import { hashSecret } from '../auth/secret-hash.js';
import { actorName, LAST_USED_RESOLUTION_MS, shouldRecordUse } from './admin-fns.js';
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
    /** The console session secret, when the request came with the console cookie (sign-out ends it). */
    consoleSecret?: string;
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
    if (row.revoked_at || (!row.user_email && !row.parent_id)) throw new LatchkeyError('SESSION_EXPIRED', 'your admin session was ended; sign in again with `latchkey-server login`');
    if (row.parent_id && (row.parent_revoked_at || (row.parent_expires_at && Date.parse(row.parent_expires_at) <= now.getTime()))) {
      throw new LatchkeyError('SESSION_EXPIRED', `the admin token "${row.name}" this console session signed in with was revoked or expired; sign in again`);
    }
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
    // A bearer token (CLI, automation) or the console's session cookie; a bearer wins when both come.
    const token = bearer(req);
    const cookie = token ? undefined : readCookie(req.headers, CONSOLE_COOKIE);
    const secret = token ?? cookie;
    if (!secret) throw new LatchkeyError('UNAUTHORIZED', 'the admin API needs `Authorization: Bearer <admin token>`; sign in with `latchkey-server login` or use an admin API token');
    const row = await deps.adminTokens.findByHash(hashSecret(secret));
    if (!row) {
      const limit = await deps.failures(req);
      if (!limit.isAllowed && limit.isExceeded) {
        throw new LatchkeyError('RATE_LIMITED', 'too many failed admin logins from this address; wait a minute', { headers: { 'retry-after': String(Math.max(1, limit.ttlInSeconds)) } });
      }
      throw new LatchkeyError('UNAUTHORIZED', 'the admin token is not valid');
    }
    const now = deps.clock();
    checkLive(row, now);
    if (cookie !== undefined) {
      // The cookie only ever holds a console session; a change needs the session's CSRF token, sent by our own pages.
      if (row.kind !== 'session') throw new LatchkeyError('UNAUTHORIZED', 'the console cookie does not hold a session; sign in again');
      if (!isSafeMethod(req.method)) {
        const site = req.headers['sec-fetch-site'];
        if ((site !== undefined && site !== 'same-origin') || !csrfMatches(cookie, req.headers[CSRF_HEADER])) {
          throw new LatchkeyError('CSRF', `a change made with the console's cookie needs the console's ${CSRF_HEADER} header and must come from the console's own pages; reload the console`);
        }
      }
      req.consoleSecret = cookie;
    }
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
