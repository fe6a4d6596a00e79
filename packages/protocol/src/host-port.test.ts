import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostForUrl, localUrl, parseHostPort } from './host-port.js';

test('RFC 3986 §3.2.2: HOST:PORT and [IPv6]:PORT parse; the brackets are not part of the host', () => {
  assert.deepEqual(parseHostPort('gw.example.com:443'), { host: 'gw.example.com', port: 443, ipv6: false });
  assert.deepEqual(parseHostPort('127.0.0.1:0'), { host: '127.0.0.1', port: 0, ipv6: false });
  assert.deepEqual(parseHostPort(' [::1]:2222 '), { host: '::1', port: 2222, ipv6: true });
  assert.deepEqual(parseHostPort('gw_1.corp:8443'), { host: 'gw_1.corp', port: 8443, ipv6: false });
  for (const bad of ['gw.example.com', 'gw:', ':443', 'gw:70000', '::1:22', 'a b:1', 'gw:44x', '1.2.3.4:1;x', '[::1]', 'h;x:1', '[zz]:1', 'gw:123456']) {
    assert.equal(parseHostPort(bad), undefined, bad);
  }
});

test('a wildcard listener is reached on loopback; IPv6 goes back into brackets', () => {
  assert.equal(localUrl(parseHostPort('0.0.0.0:8443')!), 'https://127.0.0.1:8443');
  assert.equal(localUrl(parseHostPort('[::]:8443')!), 'https://127.0.0.1:8443');
  assert.equal(localUrl(parseHostPort('[::1]:8443')!), 'https://[::1]:8443');
  assert.equal(localUrl(parseHostPort('server.corp:9000')!), 'https://server.corp:9000');
  assert.equal(hostForUrl({ host: 'fd00::5', ipv6: true }), '[fd00::5]');
});
