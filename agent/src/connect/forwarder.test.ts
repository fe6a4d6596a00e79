import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../errors.js';
import { describeDialError, isLoopback, parseHostPort } from './forwarder.js';

test('HOST:PORT and [IPv6]:PORT parse; anything else is a usage error that names the flag', () => {
  assert.deepEqual(parseHostPort('gw.example.com:443', '--to'), { host: 'gw.example.com', port: 443 });
  assert.deepEqual(parseHostPort('127.0.0.1:0', '--listen'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseHostPort('[::1]:2222', '--listen'), { host: '::1', port: 2222 });
  for (const bad of ['gw.example.com', 'gw:', ':443', 'gw:70000', '::1:22', 'a b:1', 'gw:44x']) {
    assert.throws(() => parseHostPort(bad, '--to'), (e: unknown) => e instanceof AgentError && e.code === 'USAGE' && /--to must be HOST:PORT/.test(e.message), bad);
  }
});

test('only loopback listeners are allowed without --allow-remote', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '192.168.1.10', 'laptop.local']) assert.equal(isLoopback(h), false, h);
});

test('dial errors say what to do', () => {
  const to = { host: 'gw', port: 443 };
  const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});
  assert.match(describeDialError(err('ssl3_read_bytes:sslv3 alert certificate revoked'), to), /revoked/);
  assert.match(describeDialError(err('connect ECONNREFUSED', 'ECONNREFUSED'), to), /nothing listens on gw:443/);
  assert.match(describeDialError(err("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'), to), /--ca FILE.*--servername/);
  assert.match(describeDialError(err('This socket has been ended by the other party', 'EPIPE'), to), /closed the connection before sending anything.*latchkey status/);
});
