/**
 * Sign-in through the company's identity provider (issue 12), under
 * `/v1/auth` (public zone, rate-limited per address).
 *
 * The server is the OAuth client of the IdP (it holds the client secret, if
 * any, and verifies the ID token); the CLI and the agent talk only to the
 * Latchkey server, whose CA they already pin. Two ways to sign in:
 * - the device authorization grant (RFC 8628): `POST /v1/auth/device` starts
 *   it, the person opens the URL and types the code, the client polls
 *   `POST /v1/auth/device/poll` until it is done;
 * - the system browser with a loopback redirect and PKCE (RFC 8252): the
 *   client makes the PKCE verifier, `POST /v1/auth/browser` gives the IdP's
 *   authorize URL for its loopback `redirectUri`, and
 *   `POST /v1/auth/browser/finish` sends back the code with the verifier.
 *
 * Either ends in an `AuthResult`: an admin session (purpose `admin`) or a
 * one-use enrollment token bound to the person (purpose `enroll`), which the
 * agent then uses with EST simpleenroll like any token.
 */
import { Type, type Static } from '@sinclair/typebox';
import { BoundedText, embed, Timestamp } from './common.js';
import { AdminRole } from './admin.js';

export const AUTH_PATHS = {
  /** GET: the configured identity providers (empty when none). */
  providers: '/v1/auth/providers',
  deviceStart: '/v1/auth/device',
  devicePoll: '/v1/auth/device/poll',
  browserStart: '/v1/auth/browser',
  browserFinish: '/v1/auth/browser/finish',
  /** POST { refreshToken }: a new admin session (the IdP is asked again). */
  refresh: '/v1/auth/refresh',
  /** POST with `Authorization: Bearer <session token>`: ends the session. */
  logout: '/v1/auth/logout',
} as const;

/** Secrets handed out by sign-in start with these, so a leaked one is recognizable. */
export const SECRET_PREFIXES = {
  flow: 'lk_flow_',
  session: 'lk_ses_',
  refresh: 'lk_ref_',
  adminToken: 'lk_adm_',
  enrollToken: 'lk_enr_',
} as const;

export const AuthPurpose = Type.Union([Type.Literal('admin'), Type.Literal('enroll')], { $id: 'AuthPurpose' });
export type AuthPurpose = Static<typeof AuthPurpose>;

const Issuer = () => Type.String({ minLength: 1, maxLength: 500, pattern: '^https?://[^\\s]+$' });
const Secret = () => Type.String({ minLength: 20, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' });

export const AuthProviders = Type.Object(
  { providers: Type.Array(Type.Object({ issuer: Issuer(), deviceFlow: Type.Boolean(), browserFlow: Type.Boolean() })) },
  { $id: 'AuthProviders' },
);
export type AuthProviders = Static<typeof AuthProviders>;

/** `POST /v1/auth/device`. `issuer` may be left out when only one is configured. */
export const AuthDeviceStart = Type.Object({ purpose: embed(AuthPurpose), issuer: Type.Optional(Issuer()) }, { $id: 'AuthDeviceStart', additionalProperties: false });
export type AuthDeviceStart = Static<typeof AuthDeviceStart>;

export const AuthDeviceStarted = Type.Object(
  {
    /** Secret handle of this sign-in, for polling; valid until `expiresAt`. */
    flowId: Secret(),
    userCode: BoundedText(100, { minLength: 1 }),
    verificationUri: Type.String({ minLength: 1, maxLength: 2000 }),
    verificationUriComplete: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
    intervalSeconds: Type.Integer({ minimum: 1, maximum: 600 }),
    expiresAt: Timestamp(),
  },
  { $id: 'AuthDeviceStarted' },
);
export type AuthDeviceStarted = Static<typeof AuthDeviceStarted>;

/** `POST /v1/auth/device/poll`: 200 `AuthResult`, or 202 `AUTH_PENDING` (Retry-After), 429 when polled faster than the interval. */
export const AuthDevicePoll = Type.Object({ flowId: Secret() }, { $id: 'AuthDevicePoll', additionalProperties: false });
export type AuthDevicePoll = Static<typeof AuthDevicePoll>;

/** `POST /v1/auth/browser`: `redirectUri` must be `http://127.0.0.1:PORT/…` or `http://[::1]:PORT/…` (RFC 8252 §7.3). */
export const AuthBrowserStart = Type.Object(
  {
    purpose: embed(AuthPurpose),
    issuer: Type.Optional(Issuer()),
    redirectUri: Type.String({ minLength: 1, maxLength: 200, pattern: '^http://(127\\.0\\.0\\.1|\\[::1\\]):[0-9]{1,5}/[A-Za-z0-9/_-]*$' }),
    /** RFC 7636 S256 challenge of the client's verifier (base64url of SHA-256, 43 chars). */
    codeChallenge: Type.String({ minLength: 43, maxLength: 43, pattern: '^[A-Za-z0-9_-]+$' }),
  },
  { $id: 'AuthBrowserStart', additionalProperties: false },
);
export type AuthBrowserStart = Static<typeof AuthBrowserStart>;

export const AuthBrowserStarted = Type.Object(
  {
    flowId: Secret(),
    /** Open this in the system browser. */
    authorizeUrl: Type.String({ minLength: 1, maxLength: 4000 }),
    /** The `state` the redirect must carry back (check it before finishing). */
    state: Type.String({ minLength: 16, maxLength: 100 }),
    expiresAt: Timestamp(),
  },
  { $id: 'AuthBrowserStarted' },
);
export type AuthBrowserStarted = Static<typeof AuthBrowserStarted>;

export const AuthBrowserFinish = Type.Object(
  {
    flowId: Secret(),
    code: Type.String({ minLength: 1, maxLength: 2000 }),
    state: Type.String({ minLength: 16, maxLength: 100 }),
    /** RFC 7636 §4.1: 43-128 characters. */
    codeVerifier: Type.String({ minLength: 43, maxLength: 128, pattern: '^[A-Za-z0-9._~-]+$' }),
  },
  { $id: 'AuthBrowserFinish', additionalProperties: false },
);
export type AuthBrowserFinish = Static<typeof AuthBrowserFinish>;

/** The person a sign-in proved. */
export const AuthUser = Type.Object({ email: BoundedText(254, { minLength: 3 }), issuer: Issuer() }, { $id: 'AuthUser' });
export type AuthUser = Static<typeof AuthUser>;

export const AdminSession = Type.Object(
  {
    /** Bearer token of the admin API, short-lived. */
    token: Secret(),
    expiresAt: Timestamp(),
    /** One-use: `POST /v1/auth/refresh` answers a new session and refresh token. */
    refreshToken: Secret(),
    refreshExpiresAt: Timestamp(),
    role: embed(AdminRole),
  },
  { $id: 'AdminSession' },
);
export type AdminSession = Static<typeof AdminSession>;

export const AuthResult = Type.Union(
  [
    Type.Object({ purpose: Type.Literal('admin'), user: embed(AuthUser), session: embed(AdminSession) }),
    Type.Object({
      purpose: Type.Literal('enroll'),
      user: embed(AuthUser),
      /** One use, minutes long, bound to the user: send it as the simpleenroll bearer token. */
      enrollToken: Secret(),
      /** The Latchkey group the IdP group chose (its lifetime and approval apply). */
      group: Type.String({ minLength: 1, maxLength: 63 }),
      expiresAt: Timestamp(),
    }),
  ],
  { $id: 'AuthResult' },
);
export type AuthResult = Static<typeof AuthResult>;

export const AuthRefresh = Type.Object({ refreshToken: Secret() }, { $id: 'AuthRefresh', additionalProperties: false });
export type AuthRefresh = Static<typeof AuthRefresh>;

// ------------------------------------------------------- admin API: who am I, admin tokens, users
/** `GET /v1/admin/whoami` (any role). */
export const WhoAmI = Type.Object(
  {
    /** As the audit log names it: `user:<email>` for a person, `admin:<token name>` for an API token. */
    actor: BoundedText(300),
    role: embed(AdminRole),
    kind: Type.Union([Type.Literal('session'), Type.Literal('token')]),
    user: Type.Union([BoundedText(254), Type.Null()]),
    expiresAt: Type.Union([Timestamp(), Type.Null()]),
  },
  { $id: 'WhoAmI' },
);
export type WhoAmI = Static<typeof WhoAmI>;

/** `POST /v1/admin/admin-tokens` (admin role): an API token for automation; its role cannot exceed its creator's. */
export const AdminTokenCreateRequest = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_.-]{0,62}$' }),
    role: embed(AdminRole),
    /** Seconds, or a duration such as "30d"; default 90 days, at most 365 days. */
    ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 60, maximum: 365 * 86400 }), Type.String({ pattern: '^[1-9][0-9]{0,5}[smhd]$', maxLength: 7 })])),
  },
  { $id: 'AdminTokenCreateRequest', additionalProperties: false },
);
export type AdminTokenCreateRequest = Static<typeof AdminTokenCreateRequest>;

export const AdminTokenInfo = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64 }),
    name: BoundedText(63),
    role: embed(AdminRole),
    /** `bootstrap`: made by `init`; `token`: made by an admin; `session`: a person's sign-in. */
    kind: Type.Union([Type.Literal('bootstrap'), Type.Literal('token'), Type.Literal('session')]),
    user: Type.Union([BoundedText(254), Type.Null()]),
    createdAt: Timestamp(),
    createdBy: Type.Union([BoundedText(300), Type.Null()]),
    expiresAt: Type.Union([Timestamp(), Type.Null()]),
    lastUsedAt: Type.Union([Timestamp(), Type.Null()]),
    revokedAt: Type.Union([Timestamp(), Type.Null()]),
  },
  { $id: 'AdminTokenInfo' },
);
export type AdminTokenInfo = Static<typeof AdminTokenInfo>;

export const AdminTokenCreateResponse = Type.Object({ token: Secret(), info: embed(AdminTokenInfo) }, { $id: 'AdminTokenCreateResponse' });
export type AdminTokenCreateResponse = Static<typeof AdminTokenCreateResponse>;

export const UserStatus = Type.Union([Type.Literal('active'), Type.Literal('removed'), Type.Literal('disabled')], { $id: 'UserStatus' });
export type UserStatus = Static<typeof UserStatus>;

/** `GET /v1/admin/users` (viewer). */
export const UserInfo = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64 }),
    issuer: Issuer(),
    email: BoundedText(254),
    groups: Type.Array(BoundedText(200)),
    status: embed(UserStatus),
    /** Devices bound to the user that are not revoked or denied. */
    devices: Type.Integer({ minimum: 0 }),
    lastSignInAt: Type.Union([Timestamp(), Type.Null()]),
    lastSyncedAt: Type.Union([Timestamp(), Type.Null()]),
  },
  { $id: 'UserInfo' },
);
export type UserInfo = Static<typeof UserInfo>;

/** `POST /v1/admin/users/sync` body (optional). */
export const UsersSyncRequest = Type.Object({ force: Type.Optional(Type.Boolean()) }, { $id: 'UsersSyncRequest', additionalProperties: false });
export type UsersSyncRequest = Static<typeof UsersSyncRequest>;

/** `POST /v1/admin/users/sync` (admin): ask the IdP about every user with devices. */
export const UsersSyncResult = Type.Object(
  {
    checked: Type.Integer({ minimum: 0 }),
    /** Still allowed, groups refreshed. */
    unchanged: Type.Integer({ minimum: 0 }),
    /** No longer in an allowed group or domain. */
    removed: Type.Array(BoundedText(254)),
    /** Disabled or deleted at the IdP (its refresh grant refused). */
    disabled: Type.Array(BoundedText(254)),
    /** The IdP could not be asked: nothing was changed for them. */
    unreachable: Type.Array(BoundedText(254)),
    revokedDevices: Type.Array(Type.String({ maxLength: 36 })),
    /**
     * Set when the run would have taken devices from more people at once than a sync may
     * (an IdP that lost its refresh tokens looks like everyone disabled): nobody was changed;
     * an admin who has checked the IdP repeats it with `force`.
     */
    held: Type.Optional(BoundedText(1000)),
  },
  { $id: 'UsersSyncResult' },
);
export type UsersSyncResult = Static<typeof UsersSyncResult>;
