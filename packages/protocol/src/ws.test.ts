import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { AgentMessage, type AgentPolicy, agentPolicyOf, GatewayEvent, GatewaySubscribe, KEYSTORE_KINDS, KeystoreKind, MAX_WS_MESSAGE_BYTES, ServerMessage, ServerPolicy, WS_CLOSE_CODES } from './ws.js';
import { MAX_FACTS_JSON } from './facts.js';
import { PROTOCOL_VERSION } from './version.js';

const at = '2026-03-01T12:00:00Z';
const deviceId = '6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90';
const facts = { hostname: 'laptop-7', os: { platform: 'linux', release: '6.1.0' }, arch: 'x64', hardwareId: 'a1b2c3', agentVersion: '0.1.0' };
const hello = { type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: '0.1.0', facts };
const errorPath = (schema: Parameters<typeof Value.Errors>[0], v: unknown) => Value.Errors(schema, v).First()?.path;

describe('control channel: agent → server', () => {
  test('hello, status and heartbeat pass', () => {
    assert.ok(Value.Check(AgentMessage, hello));
    assert.ok(Value.Check(AgentMessage, { type: 'status', serial: 'ab01', notAfter: at, keystore: 'pkcs11' }));
    assert.ok(Value.Check(AgentMessage, { type: 'status', serial: 'ab01', notAfter: at, keystore: 'os', lastError: 'ECONNREFUSED' }));
    assert.ok(Value.Check(AgentMessage, { type: 'heartbeat', seq: 0 }));
  });

  test('a hello with an oversized hostname fails', () => {
    assert.ok(!Value.Check(AgentMessage, { ...hello, facts: { ...facts, hostname: 'h'.repeat(254) } }));
  });

  test('an unknown type, or no type, fails', () => {
    assert.ok(!Value.Check(AgentMessage, { type: 'shutdown' }));
    assert.ok(!Value.Check(AgentMessage, { seq: 1 }));
    assert.ok(!Value.Check(AgentMessage, { type: 'welcome', deviceId, heartbeatSeconds: 30 }), 'a server message is not an agent message');
  });

  test('additional properties are rejected on agent messages', () => {
    assert.ok(!Value.Check(AgentMessage, { type: 'heartbeat', seq: 1, deviceId }));
    assert.ok(!Value.Check(AgentMessage, { ...hello, admin: true }));
  });

  test('status needs a hex serial, an RFC 3339 time and a known keystore', () => {
    const status = { type: 'status', serial: 'ab01', notAfter: at, keystore: 'file' };
    assert.ok(!Value.Check(AgentMessage, { ...status, serial: 'XYZ' }));
    assert.ok(!Value.Check(AgentMessage, { ...status, notAfter: 'tomorrow' }));
    assert.ok(!Value.Check(AgentMessage, { ...status, keystore: 'yubikey' }));
    assert.ok(!Value.Check(AgentMessage, { ...status, lastError: 'e'.repeat(1001) }));
  });

  test('hello needs a positive integer protocol version and a negative heartbeat seq fails', () => {
    assert.ok(!Value.Check(AgentMessage, { ...hello, protocolVersion: 0 }));
    assert.ok(!Value.Check(AgentMessage, { ...hello, protocolVersion: '1' }));
    assert.ok(!Value.Check(AgentMessage, { type: 'heartbeat', seq: -1 }));
  });

  test('a hello with maximal facts fits in one message', () => {
    assert.ok(MAX_FACTS_JSON + 512 <= MAX_WS_MESSAGE_BYTES);
  });
});

describe('message types', () => {
  test('`type` narrows the static union to one message', () => {
    const describe = (m: AgentMessage | ServerMessage): string => {
      switch (m.type) {
        case 'hello':
          return m.facts.hostname;
        case 'status':
          return m.serial;
        case 'revoked':
          return m.reason;
        case 'policy':
          return String(m.renewFraction);
        default:
          return m.type;
      }
    };
    assert.equal(describe(hello as AgentMessage), 'laptop-7');
    assert.equal(describe({ type: 'revoked', reason: 'superseded', revokedAt: at }), 'superseded');
    assert.equal(describe({ type: 'heartbeat-ack', seq: 1 }), 'heartbeat-ack');
  });
});

describe('control channel: server → agent', () => {
  test('welcome, revoked, renew-now, policy and heartbeat-ack pass', () => {
    assert.ok(Value.Check(ServerMessage, { type: 'welcome', deviceId, heartbeatSeconds: 30 }));
    assert.ok(Value.Check(ServerMessage, { type: 'revoked', reason: 'keyCompromise', revokedAt: at }));
    assert.ok(Value.Check(ServerMessage, { type: 'renew-now' }));
    assert.ok(Value.Check(ServerMessage, { type: 'renew-now', reason: 'group policy changed' }));
    assert.ok(Value.Check(ServerMessage, { type: 'policy', certLifetimeSeconds: 86400, renewFraction: 2 / 3, heartbeatSeconds: 30 }));
    assert.ok(Value.Check(ServerMessage, { type: 'heartbeat-ack', seq: 7 }));
  });

  test('revoked needs an RFC 5280 reason name and a time', () => {
    assert.ok(!Value.Check(ServerMessage, { type: 'revoked', reason: 'because', revokedAt: at }));
    assert.ok(!Value.Check(ServerMessage, { type: 'revoked', reason: 'keyCompromise', revokedAt: 'yesterday' }));
    assert.ok(!Value.Check(ServerMessage, { type: 'revoked', reason: 'keyCompromise' }));
  });

  test('policy: renewFraction strictly between 0 and 1, heartbeat at most an hour', () => {
    const policy = { type: 'policy', certLifetimeSeconds: 86400, renewFraction: 0.66, heartbeatSeconds: 30 };
    assert.ok(!Value.Check(ServerMessage, { ...policy, renewFraction: 1 }));
    assert.ok(!Value.Check(ServerMessage, { ...policy, renewFraction: 0 }));
    assert.ok(!Value.Check(ServerMessage, { ...policy, heartbeatSeconds: 3601 }));
  });

  test('welcome needs a UUID device id; an unknown type fails', () => {
    assert.ok(!Value.Check(ServerMessage, { type: 'welcome', deviceId: 'dev-1', heartbeatSeconds: 30 }));
    assert.ok(!Value.Check(ServerMessage, { type: 'reboot' }));
    assert.ok(!Value.Check(ServerMessage, hello), 'an agent message is not a server message');
  });
});

describe('gateway event stream', () => {
  const revocation = { type: 'revocation', cursor: '17', deviceId, crlNumber: '42', issuer: 'issuing', reason: 'superseded', at };

  test('revocation, crl-updated and resync-required pass', () => {
    assert.ok(Value.Check(GatewayEvent, revocation));
    assert.ok(Value.Check(GatewayEvent, { type: 'crl-updated', cursor: '18', issuer: 'root', crlNumber: '5', url: 'https://pki.example.com:8443/crl/root' }));
    assert.ok(Value.Check(GatewayEvent, { type: 'resync-required', cursor: '18' }));
  });

  test('every event carries a cursor', () => {
    assert.ok(!Value.Check(GatewayEvent, { type: 'crl-updated', issuer: 'issuing', crlNumber: '5', url: '/crl' }));
    assert.ok(!Value.Check(GatewayEvent, { ...revocation, cursor: '' }));
    assert.ok(!Value.Check(GatewayEvent, { type: 'resync-required' }));
  });

  test('revocation names a CRL number of a known issuer, and no list of serials', () => {
    const { crlNumber: _n, ...noNumber } = revocation;
    assert.ok(!Value.Check(GatewayEvent, noNumber));
    assert.ok(!Value.Check(GatewayEvent, { ...revocation, crlNumber: '0x2A' }));
    assert.ok(!Value.Check(GatewayEvent, { ...revocation, issuer: 'policy' }));
  });

  test('RFC 5280 §5.2.3: CRL numbers are non-negative decimal strings up to 20 octets', () => {
    const ev = { type: 'crl-updated', cursor: '1', issuer: 'issuing', url: '/crl' };
    assert.ok(Value.Check(GatewayEvent, { ...ev, crlNumber: '0' }));
    assert.ok(Value.Check(GatewayEvent, { ...ev, crlNumber: (2n ** 159n - 1n).toString() }));
    assert.ok(!Value.Check(GatewayEvent, { ...ev, crlNumber: '-1' }));
    assert.ok(!Value.Check(GatewayEvent, { ...ev, crlNumber: '007' }));
    assert.ok(!Value.Check(GatewayEvent, { ...ev, crlNumber: 5 }));
  });

  test('subscribe: since is optional; unknown fields are rejected', () => {
    assert.ok(Value.Check(GatewaySubscribe, { type: 'subscribe' }));
    assert.ok(Value.Check(GatewaySubscribe, { type: 'subscribe', since: '17' }));
    assert.equal(errorPath(GatewaySubscribe, { type: 'subscribe', since: '17', filter: 'all' }), '/filter');
    assert.ok(!Value.Check(GatewaySubscribe, { type: 'subscribe', since: 17 }));
  });
});

describe('RFC 6455 §7.4.2 close codes', () => {
  test('are distinct and in the private range 4000-4999', () => {
    const codes = Object.values(WS_CLOSE_CODES);
    for (const c of codes) assert.ok(c >= 4000 && c <= 4999, String(c));
    assert.equal(new Set(codes).size, codes.length);
  });
});

describe('the run-time copies the agent uses without TypeBox (wire.ts)', () => {
  test('agentPolicyOf accepts exactly the policies the ServerPolicy schema accepts', () => {
    const ok = { certLifetimeSeconds: 86400, renewFraction: 2 / 3, heartbeatSeconds: 30 };
    const cases: Record<string, unknown>[] = [
      ok,
      { ...ok, certLifetimeSeconds: 5 },
      { ...ok, certLifetimeSeconds: 4 },
      { ...ok, certLifetimeSeconds: 366 * 86400 + 1 },
      { ...ok, certLifetimeSeconds: 60.5 },
      { ...ok, renewFraction: 0 },
      { ...ok, renewFraction: 1 },
      { ...ok, renewFraction: '0.5' },
      { ...ok, heartbeatSeconds: 0 },
      { ...ok, heartbeatSeconds: 3601 },
      { certLifetimeSeconds: 86400, renewFraction: 0.5 },
    ];
    for (const c of cases) {
      const schema = Value.Check(ServerPolicy, { type: 'policy', ...c });
      assert.equal(agentPolicyOf(c) !== undefined, schema, JSON.stringify(c));
    }
    // The type is the schema's, without `type`.
    const fromSchema: Omit<ServerPolicy, 'type'> = agentPolicyOf(ok)!;
    const back: AgentPolicy = fromSchema;
    assert.deepEqual(back, ok);
  });

  test('KEYSTORE_KINDS are the KeystoreKind schema', () => {
    for (const k of KEYSTORE_KINDS) assert.ok(Value.Check(KeystoreKind, k));
    assert.ok(!Value.Check(KeystoreKind, 'tpm'));
    assert.equal(KeystoreKind.anyOf.length, KEYSTORE_KINDS.length);
  });
});
