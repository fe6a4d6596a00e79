/**
 * One renewal (or recovery) of the device identity, crash-safe:
 *   lock → new key in the store → CSR → simplereenroll over mTLS with the
 *   current key → identity.json replaced atomically (new key + new cert) →
 *   old key deleted.
 * Killed at any step, the next start finds a working identity, old or new:
 * identity.json only ever names a key together with that key's certificate,
 * and keys it does not name are orphans, deleted by `cleanOrphanKeys` at the
 * end of the next successful renewal.
 */
import { createCsr, parseCertificate, isIssuedBy, certificateToPem } from '@latchkey/pki';
import type { DeviceFacts } from '@latchkey/protocol';
import { FACTS_ATTRIBUTE_OID } from '@latchkey/protocol/wire';
import { updateBrowserAfterRenewal } from '../browser/browser.js';
import { AgentError } from '../errors.js';
import { requestAttestChallenge, simpleReenroll } from '../est/est-client.js';
import { attestedKeyAndCsr } from '../attest/attested-csr.js';
import { deviceIdOf } from '../identity-fns.js';
import type { KeyStore } from '../keystore/keystore.js';
import { openKeyStore } from '../keystore/open-keystore.js';
import { type Identity, readIdentity, readStatusFile, updateStatusFile, writeIdentity } from '../state/identity.js';
import { acquireStateLock } from '../state/lock.js';
import type { CrashPoint, TestHooks } from '../test-hooks.js';
import { DEFAULT_RENEW_POLICY, type RenewPolicy, shouldRenew } from './should-renew.js';

export { CRASH_POINTS, type CrashPoint } from '../test-hooks.js';

/**
 * Test hook (test-hooks.ts): SIGKILL this process at that step of a renewal,
 * as a power cut would. Inert unless a test asked for it.
 */
function crashPoint(ctx: RenewContext, point: CrashPoint): void {
  if (ctx.testHooks?.crashAt === point) process.kill(process.pid, 'SIGKILL');
}

export interface RenewContext {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  now: () => Date;
  facts: () => Promise<DeviceFacts>;
  policy?: RenewPolicy;
  /** Test-only: see test-hooks.ts. */
  testHooks?: Pick<TestHooks, 'crashAt'>;
}

export type RenewResult = { renewed: false; identity: Identity; renewAt: Date } | { renewed: true; identity: Identity; kind: 'renew' | 'recover'; previousSerial: string };

export function certOf(id: Identity) {
  return parseCertificate(id.certPem);
}

export function receivedAt(id: Identity): Date {
  return new Date(id.renewedAt ?? id.enrolledAt);
}

/** Deletes keys of this agent that the identity does not name (left by an interrupted renewal). */
export async function cleanOrphanKeys(store: KeyStore, id: Identity | undefined): Promise<number> {
  let n = 0;
  for (const ref of await store.list()) {
    if (id && ref.id === id.key.id && ref.keystore === id.key.keystore) continue;
    await store.delete(ref);
    n++;
  }
  return n;
}

export async function renewOnce(ctx: RenewContext, opts: { force: boolean }): Promise<RenewResult> {
  const release = await acquireStateLock(ctx.stateDir);
  let store: KeyStore | undefined;
  try {
    const id = await readIdentity(ctx.stateDir);
    if (!id && (await readStatusFile(ctx.stateDir))?.state === 'revoked') {
      throw new AgentError('REENROLL_REQUIRED', `this device was revoked and its key deleted (see \`latchkey status\`); enroll it again with a new token: \`latchkey enroll --server URL --token T\``, { serverCode: 'DEVICE_REVOKED' });
    }
    if (!id) throw new AgentError('NOT_ENROLLED', `this device is not enrolled (no identity in ${ctx.stateDir}); run \`latchkey enroll --server URL --token T\``);
    const cert = certOf(id);
    const now = ctx.now();
    const decision = shouldRenew(now, { serialHex: cert.serialHex, notBefore: cert.notBefore, notAfter: cert.notAfter, receivedAt: receivedAt(id) }, ctx.policy ?? DEFAULT_RENEW_POLICY);
    if (decision.action === 'wait' && !opts.force) return { renewed: false, identity: id, renewAt: decision.renewAt };
    crashPoint(ctx, 'after-lock');

    store = await openKeyStore(id.keystore, { stateDir: ctx.stateDir, env: ctx.env });
    const current = await store.load(id.key);
    if (!current) {
      throw new AgentError('KEYSTORE', `the device key ${id.key.id} is missing from the ${id.keystore.kind} keystore; the identity cannot be renewed — run \`latchkey unenroll\` and enroll again`);
    }
    const facts = await ctx.facts();
    const client = async () => ({ certPem: id.certPem, chainPem: id.chainPem, key: await current.tlsKey() });
    // An attested device's new key is made in the TPM and certified by its AK (agent/src/attest/).
    const attested = id.attestation
      ? await attestedKeyAndCsr({
          stateDir: ctx.stateDir,
          env: ctx.env,
          keystore: id.keystore,
          tpm: id.attestation,
          mode: 'renew',
          commonName: facts.hostname,
          factsJson: JSON.stringify(facts),
          requestChallenge: async (body) => requestAttestChallenge(id.server, id.rootPem, { client: await client() }, body),
        })
      : undefined;
    const fresh = attested?.key ?? (await store.generate());
    crashPoint(ctx, 'after-generate');
    let committed = false;
    try {
      const csr =
        attested?.csr ??
        (await createCsr({
          subject: [{ type: 'CN', value: facts.hostname.slice(0, 64) }],
          signer: fresh.signer,
          stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: JSON.stringify(facts) }],
        }));
      const issued = await simpleReenroll(id.server, id.rootPem, await client(), csr);
      crashPoint(ctx, 'after-issue');
      if (!issued.spki.equals(fresh.spki)) throw new AgentError('SERVER_ERROR', 'the server issued a certificate for another key');
      const issuer = parseCertificate(id.chainPem || id.rootPem);
      if (!isIssuedBy(issued, issuer)) throw new AgentError('SERVER_ERROR', 'the renewed certificate does not chain to the pinned root');
      if (deviceIdOf(issued) !== id.deviceId) throw new AgentError('SERVER_ERROR', `the renewed certificate names device ${deviceIdOf(issued) ?? '(none)'}, not ${id.deviceId}`);
      const next: Identity = { ...id, key: fresh.ref, certPem: certificateToPem(issued.der), renewedAt: ctx.now().toISOString() };
      await writeIdentity(ctx.stateDir, next);
      committed = true;
      crashPoint(ctx, 'after-commit');
      await store.delete(id.key);
      crashPoint(ctx, 'after-delete');
      // Keys an interrupted renewal left behind. Deleted last, never before
      // generate(): tpm2-pkcs11 1.9 hands out wrong object handles for a key
      // made after a delete in the same process.
      await cleanOrphanKeys(store, next);
      await updateStatusFile(ctx.stateDir, { state: 'active', lastRenewalAt: next.renewedAt, lastError: undefined });
      // `latchkey browser enable`: the new identity replaces the old in the browser's store. Never throws.
      await updateBrowserAfterRenewal(ctx.stateDir, ctx.env, next, fresh);
      return { renewed: true, identity: next, kind: decision.action === 'recover' ? 'recover' : 'renew', previousSerial: cert.serialHex };
    } finally {
      if (!committed) await (attested ? attested.discard() : store.delete(fresh.ref)).catch(() => undefined);
    }
  } finally {
    await store?.close().catch(() => undefined);
    await release();
  }
}
