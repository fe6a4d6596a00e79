/**
 * The contract between the test fixture (idp-fixture.ts, in the test process)
 * and the identity provider process (idp-process.ts): its config file, its
 * ready line, its control API and the element ids of its pages. Both sides
 * import it, so nothing here is typed out twice.
 */

export type IdTokenSigningAlg = 'RS256' | 'ES256' | 'EdDSA';

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface IdpClient {
  client_id: string;
  /** Absent: a public client (token_endpoint_auth_method none, PKCE required). */
  client_secret?: string;
  /**
   * Loopback redirect URIs such as `http://127.0.0.1/callback`; any port is
   * accepted on them (RFC 8252 §7.3), see idp-provider.ts.
   */
  redirect_uris: string[];
  /** `native` (default: loopback redirects on any port) or `web` (exact redirects, https allowed; loopback ports still free, as Keycloak and Entra ID do). */
  application_type?: 'web' | 'native';
  /** Default: authorization_code, refresh_token and the device code grant. */
  grant_types?: string[];
}

export interface IdpAccount {
  sub: string;
  email: string;
  email_verified: boolean;
  groups: string[];
  password: string;
  /** A disabled account cannot sign in, and its refresh tokens fail with invalid_grant. */
  disabled?: boolean;
}

/** The body of `PUT /__control/accounts/:sub`: the given fields replace the account's; email and password are needed to create one. */
export type IdpAccountPatch = Partial<Omit<IdpAccount, 'sub'>>;

/** The JSON file given as the process's only argument. */
export interface IdpConfig {
  /** Bearer secret of the control API. */
  controlSecret: string;
  clients: IdpClient[];
  accounts: IdpAccount[];
  /** ttl.IdToken, seconds. */
  idTokenTtlSeconds: number;
  idTokenSigningAlg: IdTokenSigningAlg;
}

/** The one JSON line printed on stdout once the provider listens. */
export interface IdpReadyLine {
  ready: true;
  issuer: string;
}

export const CONTROL_PREFIX = '/__control';

export interface RotateKeysRequest {
  /** true: the previous key stays in the JWKS (verifies old tokens); false: it is dropped. */
  keepOld: boolean;
}

export interface RotateKeysResponse {
  /** The kid new tokens are signed with. */
  kid: string;
  /** The kids now published in the JWKS, current first. */
  published: string[];
}

/** Element ids and field names of the pages, shared by the pages and the login drivers. */
export const PAGE = {
  loginForm: 'login-form',
  loginField: 'login',
  passwordField: 'password',
  loginSubmit: 'login-submit',
  consentForm: 'consent-form',
  decisionField: 'decision',
  allowButton: 'allow',
  denyButton: 'deny',
  /** oidc-provider's own device forms (lib/helpers/user_code_form.js). */
  deviceInputForm: 'op.deviceInputForm',
  deviceConfirmForm: 'op.deviceConfirmForm',
  deviceSubmit: 'device-submit',
  /** A paragraph with the error code on every error page, and on the login page after a refusal. */
  error: 'error',
  /** The heading of the device flow's final page. */
  deviceDone: 'device-done',
} as const;
