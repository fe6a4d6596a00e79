/**
 * The oidc-provider configuration of the test identity provider. Each call
 * builds a new Provider over the same account table, storage adapter and
 * cookie keys, so the process can swap instances to rotate signing keys.
 */
import Provider, { type AdapterFactory, type Configuration, type JWK, type KoaContextWithOIDC } from 'oidc-provider';
import { deviceDonePage, devicePage, errorPage } from './idp-pages.js';
import { DEVICE_CODE_GRANT, PAGE, type IdpAccount, type IdpConfig } from './idp-types.js';

export interface ProviderDeps {
  issuer: string;
  config: IdpConfig;
  /** The live account table: findAccount reads it on every grant. */
  accounts: Map<string, IdpAccount>;
  adapter: AdapterFactory;
  cookieKeys: string[];
  /** Private JWKs, the signing key first (oidc-provider signs with the first key fitting the algorithm). */
  keys: JWK[];
}

const DEVICE_ERRORS: Record<string, string> = {
  NoCodeError: 'no_code',
  NotFoundError: 'code_not_found',
  ExpiredError: 'code_expired',
  AlreadyUsedError: 'code_already_used',
  // the user aborted, or denied at consent
  AbortedError: 'access_denied',
};

const html = (ctx: KoaContextWithOIDC, body: string): void => {
  ctx.type = 'html';
  ctx.body = body;
};

export function buildProvider(d: ProviderDeps): Provider {
  const { config } = d;
  const configuration: Configuration = {
    adapter: d.adapter,
    cookies: { keys: d.cookieKeys },
    jwks: { keys: d.keys },
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      ...(c.client_secret ? { client_secret: c.client_secret } : { token_endpoint_auth_method: 'none' }),
      redirect_uris: c.redirect_uris,
      grant_types: c.grant_types ?? ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT],
      response_types: ['code'],
      // RFC 8252 §7.3: for `native` clients, oidc-provider 9 accepts any port
      // on a loopback (http 127.0.0.1 / [::1] / localhost) redirect URI
      // (Client#redirectUriAllowed in lib/models/client.js); `web` clients
      // need an exact match. No override is needed.
      application_type: c.application_type ?? 'native',
    })),
    clientDefaults: { id_token_signed_response_alg: config.idTokenSigningAlg },
    scopes: ['openid', 'offline_access', 'email', 'groups'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    // Put the scope's claims into the ID token of the code and device grants
    // too, as Keycloak / Entra ID / Okta do. oidc-provider's default (true)
    // keeps them for userinfo only unless response_type is id_token.
    conformIdTokenClaims: false,
    async findAccount(_ctx, sub) {
      const a = d.accounts.get(sub);
      // undefined makes every grant for this account (refresh_token included)
      // fail with invalid_grant "referenced account not found"
      // (validateAccount in lib/helpers/grant_common.js).
      if (!a || a.disabled) return undefined;
      return { accountId: sub, claims: () => ({ sub, email: a.email, email_verified: a.email_verified, groups: [...a.groups] }) };
    },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: {
        enabled: true,
        // Re-shown after an error too; `out.error` is then a sentence for the
        // code errors (lib/helpers/re_render_errors.js), so name those by class.
        userCodeInputSource: async (ctx, form, out, err) => {
          const error = err ? (DEVICE_ERRORS[err.name] ?? out?.error) : undefined;
          html(ctx, devicePage({ title: 'Enter the code', form, formId: PAGE.deviceInputForm, error, description: out?.error_description ?? err?.message }));
        },
        userCodeConfirmSource: async (ctx, form, _client, _info, userCode) =>
          html(ctx, devicePage({ title: 'Confirm the device', form, formId: PAGE.deviceConfirmForm, userCode })),
        successSource: async (ctx) => html(ctx, deviceDonePage(ctx.oidc.client?.clientId ?? '')),
      },
      revocation: { enabled: true },
    },
    renderError: async (ctx, out) => html(ctx, errorPage(out.error, out.error_description)),
    // PKCE (S256 only in oidc-provider 9) is required for public clients by
    // the default pkce.required; said here so it does not change behind us.
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
    // A refresh token on every code and device grant, without asking for
    // offline_access (the default requires that scope); rotated on each use.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    // The default ties tokens without offline_access to the browser session:
    // the device flow's user and the CLI do not share one.
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      DeviceCode: 600,
      IdToken: config.idTokenTtlSeconds,
      Interaction: 600,
      Grant: 3600,
      Session: 3600,
      RefreshToken: 3600,
    },
  };
  const provider = new Provider(d.issuer, configuration);
  // One client with both a web redirect (the console's https callback) and
  // loopback redirects on any port (the CLI's browser flow), as a Keycloak or
  // Entra ID client may have; oidc-provider frees the loopback port for
  // native clients only (RFC 8252 §7.3), so web clients get it here.
  const client = provider.Client.prototype as { redirectUriAllowed(this: { redirectUris: string[] }, value: string): boolean };
  const exact = client.redirectUriAllowed;
  client.redirectUriAllowed = function (value: string): boolean {
    if (exact.call(this, value)) return true;
    const u = URL.parse(value);
    if (!u || u.protocol !== 'http:' || !['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname)) return false;
    const portless = (x: URL): string => `${x.protocol}//${x.hostname}${x.pathname}${x.search}`;
    return this.redirectUris.some((r) => {
      const a = URL.parse(r);
      return a !== null && portless(a) === portless(u);
    });
  };
  return provider;
}
