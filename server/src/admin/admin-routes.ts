/** The admin API under /v1/admin: tokens, groups, devices, audit. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { DenyRequest, DeviceListQuery, GroupPolicy, RevokeRequest, TokenCreateRequest, type AdminRole } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import type { ServerConfig } from '../config/config-schema.js';
import type { DevicesService } from '../devices/devices-service.js';
import type { EventBus } from '../events/event-bus.js';
import { LatchkeyError } from '../errors.js';
import type { Db } from '../storage/db.js';
import { groupsRepo } from '../tokens/tokens-repo.js';
import type { TokensService } from '../tokens/tokens-service.js';
import { actorOf } from './admin-auth.js';

const role = (minRole: AdminRole) => ({ config: { minRole } });
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

export function adminRoutes(deps: { db: Db; config: ServerConfig; tokens: TokensService; devices: DevicesService; bus: EventBus; clock: () => Date }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.post('/tokens', { ...role('operator'), schema: { body: TokenCreateRequest } }, async (req, reply) =>
      reply.code(201).send(await deps.tokens.create(req.body as TokenCreateRequest, actorOf(req))),
    );
    app.get('/tokens', role('viewer'), async () => ({ items: await deps.tokens.list(), nextCursor: null }));
    app.delete('/tokens/:id', { ...role('operator'), schema: { params: IdParams } }, async (req, reply) => {
      await deps.tokens.revoke((req.params as { id: string }).id, actorOf(req));
      return reply.code(204).send();
    });

    app.get('/groups', role('viewer'), async () => ({
      items: (await groupsRepo(deps.db.kysely).list()).map((g) => ({ name: g.name, certLifetimeSeconds: g.cert_lifetime_seconds, requireApproval: !!g.require_approval })),
      nextCursor: null,
    }));
    // A setting left out keeps its value (a new group needs certLifetimeSeconds; approval defaults to off).
    app.put('/groups/:name', { ...role('admin'), schema: { body: Type.Partial(Type.Omit(GroupPolicy, ['name'])) } }, async (req) => {
      const name = (req.params as { name: string }).name;
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) throw new LatchkeyError('BAD_REQUEST', 'group names are lower-case letters, digits, - and _');
      const given = req.body as { certLifetimeSeconds?: number; requireApproval?: boolean };
      if (given.certLifetimeSeconds !== undefined && given.certLifetimeSeconds > deps.config.maxCertLifetimeSeconds) {
        throw new LatchkeyError('BAD_REQUEST', `certLifetimeSeconds may be at most ${deps.config.maxCertLifetimeSeconds} (maxCertLifetimeSeconds in config.json)`);
      }
      const at = deps.clock().toISOString();
      const body = await deps.db.kysely.transaction().execute(async (trx) => {
        const prev = await groupsRepo(trx).get(name);
        const certLifetimeSeconds = given.certLifetimeSeconds ?? prev?.cert_lifetime_seconds;
        if (certLifetimeSeconds === undefined) throw new LatchkeyError('BAD_REQUEST', `group ${name} does not exist yet: give its certLifetimeSeconds (latchkey-server groups set ${name} --lifetime 24h)`);
        const merged = { certLifetimeSeconds, requireApproval: given.requireApproval ?? !!prev?.require_approval };
        await groupsRepo(trx).upsert({ name, cert_lifetime_seconds: merged.certLifetimeSeconds, require_approval: merged.requireApproval ? 1 : 0, created_at: at });
        await auditRepo(trx).insert({ at, actor: actorOf(req), action: 'group.set', target: name, details: merged });
        return merged;
      });
      await deps.db.durable();
      // Connected agents of this group get the new policy now (on every replica).
      await deps.bus.publish({ type: 'policy', group: name, at });
      return { name, ...body };
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

    app.get(
      '/audit',
      { ...role('viewer'), schema: { querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), before: Type.Optional(Type.Integer({ minimum: 1 })), action: Type.Optional(Type.String({ maxLength: 100 })), target: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }) } },
      async (req) => {
        const q = req.query as { limit?: number; before?: number; action?: string; target?: string };
        const limit = q.limit ?? 100;
        const rows = await auditRepo(deps.db.kysely).list({ limit, ...(q.before ? { beforeId: q.before } : {}), ...(q.action ? { action: q.action } : {}), ...(q.target ? { target: q.target } : {}) });
        return {
          items: rows.map((r) => ({ id: String(r.id), at: r.at, actor: r.actor, action: r.action, target: r.target, details: JSON.parse(r.details) as Record<string, unknown> })),
          nextCursor: rows.length === limit ? String(rows[rows.length - 1]!.id) : null,
        };
      },
    );
  };
}
