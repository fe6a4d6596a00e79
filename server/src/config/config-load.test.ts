import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, localServerUrl } from './config-load.js';

const base = { org: 'Example Corp', url: 'https://latchkey.example.com:8443', listen: '0.0.0.0:8443', trustDomain: 'example.com' };

function withConfig(t: { after(fn: () => void): void }, extra: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...base, ...extra }));
  return () => loadConfig(dir, {});
}

test('connection edges: timeouts and per-device channels have defaults, and a config.json written before them still loads', (t) => {
  const c = withConfig(t, {})();
  assert.deepEqual(
    [c.tlsHandshakeTimeoutSeconds, c.requestHeadersTimeoutSeconds, c.requestTimeoutSeconds, c.keepAliveTimeoutSeconds, c.maxIdleConnections, c.maxAgentConnectionsPerDevice],
    [10, 10, 30, 30, 0, 2],
  );
});

test('connection edges: headers cannot take longer than the whole request; a device needs at least one channel', (t) => {
  assert.throws(withConfig(t, { requestHeadersTimeoutSeconds: 20, requestTimeoutSeconds: 10 }), (e: Error) => e instanceof ConfigError && /requestHeadersTimeoutSeconds exceeds requestTimeoutSeconds/.test(e.message));
  assert.throws(withConfig(t, { maxAgentConnectionsPerDevice: 0 }), (e: Error) => e instanceof ConfigError && /maxAgentConnectionsPerDevice/.test(e.message));
  assert.throws(withConfig(t, { tlsHandshakeTimeoutSeconds: 0 }), (e: Error) => e instanceof ConfigError && /tlsHandshakeTimeoutSeconds/.test(e.message));
});

test('listen is HOST:PORT or [IPv6]:PORT, parsed by the one parser start, the CLI and gateway config use', (t) => {
  assert.equal(withConfig(t, { listen: '[::]:8443' })().listen, '[::]:8443');
  for (const listen of [':::8443', '0.0.0.0:8443;x', 'h_$x:1', '[zz]:1', 'localhost']) {
    assert.throws(withConfig(t, { listen }), (e: Error) => e instanceof ConfigError && /listen/.test(e.message), listen);
  }
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [listen, url] of [['0.0.0.0:8443', 'https://127.0.0.1:8443'], ['[::]:9443', 'https://127.0.0.1:9443'], ['[::1]:8443', 'https://[::1]:8443'], ['server.corp:8443', 'https://server.corp:8443']] as const) {
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...base, listen }));
    assert.equal(localServerUrl(dir), url, listen);
  }
});
