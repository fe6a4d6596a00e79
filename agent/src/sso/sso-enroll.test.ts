import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentError } from '../errors.js';
import { pickProvider } from './sso-enroll.js';

const headless = { platform: 'linux' as const, env: {} };
const desktop = { platform: 'darwin' as const, env: {} };
const both = { issuer: 'https://idp.example', deviceFlow: true, browserFlow: true };

const refusal = (code: string, re: RegExp) => (e: unknown) => e instanceof AgentError && e.code === code && re.test(e.message);

describe('which identity provider and which flow', () => {
  test('a server without an identity provider: ask IT for a token', () => {
    assert.throws(() => pickProvider([], { host: desktop }), refusal('SERVER_REFUSED', /^this server has no identity provider configured; ask IT for an enrollment token/));
  });
  test('the only provider, with the flow the session suggests', () => {
    assert.deepEqual(pickProvider([both], { host: headless }), { provider: both, flow: 'device' });
    assert.deepEqual(pickProvider([both], { host: desktop }), { provider: both, flow: 'browser' });
    assert.deepEqual(pickProvider([both], { host: desktop, flow: 'device' }), { provider: both, flow: 'device' });
  });
  test('a provider without the suggested flow: the other one, unless --sso-flow forced it', () => {
    const deviceOnly = { ...both, browserFlow: false };
    assert.deepEqual(pickProvider([deviceOnly], { host: desktop }), { provider: deviceOnly, flow: 'device' });
    assert.throws(() => pickProvider([deviceOnly], { host: desktop, flow: 'browser' }), refusal('USAGE', /does not offer the browser sign-in; use --sso-flow device/));
    assert.throws(() => pickProvider([{ ...both, deviceFlow: false, browserFlow: false }], { host: desktop }), refusal('USAGE', /ask IT for an enrollment token/));
  });
  test('several providers: --sso-issuer chooses, and must be one of them', () => {
    const other = { ...both, issuer: 'https://login.example' };
    assert.throws(() => pickProvider([both, other], { host: desktop }), refusal('USAGE', /several identity providers \(https:\/\/idp\.example, https:\/\/login\.example\); choose one with --sso-issuer URL/));
    assert.equal(pickProvider([both, other], { host: desktop, issuer: 'https://login.example' }).provider, other);
    assert.throws(() => pickProvider([both, other], { host: desktop, issuer: 'https://evil.example' }), refusal('USAGE', /not an identity provider of this server/));
  });
});
