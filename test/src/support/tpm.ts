/**
 * Software TPM devices for end-to-end tests of issue 14: the server's trusted
 * TPM manufacturer roots (swtpm_localca's CAs, for `attestation.ekRootsDir`),
 * a TPM's EK certificate (for `devices register --ek-cert`), and the agent's
 * arguments and environment for a tpm2-pkcs11 token with `--attest tpm`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SwtpmTokenWithEkCert } from '../../../agent/test-support/dist/tpm-fixtures.js';
import { tempDir, type TestCtx } from './processes.js';

/** A directory with the swtpm_localca root and issuing CAs of these TPMs: the server's `attestation.ekRootsDir`. */
export function ekRootsDir(t: TestCtx, tpms: SwtpmTokenWithEkCert[]): string {
  const roots = join(tempDir(t), 'ek-roots');
  mkdirSync(roots);
  for (const [i, tk] of tpms.entries()) {
    copyFileSync(tk.rootCaPem, join(roots, `tpm${i + 1}-root.pem`));
    copyFileSync(tk.issuerCaPem, join(roots, `tpm${i + 1}-issuer.pem`));
  }
  return roots;
}

/** The EK certificate in the TPM's NV (RSA index), as PEM, for `devices register --ek-cert`. */
export function ekCertPem(tok: SwtpmTokenWithEkCert): string {
  const r = spawnSync('tpm2_nvread', ['0x01c00002'], { env: { ...process.env, ...tok.env } });
  assert.equal(r.status, 0, r.stderr?.toString());
  return new X509Certificate(r.stdout).toString();
}

/** `latchkey enroll` arguments for a key made in this TPM's token and attested. */
export const tpmEnrollArgs = (tk: SwtpmTokenWithEkCert): string[] => ['--keystore', 'pkcs11', '--pkcs11-module', tk.module, '--pkcs11-token', tk.tokenLabel, '--attest', 'tpm'];

/** The agent's environment for this TPM's token (TCTI, tpm2-pkcs11 store, PIN). */
export const tpmAgentEnv = (tk: SwtpmTokenWithEkCert): NodeJS.ProcessEnv => ({ ...process.env, ...tk.env, LATCHKEY_PKCS11_PIN: tk.pin });
