/**
 * `latchkey enroll`: pin the server's root, make the device key in the
 * chosen keystore, send a CSR with the device facts, wait for approval if the
 * group requires it, and commit key + certificate as one identity. Nothing is
 * left behind by a failed enrollment: the key is deleted, no identity written.
 */
import { mkdir } from 'node:fs/promises';
import { createCsr } from '@latchkey/pki';
import { updateBrowserAfterRenewal } from './browser/browser.js';
import type { DeviceFacts } from '@latchkey/protocol';
import { FACTS_ATTRIBUTE_OID } from '@latchkey/protocol/wire';
import { AgentError } from './errors.js';
import { fetchCaCerts, simpleEnroll } from './est/est-client.js';
import { deviceIdOf } from './identity-fns.js';
import type { KeyStore } from './keystore/keystore.js';
import { openKeyStore } from './keystore/open-keystore.js';
import { type Identity, type KeystoreConfig, readIdentity, updateStatusFile, writeIdentity } from './state/identity.js';
import { acquireStateLock } from './state/lock.js';
import { isIssuedBy } from '@latchkey/pki';

export interface EnrollOptions {
  stateDir: string;
  server: string;
  token: string;
  caFingerprint: string | undefined;
  keystore: KeystoreConfig;
  env: NodeJS.ProcessEnv;
  facts: DeviceFacts;
  /** Called each time the server says the device waits for approval. */
  onPending?: (retryAfterSeconds: number, attempt: number) => void;
  onRootPinned?: (fingerprint: string) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => Date;
  /** Give up waiting for approval after this long (default: wait for ever). */
  approvalTimeoutMs?: number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function enroll(o: EnrollOptions): Promise<Identity> {
  const server = new URL(o.server);
  if (server.protocol !== 'https:') throw new AgentError('USAGE', `--server must be an https:// URL (got ${o.server})`);
  await mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  const release = await acquireStateLock(o.stateDir);
  let store: KeyStore | undefined;
  try {
    const existing = await readIdentity(o.stateDir);
    if (existing) {
      throw new AgentError('ALREADY_ENROLLED', `this device is already enrolled as ${existing.deviceId} with ${existing.server}; run \`latchkey unenroll\` first to enroll again`);
    }
    const ca = await fetchCaCerts(server.origin, o.caFingerprint);
    o.onRootPinned?.(ca.fingerprint);
    store = await openKeyStore(o.keystore, { stateDir: o.stateDir, env: o.env });
    await store.check();
    const key = await store.generate();
    let committed = false;
    try {
      const csr = await createCsr({
        subject: [{ type: 'CN', value: o.facts.hostname.slice(0, 64) }],
        signer: key.signer,
        stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: JSON.stringify(o.facts) }],
      });
      const sleep = o.sleep ?? defaultSleep;
      const started = Date.now();
      for (let attempt = 1; ; attempt++) {
        const r = await simpleEnroll(server.origin, ca.rootPem, o.token, csr);
        if (r.status === 'issued') {
          if (!r.cert.spki.equals(key.spki)) throw new AgentError('SERVER_ERROR', 'the server issued a certificate for another key');
          const issuer = ca.chain[0] ?? ca.root;
          if (!isIssuedBy(r.cert, issuer)) throw new AgentError('SERVER_ERROR', 'the issued certificate does not chain to the pinned root');
          const deviceId = deviceIdOf(r.cert);
          if (!deviceId) throw new AgentError('SERVER_ERROR', 'the issued certificate carries no device id (spiffe://…/device/<id> SAN)');
          const id: Identity = {
            version: 1,
            server: server.origin,
            rootFingerprint: ca.fingerprint,
            rootPem: ca.rootPem,
            chainPem: ca.chainPem,
            deviceId,
            keystore: o.keystore,
            key: key.ref,
            certPem: r.certPem,
            enrolledAt: (o.now?.() ?? new Date()).toISOString(),
          };
          await writeIdentity(o.stateDir, id);
          committed = true;
          await updateStatusFile(o.stateDir, { state: 'active', lastError: undefined, lastRenewalAt: id.enrolledAt, deviceId: undefined, server: undefined, revokedAt: undefined, revocationReason: undefined });
          // `latchkey browser enable` outlives an unenroll: the new identity goes in the browser's store. Never throws.
          await updateBrowserAfterRenewal(o.stateDir, o.env, id, key);
          return id;
        }
        if (o.approvalTimeoutMs !== undefined && Date.now() - started > o.approvalTimeoutMs) {
          throw new AgentError('SERVER_REFUSED', 'the device is still waiting for an administrator\'s approval; run `latchkey enroll` again later with the same token');
        }
        o.onPending?.(r.retryAfterSeconds, attempt);
        await sleep(r.retryAfterSeconds * 1000);
      }
    } finally {
      if (!committed) await store.delete(key.ref).catch(() => undefined);
    }
  } finally {
    await store?.close().catch(() => undefined);
    await release();
  }
}
