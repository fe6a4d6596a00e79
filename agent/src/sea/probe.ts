/**
 * A small entry point that exercises what the packaged binary must do beyond
 * plain JavaScript: load the native addons (keytar, @napi-rs/keyring, pkcs11js) through the
 * SEA asset loader, and open a PKCS#11 module when one is named. Used by
 * `scripts/package.mjs --entry dist/sea/probe.js` and test/src/agent-package.test.ts
 * to prove the loader independently of which addons a CLI command happens to touch.
 *
 *   probe --version            prints the agent version
 *   probe addons [module.so]   loads keytar, @napi-rs/keyring and pkcs11js; with a PKCS#11 module, C_Initialize + C_GetInfo
 *   probe p11 module.so        through node-webcrypto-p11 (graphene-pk11 → pkcs11js): logs in to the
 *                              token in slot 0 (PIN: LATCHKEY_PKCS11_PIN), makes a non-extractable
 *                              P-256 key in it, signs and verifies
 */
import { AsyncEntry } from '@napi-rs/keyring';
import keytar from 'keytar';
import { Crypto } from 'node-webcrypto-p11';
import pkcs11js from 'pkcs11js';

// In a single executable, argv[1] is the executable again, so arguments start at 2 either way.
const [cmd, arg] = process.argv.slice(2);

if (cmd === '--version') {
  process.stdout.write('latchkey-probe 0.1.0\n');
} else if (cmd === 'addons') {
  const out: Record<string, unknown> = { keytar: typeof keytar.getPassword === 'function', napiKeyring: typeof AsyncEntry === 'function' };
  const p11 = new pkcs11js.PKCS11();
  out.pkcs11js = typeof p11.C_Initialize === 'function';
  if (arg) {
    p11.load(arg);
    p11.C_Initialize();
    try {
      out.pkcs11Library = p11.C_GetInfo().libraryDescription.trim();
    } finally {
      p11.C_Finalize();
    }
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
} else if (cmd === 'p11' && arg) {
  // No top-level await: the executable runs a CommonJS bundle.
  void pkcs11Sign(arg).then(
    (out) => process.stdout.write(`${JSON.stringify(out)}\n`),
    (e: unknown) => {
      process.stderr.write(`probe: ${(e as Error).message}\n`);
      process.exitCode = 1;
    },
  );
} else {
  process.stderr.write('usage: probe --version | probe addons [pkcs11-module.so] | probe p11 pkcs11-module.so\n');
  process.exitCode = 2;
}

async function pkcs11Sign(library: string): Promise<Record<string, unknown>> {
  const p11 = new Crypto({ library, slot: 0, readWrite: true, pin: process.env.LATCHKEY_PKCS11_PIN ?? '' });
  try {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const { privateKey, publicKey } = await p11.subtle.generateKey(alg, false, ['sign', 'verify']);
    const data = new TextEncoder().encode('latchkey');
    const sig = await p11.subtle.sign(alg, privateKey, data);
    return { token: p11.info?.name, extractable: privateKey.extractable, verified: await p11.subtle.verify(alg, publicKey, sig, data) };
  } finally {
    p11.close();
  }
}
