/**
 * Opens the keystore an identity names. The `os` and `pkcs11` stores load
 * native addons (keytar, pkcs11js): they are imported only when used, so an
 * agent on the file store runs where those cannot load.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../errors.js';
import { writeFileAtomic } from '../state/atomic.js';
import type { KeystoreConfig } from '../state/identity.js';
import { STATE_FILES, keyNamespace } from '../state/paths.js';
import { createFileKeyStore } from './file-keystore.js';
import type { KeyStore } from './keystore.js';

export interface KeystoreContext {
  stateDir: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The file store's passphrase: LATCHKEY_KEY_PASSPHRASE, or a random one the
 * agent keeps in the state dir (0600). The latter protects key files copied
 * without it (backups of keys/ alone); a host that can keep a secret elsewhere
 * (systemd credentials, a vault agent) should pass it in the environment.
 */
async function filePassphrase(ctx: KeystoreContext): Promise<string> {
  if (ctx.env.LATCHKEY_KEY_PASSPHRASE) return ctx.env.LATCHKEY_KEY_PASSPHRASE;
  const path = join(ctx.stateDir, STATE_FILES.passphrase);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const p = randomBytes(32).toString('base64url');
  await writeFileAtomic(path, `${p}\n`, { mode: 0o600 });
  return p;
}

/** Where `enroll --save-pin` keeps a token's PIN in the OS credential store (keytar). */
export const PIN_SERVICE = 'latchkey:pkcs11-pin';
export const pinAccount = (stateDir: string, cfg: { module: string; tokenLabel?: string }): string => `${keyNamespace(stateDir)}:${cfg.tokenLabel ?? cfg.module}`;

async function keytar(): Promise<{ getPassword(s: string, a: string): Promise<string | null>; setPassword(s: string, a: string, p: string): Promise<void>; deletePassword(s: string, a: string): Promise<boolean> }> {
  const m = (await import('keytar')) as unknown as { default?: Awaited<ReturnType<typeof keytar>> } & Awaited<ReturnType<typeof keytar>>;
  return m.default ?? m;
}

/** The token PIN: LATCHKEY_PKCS11_PIN, LATCHKEY_PKCS11_PIN_FILE, or the OS credential store (saved by `enroll --save-pin`). */
export async function pkcs11Pin(ctx: KeystoreContext, cfg: { module: string; tokenLabel?: string }): Promise<string> {
  if (ctx.env.LATCHKEY_PKCS11_PIN) return ctx.env.LATCHKEY_PKCS11_PIN;
  if (ctx.env.LATCHKEY_PKCS11_PIN_FILE) return (await readFile(ctx.env.LATCHKEY_PKCS11_PIN_FILE, 'utf8')).trim();
  let saved: string | null = null;
  let why = '';
  try {
    saved = await (await keytar()).getPassword(PIN_SERVICE, pinAccount(ctx.stateDir, cfg));
  } catch (e) {
    why = ` (the OS credential store is not available: ${(e as Error).message.split('\n')[0]})`;
  }
  if (saved) return saved;
  throw new AgentError('KEYSTORE', `the PKCS#11 token needs its user PIN: set LATCHKEY_PKCS11_PIN, or LATCHKEY_PKCS11_PIN_FILE to a file (mode 0600) that holds it, or save it in the OS credential store with \`latchkey enroll … --save-pin\`${why}`);
}

/** Keeps the PIN given in the environment in the OS credential store, for the daemon. */
export async function savePkcs11Pin(ctx: KeystoreContext, cfg: { module: string; tokenLabel?: string }): Promise<void> {
  const pin = ctx.env.LATCHKEY_PKCS11_PIN ?? (ctx.env.LATCHKEY_PKCS11_PIN_FILE ? (await readFile(ctx.env.LATCHKEY_PKCS11_PIN_FILE, 'utf8')).trim() : undefined);
  if (!pin) throw new AgentError('USAGE', '--save-pin needs the PIN in LATCHKEY_PKCS11_PIN or LATCHKEY_PKCS11_PIN_FILE');
  try {
    await (await keytar()).setPassword(PIN_SERVICE, pinAccount(ctx.stateDir, cfg), pin);
  } catch (e) {
    throw new AgentError('KEYSTORE', `the PIN cannot be saved in the OS credential store: ${(e as Error).message.split('\n')[0]}`, {}, { cause: e });
  }
}

export async function forgetPkcs11Pin(ctx: KeystoreContext, cfg: { module: string; tokenLabel?: string }): Promise<void> {
  await (await keytar()).deletePassword(PIN_SERVICE, pinAccount(ctx.stateDir, cfg)).catch(() => false);
}

export async function openKeyStore(cfg: KeystoreConfig, ctx: KeystoreContext): Promise<KeyStore> {
  const namespace = keyNamespace(ctx.stateDir);
  switch (cfg.kind) {
    case 'file':
      return createFileKeyStore({ dir: join(ctx.stateDir, STATE_FILES.keys), passphrase: () => filePassphrase(ctx) });
    case 'os': {
      const m = await import('./os-keystore.js');
      return m.createOsKeyStore({ namespace, env: ctx.env });
    }
    case 'pkcs11': {
      const m = await import('./pkcs11-keystore.js');
      return m.createPkcs11KeyStore({ module: cfg.module, ...(cfg.tokenLabel ? { tokenLabel: cfg.tokenLabel } : {}), ...(cfg.slot !== undefined ? { slot: cfg.slot } : {}), pin: () => pkcs11Pin(ctx, cfg), namespace });
    }
  }
}
