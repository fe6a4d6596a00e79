/** `GET /v1/admin/live` (viewer): the console's live stream (live-hub.ts). */
import type { FastifyInstance } from 'fastify';
import type { LiveHub } from './live-hub.js';

export function liveRoutes(deps: { live: LiveHub }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/live', { config: { minRole: 'viewer' } }, async (req, reply) => {
      deps.live.open(req, reply);
      return reply;
    });
  };
}
