/**
 * Test harness: a real data dir made by `init`, the real app on SQLite or
 * on a fresh PostgreSQL database (created and dropped per test), driven with
 * `inject`. The TLS client certificate is passed by the test through the
 * app's `clientCert` dependency, since `inject` has no TLS socket.
 */
import * as crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { createCsr, csrToPem, decodeCertsOnly, nodeSigner, parseCertificate, type Certificate } from '@latchkey/pki';
import { EST_PATHS, FACTS_ATTRIBUTE_OID } from '@latchkey/protocol';
import { buildApp, type App, type AppDeps } from '../app.js';
import { buildCaContext, loadCaKeys, type CaContext } from '../ca/ca-context.js';
import { FILES } from '../ca/ca-files.js';
import { loadConfig } from '../config/config-load.js';
import type { ServerConfig } from '../config/config-schema.js';
import { createEventBus, type EventBus } from '../events/event-bus.js';
import { initDataDir } from '../init.js';
import type { LoggerOptions } from '../logger.js';
import { serverTlsOptions } from '../start.js';
import { openDb, type Db, type Engine } from '../storage/db.js';

export const ENGINES: Engine[] = ['sqlite', 'postgres'];

const PG_URL = process.env.LATCHKEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface TestCtx {
  after(fn: () => unknown): void;
  skip(message?: string): void;
}

/** A fresh PostgreSQL database for one test, or undefined (skipped) when PostgreSQL is not reachable. */
export async function freshPgDatabase(t: TestCtx): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (e) {
    const msg = `PostgreSQL is not reachable at ${PG_URL} (${(e as Error).message}); set LATCHKEY_TEST_PG_URL`;
    if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(msg + ' — required because LATCHKEY_REQUIRE_ALL=1', { cause: e });
    t.skip(msg);
    return undefined;
  }
  const name = `latchkey_test_${crypto.randomBytes(6).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    },
  };
}

export interface Harness {
  engine: Engine;
  dataDir: string;
  config: ServerConfig;
  db: Db;
  bus: EventBus;
  app: App['app'];
  crl: App['crl'];
  outbox: App['outbox'];
  /** The console's live streams: tests run its poller and ping ticks. */
  live: App['live'];
  adminToken: string;
  root: Certificate;
  issuing: Certificate;
  /** The app's clock; tests move it. */
  clock: { now: Date };
  logs: string[];
  /** Re-opens the app on the same data dir and database (a restart). */
  restart(): Promise<void>;
}

/** How a test passes the TLS client certificate (base64 DER) to the app under `inject`. */
export const CLIENT_CERT_HEADER = 'x-test-client-cert';

/**
 * `tls`: the app serves HTTPS like `start` (for tests that listen and need
 * real TLS client certificates, e.g. the control channel); `inject` then
 * carries no client certificate.
 */
/** `logger`: the fastify logger options (the production ones, to test what reaches the log); its output still goes to `logs`. */
export async function harness(t: TestCtx, engine: Engine, opts: { now?: Date; config?: Partial<ServerConfig>; tls?: boolean; logger?: LoggerOptions; reauthorize?: AppDeps['reauthorize']; consoleAssets?: AppDeps['consoleAssets'] } = {}): Promise<Harness | undefined> {
  const pgDb = engine === 'postgres' ? await freshPgDatabase(t) : undefined;
  if (engine === 'postgres' && !pgDb) return undefined;
  const databaseUrl = pgDb?.url;
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-srv-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const clock = { now: opts.now ?? new Date() };
  await initDataDir({ dataDir, org: 'Example Corp', url: 'https://latchkey.example.com:8443', trustDomain: 'example.com', ...(databaseUrl ? { databaseUrl } : {}), now: new Date(clock.now.getTime() - 3_600_000) });
  const config = Object.freeze({ ...loadConfig(dataDir, {}), ...opts.config });
  const passphrase = readFileSync(join(dataDir, FILES.passphrase), 'utf8').trim();
  const ca = buildCaContext(dataDir, config, loadCaKeys(dataDir, passphrase));
  const logs: string[] = [];
  const h = { engine, dataDir, config, clock, logs, adminToken: readFileSync(join(dataDir, FILES.adminToken), 'utf8').trim(), root: ca.root, issuing: ca.issuing.cert } as Harness;
  const open = async (): Promise<void> => {
    const built = await openApp({ dataDir, ca, config, clock: () => clock.now, logs, ...(databaseUrl ? { databaseUrl } : {}), ...(opts.tls ? { tls: true } : {}), ...(opts.logger ? { logger: opts.logger } : {}), ...(opts.reauthorize ? { reauthorize: opts.reauthorize } : {}), ...(opts.consoleAssets ? { consoleAssets: opts.consoleAssets } : {}) });
    Object.assign(h, built);
  };
  const close = async (): Promise<void> => {
    await h.app.close();
    await h.bus.close();
    await h.db.close();
  };
  await open();
  h.restart = async () => {
    await close();
    await open();
  };
  // One cleanup, in order: the app and its connections, then the database.
  t.after(async () => {
    await close();
    await pgDb?.drop();
  });
  return h;
}

/**
 * The app on a data dir and its own database connection, as the harness runs
 * it (and each worker of sqlite-race.ts, for several connections on one file).
 * Its log lines go to `logs`.
 */
export async function openApp(o: { dataDir: string; databaseUrl?: string; ca: CaContext; config: ServerConfig; clock: () => Date; logs: string[]; tls?: boolean; logger?: LoggerOptions; reauthorize?: AppDeps['reauthorize']; consoleAssets?: AppDeps['consoleAssets'] }): Promise<Pick<Harness, 'db' | 'bus' | 'app' | 'crl' | 'outbox' | 'live'>> {
  const db = await openDb({ dataDir: o.dataDir, ...(o.databaseUrl ? { databaseUrl: o.databaseUrl } : {}) });
  const bus = await createEventBus(db);
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      o.logs.push(chunk.toString());
      cb();
    },
  });
  const built = await buildApp({
    db,
    ca: o.ca,
    config: o.config,
    bus,
    clock: o.clock,
    ...(o.reauthorize ? { reauthorize: o.reauthorize } : {}),
    ...(o.consoleAssets ? { consoleAssets: o.consoleAssets } : {}),
    ...(o.tls
      ? {}
      : {
          clientCert: (req) => {
            const v = req.headers[CLIENT_CERT_HEADER];
            return typeof v === 'string' ? Buffer.from(v, 'base64') : undefined;
          },
        }),
    fastify: { logger: { ...(o.logger ?? { level: 'info' }), stream }, ...(o.tls ? { https: serverTlsOptions(o.dataDir, o.ca) } : {}) },
  });
  await built.app.ready();
  // As start-up does: revocations committed before a "crash" are delivered now.
  await built.outbox.drain(0);
  return { db, bus, app: built.app, crl: built.crl, outbox: built.outbox, live: built.live };
}

export interface DeviceKey {
  key: crypto.KeyObject;
  csr: Buffer;
}

export async function deviceCsr(opts: { cn?: string; curve?: string; facts?: unknown; key?: crypto.KeyObject } = {}): Promise<DeviceKey> {
  const key = opts.key ?? crypto.generateKeyPairSync('ec', { namedCurve: opts.curve ?? 'P-256' }).privateKey;
  const csr = await createCsr({
    subject: [{ type: 'CN', value: opts.cn ?? 'laptop-1' }],
    signer: nodeSigner(key),
    ...(opts.facts ? { stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: JSON.stringify(opts.facts) }] } : {}),
  });
  return { key, csr };
}

export const b64 = (der: Uint8Array): string => Buffer.from(der).toString('base64');

export function enroll(h: Harness, token: string | undefined, csr: Buffer, contentType = 'application/pkcs10') {
  return h.app.inject({
    method: 'POST',
    url: EST_PATHS.simpleenroll,
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    payload: b64(csr),
  });
}

export function reenroll(h: Harness, clientCert: Buffer | undefined, csr: Buffer) {
  return h.app.inject({
    method: 'POST',
    url: EST_PATHS.simplereenroll,
    headers: { 'content-type': 'application/pkcs10', ...(clientCert ? { [CLIENT_CERT_HEADER]: b64(clientCert) } : {}) },
    payload: b64(csr),
  });
}

/** The certificate in an EST certs-only response body. */
export const certFromBody = (body: string): Certificate => parseCertificate(decodeCertsOnly(body)[0]!);

export async function adminCall<T = unknown>(h: Harness, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, token = h.adminToken): Promise<{ status: number; json: T }> {
  const r = await h.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body !== undefined ? { payload: body as object } : {}) });
  return { status: r.statusCode, json: (r.body ? JSON.parse(r.body) : undefined) as T };
}

export async function createToken(h: Harness, body: Record<string, unknown> = {}): Promise<string> {
  const r = await adminCall<{ token: string }>(h, 'POST', '/v1/admin/tokens', body);
  if (r.status !== 201) throw new Error(`token create failed: ${JSON.stringify(r.json)}`);
  return r.json.token;
}

export const csrPem = csrToPem;
