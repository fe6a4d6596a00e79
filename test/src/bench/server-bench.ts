/**
 * `pnpm bench:server`: latchkey-server throughput on this machine.
 *  - enrollments/s over HTTPS, a new TLS connection per enrollment (as devices
 *    do), N concurrent clients, on SQLite and on PostgreSQL;
 *  - re-enrollments/s over mTLS (new connection, device certificate);
 *  - OCSP responses/s (keep-alive, requests without nonce, as gateways send;
 *    driven by wrk when installed — apt-get install wrk — else by Node);
 *  - the ceiling: bare TLS handshakes/s against a trivial Node HTTPS server,
 *    same client, same run.
 * Each with p50/p99 latency. Environment: BENCH_SECONDS (default 8),
 * BENCH_CONCURRENCY (default 32), BENCH_ENGINES (default sqlite,postgres), LATCHKEY_TEST_PG_URL, BENCH_PROFILE_DIR (write
 * a V8 CPU profile of each server process there).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request, type RequestOptions } from 'node:https';
import { createSecureContext, type SecureContext } from 'node:tls';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { certificateToPem, createCsr, decodeCertsOnly, nodeSigner } from '@latchkey/pki';
import { cli, freePort, run, SERVER_CLI } from '../support/processes.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const OCSP_CLIENT = spawnSync('sh', ['-c', 'command -v wrk']).status === 0 ? 'wrk' : 'node';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const PG_URL = process.env.LATCHKEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface Result {
  /** CPU the server process used per successful operation, when known (Linux /proc). */
  serverCpuMs?: number;
  /** CPU the PostgreSQL processes used per successful operation (PostgreSQL on this machine only). */
  dbCpuMs?: number;
  ops: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  latencies: number[];
}

const quantile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;

/** Several slices of one measurement as one result. */
function merge(parts: Result[]): Result {
  const latencies = parts.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const ops = parts.reduce((a, p) => a + p.ops, 0);
  const cpu = parts.every((p) => p.serverCpuMs !== undefined) ? parts.reduce((a, p) => a + p.serverCpuMs! * p.ops, 0) / ops : undefined;
  const db = parts.every((p) => p.dbCpuMs !== undefined) ? parts.reduce((a, p) => a + p.dbCpuMs! * p.ops, 0) / ops : undefined;
  return {
    ops,
    errors: parts.reduce((a, p) => a + p.errors, 0),
    seconds: parts.reduce((a, p) => a + p.seconds, 0),
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    latencies,
    ...(cpu === undefined ? {} : { serverCpuMs: cpu }),
    ...(db === undefined ? {} : { dbCpuMs: db }),
  };
}

/**
 * Enrollment and the handshake ceiling measured in alternating slices, so a
 * noisy neighbour (this is a shared VM) slows both alike.
 */
async function interleaved(a: () => Promise<Result>, b: () => Promise<Result>, slices = 3): Promise<[Result, Result]> {
  const ra: Result[] = [];
  const rb: Result[] = [];
  for (let i = 0; i < slices; i++) {
    ra.push(await a());
    rb.push(await b());
  }
  return [merge(ra), merge(rb)];
}

/**
 * TLS contexts are built once per identity and reused: building one per
 * request (what passing `ca`/`cert`/`key` does) costs more than a handshake.
 */
const contexts = new Map<string, SecureContext>();
function contextFor(ca: string, cert?: string, key?: string): SecureContext {
  const k = `${ca}|${cert ?? ''}`;
  let c = contexts.get(k);
  if (!c) contexts.set(k, (c = createSecureContext({ ca, ...(cert ? { cert, key } : {}) })));
  return c;
}

function httpsCall(o: { port: number; path: string; body: Buffer | string; contentType: string; ca: string; agent?: Agent | false; cert?: string; key?: string; token?: string }): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      ({
        host: '127.0.0.1',
        port: o.port,
        method: 'POST',
        path: o.path,
        secureContext: contextFor(o.ca, o.cert, o.key),
        agent: o.agent ?? false,
        headers: { 'content-type': o.contentType, ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) },
      }) as RequestOptions,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

async function load(fn: (i: number) => Promise<boolean>, seconds = SECONDS, concurrency = CONCURRENCY): Promise<Result> {
  const lat: number[] = [];
  let errors = 0;
  let i = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const ok = await fn(i++).catch(() => false);
        if (ok) lat.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  const s = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  return { ops: lat.length, errors, seconds: s, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), latencies: lat };
}

function waitFor(proc: ChildProcess, re: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer): void => {
      out += d.toString();
      if (re.test(out)) resolve();
    };
    proc.stdout?.on('data', on);
    proc.stderr?.on('data', on);
    proc.on('exit', (c) => reject(new Error(`process exited ${c}: ${out}`)));
  });
}

/** Runs wrk (keep-alive, CONCURRENCY connections, one thread) and reads its figures. */
async function wrk(url: string, script: string): Promise<Result> {
  const r = await run('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${SECONDS}s`, '--latency', '-s', script, url]);
  const num = (re: RegExp): number => Number(re.exec(r.stdout)?.[1] ?? NaN);
  const ms = (re: RegExp): number => {
    const m = re.exec(r.stdout);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const ops = num(/(\d+) requests in/);
  const seconds = num(/requests in ([\d.]+)s/);
  const errors = num(/Non-2xx or 3xx responses: (\d+)/) || 0;
  return { ops: ops - errors, errors, seconds, p50: ms(/50%\s+([\d.]+)(us|ms|s)/), p99: ms(/99%\s+([\d.]+)(us|ms|s)/), latencies: [] };
}

/** utime + stime of a process in ms (Linux), to tell server cost from client cost. */
function cpuMs(pid: number | undefined): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

/** CPU of every PostgreSQL process on this machine, in ms (Linux; needs permission to read them). */
function postgresCpuMs(): number {
  let total = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue;
    }
    total += cpuMs(Number(pid)) ?? 0;
  }
  return total;
}

async function measured(pid: number | undefined, run: () => Promise<Result>, engine?: 'sqlite' | 'postgres'): Promise<Result> {
  const before = cpuMs(pid);
  const dbBefore = engine === 'postgres' ? postgresCpuMs() : 0;
  const r = await run();
  const after = cpuMs(pid);
  const db = engine === 'postgres' && r.ops > 0 ? { dbCpuMs: (postgresCpuMs() - dbBefore) / r.ops } : {};
  return before !== undefined && after !== undefined && r.ops > 0 ? { ...r, serverCpuMs: (after - before) / r.ops, ...db } : { ...r, ...db };
}

const stop = (p: ChildProcess): Promise<void> => new Promise((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGTERM'))));

async function csrs(n: number): Promise<{ key: crypto.KeyObject; body: string }[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      return { key, body: (await createCsr({ subject: [{ type: 'CN', value: `bench-${i}` }], signer: nodeSigner(key) })).toString('base64') };
    }),
  );
}

const fmt = (r: Result): string =>
  `${Math.round(r.ops / r.seconds).toLocaleString('en-US').padStart(8)} /s   p50 ${r.p50.toFixed(1).padStart(6)} ms   p99 ${r.p99.toFixed(1).padStart(6)} ms   server CPU ${r.serverCpuMs === undefined ? '?' : r.serverCpuMs.toFixed(2)} ms/op${r.dbCpuMs === undefined ? '' : ` + PostgreSQL ${r.dbCpuMs.toFixed(2)} ms/op`}   (${r.ops} ok, ${r.errors} errors, ${r.seconds.toFixed(1)} s)`;

async function benchEngine(engine: 'sqlite' | 'postgres', pool: { key: crypto.KeyObject; body: string }[], ceilingSlice: (seconds: number) => Promise<Result>): Promise<{ ceiling: Result; enroll: Result; reenroll: Result; ocsp: Result } | undefined> {
  let dbName: string | undefined;
  const admin = new pg.Client({ connectionString: PG_URL });
  if (engine === 'postgres') {
    try {
      await admin.connect();
    } catch (e) {
      console.log(`  PostgreSQL: skipped (${(e as Error).message})`);
      return undefined;
    }
    dbName = `latchkey_bench_${crypto.randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${dbName}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const url = new URL(PG_URL);
  url.pathname = `/${dbName}`;
  const init = await cli(['init', '--data-dir', dataDir, '--org', 'Bench Corp', '--url', `https://127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`, ...(dbName ? ['--database-url', url.toString()] : [])]);
  if (init.code !== 0) throw new Error(init.stderr);
  // Rate limits are for the internet, not for a benchmark from one address.
  const cfgFile = join(dataDir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), enrollRateLimitPerMinute: 1_000_000, logLevel: 'warn' }));
  const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE_DIR] : [];
  const server = spawn(process.execPath, [...profile, SERVER_CLI, 'start', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await waitFor(server, /listening on/);
    const ca = readFileSync(join(dataDir, 'root.crt.pem'), 'utf8');
    const tok = await cli(['token', 'create', '--uses', '100000', '--ttl', '1d', '--data-dir', dataDir, '--json']);
    const token = (JSON.parse(tok.stdout) as { token: string }).token;
    const certs: { cert: string; key: string }[] = [];
    let n = 0;
    const [ceilingR, enroll] = await interleaved(
      () => ceilingSlice(SECONDS / 3),
      () =>
        measured(server.pid, () =>
          load(async () => {
            const c = pool[n++ % pool.length]!;
            const r = await httpsCall({ port, path: '/.well-known/est/simpleenroll', body: c.body, contentType: 'application/pkcs10', ca, token });
            if (r.status === 200 && certs.length < 64) certs.push({ cert: certificateToPem(decodeCertsOnly(r.body.toString())[0]!), key: c.key.export({ type: 'pkcs8', format: 'pem' }) as string });
            return r.status === 200;
          }, SECONDS / 3),
        engine,
        ),
    );
    const reenroll = await measured(server.pid, () => load(async (i) => {
      const dev = certs[i % certs.length]!;
      const r = await httpsCall({ port, path: '/.well-known/est/simplereenroll', body: pool[pool.length / 2 + ((i * 7 + 3) % (pool.length / 2))]!.body, contentType: 'application/pkcs10', ca, cert: dev.cert, key: dev.key });
      return r.status === 200;
    }), engine);
    // OCSP requests made by openssl (no nonce), one per enrolled certificate.
    const issuing = join(dir, 'issuing.pem');
    writeFileSync(issuing, readFileSync(join(dataDir, 'issuing.crt.pem')));
    const reqs = certs.slice(0, 16).map((c, i) => {
      const certFile = join(dir, `c${i}.pem`);
      writeFileSync(certFile, c.cert);
      const out = join(dir, `r${i}.der`);
      const r = spawnSync('openssl', ['ocsp', '-issuer', issuing, '-cert', certFile, '-no_nonce', '-reqout', out]);
      if (r.status !== 0) throw new Error(r.stderr.toString());
      return readFileSync(out);
    });
    let ocsp: Result;
    if (spawnSync('sh', ['-c', 'command -v wrk']).status === 0) {
      // wrk is a far cheaper client than Node's https: the figure is the server's.
      writeFileSync(join(dir, 'ocsp.der'), reqs[0]!);
      writeFileSync(join(dir, 'post.lua'), `wrk.method = "POST"\nlocal f = io.open("${join(dir, 'ocsp.der')}", "rb"); wrk.body = f:read("*a"); f:close()\nwrk.headers["Content-Type"] = "application/ocsp-request"\n`);
      ocsp = await measured(server.pid, () => wrk(`https://127.0.0.1:${port}/ocsp`, join(dir, 'post.lua')), engine);
    } else {
      const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      ocsp = await measured(server.pid, () => load(async (i) => (await httpsCall({ port, path: '/ocsp', body: reqs[i % reqs.length]!, contentType: 'application/ocsp-request', ca, agent })).status === 200), engine);
      agent.destroy();
    }
    return { ceiling: ceilingR, enroll, reenroll, ocsp };
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
    if (dbName) {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    }
  }
}

/** The trivial HTTPS server of the ceiling, kept running; each call measures one slice. */
async function startCeiling(): Promise<{ slice: (seconds: number) => Promise<Result>; close: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  await cli(['init', '--data-dir', dataDir, '--org', 'Bench Corp', '--url', `https://127.0.0.1:${port}`]);
  const script = fileURLToPath(new URL('./tls-ceiling-server.js', import.meta.url));
  const p = spawn(process.execPath, [script, join(dataDir, 'server.key.pem'), join(dataDir, 'server.crt.pem'), String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  await waitFor(p, /listening/);
  const ca = readFileSync(join(dataDir, 'root.crt.pem'), 'utf8');
  return {
    slice: (seconds) => measured(p.pid, () => load(async () => (await httpsCall({ port, path: '/', body: 'x', contentType: 'text/plain', ca })).status === 200, seconds)),
    async close() {
      await stop(p);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

console.log(`latchkey bench:server — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} cores); server and client on this machine`);
console.log(`${CONCURRENCY} concurrent clients, ${SECONDS} s per measurement\n`);
const pool = await csrs(2000);
const ceiling = await startCeiling();
try {
  const engines = (process.env.BENCH_ENGINES ?? 'sqlite,postgres').split(',');
  for (const engine of (['sqlite', 'postgres'] as const).filter((e) => engines.includes(e))) {
    console.log(`latchkey-server on ${engine}`);
    const r = await benchEngine(engine, pool, ceiling.slice);
    if (!r) continue;
    const rate = (x: Result): number => x.ops / x.seconds;
    console.log(`  ceiling   (bare TLS, trivial Node HTTPS server, interleaved with enroll)\n                           ${fmt(r.ceiling)}`);
    console.log(`  enroll    (new TLS conn) ${fmt(r.enroll)}   ${((100 * rate(r.enroll)) / rate(r.ceiling)).toFixed(0)}% of ceiling (target >= 70%)`);
    console.log(`  re-enroll (mTLS, new conn) ${fmt(r.reenroll)}`);
    console.log(`  OCSP      (keep-alive, ${OCSP_CLIENT}) ${fmt(r.ocsp)}   (target >= 5,000 /s)`);
    console.log('');
  }
} finally {
  await ceiling.close();
}
