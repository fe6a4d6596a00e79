/** `GET /v1/admin/overview` (viewer): the console's first page. */
import type { FastifyInstance } from 'fastify';
import { ConsoleOverview, OverviewQuery } from '@latchkey/protocol';
import type { OverviewService } from './overview-service.js';

export function overviewRoutes(deps: { overview: OverviewService }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/overview', { config: { minRole: 'viewer' }, schema: { querystring: OverviewQuery, response: { 200: ConsoleOverview } } }, async (req): Promise<ConsoleOverview> => deps.overview.get((req.query as OverviewQuery).expiringWithinSeconds));
  };
}
