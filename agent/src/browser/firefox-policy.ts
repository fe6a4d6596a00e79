/**
 * Firefox's enterprise policy (policies.json) for the device certificate:
 *   Preferences."security.default_personal_cert" = "Select Automatically", locked:
 *     Firefox answers a server's certificate request with the matching
 *     certificate it has, without asking;
 *   Preferences."security.osclientcerts.autoload" = true, locked (macOS, Windows):
 *     Firefox sees the keychain / Windows store, where `browser enable` puts it;
 *   SecurityDevices.Add."Latchkey token" = the PKCS#11 module (a key on a token):
 *     every profile, also one made later, loads the module.
 * The file is merged, never replaced: other policies stay, a preference the
 * administrator already set is left as it is, and what latchkey added is
 * recorded (browser.json) so `browser disable` takes out exactly that, and
 * only while it still holds latchkey's value. The file is bounded in size.
 * Where Firefox reads it: Linux /etc/firefox/policies/policies.json (every
 * Firefox build, Debian's firefox-esr included) — the default here; macOS
 * Firefox.app/Contents/Resources/distribution/policies.json; Windows
 * <install dir>\distribution\policies.json (or the GPO / registry equivalents).
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../state/atomic.js';
import { BrowserStoreError } from './cert-store.js';
import { NSS_TOKEN_MODULE } from './nss-store.js';

/** A policies.json bigger than this is refused (real ones are a few KiB). */
export const MAX_POLICY_FILE = 1024 * 1024;

export const AUTO_SELECT_PREF = 'security.default_personal_cert';
export const OS_CLIENT_CERTS_PREF = 'security.osclientcerts.autoload';

/** Where Firefox reads the system policy by default on `platform`. */
export function defaultFirefoxPolicyFile(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string {
  if (platform === 'darwin') return '/Applications/Firefox.app/Contents/Resources/distribution/policies.json';
  if (platform === 'win32') return `${env.ProgramFiles || 'C:\\Program Files'}\\Mozilla Firefox\\distribution\\policies.json`;
  return '/etc/firefox/policies/policies.json';
}

/** What latchkey put in a policies.json (kept in browser.json). */
export interface FirefoxPolicyAdded {
  file: string;
  /** The file did not exist before latchkey wrote it. */
  created: boolean;
  /** Preferences latchkey set, with the value it set. */
  prefs: Record<string, { Value: string | boolean; Status: 'locked' }>;
  /** SecurityDevices.Add entry latchkey set: name → module path. */
  securityDevice?: { name: string; module: string };
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The preferences latchkey wants on `platform`. */
export function wantedPrefs(platform: NodeJS.Platform): FirefoxPolicyAdded['prefs'] {
  return {
    [AUTO_SELECT_PREF]: { Value: 'Select Automatically', Status: 'locked' },
    ...(platform === 'darwin' || platform === 'win32' ? { [OS_CLIENT_CERTS_PREF]: { Value: true, Status: 'locked' } } : {}),
  };
}

/**
 * Merges latchkey's policies into `doc` (a parsed policies.json, or undefined).
 * Returns the new document, what was added, and the preferences left alone
 * because the administrator had set them to something else.
 */
export function addFirefoxPolicy(doc: unknown, want: { prefs: FirefoxPolicyAdded['prefs']; tokenModule?: string }, file = 'policies.json'): { doc: Json; added: Omit<FirefoxPolicyAdded, 'file' | 'created'>; kept: string[] } {
  const bad = (what: string): never => {
    throw new BrowserStoreError('COMMAND_FAILED', `${file} ${what}; fix the file (it must be {"policies": {…}}) or give another with --firefox-policy FILE`);
  };
  const root: Json = doc === undefined ? {} : isObj(doc) ? structuredClone(doc) : bad('is not a JSON object');
  const policies: Json = root.policies === undefined ? {} : isObj(root.policies) ? root.policies : bad('has a "policies" that is not an object');
  root.policies = policies;
  const prefsObj: Json = policies.Preferences === undefined ? {} : isObj(policies.Preferences) ? policies.Preferences : bad('has a "Preferences" policy that is not an object');
  const added: Omit<FirefoxPolicyAdded, 'file' | 'created'> = { prefs: {} };
  const kept: string[] = [];
  for (const [name, value] of Object.entries(want.prefs)) {
    if (prefsObj[name] === undefined) {
      prefsObj[name] = value;
      added.prefs[name] = value;
    } else if (!sameJson(prefsObj[name], value)) {
      kept.push(name);
    }
  }
  if (Object.keys(prefsObj).length) policies.Preferences = prefsObj;
  if (want.tokenModule) {
    const sd: Json = policies.SecurityDevices === undefined ? {} : isObj(policies.SecurityDevices) ? policies.SecurityDevices : bad('has a "SecurityDevices" policy that is not an object');
    const add: Json = sd.Add === undefined ? {} : isObj(sd.Add) ? sd.Add : bad('has a "SecurityDevices.Add" that is not an object');
    if (add[NSS_TOKEN_MODULE] === undefined) {
      add[NSS_TOKEN_MODULE] = want.tokenModule;
      added.securityDevice = { name: NSS_TOKEN_MODULE, module: want.tokenModule };
    } else if (add[NSS_TOKEN_MODULE] !== want.tokenModule) {
      kept.push(`SecurityDevices.Add."${NSS_TOKEN_MODULE}"`);
    }
    sd.Add = add;
    policies.SecurityDevices = sd;
  }
  return { doc: root, added, kept };
}

/** Takes out of `doc` what latchkey added, where it still holds latchkey's value; drops the containers left empty. */
export function removeFirefoxPolicy(doc: unknown, added: Omit<FirefoxPolicyAdded, 'file' | 'created'>): { doc: Json; removed: number } {
  if (!isObj(doc) || !isObj(doc.policies)) return { doc: isObj(doc) ? doc : {}, removed: 0 };
  const root = structuredClone(doc);
  const policies = root.policies as Json;
  let removed = 0;
  if (isObj(policies.Preferences)) {
    const prefs = policies.Preferences;
    for (const [name, value] of Object.entries(added.prefs)) {
      if (sameJson(prefs[name], value)) {
        delete prefs[name];
        removed++;
      }
    }
    if (!Object.keys(prefs).length) delete policies.Preferences;
  }
  const dev = added.securityDevice;
  if (dev && isObj(policies.SecurityDevices) && isObj(policies.SecurityDevices.Add)) {
    const sd = policies.SecurityDevices;
    const add = sd.Add as Json;
    if (add[dev.name] === dev.module) {
      delete add[dev.name];
      removed++;
    }
    if (!Object.keys(add).length) delete sd.Add;
    if (!Object.keys(sd).length) delete policies.SecurityDevices;
  }
  return { doc: root, removed };
}

/** The parsed file, or undefined when it does not exist. Bounded; a file that is not JSON is an error naming it. */
export async function readPolicyFile(file: string): Promise<unknown> {
  const st = await stat(file).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
  if (!st) return undefined;
  if (!st.isFile()) throw new BrowserStoreError('COMMAND_FAILED', `${file} is not a file; give the policies.json path with --firefox-policy FILE`);
  if (st.size > MAX_POLICY_FILE) throw new BrowserStoreError('COMMAND_FAILED', `${file} is ${st.size} bytes, more than a policies.json can be here (${MAX_POLICY_FILE}); check it`);
  const text = await readFile(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new BrowserStoreError('COMMAND_FAILED', `${file} is not valid JSON (${(e as Error).message}); fix it first — latchkey merges into it and never overwrites a file it cannot read`);
  }
}

const permissionHint = (file: string, e: unknown): never => {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') throw new BrowserStoreError('COMMAND_FAILED', `cannot write ${file} (${code}): Firefox's policy is system-wide; deploy it with your device management (the README's "Browsers" section has the JSON), or run \`latchkey browser enable --firefox-policy\` as a user who may write ${file}`, { cause: e });
  throw e;
};

/** Merges latchkey's policies into `file` (made if missing, 0644: Firefox runs as every user). */
export async function installFirefoxPolicy(file: string, want: { prefs: FirefoxPolicyAdded['prefs']; tokenModule?: string }): Promise<{ added: FirefoxPolicyAdded; kept: string[] }> {
  const before = await readPolicyFile(file);
  const { doc, added, kept } = addFirefoxPolicy(before, want, file);
  const out = JSON.stringify(doc, null, 2) + '\n';
  if (out.length > MAX_POLICY_FILE) throw new BrowserStoreError('COMMAND_FAILED', `${file} would grow past ${MAX_POLICY_FILE} bytes`);
  if (before === undefined || !sameJson(before, doc)) {
    await mkdir(dirname(file), { recursive: true, mode: 0o755 }).catch((e: unknown) => permissionHint(file, e));
    await writeFileAtomic(file, out, { mode: 0o644 }).catch((e: unknown) => permissionHint(file, e));
  }
  return { added: { file, created: before === undefined, ...added }, kept };
}

/** Takes latchkey's policies out of the file again; removes the file if latchkey made it and nothing else is left. */
export async function uninstallFirefoxPolicy(added: FirefoxPolicyAdded): Promise<number> {
  const before = await readPolicyFile(added.file);
  if (before === undefined) return 0;
  const { doc, removed } = removeFirefoxPolicy(before, added);
  if (!removed) return 0;
  const empty = isObj(doc.policies) && !Object.keys(doc.policies).length && Object.keys(doc).length === 1;
  if (added.created && empty) await rm(added.file, { force: true }).catch((e: unknown) => permissionHint(added.file, e));
  else await writeFileAtomic(added.file, JSON.stringify(doc, null, 2) + '\n', { mode: 0o644 }).catch((e: unknown) => permissionHint(added.file, e));
  return removed;
}
