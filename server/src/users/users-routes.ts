/** `/v1/admin/users`: the people the identity provider named, and `users sync`. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { UsersSyncRequest } from '@latchkey/protocol';
import { LatchkeyError } from '../errors.js';
import type { UsersRepo } from './users-repo.js';
import type { UsersSync } from './users-sync.js';

/** A sync by hand skips people checked this recently (by the periodic run or another admin). */
export const MANUAL_SYNC_MIN_AGE_SECONDS = 10;

export function usersRoutes(deps: { users: Pick<UsersRepo, 'list'>; sync: UsersSync | undefined }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get(
      '/users',
      { config: { minRole: 'viewer' }, schema: { querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })), cursor: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }) } },
      async (req) => {
        const q = req.query as { limit?: number; cursor?: string };
        const limit = q.limit ?? 100;
        const rows = await deps.users.list(limit, q.cursor);
        return {
          items: rows.map((r) => ({ id: r.id, issuer: r.issuer, email: r.email, groups: JSON.parse(r.groups) as string[], status: r.status, devices: Number(r.devices ?? 0), lastSignInAt: r.last_sign_in_at, lastSyncedAt: r.last_synced_at })),
          nextCursor: rows.length === limit ? rows[rows.length - 1]!.id : null,
        };
      },
    );
    // The body is optional (a bare POST syncs): checked here, since a route's body schema would demand one.
    app.post('/users/sync', { config: { minRole: 'admin' } }, async (req) => {
      if (req.body !== undefined && req.body !== null && !Value.Check(UsersSyncRequest, req.body)) {
        throw new LatchkeyError('BAD_REQUEST', 'the body of users/sync is optional and may only be {"force": true|false}');
      }
      if (!deps.sync) throw new LatchkeyError('NOT_FOUND', 'this server has no identity provider configured: there is nobody to sync');
      return deps.sync.syncAll(MANUAL_SYNC_MIN_AGE_SECONDS, { force: (req.body as UsersSyncRequest | undefined)?.force === true });
    });
  };
}
