/**
 * A small Prometheus registry: counters and a latency histogram, rendered in
 * the text exposition format at /metrics.
 */
type Labels = Record<string, string>;

const formatKey = (name: string, labels: Labels): string => {
  const l = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c))}"`)
    .join(',');
  return l ? `${name}{${l}}` : name;
};

/** Formatted series keys, memoized: this runs for every request. */
const keyCache = new Map<string, string>();
const key = (name: string, labels: Labels): string => {
  let raw = name;
  for (const k in labels) raw += '\u0000' + k + '\u0001' + labels[k];
  let f = keyCache.get(raw);
  if (f === undefined) {
    f = formatKey(name, labels);
    if (keyCache.size < 10_000) keyCache.set(raw, f);
  }
  return f;
};

const HELP: Record<string, [string, 'counter' | 'histogram']> = {
  latchkey_issuances_total: ['Certificates issued, by kind (enroll, renew, recover).', 'counter'],
  latchkey_enrollment_failures_total: ['Refused enrollment requests, by error code.', 'counter'],
  latchkey_revocations_total: ['Devices revoked.', 'counter'],
  latchkey_ocsp_responses_total: ['OCSP responses, by status.', 'counter'],
  latchkey_http_request_duration_seconds: ['HTTP request latency, by route.', 'histogram'],
};

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface Metrics {
  inc(name: string, labels?: Labels, by?: number): void;
  observe(name: string, labels: Labels, seconds: number): void;
  render(): string;
}

export function createMetrics(): Metrics {
  const counters = new Map<string, Map<string, number>>();
  const hist = new Map<string, Map<string, { counts: number[]; sum: number; n: number; labels: Labels }>>();
  return {
    inc(name, labels = {}, by = 1) {
      let m = counters.get(name);
      if (!m) counters.set(name, (m = new Map()));
      const k = key(name, labels);
      m.set(k, (m.get(k) ?? 0) + by);
    },
    observe(name, labels, seconds) {
      let m = hist.get(name);
      if (!m) hist.set(name, (m = new Map()));
      const k = key(name, labels);
      let h = m.get(k);
      if (!h) m.set(k, (h = { counts: BUCKETS.map(() => 0), sum: 0, n: 0, labels }));
      BUCKETS.forEach((b, i) => {
        if (seconds <= b) h.counts[i]!++;
      });
      h.sum += seconds;
      h.n++;
    },
    render() {
      const out: string[] = [];
      const names = new Set([...Object.keys(HELP), ...counters.keys(), ...hist.keys()]);
      for (const name of names) {
        const [help, type] = HELP[name] ?? ['', counters.has(name) ? 'counter' : 'histogram'];
        out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        for (const [k, v] of counters.get(name) ?? []) out.push(`${k} ${v}`);
        for (const h of hist.get(name)?.values() ?? []) {
          BUCKETS.forEach((b, i) => out.push(`${key(`${name}_bucket`, { ...h.labels, le: String(b) })} ${h.counts[i]}`));
          out.push(`${key(`${name}_bucket`, { ...h.labels, le: '+Inf' })} ${h.n}`);
          out.push(`${key(`${name}_sum`, h.labels)} ${h.sum}`, `${key(`${name}_count`, h.labels)} ${h.n}`);
        }
      }
      return out.join('\n') + '\n';
    },
  };
}
