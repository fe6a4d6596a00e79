/**
 * The real effects of `gateway sync` (gateway-sync.ts): HTTPS to the
 * server, the `/v1/events` WebSocket, the atomic CRL file, the reload
 * command and HAProxy's runtime API over its UNIX socket.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:https';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { CRL_PATHS, GatewayEvent, MAX_WS_MESSAGE_BYTES, PATHS, WS_CLOSE_CODES, type CrlIssuer } from '@latchkey/protocol';
import WebSocket from 'ws';
import { crlToPem, pemDecodeAll } from '@latchkey/pki';
import { writeFileAtomic } from '../util/atomic-write.js';
import { GatewayAuthError, describeCrl, runGatewaySync, syncOnce, type EventStream, type EventStreamHandlers, type GatewaySyncEffects, type SyncStatus } from './gateway-sync.js';

const checkEvent = TypeCompiler.Compile(GatewayEvent);

export interface GatewaySyncConfig {
  server: string;
  token: string;
  /** PEM of the root the server's TLS certificate chains to; system CAs when absent. */
  ca?: string;
  crlFile: string;
  reload?: string;
  haproxySocket?: string;
  /** JSON SyncStatus, replaced atomically after every attempt, for monitoring. */
  statusFile?: string;
  pingSeconds?: number;
  log: (line: string, level?: 'error' | 'warn') => void;
}

/** GET of a CRL's PEM; undefined on 404 (the server holds no key for that CA). */
export function httpsGetCrl(server: string, ca: string | undefined, issuer: CrlIssuer, timeoutMs = 10_000): Promise<string | undefined> {
  const url = new URL(CRL_PATHS[issuer].pem, server);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', ...(ca ? { ca } : {}), headers: { accept: 'application/x-pem-file', 'cache-control': 'no-cache' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 404) resolve(undefined);
        // The CRLs are public; a 401/403 comes from something in front of the server that wants credentials.
        else if (res.statusCode === 401 || res.statusCode === 403) reject(new GatewayAuthError(`GET ${url.pathname}: HTTP ${res.statusCode}`));
        else if (res.statusCode !== 200) reject(new Error(`GET ${url.pathname}: HTTP ${res.statusCode}`));
        else resolve(body);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (e) => reject(new Error(`cannot reach ${server}: ${e.message}`)));
    req.end();
  });
}

/** Runs the reload command through `sh -c`; fails with its stderr on a non-zero exit. */
export function runReload(cmd: string, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`reload command failed to start: ${e.message}`));
    });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`reload command exited ${code ?? signal}: ${err.trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
}

/** One command on HAProxy's stats socket (non-interactive mode: one command per connection, the answer ends at close). */
export function haproxyCommand(socketPath: string, command: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    const chunks: Buffer[] = [];
    s.setTimeout(timeoutMs, () => s.destroy(new Error(`no answer from HAProxy on ${socketPath} within ${timeoutMs / 1000} s`)));
    s.on('connect', () => s.write(command));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (e) => reject(new Error(`HAProxy runtime API at ${socketPath}: ${e.message}`)));
    s.on('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/**
 * The HAProxy (2.4+) runtime API payload that replaces a loaded CRL file:
 * `set ssl crl-file <file> <<` then the PEM lines and an empty line (the end
 * of a multi-line payload). The whole command must fit in `tune.bufsize`.
 */
export function haproxySetCrlCommand(file: string, pem: string): string {
  const lines = pem.split(/\r?\n/).filter((l) => l.trim() !== '');
  return `set ssl crl-file ${file} <<\n${lines.join('\n')}\n\n`;
}

/** HAProxy's default tune.bufsize: a longer command is cut off (the connection is reset). */
const HAPROXY_DEFAULT_BUFSIZE = 16384;

export async function haproxyUpdateCrl(socketPath: string, file: string, pem: string): Promise<void> {
  const command = haproxySetCrlCommand(file, pem);
  const hint = command.length > HAPROXY_DEFAULT_BUFSIZE - 1024 ? ` (the command is ${command.length} bytes: tune.bufsize in haproxy.cfg must be larger)` : '';
  let set: string;
  try {
    set = await haproxyCommand(socketPath, command);
  } catch (e) {
    throw new Error(`${(e as Error).message}${hint}`, { cause: e });
  }
  // HAProxy 2.6 answers "transaction created for CRL <file>!" (or "updated" for an open transaction).
  if (!/transaction (created|updated)/i.test(set)) throw new Error(`HAProxy refused set ssl crl-file ${file}: ${set.trim() || 'empty answer'}${hint}`);
  const commit = await haproxyCommand(socketPath, `commit ssl crl-file ${file}\n`);
  if (!/Success!/.test(commit)) {
    await haproxyCommand(socketPath, `abort ssl crl-file ${file}\n`).catch(() => undefined);
    throw new Error(`HAProxy refused commit ssl crl-file ${file}: ${commit.trim() || 'empty answer'}`);
  }
}

/** The "Last Update" (thisUpdate, to the second) of the first CRL HAProxy holds for `file`: what it really uses. */
export async function haproxyCrlLastUpdate(socketPath: string, file: string): Promise<Date | undefined> {
  const out = await haproxyCommand(socketPath, `show ssl crl-file ${file}:1\n`);
  const m = /^Last Update: (.+ GMT)\s*$/m.exec(out);
  const d = m ? new Date(m[1]!.replace(/\s+/g, ' ')) : undefined;
  return d && !Number.isNaN(d.getTime()) ? d : undefined;
}

const sameSecond = (a: Date | undefined, b: Date): boolean => !!a && Math.floor(a.getTime() / 1000) === Math.floor(b.getTime() / 1000);

/**
 * Makes HAProxy use `pem` (already written to `file`): over the runtime API, checked by reading back what
 * HAProxy holds; when the runtime API cannot take it (a CRL bigger than tune.bufsize) and a reload command
 * is given, by reloading HAProxy (which reads the file) and checking again. Throws, saying so, when HAProxy
 * is left on its previous CRL.
 */
export async function haproxyApplyCrl(o: { socket: string; file: string; reload?: string; log: GatewaySyncConfig['log']; reloadWaitMs?: number }, pem: string): Promise<void> {
  const first = pemDecodeAll(pem)[0];
  if (!first) throw new Error('no CRL to apply');
  const want = describeCrl(crlToPem(first.der)).thisUpdate;
  let why: string;
  try {
    await haproxyUpdateCrl(o.socket, o.file, pem);
    const got = await haproxyCrlLastUpdate(o.socket, o.file);
    if (sameSecond(got, want)) return;
    why = `after the update HAProxy shows the CRL of ${got?.toISOString() ?? 'nothing'}, not ${want.toISOString()}`;
  } catch (e) {
    why = (e as Error).message;
  }
  if (!o.reload) {
    throw new Error(
      `HAProxy did not take the new CRL over its runtime API (${why}), so it still checks devices against its previous CRL; raise tune.bufsize in haproxy.cfg, or give gateway sync --reload "CMD" (e.g. "systemctl reload haproxy") to reload HAProxy with ${o.file} when this happens`,
    );
  }
  o.log(`HAProxy's runtime API did not take the new CRL (${why}); reloading HAProxy, which reads ${o.file}`, 'warn');
  await runReload(o.reload);
  // A reload is asynchronous (a new worker starts and reads the file): wait until it shows the new CRL.
  const end = Date.now() + (o.reloadWaitMs ?? 30_000);
  let got: Date | undefined;
  for (;;) {
    got = await haproxyCrlLastUpdate(o.socket, o.file).catch(() => undefined);
    if (sameSecond(got, want)) return;
    if (Date.now() > end) break;
    await sleep(200);
  }
  throw new Error(`after the reload command HAProxy still shows the CRL of ${got?.toISOString() ?? 'nothing'}, not the new one of ${want.toISOString()}: it is left on its previous CRL`);
}

/** Opens the event stream once to check the gateway token (for --once): resolves when the server lets it in. */
export function checkGatewayToken(cfg: Pick<GatewaySyncConfig, 'server' | 'token' | 'ca'>): Promise<void> {
  return new Promise((resolve, reject) => {
    let opened = false;
    const s = openEventStream(cfg, {
      onOpen() {
        opened = true;
        s.close();
        resolve();
      },
      onEvent: () => undefined,
      onClose(why, authRefused) {
        if (opened) return;
        reject(authRefused ? new GatewayAuthError(`event stream: ${why}`) : new Error(`cannot open the event stream of ${cfg.server} to check the gateway token: ${why}`));
      },
    });
  });
}

/** `/v1/events` over `ws`, with pings: a server silent for two ping intervals is given up on. */
export function openEventStream(cfg: Pick<GatewaySyncConfig, 'server' | 'token' | 'ca' | 'pingSeconds'>, h: EventStreamHandlers): EventStream {
  const url = new URL(PATHS.events, cfg.server);
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${cfg.token}` }, maxPayload: MAX_WS_MESSAGE_BYTES, handshakeTimeout: 10_000, ...(cfg.ca ? { ca: cfg.ca } : {}) });
  let closed = false;
  let alive = true;
  const finish = (why: string, authRefused = false): void => {
    if (closed) return;
    closed = true;
    clearInterval(ping);
    h.onClose(why, authRefused);
  };
  const ping = setInterval(() => {
    if (!alive) {
      ws.terminate();
      finish('no answer to ping');
      return;
    }
    alive = false;
    if (ws.readyState === ws.OPEN) ws.ping();
  }, (cfg.pingSeconds ?? 15) * 1000);
  ping.unref();
  ws.on('open', () => h.onOpen());
  ws.on('pong', () => (alive = true));
  ws.on('ping', () => (alive = true));
  ws.on('unexpected-response', (_req, res) => {
    const authRefused = res.statusCode === 401 || res.statusCode === 403;
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      let msg = `HTTP ${res.statusCode}`;
      try {
        const e = (JSON.parse(Buffer.concat(chunks).toString()) as { error?: { code?: string; message?: string } }).error;
        if (e?.message) msg += `: ${e.message}`;
      } catch {
        /* not JSON */
      }
      ws.terminate();
      finish(msg, authRefused);
    });
  });
  ws.on('message', (data, isBinary) => {
    alive = true;
    let m: unknown;
    try {
      if (isBinary) throw new Error('binary');
      m = JSON.parse(data.toString());
    } catch {
      ws.close(WS_CLOSE_CODES.protocolError, 'messages are JSON text frames');
      return;
    }
    if (checkEvent.Check(m)) h.onEvent(m);
  });
  ws.on('close', (code, reason) => finish(`closed ${code}${reason.length ? ` ${reason.toString()}` : ''}`));
  ws.on('error', (e) => {
    ws.terminate();
    finish(e.message);
  });
  return {
    subscribe(since) {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'subscribe', ...(since ? { since } : {}) }));
    },
    close() {
      ws.close(1000, 'gateway sync stopping');
    },
  };
}

export function nodeGatewaySyncEffects(cfg: GatewaySyncConfig): GatewaySyncEffects {
  return {
    fetchCrl: (issuer) => httpsGetCrl(cfg.server, cfg.ca, issuer),
    writeCrlFile: (pem) => writeFileAtomic(cfg.crlFile, pem),
    async apply(pem) {
      if (cfg.haproxySocket) await haproxyApplyCrl({ socket: cfg.haproxySocket, file: cfg.crlFile, log: cfg.log, ...(cfg.reload ? { reload: cfg.reload } : {}) }, pem);
      else if (cfg.reload) await runReload(cfg.reload);
    },
    openStream: (h) => openEventStream(cfg, h),
    sleep: (ms, signal) => sleep(ms, undefined, { signal }),
    random: Math.random,
    log: cfg.log,
    ...(cfg.statusFile
      ? {
          status: (s: SyncStatus) => {
            writeFileAtomic(cfg.statusFile!, `${JSON.stringify(s, null, 2)}\n`).catch((e: Error) => cfg.log(`cannot write the status file ${cfg.statusFile}: ${e.message}`, 'error'));
          },
        }
      : {}),
  };
}

/** `latchkey-server gateway sync`: one sync (`once`), or the long-running loop until SIGTERM/SIGINT. */
export async function gatewaySyncCommand(cfg: GatewaySyncConfig, opts: { once: boolean; resyncSeconds: number }): Promise<number> {
  const fx = nodeGatewaySyncEffects(cfg);
  if (opts.once) {
    // The CRLs are public: without this, a wrong token would go unnoticed until the live sync.
    const state: { numbers: Partial<Record<CrlIssuer, bigint>> } = { numbers: {} };
    const report = async (s: Pick<SyncStatus, 'state' | 'error'>): Promise<void> => {
      const at = new Date().toISOString();
      const applied = Object.fromEntries(Object.entries(state.numbers).map(([k, v]) => [k, String(v)]));
      if (cfg.statusFile) await writeFileAtomic(cfg.statusFile, `${JSON.stringify({ ...s, at, applied, ...(s.state === 'ok' ? { lastSuccessAt: at } : { failingSince: at }) }, null, 2)}\n`);
    };
    try {
      await checkGatewayToken(cfg);
      await syncOnce(fx, state, { force: true, why: '--once' });
    } catch (e) {
      await report({ state: e instanceof GatewayAuthError ? 'stopped' : 'failing', error: (e as Error).message });
      throw e;
    }
    await report({ state: 'ok' });
    return 0;
  }
  const sync = runGatewaySync(fx, { resyncSeconds: opts.resyncSeconds });
  const stop = (sig: string): void => {
    cfg.log(`${sig}: stopping`);
    sync.stop();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  await sync.done;
  return 0;
}
