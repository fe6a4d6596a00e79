/** Admin API for gateway tokens, under /v1/admin (registered in the admin zone). */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { GatewayTokenCreateRequest } from '@latchkey/protocol';
import { actorOf } from '../admin/admin-auth.js';
import type { GatewayTokensService } from './gateway-tokens-service.js';

const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

export function gatewayTokenRoutes(deps: { gatewayTokens: GatewayTokensService }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.post('/gateway-tokens', { config: { minRole: 'admin' }, schema: { body: GatewayTokenCreateRequest } }, async (req, reply) =>
      reply.code(201).send(await deps.gatewayTokens.create((req.body as GatewayTokenCreateRequest).name, actorOf(req))),
    );
    app.get('/gateway-tokens', { config: { minRole: 'viewer' } }, async () => ({ items: await deps.gatewayTokens.list(), nextCursor: null }));
    app.delete('/gateway-tokens/:id', { config: { minRole: 'admin' }, schema: { params: IdParams } }, async (req, reply) => {
      await deps.gatewayTokens.revoke((req.params as { id: string }).id, actorOf(req));
      return reply.code(204).send();
    });
  };
}
