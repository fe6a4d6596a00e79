/** Admin routes for device groups, under /v1/admin (the admin zone's auth hook has run). */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { GroupPolicy } from '@latchkey/protocol';
import { actorOf } from '../admin/admin-auth.js';
import type { GroupSettings, GroupsService } from './groups-service.js';

export function groupRoutes(deps: { groups: GroupsService }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/groups', { config: { minRole: 'viewer' } }, async () => ({ items: await deps.groups.list(), nextCursor: null }));
    // A setting left out keeps its value (a new group needs certLifetimeSeconds; approval defaults to off).
    app.put('/groups/:name', { config: { minRole: 'admin' }, schema: { body: Type.Partial(Type.Omit(GroupPolicy, ['name'])) } }, async (req) =>
      deps.groups.set((req.params as { name: string }).name, req.body as Partial<GroupSettings>, actorOf(req)),
    );
  };
}
