/**
 * The error codes shared by server and clients, with their HTTP status and
 * a one-line meaning. Every error response body is
 * `{ error: { code, message }, reqId? }`; `message` says what happened and
 * what to do, `reqId` matches the server's log line.
 */
import { Type, type Static } from '@sinclair/typebox';
import { embed } from './common.js';

export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, meaning: 'the request is malformed' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'the Content-Type is not the one this endpoint takes' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: 'the body is over the size limit' },
  CSR_MALFORMED: { status: 400, meaning: 'the CSR cannot be parsed' },
  CSR_BAD_SIGNATURE: { status: 400, meaning: 'the CSR is not signed by its own key (no proof of possession)' },
  CSR_POLICY: { status: 400, meaning: 'the CSR asks for something the policy forbids (key type or size, CA:true, SANs, signature algorithm)' },
  TOKEN_INVALID: { status: 401, meaning: 'the enrollment token is unknown' },
  TOKEN_EXPIRED: { status: 403, meaning: 'the enrollment token has expired' },
  TOKEN_EXHAUSTED: { status: 403, meaning: 'the enrollment token has no uses left' },
  TOKEN_REVOKED: { status: 403, meaning: 'the enrollment token was revoked' },
  APPROVAL_PENDING: { status: 202, meaning: 'the device waits for admin approval; retry after Retry-After seconds' },
  DEVICE_REVOKED: { status: 403, meaning: 'the device is revoked; it needs a new enrollment token' },
  DEVICE_DENIED: { status: 403, meaning: 'an administrator refused this device\'s enrollment for good; stop retrying' },
  KEY_COMPROMISED: { status: 403, meaning: 'this key belonged to a device revoked for key compromise; it is refused for good, make a new key' },
  ATTESTATION_INVALID: { status: 403, meaning: 'the TPM attestation was refused (EK not trusted, AK or key attributes, certify signature, key mismatch, or a challenge unknown, expired or already used); the message says which' },
  EK_NOT_REGISTERED: { status: 403, meaning: "the device's group accepts only TPMs registered in advance (devices register) and this TPM's endorsement key is not" },
  ATTESTATION_REQUIRED: { status: 403, meaning: "the device's group requires a TPM-attested device key and this request carried no attestation; enroll with a TPM keystore" },
  CERT_EXPIRED_PAST_GRACE: { status: 403, meaning: 'the certificate expired longer ago than the recovery grace window; enroll again with a token' },
  CERT_SUPERSEDED: { status: 403, meaning: 'the client certificate was replaced by a later one of the same device; only the latest renews' },
  TOO_MANY_CERTIFICATES: { status: 429, meaning: 'the device holds as many unexpired certificates as allowed; retry once the oldest expires (Retry-After)' },
  CLIENT_CERT_REQUIRED: { status: 401, meaning: 'this endpoint needs the device certificate as TLS client certificate' },
  CLIENT_CERT_UNKNOWN: { status: 403, meaning: 'the client certificate was not issued by this server' },
  UNAUTHORIZED: { status: 401, meaning: 'credentials are missing or wrong' },
  FORBIDDEN: { status: 403, meaning: 'the credentials do not allow this action' },
  CSRF: { status: 403, meaning: 'a change sent with the console cookie without the console\'s CSRF token, or from another site' },
  NOT_FOUND: { status: 404, meaning: 'no such resource' },
  CONFLICT: { status: 409, meaning: 'the resource is not in a state that allows this' },
  RATE_LIMITED: { status: 429, meaning: 'too many requests; retry later' },
  SERVER_BUSY: { status: 503, meaning: 'the server holds as many connections as it can; retry later (another replica may have room)' },
  STORAGE_FULL: { status: 503, meaning: "the server's storage is full; the request changed nothing; retry later" },
  IDP_TOKEN_INVALID: { status: 401, meaning: 'the identity provider\'s ID token was refused (signature, issuer, audience, expiry, nonce or email); sign in again' },
  IDP_UNAVAILABLE: { status: 503, meaning: 'the identity provider cannot be reached or answered badly; retry later' },
  AUTH_PENDING: { status: 202, meaning: 'the person has not finished signing in at the identity provider yet; poll again after Retry-After seconds' },
  AUTH_DENIED: { status: 403, meaning: 'the sign-in was refused at the identity provider (the person said no, or it refused the client)' },
  AUTH_EXPIRED: { status: 403, meaning: 'the sign-in took too long or was already used; start it again' },
  USER_NOT_ALLOWED: { status: 403, meaning: 'the signed-in person may not do this (not in an allowed IdP group or email domain); the message says which rule refused them' },
  USER_DEVICE_LIMIT: { status: 403, meaning: 'the person already has as many devices as allowed; an admin revokes an old one first' },
  SESSION_EXPIRED: { status: 401, meaning: 'the admin session has expired or was ended; sign in again with `latchkey-server login`' },
  OCSP_MALFORMED: { status: 400, meaning: 'the OCSP request cannot be parsed' },
  INTERNAL: { status: 500, meaning: 'the server failed; details are in its log' },
} as const satisfies Record<string, { status: number; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes, in registry order. */
export const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as ErrorCode[];

export const ErrorCodeSchema = Type.Union(
  ERROR_CODE_NAMES.map((c) => Type.Literal(c)),
  { $id: 'ErrorCode' },
);

/**
 * Error response body. Open to extra fields (clients ignore what they do not
 * know), so the server can add detail without a protocol version bump.
 */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({ code: embed(ErrorCodeSchema), message: Type.String({ minLength: 1, maxLength: 2000 }) }),
    reqId: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { $id: 'ErrorBody' },
);
export type ErrorBody = Static<typeof ErrorBody>;
