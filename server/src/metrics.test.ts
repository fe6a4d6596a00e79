/**
 * /metrics as Prometheus scrapes it: the text exposition format parsed line
 * by line, every series an operator watches present with a plausible value,
 * on both database engines.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { GatewayTokenCreateResponse } from '@latchkey/protocol';
import WebSocket from 'ws';
import { ENGINES, adminCall, certFromBody, createToken, deviceCsr, enroll, harness, type Harness } from './testing/harness.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text format (version 0.0.4): `# TYPE name kind` lines, and `name{a="b",…} value` samples. */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value), `not a number: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { types, samples };
}

/** The one sample of `name` whose labels include `labels`. */
function one(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(hits.length, 1, `${name}${JSON.stringify(labels)}: ${hits.length} series in the scrape`);
  return hits[0]!.value;
}

async function scrape(h: Harness): Promise<{ types: Map<string, string>; samples: Sample[] }> {
  const r = await h.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(r.statusCode, 200, r.body);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseExposition(r.body);
}

const YEAR = 365 * 86_400;

for (const engine of ENGINES) {
  describe(`Prometheus /metrics on ${engine}`, () => {
    test('a scrape has the Node.js defaults and every Latchkey series, each with a plausible value', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const token = await createToken(h, { uses: 3 });
      const serials: string[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await enroll(h, token, (await deviceCsr()).csr);
        assert.equal(r.statusCode, 200, r.body);
        serials.push(certFromBody(r.body).serialHex);
      }
      assert.equal((await enroll(h, 'lk_enr_bad', (await deviceCsr()).csr)).statusCode, 401);
      const devices = (await adminCall<{ items: { id: string; certificate: { serial: string } | null }[] }>(h, 'GET', '/v1/admin/devices')).json.items;
      const revoked = devices.find((d) => d.certificate?.serial === serials[0])!;
      assert.equal((await adminCall(h, 'POST', `/v1/admin/devices/${revoked.id}/revoke`, { reason: 'keyCompromise' })).status, 200);

      // A gateway on the event stream, replaying from the start: it gets the revocation.
      const gw = (await adminCall<GatewayTokenCreateResponse>(h, 'POST', '/v1/admin/gateway-tokens', { name: 'edge-1' })).json;
      await h.app.listen({ host: '127.0.0.1', port: 0 });
      const ws = new WebSocket(`ws://127.0.0.1:${(h.app.server.address() as AddressInfo).port}/v1/events`, { headers: { authorization: `Bearer ${gw.token}` } });
      t.after(() => ws.terminate());
      const gotRevocation = new Promise<void>((resolve) => ws.on('message', (d) => (JSON.parse(d.toString()) as { type: string }).type === 'revocation' && resolve()));
      await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
      ws.send(JSON.stringify({ type: 'subscribe', since: '0' }));
      await gotRevocation;

      const { types, samples } = await scrape(h);
      // Node.js and process defaults, as every Grafana Node.js dashboard reads them.
      assert.ok(one(samples, 'process_cpu_seconds_total') > 0);
      assert.ok(one(samples, 'process_resident_memory_bytes') > 1e6);
      assert.ok(one(samples, 'nodejs_heap_size_used_bytes') > 1e6);
      assert.ok(one(samples, 'nodejs_eventloop_lag_seconds') >= 0);
      assert.ok(one(samples, 'nodejs_active_handles_total') >= 1);
      // Counters the routes feed.
      assert.equal(types.get('latchkey_issuances_total'), 'counter');
      assert.equal(one(samples, 'latchkey_issuances_total', { kind: 'enroll' }), 2);
      assert.equal(one(samples, 'latchkey_enrollment_failures_total', { code: 'TOKEN_INVALID' }), 1);
      assert.equal(one(samples, 'latchkey_revocations_total'), 1);
      const enrolls = { route: '/.well-known/est/simpleenroll', status: '200' };
      assert.equal(one(samples, 'latchkey_http_request_duration_seconds_count', enrolls), 2);
      assert.equal(one(samples, 'latchkey_http_request_duration_seconds_bucket', { ...enrolls, le: '+Inf' }), 2);
      assert.ok(one(samples, 'latchkey_http_request_duration_seconds_sum', enrolls) > 0);
      // Gauges read at scrape time.
      assert.equal(types.get('latchkey_devices'), 'gauge');
      assert.equal(one(samples, 'latchkey_devices', { status: 'active' }), 1);
      assert.equal(one(samples, 'latchkey_devices', { status: 'revoked' }), 1);
      assert.equal(one(samples, 'latchkey_devices', { status: 'pending' }), 0);
      assert.equal(one(samples, 'latchkey_devices', { status: 'denied' }), 0);
      assert.equal(one(samples, 'latchkey_agents_online'), 0);
      assert.equal(one(samples, 'latchkey_agent_connections'), 0);
      for (const ca of ['root', 'issuing']) {
        const s = one(samples, 'latchkey_ca_certificate_expiry_seconds', { ca });
        assert.ok(s > 30 * 86_400 && s < 30 * YEAR, `${ca} CA expires in ${s} s`);
      }
      const crl = one(samples, 'latchkey_crl_expiry_seconds', { ca: 'issuing' });
      assert.ok(crl > 0 && crl <= h.config.crlValiditySeconds, `issuing CRL expires in ${crl} s`);
      assert.equal(one(samples, 'latchkey_gateway_streams'), 1);
      assert.ok(one(samples, 'latchkey_gateway_stream_backlog_bytes') >= 0);
      assert.ok(one(samples, 'latchkey_gateway_event_lag_seconds_count') >= 1, 'the replayed revocation was timed');
      assert.ok(one(samples, 'latchkey_gateway_event_lag_seconds_sum') >= 0);
    });
  });
}

test('a flood of concurrent scrapes of the public /metrics runs the gauge queries once, not once per request', async () => {
  const { createMetrics } = await import('./metrics.js');
  const m = createMetrics();
  let queries = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  m.watch({
    clock: () => new Date('2026-12-03T00:00:00Z'),
    devicesByStatus: async () => (queries++, await gate, { active: 3 }),
    agentsOnline: async () => 1,
    agentConnections: () => 0,
    caCertificates: () => ({}),
    servedCrl: async () => undefined,
    gatewayStreams: () => ({ connected: 0, backlogBytes: 0 }),
    onError: (metric, e) => assert.fail(`${metric}: ${String(e)}`),
  });
  const scrapes = Array.from({ length: 1000 }, () => m.render());
  release();
  const bodies = await Promise.all(scrapes);
  assert.equal(queries, 1);
  for (const b of bodies) assert.match(b, /latchkey_devices\{status="active"\} 3/);
  // The next scrape after that one finished collects afresh.
  await m.render();
  assert.equal(queries, 2);
});
