import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Kind, type TSchema } from '@sinclair/typebox';
import * as protocol from './index.js';

const isSchema = (v: unknown): v is TSchema => typeof v === 'object' && v !== null && Kind in v;
const exported = (Object.entries(protocol) as [string, unknown][]).filter((e): e is [string, TSchema] => isSchema(e[1]));

/** Every sub-schema of `s`, with its JSON pointer. */
function* walk(s: unknown, at = ''): Generator<[string, Record<string, unknown>]> {
  if (typeof s !== 'object' || s === null) return;
  if (Array.isArray(s)) {
    for (const [i, x] of s.entries()) yield* walk(x, `${at}/${i}`);
    return;
  }
  const o = s as Record<string, unknown>;
  yield [at, o];
  for (const [k, v] of Object.entries(o)) yield* walk(v, `${at}/${k}`);
}

/** What the server (or, for facts, the CSR path) takes in from the outside. */
const inbound: TSchema[] = [
  protocol.TokenCreateRequest,
  protocol.DeviceListQuery,
  protocol.RevokeRequest,
  protocol.GroupPolicy,
  protocol.DeviceFacts,
  protocol.AgentMessage,
  protocol.GatewaySubscribe,
];

describe('exported schemas', () => {
  test('the package exports the schemas of every message', () => {
    const ids = exported.map(([, s]) => s.$id);
    for (const id of ['ErrorBody', 'DeviceFacts', 'TokenCreateRequest', 'TokenCreateResponse', 'TokenInfo', 'Device', 'DeviceListQuery', 'RevokeRequest', 'AuditEvent', 'GroupPolicy', 'AgentMessage', 'ServerMessage', 'GatewayEvent', 'GatewaySubscribe']) {
      assert.ok(ids.includes(id), id);
    }
  });

  test('every exported schema has a unique $id', () => {
    const ids = exported.map(([name, s]) => {
      assert.equal(typeof s.$id, 'string', `${name} has no $id`);
      return s.$id;
    });
    assert.equal(new Set(ids).size, ids.length, `duplicate $id among ${ids.join(', ')}`);
  });

  test('$id sits only at the top of each schema (ajv refuses an $id twice in one schema or already registered)', () => {
    for (const [name, s] of exported) {
      for (const [at, node] of walk(s)) if (at !== '') assert.ok(!('$id' in node), `${name}${at} has a nested $id ${String(node.$id)}`);
    }
  });

  test('no schema uses `format`, so Value.Check needs no FormatRegistry setup', () => {
    for (const [name, s] of exported) for (const [at, node] of walk(s)) assert.ok(!('format' in node), `${name}${at} uses format`);
  });

  test('inbound schemas are closed: every object rejects additional properties', () => {
    for (const s of inbound) {
      for (const [at, node] of walk(s)) {
        if (node.type === 'object' && 'properties' in node) assert.equal(node.additionalProperties, false, `${s.$id}${at}`);
      }
    }
  });

  test('inbound schemas bound every string and every array', () => {
    for (const s of inbound) {
      for (const [at, node] of walk(s)) {
        if (node.type === 'string' && !('const' in node)) assert.equal(typeof node.maxLength, 'number', `${s.$id}${at} has no maxLength`);
        if (node.type === 'array') assert.equal(typeof node.maxItems, 'number', `${s.$id}${at} has no maxItems`);
      }
    }
  });
});
