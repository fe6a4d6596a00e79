/**
 * An enrollment in flight, kept in the state dir before its CSR is sent:
 * the key it names and the CSR itself. If the answer is lost (the agent or
 * the server killed, the network gone, approval still pending), the next
 * `latchkey enroll` with the same server and token sends the same CSR, and
 * the server answers with the certificate it already issued for that key
 * instead of refusing a second use of the token. With another token (the
 * token file replaced while waiting) the same key and CSR are sent too, and
 * the server continues the request still open for that key (enroll.ts).
 */
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyRef } from './keystore/keystore.js';
import { writeFileAtomic } from './state/atomic.js';
import type { KeystoreConfig } from './state/identity.js';
import { STATE_FILES } from './state/paths.js';

export interface PendingEnroll {
  version: 1;
  server: string;
  /** SHA-256 of the enrollment token: which token this is for, without keeping the token. */
  tokenSha256: string;
  keystore: KeystoreConfig;
  key: KeyRef;
  csrBase64: string;
  createdAt: string;
  /**
   * The token itself, only when it came from signing in (`--sso`): the next
   * run resumes with it instead of asking the person again. It is one-use and
   * bound to this key once the server has seen it; the state dir is 0700 and
   * the record 0600, and it goes with the record.
   */
  signInToken?: string;
}

export const tokenSha256 = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const path = (stateDir: string): string => join(stateDir, STATE_FILES.pendingEnroll);

/** The record, or undefined when there is none or it is unreadable (then it is of no use: start afresh). */
export async function readPendingEnroll(stateDir: string): Promise<PendingEnroll | undefined> {
  let v: Partial<PendingEnroll>;
  try {
    v = JSON.parse(await readFile(path(stateDir), 'utf8')) as Partial<PendingEnroll>;
  } catch {
    return undefined;
  }
  const ok = v && v.version === 1 && typeof v.server === 'string' && typeof v.tokenSha256 === 'string' && typeof v.csrBase64 === 'string' && v.key && typeof v.key.id === 'string' && v.keystore;
  return ok && (v.signInToken === undefined || typeof v.signInToken === 'string') ? (v as PendingEnroll) : undefined;
}

/** An enrollment by sign-in that got no answer yet (lost, or approval pending), for this server and keystore. */
export async function resumableSignIn(stateDir: string, server: string, keystore: KeystoreConfig): Promise<(PendingEnroll & { signInToken: string }) | undefined> {
  const p = await readPendingEnroll(stateDir);
  return p?.signInToken && samePendingEnroll(p, server, p.signInToken, keystore) ? (p as PendingEnroll & { signInToken: string }) : undefined;
}

export const writePendingEnroll = (stateDir: string, p: PendingEnroll): Promise<void> => writeFileAtomic(path(stateDir), `${JSON.stringify(p, null, 2)}\n`, { mode: 0o600 });

export const removePendingEnroll = (stateDir: string): Promise<void> => rm(path(stateDir), { force: true });

/** Whether a record is for this enrollment: same server, token and keystore. */
export const samePendingEnroll = (p: PendingEnroll, server: string, token: string, keystore: KeystoreConfig): boolean =>
  p.server === server && p.tokenSha256 === tokenSha256(token) && JSON.stringify(p.keystore) === JSON.stringify(keystore);
