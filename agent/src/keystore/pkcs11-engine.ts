/**
 * node:tls with a token key, through OpenSSL's `pkcs11` engine (libp11,
 * Debian `libengine-pkcs11-openssl`) and an RFC 7512 `pkcs11:` URI.
 *
 * Process-wide facts (they come from OpenSSL and libp11, not from us):
 * - The engine loads ONE PKCS#11 module per process (libp11 reads
 *   PKCS11_MODULE_PATH when the engine is first bound and keeps it):
 *   keys of a second module are refused with a clear error.
 * - The URI carries no PIN: the engine's session is logged in because the
 *   keystore's session is (same module instance, same process). One engine
 *   context is kept alive for the life of the process so the engine never
 *   finalizes the module under us.
 * - The engine caches a token's objects at its first key load: a key made
 *   later is used in a fresh process (agent/src/token-worker/).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { KeystoreError, type TlsKey } from './keystore.js';
import { pkcs11Message } from './pkcs11-module.js';

/** The module the OpenSSL engine of this process was bound to, and a context that keeps it initialized. */
let engineBinding: { module: string; keepAlive?: tls.SecureContext } | undefined;

const ENGINE_DIRS = (): string[] => {
  const multiarch = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : `${process.arch}-linux-gnu`;
  return [
    ...(process.env.OPENSSL_ENGINES ? [process.env.OPENSSL_ENGINES] : []),
    `/usr/lib/${multiarch}/engines-3`,
    '/usr/lib64/engines-3',
    '/usr/lib/engines-3',
    '/usr/local/lib/engines-3',
    '/opt/homebrew/lib/engines-3',
  ];
};
const ENGINE_FILE = process.platform === 'darwin' ? 'pkcs11.dylib' : 'pkcs11.so';
const ENGINE_HINT = 'install OpenSSL\'s pkcs11 engine (`apt-get install libengine-pkcs11-openssl`; macOS: `brew install libp11`)';

function locateEngine(explicit: string | undefined): { dir: string; file: string } {
  if (explicit !== undefined) {
    if (!existsSync(explicit)) throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the OpenSSL pkcs11 engine ${explicit} was not found; ${ENGINE_HINT}`);
    const dir = explicit.slice(0, explicit.lastIndexOf('/')) || '/';
    if (!explicit.endsWith(`/${ENGINE_FILE}`)) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the OpenSSL pkcs11 engine must be a file named ${ENGINE_FILE} (OpenSSL loads it by the id "pkcs11"); got ${explicit}`);
    }
    return { dir, file: explicit };
  }
  for (const dir of ENGINE_DIRS()) {
    const file = join(dir, ENGINE_FILE);
    if (existsSync(file)) return { dir, file };
  }
  throw new KeystoreError('KEYSTORE_UNAVAILABLE', `OpenSSL's pkcs11 engine (${ENGINE_FILE}) was not found in ${ENGINE_DIRS().join(', ')}; ${ENGINE_HINT}`);
}

/** RFC 7512 §2.3: every byte that is not unreserved is percent-encoded. */
const pct = (bytes: Uint8Array): string =>
  Array.from(bytes, (b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`)).join('');

export interface EngineKey {
  /** The PKCS#11 module the key's token is in. */
  module: string;
  /** Path of the engine; by default looked for in the usual engines-3 directories. */
  engine?: string;
  tokenLabel: string;
  tokenSerial: string;
  /** The key's CKA_ID. */
  ckaId: Buffer;
  /** How errors name the token ("token \"x\""). */
  tokenName: string;
}

/** The key as node:tls takes it; the caller's store must be open (logged in) in this process. */
export function engineTlsKey(k: EngineKey): TlsKey {
  const { dir } = locateEngine(k.engine);
  if (engineBinding && engineBinding.module !== k.module) {
    throw new KeystoreError(
      'KEYSTORE_UNAVAILABLE',
      `OpenSSL's pkcs11 engine in this process already uses the module ${engineBinding.module}; node:tls can use keys of one PKCS#11 module per process (run a separate agent for ${k.module})`,
    );
  }
  // libp11 reads these when the engine is first bound (once per process).
  if (!process.env.OPENSSL_ENGINES || !existsSync(join(process.env.OPENSSL_ENGINES, ENGINE_FILE))) process.env.OPENSSL_ENGINES = dir;
  if (!engineBinding) process.env.PKCS11_MODULE_PATH = k.module;
  const identifier = `pkcs11:token=${pct(Buffer.from(k.tokenLabel))};serial=${pct(Buffer.from(k.tokenSerial))};id=${pct(k.ckaId)};type=private`;
  let ctx: tls.SecureContext;
  try {
    ctx = tls.createSecureContext({ privateKeyEngine: 'pkcs11', privateKeyIdentifier: identifier });
  } catch (e) {
    const stack = [pkcs11Message(e), ...((e as { opensslErrorStack?: string[] }).opensslErrorStack ?? [])].join('; ');
    if (/no such engine|dso not found|could not load the shared library|ENGINE_UNKNOWN/i.test(stack)) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `OpenSSL's pkcs11 engine could not be loaded from ${dir} (${stack}); ${ENGINE_HINT}`, { cause: e });
    }
    throw new KeystoreError('KEYSTORE_FAILED', `OpenSSL's pkcs11 engine could not load the key from ${k.tokenName} (${stack})`, { cause: e });
  }
  // Keep one engine context for the life of the process: when the last one
  // is freed, libp11 calls C_Finalize, which would end the keystore's sessions.
  engineBinding ??= { module: k.module, keepAlive: ctx };
  const out = { kind: 'engine' as const, privateKeyEngine: 'pkcs11' } as { kind: 'engine'; privateKeyEngine: string; privateKeyIdentifier: string };
  // Not enumerable: a TlsKey that ends up in a log line shows no token details.
  Object.defineProperty(out, 'privateKeyIdentifier', { value: identifier, enumerable: false });
  return out;
}
