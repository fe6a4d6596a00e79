/**
 * The wire constants the agent needs at run time, with no schema library
 * behind them: importing `@latchkey/protocol/wire` costs the agent's daemon
 * no memory for TypeBox. The full package re-exports all of it.
 */
/**
 * Version of the agent ↔ server wire contract. It is bumped only on
 * incompatible changes (a field removed or retyped, a message's meaning
 * changed); adding an optional field to a server → client message is not one.
 * The agent sends it in its control-channel hello, where the server checks it.
 */
export const PROTOCOL_VERSION = 1;

export const EST_PREFIX = '/.well-known/est';

/** RFC 7030 §3.2.2 operation paths. */
export const EST_PATHS = {
  cacerts: `${EST_PREFIX}/cacerts`,
  simpleenroll: `${EST_PREFIX}/simpleenroll`,
  simplereenroll: `${EST_PREFIX}/simplereenroll`,
  csrattrs: `${EST_PREFIX}/csrattrs`,
} as const;
export type EstOperation = keyof typeof EST_PATHS;

export const MEDIA_TYPES = {
  /** RFC 7030 §4.2.1 request body of simpleenroll / simplereenroll. */
  pkcs10: 'application/pkcs10',
  /** RFC 7030 §4.1.3 / §4.2.3 response body of cacerts and enroll. */
  pkcs7CertsOnly: 'application/pkcs7-mime; smime-type=certs-only',
  /** The bare type, for matching a Content-Type without parameters. */
  pkcs7: 'application/pkcs7-mime',
  /** RFC 7030 §4.5.2 csrattrs response. */
  csrattrs: 'application/csrattrs',
  /** RFC 6960 Appendix A. */
  ocspRequest: 'application/ocsp-request',
  ocspResponse: 'application/ocsp-response',
  /** RFC 5280 §4.2.1.13 / RFC 2585. */
  pkixCrl: 'application/pkix-crl',
  pemFile: 'application/x-pem-file',
  json: 'application/json',
} as const;

/** RFC 7030 §4.1.3: EST bodies are base64 DER. */
export const CONTENT_TRANSFER_ENCODING = { header: 'content-transfer-encoding', base64: 'base64' } as const;

/** RFC 7030 §4.2.3: 202 Accepted carries Retry-After while approval is pending. */
export const RETRY_AFTER_HEADER = 'retry-after';

/**
 * PKCS#10 attribute (RFC 2986 §4.1) carrying the facts: one value, a
 * UTF8String holding the JSON of a DeviceFacts object, at most
 * MAX_FACTS_JSON characters.
 *
 * PLACEHOLDER: 1.3.6.1.4.1.59402 is a private-enterprise arc not yet
 * registered with IANA for Latchkey; register one and replace it before a
 * stable release. Layout under it: .1 CSR attributes, .1.1 device facts.
 */
export const FACTS_ATTRIBUTE_OID = '1.3.6.1.4.1.59402.1.1';

/** Largest facts JSON accepted, in characters. */
export const MAX_FACTS_JSON = 4096;
