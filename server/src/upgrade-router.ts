/**
 * WebSocket upgrades on the server's one HTTPS port, routed by path: the
 * agents' control channel (`/v1/agent`, device certificate) and the gateways'
 * event stream (`/v1/events`, gateway token). Each handler authenticates its
 * own zone, as the HTTP route zones do.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error' };

/** Answers an upgrade with a plain HTTP error and the usual JSON error body. */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export function routeUpgrades(server: Server, routes: Record<string, UpgradeHandler>): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const path = (req.url ?? '').split('?')[0] ?? '';
    const handler = routes[path];
    if (!handler) return refuseUpgrade(socket, 404, 'NOT_FOUND', `no WebSocket endpoint at ${path}`);
    handler(req, socket, head);
  });
}
