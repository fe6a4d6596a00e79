/**
 * A small entry point that exercises what the packaged binary must do beyond
 * plain JavaScript: load both native addons (keytar, pkcs11js) through the
 * SEA asset loader, and open a PKCS#11 module when one is named. Used by
 * `scripts/package.mjs --entry dist/sea/probe.js` and test/src/agent-package.test.ts
 * to prove the loader independently of which addons a CLI command happens to touch.
 *
 *   probe --version            prints the agent version
 *   probe addons [module.so]   loads keytar and pkcs11js; with a PKCS#11 module, C_Initialize + C_GetInfo
 */
import keytar from 'keytar';
import pkcs11js from 'pkcs11js';

// In a single executable, argv[1] is the executable again, so arguments start at 2 either way.
const [cmd, arg] = process.argv.slice(2);

if (cmd === '--version') {
  process.stdout.write('latchkey-probe 0.1.0\n');
} else if (cmd === 'addons') {
  const out: Record<string, unknown> = { keytar: typeof keytar.getPassword === 'function' };
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
} else {
  process.stderr.write('usage: probe --version | probe addons [pkcs11-module.so]\n');
  process.exitCode = 2;
}
