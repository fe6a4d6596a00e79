/**
 * Verifies ID tokens from the configured OpenID Providers (OpenID Connect
 * Core 1.0 §3.1.3.7): discovery, a cached JWKS refetched on an unknown `kid`
 * (at most once per `jwksRefetchIntervalMs`), signature with an asymmetric
 * algorithm the provider advertises, `iss`, `aud`, `azp`, `exp`/`iat`/`nbf`
 * with clock skew, `nonce`, and a verified email. Messages never carry the token.
 */
import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { LatchkeyError } from '../errors.js';
import type { OidcIssuerSettings, VerifiedIdentity } from './oidc-types.js';

/** Asymmetric algorithms we accept; never `none`, never HS* (a public client has no shared secret). */
const ACCEPTED_ALGS = ['RS256', 'ES256', 'EdDSA'] as const;

export interface OidcVerifierOptions {
  readonly issuers: readonly OidcIssuerSettings[];
  readonly clock: () => Date;
  readonly fetch?: typeof globalThis.fetch;
  /** Allowed clock difference in seconds (default 60). */
  readonly clockSkewSec?: number;
  /** Least time between two JWKS fetches of one issuer (default 5 s). */
  readonly jwksRefetchIntervalMs?: number;
  /** Timeout of one HTTP request to the provider (default 10 s). */
  readonly requestTimeoutMs?: number;
}

/** The provider's endpoints from its discovery document (OpenID Connect Discovery 1.0 §3, RFC 8628 §4). */
export interface ProviderMetadata {
  readonly jwksUri: string;
  readonly algs: string[];
  readonly tokenEndpoint: string | undefined;
  readonly authorizationEndpoint: string | undefined;
  readonly deviceAuthorizationEndpoint: string | undefined;
}

export interface OidcVerifier {
  /**
   * `nonce`: the one this sign-in sent, which must come back; `null` where the
   * grant has none (device flow, refresh): a nonce in the token is then ignored.
   * The ID token must come straight from the provider's token endpoint.
   */
  verifyIdToken(issuer: string, idToken: string, expected: { nonce: string | null }): Promise<VerifiedIdentity>;
  /** Discovery, cached after the first success. */
  metadata(issuer: string): Promise<ProviderMetadata>;
}

interface IssuerState {
  readonly settings: OidcIssuerSettings;
  discovery?: ProviderMetadata;
  jwks?: ReturnType<typeof createLocalJWKSet>;
  jwksFetchedAt?: number;
}

function invalid(issuer: string, why: string, cause?: unknown): LatchkeyError {
  return new LatchkeyError('IDP_TOKEN_INVALID', `ID token from ${issuer} refused: ${why}; sign in again`, { cause });
}

export function createOidcVerifier(opts: OidcVerifierOptions): OidcVerifier {
  const doFetch = opts.fetch ?? globalThis.fetch;
  const skew = opts.clockSkewSec ?? 60;
  // ID tokens reach us only from the provider's own token endpoint (never from a client), so an
  // unknown kid is a rotation, not an attacker's flood: refetch soon, but still not in a loop.
  const refetchMs = opts.jwksRefetchIntervalMs ?? 5_000;
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const states = new Map<string, IssuerState>(opts.issuers.map((s) => [s.issuer, { settings: s }]));

  async function getJson(issuer: string, url: string): Promise<unknown> {
    let res: Response;
    try {
      res = await doFetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
    } catch (cause) {
      throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${issuer} cannot be reached (${url}); retry later`, { cause });
    }
    if (!res.ok) throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${issuer} answered ${res.status} for ${url}; retry later`);
    try {
      return await res.json();
    } catch (cause) {
      throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${issuer} sent no JSON at ${url}`, { cause });
    }
  }

  async function discover(st: IssuerState): Promise<NonNullable<IssuerState['discovery']>> {
    if (st.discovery) return st.discovery;
    const iss = st.settings.issuer;
    const doc = (await getJson(iss, `${iss.replace(/\/$/, '')}/.well-known/openid-configuration`)) as Record<string, unknown>;
    // OpenID Connect Discovery 1.0 §4.3: the issuer in the document is exactly the one asked for.
    if (doc.issuer !== iss) throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider discovery for ${iss} names issuer ${String(doc.issuer)}; fix the issuer URL in config`);
    if (typeof doc.jwks_uri !== 'string') throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${iss} publishes no jwks_uri`);
    const advertised = Array.isArray(doc.id_token_signing_alg_values_supported) ? (doc.id_token_signing_alg_values_supported as unknown[]) : ['RS256'];
    const algs = ACCEPTED_ALGS.filter((a) => advertised.includes(a));
    if (algs.length === 0) throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${iss} signs ID tokens with none of ${ACCEPTED_ALGS.join(', ')}`);
    const str = (v: unknown): string | undefined => (typeof v === 'string' && /^https?:\/\//.test(v) ? v : undefined);
    st.discovery = {
      jwksUri: doc.jwks_uri,
      algs,
      tokenEndpoint: str(doc.token_endpoint),
      authorizationEndpoint: str(doc.authorization_endpoint),
      deviceAuthorizationEndpoint: str(doc.device_authorization_endpoint),
    };
    return st.discovery;
  }

  async function loadJwks(st: IssuerState, jwksUri: string): Promise<void> {
    st.jwksFetchedAt = opts.clock().getTime();
    const body = (await getJson(st.settings.issuer, jwksUri)) as JSONWebKeySet;
    if (!body || !Array.isArray(body.keys)) throw new LatchkeyError('IDP_UNAVAILABLE', `identity provider ${st.settings.issuer} sent a JWKS without keys`);
    st.jwks = createLocalJWKSet(body);
  }

  async function verifyWith(st: IssuerState, token: string, algs: string[]): Promise<JWTPayload> {
    const s = st.settings;
    const jwks = st.jwks;
    if (!jwks) throw new Error('JWKS not loaded');
    const { payload } = await jwtVerify(token, jwks, {
      issuer: s.issuer,
      audience: s.clientId,
      algorithms: algs,
      clockTolerance: skew,
      currentDate: opts.clock(),
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
    });
    return payload;
  }

  const stateOf = (issuer: string): IssuerState => {
    const st = states.get(issuer);
    if (!st) throw new LatchkeyError('IDP_TOKEN_INVALID', `issuer ${issuer} is not configured; use one of: ${[...states.keys()].join(', ') || '(none)'}`);
    return st;
  };

  return {
    metadata: (issuer) => discover(stateOf(issuer)),
    async verifyIdToken(issuer, idToken, expected) {
      const st = stateOf(issuer);
      const { jwksUri, algs } = await discover(st);
      let header;
      try {
        header = decodeProtectedHeader(idToken);
      } catch (cause) {
        throw invalid(issuer, 'not a JWS', cause);
      }
      if (typeof header.alg !== 'string' || !algs.includes(header.alg)) throw invalid(issuer, `signature algorithm ${String(header.alg)} is not one of ${algs.join(', ')}`);
      if (!st.jwks) await loadJwks(st, jwksUri);
      let payload: JWTPayload;
      try {
        payload = await verifyWith(st, idToken, algs);
      } catch (e) {
        if (!(e instanceof joseErrors.JWKSNoMatchingKey)) throw fromJose(issuer, e);
        // Key rotation: refetch, but at most once per interval so random kids cannot make us hammer the provider.
        const now = opts.clock().getTime();
        if (st.jwksFetchedAt !== undefined && now - st.jwksFetchedAt < refetchMs) throw invalid(issuer, 'signed by a key the provider does not publish', e);
        await loadJwks(st, jwksUri);
        try {
          payload = await verifyWith(st, idToken, algs);
        } catch (e2) {
          throw fromJose(issuer, e2);
        }
      }
      return checkClaims(st.settings, payload, expected.nonce);
    },
  };
}

function fromJose(issuer: string, e: unknown): LatchkeyError {
  if (e instanceof LatchkeyError) return e;
  if (e instanceof joseErrors.JWTExpired) return invalid(issuer, 'it has expired', e);
  if (e instanceof joseErrors.JWTClaimValidationFailed) return invalid(issuer, `claim ${e.claim} failed (${e.reason})`, e);
  if (e instanceof joseErrors.JWKSNoMatchingKey) return invalid(issuer, 'signed by a key the provider does not publish', e);
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return invalid(issuer, 'the signature does not verify', e);
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return invalid(issuer, 'signature algorithm not allowed', e);
  if (e instanceof joseErrors.JOSEError) return invalid(issuer, `malformed (${e.code})`, e);
  return invalid(issuer, 'cannot be verified', e);
}

function checkClaims(s: OidcIssuerSettings, p: JWTPayload, nonce: string | null): VerifiedIdentity {
  // §3.1.3.7 item 4-5: with several audiences, azp must be present and be us.
  const aud = Array.isArray(p.aud) ? p.aud : [p.aud];
  if ((aud.length > 1 || p.azp !== undefined) && p.azp !== s.clientId) throw invalid(s.issuer, 'azp is not this client');
  // §3.1.2.1 / §3.1.3.7 item 11: the nonce we sent comes back unchanged.
  if (nonce !== null && (typeof p.nonce !== 'string' || p.nonce !== nonce)) throw invalid(s.issuer, 'nonce does not match this sign-in');
  const email = p[s.emailClaim];
  if (typeof email !== 'string' || email.length === 0) throw invalid(s.issuer, `no ${s.emailClaim} claim; ask for the email scope`);
  // Some providers (Entra ID) never send email_verified; `trustEmail` says this one only issues emails it owns.
  // An explicit false is refused either way.
  if (p.email_verified !== true && !(s.trustEmail === true && p.email_verified === undefined)) throw invalid(s.issuer, `email ${email} is not verified at the identity provider`);
  const rawGroups = p[s.groupsClaim];
  const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === 'string') : [];
  // OpenID Connect Core §5.6.2: a groups claim left out of the token and referenced instead (Entra ID
  // with more than 200 groups: "overage") means the groups are unknown, not that there are none.
  const names = p._claim_names;
  const groupsUnknown = rawGroups === undefined && typeof names === 'object' && names !== null && s.groupsClaim in names;
  return { issuer: s.issuer, subject: p.sub as string, email, groups, ...(groupsUnknown ? { groupsUnknown: true } : {}) };
}
