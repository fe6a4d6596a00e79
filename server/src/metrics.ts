/**
 * Prometheus metrics at /metrics, with prom-client: the process and Node.js
 * defaults (CPU, memory, heap, event-loop lag, handles, GC) that dashboards
 * expect, the counters and histograms the routes and hubs feed, and gauges
 * read at scrape time from what already knows the answer (one grouped count
 * query for devices, one count for agents online, the CA certificates, the
 * served CRLs, the hubs): no per-device work on a scrape.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const COUNTERS = {
  latchkey_issuances_total: { help: 'Certificates issued, by kind (enroll, renew, recover).', labelNames: ['kind'] },
  latchkey_enrollment_failures_total: { help: 'Refused enrollment and re-enrollment requests, by error code.', labelNames: ['code'] },
  latchkey_revocations_total: { help: 'Devices revoked.', labelNames: [] },
  latchkey_ocsp_responses_total: { help: 'OCSP responses, by status (cached: answered from the response cache).', labelNames: ['status'] },
  latchkey_agent_connections_total: { help: 'Agent control-channel connections greeted (hello accepted).', labelNames: [] },
  latchkey_agent_connections_replaced_total: { help: 'Agent connections closed because the same device connected again.', labelNames: [] },
  latchkey_agent_connections_refused_busy_total: { help: 'Agent connections refused because this replica holds its maximum.', labelNames: [] },
  latchkey_agent_status_serial_mismatch_total: { help: 'Agent status reports naming a certificate other than the one it connected with.', labelNames: [] },
  latchkey_ws_rate_limited_total: { help: 'WebSocket connections closed for sending too many messages, by endpoint.', labelNames: ['endpoint'] },
  latchkey_connections_shed_total: { help: 'Connections closed or refused to stay within the idle-connection and open-file limits, by reason.', labelNames: ['reason'] },
} as const satisfies Record<string, { help: string; labelNames: readonly string[] }>;

const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const HISTOGRAMS = {
  latchkey_http_request_duration_seconds: { help: 'HTTP request latency, by route and status.', labelNames: ['route', 'status'], buckets: HTTP_BUCKETS },
  latchkey_gateway_event_lag_seconds: {
    help: 'Seconds from a revocation or CRL update being recorded to its send on a gateway stream (replays after a reconnect included).',
    labelNames: [],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600],
  },
} as const satisfies Record<string, { help: string; labelNames: readonly string[]; buckets: readonly number[] }>;

export type CounterName = keyof typeof COUNTERS;
export type HistogramName = keyof typeof HISTOGRAMS;
type Labels = Record<string, string>;

/** What the scrape-time gauges read. Each is cheap and bounded (see the module comment). */
export interface MetricsSources {
  clock: () => Date;
  /** Devices per status, from one grouped count query. */
  devicesByStatus(): Promise<Record<string, number>>;
  /** Devices with an agent connected to any replica now. */
  agentsOnline(): Promise<number>;
  /** Agent control-channel connections open on this replica. */
  agentConnections(): number;
  /** The CA certificates served (root, issuing). */
  caCertificates(): Record<string, { notAfter: Date }>;
  /** The CRL each CA serves now, if it has one. */
  servedCrl(ca: 'issuing' | 'root'): Promise<{ nextUpdate: Date } | undefined>;
  /** Gateway event streams open on this replica, and the most bytes any of them has queued unsent. */
  gatewayStreams(): { connected: number; backlogBytes: number };
  /** A gauge whose source failed is left out of this scrape; say why. */
  onError(metric: string, e: unknown): void;
}

export interface Metrics {
  inc(name: CounterName, labels?: Labels, by?: number): void;
  observe(name: HistogramName, labels: Labels, seconds: number): void;
  /** Registers the scrape-time gauges, once the parts they read exist. */
  watch(sources: MetricsSources): void;
  readonly contentType: string;
  render(): Promise<string>;
}

/** A gauge set by `read` at each scrape; a failing read leaves the gauge out rather than stale. */
function scrapeGauge(registry: Registry, name: string, help: string, labelNames: string[], onError: MetricsSources['onError'], read: (g: Gauge) => void | Promise<void>): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        await read(this);
      } catch (e) {
        this.reset();
        onError(name, e);
      }
    },
  });
}

const secondsUntil = (d: Date, now: Date): number => (d.getTime() - now.getTime()) / 1000;

function watch(registry: Registry, s: MetricsSources): void {
  const gauge = (name: string, help: string, labelNames: string[], read: (g: Gauge) => void | Promise<void>): void => scrapeGauge(registry, name, help, labelNames, s.onError, read);
  gauge('latchkey_devices', 'Devices by status (pending, active, revoked, denied).', ['status'], async (g) => {
    const counts = await s.devicesByStatus();
    for (const status of ['pending', 'active', 'revoked', 'denied']) g.set({ status }, counts[status] ?? 0);
  });
  gauge('latchkey_agents_online', 'Devices whose agent is connected to any replica now.', [], async (g) => g.set(await s.agentsOnline()));
  gauge('latchkey_agent_connections', 'Agent control-channel connections open on this replica.', [], (g) => g.set(s.agentConnections()));
  gauge('latchkey_ca_certificate_expiry_seconds', 'Seconds until each CA certificate expires (negative: expired).', ['ca'], (g) => {
    const now = s.clock();
    for (const [ca, c] of Object.entries(s.caCertificates())) g.set({ ca }, secondsUntil(c.notAfter, now));
  });
  gauge('latchkey_crl_expiry_seconds', "Seconds until the nextUpdate of each CA's served CRL (negative: gateways hold an expired CRL).", ['ca'], async (g) => {
    const now = s.clock();
    for (const ca of ['issuing', 'root'] as const) {
      const crl = await s.servedCrl(ca);
      if (crl) g.set({ ca }, secondsUntil(crl.nextUpdate, now));
    }
  });
  gauge('latchkey_gateway_streams', 'Gateway event streams (/v1/events) connected to this replica.', [], (g) => g.set(s.gatewayStreams().connected));
  gauge('latchkey_gateway_stream_backlog_bytes', 'Most bytes queued unsent on one gateway stream of this replica (a gateway not keeping up).', [], (g) => g.set(s.gatewayStreams().backlogBytes));
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const counters = new Map<string, Counter>(Object.entries(COUNTERS).map(([name, c]) => [name, new Counter({ name, help: c.help, labelNames: [...c.labelNames], registers: [registry] })]));
  const histograms = new Map<string, Histogram>(
    Object.entries(HISTOGRAMS).map(([name, h]) => [name, new Histogram({ name, help: h.help, labelNames: [...h.labelNames], buckets: [...h.buckets], registers: [registry] })]),
  );
  let watching = false;
  let inFlight: Promise<string> | undefined;
  return {
    inc: (name, labels = {}, by = 1) => counters.get(name)!.inc(labels, by),
    observe: (name, labels, seconds) => histograms.get(name)!.observe(labels, seconds),
    watch(sources) {
      if (watching) throw new Error('metrics: watch() once per registry');
      watching = true;
      watch(registry, sources);
    },
    contentType: registry.contentType,
    // /metrics is public: scrapes that arrive while one is being collected share its answer, so a flood
    // of requests costs at most one set of gauge queries at a time (never one per request).
    render() {
      inFlight ??= registry.metrics().finally(() => (inFlight = undefined));
      return inFlight;
    },
  };
}
