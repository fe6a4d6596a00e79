/**
 * `pnpm bench:console [--pg]`: the admin console's server time with 100,000
 * devices (issue 13: "the devices page's first screen in under 300 ms of
 * server time with 100,000 devices"). The real app (server/dist) on SQLite,
 * or on a fresh PostgreSQL database with --pg; seeded directly in batched
 * inserts (every device with a certificate, one in ten with an older
 * superseded one too, a few thousand agents online); then each request
 * ~30 times through fastify inject with an admin bearer token, after a
 * warm-up. Prints median and p95; no pass/fail on timing.
 *
 * Environment: BENCH_DEVICES (default 100000), BENCH_ONLINE (default 3000),
 * BENCH_RUNS (default 30).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { harness, type Harness } from '../../../server/dist/testing/harness.js';

const N = Number(process.env.BENCH_DEVICES ?? 100_000);
const ONLINE = Number(process.env.BENCH_ONLINE ?? 3000);
const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const BATCH = 500;
const TARGET_MS = 300;
const engine = process.argv.includes('--pg') ? 'postgres' : 'sqlite';

const cleanups: (() => unknown)[] = [];
const ctx = {
  after: (fn: () => unknown) => void cleanups.push(fn),
  skip: (msg?: string) => {
    throw new Error(msg ?? 'skipped');
  },
};

const iso = (ms: number): string => new Date(ms).toISOString();

async function seed(h: Harness): Promise<{ serial: string; name: string }> {
  const now = h.clock.now.getTime();
  const statuses = ['active', 'active', 'active', 'active', 'active', 'active', 'pending', 'revoked', 'revoked', 'denied'] as const;
  const replica = (await h.db.kysely.selectFrom('replicas').select('id').executeTakeFirstOrThrow()).id;
  let probe = { serial: '', name: '' };
  await h.db.kysely.transaction().execute(async (trx) => {
    for (let start = 0; start < N; start += BATCH) {
      const devices = [];
      const certs = [];
      const sessions = [];
      for (let i = start; i < Math.min(N, start + BATCH); i++) {
        const id = randomUUID();
        const status = statuses[i % statuses.length]!;
        const firstSeen = now - (N - i) * 60_000;
        const name = `laptop-${String(i).padStart(6, '0')}`;
        devices.push({ id, name, status, group_name: 'default', token_id: null, pending_spki_hash: null, pending_csr: null, facts: null, user_email: i % 4 === 0 ? null : `user${i % 20_000}@example.com`, first_seen: iso(firstSeen), last_seen: i % 7 === 0 ? null : iso(now - (i % 10_000) * 1000), approved_at: null, approved_by: null, revoked_at: status === 'revoked' ? iso(now - 3600_000) : null, revocation_reason: status === 'revoked' ? 'superseded' : null });
        if (status === 'pending' || status === 'denied') continue;
        const serial = randomBytes(16).toString('hex');
        const issued = now - (i % 30) * 86_400_000;
        const revokedAt = status === 'revoked' ? iso(now - 3600_000) : null;
        certs.push({ serial, device_id: id, kind: 'renew' as const, not_before: iso(issued), not_after: iso(issued + 30 * 86_400_000), spki_hash: serial, pem: '-', issued_at: iso(issued), revoked_at: revokedAt, revocation_reason: revokedAt ? 'superseded' : null });
        if (i % 10 === 0) {
          const old = randomBytes(16).toString('hex');
          certs.push({ serial: old, device_id: id, kind: 'enroll' as const, not_before: iso(issued - 30 * 86_400_000), not_after: iso(issued), spki_hash: old, pem: '-', issued_at: iso(issued - 30 * 86_400_000), revoked_at: iso(issued), revocation_reason: 'superseded' });
        }
        if (status === 'active' && i % Math.max(1, Math.floor((N * 0.6) / ONLINE)) === 0) {
          sessions.push({ id: randomUUID(), replica_id: replica, device_id: id, since: iso(now - 1000), agent_version: '1.0.0', serial, remote: '10.0.0.1' });
        }
        if (i === Math.floor(N / 2)) probe = { serial, name };
      }
      await trx.insertInto('devices').values(devices).execute();
      if (certs.length) await trx.insertInto('certificates').values(certs).execute();
      if (sessions.length) await trx.insertInto('agent_sessions').values(sessions).execute();
    }
  });
  return probe;
}

function stats(ms: number[]): { median: number; p95: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, p95: s[Math.min(s.length - 1, Math.ceil(s.length * 0.95) - 1)]! };
}

async function main(): Promise<void> {
  const h = await harness(ctx, engine);
  if (!h) throw new Error('no database');
  const t0 = performance.now();
  const probe = await seed(h);
  // As autovacuum would after a bulk load.
  await h.db.pgPool?.query('analyze');
  const seedS = (performance.now() - t0) / 1000;
  const online = await h.db.kysely.selectFrom('agent_sessions').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst();
  console.log(`console bench on ${engine}: ${N} devices seeded in ${seedS.toFixed(1)} s, ${Number(online?.n ?? 0)} online; ${RUNS} runs each; ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, node ${process.version}`);
  const requests: [string, string][] = [
    ['devices, first screen (default sort)', '/v1/admin/devices?limit=50'],
    ['devices, q=<name fragment>', `/v1/admin/devices?limit=50&q=${probe.name.slice(3, 12)}`],
    ['devices, q=<serial>', `/v1/admin/devices?limit=50&q=${probe.serial}`],
    ['devices, q=<in every name>', '/v1/admin/devices?limit=50&q=laptop'],
    ['devices, sort=lastSeen', '/v1/admin/devices?limit=50&sort=lastSeen'],
    ['devices, status=active&online=true', '/v1/admin/devices?limit=50&status=active&online=true'],
    ['overview', '/v1/admin/overview'],
  ];
  for (const [label, url] of requests) {
    const times: number[] = [];
    let items = 0;
    for (let i = 0; i < RUNS + 3; i++) {
      const s = performance.now();
      const r = await h.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${h.adminToken}` } });
      const ms = performance.now() - s;
      if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode} ${r.body}`);
      if (i >= 3) times.push(ms);
      else items = (JSON.parse(r.body) as { items?: unknown[] }).items?.length ?? -1;
    }
    const { median, p95 } = stats(times);
    console.log(`${label.padEnd(40)} median ${median.toFixed(1).padStart(7)} ms  p95 ${p95.toFixed(1).padStart(7)} ms  ${p95 < TARGET_MS ? 'under' : 'OVER'} ${TARGET_MS} ms${items >= 0 ? `  (${items} items)` : ''}`);
  }
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups) await fn();
  });
