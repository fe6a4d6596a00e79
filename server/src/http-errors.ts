/**
 * The one mapping from errors to HTTP answers, `{ error: { code, message },
 * reqId }`: LatchkeyError with its registered status, fastify's own
 * refusals (validation, media type, body size, router), 404, and every
 * other error as a 500 whose details stay in the log.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { LatchkeyError } from './errors.js';
import { validationMessage, type SchemaError } from './validation-message.js';

/** Longest path parameter (fastify's default): every id and name we route on is shorter. */
export const MAX_PARAM_LENGTH = 100;

/** A URL as an error message may repeat it: the path only, cut short. */
const PATH_PREVIEW = (url: string): string => {
  const p = url.split('?')[0] ?? '';
  return p.length > 80 ? `${p.slice(0, 80)}…` : p;
};

/** The router's own refusals (a path parameter over maxParamLength, bad percent-encoding). */
export function frameworkErrors(err: { code?: string }, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
  return reply
    .code(tooLong ? 414 : 400)
    .send({ error: { code: 'BAD_REQUEST', message: tooLong ? `a path parameter of ${req.method} ${PATH_PREVIEW(req.url)} is over ${MAX_PARAM_LENGTH} characters` : `the URL of ${req.method} ${PATH_PREVIEW(req.url)} is not valid percent-encoding` }, reqId: req.id });
}

export function errorHandler(err: FastifyError | LatchkeyError, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof LatchkeyError) {
    if (err.headers) reply.headers(err.headers);
    return reply.code(err.status).send({ error: { code: err.code, message: err.message }, reqId: req.id });
  }
  const e = err as { code?: string; statusCode?: number; validation?: SchemaError[]; validationContext?: string; message: string };
  if (e.validation) return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: `invalid request: ${validationMessage(e.validationContext, e.validation)}` }, reqId: req.id });
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return reply.code(415).send({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: `unsupported Content-Type "${req.headers['content-type'] ?? ''}" for ${req.method} ${req.url.split('?')[0]}` }, reqId: req.id });
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ error: { code: 'PAYLOAD_TOO_LARGE', message: 'the request body is over the size limit' }, reqId: req.id });
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
    return reply.code(e.statusCode).send({ error: { code: 'BAD_REQUEST', message: e.message }, reqId: req.id });
  }
  req.log.error({ err }, 'request failed');
  return reply.code(500).send({ error: { code: 'INTERNAL', message: 'internal error; see the server log' }, reqId: req.id });
}

export const notFoundHandler = (req: FastifyRequest, reply: FastifyReply): FastifyReply =>
  reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` }, reqId: req.id });
