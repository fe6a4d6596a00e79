/** Admin routes of the EK inventory, under /v1/admin (the admin zone's auth hook has run). */
import type { FastifyInstance } from 'fastify';
import { REGISTERED_DEVICES_IMPORT_LIMITS, RegisteredDeviceCreateRequest, RegisteredDeviceListQuery } from '@latchkey/protocol';
import { actorOf } from '../admin/admin-auth.js';
import { LatchkeyError } from '../errors.js';
import type { RegisteredDevicesService } from './registered-devices-service.js';

export function registeredDeviceRoutes(deps: { registered: RegisteredDevicesService }) {
  return async (app: FastifyInstance): Promise<void> => {
    // The CSV import's body, in this plugin only; over 1 MiB is a 413 before it is read.
    app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: REGISTERED_DEVICES_IMPORT_LIMITS.maxBytes }, (_req, body, done) => done(null, body));
    app.get('/registered-devices', { config: { minRole: 'viewer' }, schema: { querystring: RegisteredDeviceListQuery } }, async (req) => {
      const q = req.query as RegisteredDeviceListQuery;
      return deps.registered.list(q.limit ?? 100, q.cursor);
    });
    app.post('/registered-devices', { config: { minRole: 'admin' }, schema: { body: RegisteredDeviceCreateRequest } }, async (req, reply) =>
      reply.code(201).send(await deps.registered.register(req.body as RegisteredDeviceCreateRequest, actorOf(req))),
    );
    app.post('/registered-devices/import', { config: { minRole: 'admin' } }, async (req, reply) => {
      if (typeof req.body !== 'string') throw new LatchkeyError('UNSUPPORTED_MEDIA_TYPE', 'send the CSV as Content-Type: text/csv (columns name,ek_hash[,group])');
      return reply.code(201).send(await deps.registered.importCsv(req.body, actorOf(req)));
    });
    app.delete('/registered-devices/:id', { config: { minRole: 'admin' } }, async (req) => deps.registered.remove((req.params as { id: string }).id, actorOf(req)));
  };
}
