/**
 * Admin API tokens for automation: named, with a role no higher than their
 * creator's, an expiry and a last-used time; the secret (`lk_adm_…`) is
 * shown once. Listing and revoking cover the bootstrap token of `init` and
 * people's sessions too. The last live credential with the admin role cannot
 * be revoked while no identity provider is configured: nobody could
 * administer the server any more.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { roleAtLeast, SECRET_PREFIXES, type AdminRole, type AdminTokenCreateRequest, type AdminTokenCreateResponse, type AdminTokenInfo } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { hashSecret } from '../auth/secret-hash.js';
import { LatchkeyError } from '../errors.js';
import type { Transactor } from '../storage/transaction.js';
import { adminTokenTtlSeconds } from './admin-fns.js';
import { adminTokensRepo, type AdminTokenKind, type AdminTokenRow, type AdminTokensRepo } from './admin-tokens-repo.js';

export const toAdminTokenInfo = (r: AdminTokenRow): AdminTokenInfo => ({
  id: r.id,
  name: r.name,
  role: r.role,
  kind: r.kind,
  user: r.user_email,
  createdAt: r.created_at,
  createdBy: r.created_by,
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

/** Rows one listing returns at most (API tokens are few; sessions are bounded per person). */
const LIST_LIMIT = 1000;

export interface AdminTokensServiceDeps {
  adminTokens: Pick<AdminTokensRepo, 'list'>;
  tx: Transactor;
  clock: () => Date;
  /** Serialize changes with a lock (PostgreSQL); SQLite transactions are serial already. */
  rowLocks: boolean;
  /** Whether people can sign in (an OIDC issuer is configured): then revoking the last admin token locks nobody out. */
  idpConfigured: boolean;
}

export function createAdminTokensService(deps: AdminTokensServiceDeps) {
  return {
    /** By a signed-in admin (a session) or the bootstrap token; an API token cannot mint more tokens (a leaked one would persist). */
    async create(req: AdminTokenCreateRequest, creator: { role: AdminRole; kind: AdminTokenKind; actor: string }): Promise<AdminTokenCreateResponse> {
      if (creator.kind === 'token') throw new LatchkeyError('FORBIDDEN', 'an admin API token cannot make admin tokens: sign in with `latchkey-server login`, or use the bootstrap token of `init`');
      if (!roleAtLeast(creator.role, req.role)) throw new LatchkeyError('FORBIDDEN', `you are ${creator.role} and cannot make a token with more rights (${req.role}); ask someone with the ${req.role} role`);
      const ttl = adminTokenTtlSeconds(req.ttl);
      if (ttl === undefined) throw new LatchkeyError('BAD_REQUEST', `ttl ${JSON.stringify(req.ttl)} must be seconds or look like 12h or 90d, between 1 minute and 365 days`);
      const now = deps.clock();
      const token = `${SECRET_PREFIXES.adminToken}${randomBytes(32).toString('base64url')}`;
      const row: AdminTokenRow = {
        id: randomUUID(),
        secret_hash: hashSecret(token),
        name: req.name,
        role: req.role,
        kind: 'token',
        user_id: null,
        user_email: null,
        created_at: now.toISOString(),
        created_by: creator.actor,
        expires_at: new Date(now.getTime() + ttl * 1000).toISOString(),
        last_used_at: null,
        revoked_at: null,
        refresh_hash: null,
        refresh_expires_at: null,
        parent_id: null,
        parent_revoked_at: null,
        parent_expires_at: null,
      };
      await deps.tx.inTransaction(async (trx) => {
        const repo = adminTokensRepo(trx);
        await repo.lockChanges(deps.rowLocks);
        if (await repo.liveNamed(req.name, row.created_at)) {
          throw new LatchkeyError('CONFLICT', `an admin token named "${req.name}" exists and is live; choose another name, or revoke it first (\`latchkey-server admin-token list\`)`);
        }
        const { user_email: _, parent_revoked_at: _r, parent_expires_at: _e, ...insert } = row;
        await repo.insert(insert);
        await auditRepo(trx).insert({ at: row.created_at, actor: creator.actor, action: 'admin-token.create', target: row.id, details: { name: row.name, role: row.role, expiresAt: row.expires_at } });
      });
      await deps.tx.durable();
      return { token, info: toAdminTokenInfo(row) };
    },

    async list(o: { sessions: boolean }): Promise<AdminTokenInfo[]> {
      return (await deps.adminTokens.list({ sessions: o.sessions, now: deps.clock().toISOString(), limit: LIST_LIMIT })).map(toAdminTokenInfo);
    },

    /** Revokes a bootstrap token, an API token or a session (which ends it, refresh token included). */
    async revoke(id: string, actor: string): Promise<AdminTokenInfo> {
      const at = deps.clock().toISOString();
      const info = await deps.tx.inTransaction(async (trx) => {
        const repo = adminTokensRepo(trx);
        await repo.lockChanges(deps.rowLocks);
        const row = await repo.findById(id);
        if (!row) throw new LatchkeyError('NOT_FOUND', `no admin token or session ${id}; see \`latchkey-server admin-token list --sessions\``);
        if (row.revoked_at) throw new LatchkeyError('CONFLICT', `admin token ${id} ("${row.name}") was already revoked at ${row.revoked_at}`);
        if (row.role === 'admin' && !deps.idpConfigured) {
          const others = (await repo.liveAdminIds(at)).filter((x) => x !== id);
          if (others.length === 0) {
            throw new LatchkeyError(
              'CONFLICT',
              `"${row.name}" is the last live credential with the admin role and no identity provider is configured: revoking it would leave nobody able to administer this server (no one can sign in, and only an admin can make an admin token). Create another admin token first (\`latchkey-server admin-token create --name NAME --role admin\`), or configure \`oidc\` in config.json so admins sign in`,
            );
          }
        }
        await repo.revoke(id, at, false);
        await auditRepo(trx).insert({ at, actor, action: 'admin-token.revoke', target: id, details: { name: row.name, kind: row.kind, role: row.role, ...(row.user_email ? { user: row.user_email } : {}) } });
        return toAdminTokenInfo({ ...row, revoked_at: at, refresh_hash: null });
      });
      await deps.tx.durable();
      return info;
    },
  };
}
export type AdminTokensService = ReturnType<typeof createAdminTokensService>;
