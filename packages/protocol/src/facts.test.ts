import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { DeviceFacts, FACTS_ATTRIBUTE_OID, MAX_FACTS_JSON } from './facts.js';

const facts = {
  hostname: 'alice-mbp.local',
  os: { platform: 'darwin', release: '23.1.0', version: 'Darwin Kernel Version 23.1.0' },
  arch: 'arm64',
  hardwareId: 'C02XYZ12-3456-7890-ABCD-EF0123456789',
  agentVersion: '0.1.0',
  userEmail: 'alice@example.com',
};
const errorPath = (v: unknown) => Value.Errors(DeviceFacts, v).First()?.path;

describe('device facts', () => {
  test('full and minimal facts pass', () => {
    assert.ok(Value.Check(DeviceFacts, facts));
    const { userEmail: _e, ...noEmail } = facts;
    assert.ok(Value.Check(DeviceFacts, { ...noEmail, os: { platform: 'linux', release: '6.1.0-18-amd64' } }));
  });

  test('a hostname over 253 characters or empty fails', () => {
    assert.equal(errorPath({ ...facts, hostname: 'h'.repeat(254) }), '/hostname');
    assert.ok(Value.Check(DeviceFacts, { ...facts, hostname: 'h'.repeat(253) }));
    assert.equal(errorPath({ ...facts, hostname: '' }), '/hostname');
  });

  test('every string is bounded', () => {
    const big = 'x'.repeat(MAX_FACTS_JSON);
    assert.equal(errorPath({ ...facts, os: { ...facts.os, release: big } }), '/os/release');
    assert.equal(errorPath({ ...facts, os: { ...facts.os, version: big } }), '/os/version');
    assert.equal(errorPath({ ...facts, arch: big }), '/arch');
    assert.equal(errorPath({ ...facts, hardwareId: big }), '/hardwareId');
    assert.equal(errorPath({ ...facts, agentVersion: big }), '/agentVersion');
    assert.equal(errorPath({ ...facts, userEmail: `${big}@example.com` }), '/userEmail');
  });

  test('facts with maximal strings still fit in MAX_FACTS_JSON', () => {
    const max = {
      hostname: 'h'.repeat(253),
      os: { platform: 'win32', release: 'r'.repeat(100), version: 'v'.repeat(200) },
      arch: 'a'.repeat(32),
      hardwareId: 'i'.repeat(128),
      agentVersion: 'g'.repeat(64),
      userEmail: `${'u'.repeat(240)}@example.com`,
    };
    assert.ok(Value.Check(DeviceFacts, max));
    assert.ok(JSON.stringify(max).length <= MAX_FACTS_JSON);
  });

  test('control characters (terminal escapes) in shown strings fail', () => {
    assert.equal(errorPath({ ...facts, hostname: 'evil\u001b[2Jhost' }), '/hostname');
    assert.equal(errorPath({ ...facts, hardwareId: 'id\nforged log line' }), '/hardwareId');
  });

  test('unknown fields, an unknown platform and a malformed email fail', () => {
    assert.equal(errorPath({ ...facts, posture: 'ok' }), '/posture');
    assert.equal(errorPath({ ...facts, os: { ...facts.os, kernel: 'x' } }), '/os/kernel');
    assert.equal(errorPath({ ...facts, os: { platform: 'beos', release: '5' } }), '/os/platform');
    assert.equal(errorPath({ ...facts, userEmail: 'alice' }), '/userEmail');
  });

  test('the CSR attribute OID sits under the private-enterprise arc', () => {
    assert.match(FACTS_ATTRIBUTE_OID, /^1\.3\.6\.1\.4\.1\.\d+(\.\d+)+$/);
  });
});
