/**
 * How many agent connections one process can hold: every connection is an
 * open file, and so is everything else the server does (HTTPS requests, the
 * database, logs, DNS). Past the open-file limit, accept() fails and the
 * server can no longer answer anyone, so the control channel stops short of
 * it and leaves a reserve.
 */
import { readFileSync } from 'node:fs';

/** The soft RLIMIT_NOFILE, from /proc/self/limits (Linux); undefined elsewhere or when unlimited. */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(text);
  return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
}

/** `maxAgentConnections` 0 means: the open-file limit minus a reserve of 5% (at least 256). */
export function agentConnectionCap(configured: number, fileLimit: number | undefined): number {
  if (configured > 0) return configured;
  if (fileLimit === undefined) return Number.POSITIVE_INFINITY;
  return Math.max(0, fileLimit - Math.max(256, Math.ceil(fileLimit * 0.05)));
}

/** Descriptors kept for the process itself (database, logs, DNS, libuv) beyond any connection. */
const INTERNAL_RESERVE = 64;

/**
 * Connections one process holds (see connection-guard.ts): `open` of every
 * kind (idle, busy, upgraded), short of the open-file limit by what the
 * process needs for itself; `idle` of them idle. `maxIdleConnections` 0
 * means: the reserve the control channel leaves (5% of the limit, at least
 * 256) less the process's own, at least 16.
 */
export function connectionCaps(configuredIdle: number, fileLimit: number | undefined): { idle: number; open: number } {
  if (fileLimit === undefined) return { idle: configuredIdle > 0 ? configuredIdle : 1024, open: Number.POSITIVE_INFINITY };
  const idle = configuredIdle > 0 ? configuredIdle : Math.max(16, Math.min(fileLimit, Math.max(256, Math.ceil(fileLimit * 0.05))) - INTERNAL_RESERVE);
  return { idle, open: Math.max(16, fileLimit - INTERNAL_RESERVE) };
}
