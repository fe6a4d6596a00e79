/**
 * Gateway tokens: what a gateway (`gateway sync`, or any client of
 * `/v1/events`) presents as `Authorization: Bearer lkg_…`. The secret is
 * shown once at creation; the server keeps only its SHA-256.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { GatewayTokenCreateResponse, GatewayTokenInfo } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { LatchkeyError } from '../errors.js';
import { hashSecret } from '../auth/secret-hash.js';
import type { Transactor } from '../storage/transaction.js';
import type { GatewayTokensTable } from '../storage/schema.js';
import { type GatewayTokensRepo, gatewayTokensRepo } from './gateway-tokens-repo.js';

export const GATEWAY_TOKEN_PREFIX = 'lkg_';

export const toGatewayTokenInfo = (t: GatewayTokensTable): GatewayTokenInfo => ({ id: t.id, name: t.name, createdAt: t.created_at, createdBy: t.created_by, revokedAt: t.revoked_at });

export function createGatewayTokensService(deps: { gatewayTokens: Pick<GatewayTokensRepo, 'list'>; tx: Transactor; clock: () => Date; onRevoked: (id: string) => void }) {
  return {
    async create(name: string, actor: string): Promise<GatewayTokenCreateResponse> {
      const secret = `${GATEWAY_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
      const row: GatewayTokensTable = { id: randomUUID(), secret_hash: hashSecret(secret), name, created_at: deps.clock().toISOString(), created_by: actor, revoked_at: null };
      await deps.tx.inTransaction(async (trx) => {
        await gatewayTokensRepo(trx).insert(row);
        await auditRepo(trx).insert({ at: row.created_at, actor, action: 'gateway-token.create', target: row.id, details: { name } });
      });
      await deps.tx.durable();
      return { token: secret, info: toGatewayTokenInfo(row) };
    },
    async list(limit = 500): Promise<GatewayTokenInfo[]> {
      return (await deps.gatewayTokens.list(limit)).map(toGatewayTokenInfo);
    },
    /** Revokes the token and closes its event streams on this replica at once (other replicas notice at their next check). */
    async revoke(id: string, actor: string): Promise<void> {
      const at = deps.clock().toISOString();
      await deps.tx.inTransaction(async (trx) => {
        const row = await gatewayTokensRepo(trx).findById(id);
        if (!row) throw new LatchkeyError('NOT_FOUND', `no gateway token ${id}; see \`latchkey-server gateway token list\``);
        if (!(await gatewayTokensRepo(trx).revoke(id, at))) throw new LatchkeyError('CONFLICT', `gateway token ${id} is already revoked`);
        await auditRepo(trx).insert({ at, actor, action: 'gateway-token.revoke', target: id, details: { name: row.name } });
      });
      await deps.tx.durable();
      deps.onRevoked(id);
    },
  };
}
export type GatewayTokensService = ReturnType<typeof createGatewayTokensService>;
