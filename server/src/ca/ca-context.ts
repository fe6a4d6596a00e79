/**
 * Everything the server signs with, loaded once at start: the issuing CA
 * (and the root, to sign the root's CRL), the device profile, the OCSP
 * responder, and the EST cacerts body, served as-is.
 */
import type { KeyObject } from 'node:crypto';
import {
  type Certificate,
  type DeviceProfile,
  type Issuer,
  type OcspResponder,
  createDeviceProfile,
  createIssuer,
  createOcspResponder,
  encodeCertsOnly,
  nodeSigner,
  parseCertificate,
} from '@latchkey/pki';
import { EST_PATHS, PATHS } from '@latchkey/protocol';
import type { ServerConfig } from '../config/config-schema.js';
import { FILES, readEncryptedKey, readText } from './ca-files.js';

export interface CaContext {
  root: Certificate;
  /** Present when the root key is held here (a hierarchy made by `init`). */
  rootIssuer: Issuer | undefined;
  issuing: Issuer;
  profile: DeviceProfile;
  ocsp: OcspResponder;
  /** EST cacerts body: PKCS#7 certs-only with the issuing CA and the root. */
  cacertsP7: Buffer;
}

export interface CaKeys {
  root?: KeyObject;
  issuing: KeyObject;
  ocsp: KeyObject;
}

export function loadCaKeys(dataDir: string, passphrase: string): CaKeys {
  let root: KeyObject | undefined;
  try {
    root = readEncryptedKey(dataDir, FILES.rootKey, passphrase);
  } catch (e) {
    if (!/is missing/.test((e as Error).message)) throw e;
  }
  return {
    ...(root ? { root } : {}),
    issuing: readEncryptedKey(dataDir, FILES.issuingKey, passphrase),
    ocsp: readEncryptedKey(dataDir, FILES.ocspKey, passphrase),
  };
}

export function buildCaContext(dataDir: string, config: ServerConfig, keys: CaKeys): CaContext {
  const root = parseCertificate(readText(dataDir, FILES.rootCert));
  const issuing = createIssuer(readText(dataDir, FILES.issuingCert), nodeSigner(keys.issuing));
  const ocspCert = parseCertificate(readText(dataDir, FILES.ocspCert));
  const base = config.url;
  return {
    root,
    rootIssuer: keys.root ? createIssuer(root, nodeSigner(keys.root)) : undefined,
    issuing,
    profile: createDeviceProfile({
      issuer: issuing,
      org: config.org,
      trustDomain: config.trustDomain,
      crlUrls: [base + PATHS.crl],
      ocspUrls: [base + PATHS.ocsp],
      caIssuersUrls: [base + EST_PATHS.cacerts],
    }),
    ocsp: createOcspResponder({ issuer: issuing.cert, responderCert: ocspCert, signer: nodeSigner(keys.ocsp) }),
    cacertsP7: encodeCertsOnly([issuing.cert.der, root.der]),
  };
}
