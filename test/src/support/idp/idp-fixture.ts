/**
 * Starts the test identity provider (idp-process.ts) as a child process and
 * drives its control API. One real oidc-provider per call, on 127.0.0.1.
 *
 *   const idp = await startIdp({ accounts: [...] });
 *   t.after(() => idp.stop());
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROL_PREFIX, type IdpAccount, type IdpAccountPatch, type IdpClient, type IdpConfig, type IdpReadyLine, type IdTokenSigningAlg, type RotateKeysResponse } from './idp-types.js';

export type { IdpAccount, IdpAccountPatch, IdpClient, IdTokenSigningAlg, RotateKeysResponse } from './idp-types.js';

const IDP_PROCESS = fileURLToPath(new URL('./idp-process.js', import.meta.url));

export interface StartIdpOptions {
  /** Default: PUBLIC_CLIENT_ID (public) and CONFIDENTIAL_CLIENT_ID (with a random secret), both on http://127.0.0.1/callback. */
  clients?: IdpClient[];
  /** Default: defaultAccounts(). */
  accounts?: IdpAccount[];
  /** ttl.IdToken in seconds; default 300. */
  idTokenTtlSeconds?: number;
  /** Default RS256. */
  idTokenSigningAlg?: IdTokenSigningAlg;
  /** How long to wait for the ready line; default 20 s. */
  startTimeoutMs?: number;
}

export interface Idp {
  /** `http://127.0.0.1:PORT`; discovery at `${issuer}/.well-known/openid-configuration`. */
  issuer: string;
  clients: readonly IdpClient[];
  /** Creates (email and password needed) or updates an account; the next grant or refresh sees it. */
  setAccount(sub: string, patch: IdpAccountPatch): Promise<IdpAccount>;
  /** Deletes an account: its refresh tokens then fail with invalid_grant. */
  removeAccount(sub: string): Promise<void>;
  /** A new signing key signs from now on; keepOld keeps the previous ones in the JWKS. */
  rotateKeys(opts: { keepOld: boolean }): Promise<RotateKeysResponse>;
  /** The process's stderr so far. */
  log(): string;
  /** Kills the process and waits for it to exit; idempotent. */
  stop(): Promise<void>;
}

export const PUBLIC_CLIENT_ID = 'latchkey-public';
export const CONFIDENTIAL_CLIENT_ID = 'latchkey-confidential';
export const LOOPBACK_REDIRECT = 'http://127.0.0.1/callback';

/** alice: staff + latchkey-admins; bob: contractors; carol: latchkey-viewers. Password: `<name>-password`. */
export function defaultAccounts(): IdpAccount[] {
  const a = (name: string, groups: string[]): IdpAccount => ({ sub: `${name}-sub`, email: `${name}@example.com`, email_verified: true, groups, password: `${name}-password` });
  return [a('alice', ['staff', 'latchkey-admins']), a('bob', ['contractors']), a('carol', ['staff', 'latchkey-viewers'])];
}

export async function startIdp(opts: StartIdpOptions = {}): Promise<Idp> {
  const clients = opts.clients ?? [
    { client_id: PUBLIC_CLIENT_ID, redirect_uris: [LOOPBACK_REDIRECT] },
    { client_id: CONFIDENTIAL_CLIENT_ID, client_secret: randomBytes(16).toString('hex'), redirect_uris: [LOOPBACK_REDIRECT] },
  ];
  const config: IdpConfig = {
    controlSecret: randomBytes(24).toString('base64url'),
    clients,
    accounts: opts.accounts ?? defaultAccounts(),
    idTokenTtlSeconds: opts.idTokenTtlSeconds ?? 300,
    idTokenSigningAlg: opts.idTokenSigningAlg ?? 'RS256',
  };
  // The process reads its config once at start; the file goes when it is ready (or failed).
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-idp-'));
  const file = join(dir, 'idp.json');
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });

  // stdin stays open: the process exits when it closes, so it dies with us.
  const proc = spawn(process.execPath, [IDP_PROCESS, file], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const running = (): boolean => proc.exitCode === null && proc.signalCode === null;
  const stop = async (): Promise<void> => {
    if (!running()) return exited;
    proc.ref(); // unref'd once ready (below): waiting for its exit must keep us alive
    proc.kill('SIGKILL');
    await exited;
  };

  let issuer: string;
  try {
    issuer = await readyLine(proc, opts.startTimeoutMs ?? 20_000, () => stderr);
  } catch (e) {
    await stop();
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // A test that forgets stop() must not hang its file: the handles are
  // unref'd, and the process still ends when our end of its stdin closes.
  proc.unref();
  for (const s of [proc.stdin, proc.stdout, proc.stderr]) (s as unknown as { unref?: () => void }).unref?.();
  proc.stdout.resume();

  const control = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${issuer}${CONTROL_PREFIX}${path}`, {
      method,
      headers: { authorization: `Bearer ${config.controlSecret}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`idp control ${method} ${path}: HTTP ${res.status} ${text}`);
    return JSON.parse(text) as unknown;
  };

  return {
    issuer,
    clients,
    setAccount: async (sub, patch) => (await control('PUT', `/accounts/${encodeURIComponent(sub)}`, patch)) as IdpAccount,
    removeAccount: async (sub) => void (await control('DELETE', `/accounts/${encodeURIComponent(sub)}`)),
    rotateKeys: async ({ keepOld }) => (await control('POST', '/rotate-keys', { keepOld })) as RotateKeysResponse,
    log: () => stderr,
    stop,
  };
}

/** The issuer from the process's ready line; rejects with its stderr if it exits or stays silent. */
function readyLine(proc: ReturnType<typeof spawn>, timeoutMs: number, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`test identity provider ${why}\nstdout: ${out}\nstderr: ${stderr()}`));
    };
    const onData = (d: Buffer): void => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      cleanup();
      try {
        const line = JSON.parse(out.slice(0, nl)) as IdpReadyLine;
        if (line.ready !== true || typeof line.issuer !== 'string') throw new Error('not a ready line');
        resolve(line.issuer);
      } catch (e) {
        reject(new Error(`test identity provider printed ${JSON.stringify(out.slice(0, nl))} instead of its ready line (${(e as Error).message})\nstderr: ${stderr()}`));
      }
    };
    const onExit = (code: number | null, signal: string | null): void => fail(`exited (${code ?? signal}) before it was ready`);
    const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      proc.stdout?.off('data', onData);
      proc.off('exit', onExit);
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', onExit);
  });
}
