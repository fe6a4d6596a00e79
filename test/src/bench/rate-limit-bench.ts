/**
 * `pnpm bench:rate-limit`: what a per-address rate limit costs a cheap public
 * route, in requests per second over keep-alive HTTP on 127.0.0.1:
 *   - none: the route alone (a precomputed body, like /cacerts)
 *   - token bucket: the hand-written limiter (server/src/rate-limit.ts) in an onRequest hook
 *   - @fastify/rate-limit: the plugin as a route option (LocalStore, fixed window)
 * The limit is set high enough that nothing is refused: this is the cost of
 * counting. Variants run in alternating rounds (a shared machine is noisy);
 * the median of each is printed, as requests per second and as the server's
 * event-loop busy time per request (less sensitive to other processes'
 * load than throughput). The load comes from a worker thread.
 * Environment: BENCH_SECONDS per round (default 3), BENCH_ROUNDS (default 3),
 * BENCH_CONNECTIONS (default 32).
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import { createRateLimiter } from '../../../server/dist/rate-limit.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
const BODY = randomBytes(1400).toString('base64');
const MAX = 1e9;

type Variant = 'none' | 'token bucket' | '@fastify/rate-limit';

async function serve(v: Variant): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  if (v === 'token bucket') {
    const limiter = createRateLimiter(MAX);
    app.addHook('onRequest', async (req, reply) => {
      if (!limiter.take(req.ip)) return reply.code(429).send({ error: 'RATE_LIMITED' });
    });
  }
  if (v === '@fastify/rate-limit') await app.register(rateLimit, { global: false });
  app.get('/cacerts', { config: v === '@fastify/rate-limit' ? { rateLimit: { max: MAX, timeWindow: 60_000 } } : {} }, async (_req, reply) => reply.header('content-type', 'application/pkcs7-mime').send(BODY));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
}

/** Keep-alive GETs from `connections` parallel loops for `ms`, in a worker; resolves to completed requests. */
function load(port: number, ms: number): Promise<{ ok: number; other: number }> {
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    const http = require('node:http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: workerData.connections });
    const end = Date.now() + workerData.ms;
    let ok = 0, other = 0;
    const one = () => new Promise((resolve) => {
      http.get({ host: '127.0.0.1', port: workerData.port, path: '/cacerts', agent }, (res) => {
        res.resume();
        res.on('end', () => { res.statusCode === 200 ? ok++ : other++; resolve(); });
      }).on('error', () => { other++; resolve(); });
    });
    const loop = async () => { while (Date.now() < end) await one(); };
    Promise.all(Array.from({ length: workerData.connections }, loop)).then(() => { agent.destroy(); parentPort.postMessage({ ok, other }); });
  `;
  return new Promise((resolve, reject) => {
    const w = new Worker(src, { eval: true, workerData: { port, ms, connections } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

console.log(`latchkey bench:rate-limit — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} cores), ${connections} keep-alive connections, ${rounds} × ${seconds} s per variant`);
const variants: Variant[] = ['none', 'token bucket', '@fastify/rate-limit'];
const perSecond = new Map<Variant, number[]>(variants.map((v) => [v, []]));
const busyMicros = new Map<Variant, number[]>(variants.map((v) => [v, []]));
for (let r = 0; r < rounds; r++) {
  for (const v of r % 2 ? [...variants].reverse() : variants) {
    const app = await serve(v);
    const before = performance.eventLoopUtilization();
    const { ok, other } = await load((app.server.address() as AddressInfo).port, seconds * 1000);
    const busy = performance.eventLoopUtilization(before).active;
    await app.close();
    busyMicros.get(v)!.push((busy * 1000) / Math.max(1, ok + other));
    if (other) console.log(`  (${v}: ${other} requests not answered 200)`);
    perSecond.get(v)!.push(ok / seconds);
  }
}
const base = median(perSecond.get('none')!);
for (const v of variants) {
  const m = median(perSecond.get(v)!);
  const us = median(busyMicros.get(v)!);
  console.log(`  ${v.padEnd(22)} ${fmt(m).padStart(8)} req/s ${(((m - base) / base) * 100).toFixed(1).padStart(6)} %   ${us.toFixed(1).padStart(6)} µs busy/request   req/s rounds: ${perSecond.get(v)!.map(fmt).join(', ')}`);
}
