/**
 * The agent's configuration, like the server's (server/src/config): an
 * optional JSON file (`--config F` or LATCHKEY_CONFIG), then the
 * environment, then flags, merged and validated once into a frozen object
 * that every command receives. Commands do not read flags or the
 * environment for these settings themselves.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AgentError } from '../errors.js';
import { KEYSTORE_KINDS, type KeystoreKind } from '../keystore/keystore.js';
import { resolveStateDir, type PathEnv } from '../state/paths.js';
import { type TestHooks, readTestHooks } from '../test-hooks.js';
import { DEFAULT_TPM_PARENT } from '../attest/attest.js';
import { defaultEnrollFile } from '../zero-touch/enroll-file.js';
import { defaultManagedPreferences } from '../zero-touch/managed-prefs.js';

export interface AgentConfig {
  /** Where identity, status and file keys live. */
  readonly stateDir: string;
  /** The keystore `enroll` makes the key in. */
  readonly keystore: KeystoreKind;
  /** For `--keystore pkcs11`: the module (a .so/.dylib/.dll) and the token's label. */
  readonly pkcs11: Readonly<{ module?: string; tokenLabel?: string }>;
  /** `enroll --attest tpm`: the key is made in the TPM and attested (issue 14); renewals follow the identity. */
  readonly attest: 'none' | 'tpm';
  /** How the agent reaches the TPM: TPM2TOOLS_TCTI for tpm2-tools (unset: their default, /dev/tpmrm0) and the parent of device keys. */
  readonly tpm: Readonly<{ tcti?: string; parent: string }>;
  /** `latchkey run` keeps a control channel to the server (off: renewals only). */
  readonly controlChannel: boolean;
  /**
   * The enroll file `latchkey run` enrolls from when there is no identity
   * (zero-touch/): --enroll-file, LATCHKEY_ENROLL_FILE, or the platform's
   * default. `from` names the flag or variable when one gave it (then the
   * file must exist). `managedPreferences`: the plist of an MDM profile for
   * com.latchkey.agent (macOS `/Library/Managed Preferences/`, or
   * LATCHKEY_MANAGED_PREFERENCES), read before the default enroll file and
   * instead of it when there; never when a flag or variable named the file.
   */
  readonly enrollFile: Readonly<{ path: string; from?: '--enroll-file' | 'LATCHKEY_ENROLL_FILE'; managedPreferences?: string }>;
  /** Print stack traces of failures. */
  readonly debug: boolean;
  /** Test and benchmark hooks (test-hooks.ts), read once here; empty in production. */
  readonly testHooks: Readonly<TestHooks>;
}

/** What a config file may hold (every key optional). */
export const CONFIG_FILE_KEYS = ['stateDir', 'keystore', 'pkcs11Module', 'pkcs11Token', 'controlChannel', 'attest', 'tpmTcti', 'tpmParent'] as const;

export interface AgentFlags {
  stateDir?: string;
  config?: string;
  keystore?: string;
  pkcs11Module?: string;
  pkcs11Token?: string;
  attest?: string;
  tpmTcti?: string;
  tpmParent?: string;
  enrollFile?: string;
  debug?: boolean;
}

export interface ConfigSources {
  flags: AgentFlags;
  env: NodeJS.ProcessEnv;
  /** Platform facts for the default state dir and keystore. */
  host: Omit<PathEnv, 'env'>;
  readFile?: (path: string) => string;
}

const bad = (message: string): AgentError => new AgentError('USAGE', message);

function readConfigFile(path: string, read: (p: string) => string): Record<string, unknown> {
  let text: string;
  try {
    text = read(path);
  } catch (e) {
    throw bad(`cannot read the config file ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`the config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`the config file ${path} must hold a JSON object`);
  const unknown = Object.keys(v).filter((k) => !(CONFIG_FILE_KEYS as readonly string[]).includes(k));
  if (unknown.length) throw bad(`the config file ${path} has unknown key ${unknown.map((k) => JSON.stringify(k)).join(', ')}; it may hold ${CONFIG_FILE_KEYS.join(', ')}`);
  return v as Record<string, unknown>;
}

const text = (v: unknown, where: string): string | undefined => {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw bad(`${where} must be a string`);
  return v;
};


/** The OS credential store needs a desktop session; headless Linux hosts default to the file store. */
export function defaultKeystore(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): KeystoreKind {
  return platform === 'linux' && !env.DBUS_SESSION_BUS_ADDRESS ? 'file' : 'os';
}

/** File, then environment, then flags; one error naming the bad setting, or a frozen config. */
export function loadAgentConfig(s: ConfigSources): AgentConfig {
  const { flags, env } = s;
  const path = flags.config ?? (env.LATCHKEY_CONFIG || undefined);
  const file = path ? readConfigFile(path, s.readFile ?? ((p) => readFileSync(p, 'utf8'))) : {};
  const where = (k: string): string => `${k} in ${path}`;

  const keystore = flags.keystore ?? (env.LATCHKEY_KEYSTORE || undefined) ?? text(file.keystore, where('keystore')) ?? defaultKeystore(s.host.platform, env);
  if (!(KEYSTORE_KINDS as readonly string[]).includes(keystore)) throw bad(`--keystore must be one of ${KEYSTORE_KINDS.join(', ')} (got "${keystore}")`);
  if (file.controlChannel !== undefined && typeof file.controlChannel !== 'boolean') throw bad(`${where('controlChannel')} must be true or false`);
  const module = flags.pkcs11Module ?? (env.LATCHKEY_PKCS11_MODULE || undefined) ?? text(file.pkcs11Module, where('pkcs11Module'));
  const tokenLabel = flags.pkcs11Token ?? (env.LATCHKEY_PKCS11_TOKEN || undefined) ?? text(file.pkcs11Token, where('pkcs11Token'));
  const testHooks = Object.freeze(readTestHooks(env));
  const attest = flags.attest ?? (env.LATCHKEY_ATTEST || undefined) ?? text(file.attest, where('attest')) ?? 'none';
  if (attest !== 'none' && attest !== 'tpm') throw bad(`--attest must be tpm or none (got "${attest}")`);
  const tcti = flags.tpmTcti ?? (env.LATCHKEY_TPM_TCTI || undefined) ?? text(file.tpmTcti, where('tpmTcti'));
  const parent = flags.tpmParent ?? (env.LATCHKEY_TPM_PARENT || undefined) ?? text(file.tpmParent, where('tpmParent')) ?? DEFAULT_TPM_PARENT;
  if (!/^0x81[0-9a-fA-F]{6}$/.test(parent)) throw bad(`--tpm-parent must be a persistent handle, 0x81000000–0x81ffffff (got "${parent}")`);

  const enrollFile = flags.enrollFile
    ? { path: resolve(flags.enrollFile), from: '--enroll-file' as const }
    : env.LATCHKEY_ENROLL_FILE
      ? { path: resolve(env.LATCHKEY_ENROLL_FILE), from: 'LATCHKEY_ENROLL_FILE' as const }
      : { path: defaultEnrollFile(s.host.platform, env), ...managedPreferencesPath(s.host.platform, env) };

  return Object.freeze({
    stateDir: resolveStateDir(flags.stateDir || env.LATCHKEY_STATE_DIR || text(file.stateDir, where('stateDir')), { ...s.host, env }),
    keystore: keystore as KeystoreKind,
    pkcs11: Object.freeze({ ...(module ? { module } : {}), ...(tokenLabel ? { tokenLabel } : {}) }),
    attest,
    tpm: Object.freeze({ ...(tcti ? { tcti } : {}), parent: parent.toLowerCase() }),
    enrollFile: Object.freeze(enrollFile),
    controlChannel: testHooks.noControlChannel ? false : ((file.controlChannel as boolean | undefined) ?? true),
    debug: !!flags.debug,
    testHooks,
  });
}

/** The managed preferences to read: LATCHKEY_MANAGED_PREFERENCES (made absolute), else macOS's. */
function managedPreferencesPath(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): { managedPreferences?: string } {
  const p = env.LATCHKEY_MANAGED_PREFERENCES ? resolve(env.LATCHKEY_MANAGED_PREFERENCES) : defaultManagedPreferences(platform);
  return p ? { managedPreferences: p } : {};
}
