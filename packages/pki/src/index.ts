/**
 * @latchkey/pki: certificates, CSRs, CRLs, OCSP and PKCS#7 for Latchkey.
 * The DER encoder and reader behind them are not part of this API; code that
 * must write or take apart raw ASN.1 (the agent's PKCS#12 writer, the fuzz
 * targets) imports them from `@latchkey/pki/der`.
 */
export * from './errors.js';
export * from './oids.js';
export * from './pem.js';
export * from './keys.js';
export * from './name.js';
export * from './extensions.js';
export * from './certificate.js';
export * from './serial.js';
export * from './ca.js';
export * from './profiles.js';
export * from './csr.js';
export * from './pkcs7.js';
export * from './crl.js';
export * from './ocsp.js';
