/**
 * EST (RFC 7030) and the other public HTTP paths of latchkey-server.
 *
 * CRL paths: `/crl` and `/crl.pem` serve the issuing CA's CRL (what device
 * certificates point to in their CRL Distribution Point); `/crl/root` and
 * `/crl/root.pem` serve the root's CRL (what the issuing CA certificate points
 * to). Gateways need both (a CRL for every CA in the chain).
 */
export const EST_PREFIX = '/.well-known/est';

export const EST_PATHS = {
  cacerts: `${EST_PREFIX}/cacerts`,
  simpleenroll: `${EST_PREFIX}/simpleenroll`,
  simplereenroll: `${EST_PREFIX}/simplereenroll`,
  csrattrs: `${EST_PREFIX}/csrattrs`,
} as const;

export const PATHS = {
  crl: '/crl',
  crlPem: '/crl.pem',
  rootCrl: '/crl/root',
  rootCrlPem: '/crl/root.pem',
  ocsp: '/ocsp',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
  agentChannel: '/v1/agent',
  events: '/v1/events',
  /** Device-authenticated REST (mTLS), e.g. posting facts after enrollment. */
  device: '/v1/device',
  admin: '/v1/admin',
} as const;

export const MEDIA_TYPES = {
  pkcs10: 'application/pkcs10',
  pkcs7CertsOnly: 'application/pkcs7-mime; smime-type=certs-only',
  pkcs7: 'application/pkcs7-mime',
  csrattrs: 'application/csrattrs',
  ocspRequest: 'application/ocsp-request',
  ocspResponse: 'application/ocsp-response',
  pkixCrl: 'application/pkix-crl',
  pemFile: 'application/x-pem-file',
  json: 'application/json',
} as const;

/** RFC 7030 §4.1.3: bodies are base64 DER. */
export const CONTENT_TRANSFER_ENCODING = { header: 'content-transfer-encoding', base64: 'base64' } as const;

/** RFC 7030 §4.2.3: 202 Accepted carries Retry-After while approval is pending. */
export const RETRY_AFTER_HEADER = 'retry-after';
