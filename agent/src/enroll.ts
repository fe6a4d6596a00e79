/**
 * `latchkey enroll`: pin the server's root, make the device key in the
 * chosen keystore, send a CSR with the device facts, wait for approval if the
 * group requires it, and commit key + certificate as one identity. The key
 * and CSR are recorded before the CSR is sent (enroll-pending.ts): when the
 * answer is lost or approval is still pending, they are kept and the next
 * `latchkey enroll` with the same server resends the same CSR — with a new
 * token too (a token file replaced while waiting), and the server continues
 * the waiting request instead of making a second device
 * (with `--sso`, the next `enroll --sso` resumes with the token of that
 * sign-in instead of asking again).
 * A refusal leaves nothing behind: the key and the record are deleted, no
 * identity written.
 */
import { mkdir } from 'node:fs/promises';
import { readPendingEnroll, removePendingEnroll, resumableSignIn, samePendingEnroll, tokenSha256, writePendingEnroll } from './enroll-pending.js';
import { createCsr } from '@latchkey/pki';
import { updateBrowserAfterRenewal } from './browser/browser.js';
import type { DeviceFacts } from '@latchkey/protocol';
import { FACTS_ATTRIBUTE_OID } from '@latchkey/protocol/wire';
import { AgentError } from './errors.js';
import { type CaCerts, fetchCaCerts, requestAttestChallenge, simpleEnroll } from './est/est-client.js';
import type { TpmAttestConfig } from './attest/attest.js';
import { attestableKeystore, attestedKeyAndCsr } from './attest/attested-csr.js';
import { deviceIdOf } from './identity-fns.js';
import type { DeviceKey, KeyStore } from './keystore/keystore.js';
import { openKeyStore } from './keystore/open-keystore.js';
import { type Identity, type KeystoreConfig, readIdentity, updateStatusFile, writeIdentity } from './state/identity.js';
import { acquireStateLock } from './state/lock.js';
import { isIssuedBy } from '@latchkey/pki';

export interface EnrollOptions {
  stateDir: string;
  server: string;
  /**
   * The enrollment token, or how to get one once the root is pinned (`--sso`:
   * sign in through the server, sso/sso-enroll.ts); asked only when there is
   * no identity yet, and only once.
   */
  token: string | ((ca: CaCerts) => Promise<string>);
  caFingerprint: string | undefined;
  keystore: KeystoreConfig;
  env: NodeJS.ProcessEnv;
  facts: DeviceFacts;
  /** Called each time the server says the device waits for approval. */
  onPending?: (retryAfterSeconds: number, attempt: number) => void;
  onRootPinned?: (fingerprint: string) => void;
  /** `--sso`: an earlier run's sign-in (made at `createdAt`) is resumed instead of signing in again. */
  onResume?: (createdAt: string) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => Date;
  /** Give up waiting for approval after this long (default: wait for ever). */
  approvalTimeoutMs?: number;
  /** `--attest tpm`: the key is made in the TPM and attested to the server (agent/src/attest/); the keystore must be a tpm2-pkcs11 token. */
  attest?: TpmAttestConfig;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function enroll(o: EnrollOptions): Promise<Identity> {
  const server = new URL(o.server);
  if (server.protocol !== 'https:') throw new AgentError('USAGE', `--server must be an https:// URL (got ${o.server})`);
  if (o.attest) attestableKeystore(o.keystore);
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
    // The keystore first: a locked keyring is found before anyone is asked to sign in.
    store = await openKeyStore(o.keystore, { stateDir: o.stateDir, env: o.env });
    await store.check();
    const signIn = typeof o.token === 'function' ? o.token : undefined;
    const resumed = signIn ? await resumableSignIn(o.stateDir, server.origin, o.keystore) : undefined;
    if (resumed) o.onResume?.(resumed.createdAt);
    const token = typeof o.token === 'string' ? o.token : (resumed?.signInToken ?? (await o.token(ca)));
    const { key, csr, discard, continuedFrom } = await keyAndCsr(store, { ...o, token, signedIn: !!signIn, rootPem: ca.rootPem }, server.origin);
    let committed = false;
    /** Set when the answer may yet come (lost, or approval pending): key and CSR stay for the next run. */
    let keep = false;
    try {
      const sleep = o.sleep ?? defaultSleep;
      const started = Date.now();
      for (let attempt = 1; ; attempt++) {
        const r = await simpleEnroll(server.origin, ca.rootPem, token, csr);
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
            ...(o.attest ? { attestation: o.attest } : {}),
          };
          await writeIdentity(o.stateDir, id);
          committed = true;
          await removePendingEnroll(o.stateDir);
          await updateStatusFile(o.stateDir, { state: 'active', lastError: undefined, lastRenewalAt: id.enrolledAt, deviceId: undefined, server: undefined, revokedAt: undefined, revocationReason: undefined });
          // `latchkey browser enable` outlives an unenroll: the new identity goes in the browser's store. Never throws.
          await updateBrowserAfterRenewal(o.stateDir, o.env, id, key);
          return id;
        }
        if (o.approvalTimeoutMs !== undefined && Date.now() - started > o.approvalTimeoutMs) {
          keep = true;
          throw new AgentError('SERVER_REFUSED', `the device is still waiting for an administrator's approval; run \`latchkey enroll\` again later ${signIn ? 'the same way (no new sign-in needed)' : 'with the same token'}`);
        }
        o.onPending?.(r.retryAfterSeconds, attempt);
        await sleep(r.retryAfterSeconds * 1000);
      }
    } catch (e) {
      if (resumed && e instanceof AgentError && e.code === 'SERVER_REFUSED' && e.details.serverCode?.startsWith('TOKEN_')) {
        // The record goes (below): the next run signs in afresh.
        throw new AgentError(e.code, `the sign-in of ${resumed.createdAt} that this enrollment resumed can no longer be used (${e.details.serverCode}); run the same command again to sign in afresh`, e.details, { cause: e });
      }
      if (continuedFrom && e instanceof AgentError && e.code === 'SERVER_REFUSED' && (e.details.serverCode === 'TOKEN_INVALID' || e.details.serverCode === 'TOKEN_REVOKED')) {
        // The new token is bad, but the request made at continuedFrom may still be waiting: keep it for a corrected token.
        keep = true;
        throw new AgentError(e.code, `${e.message}; this device's request of ${continuedFrom} is kept: give a valid token to continue it`, e.details, { cause: e });
      }
      if (!committed && e instanceof AgentError && (e.code === 'SERVER_UNREACHABLE' || e.code === 'SERVER_ERROR')) {
        keep = true;
        throw new AgentError(e.code, `${e.message}; the device key and request are kept: run the same \`latchkey enroll\` again to pick up where this left off`, e.details, { cause: e });
      }
      throw e;
    } finally {
      if (!committed && !keep) {
        await (discard ? discard() : store.delete(key.ref)).catch(() => undefined);
        await removePendingEnroll(o.stateDir).catch(() => undefined);
      }
    }
  } finally {
    await store?.close().catch(() => undefined);
    await release();
  }
}

/**
 * The key and CSR of this enrollment: those of an earlier run that got no
 * answer (same server and keystore; with another token too, unless either is
 * a sign-in's: `continuedFrom` says when that request was made), or a fresh
 * key whose CSR is recorded before it is sent. An unrelated leftover record
 * (another server) is dropped with its key.
 */
async function keyAndCsr(
  store: KeyStore,
  o: EnrollOptions & { token: string; signedIn: boolean; rootPem: string },
  server: string,
): Promise<{ key: DeviceKey; csr: Buffer; discard?: () => Promise<void>; continuedFrom?: string }> {
  const prev = await readPendingEnroll(o.stateDir);
  // Another token for the same server and keystore (a token file replaced while the device waited
  // for approval): the same key and CSR, and the server continues the request they made (est-enroll.ts).
  // Not across sign-ins: a sign-in's record resumes with its own token (resumableSignIn).
  const sameRequest = prev && (samePendingEnroll(prev, server, o.token, o.keystore) || (prev.server === server && JSON.stringify(prev.keystore) === JSON.stringify(o.keystore) && !prev.signInToken && !o.signedIn));
  if (prev && sameRequest) {
    const key = await store.load(prev.key).catch(() => undefined);
    if (key) {
      const continued = prev.tokenSha256 !== tokenSha256(o.token);
      if (continued) await writePendingEnroll(o.stateDir, { ...prev, tokenSha256: tokenSha256(o.token) });
      return { key, csr: Buffer.from(prev.csrBase64, 'base64'), ...(continued ? { continuedFrom: prev.createdAt } : {}) };
    }
  } else if (prev && JSON.stringify(prev.keystore) === JSON.stringify(o.keystore)) {
    await store.delete(prev.key).catch(() => undefined);
  }
  await removePendingEnroll(o.stateDir);
  if (o.attest) {
    const made = await attestedKeyAndCsr({
      stateDir: o.stateDir,
      env: o.env,
      keystore: o.keystore,
      tpm: o.attest,
      mode: 'enroll',
      commonName: o.facts.hostname,
      factsJson: JSON.stringify(o.facts),
      requestChallenge: (body) => requestAttestChallenge(server, o.rootPem, { token: o.token }, body),
    });
    try {
      await writePendingEnroll(o.stateDir, { version: 1, server, tokenSha256: tokenSha256(o.token), keystore: o.keystore, key: made.key.ref, csrBase64: made.csr.toString('base64'), createdAt: (o.now?.() ?? new Date()).toISOString(), ...(o.signedIn ? { signInToken: o.token } : {}) });
    } catch (e) {
      await made.discard();
      throw e;
    }
    return made;
  }
  const key = await store.generate();
  try {
    const csr = await createCsr({
      subject: [{ type: 'CN', value: o.facts.hostname.slice(0, 64) }],
      signer: key.signer,
      stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: JSON.stringify(o.facts) }],
    });
    await writePendingEnroll(o.stateDir, { version: 1, server, tokenSha256: tokenSha256(o.token), keystore: o.keystore, key: key.ref, csrBase64: csr.toString('base64'), createdAt: (o.now?.() ?? new Date()).toISOString(), ...(o.signedIn ? { signInToken: o.token } : {}) });
    return { key, csr };
  } catch (e) {
    await store.delete(key.ref).catch(() => undefined);
    throw e;
  }
}
