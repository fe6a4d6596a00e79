import type { TlsKey } from './keystore.js';

/** The node:tls options that present a device key as the TLS client key. */
export function tlsClientKeyOptions(k: TlsKey): { key: string } | { privateKeyEngine: string; privateKeyIdentifier: string } {
  return k.kind === 'pem' ? { key: k.key } : { privateKeyEngine: k.privateKeyEngine, privateKeyIdentifier: k.privateKeyIdentifier };
}
