/**
 * Zero-touch enrollment (issue 15): `latchkey run` with no identity in the
 * state dir and an enroll file (enroll-file.ts) or, on macOS, managed
 * preferences (managed-prefs.ts; they win over the default enroll file)
 * enrolls by itself, through
 * the same `enroll()` as `latchkey enroll` — waiting for approval when the
 * group asks for it, and resuming an unanswered request from
 * enroll-pending.json after a restart, so a restart never makes a second
 * device. An enrolled agent ignores the file (one log line), and says how to
 * move to another server when the file names one.
 *
 * Failures: a bad enroll file or token file, or a refusal, is thrown (exit
 * 2 / 1; the service manager restarts after RestartSec, 30 s); an unreachable
 * or failing server is retried here with the agent's backoff (1 s doubling
 * to 5 min, jittered), the key and request kept.
 */
import { existsSync } from 'node:fs';
import { readSecretFile } from '@latchkey/cli';
import type { AgentConfig } from '../config/agent-config.js';
import { enroll } from '../enroll.js';
import { readPendingEnroll, tokenSha256 } from '../enroll-pending.js';
import { AgentError } from '../errors.js';
import { normalizeFingerprint } from '../est/est-client.js';
import { collectFacts } from '../facts.js';
import { certOf } from '../renew/renew.js';
import { type KeystoreConfig, readIdentity } from '../state/identity.js';
import { DEFAULT_BACKOFF, type Backoff, retryDelayMs } from '../util/backoff.js';
import { type EnrollFile, readEnrollFile } from './enroll-file.js';
import { readManagedPreferences } from './managed-prefs.js';

export interface ZeroTouchOptions {
  cfg: AgentConfig;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  sleep?: (ms: number) => Promise<void>;
  backoff?: Backoff;
}

const sameFingerprint = (a: string, b: string): boolean => {
  try {
    return normalizeFingerprint(a) === normalizeFingerprint(b);
  } catch {
    return false;
  }
};

export interface Settings {
  f: EnrollFile;
  /** "the enroll file F" or "the managed preferences F", for messages. */
  where: string;
}

/**
 * The settings to enroll from: the file a flag or variable named; else the
 * managed preferences (macOS MDM profile) when there, before the default
 * enroll file; else the default enroll file; undefined when none is there.
 */
export function readEnrollSettings(cfg: Pick<AgentConfig, 'enrollFile'>, log: (line: string) => void): Settings | undefined {
  const { path, from, managedPreferences } = cfg.enrollFile;
  if (managedPreferences) {
    const f = readManagedPreferences(managedPreferences);
    if (f) {
      if (existsSync(path)) log(`the managed preferences ${managedPreferences} are used; the enroll file ${path} is ignored (the configuration profile wins)`);
      return { f, where: `the managed preferences ${managedPreferences}` };
    }
  }
  const f = readEnrollFile(path);
  if (!f) {
    if (from) throw new AgentError('USAGE', `${from} ${path}: no such file`);
    return undefined;
  }
  return { f, where: `the enroll file ${path}` };
}

/** How often a long approval wait is logged: the first check, then every this many. */
const PENDING_LOG_EVERY = 20;

/** Enrolls from the managed preferences or enroll file when there is no identity yet; otherwise says why they are not used. Returns whether it enrolled. */
export async function zeroTouchEnroll(o: ZeroTouchOptions): Promise<boolean> {
  const { cfg, env, log } = o;
  const id = await readIdentity(cfg.stateDir);
  if (id) {
    let src: Settings | undefined;
    try {
      src = readEnrollSettings(cfg, () => undefined);
    } catch (e) {
      log(`this device is enrolled (device ${id.deviceId} with ${id.server}); the enrollment settings are ignored (${(e as Error).message})`);
      return false;
    }
    if (!src) return false;
    const { f, where } = src;
    if (new URL(f.server).origin !== id.server || !sameFingerprint(f.caFingerprint, id.rootFingerprint)) {
      log(
        `${where} names ${new URL(f.server).origin}, but this device is enrolled as ${id.deviceId} with ${id.server}: the ${where.startsWith('the enroll file') ? 'file is' : 'settings are'} ignored. To enroll with the new server, run \`latchkey unenroll\` and start the service again`,
      );
    } else log(`this device is enrolled (device ${id.deviceId} with ${id.server}); ${where} ${where.startsWith('the enroll file') ? 'is' : 'are'} not used again`);
    return false;
  }
  const src = readEnrollSettings(cfg, log);
  if (!src) return false;
  const { f, where } = src;
  const token = readSecretFile(f.tokenFile, { what: 'the enrollment token', makeWith: 'latchkey-server token create', flag: `the tokenFile of ${where},` }, (m) => new AgentError('USAGE', m));
  const kind = f.keystore ?? cfg.keystore;
  const pkcs11 = f.pkcs11 ? { module: f.pkcs11.module, ...(f.pkcs11.token ? { tokenLabel: f.pkcs11.token } : {}) } : cfg.pkcs11;
  let keystore: KeystoreConfig;
  if (kind === 'pkcs11') {
    if (!pkcs11.module) throw new AgentError('USAGE', `${where}: keystore pkcs11 needs "pkcs11": { "module": PATH, "token": LABEL }`);
    keystore = { kind, module: pkcs11.module, ...(pkcs11.tokenLabel ? { tokenLabel: pkcs11.tokenLabel } : {}) };
  } else keystore = { kind };
  const attest = f.attest ?? (cfg.attest === 'tpm' ? 'tpm' : undefined);
  const server = new URL(f.server).origin;
  const pending = await readPendingEnroll(cfg.stateDir);
  log(
    pending && pending.server === server
      ? `resuming the enrollment with ${server} started at ${pending.createdAt} (${where}${pending.tokenSha256 !== tokenSha256(token) && !pending.signInToken ? '; its token file changed since: the same request goes on with the new token' : ''})`
      : `enrolling with ${server} as ${where} says (keystore ${keystore.kind}${attest ? ', TPM-attested' : ''})`,
  );
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const facts = await collectFacts();
  for (let failures = 0; ; ) {
    try {
      const enrolled = await enroll({
        stateDir: cfg.stateDir,
        server,
        token,
        caFingerprint: normalizeFingerprint(f.caFingerprint),
        keystore,
        env,
        facts,
        ...(attest ? { attest: { kind: 'tpm' as const, parent: cfg.tpm.parent, ...(cfg.tpm.tcti ? { tcti: cfg.tpm.tcti } : {}) } } : {}),
        onPending: (s, n) => {
          if (n === 1 || n % PENDING_LOG_EVERY === 0) log(`waiting for an administrator to approve this device (check ${n}; every ${s} s)`);
        },
      });
      const c = certOf(enrolled);
      log(`enrolled: device ${enrolled.deviceId}, certificate ${c.serialHex} valid until ${c.notAfter.toISOString()} (keystore ${enrolled.keystore.kind}${enrolled.attestation ? ', TPM-attested' : ''})`);
      return true;
    } catch (e) {
      if (!(e instanceof AgentError) || (e.code !== 'SERVER_UNREACHABLE' && e.code !== 'SERVER_ERROR')) throw e;
      failures++;
      const ms = retryDelayMs(failures, Math.random, o.backoff ?? DEFAULT_BACKOFF, { seconds: e.details.retryAfterSeconds ?? 0, capMs: DEFAULT_BACKOFF.capMs });
      log(`enrollment failed (${e.message}); trying again in ${Math.round(ms / 1000)} s`);
      await sleep(ms);
    }
  }
}
