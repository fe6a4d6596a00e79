/**
 * Real processes for end-to-end tests: `latchkey-server` started from its
 * built CLI, and third-party tools (openssl, curl) run without a shell.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SERVER_CLI = join(ROOT, 'server/dist/cli.js');
export const AGENT_CLI = join(ROOT, 'agent/dist/cli.js');

export interface TestCtx {
  after(fn: () => unknown): void;
  skip(message?: string): void;
}

export function tempDir(t: TestCtx, prefix = 'latchkey-e2e-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Skips (or, under LATCHKEY_REQUIRE_ALL=1, fails) when a system tool is missing. */
export function requireTools(t: TestCtx, ...tools: string[]): boolean {
  const missing = tools.filter((x) => spawnSync('sh', ['-c', `command -v ${x}`]).status !== 0);
  if (missing.length === 0) return true;
  skipOrRequire(t, `missing ${missing.join(', ')} (apt-get install ${missing.join(' ')})`);
  return false;
}

/** Skips the test with `msg`, or fails it when LATCHKEY_REQUIRE_ALL=1 (CI: nothing may be skipped). */
export function skipOrRequire(t: TestCtx, msg: string): void {
  if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(`${msg}; required because LATCHKEY_REQUIRE_ALL=1`);
  t.skip(msg);
}

export interface Run {
  code: number | null;
  /** The signal that ended the process, if one did. */
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input);
  });
}

export async function mustRun(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<Run> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

export const cli = (args: string[], opts: Parameters<typeof run>[2] = {}): Promise<Run> => run(process.execPath, [SERVER_CLI, ...args], opts);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

const PG_URL = process.env.LATCHKEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh PostgreSQL database dropped after the test; undefined (skipped) when PostgreSQL is absent. */
export async function freshPgDatabase(t: TestCtx): Promise<string | undefined> {
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (e) {
    const msg = `PostgreSQL is not reachable at ${PG_URL} (${(e as Error).message}); set LATCHKEY_TEST_PG_URL`;
    if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(`${msg}; required because LATCHKEY_REQUIRE_ALL=1`, { cause: e });
    t.skip(msg);
    return undefined;
  }
  const name = `latchkey_e2e_${crypto.randomBytes(6).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  t.after(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  });
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface ServerProcess {
  dataDir: string;
  port: number;
  url: string;
  proc: ChildProcess;
  log: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `latchkey-server init` into a temp dir; `config` is merged into its config.json. */
export async function initServer(t: TestCtx, opts: { databaseUrl?: string; config?: Record<string, unknown>; port?: number } = {}): Promise<{ dataDir: string; port: number; fingerprint: string }> {
  const dataDir = join(tempDir(t), 'data');
  const port = opts.port ?? (await freePort());
  const r = await cli(['init', '--data-dir', dataDir, '--org', 'Example Corp', '--url', `https://127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`, '--json', ...(opts.databaseUrl ? ['--database-url', opts.databaseUrl] : [])]);
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
  if (opts.config) {
    const file = join(dataDir, 'config.json');
    writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), ...opts.config }));
  }
  return { dataDir, port, fingerprint: (JSON.parse(r.stdout) as { rootFingerprint: string }).rootFingerprint };
}

/**
 * `latchkey-server start`, resolved once it listens. Stopped (SIGKILL) after the test.
 * With `openFiles`, the process runs under that open-file limit (`ulimit -n`); `env` is added to its environment.
 */
export function startServer(t: TestCtx, dataDir: string, port: number, opts: { openFiles?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    const argv = [SERVER_CLI, 'start', '--data-dir', dataDir];
    const env = { ...process.env, LATCHKEY_LOG_LEVEL: 'warn', ...opts.env };
    const proc = opts.openFiles
      ? spawn('sh', ['-c', `ulimit -n ${opts.openFiles} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env })
      : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let log = '';
    let done = false;
    const onData = (d: Buffer): void => {
      log += d.toString();
      if (!done && /latchkey-server listening on/.test(log)) {
        done = true;
        resolve(sp);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    const exited = new Promise<number | null>((r) => proc.on('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
    proc.on('exit', (code) => {
      if (!done) {
        done = true;
        reject(new Error(`latchkey-server exited ${code} before listening:\n${log}`));
      }
    });
    const sp: ServerProcess = {
      dataDir,
      port,
      url: `https://127.0.0.1:${port}`,
      proc,
      log: () => log,
      async stop(signal = 'SIGTERM') {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
        return exited;
      },
    };
    t.after(() => sp.stop('SIGKILL'));
    setTimeout(() => {
      if (!done) {
        done = true;
        proc.kill('SIGKILL');
        reject(new Error(`latchkey-server did not start within 20 s:\n${log}`));
      }
    }, 20_000).unref();
  });
}
