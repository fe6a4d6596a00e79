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

async function pkcs11Pin(ctx: KeystoreContext): Promise<string> {
  if (ctx.env.LATCHKEY_PKCS11_PIN) return ctx.env.LATCHKEY_PKCS11_PIN;
  if (ctx.env.LATCHKEY_PKCS11_PIN_FILE) return (await readFile(ctx.env.LATCHKEY_PKCS11_PIN_FILE, 'utf8')).trim();
  throw new AgentError('KEYSTORE', 'the PKCS#11 token needs its user PIN: set LATCHKEY_PKCS11_PIN, or LATCHKEY_PKCS11_PIN_FILE to a file (mode 0600) that holds it');
}

export async function openKeyStore(cfg: KeystoreConfig, ctx: KeystoreContext): Promise<KeyStore> {
  const namespace = keyNamespace(ctx.stateDir);
  switch (cfg.kind) {
    case 'file':
      return createFileKeyStore({ dir: join(ctx.stateDir, STATE_FILES.keys), passphrase: () => filePassphrase(ctx) });
    case 'os': {
      const m = await import('./os-keystore.js');
      return m.createOsKeyStore({ namespace });
    }
    case 'pkcs11': {
      const m = await import('./pkcs11-keystore.js');
      return m.createPkcs11KeyStore({ module: cfg.module, ...(cfg.tokenLabel ? { tokenLabel: cfg.tokenLabel } : {}), ...(cfg.slot !== undefined ? { slot: cfg.slot } : {}), pin: () => pkcs11Pin(ctx), namespace });
    }
  }
}
