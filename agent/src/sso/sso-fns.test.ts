import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BadAnswer,
  MAX_POLL_FAILURES,
  callbackErrorMessage,
  chooseFlow,
  nextPoll,
  parseCallback,
  pkceOf,
  printable,
  readBrowserStarted,
  readDeviceStarted,
  readEnrollGrant,
  readProviders,
  signInRefusal,
  signedInLine,
} from './sso-fns.js';

describe('chooseFlow: the browser where a person sits at the screen, the device flow elsewhere', () => {
  test('macOS and Windows always have a desktop session', () => {
    assert.equal(chooseFlow({ platform: 'darwin', env: {} }), 'browser');
    assert.equal(chooseFlow({ platform: 'win32', env: {} }), 'browser');
  });
  test('Linux: an X or Wayland display means a desktop, none (SSH, a server) means the device flow', () => {
    assert.equal(chooseFlow({ platform: 'linux', env: {} }), 'device');
    assert.equal(chooseFlow({ platform: 'linux', env: { DISPLAY: '' } }), 'device');
    assert.equal(chooseFlow({ platform: 'linux', env: { DISPLAY: ':0' } }), 'browser');
    assert.equal(chooseFlow({ platform: 'linux', env: { WAYLAND_DISPLAY: 'wayland-0' } }), 'browser');
    assert.equal(chooseFlow({ platform: 'freebsd', env: {} }), 'device');
  });
  test('--sso-flow wins', () => {
    assert.equal(chooseFlow({ platform: 'darwin', env: {} }, 'device'), 'device');
    assert.equal(chooseFlow({ platform: 'linux', env: {} }, 'browser'), 'browser');
  });
});

describe('RFC 7636 PKCE', () => {
  test('Appendix B: the S256 challenge of the RFC example verifier', () => {
    // The RFC's 32 octets.
    const bytes = Buffer.from([116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121]);
    const p = pkceOf(bytes);
    assert.equal(p.verifier, 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk');
    assert.equal(p.challenge, 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });
  test('§4.1: the verifier is 43 unreserved characters; 32 bytes and no fewer', () => {
    const p = pkceOf(Buffer.alloc(32, 0xff));
    assert.match(p.verifier, /^[A-Za-z0-9_-]{43}$/);
    assert.match(p.challenge, /^[A-Za-z0-9_-]{43}$/);
    assert.throws(() => pkceOf(Buffer.alloc(16)), /32 random bytes/);
  });
});

describe('RFC 8252 §7.3 loopback callback', () => {
  const S = 'state-0123456789abcdef';
  test('the code comes back with this sign-in\'s state', () => {
    assert.deepEqual(parseCallback(`/callback?code=abc&state=${S}`, S), { kind: 'code', code: 'abc' });
  });
  test('a missing, different, repeated or longer state is not this sign-in', () => {
    assert.deepEqual(parseCallback('/callback?code=abc', S), { kind: 'bad-state' });
    assert.deepEqual(parseCallback('/callback?code=abc&state=other-0123456789abc', S), { kind: 'bad-state' });
    assert.deepEqual(parseCallback(`/callback?code=abc&state=${S}x`, S), { kind: 'bad-state' });
    assert.deepEqual(parseCallback(`/callback?code=abc&state=${S}&state=${S}`, S), { kind: 'bad-state' });
  });
  test('another path is not the callback', () => {
    assert.deepEqual(parseCallback(`/favicon.ico?state=${S}`, S), { kind: 'not-found' });
    assert.deepEqual(parseCallback(`/callback/x?code=a&state=${S}`, S), { kind: 'not-found' });
  });
  test('RFC 6749 §4.1.2.1: an error redirect with the state ends the sign-in; its text cannot drive the terminal', () => {
    assert.deepEqual(parseCallback(`/callback?error=access_denied&error_description=User%20said%20no%1b%5b2J&state=${S}`, S), { kind: 'error', error: 'access_denied', description: 'User said no?[2J' });
  });
  test('the state alone, or two codes, is malformed', () => {
    assert.deepEqual(parseCallback(`/callback?state=${S}`, S), { kind: 'malformed' });
    assert.deepEqual(parseCallback(`/callback?code=a&code=b&state=${S}`, S), { kind: 'malformed' });
  });
});

describe('RFC 8628 §3.4/§3.5 polling', () => {
  const s0 = { intervalSeconds: 5, failures: 0 };
  test('pending: poll again at the interval, or later when Retry-After says so', () => {
    assert.deepEqual(nextPoll(s0, { kind: 'pending' }), { state: s0, waitSeconds: 5 });
    assert.deepEqual(nextPoll(s0, { kind: 'pending', retryAfterSeconds: 9 }), { state: s0, waitSeconds: 9 });
    assert.deepEqual(nextPoll(s0, { kind: 'pending', retryAfterSeconds: 2 }), { state: s0, waitSeconds: 5 });
  });
  test('slow_down (429) adds 5 s to the interval for this and every later poll', () => {
    const a = nextPoll(s0, { kind: 'slow-down' })!;
    assert.deepEqual(a, { state: { intervalSeconds: 10, failures: 0 }, waitSeconds: 10 });
    const b = nextPoll(a.state, { kind: 'pending' })!;
    assert.equal(b.waitSeconds, 10);
    assert.equal(nextPoll(b.state, { kind: 'slow-down' })!.state.intervalSeconds, 15);
  });
  test('transient failures back off and give up after a few in a row; an answer resets them', () => {
    let s = s0;
    const waits: number[] = [];
    for (let i = 1; i < MAX_POLL_FAILURES; i++) {
      const n = nextPoll(s, { kind: 'transient' })!;
      waits.push(n.waitSeconds);
      s = n.state;
    }
    assert.deepEqual(waits, [10, 20]);
    assert.equal(nextPoll(s, { kind: 'transient' }), undefined);
    assert.equal(nextPoll(s, { kind: 'pending' })!.state.failures, 0);
  });
  test('an absurd Retry-After is capped at 10 minutes', () => {
    assert.equal(nextPoll(s0, { kind: 'pending', retryAfterSeconds: 1e9 })!.waitSeconds, 600);
  });
});

describe("the server's answers, read against packages/protocol auth.ts", () => {
  const flowId = 'lk_flow_0123456789abcdefghij';
  const at = '2026-12-03T10:00:00.000Z';
  test('AuthProviders', () => {
    assert.deepEqual(readProviders({ providers: [] }), []);
    assert.deepEqual(readProviders({ providers: [{ issuer: 'https://idp.example', deviceFlow: true, browserFlow: false }] }), [{ issuer: 'https://idp.example', deviceFlow: true, browserFlow: false }]);
    assert.throws(() => readProviders({}), BadAnswer);
  });
  test('AuthDeviceStarted', () => {
    const d = readDeviceStarted({ flowId, userCode: 'WDJB-MJHT', verificationUri: 'https://idp.example/device', verificationUriComplete: 'https://idp.example/device?user_code=WDJB-MJHT', intervalSeconds: 5, expiresAt: at });
    assert.equal(d.userCode, 'WDJB-MJHT');
    assert.equal(d.expiresAt.toISOString(), at);
    assert.throws(() => readDeviceStarted({ flowId, userCode: 'X', verificationUri: 'javascript:alert(1)', intervalSeconds: 5, expiresAt: at }), /not an http\(s\) URL/);
    assert.throws(() => readDeviceStarted({ flowId, userCode: 'X', verificationUri: 'https://idp.example/d', intervalSeconds: 0, expiresAt: at }), /intervalSeconds/);
    assert.throws(() => readDeviceStarted({ flowId: 'short', userCode: 'X', verificationUri: 'https://idp.example/d', intervalSeconds: 5, expiresAt: at }), /flowId/);
  });
  test('AuthBrowserStarted: only an http(s) URL is opened', () => {
    assert.equal(readBrowserStarted({ flowId, authorizeUrl: 'https://idp.example/auth?a=1&b=2', state: 'state-0123456789abcdef', expiresAt: at }).authorizeUrl, 'https://idp.example/auth?a=1&b=2');
    for (const bad of ['file:///etc/passwd', 'https://user:pw@idp.example/', '--help', 'calc.exe']) {
      assert.throws(() => readBrowserStarted({ flowId, authorizeUrl: bad, state: 'state-0123456789abcdef', expiresAt: at }), BadAnswer, bad);
    }
  });
  test('AuthResult of purpose enroll; an admin session is not one', () => {
    const g = readEnrollGrant({ purpose: 'enroll', user: { email: 'ada@example.com', issuer: 'https://idp.example' }, enrollToken: 'lk_enr_0123456789abcdefghij', group: 'laptops', expiresAt: at });
    assert.deepEqual(g, { email: 'ada@example.com', issuer: 'https://idp.example', enrollToken: 'lk_enr_0123456789abcdefghij', group: 'laptops', expiresAt: new Date(at) });
    assert.equal(signedInLine(g), 'signed in as ada@example.com; enrolling into group laptops');
    assert.throws(() => readEnrollGrant({ purpose: 'admin', user: { email: 'a@b.c', issuer: 'https://i' } }), /not an enrollment sign-in/);
  });
});

describe('what a refusal tells the person', () => {
  test('USER_NOT_ALLOWED shows the rule the server named', () => {
    assert.match(signInRefusal('USER_NOT_ALLOWED', 'bob@example.com is not in any IdP group allowed to enroll (engineering, it)')!, /may not enroll a device: bob@example.com is not in any IdP group allowed to enroll \(engineering, it\)/);
  });
  test('each sign-in code has its own message; other codes are left to the caller', () => {
    assert.match(signInRefusal('AUTH_DENIED', '')!, /^the sign-in was cancelled at the identity provider; run the same command again/);
    assert.match(signInRefusal('AUTH_EXPIRED', 'flow expired')!, /took too long.*run the same command again/);
    assert.match(signInRefusal('USER_DEVICE_LIMIT', 'ada@example.com has 3 of 3 devices')!, /3 of 3 devices; ask IT to revoke one/);
    assert.match(signInRefusal('IDP_UNAVAILABLE', 'idp timed out')!, /cannot reach the identity provider right now: idp timed out; try again/);
    assert.equal(signInRefusal('TOKEN_INVALID', 'x'), undefined);
  });
  test('an error redirect: access_denied is a cancel, anything else is the IdP refusing', () => {
    assert.match(callbackErrorMessage('access_denied', ''), /cancelled at the identity provider/);
    assert.match(callbackErrorMessage('invalid_scope', 'openid missing'), /refused the sign-in: invalid_scope \(openid missing\)/);
  });
  test('printable: no escape sequences or bidi overrides from the network reach the terminal', () => {
    assert.equal(printable('a\x1b[31mb\u202ec\n', 100), 'a?[31mb?c?');
    assert.equal(printable('x'.repeat(10), 4), 'xxxx');
  });
});
