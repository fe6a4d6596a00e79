/** `Authorization: Bearer <token>` (RFC 6750 §2.1), for every zone that takes a bearer token. */
import type { IncomingHttpHeaders } from 'node:http';

/** The token of an Authorization header, or undefined if there is none or it is not a bearer token. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m ? m[1] : undefined;
}

/** The bearer token of a request (fastify request or raw upgrade request). */
export const bearer = (req: { headers: IncomingHttpHeaders }): string | undefined => bearerToken(req.headers.authorization);
