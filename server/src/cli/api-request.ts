/**
 * One HTTPS request to the server's API with a JSON body and answer, trusting
 * the given root (else the system's roots). Answers every status; the caller
 * decides what is an error (`apiError`), since the sign-in poll lives on 202
 * and 429.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { ApiError } from '../cli-errors.js';

export interface ApiTarget {
  /** https://HOST:PORT */
  server: string;
  /** PEM of the root to trust; the system's roots when absent. */
  ca?: string;
}

export interface ApiAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  json: unknown;
}

/** A body sent as it is, with its own media type (the CSV of `devices register --csv`), instead of JSON. */
export class RawBody {
  constructor(
    readonly contentType: string,
    readonly data: Buffer,
  ) {}
}

/** Answers larger than this are cut off: no admin answer comes near it. */
const MAX_ANSWER_BYTES = 16 << 20;

export function apiRequest(t: ApiTarget, method: string, path: string, o: { body?: unknown; token?: string; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ApiAnswer> {
  const base = new URL(t.server);
  const raw = o.body instanceof RawBody ? o.body : undefined;
  const payload = raw ? raw.data : o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
  const timeoutMs = o.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || 443,
        method,
        path,
        ...(t.ca ? { ca: t.ca } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        headers: {
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
          accept: 'application/json',
          ...(payload ? { 'content-type': raw ? raw.contentType : 'application/json', 'content-length': String(payload.length) } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`the answer of ${t.server} is larger than ${MAX_ANSWER_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 500, headers: res.headers, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${t.server} within ${Math.round(timeoutMs / 1000)} s`)));
    req.on('error', (e) => {
      if (o.signal?.aborted) reject(o.signal.reason instanceof Error ? o.signal.reason : new Error('cancelled'));
      else reject(new Error(`cannot reach ${t.server}: ${e.message}; is latchkey-server running there?`, { cause: e }));
    });
    req.end(payload);
  });
}

/** The ApiError of an error answer: its code and message, or the bare HTTP status. */
export function apiError(a: ApiAnswer): ApiError {
  const err = (a.json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  return new ApiError(a.status, typeof err?.code === 'string' ? err.code : 'HTTP_ERROR', typeof err?.message === 'string' ? err.message : `HTTP ${a.status}`);
}

/** The JSON of a 2xx answer, else its ApiError thrown. */
export async function apiCall<T>(t: ApiTarget, method: string, path: string, o: Parameters<typeof apiRequest>[3] = {}): Promise<T> {
  const a = await apiRequest(t, method, path, o);
  if (a.status >= 400) throw apiError(a);
  return a.json as T;
}
