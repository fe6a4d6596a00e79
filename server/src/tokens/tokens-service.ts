/** Enrollment tokens: created with a secret shown once, stored as SHA-256 hashes. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { TokenCreateRequest, TokenInfo } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { LatchkeyError } from '../errors.js';
import { hashSecret } from '../auth/secret-hash.js';
import type { Transactor } from '../storage/transaction.js';
import type { EnrollTokensTable } from '../storage/schema.js';
import type { GroupsRepo } from '../groups/groups-repo.js';
import { type TokensRepo, tokensRepo } from './tokens-repo.js';

export const DEFAULT_GROUP = 'default';
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

export function parseTtl(ttl: TokenCreateRequest['ttl']): number {
  if (ttl === undefined) return 86400;
  if (typeof ttl === 'number') return ttl;
  const m = /^([1-9][0-9]{0,5})([smhd])$/.exec(ttl);
  if (!m) throw new LatchkeyError('BAD_REQUEST', `ttl "${ttl}" must look like 30m, 24h or 7d`);
  const s = Number(m[1]) * UNITS[m[2]!]!;
  if (s < 60 || s > 365 * 86400) throw new LatchkeyError('BAD_REQUEST', 'ttl must be between 1 minute and 365 days');
  return s;
}

export const toTokenInfo = (t: EnrollTokensTable): TokenInfo => ({
  id: t.id,
  group: t.group_name,
  uses: t.uses,
  usedCount: t.used_count,
  expiresAt: t.expires_at,
  revokedAt: t.revoked_at,
  createdAt: t.created_at,
});

export function createTokensService(deps: { tokens: Pick<TokensRepo, 'list'>; groups: Pick<GroupsRepo, 'get'>; tx: Transactor; clock: () => Date }) {
  return {
    async create(req: TokenCreateRequest, actor: string): Promise<{ token: string; info: TokenInfo }> {
      const group = req.group ?? DEFAULT_GROUP;
      if (!(await deps.groups.get(group))) {
        throw new LatchkeyError('NOT_FOUND', `group "${group}" does not exist; create it with \`latchkey-server groups set ${group}\``);
      }
      const now = deps.clock();
      const secret = `lk_enr_${randomBytes(32).toString('base64url')}`;
      const row: EnrollTokensTable = {
        id: randomUUID(),
        secret_hash: hashSecret(secret),
        group_name: group,
        uses: req.uses ?? 1,
        used_count: 0,
        expires_at: new Date(now.getTime() + parseTtl(req.ttl) * 1000).toISOString(),
        revoked_at: null,
        created_at: now.toISOString(),
        created_by: actor,
      };
      await deps.tx.inTransaction(async (trx) => {
        await tokensRepo(trx).insert(row);
        await auditRepo(trx).insert({ at: row.created_at, actor, action: 'token.create', target: row.id, details: { group, uses: row.uses, expiresAt: row.expires_at } });
      });
      await deps.tx.durable();
      return { token: secret, info: toTokenInfo(row) };
    },
    async list(limit = 200): Promise<TokenInfo[]> {
      return (await deps.tokens.list(limit)).map(toTokenInfo);
    },
    async revoke(id: string, actor: string): Promise<void> {
      const at = deps.clock().toISOString();
      await deps.tx.inTransaction(async (trx) => {
        if (!(await tokensRepo(trx).findById(id))) throw new LatchkeyError('NOT_FOUND', `no enrollment token ${id}`);
        if (!(await tokensRepo(trx).revoke(id, at))) throw new LatchkeyError('CONFLICT', `enrollment token ${id} is already revoked`);
        await auditRepo(trx).insert({ at, actor, action: 'token.revoke', target: id, details: {} });
      });
      await deps.tx.durable();
    },
  };
}
export type TokensService = ReturnType<typeof createTokensService>;
