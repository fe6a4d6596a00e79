/** The TLS client certificate a peer presented, as DER, for the device-mTLS ways in (HTTP routes and WebSocket upgrades). */
import type { TLSSocket } from 'node:tls';

/** The DER of the peer's certificate on this socket; undefined if none was presented or it is not a TLS socket. */
export function peerCertificateDer(socket: unknown): Buffer | undefined {
  const s = socket as Partial<TLSSocket>;
  // The DER alone (getPeerCertificate would also translate every field to JS).
  return typeof s.getPeerX509Certificate === 'function' ? s.getPeerX509Certificate()?.raw : undefined;
}
