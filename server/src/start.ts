/**
 * `latchkey-server start`: the process. Loads and validates config once,
 * unlocks the CA keys, opens the database (migrating it), serves HTTPS on
 * one port (TLS 1.2/1.3; client certificates requested, never required at
 * the TLS layer), and closes gracefully on SIGTERM/SIGINT: in-flight
 * requests (an issuance mid-transaction) finish before the process exits.
 */
import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { join } from 'node:path';
import { buildApp } from './app.js';
import { buildCaContext, loadCaKeys, type CaContext } from './ca/ca-context.js';
import { FILES } from './ca/ca-files.js';
import { CONFIG_FILE, ConfigError, caPassphrase, listenAddress, loadConfig, type ConfigOverrides } from './config/config-load.js';
import { createEventBus } from './events/event-bus.js';
import { EVENTS_RETENTION_DEFAULT_DAYS, createEventsPruner } from './events/events-pruner.js';
import { eventsRepo } from './events/events-repo.js';
import { serverLoggerOptions } from './logger.js';
import { renewServiceCertificatesIfNeeded } from './init.js';
import { modeProblems, modeProblemsMessage } from './storage/data-dir-modes.js';
import { SQLITE_FILE, openDb } from './storage/db.js';
import { DEFAULT_GROUP } from './tokens/tokens-service.js';
import { groupsRepo } from './groups/groups-repo.js';
import { crashPointFromEnv } from './util/crash-point.js';
import { guardConnections } from './util/connection-guard.js';
import { agentConnectionCap, connectionCaps, openFileLimit } from './util/fd-limit.js';

/** The HTTPS server's TLS: its certificate from the data dir; client certificates requested, checked per route zone. */
export function serverTlsOptions(dataDir: string, ca: CaContext): ServerOptions {
  return {
    key: readFileSync(join(dataDir, FILES.tlsKey)),
    cert: readFileSync(join(dataDir, FILES.tlsCert)),
    ca: [ca.issuing.cert.der, ca.root.der].map((d) => `-----BEGIN CERTIFICATE-----\n${d.toString('base64')}\n-----END CERTIFICATE-----\n`),
    requestCert: true,
    // Checked per route zone (device routes verify against our CA and records).
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  };
}

export interface Started {
  url: string;
  port: number;
  /** Whether people sign in through an identity provider (the console then offers no admin-token sign-in). */
  idp: boolean;
  close(): Promise<void>;
}

/** What only the server's user may read or write, besides the data dir itself. */
const privateFiles = (config: { caPassphraseFile?: string | undefined; databaseUrl?: string | undefined }): string[] => [
  FILES.rootKey,
  FILES.issuingKey,
  FILES.ocspKey,
  FILES.tlsKey,
  FILES.passphrase,
  FILES.adminToken,
  CONFIG_FILE,
  ...(config.caPassphraseFile ? [config.caPassphraseFile] : []),
  ...(config.databaseUrl ? [] : [SQLITE_FILE, `${SQLITE_FILE}-wal`, `${SQLITE_FILE}-shm`]),
];

export async function startServer(dataDir: string, env: NodeJS.ProcessEnv, flags: ConfigOverrides, log: (line: string) => void): Promise<Started> {
  const config = loadConfig(dataDir, env, flags);
  const exposed = modeProblemsMessage(modeProblems(dataDir, privateFiles(config)));
  if (exposed) throw new ConfigError(exposed);
  const passphrase = caPassphrase(dataDir, config, env);
  let keys;
  try {
    keys = loadCaKeys(dataDir, passphrase);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  let ca = buildCaContext(dataDir, config, keys);
  if (await renewServiceCertificatesIfNeeded({ dataDir, config, issuing: ca.issuing, passphrase, now: new Date() })) {
    log('renewed the server TLS and OCSP certificates (they were within 30 days of expiry)');
    ca = buildCaContext(dataDir, config, loadCaKeys(dataDir, passphrase));
  }
  const db = await openDb({ dataDir, log, ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}) });
  await groupsRepo(db.kysely).ensure({ name: DEFAULT_GROUP, cert_lifetime_seconds: config.certLifetimeSeconds, require_approval: 0, created_at: new Date().toISOString() });
  // The bus exists before the app and its logger: report to stderr like the start-up lines.
  const bus = await createEventBus(db, { onError: (m, e) => log(`event bus: ${m}${e ? `: ${e.message}` : ''}`) });
  const { app, crl, outbox, inFlight, metrics } = await buildApp({
    db,
    ca,
    config,
    bus,
    crashPoint: crashPointFromEnv(process.env),
    fastify: {
      logger: serverLoggerOptions(config.logLevel),
      https: {
        ...serverTlsOptions(dataDir, ca),
        // Edges (issue 10 §5): a stalled handshake, slow headers or a slow request do not hold a descriptor for long.
        handshakeTimeout: config.tlsHandshakeTimeoutSeconds * 1000,
        headersTimeout: config.requestHeadersTimeoutSeconds * 1000,
        // How often Node looks for requests past those timeouts.
        connectionsCheckingInterval: 1000,
      },
      requestTimeout: config.requestTimeoutSeconds * 1000,
      keepAliveTimeout: config.keepAliveTimeoutSeconds * 1000,
      forceCloseConnections: 'idle',
    },
  });
  // Idle connections (no request yet, or between requests) are bounded in time and number; see connection-guard.ts.
  const fileLimit = openFileLimit();
  const caps = connectionCaps(config.maxIdleConnections, fileLimit);
  let lastShedLog = 0;
  const guard = guardConnections(app.server, {
    maxIdle: caps.idle,
    maxOpen: caps.open,
    firstRequestMs: config.requestHeadersTimeoutSeconds * 1000,
    onShed: (reason) => {
      metrics.inc('latchkey_connections_shed_total', { reason });
      if (reason === 'first-request-timeout' || Date.now() - lastShedLog < 60_000) return;
      lastShedLog = Date.now();
      app.log.warn({ reason, idle: guard.idle, open: guard.open, maxIdle: caps.idle, maxOpen: caps.open }, reason === 'refused' ? 'out of connections (open-file limit) and none idle to close: refusing new ones' : 'too many idle connections: closing the oldest idle ones of the busiest client address (maxIdleConnections)');
    },
  });
  const { host, port } = listenAddress(config);
  await app.listen({ host, port });
  crl.start();
  // Revocations committed before a crash owe their CRL and event: delivered now, then swept.
  outbox.start();
  // The replayable events are kept eventsRetentionDays; older gateway cursors resync.
  const pruner = createEventsPruner({ events: eventsRepo(db.kysely), clock: () => new Date(), retentionDays: config.eventsRetentionDays ?? EVENTS_RETENTION_DEFAULT_DAYS, log: (msg, extra) => app.log.warn(extra ?? {}, msg) });
  pruner.start();
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  log(`latchkey-server listening on https://${host.includes(':') ? `[${host}]` : host}:${actualPort} (${db.engine}); devices use ${config.url}`);
  const cap = agentConnectionCap(config.maxAgentConnections, fileLimit);
  log(`connections: up to ${Number.isFinite(caps.open) ? `${caps.open} (open-file limit less a reserve)` : 'unlimited'}, ${caps.idle} of them idle${config.maxIdleConnections ? ' (maxIdleConnections)' : ''}; timeouts: TLS handshake ${config.tlsHandshakeTimeoutSeconds} s, request headers ${config.requestHeadersTimeoutSeconds} s, keep-alive ${config.keepAliveTimeoutSeconds} s`);
  log(`control channel: up to ${Number.isFinite(cap) ? cap : 'unlimited'} agent connections${config.maxAgentConnections ? ' (maxAgentConnections)' : fileLimit ? ` (open-file limit ${fileLimit} less a reserve; raise LimitNOFILE / ulimit -n for more)` : ''}`);
  let closing: Promise<void> | undefined;
  return {
    url: config.url,
    port: actualPort,
    idp: (config.oidc?.issuers.length ?? 0) > 0,
    close() {
      closing ??= (async () => {
        crl.stop();
        outbox.stop();
        await pruner.stop();
        log(`shutting down: ${inFlight()} request(s) in flight are answered first; new ones get 503`);
        // The guard keeps counting requests until the server is closed: its closeIdleConnections must not cut an answer.
        await app.close();
        guard.close();
        await bus.close();
        await db.close();
      })();
      return closing;
    },
  };
}
