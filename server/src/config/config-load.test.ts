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

test('oidc: absent loads (no section); a minimal issuer gets the default scopes, claims and empty group mappings', (t) => {
  assert.equal(withConfig(t, {})().oidc, undefined);
  const c = withConfig(t, { oidc: { issuers: [{ issuer: 'https://idp.example.com/realms/corp', clientId: 'latchkey' }] } })();
  assert.deepEqual(c.oidc?.issuers[0], { issuer: 'https://idp.example.com/realms/corp', clientId: 'latchkey', scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'], emailClaim: 'email', groupsClaim: 'groups', trustEmail: false });
  assert.deepEqual(c.oidc?.adminGroups, { viewer: [], operator: [], admin: [] });
  assert.deepEqual([c.oidc?.enrollGroups, c.oidc?.allowedEmailDomains], [[], []]);
});

test('oidc: the issuer is https (http only on 127.0.0.1/localhost), listed once, with one way to give the secret', (t) => {
  const iss = (issuer: string, extra = {}) => ({ oidc: { issuers: [{ issuer, clientId: 'c', ...extra }] } });
  assert.equal(withConfig(t, iss('http://127.0.0.1:9000'))().oidc?.issuers[0]?.issuer, 'http://127.0.0.1:9000');
  for (const bad of ['http://idp.example.com', 'not a url', 'ftp://idp.example.com', 'https://idp.example.com/?x=1']) {
    assert.throws(withConfig(t, iss(bad)), (e: Error) => e instanceof ConfigError && /must be an https:\/\/ URL/.test(e.message), bad);
  }
  const twice = { oidc: { issuers: [{ issuer: 'https://a.example', clientId: 'c' }, { issuer: 'https://a.example', clientId: 'd' }] } };
  assert.throws(withConfig(t, twice), (e: Error) => e instanceof ConfigError && /listed twice/.test(e.message));
  assert.throws(withConfig(t, iss('https://a.example', { clientSecret: 's', clientSecretFile: 'f' })), (e: Error) => e instanceof ConfigError && /not both/.test(e.message));
  assert.throws(withConfig(t, iss('https://a.example', { clientSecrets: 's' })), (e: Error) => e instanceof ConfigError && /oidc/.test(e.message));
});
