/**
 * WebSocket upgrades on the server's one HTTPS port, routed by path: the
 * agents' control channel (`/v1/agent`, device certificate) and the gateways'
 * event stream (`/v1/events`, gateway token). Each handler authenticates its
 * own zone, as the HTTP route zones do.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Static, TSchema } from '@sinclair/typebox';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { tokenBucket } from './rate-limit.js';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error', 503: 'Service Unavailable' };

/** Answers an upgrade with a plain HTTP error and the usual JSON error body. */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: { code, message } });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`);
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

/**
 * Reads one WebSocket message against its schema; anything else (binary,
 * not JSON, not the schema) closes the socket with `protocolError` and
 * returns undefined.
 */
export function readWsMessage<S extends TSchema>(ws: { close(code: number, reason: string): void }, data: { toString(): string }, isBinary: boolean, check: TypeCheck<S>, protocolError: number): Static<S> | undefined {
  let msg: unknown;
  try {
    if (isBinary) throw new Error('binary');
    msg = JSON.parse(data.toString());
  } catch {
    ws.close(protocolError, 'messages are JSON text frames');
    return undefined;
  }
  if (!check.Check(msg)) {
    const err = check.Errors(msg).First();
    ws.close(protocolError, `invalid message: ${err ? `${err.path || '/'} ${err.message}` : 'unknown'}`.slice(0, 120));
    return undefined;
  }
  return msg;
}

/** Messages a peer may send per second on average, and in a burst: an agent sends a few a minute. */
export const WS_MESSAGE_RATE = { perSecond: 5, burst: 50 } as const;

/**
 * Counts a WebSocket peer's messages and pings against a token bucket and
 * closes the connection (`code`) the first time it runs dry: one
 * authenticated client repeating a message thousands of times a second is
 * cut off, not served. A peer that does not answer the close is cut off a
 * second later.
 */
export function limitMessageRate(
  ws: { on(event: 'message' | 'ping', fn: () => void): unknown; close(code: number, reason: string): void; terminate(): void },
  o: { perSecond: number; burst: number; code: number; now?: () => number; onExceeded?: () => void },
): void {
  const now = o.now ?? Date.now;
  const bucket = tokenBucket(o.burst, o.perSecond, now());
  let exceeded = false;
  const take = (): void => {
    if (exceeded || bucket.take(now())) return;
    exceeded = true;
    o.onExceeded?.();
    ws.close(o.code, 'too many messages');
    setTimeout(() => ws.terminate(), 1000).unref();
  };
  ws.on('message', take);
  ws.on('ping', take);
}
