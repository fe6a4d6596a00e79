import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { LatchkeyError } from '../errors.js';
import { createOidcVerifier } from './oidc-verifier.js';
import type { OidcIssuerSettings } from './oidc-types.js';

// A real OpenID Provider (oidc-provider) serves discovery and the JWKS; the
// tokens are signed with the private keys the provider publishes.
const NOW = new Date('2026-06-01T12:00:00Z');
const T = Math.floor(NOW.getTime() / 1000);
const CLIENT = 'latchkey-test';

async function newKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

let server: Server;
let issuer: string;
let current: ReturnType<Provider['callback']>;
let down = false;
let jwksFetches = 0;
let keyA: JWK;
let keyB: JWK;

function startProvider(keys: JWK[]): void {
  const p = new Provider(issuer, { clients: [{ client_id: CLIENT, client_secret: 'not-used-here', redirect_uris: ['http://127.0.0.1/cb'] }], jwks: { keys } });
  current = p.callback();
}

before(async () => {
  server = createServer((req, res) => {
    if (down) { req.socket.destroy(); return; }
    if (req.url?.includes('jwks')) jwksFetches++;
    void current(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  keyA = await newKey('key-a');
  keyB = await newKey('key-b');
  startProvider([keyA]);
});
after(() => new Promise<void>((r) => server.close(() => r())));

const settings = (): OidcIssuerSettings[] => [{ issuer, clientId: CLIENT, emailClaim: 'email', groupsClaim: 'groups' }];
const verifier = (clock = () => NOW, extra: { jwksRefetchIntervalMs?: number } = {}) => createOidcVerifier({ issuers: settings(), clock, ...extra });

async function mint(claims: Record<string, unknown>, key: JWK = keyA): Promise<string> {
  const priv = await importJWK(key, 'RS256');
  return new SignJWT({ iss: issuer, aud: CLIENT, sub: 'user-1', iat: T, exp: T + 600, nonce: 'n-1', email: 'alice@example.com', email_verified: true, groups: ['staff'], ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid! })
    .sign(priv);
}

async function refused(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof LatchkeyError);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

describe('OIDC ID token verification against oidc-provider (OpenID Connect Core 1.0 §3.1.3.7)', () => {
  test('a valid token gives issuer, subject, verified email and groups', async () => {
    const id = await verifier().verifyIdToken(issuer, await mint({}), { nonce: 'n-1' });
    assert.deepEqual(id, { issuer, subject: 'user-1', email: 'alice@example.com', groups: ['staff'] });
  });
  test('§3.1.3.7 item 3: a token for another audience is refused', async () => {
    const tok = await mint({ aud: 'someone-else' });
    await refused(verifier().verifyIdToken(issuer, tok, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /aud/);
  });
  test('§3.1.3.7 items 4-5: several audiences without azp = client id are refused', async () => {
    const tok = await mint({ aud: [CLIENT, 'other'], azp: 'other' });
    await refused(verifier().verifyIdToken(issuer, tok, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /azp/);
  });
  test('§3.1.3.7 item 9: an expired token is refused (fixed clock, past the 60 s skew)', async () => {
    const tok = await mint({});
    const later = new Date(NOW.getTime() + 661_000);
    await refused(verifier(() => later).verifyIdToken(issuer, tok, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /expired/);
    const within = new Date(NOW.getTime() + 650_000);
    assert.equal((await verifier(() => within).verifyIdToken(issuer, tok, { nonce: 'n-1' })).subject, 'user-1');
  });
  test('§3.1.3.7 item 11: a wrong nonce is refused', async () => {
    await refused(verifier().verifyIdToken(issuer, await mint({}), { nonce: 'n-2' }), 'IDP_TOKEN_INVALID', /nonce/);
  });
  test('§3.1.3.7 item 6: a token signed by another key under the published kid is refused', async () => {
    const forged = { ...(await newKey('key-a')) };
    await refused(verifier().verifyIdToken(issuer, await mint({}, forged), { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /signature does not verify/);
  });
  test('§3.1.3.7 items 6-8: alg none and HS256 (signed with the client secret) are refused', async () => {
    const body = Buffer.from(JSON.stringify({ iss: issuer, aud: CLIENT, sub: 'user-1', iat: T, exp: T + 600, nonce: 'n-1', email: 'alice@example.com', email_verified: true })).toString('base64url');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${body}.`;
    await refused(verifier().verifyIdToken(issuer, none, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /algorithm none/);
    const hs = await new SignJWT({ iss: issuer, aud: CLIENT, sub: 'user-1', iat: T, exp: T + 600, nonce: 'n-1', email: 'alice@example.com', email_verified: true })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode('not-used-here-but-a-shared-secret-32b'));
    await refused(verifier().verifyIdToken(issuer, hs, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /algorithm HS256/);
  });
  test('§3.1.3.7 item 2: a token naming another issuer is refused', async () => {
    const tok = await mint({ iss: 'https://evil.example' });
    await refused(verifier().verifyIdToken(issuer, tok, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /iss/);
  });
  test('§5.1: an email with email_verified false is refused', async () => {
    const tok = await mint({ email_verified: false });
    await refused(verifier().verifyIdToken(issuer, tok, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /not verified/);
  });
  test('trustEmail (Entra ID): a token without email_verified passes only where the issuer is trusted for it; false is refused even then', async () => {
    const without = await new SignJWT({ iss: issuer, aud: CLIENT, sub: 'user-1', iat: T, exp: T + 600, nonce: 'n-1', email: 'alice@example.com', groups: ['staff'] })
      .setProtectedHeader({ alg: 'RS256', kid: keyA.kid! })
      .sign(await importJWK(keyA, 'RS256'));
    await refused(verifier().verifyIdToken(issuer, without, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /not verified/);
    const trusting = createOidcVerifier({ issuers: [{ ...settings()[0]!, trustEmail: true }], clock: () => NOW });
    assert.equal((await trusting.verifyIdToken(issuer, without, { nonce: 'n-1' })).email, 'alice@example.com');
    await refused(trusting.verifyIdToken(issuer, await mint({ email_verified: false }), { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /not verified/);
  });
  test('a grant without a nonce (device flow, refresh): nonce null skips the check; a nonce expected must come back', async () => {
    const noNonce = await mint({ nonce: undefined });
    assert.equal((await verifier().verifyIdToken(issuer, noNonce, { nonce: null })).subject, 'user-1');
    await refused(verifier().verifyIdToken(issuer, noNonce, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /nonce/);
  });
  test('§3.1.3.7 item 6 / §10.1.1: a key rotated in after our JWKS was cached is fetched, unknown-kid floods fetch at most once per window', async () => {
    let now = NOW.getTime();
    const v = verifier(() => new Date(now), { jwksRefetchIntervalMs: 60_000 });
    await v.verifyIdToken(issuer, await mint({}), { nonce: 'n-1' });
    startProvider([keyB, keyA]); // the provider rotates key B in
    now += 61_000;
    const before = jwksFetches;
    const id = await v.verifyIdToken(issuer, await mint({ iat: T + 61, exp: T + 661 }, keyB), { nonce: 'n-1' });
    assert.equal(id.email, 'alice@example.com');
    assert.equal(jwksFetches, before + 1);
    const stranger = await newKey('random');
    for (let i = 0; i < 20; i++) {
      const tok = await mint({}, { ...stranger, kid: `random-${i}` });
      await refused(v.verifyIdToken(issuer, tok, { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /key/);
    }
    assert.equal(jwksFetches, before + 1, 'no refetch inside the window');
    now += 61_000;
    await refused(v.verifyIdToken(issuer, await mint({}, { ...stranger, kid: 'random-x' }), { nonce: 'n-1' }), 'IDP_TOKEN_INVALID', /key/);
    assert.equal(jwksFetches, before + 2, 'one refetch once the window passed');
  });
  test('the provider down gives IDP_UNAVAILABLE, and the message holds no token', async () => {
    down = true;
    try {
      const tok = await mint({});
      await assert.rejects(verifier().verifyIdToken(issuer, tok, { nonce: 'n-1' }), (e: unknown) => {
        assert.ok(e instanceof LatchkeyError);
        assert.equal(e.code, 'IDP_UNAVAILABLE');
        assert.ok(!e.message.includes(tok));
        return true;
      });
    } finally {
      down = false;
    }
  });
});
