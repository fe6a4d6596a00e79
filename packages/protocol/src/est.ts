/**
 * EST (RFC 7030) and the other public HTTP paths of latchkey-server.
 *
 * CRL paths, one URL per CA and format:
 *
 * | CA      | DER (`application/pkix-crl`) | PEM (`application/x-pem-file`) |
 * |---------|------------------------------|--------------------------------|
 * | issuing | `/crl`                       | `/crl.pem`                     |
 * | root    | `/crl/root`                  | `/crl/root.pem`                |
 *
 * Device certificates' CRL Distribution Point is `/crl` (the issuing CA's
 * CRL, the one that changes when a device is revoked); the issuing CA
 * certificate points to `/crl/root`. Gateways fetch both (a CRL for every CA
 * in the chain). There is deliberately no `/crl/issuing` alias: one URL per
 * CRL keeps caches and ETags simple.
 */
import { Type, type Static } from '@sinclair/typebox';

export const PATHS = {
  /** Issuing CA's CRL, DER. */
  crl: '/crl',
  /** Issuing CA's CRL, PEM. */
  crlPem: '/crl.pem',
  /** Root CA's CRL, DER. */
  rootCrl: '/crl/root',
  /** Root CA's CRL, PEM. */
  rootCrlPem: '/crl/root.pem',
  /** RFC 6960 OCSP: GET `/ocsp/<base64 request>` and POST. */
  ocsp: '/ocsp',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
  /** WebSocket control channel, device mTLS. */
  agentChannel: '/v1/agent',
  /** WebSocket event stream for gateways, gateway token. */
  events: '/v1/events',
  /** Device-authenticated REST (mTLS), e.g. posting facts after enrollment. */
  device: '/v1/device',
  /** Admin REST API prefix, bearer admin tokens. */
  admin: '/v1/admin',
} as const;

/** The CAs that publish a CRL. */
export const CrlIssuer = Type.Union([Type.Literal('issuing'), Type.Literal('root')], { $id: 'CrlIssuer' });
export type CrlIssuer = Static<typeof CrlIssuer>;

/** The CRL paths of the table above, by CA and format. */
export const CRL_PATHS = {
  issuing: { der: PATHS.crl, pem: PATHS.crlPem },
  root: { der: PATHS.rootCrl, pem: PATHS.rootCrlPem },
} as const satisfies Record<CrlIssuer, { der: string; pem: string }>;

export { EST_PREFIX, EST_PATHS, type EstOperation, MEDIA_TYPES, CONTENT_TRANSFER_ENCODING, RETRY_AFTER_HEADER } from './wire.js';
