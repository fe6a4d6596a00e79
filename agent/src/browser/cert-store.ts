/**
 * Browsers use the device identity through the platform's certificate store:
 * NSS databases on Linux (the user's for Chromium, each Firefox profile's),
 * the login keychain on macOS (Safari, Chrome), the user's "My" store on
 * Windows (Edge, Chrome). One interface, one implementation per platform;
 * each runs the platform's own tools through an injected Runner, so unit
 * tests check the exact commands (cert-store.test.ts).
 *
 * Ownership: the agent touches only entries it can prove are its own — in
 * NSS the nickname `Latchkey device <deviceId>`; in the keychain and the
 * Windows store a certificate whose SAN names `…/device/<deviceId>`.
 *
 * Secrets: the key travels in a PKCS#12 bundle written to a fresh 0700
 * directory (file 0600) under a random password, and the directory is
 * removed when the command is done, whatever happened. The password goes in
 * a file (pk12util), on stdin (PowerShell), or — where the tool knows no
 * other way, macOS `security import` — in argv: see macos-store.ts.
 */
import { spawn } from 'node:child_process';
import { createHash, createPrivateKey } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCertificate } from '@latchkey/pki';
import { CodedError } from '../errors.js';
import { type Pkcs12Profile, buildPkcs12, randomPkcs12Password } from './pkcs12.js';

export type CertStoreKind = 'nss' | 'macos' | 'windows';

/** What the store gets: the certificate, and the key or where it lives. */
export interface BrowserCredential {
  deviceId: string;
  certPem: string;
  key:
    | { kind: 'pem'; pem: string }
    /** A PKCS#11 token holds the key (pkcs11 keystore); it never leaves it. */
    | { kind: 'token'; module: string; tokenLabel?: string };
}

/** One certificate of ours in a store. */
export interface StoreEntry {
  /** Nickname (NSS) or friendly name / label the store shows. */
  label: string;
  serialHex: string;
  /** SHA-1 of the certificate DER, upper-case hex: the keychain's and Windows' thumbprint. */
  sha1: string;
}

export interface CertStoreStatus {
  /** Where the store is (NSS db directory, keychain path, Windows store path). */
  location: string;
  /** The tools it needs are there and the store exists. */
  available: boolean;
  entries: StoreEntry[];
  /** Linux + pkcs11: the token's module is registered in the NSS db. */
  tokenModule?: string;
}

export interface CertStore {
  readonly kind: CertStoreKind;
  readonly location: string;
  /** Puts the certificate (and key) in the store and removes this device's older ones. */
  install(c: BrowserCredential): Promise<StoreEntry>;
  /** Removes every entry of this device (and, for a token, the module registration). Returns how many entries went. */
  remove(deviceId: string, opts?: { token?: boolean }): Promise<number>;
  status(deviceId: string): Promise<CertStoreStatus>;
}

export type BrowserStoreErrorCode = 'UNSUPPORTED' | 'TOOL_MISSING' | 'COMMAND_FAILED' | 'NOT_INSTALLED';

export class BrowserStoreError extends CodedError<BrowserStoreErrorCode> {
  override readonly name = 'BrowserStoreError';
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell; `input` goes to its stdin (secrets travel there, never in argv, where the tool allows). */
export type Runner = (cmd: string, args: readonly string[], opts?: { input?: string }) => Promise<CommandResult>;

/** The real runner: no shell, bounded by a timeout, ENOENT → TOOL_MISSING naming the package. */
export function nodeRunner(opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; hints?: Record<string, string> } = {}): Runner {
  return (cmd, args, o = {}) =>
    new Promise((resolve, reject) => {
      const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, windowsHide: true });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      p.stdout.on('data', (d: Buffer) => out.push(d));
      p.stderr.on('data', (d: Buffer) => err.push(d));
      p.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const hint = opts.hints?.[cmd];
        reject(e.code === 'ENOENT' ? new BrowserStoreError('TOOL_MISSING', `${cmd} was not found${hint ? `; ${hint}` : ''}`, { cause: e }) : new BrowserStoreError('COMMAND_FAILED', `could not run ${cmd}: ${e.message}`, { cause: e }));
      });
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
      p.stdin.on('error', () => undefined);
      p.stdin.end(o.input);
    });
}

/** The label the agent gives its entries; the NSS nickname. */
export const entryLabel = (deviceId: string): string => `Latchkey device ${deviceId}`;

/** The entry for a certificate (DER) under `label`. */
export function entryOf(der: Buffer, label: string): StoreEntry {
  return { label, serialHex: parseCertificate(der).serialHex, sha1: createHash('sha1').update(der).digest('hex').toUpperCase() };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Device ids end up in nicknames and PowerShell scripts: only a UUID is accepted. */
export function checkDeviceId(deviceId: string): string {
  if (!UUID.test(deviceId)) throw new BrowserStoreError('COMMAND_FAILED', `"${deviceId}" is not a device id (UUID)`);
  return deviceId;
}

/**
 * Runs `fn` with a fresh private directory (0700; files in it are written
 * 0600 by `writePrivate`) and removes it afterwards, on success and failure.
 * On Windows the mode bits mean nothing; the directory is in the user's
 * %TEMP%, which only that user (and administrators) can read.
 */
export async function withPrivateDir<T>(fn: (dir: string) => Promise<T>, base: string = tmpdir()): Promise<T> {
  const dir = await mkdtemp(join(base, 'latchkey-browser-'));
  try {
    await chmod(dir, 0o700);
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const writePrivate = (path: string, data: string | Uint8Array): Promise<void> => writeFile(path, data, { mode: 0o600, flag: 'wx' });

/** The device's certificate and key as `device.p12` in a private dir (withPrivateDir), under a fresh random password. */
export async function writeDeviceBundle(dir: string, o: { der: Buffer; keyPem: string; friendlyName: string; profile: Pkcs12Profile }): Promise<{ bundle: string; password: string }> {
  const password = randomPkcs12Password();
  const bundle = join(dir, 'device.p12');
  const pkcs8 = createPrivateKey(o.keyPem).export({ type: 'pkcs8', format: 'der' });
  await writePrivate(bundle, buildPkcs12({ certs: [o.der], pkcs8, password, friendlyName: o.friendlyName, profile: o.profile }));
  return { bundle, password };
}

/** A failed command as an error: the tool, what it said (with any secret cut out), never the argv. */
export function commandFailed(what: string, r: CommandResult, secrets: readonly string[] = []): BrowserStoreError {
  let said = `${r.stderr}\n${r.stdout}`.trim();
  for (const s of secrets) if (s) said = said.split(s).join('***');
  return new BrowserStoreError('COMMAND_FAILED', `${what} failed (exit ${r.code ?? 'by signal'})${said ? `: ${said.slice(-800)}` : ''}`);
}
