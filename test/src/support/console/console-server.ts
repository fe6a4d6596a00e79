/**
 * A real `latchkey-server` for the console's browser tests (no identity
 * provider, so the admin-token sign-in is on), with its bootstrap admin
 * token, and the server CLI on its data dir.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, initServer, startServer, type ServerProcess, type TestCtx } from '../processes.js';

export interface ConsoleServer {
  server: ServerProcess;
  dataDir: string;
  url: string;
  /** SHA-256 of the root, as `latchkey enroll --ca-fingerprint` takes it. */
  fingerprint: string;
  /** The bootstrap admin token `init` wrote into the data dir. */
  adminToken: string;
}

/** `init` + `start`; a waiting `latchkey enroll` asks again every second (approvalRetrySeconds). */
export async function startConsoleServer(t: TestCtx, config: Record<string, unknown> = {}): Promise<ConsoleServer> {
  const { dataDir, port, fingerprint } = await initServer(t, { config: { approvalRetrySeconds: 1, ...config } });
  const server = await startServer(t, dataDir, port);
  return { server, dataDir, url: server.url, fingerprint, adminToken: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() };
}

/** `latchkey-server ARGS --data-dir D`, which must succeed; its stdout. */
export async function serverCli(s: Pick<ConsoleServer, 'dataDir'>, args: string[]): Promise<string> {
  const r = await cli([...args, '--data-dir', s.dataDir]);
  if (r.code !== 0) throw new Error(`latchkey-server ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `latchkey-server ARGS --json --data-dir D`, parsed. */
export async function serverJson<T>(s: Pick<ConsoleServer, 'dataDir'>, args: string[]): Promise<T> {
  return JSON.parse(await serverCli(s, [...args, '--json'])) as T;
}

/** An enrollment token made with the CLI (`token create`). */
export async function enrollmentToken(s: ConsoleServer, group = 'default'): Promise<{ id: string; token: string }> {
  const r = await serverJson<{ token: string; info: { id: string } }>(s, ['token', 'create', '--group', group]);
  return { token: r.token, id: r.info.id };
}

/** An admin API token made with the CLI (`admin-token create`): its id and secret. */
export async function adminApiToken(s: ConsoleServer, name: string, role: 'viewer' | 'operator' | 'admin'): Promise<{ id: string; token: string }> {
  const r = await serverJson<{ token: string; info: { id: string } }>(s, ['admin-token', 'create', '--name', name, '--role', role]);
  return { token: r.token, id: r.info.id };
}
