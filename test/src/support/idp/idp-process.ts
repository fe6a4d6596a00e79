/**
 * The test identity provider as its own process:
 *   node test/dist/support/idp/idp-process.js CONFIG.json
 * A real oidc-provider on 127.0.0.1 (port chosen by the system), with the
 * login / consent pages of idp-interactions.ts and a control API for the
 * test under /__control (bearer secret from the config). Prints one
 * IdpReadyLine on stdout when it listens; exits when its stdin closes, so it
 * never outlives the test process that started it.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import type Provider from 'oidc-provider';
import type { JWK } from 'oidc-provider';
import { createSharedMemoryAdapter } from './idp-adapter.js';
import { handleInteraction, INTERACTION_PREFIX } from './idp-interactions.js';
import { buildProvider } from './idp-provider.js';
import { CONTROL_PREFIX, type IdpAccount, type IdpAccountPatch, type IdpConfig, type IdpReadyLine, type IdTokenSigningAlg, type RotateKeysRequest, type RotateKeysResponse } from './idp-types.js';

let keyCount = 0;
async function newSigningKey(alg: IdTokenSigningAlg): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  keyCount += 1;
  return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid: `key-${keyCount}-${randomBytes(4).toString('hex')}` } as JWK;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

/** Applies a PUT body to the account table; throws a message for a 400. */
function putAccount(accounts: Map<string, IdpAccount>, sub: string, patch: IdpAccountPatch): IdpAccount {
  const prev = accounts.get(sub);
  const next = { ...prev, ...patch, sub } as Partial<IdpAccount>;
  if (typeof next.email !== 'string' || typeof next.password !== 'string') throw new Error(`account ${sub} is new: give email and password`);
  if (patch.groups !== undefined && !(Array.isArray(patch.groups) && patch.groups.every((g) => typeof g === 'string'))) throw new Error('groups must be an array of strings');
  const a: IdpAccount = { sub, email: next.email, email_verified: next.email_verified ?? true, groups: next.groups ?? [], password: next.password, disabled: next.disabled ?? false };
  accounts.set(sub, a);
  return a;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: idp-process.js CONFIG.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as IdpConfig;
  const accounts = new Map(config.accounts.map((a) => [a.sub, { ...a }]));
  const adapter = createSharedMemoryAdapter();
  const cookieKeys = [randomBytes(32).toString('base64url')];
  let keys = [await newSigningKey(config.idTokenSigningAlg)];
  const secret = Buffer.from(`Bearer ${config.controlSecret}`);

  let issuer = '';
  let provider: Provider;
  let callback: ReturnType<Provider['callback']>;
  const swap = (): void => {
    provider = buildProvider({ issuer, config, accounts, adapter, cookieKeys, keys });
    provider.on('server_error', (_ctx, err) => console.error('idp server_error:', err));
    callback = provider.callback();
  };

  async function control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== secret.length || !timingSafeEqual(given, secret)) return json(res, 401, { error: 'control API: wrong or missing bearer secret' });
    const account = /^\/accounts\/([^/]+)$/.exec(path);
    if (account?.[1] && req.method === 'PUT') {
      try {
        return json(res, 200, putAccount(accounts, decodeURIComponent(account[1]), (await readJson(req)) as IdpAccountPatch));
      } catch (e) {
        return json(res, 400, { error: (e as Error).message });
      }
    }
    if (account?.[1] && req.method === 'DELETE') {
      return accounts.delete(decodeURIComponent(account[1])) ? json(res, 200, {}) : json(res, 404, { error: 'no such account' });
    }
    if (path === '/rotate-keys' && req.method === 'POST') {
      const { keepOld } = (await readJson(req)) as RotateKeysRequest;
      // The new key signs from now on. keepOld: the previous keys stay in the
      // JWKS (a normal rotation: tokens already issued still verify);
      // otherwise they are dropped at once (tokens signed before no longer
      // verify against the published JWKS).
      keys = [await newSigningKey(config.idTokenSigningAlg), ...(keepOld ? keys : [])];
      swap();
      const body: RotateKeysResponse = { kid: keys[0]!.kid!, published: keys.map((k) => k.kid!) };
      return json(res, 200, body);
    }
    return json(res, 404, { error: `no control route ${req.method} ${path}` });
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const handled = path.startsWith(`${CONTROL_PREFIX}/`)
      ? control(req, res, path.slice(CONTROL_PREFIX.length))
      : path.startsWith(INTERACTION_PREFIX)
        ? handleInteraction(provider, accounts, req, res)
        : callback(req, res);
    Promise.resolve(handled).catch((e: unknown) => {
      console.error('idp request failed:', e);
      if (!res.headersSent) json(res, 500, { error: 'server_error' });
      else res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  swap();
  // oidc-provider checks static client metadata on first use; check it now so
  // a bad client fails the start (with the reason on stderr), not a test later.
  for (const c of config.clients) await provider!.Client.find(c.client_id);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  const ready: IdpReadyLine = { ready: true, issuer };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((e: unknown) => {
  // oidc-provider's errors keep the useful part in error_description
  const detail = (e as { error_description?: string }).error_description;
  console.error(`idp failed to start${detail ? ` (${detail})` : ''}:`, e);
  process.exit(1);
});
