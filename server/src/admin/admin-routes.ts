/** The admin API under /v1/admin: tokens, devices, audit (groups: groups/groups-routes.ts). */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { AuditListQuery, DenyRequest, DeviceListQuery, RevokeRequest, TokenCreateRequest, type AdminRole } from '@latchkey/protocol';
import { type AuditRepo, toAuditEvent } from '../audit/audit-repo.js';
import type { DevicesService } from '../devices/devices-service.js';
import type { TokensService } from '../tokens/tokens-service.js';
import { actorOf } from './admin-auth.js';

const role = (minRole: AdminRole) => ({ config: { minRole } });
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

export function adminRoutes(deps: { audit: Pick<AuditRepo, 'list'>; tokens: TokensService; devices: DevicesService }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.post('/tokens', { ...role('operator'), schema: { body: TokenCreateRequest } }, async (req, reply) =>
      reply.code(201).send(await deps.tokens.create(req.body as TokenCreateRequest, actorOf(req))),
    );
    app.get('/tokens', role('viewer'), async () => ({ items: await deps.tokens.list(), nextCursor: null }));
    app.delete('/tokens/:id', { ...role('operator'), schema: { params: IdParams } }, async (req, reply) => {
      await deps.tokens.revoke((req.params as { id: string }).id, actorOf(req));
      return reply.code(204).send();
    });

    app.get('/devices', { ...role('viewer'), schema: { querystring: DeviceListQuery } }, async (req) => deps.devices.list(req.query as DeviceListQuery));
    app.get('/devices/:id', { ...role('viewer'), schema: { params: IdParams } }, async (req) => deps.devices.show((req.params as { id: string }).id));
    app.post('/devices/:id/approve', { ...role('operator'), schema: { params: IdParams } }, async (req) => deps.devices.approve((req.params as { id: string }).id, actorOf(req)));
    app.post('/devices/:id/deny', { ...role('operator'), schema: { params: IdParams, body: Type.Optional(DenyRequest) } }, async (req) =>
      deps.devices.deny((req.params as { id: string }).id, (req.body as DenyRequest | undefined)?.reason, actorOf(req)),
    );
    app.post('/devices/:id/revoke', { ...role('operator'), schema: { params: IdParams, body: Type.Optional(RevokeRequest) } }, async (req) => {
      const reason = (req.body as { reason?: string } | undefined)?.reason ?? 'unspecified';
      return deps.devices.revoke((req.params as { id: string }).id, reason as never, actorOf(req));
    });

    app.get('/audit', { ...role('viewer'), schema: { querystring: AuditListQuery } }, async (req) => {
      const q = req.query as AuditListQuery;
      const limit = q.limit ?? 100;
      const { before, limit: _l, ...filters } = q;
      const rows = await deps.audit.list({ limit, ...filters, ...(before ? { beforeId: before } : {}) });
      return { items: rows.map(toAuditEvent), nextCursor: rows.length === limit ? String(rows[rows.length - 1]!.id) : null };
    });
  };
}
