/**
 * `HOST:PORT` as every Latchkey address is written — flags (`--listen`,
 * `--to`), the server's `listen` setting — parsed in one place. A host is a
 * name or IPv4 address (letters, digits, `.`, `-`, `_`) or an IPv6 address in
 * brackets, returned without them; nothing that could break out of a
 * generated configuration's directive gets through.
 */
export interface HostPort {
  host: string;
  port: number;
  /** The host was written as `[IPv6]`. */
  ipv6: boolean;
}

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):([0-9]{1,5})$/;

/** The address, or undefined if it is not `HOST:PORT` with a port 0–65535. */
export function parseHostPort(s: string): HostPort | undefined {
  const m = HOST_PORT.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) return undefined;
  return m[1] !== undefined ? { host: m[1], port, ipv6: true } : { host: m[2]!, port, ipv6: false };
}

/** The host as it goes back into a URL or `HOST:PORT` (IPv6 in brackets). */
export const hostForUrl = (a: Pick<HostPort, 'host' | 'ipv6'>): string => (a.ipv6 ? `[${a.host}]` : a.host);

/** Where a client on this machine reaches a listener bound to `listen`: a wildcard address becomes loopback. */
export function localUrl(listen: HostPort): string {
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::';
  return `https://${wildcard ? '127.0.0.1' : hostForUrl(listen)}:${listen.port}`;
}
