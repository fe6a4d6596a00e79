/** Admin API under /v1/admin: who am I, and admin API tokens (registered in the admin zone). */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { AdminTokenCreateRequest, type WhoAmI } from '@latchkey/protocol';
import { actorOf } from './admin-auth.js';
import type { AdminTokensService } from './admin-tokens-service.js';

const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
const ListQuery = Type.Object({ sessions: Type.Optional(Type.Boolean()) }, { additionalProperties: false });

export function adminTokenRoutes(deps: { adminTokens: AdminTokensService }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/whoami', { config: { minRole: 'viewer' } }, async (req): Promise<WhoAmI> => {
      const a = req.admin!;
      return { actor: actorOf(req), role: a.role, kind: a.kind === 'session' ? 'session' : 'token', user: a.user, expiresAt: a.expiresAt };
    });
    app.get('/admin-tokens', { config: { minRole: 'admin' }, schema: { querystring: ListQuery } }, async (req) => ({
      items: await deps.adminTokens.list({ sessions: (req.query as { sessions?: boolean }).sessions === true }),
      nextCursor: null,
    }));
    app.post('/admin-tokens', { config: { minRole: 'admin' }, schema: { body: AdminTokenCreateRequest } }, async (req, reply) =>
      reply.code(201).send(await deps.adminTokens.create(req.body as AdminTokenCreateRequest, { role: req.admin!.role, kind: req.admin!.kind, actor: actorOf(req) })),
    );
    app.delete('/admin-tokens/:id', { config: { minRole: 'admin' }, schema: { params: IdParams } }, async (req) => deps.adminTokens.revoke((req.params as { id: string }).id, actorOf(req)));
  };
}
