/**
 * `latchkey browser enable|disable|status` and the hooks that keep the
 * browser's certificate store in step with the identity:
 *   enable → the current certificate (and key) go in the store;
 *   every committed renewal → the new one replaces the old (renew.ts);
 *   revocation, unenroll → this device's entries are removed (revoked.ts, cli.ts).
 * On Linux the stores are the user's NSS database and, because Firefox
 * ignores it, the NSS database of every Firefox profile (firefox-profiles.ts),
 * each driven by the same nss-store.ts. Firefox's policies.json (firefox-policy.ts)
 * makes it pick the certificate without asking; on macOS and Windows it also
 * makes Firefox read the keychain / Windows store.
 * The setting lives in the state dir (`browser.json`), with what was last
 * installed and the last error. A failed store update is a warning: it is
 * recorded and logged, and never fails or undoes a renewal.
 * The callers hold the state lock.
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCertificate } from '@latchkey/pki';
import { AgentError } from '../errors.js';
import type { DeviceKey } from '../keystore/keystore.js';
import { openKeyStore } from '../keystore/open-keystore.js';
import { writeFileAtomic } from '../state/atomic.js';
import { type Identity, readIdentity } from '../state/identity.js';
import { BrowserStoreError, type BrowserCredential, type CertStore, type CertStoreKind, type CertStoreStatus, type Runner, type StoreEntry, nodeRunner } from './cert-store.js';
import { createMacosStore } from './macos-store.js';
import { type FirefoxPolicyAdded, defaultFirefoxPolicyFile, installFirefoxPolicy, uninstallFirefoxPolicy, wantedPrefs } from './firefox-policy.js';
import { findFirefoxProfiles } from './firefox-profiles.js';
import { createNssStore } from './nss-store.js';
import { createWindowsStore } from './windows-store.js';

export const BROWSER_FILE = 'browser.json';

export interface BrowserSetting {
  version: 1;
  enabled: boolean;
  store: CertStoreKind;
  /** NSS: the database chosen at enable time (a daemon may run with another HOME). */
  nssDb?: string;
  /** macOS: the keychain chosen at enable time. */
  keychain?: string;
  /** Linux: the Firefox profile directories (each its own NSS database) chosen at enable time. */
  firefoxProfiles?: string[];
  /** What latchkey put in Firefox's policies.json, for `browser disable` to take out. */
  firefoxPolicy?: FirefoxPolicyAdded;
  installed?: StoreEntry & { deviceId: string; token: boolean; at: string };
  lastError?: { at: string; message: string };
}

export interface BrowserDeps {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  /** Default: the real tools, with `env`. */
  run?: Runner;
  now?: () => Date;
  /** Where warnings go; default stderr. */
  warn?: (line: string) => void;
  /** Parent of the private temp dirs; default the OS temp dir. */
  tmp?: string;
}

const NSS_HINT = 'install NSS tools: apt-get install libnss3-tools (Fedora: dnf install nss-tools)';

export function storeKindFor(platform: NodeJS.Platform): CertStoreKind {
  if (platform === 'darwin') return 'macos';
  if (platform === 'win32') return 'windows';
  if (platform === 'linux' || platform === 'freebsd' || platform === 'openbsd') return 'nss';
  throw new BrowserStoreError('UNSUPPORTED', `no browser certificate store support on ${platform}`);
}

const homeOf = (env: NodeJS.ProcessEnv): string => env.HOME || homedir();
export const defaultNssDb = (env: NodeJS.ProcessEnv): string => join(homeOf(env), '.pki', 'nssdb');
export const defaultKeychain = (env: NodeJS.ProcessEnv): string => join(homeOf(env), 'Library', 'Keychains', 'login.keychain-db');

const runnerOf = (deps: BrowserDeps): Runner => deps.run ?? nodeRunner({ env: deps.env, hints: { certutil: NSS_HINT, pk12util: NSS_HINT, modutil: NSS_HINT } });

export function openCertStore(s: BrowserSetting, deps: BrowserDeps): CertStore {
  const run = runnerOf(deps);
  const tmp = deps.tmp ? { tmp: deps.tmp } : {};
  switch (s.store) {
    case 'nss':
      return createNssStore({ dbDir: s.nssDb ?? defaultNssDb(deps.env), run, ...tmp });
    case 'macos':
      return createMacosStore({ keychain: s.keychain ?? defaultKeychain(deps.env), run, ...tmp });
    case 'windows':
      return createWindowsStore({ run, ...tmp });
  }
}

/** The NSS database of each Firefox profile of the setting (Linux). */
export function firefoxStores(s: BrowserSetting, deps: BrowserDeps): CertStore[] {
  const run = runnerOf(deps);
  return (s.store === 'nss' ? (s.firefoxProfiles ?? []) : []).map((dbDir) => createNssStore({ dbDir, run, ...(deps.tmp ? { tmp: deps.tmp } : {}) }));
}

/** Every store the setting covers: the platform's, then Firefox's. */
const allStores = (s: BrowserSetting, deps: BrowserDeps): CertStore[] => [openCertStore(s, deps), ...firefoxStores(s, deps)];

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Installs in every store; the platform store's entry is the one returned. */
async function installAll(stores: CertStore[], c: BrowserCredential): Promise<StoreEntry> {
  let first: StoreEntry | undefined;
  for (const st of stores) {
    try {
      const e = await st.install(c);
      first ??= e;
    } catch (e) {
      if (st === stores[0]) throw e;
      throw new BrowserStoreError((e as BrowserStoreError).code ?? 'COMMAND_FAILED', `Firefox profile ${st.location}: ${messageOf(e)}`, { cause: e });
    }
  }
  return first!;
}

export async function readBrowserSetting(stateDir: string): Promise<BrowserSetting | undefined> {
  let text: string;
  try {
    text = await readFile(join(stateDir, BROWSER_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const s = JSON.parse(text) as BrowserSetting;
    if (s.version !== 1 || typeof s.enabled !== 'boolean' || !['nss', 'macos', 'windows'].includes(s.store)) throw new Error('unexpected content');
    return s;
  } catch (e) {
    throw new AgentError('STATE_CORRUPT', `${join(stateDir, BROWSER_FILE)} is not a latchkey browser setting (${(e as Error).message}); delete it and run \`latchkey browser enable\` again`, {}, { cause: e });
  }
}

async function writeBrowserSetting(stateDir: string, s: BrowserSetting): Promise<void> {
  const clean = Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined));
  await writeFileAtomic(join(stateDir, BROWSER_FILE), `${JSON.stringify(clean, null, 2)}\n`, { mode: 0o600 });
}

/** The certificate and the key (or, for a token, where it is) as the store takes them. */
async function credentialFor(id: Identity, ctx: { stateDir: string; env: NodeJS.ProcessEnv }, key?: DeviceKey): Promise<BrowserCredential> {
  const base = { deviceId: id.deviceId, certPem: id.certPem };
  if (id.keystore.kind === 'pkcs11') return { ...base, key: { kind: 'token', module: id.keystore.module, ...(id.keystore.tokenLabel ? { tokenLabel: id.keystore.tokenLabel } : {}) } };
  const store = key ? undefined : await openKeyStore(id.keystore, ctx);
  try {
    const k = key ?? (await store!.load(id.key));
    if (!k) throw new AgentError('KEYSTORE', `the device key ${id.key.id} is missing from the ${id.keystore.kind} keystore`);
    const t = await k.tlsKey();
    if (t.kind !== 'pem') throw new BrowserStoreError('UNSUPPORTED', `the ${id.keystore.kind} keystore does not hand out its key`);
    return { ...base, key: { kind: 'pem', pem: t.key } };
  } finally {
    await store?.close().catch(() => undefined);
  }
}

const installedOf = (e: StoreEntry, id: Identity, now: Date): NonNullable<BrowserSetting['installed']> => ({ ...e, deviceId: id.deviceId, token: id.keystore.kind === 'pkcs11', at: now.toISOString() });

/** Turns the browser store on and installs the current identity; fails (and changes nothing in the setting) if the install fails. */
export interface EnableOptions {
  nssDb?: string;
  /** Firefox profile directories to use besides (or, with `noFirefoxDiscovery`, instead of) the ones profiles.ini lists. */
  firefoxProfiles?: string[];
  /** Do not look for Firefox profiles (only `firefoxProfiles`, if any). */
  noFirefoxDiscovery?: boolean;
  /** Merge the Firefox policy into this policies.json; `true`: the platform's default file. */
  firefoxPolicy?: string | true;
}

export async function enableBrowser(
  stateDir: string,
  deps: BrowserDeps,
  opts: EnableOptions = {},
): Promise<{ setting: BrowserSetting; entry: StoreEntry; identity: Identity; location: string; firefox: string[]; policyKept: string[] }> {
  const id = await readIdentity(stateDir);
  if (!id) throw new AgentError('NOT_ENROLLED', `this device is not enrolled (no identity in ${stateDir}); enroll it first, then run \`latchkey browser enable\``);
  const prev = await readBrowserSetting(stateDir);
  const kind = storeKindFor(deps.platform);
  const setting: BrowserSetting = {
    version: 1,
    enabled: true,
    store: kind,
    ...(kind === 'nss' ? { nssDb: resolve(opts.nssDb ?? prev?.nssDb ?? defaultNssDb(deps.env)) } : {}),
    ...(kind === 'macos' ? { keychain: prev?.keychain ?? defaultKeychain(deps.env) } : {}),
  };
  if (kind === 'nss') {
    const given = (opts.firefoxProfiles ?? []).map((p) => resolve(p));
    for (const p of given) {
      if (!(await stat(p).catch(() => undefined))?.isDirectory()) throw new BrowserStoreError('NOT_INSTALLED', `--firefox-profile ${p} is not a directory; give a Firefox profile directory (about:profiles shows them)`);
    }
    const profiles = [...given, ...(opts.noFirefoxDiscovery ? [] : await findFirefoxProfiles(deps.platform, deps.env))];
    const unique = [...new Set(profiles)];
    if (unique.length) setting.firefoxProfiles = unique;
  }
  const stores = allStores(setting, deps);
  if (prev?.installed && prev.installed.deviceId !== id.deviceId) {
    for (const st of allStores(prev, deps)) await st.remove(prev.installed.deviceId, { token: prev.installed.token }).catch(() => 0);
  }
  // Profiles of the previous setting that are no longer covered lose this device's entries.
  for (const st of firefoxStores({ ...setting, firefoxProfiles: (prev?.firefoxProfiles ?? []).filter((p) => !setting.firefoxProfiles?.includes(p)) }, deps)) {
    await st.remove(id.deviceId, { token: id.keystore.kind === 'pkcs11' }).catch(() => 0);
  }
  const entry = await installAll(stores, await credentialFor(id, { stateDir, env: deps.env }));
  let next: BrowserSetting = { ...setting, installed: installedOf(entry, id, (deps.now ?? (() => new Date()))()), ...(prev?.firefoxPolicy ? { firefoxPolicy: prev.firefoxPolicy } : {}) };
  await writeBrowserSetting(stateDir, next);
  let policyKept: string[] = [];
  if (opts.firefoxPolicy !== undefined) {
    const file = resolve(opts.firefoxPolicy === true ? defaultFirefoxPolicyFile(deps.platform, deps.env) : opts.firefoxPolicy);
    if (prev?.firefoxPolicy && prev.firefoxPolicy.file !== file) await uninstallFirefoxPolicy(prev.firefoxPolicy).catch(() => 0);
    const tokenModule = id.keystore.kind === 'pkcs11' ? id.keystore.module : undefined;
    const r = await installFirefoxPolicy(file, { prefs: wantedPrefs(deps.platform), ...(tokenModule ? { tokenModule } : {}) });
    policyKept = r.kept;
    // Keep what an earlier enable added to the same file: it is still latchkey's to take out.
    const earlier = prev?.firefoxPolicy?.file === file ? prev.firefoxPolicy : undefined;
    const added: FirefoxPolicyAdded = {
      ...r.added,
      created: earlier?.created ?? r.added.created,
      prefs: { ...earlier?.prefs, ...r.added.prefs },
      ...(r.added.securityDevice ?? earlier?.securityDevice ? { securityDevice: r.added.securityDevice ?? earlier!.securityDevice! } : {}),
    };
    next = { ...next, firefoxPolicy: added };
    await writeBrowserSetting(stateDir, next);
  }
  return { setting: next, entry, identity: id, location: stores[0]!.location, firefox: next.firefoxProfiles ?? [], policyKept };
}

/** Removes this device's entries from the store and turns the hooks off. */
export async function disableBrowser(stateDir: string, deps: BrowserDeps): Promise<{ removed: number; location: string; firefox: string[]; policy?: { file: string; removed: number } } | undefined> {
  const s = await readBrowserSetting(stateDir);
  if (!s) return undefined;
  const id = await readIdentity(stateDir).catch(() => undefined);
  const stores = allStores(s, deps);
  let removed = 0;
  const ids = new Map<string, boolean>();
  if (s.installed) ids.set(s.installed.deviceId, s.installed.token);
  if (id) ids.set(id.deviceId, id.keystore.kind === 'pkcs11');
  for (const st of stores) for (const [deviceId, token] of ids) removed += await st.remove(deviceId, { token });
  const policyRemoved = s.firefoxPolicy ? await uninstallFirefoxPolicy(s.firefoxPolicy) : 0;
  await writeBrowserSetting(stateDir, { ...s, enabled: false, installed: undefined, lastError: undefined, firefoxPolicy: undefined });
  return { removed, location: stores[0]!.location, firefox: s.firefoxProfiles ?? [], ...(s.firefoxPolicy ? { policy: { file: s.firefoxPolicy.file, removed: policyRemoved } } : {}) };
}

export interface BrowserStatus {
  enabled: boolean;
  store?: CertStoreKind;
  location?: string;
  deviceId?: string;
  /** Serial of the identity's certificate. */
  serial?: string;
  /** What the store holds for this device. */
  entries: StoreEntry[];
  /** The store holds exactly the identity's certificate. */
  current: boolean;
  tokenModule?: string;
  lastError?: { at: string; message: string };
  installedAt?: string;
  /** Linux: what each Firefox profile's database holds for this device. */
  firefox: { profile: string; entries: StoreEntry[]; current: boolean }[];
  /** The policies.json latchkey merged its Firefox policy into. */
  firefoxPolicy?: string;
}

export async function browserStatus(stateDir: string, deps: BrowserDeps): Promise<BrowserStatus> {
  const s = await readBrowserSetting(stateDir);
  const id = await readIdentity(stateDir).catch(() => undefined);
  if (!s) return { enabled: false, entries: [], current: false, firefox: [], ...(id ? { deviceId: id.deviceId } : {}) };
  const deviceId = id?.deviceId ?? s.installed?.deviceId;
  let st: CertStoreStatus | undefined;
  const store = openCertStore(s, deps);
  if (deviceId) st = await store.status(deviceId);
  const serial = id ? parseCertificate(id.certPem).serialHex : undefined;
  const entries = st?.entries ?? [];
  const isCurrent = (es: StoreEntry[]): boolean => !!serial && es.length === 1 && es[0]!.serialHex === serial;
  const firefox: BrowserStatus['firefox'] = [];
  for (const fs of firefoxStores(s, deps)) {
    const es = deviceId ? (await fs.status(deviceId)).entries : [];
    firefox.push({ profile: fs.location, entries: es, current: isCurrent(es) });
  }
  return {
    enabled: s.enabled,
    store: s.store,
    location: store.location,
    ...(deviceId ? { deviceId } : {}),
    ...(serial ? { serial } : {}),
    entries,
    current: isCurrent(entries) && firefox.every((f) => f.current),
    ...(st?.tokenModule ? { tokenModule: st.tokenModule } : {}),
    ...(s.lastError ? { lastError: s.lastError } : {}),
    ...(s.installed ? { installedAt: s.installed.at } : {}),
    firefox,
    ...(s.firefoxPolicy ? { firefoxPolicy: s.firefoxPolicy.file } : {}),
  };
}

const defaultWarn = (line: string): void => void process.stderr.write(`${line}\n`);

/**
 * Renewal hook (renew.ts, after the commit): the new certificate and key go
 * in the store when the setting is on. Never throws; a failure is recorded in
 * browser.json (`latchkey browser status`) and logged as a warning.
 */
export async function updateBrowserAfterRenewal(stateDir: string, env: NodeJS.ProcessEnv, id: Identity, key: DeviceKey, deps: Partial<BrowserDeps> = {}): Promise<void> {
  const d: BrowserDeps = { platform: process.platform, env, ...deps };
  const now = (d.now ?? (() => new Date()))();
  let s: BrowserSetting | undefined;
  try {
    s = await readBrowserSetting(stateDir);
    if (!s?.enabled) return;
    const entry = await installAll(allStores(s, d), await credentialFor(id, { stateDir, env }, key));
    await writeBrowserSetting(stateDir, { ...s, installed: installedOf(entry, id, now), lastError: undefined });
  } catch (e) {
    const message = `the browser certificate store was not updated after the renewal: ${messageOf(e)}`;
    (d.warn ?? defaultWarn)(`latchkey: warning: ${message} (the renewal itself succeeded; \`latchkey browser enable\` retries)`);
    if (s) await writeBrowserSetting(stateDir, { ...s, lastError: { at: now.toISOString(), message } }).catch(() => undefined);
  }
}

/**
 * Revocation and unenroll hook: this device's entries leave the store (the
 * setting itself stays, for the next enrollment). Never throws.
 */
export async function removeBrowserCertificate(stateDir: string, env: NodeJS.ProcessEnv, id: Identity, deps: Partial<BrowserDeps> = {}): Promise<void> {
  const d: BrowserDeps = { platform: process.platform, env, ...deps };
  const now = (d.now ?? (() => new Date()))();
  let s: BrowserSetting | undefined;
  try {
    s = await readBrowserSetting(stateDir);
    if (!s || (!s.enabled && !s.installed)) return;
    for (const store of allStores(s, d)) {
      await store.remove(id.deviceId, { token: id.keystore.kind === 'pkcs11' });
      if (s.installed && s.installed.deviceId !== id.deviceId) await store.remove(s.installed.deviceId, { token: s.installed.token });
    }
    await writeBrowserSetting(stateDir, { ...s, installed: undefined, lastError: undefined });
  } catch (e) {
    const message = `device ${id.deviceId} could not be removed from the browser certificate store: ${messageOf(e)}`;
    (d.warn ?? defaultWarn)(`latchkey: warning: ${message}`);
    if (s) await writeBrowserSetting(stateDir, { ...s, lastError: { at: now.toISOString(), message } }).catch(() => undefined);
  }
}
