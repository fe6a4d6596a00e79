/**
 * The server as the OAuth client of its identity providers: the device
 * authorization request (RFC 8628 §3.1), the token requests of the device
 * grant (§3.4-3.5), the authorization code grant with PKCE (RFC 6749 §4.1,
 * RFC 7636) and refresh (RFC 6749 §6). A confidential client authenticates
 * with HTTP Basic (client_secret_basic, RFC 6749 §2.3.1); a public client
 * sends its client_id. No token, code or secret appears in an error.
 */
import { LatchkeyError } from '../errors.js';
import type { OidcVerifier } from './oidc-verifier.js';
import type { OidcIssuerSettings } from './oidc-types.js';

export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string | undefined;
  expiresInSeconds: number;
  intervalSeconds: number;
}

/** What a token endpoint answered. */
export type TokenOutcome =
  | { kind: 'tokens'; idToken: string; refreshToken: string | undefined }
  | { kind: 'pending' }
  | { kind: 'slow-down' }
  | { kind: 'denied' }
  | { kind: 'expired' }
  /** invalid_grant on a refresh: the person is disabled, removed, or the grant was revoked. */
  | { kind: 'invalid-grant' };

export interface OidcClient {
  settings(issuer: string): OidcIssuerSettings & { scopes: readonly string[] };
  startDeviceAuthorization(issuer: string): Promise<DeviceAuthorization>;
  pollDeviceToken(issuer: string, deviceCode: string): Promise<TokenOutcome>;
  authorizeUrl(issuer: string, p: { redirectUri: string; state: string; nonce: string; codeChallenge: string }): Promise<string>;
  exchangeCode(issuer: string, p: { code: string; redirectUri: string; codeVerifier: string }): Promise<TokenOutcome>;
  refresh(issuer: string, refreshToken: string): Promise<TokenOutcome>;
}

export interface OidcClientOptions {
  readonly issuers: readonly (OidcIssuerSettings & { scopes: readonly string[] })[];
  readonly verifier: Pick<OidcVerifier, 'metadata'>;
  readonly fetch?: typeof globalThis.fetch;
  readonly requestTimeoutMs?: number;
}

/** Largest IdP answer we read (a token response is a few kB). */
const MAX_RESPONSE_BYTES = 256 * 1024;

export function createOidcClient(opts: OidcClientOptions): OidcClient {
  const doFetch = opts.fetch ?? globalThis.fetch;
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const byIssuer = new Map(opts.issuers.map((s) => [s.issuer, s]));

  const settings = (issuer: string) => {
    const s = byIssuer.get(issuer);
    if (!s) throw new LatchkeyError('BAD_REQUEST', `issuer ${issuer} is not configured; use one of: ${[...byIssuer.keys()].join(', ') || '(none)'}`);
    return s;
  };

  const unavailable = (issuer: string, why: string, cause?: unknown) =>
    new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${issuer} ${why}; retry later`, cause === undefined ? undefined : { cause });

  async function post(issuer: string, url: string, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    const s = settings(issuer);
    const params = new URLSearchParams(form);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (s.clientSecret !== undefined) {
      // RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
      const enc = (v: string) => encodeURIComponent(v).replace(/%20/g, '+');
      headers.authorization = `Basic ${Buffer.from(`${enc(s.clientId)}:${enc(s.clientSecret)}`).toString('base64')}`;
    } else {
      params.set('client_id', s.clientId);
    }
    let res: Response;
    try {
      res = await doFetch(url, { method: 'POST', headers, body: params.toString(), signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
    } catch (cause) {
      throw unavailable(issuer, `cannot be reached (${url})`, cause);
    }
    const text = await readBounded(res);
    if (text === undefined) throw unavailable(issuer, `sent an answer over ${MAX_RESPONSE_BYTES} bytes at ${url}`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw unavailable(issuer, `answered ${res.status} without JSON at ${url}`);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw unavailable(issuer, `answered ${res.status} with a JSON that is not an object at ${url}`);
    return { status: res.status, body: body as Record<string, unknown> };
  }

  async function endpoint(issuer: string, which: 'tokenEndpoint' | 'authorizationEndpoint' | 'deviceAuthorizationEndpoint'): Promise<string> {
    const url = (await opts.verifier.metadata(issuer))[which];
    if (!url) {
      const what = { tokenEndpoint: 'a token endpoint', authorizationEndpoint: 'an authorization endpoint', deviceAuthorizationEndpoint: 'a device authorization endpoint (RFC 8628): sign in with the browser flow, or enable the device grant for this client at the IdP' }[which];
      throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${issuer} publishes no ${what}`);
    }
    return url;
  }

  /** RFC 6749 §5.1 / §5.2 and RFC 8628 §3.5. */
  function tokenOutcome(issuer: string, r: { status: number; body: Record<string, unknown> }): TokenOutcome {
    if (r.status === 200) {
      const idToken = r.body.id_token;
      if (typeof idToken !== 'string' || idToken.length === 0) throw unavailable(issuer, 'answered the token request without an id_token (is `openid` among the scopes?)');
      const refresh = typeof r.body.refresh_token === 'string' && r.body.refresh_token.length > 0 ? r.body.refresh_token : undefined;
      return { kind: 'tokens', idToken, refreshToken: refresh };
    }
    const error = typeof r.body.error === 'string' ? r.body.error : '';
    switch (error) {
      case 'authorization_pending':
        return { kind: 'pending' };
      case 'slow_down':
        return { kind: 'slow-down' };
      case 'access_denied':
        return { kind: 'denied' };
      case 'expired_token':
        return { kind: 'expired' };
      case 'invalid_grant':
        return { kind: 'invalid-grant' };
      default:
        // The IdP's own words help the admin fix its client settings; they never hold a token.
        throw unavailable(issuer, `refused the token request (${r.status} ${error || 'no error code'}${typeof r.body.error_description === 'string' ? `: ${r.body.error_description.slice(0, 200)}` : ''})`);
    }
  }

  return {
    settings,
    async startDeviceAuthorization(issuer) {
      const s = settings(issuer);
      const r = await post(issuer, await endpoint(issuer, 'deviceAuthorizationEndpoint'), { scope: s.scopes.join(' ') });
      const b = r.body;
      if (r.status !== 200) {
        throw unavailable(issuer, `refused the device authorization request (${r.status} ${typeof b.error === 'string' ? b.error : ''}); check that the client may use the device grant`);
      }
      const str = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 2000 ? v : undefined);
      const deviceCode = str(b.device_code);
      const userCode = str(b.user_code);
      const verificationUri = str(b.verification_uri);
      if (!deviceCode || !userCode || !verificationUri || typeof b.expires_in !== 'number') throw unavailable(issuer, 'sent an incomplete device authorization response');
      return {
        deviceCode,
        userCode,
        verificationUri,
        verificationUriComplete: str(b.verification_uri_complete),
        expiresInSeconds: Math.min(Math.max(1, Math.floor(b.expires_in)), 3600),
        // RFC 8628 §3.2: 5 s when absent.
        intervalSeconds: typeof b.interval === 'number' ? Math.min(Math.max(1, Math.floor(b.interval)), 60) : 5,
      };
    },
    async pollDeviceToken(issuer, deviceCode) {
      return tokenOutcome(issuer, await post(issuer, await endpoint(issuer, 'tokenEndpoint'), { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode }));
    },
    async authorizeUrl(issuer, p) {
      const s = settings(issuer);
      const url = new URL(await endpoint(issuer, 'authorizationEndpoint'));
      const q = url.searchParams;
      q.set('response_type', 'code');
      q.set('client_id', s.clientId);
      q.set('redirect_uri', p.redirectUri);
      q.set('scope', s.scopes.join(' '));
      q.set('state', p.state);
      q.set('nonce', p.nonce);
      q.set('code_challenge', p.codeChallenge);
      q.set('code_challenge_method', 'S256');
      return url.toString();
    },
    async exchangeCode(issuer, p) {
      return tokenOutcome(issuer, await post(issuer, await endpoint(issuer, 'tokenEndpoint'), { grant_type: 'authorization_code', code: p.code, redirect_uri: p.redirectUri, code_verifier: p.codeVerifier }));
    },
    async refresh(issuer, refreshToken) {
      return tokenOutcome(issuer, await post(issuer, await endpoint(issuer, 'tokenEndpoint'), { grant_type: 'refresh_token', refresh_token: refreshToken }));
    },
  };
}

async function readBounded(res: Response): Promise<string | undefined> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
