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
