/**
 * `pnpm bench:channels`: agent control channels (`wss://…/v1/agent`) held by
 * one latchkey-server process (SQLite) on this machine — issue 5.
 *  - N devices get real certificates through EST simpleenroll (one
 *    multi-use token, one P-256 key reused for every CSR: a load generator's
 *    shortcut; nothing is cached between runs);
 *  - client processes (channel-bench-client.ts), each with its own source
 *    addresses 127.0.0.2… so no (source, destination) pair runs out of
 *    ephemeral ports, open N channels as the agent does (TLS with the device
 *    certificate, hello, status, heartbeats at the server's interval);
 *  - figures: connections established of asked, connect rate, server RSS and
 *    V8 heap before/after (per connection), server CPU and event-loop delay
 *    while idle with N connected, revocation push latency (K devices, one at
 *    a time), renew-now latency, and the fan-out of a group policy change
 *    (`PUT /v1/admin/groups/:name` → `policy` to every connected device).
 * The server runs unchanged, with a probe preloaded (channel-bench-probe.ts:
 * event-loop delay, heap after GC, on SIGUSR2). Figures are printed, never
 * asserted.
 *
 * Environment: BENCH_CONNECTIONS (20000), BENCH_WORKERS (4), BENCH_INFLIGHT
 * (handshakes in flight, all workers, 128), BENCH_HEARTBEAT_SECONDS (the
 * server's agentHeartbeatSeconds, 30), BENCH_IDLE_SECONDS (60),
 * BENCH_REVOCATIONS (K, 20), BENCH_FANOUT_ROUNDS (3),
 * BENCH_ENROLL_CONCURRENCY (16), BENCH_TIMEOUT (seconds for the whole run,
 * 1200), BENCH_KEEP_DIR=1 (keep the temp dir, server log included),
 * BENCH_PROFILE_DIR (write V8 CPU profiles of the server processes there).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request, type RequestOptions } from 'node:https';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { certificateToPem, createCsr, decodeCertsOnly, nodeSigner, parseCertificate } from '@latchkey/pki';
import { now, type ToClient, type ToParent, type WorkerStats } from './channel-bench-ipc.js';
import { cli, freePort, SERVER_CLI } from '../support/processes.js';

const env = process.env;
const N = Math.max(1, Math.min(100_000, Number(env.BENCH_CONNECTIONS ?? 20_000)));
const WORKERS = Math.max(1, Number(env.BENCH_WORKERS ?? 4));
const INFLIGHT = Math.max(WORKERS, Number(env.BENCH_INFLIGHT ?? 128));
const HEARTBEAT = Number(env.BENCH_HEARTBEAT_SECONDS ?? 30);
const IDLE = Number(env.BENCH_IDLE_SECONDS ?? 60);
const K = Number(env.BENCH_REVOCATIONS ?? 20);
const ROUNDS = Number(env.BENCH_FANOUT_ROUNDS ?? 3);
const ENROLL_CONCURRENCY = Number(env.BENCH_ENROLL_CONCURRENCY ?? 16);
const TIMEOUT = Number(env.BENCH_TIMEOUT ?? 1200);
const TARGET = 20_000;
const GROUP = 'bench';

// ------------------------------------------------------------------ helpers
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const quantile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(1)} ms` : 'n/a');
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const sh = (cmd: string): string => spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }).stdout.trim();
const lat = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? `p50 ${ms(quantile(s, 0.5))}  p99 ${ms(quantile(s, 0.99))}  max ${ms(s[s.length - 1]!)}  (n=${s.length})` : 'n/a (no samples)';
};

/** A /proc figure, NaN once the process is gone. */
const proc = <T>(f: () => T): T | number => {
  try {
    return f();
  } catch {
    return NaN;
  }
};
/** utime + stime of a process in ms (Linux). */
const cpuMs = (pid: number): number =>
  proc(() => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  });
const vmRss = (pid: number): number => proc(() => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024);
const openFds = (pid: number): number => proc(() => readdirSync(`/proc/${pid}/fd`).length);
const fdLimit = (pid: number): string => String(proc(() => /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1] ?? '?'));
/** Kernel memory of all TCP sockets on the machine (both ends of every connection), /proc/net/sockstat. */
const tcpKernelBytes = (): number => Number(/TCP:.* mem (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? NaN) * 4096;
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

// ------------------------------------------------------------------ state for cleanup and the summary
const dir = mkdtempSync(join(tmpdir(), 'latchkey-channel-bench-'));
let server: ChildProcess | undefined;
let serverLog = '';
let stoppingServer = false;
const workers: ChildProcess[] = [];
let phase = 'start';
const lines: string[] = [];
const fig = (line: string): void => {
  lines.push(line);
};

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const w of workers) {
      if (w.connected) w.send({ cmd: 'stop' } satisfies ToClient, () => undefined);
    }
    await Promise.race([Promise.all(workers.map((w) => (w.exitCode !== null || w.signalCode !== null ? undefined : new Promise((r) => w.once('exit', r))))), sleep(3000)]);
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    if (server && server.exitCode === null && server.signalCode === null) {
      const s = server;
      const exited = new Promise((r) => s.once('exit', r));
      s.kill('SIGTERM');
      if ((await Promise.race([exited.then(() => 'exited'), sleep(15_000)])) !== 'exited') s.kill('SIGKILL');
    }
    if (env.BENCH_KEEP_DIR === '1') {
      writeFileSync(join(dir, 'server.log'), serverLog);
      console.log(`(kept ${dir})`);
    } else rmSync(dir, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    console.log(`\n${sig} during ${phase}: stopping the clients and the server`);
    void cleanup().then(() => process.exit(130));
  });
}
const deadline = setTimeout(() => {
  console.log(`\nBENCH_TIMEOUT (${TIMEOUT} s) reached during ${phase}; what was measured so far:`);
  printSummary();
  void cleanup().then(() => process.exit(1));
}, TIMEOUT * 1000);
deadline.unref();

// ------------------------------------------------------------------ server process
interface Probe {
  loop: { p50: number; p99: number; max: number };
  gcMs: number;
  gc: boolean;
  mem: NodeJS.MemoryUsage;
  handles?: number;
}
const probeWaiters: ((p: Probe) => void)[] = [];

const NO_PROBE: Probe = { loop: { p50: NaN, p99: NaN, max: NaN }, gcMs: NaN, gc: false, mem: { rss: NaN, heapTotal: NaN, heapUsed: NaN, external: NaN, arrayBuffers: NaN } };

/** Event-loop delay since the last probe, then memory after a full GC, from inside the server (NaN figures if it does not answer). */
function probe(): Promise<Probe> {
  return new Promise((resolve) => {
    const waiter = (p: Probe): void => {
      clearTimeout(t);
      resolve(p);
    };
    const t = setTimeout(() => {
      probeWaiters.splice(probeWaiters.indexOf(waiter), 1);
      console.log('  (the server did not answer the probe within 30 s)');
      resolve(NO_PROBE);
    }, 30_000);
    probeWaiters.push(waiter);
    server!.kill('SIGUSR2');
  });
}

function startServerProcess(dataDir: string, nofile: number): Promise<ChildProcess> {
  const probeJs = new URL('./channel-bench-probe.js', import.meta.url).href;
  const profile = env.BENCH_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', env.BENCH_PROFILE_DIR] : [];
  const node = [process.execPath, '--expose-gc', ...profile, '--import', probeJs, SERVER_CLI, 'start', '--data-dir', dataDir];
  const hasPrlimit = spawnSync('sh', ['-c', 'command -v prlimit']).status === 0;
  const [cmd, ...args] = hasPrlimit ? ['prlimit', `--nofile=${nofile}:${nofile}`, '--', ...node] : node;
  const p = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  server = p;
  p.on('exit', (code, sig) => {
    if (!cleaning && !stoppingServer) console.log(`\nlatchkey-server exited (${code ?? sig}) during ${phase}; last log lines:\n${serverLog.slice(-3000)}`);
  });
  let buf = '';
  const onData = (d: Buffer): void => {
    const s = d.toString();
    serverLog += s;
    if (serverLog.length > 4_000_000) serverLog = serverLog.slice(-2_000_000);
    buf += s;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const m = /CHANNEL-BENCH-PROBE (.*)$/.exec(line);
      if (m) probeWaiters.shift()?.(JSON.parse(m[1]!) as Probe);
    }
  };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  p.stdin.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`latchkey-server did not start within 30 s:\n${serverLog}`)), 30_000);
    const check = (): void => {
      if (/latchkey-server listening on/.test(serverLog)) {
        clearTimeout(t);
        p.stdout.off('data', check);
        p.stderr.off('data', check);
        resolve(p);
      }
    };
    p.stdout.on('data', check);
    p.stderr.on('data', check);
    p.once('exit', (code, sig) => {
      clearTimeout(t);
      reject(new Error(`latchkey-server exited (${code ?? sig}) during ${phase}:\n${serverLog.slice(-4000)}`));
    });
  });
}

// ------------------------------------------------------------------ HTTPS calls (admin API and EST)
function call(o: { agent: Agent; port: number; method: string; path: string; body?: Buffer | string; headers?: Record<string, string> }): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: o.port, method: o.method, path: o.path, agent: o.agent, headers: o.headers } as RequestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`${o.method} ${o.path}: no answer within 30 s`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

// ------------------------------------------------------------------ the run
const summary: Record<string, string> = {};
function printSummary(): void {
  console.log('\n================ summary ================');
  for (const l of lines) console.log(l);
  for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(34)} ${v}`);
}

const sumStats = (all: WorkerStats[]): WorkerStats => {
  const t: WorkerStats = { open: 0, failed: 0, inflight: 0, heartbeatsSent: 0, acks: 0, policiesAtWelcome: 0, unexpectedCloses: {}, failures: {} };
  for (const s of all) {
    t.open += s.open;
    t.failed += s.failed;
    t.inflight += s.inflight;
    t.heartbeatsSent += s.heartbeatsSent;
    t.acks += s.acks;
    t.policiesAtWelcome += s.policiesAtWelcome;
    for (const [k, v] of Object.entries(s.unexpectedCloses)) t.unexpectedCloses[k] = (t.unexpectedCloses[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.failures)) t.failures[k] = (t.failures[k] ?? 0) + v;
  }
  return t;
};
const fmtCounts = (o: Record<string, number>): string => Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';

async function main(): Promise<void> {
  const hardNofile = Number(sh('ulimit -Hn')) || Infinity;
  const [portLo, portHi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`);
  const canRaiseNofile = (capEff & (1n << 24n)) !== 0n; // CAP_SYS_RESOURCE
  const wanted = N + 1024;
  const nofile = canRaiseNofile ? Math.max(wanted, 1024) : Math.min(wanted, hardNofile);
  console.log(`latchkey bench:channels — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} cores), ${mib(totalmem())} RAM (${mib(freemem())} free), load ${load()}`);
  console.log(`asked: ${int(N)} connections (target >= ${int(TARGET)}), ${WORKERS} client processes, ${INFLIGHT} handshakes in flight, heartbeat ${HEARTBEAT} s, idle window ${IDLE} s, K=${K}, ${ROUNDS} fan-out rounds, BENCH_TIMEOUT ${TIMEOUT} s`);
  console.log(`fd limit: this shell ${sh('ulimit -n')} (hard ${hardNofile === Infinity ? 'unlimited' : hardNofile}); server started with RLIMIT_NOFILE ${nofile}${canRaiseNofile ? '' : ' (no CAP_SYS_RESOURCE here: cannot go above the hard limit)'}; ephemeral ports ${portLo}-${portHi}; somaxconn ${sh('cat /proc/sys/net/core/somaxconn')}`);
  if (nofile < wanted) {
    console.log(`NOTE: the server may hold at most ${int(nofile)} fds, connections included: fewer than ${int(N)} connections + its own files. Expect the last ones to be refused (EMFILE at accept).`);
  }

  // ---- server
  phase = 'init';
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const init = await cli(['init', '--data-dir', dataDir, '--org', 'Bench Corp', '--url', `https://127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`]);
  if (init.code !== 0) throw new Error(init.stderr);
  const cfgFile = join(dataDir, 'config.json');
  // Rate limits are for the internet, not for a benchmark from one address.
  writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), enrollRateLimitPerMinute: 1_000_000, logLevel: 'warn', agentHeartbeatSeconds: HEARTBEAT, ...(process.env.BENCH_MAX_AGENT_CONNECTIONS ? { maxAgentConnections: Number(process.env.BENCH_MAX_AGENT_CONNECTIONS) } : {}) }));
  phase = 'server start';
  const proc = await startServerProcess(dataDir, nofile);
  let pid = proc.pid!;
  const serverLimit = fdLimit(pid);
  const started = await probe();
  fig(`server: pid ${pid}, RLIMIT_NOFILE ${serverLimit}, ${openFds(pid)} fds open at start, RSS ${mib(vmRss(pid))} at start (heap used ${mib(started.mem.heapUsed)})`);
  console.log(lines[lines.length - 1]);

  const ca = readFileSync(join(dataDir, 'root.crt.pem'), 'utf8');
  const chain = readFileSync(join(dataDir, 'issuing.crt.pem'), 'utf8');
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  // Admin calls on one keep-alive connection opened now: it needs no new fd on the server later.
  let adminAgent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const admin = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; t0: number; t1: number }> => {
    const t0 = now();
    const headers: Record<string, string> = { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const r = await call({ agent: adminAgent, port, method, path, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const t1 = now();
    let json: unknown;
    try {
      json = JSON.parse(r.body.toString());
    } catch {
      json = r.body.toString();
    }
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body.toString()}`);
    return { status: r.status, json, t0, t1 };
  };
  const keepAlive = setInterval(() => void admin('GET', '/v1/admin/groups').catch(() => undefined), 20_000);
  keepAlive.unref();
  const baseLifetime = 86_400;
  await admin('PUT', `/v1/admin/groups/${GROUP}`, { certLifetimeSeconds: baseLifetime, requireApproval: false });
  const { token } = (await admin('POST', '/v1/admin/tokens', { uses: N, ttl: '1d', group: GROUP })).json as { token: string };

  // ---- enrollment: N real certificates through EST simpleenroll
  phase = 'enrollment';
  console.log(`\nissuing ${int(N)} device certificates (EST simpleenroll, bearer token, ${ENROLL_CONCURRENCY} concurrent keep-alive clients, one P-256 key for all CSRs)…`);
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
  const signer = nodeSigner(key);
  const estAgent = new Agent({ keepAlive: true, maxSockets: ENROLL_CONCURRENCY, ca });
  const devices: { cert: string; serial: string; notAfter: string }[] = [];
  let enrollErrors = 0;
  let nextDev = 0;
  const e0 = now();
  const cpuE0 = cpuMs(pid);
  const enrollProgress = setInterval(() => console.log(`  ${int(devices.length)} issued, ${enrollErrors} errors, ${int(devices.length / ((now() - e0) / 1000))} /s, server RSS ${mib(vmRss(pid))}, load ${load()}`), 5000);
  await Promise.all(
    Array.from({ length: ENROLL_CONCURRENCY }, async () => {
      while (nextDev < N && enrollErrors < 100) {
        const i = nextDev++;
        const csr = (await createCsr({ subject: [{ type: 'CN', value: `chbench-${i}` }], signer })).toString('base64');
        const r = await call({ agent: estAgent, port, method: 'POST', path: '/.well-known/est/simpleenroll', body: csr, headers: { 'content-type': 'application/pkcs10', authorization: `Bearer ${token}` } }).catch((e: Error) => ({ status: 0, body: Buffer.from(e.message) }));
        if (r.status !== 200) {
          enrollErrors++;
          if (enrollErrors <= 3) console.log(`  enrollment error ${r.status}: ${r.body.toString().slice(0, 200)}`);
          continue;
        }
        const der = decodeCertsOnly(r.body.toString())[0]!;
        const c = parseCertificate(der);
        devices.push({ cert: certificateToPem(der), serial: c.serialHex, notAfter: c.notAfter.toISOString() });
      }
    }),
  );
  clearInterval(enrollProgress);
  estAgent.destroy();
  const enrollS = (now() - e0) / 1000;
  summary['issuing (EST simpleenroll)'] = `${int(devices.length)} certificates in ${enrollS.toFixed(1)} s = ${int(devices.length / enrollS)} /s, server CPU ${((cpuMs(pid) - cpuE0) / Math.max(1, devices.length)).toFixed(2)} ms each, ${enrollErrors} errors`;
  console.log(`  ${summary['issuing (EST simpleenroll)']}`);
  if (devices.length === 0) throw new Error('no certificate was issued');

  // ---- client processes and their source addresses
  const perWorker = Math.ceil(devices.length / WORKERS);
  const usablePorts = Math.floor((portHi - portLo + 1) * 0.8);
  const addrsPerWorker = Math.max(1, Math.ceil(perWorker / usablePorts));
  if (2 + WORKERS * addrsPerWorker > 254) throw new Error('too many source addresses needed; use fewer workers or connections');
  const clientJs = fileURLToPath(new URL('./channel-bench-client.js', import.meta.url));
  const latest = new Map<ChildProcess, WorkerStats>();
  const listeners = new Set<(w: ChildProcess, m: ToParent) => void>();
  for (let w = 0; w < WORKERS; w++) {
    const slice = devices.slice(w * perWorker, (w + 1) * perWorker);
    if (slice.length === 0) break;
    const file = join(dir, `devices-${w}.jsonl`);
    writeFileSync(file, slice.map((d) => JSON.stringify(d)).join('\n') + '\n');
    const child = fork(clientJs, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
    workers.push(child);
    child.on('message', (raw) => {
      const m = raw as ToParent;
      if (m.type === 'progress' || m.type === 'connected' || m.type === 'stats') latest.set(child, m.stats);
      if (m.type === 'fatal') console.log(`client ${w}: ${m.message}`);
      for (const l of listeners) l(child, m);
    });
    child.once('exit', (code, sig) => {
      if (!cleaning) console.log(`client process ${w} exited (${code ?? sig}) during ${phase}`);
    });
    await new Promise<void>((r) => {
      const l = (c: ChildProcess, m: ToParent): void => {
        if (c === child && m.type === 'ready') {
          listeners.delete(l);
          r();
        }
      };
      listeners.add(l);
    });
    (child as ChildProcess & { devicesFile?: string; addrs?: string[] }).devicesFile = file;
    (child as ChildProcess & { addrs?: string[] }).addrs = Array.from({ length: addrsPerWorker }, (_, j) => `127.0.0.${2 + w * addrsPerWorker + j}`);
  }
  const addrsOf = (c: ChildProcess): string[] => (c as ChildProcess & { addrs: string[] }).addrs;
  /** Waits for one message of each worker that `pick` accepts. */
  const fromAll = <T>(pick: (m: ToParent) => T | undefined, timeoutMs: number): Promise<Map<ChildProcess, T>> =>
    new Promise((resolve) => {
      const got = new Map<ChildProcess, T>();
      const done = (): void => {
        listeners.delete(l);
        clearTimeout(t);
        resolve(got);
      };
      const l = (c: ChildProcess, m: ToParent): void => {
        const v = pick(m);
        if (v === undefined || got.has(c)) return;
        got.set(c, v);
        if (got.size === workers.length) done();
      };
      const t = setTimeout(done, timeoutMs);
      listeners.add(l);
    });
  const stats = async (): Promise<WorkerStats> => {
    const p = fromAll((m) => (m.type === 'stats' ? m.stats : undefined), 10_000);
    for (const w of workers) w.send({ cmd: 'stats' } satisfies ToClient);
    return sumStats([...(await p).values()]);
  };

  // ---- baseline: the server restarted on the same data, so enrollment garbage does not skew it
  phase = 'restart';
  adminAgent.destroy();
  stoppingServer = true;
  await new Promise((r) => {
    proc.once('exit', r);
    proc.kill('SIGTERM');
  });
  stoppingServer = false;
  pid = (await startServerProcess(dataDir, nofile)).pid!;
  adminAgent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  // Also opens the SQLite WAL handle that durable() keeps: a revocation at the fd limit needs no new fd.
  await admin('PUT', `/v1/admin/groups/${GROUP}`, { certLifetimeSeconds: baseLifetime, requireApproval: false });
  phase = 'baseline';
  await sleep(2000);
  const before = await probe();
  const rssBefore = vmRss(pid);
  const fdsBefore = openFds(pid);
  const tcpBefore = tcpKernelBytes();
  fig(`server restarted after issuing (pid ${pid}); before connections: RSS ${mib(rssBefore)} (after a full GC; heap used ${mib(before.mem.heapUsed)}, external ${mib(before.mem.external)}), ${fdsBefore} fds`);
  console.log(lines[lines.length - 1]);

  // ---- connect
  phase = 'connecting';
  console.log(`\nopening ${int(devices.length)} control channels from ${workers.length} client processes (source addresses ${workers.map((w) => addrsOf(w).join(',')).join(' | ')})…`);
  const c0 = now();
  const cpuC0 = cpuMs(pid);
  const connectedP = fromAll((m) => (m.type === 'connected' ? m : undefined), TIMEOUT * 1000);
  const budgetMs = Math.max(60_000, TIMEOUT * 1000 * 0.4);
  for (const w of workers) {
    w.send({
      cmd: 'connect',
      devicesFile: (w as ChildProcess & { devicesFile: string }).devicesFile,
      port,
      ca,
      key: keyPem,
      chain,
      localAddresses: addrsOf(w),
      inflight: Math.ceil(INFLIGHT / workers.length),
      retries: 1,
      timeoutMs: 15_000,
      budgetMs,
    } satisfies ToClient);
  }
  let lastOpen = 0;
  let peakRate = 0;
  const connectProgress = setInterval(() => {
    const s = sumStats([...latest.values()]);
    const rate = (s.open - lastOpen) / 5;
    peakRate = Math.max(peakRate, rate);
    lastOpen = s.open;
    const fds = openFds(pid);
    console.log(`  ${((now() - c0) / 1000).toFixed(0).padStart(4)} s: ${int(s.open)} open, ${int(s.inflight)} in flight, ${int(s.failed)} failed attempts, ${int(rate)} /s now; server RSS ${mib(vmRss(pid))}, ${int(fds)} fds; load ${load()}`);
  }, 5000);
  const connected = await connectedP;
  clearInterval(connectProgress);
  const connectS = (now() - c0) / 1000;
  const cpuConnect = cpuMs(pid) - cpuC0;
  const cstats = sumStats([...connected.values()].map((m) => m.stats));
  const welcomeMs = [...connected.values()].flatMap((m) => m.welcomeMs);
  const deviceIdsBy = new Map([...connected.entries()].map(([w, m]) => [w, m.deviceIds]));
  const open = cstats.open;
  summary['connections established / asked'] = `${int(open)} / ${int(N)}  (target >= ${int(TARGET)}: ${open >= TARGET ? 'REACHED' : 'NOT reached'})`;
  summary['connect'] = `${connectS.toFixed(1)} s = ${int(open / connectS)} /s average (peak ${int(peakRate)} /s over 5 s), ${INFLIGHT} handshakes in flight; connect→welcome ${lat(welcomeMs)}${welcomeMs.length < open ? ' (evenly sampled)' : ''}`;
  summary['server CPU while connecting'] = `${(cpuConnect / Math.max(1, open)).toFixed(2)} ms per connection (${((cpuConnect / (connectS * 1000)) * 100).toFixed(0)}% of one core)`;
  summary['failed attempts (retried once)'] = `${int(cstats.failed)}: ${fmtCounts(cstats.failures)}`;
  const fdsNow = openFds(pid);
  const limitNow = Number(fdLimit(pid));
  if (open < N) {
    summary['what limited it'] =
      fdsNow >= limitNow - 1
        ? `the server's file descriptors: ${int(fdsNow)} open of RLIMIT_NOFILE ${int(limitNow)} (each connection is one fd); connections past it are accepted and closed at once by libuv (EMFILE → ECONNRESET at the client)`
        : `not the fd limit (${int(fdsNow)} of ${int(limitNow)} fds); see the failures above and the server log (BENCH_KEEP_DIR=1)`;
  }
  const ramp = await probe();
  summary['event loop while connecting'] = `delay p50 ${ms(ramp.loop.p50)}  p99 ${ms(ramp.loop.p99)}  max ${ms(ramp.loop.max)}`;
  console.log(`  ${summary['connections established / asked']}; ${summary.connect}`);

  // ---- idle with N connected
  phase = 'idle';
  console.log(`\nidle for ${IDLE} s with ${int(open)} connected (heartbeats every ${HEARTBEAT} s)…`);
  const s0 = await stats();
  const i0 = now();
  const cpuI0 = cpuMs(pid);
  for (let t = 0; t < IDLE; t += 10) {
    await sleep(Math.min(10, IDLE - t) * 1000);
    const s = sumStats([...latest.values()]);
    console.log(`  ${Math.min(IDLE, t + 10)} s: server RSS ${mib(vmRss(pid))}, ${int(openFds(pid))} fds, ${int(s.open)} open (progress figures), load ${load()}`);
  }
  const idleS = (now() - i0) / 1000;
  const cpuIdle = cpuMs(pid) - cpuI0;
  const s1 = await stats();
  const idle = await probe();
  const rssAfter = vmRss(pid);
  const fdsAfter = openFds(pid);
  const tcpAfter = tcpKernelBytes();
  const hb = s1.heartbeatsSent - s0.heartbeatsSent;
  const acks = s1.acks - s0.acks;
  summary['server RSS before → with N'] = `${mib(rssBefore)} → ${mib(rssAfter)} (both after a full GC), fds ${fdsBefore} → ${fdsAfter}`;
  summary['RSS per connection'] = `${((rssAfter - rssBefore) / Math.max(1, s1.open) / 1024).toFixed(1)} KiB (V8 heap used ${mib(before.mem.heapUsed)} → ${mib(idle.mem.heapUsed)} = ${((idle.mem.heapUsed - before.mem.heapUsed) / Math.max(1, s1.open) / 1024).toFixed(1)} KiB/conn; external+arrayBuffers ${mib(before.mem.external)} → ${mib(idle.mem.external)})`;
  summary['kernel TCP memory (both ends)'] = `${mib(tcpBefore)} → ${mib(tcpAfter)} (/proc/net/sockstat; not in RSS)`;
  summary['server CPU idle with N'] = `${((cpuIdle / (idleS * 1000)) * 100).toFixed(1)}% of one core over ${idleS.toFixed(0)} s; ${int(hb / idleS)} heartbeats/s answered (${int(acks)} acks of ${int(hb)} sent) = ${(cpuIdle / Math.max(1, acks)).toFixed(3)} ms CPU per heartbeat`;
  summary['event loop while idle'] = `delay p50 ${ms(idle.loop.p50)}  p99 ${ms(idle.loop.p99)}  max ${ms(idle.loop.max)} (full GC of the probe: ${ms(idle.gcMs)})`;
  summary['closed by the server while idle'] = fmtCounts(s1.unexpectedCloses);
  // Can anyone new still get in (an agent renewing, an admin) with N held?
  const fresh = new Agent({ keepAlive: false, ca });
  const t = now();
  const h = await call({ agent: fresh, port, method: 'GET', path: '/healthz' }).then(
    (r) => `HTTP ${r.status} in ${ms(now() - t)}`,
    (e: NodeJS.ErrnoException) => `FAILED (${e.code ?? e.message}) after ${ms(now() - t)}`,
  );
  fresh.destroy();
  summary['new HTTPS connection with N held'] = `GET /healthz: ${h}; server fds ${openFds(pid)} of ${fdLimit(pid)}`;
  console.log(`  ${summary['server RSS before → with N']}; per connection ${summary['RSS per connection']}`);
  console.log(`  ${summary['server CPU idle with N']}`);

  // ---- (1) revocation push latency
  phase = 'revocations';
  const got = new Map<string, { kind: string; at: number }>();
  listeners.add((_c, m) => {
    if (m.type === 'got') got.set(`${m.kind}:${m.deviceId}`, { kind: m.kind, at: m.at });
  });
  const waitGot = async (k: string, timeoutMs: number): Promise<number | undefined> => {
    const end = now() + timeoutMs;
    while (!got.has(k) && now() < end) await sleep(1);
    return got.get(k)?.at;
  };
  // Devices spread over the client processes.
  const ids = workers.map((w) => [...(deviceIdsBy.get(w) ?? [])]);
  const pickId = (i: number): string | undefined => ids[i % ids.length]!.shift();
  console.log(`\nrevoking ${K} devices one at a time (POST /v1/admin/devices/:id/revoke) with ${int(s1.open)} connected…`);
  const revFromReturn: number[] = [];
  const revFromStart: number[] = [];
  const revCall: number[] = [];
  let revMissing = 0;
  await probe();
  for (let i = 0; i < K; i++) {
    const id = pickId(i);
    if (!id) break;
    const r = await admin('POST', `/v1/admin/devices/${id}/revoke`, { reason: 'keyCompromise' });
    const at = await waitGot(`revoked:${id}`, 10_000);
    revCall.push(r.t1 - r.t0);
    if (at === undefined) revMissing++;
    else {
      revFromReturn.push(at - r.t1);
      revFromStart.push(at - r.t0);
    }
    await sleep(100);
  }
  summary['(1) revoke call (HTTP round trip)'] = lat(revCall);
  summary['(1) revoked received − call returned'] = `${lat(revFromReturn)}${revMissing ? `, ${revMissing} never received` : ''}`;
  summary['(1) revoked received − call started'] = lat(revFromStart);

  // ---- (3) renew-now to one device
  phase = 'renew-now';
  console.log(`renew-now to ${K} devices one at a time (POST /v1/admin/devices/:id/renew-now)…`);
  const rnFromReturn: number[] = [];
  const rnFromStart: number[] = [];
  let rnMissing = 0;
  for (let i = 0; i < K; i++) {
    const id = pickId(i);
    if (!id) break;
    const r = await admin('POST', `/v1/admin/devices/${id}/renew-now`, {});
    const at = await waitGot(`renew-now:${id}`, 10_000);
    if (at === undefined) rnMissing++;
    else {
      rnFromReturn.push(at - r.t1);
      rnFromStart.push(at - r.t0);
    }
    await sleep(100);
  }
  const revLoop = await probe();
  summary['(3) renew-now received − call returned'] = `${lat(rnFromReturn)}${rnMissing ? `, ${rnMissing} never received` : ''}`;
  summary['(3) renew-now received − call started'] = lat(rnFromStart);
  summary['event loop during (1) and (3)'] = `delay p50 ${ms(revLoop.loop.p50)}  p99 ${ms(revLoop.loop.p99)}  max ${ms(revLoop.loop.max)}`;

  // ---- (2) fan-out of a group policy change to all connected devices
  phase = 'fan-out';
  if (cstats.policiesAtWelcome === 0) {
    summary['(2) policy fan-out'] = 'not measured: this server build sends no `policy` message (none arrived after welcome)';
  } else {
    console.log(`policy fan-out: ${ROUNDS} rounds of PUT /v1/admin/groups/${GROUP} to every connected device…`);
    const lasts: number[] = [];
    const lastsFromStart: number[] = [];
    const p50s: number[] = [];
    const calls: number[] = [];
    let worstMissing = 0;
    let asked = 0;
    await probe();
    for (let r = 0; r < ROUNDS; r++) {
      const lifetime = baseLifetime + 60 * (r + 1);
      const armed = fromAll((m) => (m.type === 'armed' && m.lifetime === lifetime ? m.waiting : undefined), 10_000);
      for (const w of workers) w.send({ cmd: 'expect-policy', lifetime, timeoutMs: 60_000 } satisfies ToClient);
      asked = [...(await armed).values()].reduce((a, b) => a + b, 0);
      const done = fromAll((m) => (m.type === 'policy-done' && m.lifetime === lifetime ? m : undefined), 70_000);
      const c = await admin('PUT', `/v1/admin/groups/${GROUP}`, { certLifetimeSeconds: lifetime, requireApproval: false });
      const res = [...(await done).values()];
      const times = res.flatMap((x) => x.times).sort((a, b) => a - b);
      const missing = res.reduce((a, x) => a + x.missing, 0);
      worstMissing = Math.max(worstMissing, missing);
      const rel = times.map((t) => t - c.t1);
      calls.push(c.t1 - c.t0);
      lasts.push(rel[rel.length - 1] ?? NaN);
      lastsFromStart.push((times[times.length - 1] ?? NaN) - c.t0);
      p50s.push(quantile(rel, 0.5));
      console.log(`  round ${r + 1}: ${int(times.length)} of ${int(asked)} got it; PUT took ${ms(c.t1 - c.t0)}; after it returned: first ${ms(rel[0] ?? NaN)}, p50 ${ms(quantile(rel, 0.5))}, p99 ${ms(quantile(rel, 0.99))}, last ${ms(rel[rel.length - 1] ?? NaN)}${missing ? `; ${missing} missing after 60 s` : ''}`);
      await sleep(2000);
    }
    const fan = await probe();
    summary['(2) policy fan-out to all N'] = `last device ${lasts.map(ms).join(' / ')} after the PUT returned (${lastsFromStart.map(ms).join(' / ')} after it started); p50 ${p50s.map(ms).join(' / ')}; ${int(asked)} connected${worstMissing ? `, up to ${worstMissing} missing` : ', none missing'}`;
    summary['(2) PUT /v1/admin/groups/:name call'] = calls.map(ms).join(' / ');
    summary['event loop during (2)'] = `delay p50 ${ms(fan.loop.p50)}  p99 ${ms(fan.loop.p99)}  max ${ms(fan.loop.max)}`;
  }

  phase = 'end';
  const end = await stats();
  summary['closed by the server (whole run)'] = `${fmtCounts(end.unexpectedCloses)} (revocations excluded)`;
  summary['connections open at the end'] = `${int(end.open)} (${K} revoked on purpose)`;
  summary['machine load (1/5/15 min)'] = `${load()} on ${cpus().length} cores; clients, bench and server share them`;
  clearInterval(keepAlive);
  adminAgent.destroy();
}

try {
  await main();
  printSummary();
} catch (e) {
  console.log(`\nbench:channels failed during ${phase}: ${(e as Error).stack ?? String(e)}`);
  printSummary();
  process.exitCode = 1;
} finally {
  await cleanup();
  clearTimeout(deadline);
}
