/**
 * Real gateways for end-to-end tests and benchmarks: nginx and HAProxy
 * (Debian's) run in the foreground on 127.0.0.1 with the files written by
 * `latchkey-server gateway config nginx|haproxy --out DIR`, and the small app
 * behind them that echoes the headers it got.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { cli, type Run } from './processes.js';

/** What the helpers need of a test context (node:test's, or a benchmark's own). */
export interface Hooks {
  after(fn: () => unknown): void;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `f` every 100 ms until it gives a value; throws after `ms`. */
export async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

export const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

export interface Daemon {
  proc: ChildProcess;
  log: () => string;
}

/** A long-running tool in the foreground; stopped after the test (SIGTERM, SIGKILL after 3 s). */
export function daemon(t: Hooks, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Daemon {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  t.after(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([gone, sleep(3000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return { proc, log: () => log };
}

/** The app behind the gateway: answers with the request headers it received, as JSON. */
export async function echoUpstream(t: Hooks): Promise<{ port: number; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const s = createHttpServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(req.headers));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => s.close(r)));
  const a = s.address();
  return { port: typeof a === 'object' && a ? a.port : 0, seen };
}

/**
 * A WSGI app behind the gateway (Python's wsgiref, as CGI maps headers: upper-case, `-` → `_`, values of
 * names that collide joined with commas in arrival order). Answers with the `HTTP_X_LATCHKEY_*` variables
 * it sees, as JSON: what an app reading `X-Latchkey-Device-Id` through CGI or WSGI would trust.
 */
export async function wsgiUpstream(t: Hooks, port: number): Promise<Daemon> {
  const app = [
    'import json, sys',
    'from wsgiref.simple_server import make_server, WSGIRequestHandler',
    'class Quiet(WSGIRequestHandler):',
    '    def log_message(self, *a): pass',
    'def app(env, start):',
    "    body = json.dumps({k: v for k, v in env.items() if k.startswith('HTTP_X_LATCHKEY')}).encode()",
    "    start('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])",
    '    return [body]',
    "make_server('127.0.0.1', int(sys.argv[1]), app, handler_class=Quiet).serve_forever()",
  ].join('\n');
  const d = daemon(t, 'python3', ['-c', app, String(port)]);
  await untilListening(d, 'the WSGI app', port);
  return d;
}

/** `latchkey-server gateway config KIND --listen 127.0.0.1:PORT --upstream http://127.0.0.1:UP --out DIR`. */
export function gatewayConfig(o: { dataDir: string; kind: 'nginx' | 'haproxy'; listenPort: number; upstreamPort: number; out: string }): Promise<Run> {
  return cli(['gateway', 'config', o.kind, '--listen', `127.0.0.1:${o.listenPort}`, '--upstream', `http://127.0.0.1:${o.upstreamPort}`, '--out', o.out, '--data-dir', o.dataDir]);
}

async function untilListening(d: Daemon, name: string, port: number): Promise<void> {
  await until(`${name} to listen`, async () => {
    if (await listening(port)) return true;
    if (d.proc.exitCode !== null) throw new Error(`${name} exited:\n${d.log()}`);
    return undefined;
  });
}

export interface Nginx extends Daemon {
  /** The main config written by `gateway config nginx --out`. */
  conf: string;
  /** The error log (level info): certificate verify errors, reloads. */
  errorLog: string;
  /** A shell command that reloads this nginx (for `gateway sync --reload`). */
  reload: string;
}

/** nginx in the foreground on the config that `gateway config nginx --out dir` wrote; resolved once it listens on `port`. */
export async function startNginx(t: Hooks, dir: string, port: number): Promise<Nginx> {
  const conf = join(dir, 'nginx.conf');
  const global = `pid ${dir}/nginx.pid; error_log ${dir}/error.log info;`;
  const d = daemon(t, 'nginx', ['-p', dir, '-c', conf, '-g', `daemon off; ${global}`]);
  await untilListening(d, 'nginx', port);
  return { ...d, conf, errorLog: join(dir, 'error.log'), reload: `nginx -p ${dir} -c ${conf} -g '${global}' -s reload` };
}

export interface Haproxy extends Daemon {
  /** The runtime API socket (for `gateway sync --haproxy-socket`). */
  socket: string;
  /** With `masterWorker`: a shell command that reloads this HAProxy (SIGUSR2 to the master). */
  reload: string;
}

/**
 * HAProxy in the foreground on the config that `gateway config haproxy --out dir` wrote; resolved once it
 * listens on `port`. `masterWorker` (-W) runs it as systemd does, so it can be reloaded.
 */
export async function startHaproxy(t: Hooks, dir: string, port: number, opts: { masterWorker?: boolean } = {}): Promise<Haproxy> {
  const d = daemon(t, 'haproxy', [...(opts.masterWorker ? ['-W'] : []), '-f', join(dir, 'haproxy.cfg'), '-db']);
  await untilListening(d, 'HAProxy', port);
  return { ...d, socket: join(dir, 'haproxy.sock'), reload: `kill -USR2 ${d.proc.pid}` };
}
