/**
 * The server's logger configuration (pino, fastify's own), as `start` uses it
 * and as the test of what reaches the log uses it (logger.test.ts). Never
 * logged: a token or a passphrase (in the Authorization header, a cookie, a
 * query string, a body, a path nobody routes), a private key, a CSR or a PEM.
 * A request is logged by method, route path (no query string), host and peer;
 * bodies and headers are never logged.
 */
import type { FastifyRequest, FastifyServerOptions } from 'fastify';
import type { ServerConfig } from './config/config-schema.js';

export type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>;

/**
 * The URL as it may be logged: the path without its query string (tokens
 * end up there: `?access_token=`, a pasted link); a path no route matched
 * (anything a client typed, a token pasted into it) only by its first segment.
 */
export function loggableUrl(url: string, routed: boolean): string {
  const path = url.split(/[?#]/, 1)[0]!;
  if (routed) return path;
  const first = /^\/[^/]{0,32}/.exec(path)?.[0] ?? '/';
  return first === path ? path : `${first}/…`;
}

export function serverLoggerOptions(level: ServerConfig['logLevel']): LoggerOptions {
  return {
    level,
    serializers: {
      req: (req: FastifyRequest) => ({
        method: req.method,
        url: loggableUrl(req.url, req.routeOptions?.url !== undefined),
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
    },
    // Should a header ever be logged (`{ req: { headers } }` by hand), these stay out.
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]'], censor: '[redacted]' },
  };
}
