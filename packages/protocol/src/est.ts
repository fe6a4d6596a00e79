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
import { PATHS } from './wire.js';


/** The CAs that publish a CRL. */
export const CrlIssuer = Type.Union([Type.Literal('issuing'), Type.Literal('root')], { $id: 'CrlIssuer' });
export type CrlIssuer = Static<typeof CrlIssuer>;

/** The CRL paths of the table above, by CA and format. */
export const CRL_PATHS = {
  issuing: { der: PATHS.crl, pem: PATHS.crlPem },
  root: { der: PATHS.rootCrl, pem: PATHS.rootCrlPem },
} as const satisfies Record<CrlIssuer, { der: string; pem: string }>;

export { PATHS, EST_PREFIX, EST_PATHS, type EstOperation, MEDIA_TYPES, CONTENT_TRANSFER_ENCODING, RETRY_AFTER_HEADER } from './wire.js';
