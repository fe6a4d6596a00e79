/**
 * The CLI's client for the admin API: HTTPS to the running server, trusting
 * the data dir's root (or --ca-file), with the admin token from
 * LATCHKEY_ADMIN_TOKEN or the data dir.
 */
import { readFileSync, existsSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { FILES } from './ca/ca-files.js';
import { CONFIG_FILE, localServerUrl } from './config/config-load.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface AdminClient {
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
}

export function adminClientFrom(opts: { dataDir?: string; server?: string; caFile?: string; env: NodeJS.ProcessEnv }): AdminClient {
  let server = opts.server ?? opts.env.LATCHKEY_SERVER;
  let token = opts.env.LATCHKEY_ADMIN_TOKEN;
  let ca: string | undefined = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
  if (opts.dataDir) {
    const cfg = join(opts.dataDir, CONFIG_FILE);
    if (!existsSync(cfg)) throw new UsageError(`no ${CONFIG_FILE} in ${opts.dataDir}; is it the server's --data-dir?`);
    if (!server) {
      // Talk to the local listener: the public URL may not resolve from here.
      server = localServerUrl(opts.dataDir);
    }
    token ??= existsSync(join(opts.dataDir, FILES.adminToken)) ? readFileSync(join(opts.dataDir, FILES.adminToken), 'utf8').trim() : undefined;
    ca ??= readFileSync(join(opts.dataDir, FILES.rootCert), 'utf8');
  }
  if (!server) throw new UsageError('which server? give --data-dir D (on the server host) or --server https://HOST:PORT');
  if (!token) throw new UsageError('no admin token: set LATCHKEY_ADMIN_TOKEN, or give --data-dir of the server');
  const base = new URL(server);
  return {
    call<T>(method: string, path: string, body?: unknown): Promise<T> {
      return new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        const req = request(
          {
            host: base.hostname.replace(/^\[|\]$/g, ''),
            port: base.port || 443,
            method,
            path,
            ...(ca ? { ca } : {}),
            headers: {
              authorization: `Bearer ${token}`,
              accept: 'application/json',
              ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
            },
            timeout: 30_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let json: unknown;
              try {
                json = text ? JSON.parse(text) : undefined;
              } catch {
                json = undefined;
              }
              if ((res.statusCode ?? 500) >= 400) {
                const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
                reject(new ApiError(res.statusCode ?? 500, err?.code ?? 'HTTP_ERROR', err?.message ?? `HTTP ${res.statusCode}`));
              } else resolve(json as T);
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`no answer from ${server} within 30 s`)));
        req.on('error', (e) => reject(new Error(`cannot reach ${server}: ${e.message}; is latchkey-server running there?`, { cause: e })));
        req.end(payload);
      });
    },
  };
}
