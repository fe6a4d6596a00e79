/**
 * The device identity as a TLS client: the one place that turns an identity
 * and its key into node:tls options, for every mTLS connection the agent
 * makes (EST re-enrollment, the control channel, `connect`).
 */
import { AgentError } from '../errors.js';
import type { Identity } from '../state/identity.js';
import type { TlsKey } from './keystore.js';
import { openKeyStore } from './open-keystore.js';

/** The node:tls options that present a device key as the TLS client key. */
export function tlsClientKeyOptions(k: TlsKey): { key: string } | { privateKeyEngine: string; privateKeyIdentifier: string } {
  return k.kind === 'pem' ? { key: k.key } : { privateKeyEngine: k.privateKeyEngine, privateKeyIdentifier: k.privateKeyIdentifier };
}

/** Certificate, chain and key as node:tls client options (TLS 1.2 or later). */
export function deviceTlsOptions(id: Pick<Identity, 'certPem' | 'chainPem'>, key: TlsKey) {
  return { cert: id.certPem + id.chainPem, ...tlsClientKeyOptions(key), minVersion: 'TLSv1.2' as const };
}

/** The identity's key from its keystore, ready for TLS; the store is closed again (a pkcs11 store keeps its module for the process). */
export async function loadDeviceTlsKey(id: Pick<Identity, 'keystore' | 'key'>, o: { stateDir: string; env: NodeJS.ProcessEnv }): Promise<TlsKey> {
  const store = await openKeyStore(id.keystore, o);
  try {
    const k = await store.load(id.key);
    if (!k) throw new AgentError('KEYSTORE', `the device key ${id.key.id} is missing from the ${id.keystore.kind} keystore`);
    return await k.tlsKey();
  } finally {
    await store.close().catch(() => undefined);
  }
}
