/**
 * The test identity provider (support/idp/) is a real OpenID Provider: this
 * file acts as the OAuth client itself, with fetch against the discovered
 * endpoints and jose against the published JWKS, and drives the user's side
 * with completeDeviceLogin (HTTP) and completeBrowserLogin (Chromium).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { CONFIDENTIAL_CLIENT_ID, defaultAccounts, PUBLIC_CLIENT_ID, startIdp, type Idp, type IdpClient, type StartIdpOptions } from './support/idp/idp-fixture.js';
import { chromiumOrSkip, completeBrowserLogin, completeDeviceLogin, type Decision } from './support/idp/idp-login.js';
import { DEVICE_CODE_GRANT } from './support/idp/idp-types.js';

interface Metadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  device_authorization_endpoint: string;
  jwks_uri: string;
}

interface TokenReply {
  status: number;
  body: { error?: string; error_description?: string; id_token?: string; access_token?: string; refresh_token?: string };
}

const alice = defaultAccounts()[0]!;
const SCOPE = 'openid email groups';

async function idpFor(t: TestContext, opts: StartIdpOptions = {}): Promise<{ idp: Idp; meta: Metadata }> {
  const idp = await startIdp(opts);
  t.after(() => idp.stop());
  const meta = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Metadata;
  return { idp, meta };
}

const client = (idp: Idp, id: string): IdpClient => idp.clients.find((c) => c.client_id === id)!;

/** A token or device authorization request: client_secret_basic for a confidential client, client_id in the body for a public one. */
async function post(url: string, c: IdpClient, params: Record<string, string>): Promise<TokenReply> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = new URLSearchParams(params);
  if (c.client_secret) headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString('base64')}`;
  else body.set('client_id', c.client_id);
  const res = await fetch(url, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json()) as TokenReply['body'] };
}

const jwks = async (meta: Metadata): Promise<JSONWebKeySet> => (await (await fetch(meta.jwks_uri)).json()) as JSONWebKeySet;

/** Verifies the ID token against the JWKS published now (fetched fresh: no cache hides a rotation). */
async function verifyIdToken(meta: Metadata, idToken: string, clientId: string): Promise<JWTPayload> {
  const { payload } = await jwtVerify(idToken, createLocalJWKSet(await jwks(meta)), { issuer: meta.issuer, audience: clientId });
  return payload;
}

const kidOf = (jwt: string): string | undefined => decodeProtectedHeader(jwt).kid;

/** RFC 8628: device authorization, a first poll (pending), the user's sign-in, then the poll's final answer. */
async function deviceFlow(meta: Metadata, c: IdpClient, decision: Decision = 'allow', account = alice): Promise<TokenReply> {
  const auth = await post(meta.device_authorization_endpoint, c, { scope: SCOPE });
  assert.equal(auth.status, 200, JSON.stringify(auth.body));
  const { device_code, user_code, verification_uri } = auth.body as unknown as { device_code: string; user_code: string; verification_uri: string };
  const poll = (): Promise<TokenReply> => post(meta.token_endpoint, c, { grant_type: DEVICE_CODE_GRANT, device_code });
  const pending = await poll();
  assert.equal(pending.status, 400);
  assert.equal(pending.body.error, 'authorization_pending');
  await completeDeviceLogin({ verificationUri: verification_uri, userCode: user_code, login: account.email, password: account.password, decision });
  return poll();
}

async function refresh(meta: Metadata, c: IdpClient, refreshToken: string): Promise<TokenReply> {
  return post(meta.token_endpoint, c, { grant_type: 'refresh_token', refresh_token: refreshToken });
}

/** A loopback listener (RFC 8252 §7.3) on a port the system picks, answering every request; resolves each request's URL. */
async function loopback(t: TestContext): Promise<{ redirectUri: string; next: () => Promise<URL> }> {
  const waiting: ((u: URL) => void)[] = [];
  const s = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>done</title><p>You can close this window.</p>');
    waiting.shift()?.(new URL(req.url ?? '/', 'http://127.0.0.1'));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => s.close(r)));
  const redirectUri = `http://127.0.0.1:${(s.address() as AddressInfo).port}/callback`;
  return { redirectUri, next: () => new Promise((r) => waiting.push(r)) };
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl(meta: Metadata, params: Record<string, string>): string {
  const u = new URL(meta.authorization_endpoint);
  for (const [k, v] of Object.entries({ response_type: 'code', scope: SCOPE, ...params })) u.searchParams.set(k, v);
  return u.href;
}

describe('test identity provider (oidc-provider in its own process)', () => {
  test('RFC 8628 §3.4-3.5: device grant: authorization_pending, then an ID token with email, email_verified, groups, signed per the JWKS, with the configured lifetime', async (t) => {
    const { idp, meta } = await idpFor(t, { idTokenTtlSeconds: 120 });
    const pub = client(idp, PUBLIC_CLIENT_ID);
    const tokens = await deviceFlow(meta, pub);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.ok(tokens.body.refresh_token, 'a refresh token without asking for offline_access');
    const claims = await verifyIdToken(meta, tokens.body.id_token!, PUBLIC_CLIENT_ID);
    assert.equal(claims.sub, alice.sub);
    assert.equal(claims.email, alice.email);
    assert.equal(claims.email_verified, true);
    assert.deepEqual(claims.groups, alice.groups);
    assert.equal(claims.exp! - claims.iat!, 120);
    assert.equal(decodeProtectedHeader(tokens.body.id_token!).alg, 'RS256');
  });

  test('RFC 8628 §3.5: the user denies at consent: the poll ends with access_denied', async (t) => {
    const { idp, meta } = await idpFor(t);
    const denied = await deviceFlow(meta, client(idp, PUBLIC_CLIENT_ID), 'deny');
    assert.equal(denied.status, 400);
    assert.equal(denied.body.error, 'access_denied');
  });

  test('a wrong password or a disabled account is refused at the login page, naming why', async (t) => {
    const { idp, meta } = await idpFor(t);
    const pub = client(idp, PUBLIC_CLIENT_ID);
    const start = async (): Promise<{ verification_uri: string; user_code: string }> => (await post(meta.device_authorization_endpoint, pub, { scope: SCOPE })).body as unknown as { verification_uri: string; user_code: string };
    const a = await start();
    await assert.rejects(completeDeviceLogin({ verificationUri: a.verification_uri, userCode: a.user_code, login: alice.email, password: 'wrong', decision: 'allow' }), /consent page.*login_failed/);
    await idp.setAccount(alice.sub, { disabled: true });
    const b = await start();
    await assert.rejects(completeDeviceLogin({ verificationUri: b.verification_uri, userCode: b.user_code, login: alice.email, password: alice.password, decision: 'allow' }), /consent page.*account_disabled/);
  });

  test('refresh_token grant: group changes show in the next ID token; a disabled, then a deleted account gets invalid_grant', async (t) => {
    const { idp, meta } = await idpFor(t);
    const conf = client(idp, CONFIDENTIAL_CLIENT_ID);
    const first = await deviceFlow(meta, conf);
    assert.equal(first.status, 200, JSON.stringify(first.body));

    await idp.setAccount(alice.sub, { groups: ['staff', 'latchkey-viewers'] });
    const r1 = await refresh(meta, conf, first.body.refresh_token!);
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.notEqual(r1.body.refresh_token, first.body.refresh_token, 'refresh tokens rotate');
    assert.deepEqual((await verifyIdToken(meta, r1.body.id_token!, CONFIDENTIAL_CLIENT_ID)).groups, ['staff', 'latchkey-viewers']);

    await idp.setAccount(alice.sub, { disabled: true });
    const r2 = await refresh(meta, conf, r1.body.refresh_token!);
    assert.equal(r2.status, 400);
    assert.equal(r2.body.error, 'invalid_grant');
    // the same token works again once the account is enabled: the refusal was the account's
    await idp.setAccount(alice.sub, { disabled: false });
    const r3 = await refresh(meta, conf, r1.body.refresh_token!);
    assert.equal(r3.status, 200, JSON.stringify(r3.body));

    await idp.removeAccount(alice.sub);
    const r4 = await refresh(meta, conf, r3.body.refresh_token!);
    assert.equal(r4.status, 400);
    assert.equal(r4.body.error, 'invalid_grant');
  });

  test('rotateKeys: new ID tokens carry the new kid; keepOld true keeps the old key in the JWKS, false drops it', async (t) => {
    const { idp, meta } = await idpFor(t);
    const conf = client(idp, CONFIDENTIAL_CLIENT_ID);
    const first = await deviceFlow(meta, conf);
    const kid1 = kidOf(first.body.id_token!)!;
    assert.deepEqual((await jwks(meta)).keys.map((k) => k.kid), [kid1]);

    const rot2 = await idp.rotateKeys({ keepOld: true });
    const r2 = await refresh(meta, conf, first.body.refresh_token!);
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    assert.equal(kidOf(r2.body.id_token!), rot2.kid);
    assert.notEqual(rot2.kid, kid1);
    assert.deepEqual((await jwks(meta)).keys.map((k) => k.kid), [rot2.kid, kid1]);
    assert.equal((await verifyIdToken(meta, first.body.id_token!, CONFIDENTIAL_CLIENT_ID)).sub, alice.sub, 'the old token still verifies');

    const rot3 = await idp.rotateKeys({ keepOld: false });
    const r3 = await refresh(meta, conf, r2.body.refresh_token!);
    assert.equal(r3.status, 200, JSON.stringify(r3.body));
    assert.equal(kidOf(r3.body.id_token!), rot3.kid);
    assert.deepEqual((await jwks(meta)).keys.map((k) => k.kid), [rot3.kid]);
    assert.equal((await verifyIdToken(meta, r3.body.id_token!, CONFIDENTIAL_CLIENT_ID)).sub, alice.sub);
    await assert.rejects(verifyIdToken(meta, r2.body.id_token!, CONFIDENTIAL_CLIENT_ID), { code: 'ERR_JWKS_NO_MATCHING_KEY' });

    // grants made before the rotations live on in the shared storage: reusing
    // a rotated refresh token is detected and revokes the whole grant
    assert.equal((await refresh(meta, conf, first.body.refresh_token!)).body.error, 'invalid_grant');
    assert.equal((await refresh(meta, conf, r3.body.refresh_token!)).body.error, 'invalid_grant');
  });

  for (const alg of ['ES256', 'EdDSA'] as const) {
    test(`idTokenSigningAlg ${alg}: ID tokens are signed with it and verify against the JWKS`, async (t) => {
      const { idp, meta } = await idpFor(t, { idTokenSigningAlg: alg });
      const tokens = await deviceFlow(meta, client(idp, PUBLIC_CLIENT_ID));
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      assert.equal(decodeProtectedHeader(tokens.body.id_token!).alg, alg);
      assert.equal((await verifyIdToken(meta, tokens.body.id_token!, PUBLIC_CLIENT_ID)).email, alice.email);
    });
  }

  test('RFC 7636 §4.4.1: an authorization request of a public client without code_challenge is refused', async (t) => {
    const { meta } = await idpFor(t);
    const { redirectUri } = await loopback(t);
    const res = await fetch(authorizeUrl(meta, { client_id: PUBLIC_CLIENT_ID, redirect_uri: redirectUri, state: 's' }), { redirect: 'manual' });
    assert.equal(res.status, 303);
    const back = new URL(res.headers.get('location')!);
    assert.equal(`${back.origin}${back.pathname}`, redirectUri);
    assert.equal(back.searchParams.get('error'), 'invalid_request');
    assert.match(back.searchParams.get('error_description') ?? '', /PKCE/);
  });

  test('RFC 8252 §7.3 + RFC 7636: authorization code with PKCE S256 through Chromium, loopback redirect on a random port', async (t) => {
    if (!chromiumOrSkip(t)) return;
    const { meta } = await idpFor(t);
    const lb = await loopback(t);
    const { verifier, challenge } = pkce();
    const state = randomBytes(8).toString('hex');
    const nonce = randomBytes(8).toString('hex');
    const url = authorizeUrl(meta, { client_id: PUBLIC_CLIENT_ID, redirect_uri: lb.redirectUri, code_challenge: challenge, code_challenge_method: 'S256', state, nonce });
    const received = lb.next();
    const finalUrl = await completeBrowserLogin({ url, login: alice.email, password: alice.password, decision: 'allow' });
    const cb = await received;
    assert.equal(new URL(finalUrl).searchParams.get('code'), cb.searchParams.get('code'));
    assert.equal(cb.searchParams.get('state'), state);
    assert.equal(cb.searchParams.get('iss'), meta.issuer, 'RFC 9207 iss in the response');
    const code = cb.searchParams.get('code')!;
    const pub = { client_id: PUBLIC_CLIENT_ID, redirect_uris: [] };
    const tokens = await post(meta.token_endpoint, pub, { grant_type: 'authorization_code', code, redirect_uri: lb.redirectUri, code_verifier: verifier });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const claims = await verifyIdToken(meta, tokens.body.id_token!, PUBLIC_CLIENT_ID);
    assert.equal(claims.nonce, nonce);
    assert.equal(claims.email, alice.email);
    assert.deepEqual(claims.groups, alice.groups);
    assert.ok(tokens.body.refresh_token);
    const again = await post(meta.token_endpoint, pub, { grant_type: 'authorization_code', code, redirect_uri: lb.redirectUri, code_verifier: verifier });
    assert.equal(again.body.error, 'invalid_grant', 'a code is used once');
  });

  test('RFC 7636 §4.6: a wrong code_verifier is refused; RFC 6749 §4.1.2.1: deny at consent redirects with access_denied (Chromium)', async (t) => {
    if (!chromiumOrSkip(t)) return;
    const { meta } = await idpFor(t);
    const lb = await loopback(t);
    const pub = { client_id: PUBLIC_CLIENT_ID, redirect_uris: [] };
    const { challenge } = pkce();
    const allowed = lb.next();
    await completeBrowserLogin({ url: authorizeUrl(meta, { client_id: PUBLIC_CLIENT_ID, redirect_uri: lb.redirectUri, code_challenge: challenge, code_challenge_method: 'S256', state: 'a' }), login: alice.sub, password: alice.password, decision: 'allow' });
    const wrong = await post(meta.token_endpoint, pub, { grant_type: 'authorization_code', code: (await allowed).searchParams.get('code')!, redirect_uri: lb.redirectUri, code_verifier: pkce().verifier });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error, 'invalid_grant');

    const denied = lb.next();
    await completeBrowserLogin({ url: authorizeUrl(meta, { client_id: PUBLIC_CLIENT_ID, redirect_uri: lb.redirectUri, code_challenge: challenge, code_challenge_method: 'S256', state: 'd' }), login: alice.email, password: alice.password, decision: 'deny' });
    const cb = await denied;
    assert.equal(cb.searchParams.get('error'), 'access_denied');
    assert.equal(cb.searchParams.get('state'), 'd');
    assert.equal(cb.searchParams.get('code'), null);
  });

  test('a provider that cannot start fails startIdp with its reason (here: an https loopback redirect of a native client)', async () => {
    await assert.rejects(startIdp({ clients: [{ client_id: 'bad', redirect_uris: ['https://127.0.0.1/cb'] }] }), /exited \(1\) before it was ready[\s\S]*must not be using 127\.0\.0\.1 as hostname/);
  });

  test('stop() ends the process: the issuer no longer answers', async () => {
    const idp = await startIdp();
    assert.equal((await fetch(`${idp.issuer}/jwks`)).status, 200);
    await idp.stop();
    await assert.rejects(fetch(`${idp.issuer}/jwks`), /fetch failed/);
    await idp.stop();
  });
});
