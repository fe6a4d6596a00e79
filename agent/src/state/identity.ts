/**
 * The device identity on disk: `identity.json` names the key (a KeyRef into
 * its keystore) and holds the certificate issued for it. It is the single
 * commit point of enrollment and renewal: key and certificate change together
 * because one atomic rename replaces both references. `status.json` holds
 * what `latchkey status` reports about the renew loop (last error, next
 * renewal); losing it loses nothing that matters.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../errors.js';
import type { AgentPolicy } from '@latchkey/protocol/wire';
import type { TpmAttestConfig } from '../attest/attest.js';
import { KEYSTORE_KINDS, type KeyRef } from '../keystore/keystore.js';
import { writeFileAtomic } from './atomic.js';
import { STATE_FILES } from './paths.js';

export type KeystoreConfig = { kind: 'file' } | { kind: 'os' } | { kind: 'pkcs11'; module: string; tokenLabel?: string; slot?: number };

export interface Identity {
  version: 1;
  /** Base URL of the enrollment server. */
  server: string;
  /** SHA-256 of the pinned root certificate (hex, lower case). */
  rootFingerprint: string;
  rootPem: string;
  /** Issuing CA certificate(s) between the device certificate and the root. */
  chainPem: string;
  deviceId: string;
  keystore: KeystoreConfig;
  key: KeyRef;
  certPem: string;
  enrolledAt: string;
  renewedAt?: string;
  /** Set when the device enrolled with a TPM attestation: every renewal is attested the same way (agent/src/attest/). */
  attestation?: TpmAttestConfig;
}

export type AgentState = 'active' | 'revoked' | 'reenroll-required';

export interface AgentStatusFile {
  state: AgentState;
  /** Kept after a revocation deleted the identity, so `status` can still say which device. */
  deviceId?: string;
  server?: string;
  revokedAt?: string;
  revocationReason?: string;
  lastCheckAt?: string;
  lastRenewalAt?: string;
  nextRenewalAt?: string;
  lastError?: { at: string; code: string; message: string };
  /** The device group's policy, as the server last sent it over the control channel. */
  policy?: ServerPolicyRecord;
  /** The running daemon's control channel: connected or not, since when, and the daemon's pid. */
  channel?: { connected: boolean; since: string; pid: number };
}

export interface ServerPolicyRecord extends AgentPolicy {
  receivedAt: string;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('STATE_CORRUPT', `${path} cannot be read: ${(e as Error).message}`, {}, { cause: e });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new AgentError('STATE_CORRUPT', `${path} is not valid JSON; restore it from a backup or run \`latchkey unenroll\` and enroll again`, {}, { cause: e });
  }
}

export async function readIdentity(stateDir: string): Promise<Identity | undefined> {
  const path = join(stateDir, STATE_FILES.identity);
  const id = await readJson<Identity>(path);
  if (id === undefined) return undefined;
  const ok =
    id &&
    id.version === 1 &&
    typeof id.server === 'string' &&
    typeof id.deviceId === 'string' &&
    typeof id.certPem === 'string' &&
    typeof id.rootPem === 'string' &&
    id.key &&
    (KEYSTORE_KINDS as readonly string[]).includes(id.key.keystore) &&
    typeof id.key.id === 'string' &&
    id.keystore &&
    (KEYSTORE_KINDS as readonly string[]).includes(id.keystore.kind);
  if (!ok) throw new AgentError('STATE_CORRUPT', `${path} is not a latchkey identity; run \`latchkey unenroll\` and enroll again`);
  return id;
}

export async function writeIdentity(stateDir: string, id: Identity): Promise<void> {
  await writeFileAtomic(join(stateDir, STATE_FILES.identity), `${JSON.stringify(id, null, 2)}\n`, { mode: 0o600 });
}

export async function readStatusFile(stateDir: string): Promise<AgentStatusFile | undefined> {
  return readJson<AgentStatusFile>(join(stateDir, STATE_FILES.status)).catch(() => undefined);
}

/** Updates of status.json in this process, one at a time (read, merge, replace): none is lost to another. */
const statusQueue = new Map<string, Promise<unknown>>();

export function updateStatusFile(stateDir: string, patch: Partial<AgentStatusFile>): Promise<AgentStatusFile> {
  const prev = statusQueue.get(stateDir) ?? Promise.resolve();
  const run = prev.catch(() => undefined).then(async () => {
    const cur = (await readStatusFile(stateDir)) ?? { state: 'active' as const };
    const next = { ...cur, ...patch };
    for (const k of Object.keys(next) as (keyof AgentStatusFile)[]) if (next[k] === undefined) delete next[k];
    await writeFileAtomic(join(stateDir, STATE_FILES.status), `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    return next;
  });
  statusQueue.set(stateDir, run);
  void run.finally(() => {
    if (statusQueue.get(stateDir) === run) statusQueue.delete(stateDir);
  }).catch(() => undefined);
  return run;
}
